"""The API over a database it cannot use: never migrated, migrated by an older
or a newer gridcore, or not answering at all. Readiness says what is wrong
and what to run; API calls get the API's JSON error shape, a 503, never a
plain-text 500, and each problem is logged once (no traceback per request)."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from sqlalchemy import text

from adapters.sql.engine import create_engine
from adapters.sql.migrate import head_revision, migrate
from entrypoints.api.app import create_app
from entrypoints.settings import Settings

MIGRATE = "run `gridcore migrate`"
PG_CLOSED_PORT = "postgresql+psycopg://postgres@127.0.0.1:1/gridcore"


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def empty_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A database that exists and holds nothing: a new SQLite file, a new
    PostgreSQL database."""
    if request.param == "sqlite":
        return f"sqlite+aiosqlite:///{tmp_path / 'empty.db'}"
    return str(request.getfixturevalue("postgres_url"))


async def _client(url: str) -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(Settings(database_url=url, gridcore_auth="disabled"))
    transport = httpx.ASGITransport(app=app)
    try:
        async with httpx.AsyncClient(transport=transport, base_url="http://gridcore") as client:
            yield client
    finally:
        await app.state.container.storage().close()


@pytest.fixture
async def client(empty_url: str) -> AsyncIterator[httpx.AsyncClient]:
    async for client in _client(empty_url):
        yield client


async def _set_revision(url: str, revision: str) -> None:
    engine = create_engine(url)
    try:
        async with engine.begin() as conn:
            await conn.execute(text("UPDATE alembic_version SET version_num = :r"), {"r": revision})
    finally:
        await engine.dispose()


async def test_readiness_on_a_database_never_migrated(client: httpx.AsyncClient) -> None:
    answer = await client.get("/health/ready")
    assert answer.status_code == 503
    assert answer.json() == {
        "status": "unavailable",
        "database": f"not migrated: {MIGRATE}",
        "broker": "in-process",
    }


async def test_an_api_call_on_a_database_never_migrated_is_a_json_503(
    client: httpx.AsyncClient, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    for path in ("/api/vens", "/api/events", "/api/stats/network", "/api/vens/ven-1"):
        answer = await client.get(path)
        assert answer.status_code == 503, path
        assert answer.headers["content-type"] == "application/json"
        assert answer.json() == {"detail": f"database not migrated: {MIGRATE}"}
    created = await client.post("/api/vens", json={"id": "ven-1", "name": "x"})
    assert created.status_code == 503
    warnings = [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert len(warnings) == 1, [r.getMessage() for r in warnings]
    assert warnings[0].getMessage().endswith(f"not migrated: {MIGRATE}")
    assert warnings[0].exc_info is None


async def test_migrating_while_serving_makes_it_ready(
    empty_url: str, client: httpx.AsyncClient
) -> None:
    await migrate(empty_url, revision="0001", retries=1)
    answer = await client.get("/health/ready")
    assert answer.status_code == 503
    head = head_revision()
    assert answer.json()["database"] == (
        f"outdated (revision 0001, this gridcore needs {head}): {MIGRATE}"
    )
    await migrate(empty_url, retries=1)
    assert (await client.get("/health/ready")).json()["database"] == "ok"
    assert (await client.get("/api/vens")).status_code == 200


async def test_a_database_migrated_by_a_newer_gridcore(
    empty_url: str, client: httpx.AsyncClient
) -> None:
    await migrate(empty_url, retries=1)
    await _set_revision(empty_url, "9999")
    answer = await client.get("/health/ready")
    assert answer.status_code == 503
    database = answer.json()["database"]
    assert database.startswith(
        f"newer than this gridcore (revision 9999, it knows up to {head_revision()})"
    )
    assert "`gridcore migrate` cannot go back" in database


async def test_serve_says_so_at_start(empty_url: str, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO)
    app = create_app(Settings(database_url=empty_url, gridcore_auth="disabled"))
    async with app.router.lifespan_context(app):
        pass
    lines = [r.getMessage() for r in caplog.records if "database" in r.getMessage()]
    assert len(lines) == 1, lines
    assert f"not migrated: {MIGRATE}; the API answers 503 until it is fixed" in lines[0]


async def test_serve_says_the_schema_is_current_at_start(
    empty_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    await migrate(empty_url, retries=1)
    caplog.set_level(logging.INFO, logger="entrypoints.api.health")
    app = create_app(Settings(database_url=empty_url, gridcore_auth="disabled"))
    async with app.router.lifespan_context(app):
        pass
    assert [r.getMessage().rsplit(": ", 1)[-1] for r in caplog.records] == ["schema up to date"]


@pytest.mark.postgres
async def test_postgres_down_is_a_json_503_logged_once(
    postgres_server: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    async for client in _client(PG_CLOSED_PORT):
        ready = await client.get("/health/ready")
        assert ready.status_code == 503
        assert ready.json()["database"] == "unreachable: Connection refused"
        for _ in range(3):
            answer = await client.get("/api/vens")
            assert answer.status_code == 503
            assert answer.json() == {"detail": "database unreachable: Connection refused"}
    warnings = [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert [r.getMessage() for r in warnings] == [
        "database PostgreSQL at 127.0.0.1:1/gridcore unreachable: Connection refused"
    ]
    assert all(r.exc_info is None for r in caplog.records)


async def test_sqlite_that_cannot_be_opened_is_a_json_503(tmp_path: Path) -> None:
    async for client in _client(f"sqlite:///{tmp_path / 'no-such-dir' / 'x.db'}"):
        answer = await client.get("/api/events")
        assert answer.status_code == 503
        assert answer.json() == {"detail": "database unreachable: unable to open database file"}
        ready = await client.get("/health/ready")
        assert ready.json()["database"] == "unreachable: unable to open database file"
