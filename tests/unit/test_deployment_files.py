"""The container image and compose file, checked without a container daemon:
every command they run is one the `gridcore` command line accepts, every
variable they set is a setting gridcore reads, and their health checks ask the
ports the services listen on."""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from entrypoints.cli import build_parser
from entrypoints.settings import setting_names

ROOT = Path(__file__).resolve().parents[2]
GRIDCORE_SERVICES = ("api", "worker", "simulator")


def _compose() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load((ROOT / "compose.yaml").read_text())
    return loaded


def _dockerfile() -> list[tuple[str, str]]:
    """(instruction, arguments) of the final stage, continuation lines joined."""
    text = (ROOT / "Dockerfile").read_text().replace("\\\n", " ")
    lines = [line.strip() for line in text.splitlines()]
    instructions = [tuple(line.split(None, 1)) for line in lines if line and line[0] != "#"]
    final = max(i for i, (word, _) in enumerate(instructions) if word == "FROM")
    return [(word, rest) for word, rest in instructions[final:]]


def _instruction(name: str) -> str:
    found = [rest for word, rest in _dockerfile() if word == name]
    assert found, f"the Dockerfile's final stage has no {name}"
    return found[-1]


def _exec_form(arguments: str) -> list[str]:
    loaded: list[str] = yaml.safe_load(arguments)  # a JSON array is YAML too
    return loaded


@pytest.mark.parametrize("service", GRIDCORE_SERVICES)
def test_each_service_runs_a_gridcore_command_the_command_line_accepts(service: str) -> None:
    spec = _compose()["services"][service]
    assert spec["image"] == "gridcore:latest"
    args = build_parser().parse_args(spec["command"])
    assert args.command == spec["command"][0]


def test_the_image_serves_by_default_on_every_interface_through_the_entrypoint() -> None:
    args = build_parser().parse_args(_exec_form(_instruction("CMD")))
    assert (args.command, args.host, args.port) == ("serve", "0.0.0.0", 8000)
    entrypoint = _exec_form(_instruction("ENTRYPOINT"))
    copied = {rest.split()[-1]: rest.split()[-2] for word, rest in _dockerfile() if word == "COPY"}
    script = ROOT / next(src for dst, src in copied.items() if dst.endswith(f"/{entrypoint[0]}"))
    assert script.stat().st_mode & 0o111, "the entrypoint must be executable (COPY keeps the mode)"
    assert "gridcore migrate" in script.read_text()
    # the variable that turns it off is one gridcore knows (not a misspelling)
    assert "GRIDCORE_MIGRATE_AT_START" in script.read_text()
    assert "GRIDCORE_MIGRATE_AT_START" in setting_names()


def test_the_image_runs_as_an_unprivileged_user() -> None:
    user = _instruction("USER").split(":")[0]
    assert user not in {"root", "0"}
    assert re.search(rf"useradd .*--uid 10001 .*{user}\b", " ".join(r for _, r in _dockerfile()))


def test_the_build_context_holds_what_the_dockerfile_copies() -> None:
    ignore = (ROOT / ".dockerignore").read_text().splitlines()
    kept = {line[1:].rstrip("/") for line in ignore if line.startswith("!")}
    text = (ROOT / "Dockerfile").read_text()
    copied = re.findall(r"^COPY (?!--from)(.+) \S+$", text, flags=re.M)
    sources = {source for line in copied for source in line.split()}
    assert sources <= kept
    assert all((ROOT / source).exists() for source in sources)


def test_every_variable_the_services_set_is_a_setting() -> None:
    known = set(setting_names())
    for service in GRIDCORE_SERVICES:
        environment = _compose()["services"][service]["environment"]
        unknown = set(environment) - known
        assert not unknown, f"{service} sets {unknown}, which gridcore does not read"
    example = (ROOT / "deploy/compose/env.example").read_text()
    names = re.findall(r"^([A-Z_]+)=", example, flags=re.M)
    assert set(names) - {"DB_PASSWORD", "MQTT_USERNAME", "MQTT_PASSWORD"} <= known


def test_health_checks_ask_the_ports_the_services_listen_on() -> None:
    services = _compose()["services"]
    api_port = build_parser().parse_args(services["api"]["command"]).port
    worker_port = int(services["worker"]["environment"]["GRIDCORE_WORKER_HTTP_PORT"])
    for name, port in (("api", api_port), ("worker", worker_port)):
        check = " ".join(services[name]["healthcheck"]["test"])
        assert f"http://127.0.0.1:{port}/health/ready" in check
        assert f"{port}:{port}" in services[name]["ports"]


def test_the_broker_and_database_the_services_use_are_in_the_file() -> None:
    services = _compose()["services"]
    for name in ("api", "worker"):
        environment = services[name]["environment"]
        assert environment["DB_HOST"] in services
        assert environment["MQTT_BROKER"] in services
        assert {"postgres", "mosquitto"} <= set(services[name]["depends_on"])
    conf = (ROOT / "deploy/compose/mosquitto.conf").read_text()
    mounted = [v.split(":")[0] for v in services["mosquitto"]["volumes"] if v.startswith("./")]
    assert mounted == ["./deploy/compose/mosquitto.conf"]
    assert "allow_anonymous false" in conf


def test_the_compose_limits_match_the_documented_broker_configuration() -> None:
    """deploy/compose/mosquitto.conf repeats ../mosquitto/gridcore.conf's limits
    (not its Debian persistence path): they must not drift apart."""

    def settings(path: str) -> dict[str, str]:
        lines = (ROOT / path).read_text().splitlines()
        pairs = (shlex.split(line) for line in lines if line.strip() and line[0] != "#")
        return {pair[0]: pair[1] for pair in pairs}

    compose = settings("deploy/compose/mosquitto.conf")
    documented = settings("deploy/mosquitto/gridcore.conf")
    documented.pop("persistence_location")
    assert {key: compose.get(key) for key in documented} == documented


@pytest.mark.slow  # docker-compose takes seconds to start
def test_docker_compose_accepts_the_file_with_the_example_settings(tmp_path: Path) -> None:
    """`docker-compose config` validates the file against the compose schema
    (.ci/run installs Debian's docker-compose; no daemon is needed)."""
    compose = shutil.which("docker-compose")
    if compose is None:
        if os.environ.get("GRIDCORE_REQUIRE_SERVICES") == "1":
            pytest.fail("docker-compose is not installed (apt-get install docker-compose)")
        pytest.skip("docker-compose is not installed")
    (tmp_path / ".env").write_text((ROOT / "deploy/compose/env.example").read_text())
    env = {k: v for k, v in os.environ.items() if not k.startswith(("GRIDCORE_", "DB_", "MQTT_"))}

    def config(directory: Path) -> subprocess.CompletedProcess[str]:
        command = ["--project-directory", str(directory), "-f", str(ROOT / "compose.yaml")]
        return subprocess.run(
            [compose, *command, "config", "--quiet"],
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
        )

    checked = config(tmp_path)
    assert checked.returncode == 0, checked.stderr
    missing = config(tmp_path / "none")  # no .env there
    assert missing.returncode != 0
    assert "set DB_PASSWORD in .env" in missing.stderr
