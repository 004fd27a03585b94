"""The PostgreSQL ingest keeps its connection from one batch to the next and
uses it again without the pool's pre-ping: a connection the server ended
meanwhile (a restart, an administrator) costs a retry on a new one, not a
failed batch; one idle for a while goes back to the pool."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from adapters.sql import ingest_pg
from adapters.sql.engine import create_engine
from adapters.sql.telemetry import SqlTelemetryStore
from gridcore.telemetry import LoadSample, TelemetrySample

pytestmark = pytest.mark.postgres
T0 = datetime(2024, 7, 10, 15, 0, tzinfo=UTC)


@pytest.fixture
async def engine(migrated_postgres_url: str) -> AsyncIterator[AsyncEngine]:
    engine = create_engine(migrated_postgres_url)
    try:
        yield engine
    finally:
        await engine.dispose()


def samples(start: int, count: int) -> list[TelemetrySample]:
    line = LoadSample("c1", "Circuit", "hvac", 5.0, 1.0, 1.0, True, 1, False, 20.0, 4.2)
    return [
        TelemetrySample("ven-001", T0 + timedelta(seconds=5 * n), used_power_kw=1.0, loads=(line,))
        for n in range(start, start + count)
    ]


async def ingest_backends(engine: AsyncEngine) -> set[int]:
    """Backend pids of the database's other connections (the store's)."""
    async with engine.connect() as conn:
        rows = await conn.execute(
            text(
                "SELECT pid FROM pg_stat_activity"
                " WHERE datname = current_database() AND pid <> pg_backend_pid()"
            )
        )
        return {row[0] for row in rows}


async def stored(engine: AsyncEngine) -> int:
    async with engine.connect() as conn:
        return int((await conn.execute(text("SELECT count(*) FROM ven_telemetry"))).scalar_one())


async def test_a_connection_ended_between_batches_costs_a_retry_not_the_batch(
    engine: AsyncEngine,
) -> None:
    store = SqlTelemetryStore(engine)
    try:
        assert (await store.append(samples(0, 10))).stored == 10
        kept = store._writer._kept  # type: ignore[attr-defined]
        assert kept is not None  # kept for the next batch, not back in the pool
        async with engine.connect() as conn:
            killed = await conn.execute(
                text(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                    " WHERE datname = current_database() AND pid <> pg_backend_pid()"
                )
            )
            assert any(row[0] for row in killed)
        result = await store.append(samples(10, 10))
        assert (result.stored, result.duplicates) == (10, 0)
        assert await stored(engine) == 20
        # A batch stored again after the retry finds every row: nothing twice.
        again = await store.append(samples(0, 20))
        assert (again.stored, again.duplicates) == (0, 20)
    finally:
        await store.close()


async def test_a_connection_idle_for_a_while_goes_back_to_the_pool(
    engine: AsyncEngine, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = SqlTelemetryStore(engine)
    try:
        await store.append(samples(0, 5))
        first = store._writer._kept  # type: ignore[attr-defined]
        monkeypatch.setattr(ingest_pg, "_KEEP_SECONDS", 0.0)  # idle "for longer" at once
        await store.append(samples(5, 5))
        second = store._writer._kept  # type: ignore[attr-defined]
        assert first is not None and second is not None and first[0] is not second[0]
        assert await stored(engine) == 10
    finally:
        await store.close()
    assert store._writer._kept is None  # type: ignore[attr-defined]
    assert len(await ingest_backends(engine)) <= engine.pool.size()
