"""`gridcore worker` as a real process on a database it cannot use. A schema
that is not this code's (never migrated): it refuses to start, exit code 1,
saying to run `gridcore migrate`, before touching the broker (everything it
consumed would fail to store). A database that does not answer: it waits,
one line per retry with the cause, and stops cleanly when told to."""

from __future__ import annotations

import signal
from pathlib import Path

import pytest
from tests.e2e.processes import Processes, logs_on_failure, wait_for

MIGRATE = "not migrated: run `gridcore migrate`"


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def empty_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'empty.db'}"
    return str(request.getfixturevalue("postgres_url"))


def _env(url: str, mosquitto: tuple[str, int]) -> dict[str, str]:
    host, port = mosquitto
    return {"DATABASE_URL": url, "MQTT_BROKER": host, "MQTT_PORT": str(port)}


@pytest.mark.mosquitto
def test_worker_refuses_a_database_never_migrated(
    empty_url: str, mosquitto_address: tuple[str, int], tmp_path: Path
) -> None:
    with Processes(tmp_path, _env(empty_url, mosquitto_address)) as procs:
        result = procs.run("worker", timeout=60)
    assert result.returncode == 1, result.stderr
    errors = [line for line in result.stderr.splitlines() if MIGRATE in line]
    assert len(errors) == 1, result.stderr
    assert "Traceback" not in result.stderr
    assert "connected to" not in result.stderr  # refused before the broker


@pytest.mark.postgres
@pytest.mark.mosquitto
def test_worker_waits_for_a_database_that_does_not_answer(
    postgres_server: str, mosquitto_address: tuple[str, int], tmp_path: Path
) -> None:
    env = _env("postgresql+psycopg://postgres@127.0.0.1:1/gridcore", mosquitto_address)
    with Processes(tmp_path, env) as procs, logs_on_failure(procs, "worker"):
        procs.start("worker", "worker")
        waiting = "unreachable: Connection refused; retrying in"
        wait_for(lambda: procs.log("worker").count(waiting) >= 2, 30, "two retries")
        assert procs.stop("worker", signal.SIGTERM) == 0
        log = procs.log("worker")
    retries = [line for line in log.splitlines() if waiting in line]
    assert retries[0].endswith("database PostgreSQL at 127.0.0.1:1/gridcore " + waiting + " 0.5s")
    assert "Traceback" not in log
    assert "connected to" not in log
