"""Issue 16, the API at fleet scale, on every store (memory, SQLite,
PostgreSQL): a ``GET /api/vens`` page bounded in bytes as well as rows
(VENs with hundreds of loads), the fleet summary searched, sorted and paged
by the server (the console's fleet table), and on PostgreSQL a read the
statement timeout cancels answered 503, never 500."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import psycopg
import pytest
from fastapi import FastAPI
from sqlalchemy.engine import make_url
from tests.integration.test_api_endpoints import BACKENDS, database_url

from adapters.system import ManualClock
from entrypoints.container import Storage, build_storage, container_for
from entrypoints.settings import Settings
from gridcore.telemetry import LoadSample, TelemetrySample

T0 = datetime(2025, 10, 20, 12, 0, tzinfo=UTC)
PAGE_BYTES = 64 * 1024  # the smallest GRIDCORE_API_MAX_PAGE_BYTES allowed


@dataclass
class Fleet:
    client: httpx.AsyncClient
    storage: Storage
    clock: ManualClock
    url: str

    async def report(self, ven_id: str, loads: int, at: datetime = T0) -> None:
        """One telemetry message of ``ven_id`` listing ``loads`` loads."""
        sample = TelemetrySample(
            ven_id=ven_id,
            timestamp=at,
            used_power_kw=3.0,
            loads=tuple(
                LoadSample(
                    load_id=f"circuit_{n:04d}",
                    name=f"A circuit with a long enough name {n}",
                    type="other",
                    capacity_kw=2.0,
                    current_power_kw=0.5,
                    shed_capability_kw=0.5,
                    enabled=True,
                    priority=n % 10,
                    critical=False,
                )
                for n in range(loads)
            ),
        )
        await self.storage.telemetry_store.append([sample])


async def _fleet(
    request: pytest.FixtureRequest, tmp_path: Path, api_app: Callable[..., FastAPI], **env: object
) -> AsyncIterator[Fleet]:
    url = await database_url(request, tmp_path)
    settings = Settings(
        database_url=url, gridcore_auth="disabled", gridcore_api_max_page_bytes=PAGE_BYTES, **env
    )
    clock = ManualClock(T0 + timedelta(seconds=10))
    # The API's own storage: its pool, statement timeout and load aggregates' age.
    container = container_for(settings, clock=clock, storage=build_storage(settings, api=True))
    storage: Storage = container.storage()
    app = api_app(settings, container)
    try:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://gridcore") as client:
            yield Fleet(client, storage, clock, url)
    finally:
        await storage.close()


@pytest.fixture(params=BACKENDS)
async def fleet(
    request: pytest.FixtureRequest, tmp_path: Path, api_app: Callable[..., FastAPI]
) -> AsyncIterator[Fleet]:
    async for rig in _fleet(request, tmp_path, api_app):
        yield rig


async def test_a_ven_page_is_bounded_in_bytes_and_pages_on_to_every_ven(fleet: Fleet) -> None:
    for n in range(12):
        await fleet.report(f"ven-{n:02d}", loads=100)  # about 25 kB of JSON each
    seen: list[str] = []
    offset, pages = 0, 0
    while True:
        answer = await fleet.client.get("/api/vens", params={"offset": offset, "limit": 1000})
        assert answer.status_code == 200
        assert len(answer.content) <= PAGE_BYTES
        assert answer.headers["X-Total-Count"] == "12"
        items = answer.json()
        assert items and all(len(v["loads"]) == 100 for v in items)
        seen += [v["id"] for v in items]
        pages += 1
        following = answer.headers.get("X-Next-Offset")
        if following is None:
            assert "Link" not in answer.headers
            break
        assert int(following) == offset + len(items)
        assert f"offset={following}" in answer.headers["Link"]
        assert 'rel="next"' in answer.headers["Link"]
        offset = int(following)
    assert seen == [f"ven-{n:02d}" for n in range(12)]  # each once, in id order
    assert pages >= 4  # 12 x ~25 kB does not fit 64 kB pages otherwise


async def test_a_ven_larger_than_the_page_bytes_is_answered_alone(fleet: Fleet) -> None:
    await fleet.report("ven-big", loads=400)  # ~100 kB: over the page's bytes by itself
    await fleet.report("ven-small", loads=1)
    first = await fleet.client.get("/api/vens")
    assert [v["id"] for v in first.json()] == ["ven-big"]
    assert len(first.json()[0]["loads"]) == 400
    assert first.headers["X-Next-Offset"] == "1"
    rest = await fleet.client.get("/api/vens", params={"offset": 1})
    assert [v["id"] for v in rest.json()] == ["ven-small"]
    assert "X-Next-Offset" not in rest.headers


async def test_a_page_within_its_bytes_is_what_it_always_was(fleet: Fleet) -> None:
    for n in range(3):
        await fleet.report(f"ven-{n}", loads=3)
    whole = await fleet.client.get("/api/vens")
    assert [v["id"] for v in whole.json()] == ["ven-0", "ven-1", "ven-2"]
    assert "X-Next-Offset" not in whole.headers
    one = (await fleet.client.get("/api/vens/ven-1")).json()
    assert whole.json()[1] == one  # the same VEN, field for field


async def test_the_fleet_summary_is_searched_sorted_and_paged_by_the_server(
    fleet: Fleet,
) -> None:
    names = {"ven-01": "Zeta", "ven-02": "alpha", "ven-03": "Beta", "ven-04": "Gamma"}
    for n, ven_id in enumerate(names):
        # ven-04 is seen last, ven-01 first.
        await fleet.report(ven_id, loads=1, at=T0 + timedelta(seconds=n))
    for ven_id, name in names.items():
        assert (await fleet.client.patch(f"/api/vens/{ven_id}", json={"name": name})).is_success
    await fleet.client.post("/api/vens", json={"id": "ven-05", "name": "Never seen"})

    async def ids(**params: str | int) -> tuple[list[str], str]:
        answer = await fleet.client.get("/api/vens/summary", params=params)
        assert answer.status_code == 200, answer.text
        return [i["id"] for i in answer.json()], answer.headers["X-Total-Count"]

    assert await ids(sort="-lastSeen") == (["ven-04", "ven-03", "ven-02", "ven-01", "ven-05"], "5")
    assert await ids(sort="lastSeen", limit=2) == (["ven-01", "ven-02"], "5")
    assert await ids(sort="lastSeen", limit=2, offset=2) == (["ven-03", "ven-04"], "5")
    assert await ids(sort="lastSeen", offset=4) == (["ven-05"], "5")  # never seen: last
    assert await ids(sort="-id", limit=2) == (["ven-05", "ven-04"], "5")
    assert await ids(search="ETA") == (["ven-01", "ven-03"], "2")  # Zeta, Beta: any case
    assert await ids(search="ven-0", sort="-id", limit=1) == (["ven-05"], "5")
    assert await ids(search="100%") == ([], "0")  # % is a character, not a wildcard
    assert (await ids())[0] == ["ven-01", "ven-02", "ven-03", "ven-04", "ven-05"]

    wrong = await fleet.client.get("/api/vens/summary", params={"sort": "power"})
    assert wrong.status_code == 422 and "sort" in wrong.json()["message"]
    too_long = await fleet.client.get("/api/vens/summary", params={"search": "x" * 101})
    assert too_long.status_code == 422 and "search" in too_long.json()["message"]


@pytest.fixture(params=[pytest.param("postgres", marks=pytest.mark.postgres)])
async def timed_out(
    request: pytest.FixtureRequest, tmp_path: Path, api_app: Callable[..., FastAPI]
) -> AsyncIterator[tuple[Fleet, str]]:
    async for rig in _fleet(request, tmp_path, api_app, gridcore_api_statement_timeout_seconds=0.3):
        dsn = make_url(rig.url).set(drivername="postgresql")
        yield rig, dsn.render_as_string(hide_password=False)


async def test_a_read_past_the_statement_timeout_is_a_503_to_retry(
    timed_out: tuple[Fleet, str],
) -> None:
    fleet, dsn = timed_out
    assert (await fleet.client.get("/api/events")).status_code == 200
    # Another session holds the events table: the API's read waits on it
    # until PostgreSQL cancels the statement.
    with psycopg.connect(dsn) as holder:
        holder.execute("LOCK TABLE events IN ACCESS EXCLUSIVE MODE")
        answer = await fleet.client.get("/api/events")
    assert answer.status_code == 503
    assert "GRIDCORE_API_STATEMENT_TIMEOUT_SECONDS" in answer.json()["detail"]
    assert answer.headers["Retry-After"] == "2"
    assert (await fleet.client.get("/api/events")).status_code == 200  # and it recovers


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
async def held(
    request: pytest.FixtureRequest, tmp_path: Path, api_app: Callable[..., FastAPI]
) -> AsyncIterator[Fleet]:
    async for rig in _fleet(request, tmp_path, api_app, gridcore_api_stats_max_age_seconds=0.5):
        yield rig


async def test_network_stats_are_held_up_to_their_max_age_then_read_behind(held: Fleet) -> None:
    await held.report("ven-a", loads=2)
    first = (await held.client.get("/api/stats/network")).json()
    assert (first["venCount"], first["householdUsageKw"]) == (1, 3.0)
    await held.report("ven-b", loads=2)
    # Within GRIDCORE_API_STATS_MAX_AGE_SECONDS: the held figures, not a read.
    assert (await held.client.get("/api/stats/network")).json() == first
    await asyncio.sleep(0.6)
    # Past max age: still the held figures at once, while a read runs behind.
    assert (await held.client.get("/api/stats/network")).json() == first
    again = first
    for _ in range(100):
        await asyncio.sleep(0.02)
        again = (await held.client.get("/api/stats/network")).json()
        if again != first:
            break
    assert (again["venCount"], again["householdUsageKw"]) == (2, 6.0)
    # Read as of the app's clock (ManualClock, T0 + 10 s): both VENs online.
    assert again["onlineVens"] == 2


@pytest.mark.postgres
@pytest.mark.parametrize("fleet", ["postgres"], indirect=True)
async def test_the_api_names_its_database_sessions(fleet: Fleet) -> None:
    assert (await fleet.client.get("/api/events")).status_code == 200
    url = make_url(fleet.url)
    dsn = url.set(drivername="postgresql", database="postgres")
    with psycopg.connect(dsn.render_as_string(hide_password=False)) as conn:
        names = conn.execute(
            "SELECT application_name FROM pg_stat_activity WHERE datname = %s", (url.database,)
        ).fetchall()
    assert ("gridcore-api",) in names  # whose backends are whose, in pg_stat_activity
