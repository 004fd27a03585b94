"""The README as a newcomer follows it: its demo command, taken from README.md
and run as written in a fresh copy of the repository (a new .venv, nox, the
demo session), serves /health on :8000; then the walkthrough "A DR event,
step by step", pasted as written, creates an event, follows it and stops it.

(`.ci/run` takes the README's test command the same way.)"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from processes import wait_for

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]
README = (ROOT / "README.md").read_text()
PORT = 8000  # where the README says the demo serves, and its walkthrough calls
STARTUP = 600.0  # a first run builds two virtual environments


def readme_command(comment: str) -> str:
    """The line under ``# <comment>`` in README.md's code blocks."""
    found = re.search(rf"^# {re.escape(comment)}.*\n(.+)$", README, re.MULTILINE)
    assert found, f"README.md has no command under '# {comment}'"
    return found.group(1)


def readme_blocks(section: str) -> list[str]:
    """The bash code blocks of a README section."""
    text = README.split(f"\n## {section}", 1)[1].split("\n## ", 1)[0]
    return re.findall(r"```bash\n(.*?)```", text, re.DOTALL)


def stock_environment() -> dict[str, str]:
    """This environment without the test's virtual environment on PATH."""
    env = {k: v for k, v in os.environ.items() if k not in ("VIRTUAL_ENV", "PYTHONPATH")}
    ours = Path(sys.prefix)
    path = [p for p in env["PATH"].split(os.pathsep) if not Path(p).is_relative_to(ours)]
    return {**env, "PATH": os.pathsep.join(path)}


def fresh_copy(target: Path) -> Path:
    """The repository's files as git knows them (committed or not), nothing built."""
    listed = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=ROOT,
        capture_output=True,
        check=True,
    ).stdout.decode()
    for name in filter(None, listed.split("\0")):
        if (ROOT / name).is_file():
            (target / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(ROOT / name, target / name)
    return target


def port_taken(port: int) -> bool:
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) == 0


@contextlib.contextmanager
def readme_demo(tmp_path: Path) -> Iterator[None]:
    """The README's demo command running in a fresh copy; its output shown on failure."""
    if port_taken(PORT):
        pytest.fail(
            f"port {PORT} is taken: the README's demo serves there; stop what listens on it"
            f" (e.g. `ss -ltnp 'sport = :{PORT}'`) and run this test again"
        )
    repo = fresh_copy(tmp_path / "gridcore")
    log = tmp_path / "demo.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            ["bash", "-c", readme_command("run the system")],
            cwd=repo,
            env=stock_environment(),
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # nox, then gridcore: stopped as a group
        )
    try:
        yield
    except BaseException:
        print(f"----- README demo command -----\n{log.read_text(errors='replace')[-6000:]}")
        raise
    finally:
        os.killpg(proc.pid, signal.SIGINT)
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


# Run around the README's own lines: curl fails on an HTTP error and ends each answer
# with a newline; between the two blocks, a wait for the event's first ACKs.
CURL = 'curl() { command curl --fail-with-body "$@"; local rc=$?; echo; return $rc; }'
ACKED = (
    "python3 -c 'import json, sys; e = json.load(sys.stdin);"
    ' sys.exit(not (e["status"] == "active" and e["actualReductionKw"] > 0))\''
)
WAIT = f"""for _ in $(seq 150); do
  curl -s localhost:8000/api/events/$EVENT | {ACKED} && break
  sleep 0.2
done"""


def test_readme_demo_command_serves_and_the_walkthrough_runs_as_pasted(tmp_path: Path) -> None:
    with readme_demo(tmp_path):
        started = time.monotonic()
        wait_for(
            lambda: httpx.get(f"http://127.0.0.1:{PORT}/health", timeout=2).status_code == 200,
            STARTUP,
            "the README's demo command to serve /health on :8000",
            every=0.5,
        )
        print(f"README demo command: /health answered after {time.monotonic() - started:.0f}s")
        # Its VENs' first telemetry is spread over their 5 s interval: a reader of
        # the README gets there after they have all reported, and so does this test
        # (an event created at the first /health went to the few online yet).
        wait_for(
            lambda: (
                httpx.get(f"http://127.0.0.1:{PORT}/api/stats/network", timeout=2).json()[
                    "onlineVens"
                ]
                == 50
            ),
            30,
            "the demo's 50 VENs to be online",
            every=0.5,
        )

        create, follow = readme_blocks("A DR event, step by step")
        script = "\n".join([CURL, create, WAIT, follow, 'echo "EVENT=$EVENT"'])
        run = subprocess.run(
            ["bash", "-euo", "pipefail", "-c", script],
            env=stock_environment(),
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert run.returncode == 0, f"{run.stdout}\n{run.stderr}"
        event = re.search(r"^EVENT=(evt-[0-9a-f]{8})$", run.stdout, re.MULTILINE)
        assert event, run.stdout
        url = f"http://127.0.0.1:{PORT}/api/events/{event.group(1)}"
        stopped = httpx.get(url, timeout=5).json()
        assert stopped["status"] == "stopped"
        assert stopped["actualReductionKw"] > 0
