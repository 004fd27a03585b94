"""The mistakes people make, through the real `gridcore` console script: each
ends the command at once with exit code 2 and one line naming the setting
and what it may be, never a traceback and never a silent SQLite. Each process
that starts says which storage and broker it uses."""

from __future__ import annotations

import os
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import pytest
from tests.conftest import PG_HOST, PG_PORT, PG_USER, need_service

GRIDCORE = str(Path(sys.executable).with_name("gridcore"))
POSTGRES = f"{PG_HOST}:{PG_PORT}"
# A readable file that is no certificate: refused before it is ever parsed.
SOME_FILE = __file__

# Each case: the command line and its environment. They run all at once (each
# command is mostly interpreter start-up), each in an empty directory (no
# .env) with none of our variables from the machine running the tests.
CASES: dict[str, tuple[tuple[str, ...], dict[str, str]]] = {
    "misspelled db host": (
        ("migrate",),
        {"DB_HOTS": "127.0.0.1", "DB_USER": "postgres", "DB_NAME": "x"},
    ),
    "db host alone": (("serve",), {"DB_HOST": "db.example"}),
    "log level info": (("migrate",), {"GRIDCORE_LOG_LEVEL": "info"}),
    "log level verbose": (("migrate",), {"GRIDCORE_LOG_LEVEL": "verbose"}),
    "port 99999": (("serve", "--port", "99999"), {}),
    "bad boolean": (("worker",), {"EVENT_COMMAND_ENABLED": "maybe"}),
    "bad number": (("migrate",), {"DB_TIMEOUT": "soon"}),
    "bad topic filter": (("worker",), {"MQTT_BROKER": "127.0.0.1", "MQTT_TOPICS": "a/#/b"}),
    "missing ca file": (("worker",), {"MQTT_BROKER": "127.0.0.1", "MQTT_CA_CERT": "ca.pem"}),
    "cert without key": (
        ("worker",),
        {"MQTT_BROKER": "127.0.0.1", "MQTT_CLIENT_CERT": SOME_FILE},
    ),
    "misspelled broker": (("worker",), {"MQTT_BROKR": "127.0.0.1"}),
    "short token": (("serve",), {"GRIDCORE_API_TOKENS": "read:short"}),
    # --retries 3 --wait 5: a retry would print "waiting for" (and take 10 s).
    "unknown role": (
        ("migrate", "--retries", "3", "--wait", "5"),
        {"DATABASE_URL": f"postgresql://gridcore_no_such_role@{POSTGRES}/postgres"},
    ),
    "missing database": (
        ("migrate", "--retries", "3", "--wait", "5"),
        {
            "DB_HOST": PG_HOST,
            "DB_PORT": str(PG_PORT),
            "DB_USER": PG_USER,
            "DB_NAME": "gridcore_no_such_db",
        },
    ),
    "unresolvable host": (
        ("migrate", "--retries", "3", "--wait", "5"),
        {"DB_HOST": "nonexistent.invalid", "DB_USER": "gridcore", "DB_NAME": "gridcore"},
    ),
    "refused connection": (
        ("migrate", "--retries", "2", "--wait", "0"),
        {"DATABASE_URL": "postgresql://postgres@127.0.0.1:1/gridcore"},
    ),
    "serve help": (("serve", "--help"), {}),
    "worker help": (("worker", "--help"), {}),
    "openapi": (("openapi",), {}),
}


@dataclass
class Ran:
    returncode: int
    stdout: str
    stderr: str
    cwd: Path


@pytest.fixture(scope="module")
def ran(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Ran]:
    ours = ("DB_", "MQTT_", "GRIDCORE_", "IOT_")
    clean = {k: v for k, v in os.environ.items() if not k.startswith(ours)}
    clean.pop("DATABASE_URL", None)

    def run(name: str) -> Ran:
        args, env = CASES[name]
        cwd = tmp_path_factory.mktemp(name.replace(" ", "-"))
        done = subprocess.run(
            [GRIDCORE, *args],
            env={**clean, **env},
            cwd=cwd,
            capture_output=True,
            text=True,
            timeout=60,
        )
        return Ran(done.returncode, done.stdout, done.stderr, cwd)

    with ThreadPoolExecutor(max_workers=os.cpu_count() or 2) as pool:
        return dict(zip(CASES, pool.map(run, CASES), strict=True))


def refused(result: Ran) -> str:
    """The one line a refused command printed (exit 2)."""
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, lines
    return lines[0]


def test_misspelled_db_host_is_an_error_not_sqlite(ran: dict[str, Ran]) -> None:
    result = ran["misspelled db host"]
    assert refused(result) == (
        "gridcore: DB_USER and DB_NAME are set but DB_HOST is not: PostgreSQL needs DB_HOST, "
        "DB_USER and DB_NAME, or DATABASE_URL; DB_HOTS is not a setting: did you mean DB_HOST?"
    )
    assert list(result.cwd.iterdir()) == []  # no gridcore.db


def test_db_host_without_user_and_name(ran: dict[str, Ran]) -> None:
    assert refused(ran["db host alone"]).startswith(
        "gridcore: DB_HOST is set but DB_USER and DB_NAME are not: "
    )


def test_log_level_in_lower_case_works(ran: dict[str, Ran]) -> None:
    result = ran["log level info"]
    assert result.returncode == 0, result.stderr
    # and the process says where it keeps its data before it does anything
    assert "INFO gridcore: migrate starting: storage SQLite at ./gridcore.db" in result.stderr


