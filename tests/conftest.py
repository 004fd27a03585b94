"""Shared fixtures: real services when they are there.

Tests that need PostgreSQL or Mosquitto skip when the service is unreachable,
unless GRIDCORE_REQUIRE_SERVICES=1 (as in CI), where they fail instead: a CI
run must never turn green by skipping what it was meant to prove.

Tests marked ``slow`` (every one in SLOW_PATHS below, and the others that take
seconds) stay out of the edit-test loop: ``nox -s fast`` runs
``pytest -m "not slow"``; CI runs them all.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import socket
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

PG_HOST = os.environ.get("GRIDCORE_TEST_PG_HOST", "127.0.0.1")
PG_PORT = int(os.environ.get("GRIDCORE_TEST_PG_PORT", "5432"))
PG_USER = os.environ.get("GRIDCORE_TEST_PG_USER", "postgres")
MQTT_HOST = os.environ.get("GRIDCORE_TEST_MQTT_HOST", "127.0.0.1")
MQTT_PORT = int(os.environ.get("GRIDCORE_TEST_MQTT_PORT", "1883"))


TESTS = Path(__file__).parent
# Slow as a whole: the end-to-end tests (processes, brokers) and schemathesis. Under
# exactly -m "not slow" they are not even collected: importing them takes seconds
# (schemathesis loads the API's schema at import).
SLOW_PATHS = (
    TESTS / "e2e",
    TESTS / "integration" / "test_api_schemathesis.py",
    TESTS / "integration" / "test_openadr_schemathesis.py",
)


def _slow_path(path: Path) -> bool:
    return any(path.is_relative_to(slow) for slow in SLOW_PATHS)


def pytest_ignore_collect(collection_path: Path, config: pytest.Config) -> bool | None:
    if config.option.markexpr.strip() == "not slow" and _slow_path(collection_path):
        return True
    return None


@pytest.hookimpl(tryfirst=True)  # before -m deselects
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if _slow_path(item.path):
            item.add_marker(pytest.mark.slow)
    # pytest-xdist schedules by node id: of several items with one id it runs one
    # (schemathesis' items without a pytest parametrization share their function's).
    twice = [nodeid for nodeid, n in Counter(item.nodeid for item in items).items() if n > 1]
    if twice:
        raise pytest.UsageError(f"tests sharing a node id (xdist would run one of each): {twice}")


# The tests that use the broker: their workers, VENs and simulators share its
# fixed topics (ven/ack/+, ven/cmd/+), so two at once would each see the other's
# traffic. Under pytest-xdist they run one after another on one worker, the rest
# of the suite beside them (test_conftest_scheduling.py keeps this list whole).
BROKER_TESTS = (
    "tests/e2e/",
    "tests/integration/test_broker_contract_mosquitto.py",
    "tests/integration/test_mqtt_protocol_fallback.py",
    "tests/integration/test_mqtt_transport.py",
    "tests/integration/test_openadr_notifications.py",
    "tests/integration/test_simulator_mosquitto.py",
    "tests/unit/test_log_lines.py",
)


def broker_scope(nodeid: str) -> str:
    """The xdist scope of a test: one scope for all the broker's tests, each
    other test its own."""
    path = nodeid.split("::", 1)[0]
    return "broker" if path.startswith(BROKER_TESTS) else nodeid


@pytest.hookimpl(optionalhook=True)
def pytest_xdist_make_scheduler(config: pytest.Config, log: Any) -> Any:
    """Scheduling by :func:`broker_scope` (xdist's own ``--dist loadgroup``
    marks tests by rewriting node ids, which pytest 9 no longer lets it do)."""
    from xdist.scheduler import LoadScopeScheduling

    class BrokerTestsInTurn(LoadScopeScheduling):
        def _split_scope(self, nodeid: str) -> str:
            return broker_scope(nodeid)

    return BrokerTestsInTurn(config, log)


def services_required() -> bool:
    return os.environ.get("GRIDCORE_REQUIRE_SERVICES", "") not in ("", "0", "false")


def _reachable(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=1.0):
            return True
    except OSError:
        return False


def need_service(name: str, host: str, port: int) -> None:
    if _reachable(host, port):
        return
    message = f"{name} is not reachable on {host}:{port}"
    if services_required():
        pytest.fail(f"{message} and GRIDCORE_REQUIRE_SERVICES=1; start it (see .ci/run)")
    pytest.skip(message)


@pytest.fixture(scope="session")
def postgres_server() -> str:
    """Base URL (no database) of the PostgreSQL server used by the tests."""
    need_service("PostgreSQL", PG_HOST, PG_PORT)
    return f"postgresql+psycopg://{PG_USER}@{PG_HOST}:{PG_PORT}"


def _connect(dbname: str = "postgres") -> Any:
    import psycopg

    dsn = f"host={PG_HOST} port={PG_PORT} user={PG_USER} dbname={dbname}"
    return psycopg.connect(dsn, autocommit=True)


def _create_database() -> str:
    name = f"gridcore_test_{uuid.uuid4().hex[:12]}"
    with _connect() as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    return name


def _drop_database(name: str) -> None:
    with _connect() as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def _migrate(url: str) -> None:
    """``gridcore migrate`` to the newest revision, on a thread of its own: the
    caller may be a fixture running inside the test's event loop."""
    from adapters.sql.migrate import migrate

    with ThreadPoolExecutor(1) as thread:
        thread.submit(asyncio.run, migrate(url, retries=1, log=lambda _: None)).result()


