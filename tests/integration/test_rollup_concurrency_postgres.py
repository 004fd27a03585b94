"""The fleet's history roll-ups under concurrent ingest on real PostgreSQL
(READ COMMITTED, several workers ingesting while one rolls up): a roll-up
never makes a read answer otherwise than the VENs' own rows
(adapters.sql.rollups).

- forced interleavings: an ingest transaction already begun when the
  maintenance moves its bound (it marks what it adds); one that has written
  intervals and not committed yet (the maintenance waits for it);
- a randomised run: several writers storing telemetry out of order while a
  maintenance loop rolls up behind them, then every read compared.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import func, select, text
from sqlalchemy.ext.asyncio import AsyncEngine

from adapters.sql.engine import create_engine
from adapters.sql.queries import SqlTelemetryQueries
from adapters.sql.rollups import SqlHistoryRollup
from adapters.sql.tables import fleet_late
from adapters.sql.telemetry import SqlTelemetryStore
from gridcore.history import HistorySource
from gridcore.telemetry import HistoryPoint, TelemetrySample

pytestmark = pytest.mark.postgres

T0 = datetime(2026, 3, 2, tzinfo=UTC)
MINUTE = timedelta(minutes=1)
FIVE = timedelta(minutes=5)
DAY = timedelta(days=1)


@pytest.fixture
async def engine(migrated_postgres_url: str) -> AsyncIterator[AsyncEngine]:
    engine = create_engine(migrated_postgres_url, pool_size=10)
    try:
        yield engine
    finally:
        await engine.dispose()


def sample(ven: str, at: datetime, kw: float, event: str | None = None) -> TelemetrySample:
    return TelemetrySample(
        ven,
        at,
        used_power_kw=kw,
        shed_power_kw=kw / 4,
        event_id=event,
        requested_reduction_kw=1.5 if event else None,
    )


def same(a: list[HistoryPoint], b: list[HistoryPoint]) -> None:
    assert [(p.timestamp, p.event_id) for p in a] == [(p.timestamp, p.event_id) for p in b]
    for p, q in zip(a, b, strict=True):
        assert p.used_power_kw == pytest.approx(q.used_power_kw, abs=1.01e-3)
        assert p.shed_power_kw == pytest.approx(q.shed_power_kw, abs=1.01e-3)
        assert (p.requested_reduction_kw is None) == (q.requested_reduction_kw is None)
        if p.requested_reduction_kw is not None and q.requested_reduction_kw is not None:
            assert p.requested_reduction_kw == pytest.approx(q.requested_reduction_kw, abs=1.01e-3)


async def exact(queries: SqlTelemetryQueries, start: datetime, end: datetime) -> None:
    """The fleet's 5-minute and daily points as the VENs' rows give them."""
    for width in (FIVE, DAY):
        args: dict[str, Any] = {"start": start, "end": end, "width": width}
        chosen = await queries.history(**args)
        assert chosen
        same(chosen, await queries.history(**args, source=HistorySource.INTERVALS))


async def marks(engine: AsyncEngine) -> int:
    async with engine.connect() as conn:
        return int(await conn.scalar(select(func.count()).select_from(fleet_late)) or 0)


async def test_an_ingest_begun_before_the_bound_moved_marks_what_it_adds(
    engine: AsyncEngine,
) -> None:
    store, queries = SqlTelemetryStore(engine), SqlTelemetryQueries(engine)
    rollup = SqlHistoryRollup(engine)
    await store.append([sample(v, T0 + k * MINUTE, 2.0) for v in ("ven-a", "ven-b")
                        for k in range(120)])  # fmt: skip
    await rollup.roll_up(T0 + timedelta(minutes=30))  # rolled through 00:20
    # An ingest for ven-a begins and waits on ven-a's row (held by another
    # transaction, as a concurrent writer would) before writing anything.
    async with engine.connect() as holder:
        await holder.execute(text("SELECT 1 FROM vens WHERE id = 'ven-a' FOR UPDATE"))
        late = [sample("ven-a", T0 + timedelta(minutes=50, seconds=k + 1), 9.0, "evt-1")
                for k in range(3)]  # fmt: skip
        ingest = asyncio.create_task(store.append(late))
        await asyncio.sleep(0.3)
        assert not ingest.done()
        # Meanwhile the maintenance rolls up through 01:50, past the late samples.
        report = await rollup.roll_up(T0 + timedelta(hours=2))
        assert report is not None and report.rolled_through == T0 + timedelta(minutes=110)
        await holder.rollback()
    assert (await ingest).stored == 3
    # The roll-up of 00:50 was made without them: ingest marked it.
    assert await marks(engine) == 1
    await exact(queries, T0, T0 + timedelta(hours=2))
    again = await rollup.roll_up(T0 + timedelta(hours=2))
    assert again is not None and again.restated >= 1 and await marks(engine) == 0
    await exact(queries, T0, T0 + timedelta(hours=2))
    await store.close()


async def test_the_bound_waits_for_intervals_written_and_not_committed(
    engine: AsyncEngine,
) -> None:
    store, queries = SqlTelemetryStore(engine), SqlTelemetryQueries(engine)
    rollup = SqlHistoryRollup(engine, lock_timeout=timedelta(milliseconds=20))
    await store.append([sample("ven-a", T0 + k * MINUTE, 2.0) for k in range(120)])
    # A writer in flight: it added to ven-a's 00:30 interval, not committed yet.
    async with engine.connect() as writer:
        await writer.execute(
            text("UPDATE ven_intervals SET samples = samples + 1, used_sum = used_sum + 50"
                 " WHERE ven_id = 'ven-a' AND start = :at"),
            {"at": T0 + timedelta(minutes=30)},
        )  # fmt: skip
        rolling = asyncio.create_task(rollup.roll_up(T0 + timedelta(hours=2)))
        await asyncio.sleep(0.3)
        assert not rolling.done()  # waiting for the writer, retrying its short lock
        await writer.commit()
    report = await rolling
    assert report is not None and report.rolled_through == T0 + timedelta(minutes=110)
    # The roll-up holds what the writer committed; nothing needed a mark.
    assert await marks(engine) == 0
    await exact(queries, T0, T0 + timedelta(hours=2))
    await store.close()


async def test_writers_and_the_maintenance_at_once(engine: AsyncEngine) -> None:
    rng = random.Random(16)
    vens = [f"ven-{n:02d}" for n in range(12)]
    hours = 8
    samples = [
        sample(v, T0 + timedelta(seconds=rng.randrange(hours * 3600)),
               round(rng.uniform(0, 9), 2), "evt-2" if rng.random() < 0.1 else None)
        for v in vens for _ in range(150)
    ]  # fmt: skip
    # Mostly in time order, some a few hours late (a VEN's replayed buffer).
    samples.sort(key=lambda s: s.timestamp + timedelta(hours=rng.choice([0, 0, 0, 3])))
    batches = [samples[k : k + 40] for k in range(0, len(samples), 40)]
    queries = SqlTelemetryQueries(engine)
    rollup = SqlHistoryRollup(engine)
    rolled: list[Any] = []
    done = asyncio.Event()

    async def writer(w: int) -> None:
        store = SqlTelemetryStore(engine)
        for batch in batches[w::4]:
            await store.append(batch)
            await asyncio.sleep(0)
        await store.close()

    async def maintain() -> None:
        now = T0
        while not done.is_set():
            now = min(now + timedelta(minutes=20), T0 + timedelta(hours=hours + 1))
            rolled.append(await rollup.roll_up(now))
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(done.wait(), 0.02)

    maintenance = asyncio.create_task(maintain())
    await asyncio.gather(*(writer(w) for w in range(4)))
    done.set()
    await maintenance
    assert any(r is not None and r.intervals for r in rolled)
    # Exact before the last pass (marked buckets read per VEN) and after it.
    await exact(queries, T0, T0 + timedelta(hours=hours))
    await rollup.roll_up(T0 + timedelta(hours=hours + 1))
    assert await marks(engine) == 0
    await exact(queries, T0, T0 + timedelta(hours=hours))
    await exact(queries, T0 + timedelta(minutes=7), T0 + timedelta(hours=3, minutes=2))