def test_unknown_log_level(ran: dict[str, Ran]) -> None:
    assert refused(ran["log level verbose"]) == (
        "gridcore: GRIDCORE_LOG_LEVEL=verbose: must be one of debug, info, warning, error "
        "(any case)"
    )


def test_port_out_of_range(ran: dict[str, Ran]) -> None:
    assert refused(ran["port 99999"]) == (
        "gridcore serve: argument --port: 99999: must be a whole number from 1 to 65535 "
        "(see gridcore serve --help)"
    )


def test_bad_boolean(ran: dict[str, Ran]) -> None:
    assert refused(ran["bad boolean"]) == (
        "gridcore: EVENT_COMMAND_ENABLED=maybe: must be true or false (or 1/0, yes/no, on/off)"
    )


def test_bad_number(ran: dict[str, Ran]) -> None:
    assert refused(ran["bad number"]) == "gridcore: DB_TIMEOUT=soon: must be a number above 0"


def test_topic_filter_the_broker_would_refuse(ran: dict[str, Ran]) -> None:
    assert refused(ran["bad topic filter"]) == (
        "gridcore: MQTT_TOPICS=a/#/b: # must be a whole level and the last one "
        "(a/#, not a/#/b or a#)"
    )


def test_certificate_file_that_cannot_be_read(ran: dict[str, Ran]) -> None:
    assert refused(ran["missing ca file"]) == (
        "gridcore: MQTT_CA_CERT=ca.pem: cannot read it (No such file or directory)"
    )


def test_client_certificate_without_its_key(ran: dict[str, Ran]) -> None:
    assert refused(ran["cert without key"]) == (
        "gridcore: MQTT_CLIENT_CERT and MQTT_CLIENT_KEY must be set together"
    )


def test_misspelled_broker_is_named_with_the_real_setting(ran: dict[str, Ran]) -> None:
    result = ran["misspelled broker"]
    assert result.returncode == 2
    warning = "WARNING gridcore: MQTT_BROKR is not a setting: did you mean MQTT_BROKER?"
    assert warning in result.stderr
    assert result.stderr.strip().splitlines()[-1].startswith("gridcore: no broker configured")


def test_malformed_api_token(ran: dict[str, Ran]) -> None:
    assert refused(ran["short token"]) == (
        "gridcore: GRIDCORE_API_TOKENS entry 1: token shorter than 16 characters"
    )


# --- migrate: what waiting will not fix fails at once ------------------------------------


@pytest.fixture
def postgres() -> None:
    need_service("PostgreSQL", PG_HOST, PG_PORT)


def failed_at_once(result: Ran) -> str:
    assert result.returncode == 2, result.stderr
    assert "waiting for" not in result.stdout + result.stderr  # not retried
    return result.stderr.strip().splitlines()[-1]


@pytest.mark.usefixtures("postgres")
def test_migrate_unknown_role(ran: dict[str, Ran]) -> None:
    assert failed_at_once(ran["unknown role"]) == (
        f"gridcore: cannot use PostgreSQL at {POSTGRES}/postgres: role "
        '"gridcore_no_such_role" does not exist; check DB_USER (or the user in DATABASE_URL), '
        "or create that role (not retried: waiting will not change this)"
    )


@pytest.mark.usefixtures("postgres")
def test_migrate_missing_database(ran: dict[str, Ran]) -> None:
    assert failed_at_once(ran["missing database"]) == (
        f"gridcore: cannot use PostgreSQL at {POSTGRES}/gridcore_no_such_db: database "
        '"gridcore_no_such_db" does not exist; check DB_NAME (or DATABASE_URL), or create it: '
        f"createdb -h {PG_HOST} -p {PG_PORT} -U {PG_USER} gridcore_no_such_db "
        "(not retried: waiting will not change this)"
    )


def test_migrate_host_that_does_not_resolve(ran: dict[str, Ran]) -> None:
    line = failed_at_once(ran["unresolvable host"])
    assert line.startswith(
        "gridcore: cannot use PostgreSQL at nonexistent.invalid:5432/gridcore: "
        "failed to resolve host 'nonexistent.invalid'"
    )
    assert line.endswith(
        "check DB_HOST (or the host in DATABASE_URL) (not retried: waiting will not change this)"
    )


def test_migrate_still_waits_for_a_refused_connection(ran: dict[str, Ran]) -> None:
    result = ran["refused connection"]
    assert result.returncode == 1
    assert "waiting for PostgreSQL at 127.0.0.1:1/gridcore (attempt 1/2)" in result.stdout
    assert result.stderr.strip().splitlines()[-1] == (
        "gridcore: gave up on PostgreSQL at 127.0.0.1:1/gridcore after 2 attempts: "
        "Connection refused"
    )


# --- help and openapi ----------------------------------------------------------------------


def test_serve_help_says_how_access_control_works(ran: dict[str, Ran]) -> None:
    text = ran["serve help"].stdout
    for words in ("GRIDCORE_API_TOKENS", "Bearer", "read token", "control token", "/health"):
        assert words in text


def test_worker_help_says_what_it_does(ran: dict[str, Ran]) -> None:
    text = ran["worker help"].stdout
    for words in ("MQTT consumer", "dispatcher", "MQTT_BROKER", "MQTT_CLIENT_ID"):
        assert words in text


def test_openapi_prints_and_creates_nothing(ran: dict[str, Ran]) -> None:
    result = ran["openapi"]
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("openapi: ")
    assert list(result.cwd.iterdir()) == []