@pytest.fixture
def postgres_url(postgres_server: str) -> Iterator[str]:
    """A fresh, empty, uniquely named database, dropped after the test."""
    name = _create_database()
    try:
        yield f"{postgres_server}/{name}"
    finally:
        _drop_database(name)


class MigratedDatabases:
    """PostgreSQL databases at the newest revision, each lent to one test at a time.

    Creating a database and migrating it costs about half a second; emptying one
    with DELETE a few milliseconds. So a database is made once, lent, emptied
    (its rows deleted, its sequences restarted, every other connection to it
    closed) and lent again. One whose schema a test changed is dropped instead.
    """

    def __init__(self, server: str) -> None:
        from adapters.sql.migrate import head_revision

        self.server = server
        self.head = head_revision()
        self.free: list[str] = []
        self.made: list[str] = []

    def lend(self) -> str:
        if not self.free:
            name = _create_database()
            self.made.append(name)
            _migrate(f"{self.server}/{name}")
            self.free.append(name)
        return self.free.pop()

    def give_back(self, name: str) -> None:
        if self._empty(name):
            self.free.append(name)
        else:
            _drop_database(name)

    def _empty(self, name: str) -> bool:
        """Delete every row; False when the schema is no longer the migrated one."""
        from adapters.sql.partitions import partition_of
        from adapters.sql.tables import metadata

        with _connect(name) as conn:
            conn.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                " WHERE datname = current_database() AND pid <> pg_backend_pid()"
            )
            tables = {
                row[0]
                for row in conn.execute(
                    "SELECT tablename FROM pg_tables WHERE schemaname = current_schema()"
                )
                if partition_of(row[0]) is None  # days made by the worker or a test
            }
            if tables != {*metadata.tables, "alembic_version"}:
                return False
            revision = conn.execute("SELECT version_num FROM alembic_version").fetchall()
            if revision != [(self.head,)]:
                return False
            with conn.transaction():
                for table in reversed(metadata.sorted_tables):
                    conn.execute(f'DELETE FROM "{table.name}"')
                sequences = conn.execute(
                    "SELECT sequencename FROM pg_sequences WHERE schemaname = current_schema()"
                ).fetchall()
                for (sequence,) in sequences:
                    conn.execute(f'ALTER SEQUENCE "{sequence}" RESTART')
        return True

    def close(self) -> None:
        for name in self.made:
            _drop_database(name)


@pytest.fixture(scope="session")
def migrated_databases(postgres_server: str) -> Iterator[MigratedDatabases]:
    databases = MigratedDatabases(postgres_server)
    try:
        yield databases
    finally:
        databases.close()


@pytest.fixture
def migrated_postgres_url(migrated_databases: MigratedDatabases) -> Iterator[str]:
    """A database at the newest revision with no rows, the test's alone (as if
    ``postgres_url`` had been migrated; it is a reused one, emptied)."""
    name = migrated_databases.lend()
    try:
        yield f"{migrated_databases.server}/{name}"
    finally:
        migrated_databases.give_back(name)


@pytest.fixture(scope="session")
def _migrated_sqlite_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("migrated") / "gridcore.db"
    _migrate(f"sqlite+aiosqlite:///{path}")
    return path


@pytest.fixture
def migrated_sqlite_url(_migrated_sqlite_file: Path, tmp_path: Path) -> str:
    """A SQLite file at the newest revision with no rows: a copy of one migrated
    once per session."""
    path = tmp_path / "gridcore.db"
    shutil.copyfile(_migrated_sqlite_file, path)
    return f"sqlite+aiosqlite:///{path}"


@pytest.fixture(scope="session")
def mosquitto_address() -> tuple[str, int]:
    need_service("Mosquitto", MQTT_HOST, MQTT_PORT)
    return MQTT_HOST, MQTT_PORT


@pytest.fixture
def topic_prefix() -> str:
    """A unique topic root so tests never see each other's messages."""
    return f"gridcore-test/{uuid.uuid4().hex[:12]}"


_OPENAPI_DOCUMENTS: dict[str, dict[str, Any]] = {}


@pytest.fixture
def api_app() -> Callable[..., Any]:
    """``create_app(settings, container=None)``, except that apps with the same
    settings (the database aside) share one OpenAPI document, built once per
    test session instead of on each app's first request (0.1-0.2 s: the 405
    and unknown-parameter checks read its paths). FastAPI's documented override."""
    from entrypoints.api.app import create_app

    def make(settings: Any, container: Any = None) -> Any:
        app = create_app(settings, container)
        key = settings.model_dump_json(exclude={"database_url"})
        document = _OPENAPI_DOCUMENTS.get(key)
        if document is None:
            document = _OPENAPI_DOCUMENTS[key] = app.openapi()
        app.openapi = lambda: document
        return app

    return make
