"""Writers auto-registering VENs at once on real PostgreSQL (READ COMMITTED):
a batch mixing VENs already registered and VENs seen for the first time,
beside other writers registering some of the same VENs, is stored whole,
never failed by a deadlock (adapters.sql.telemetry: registration happens in
a transaction of its own, then the batch locks every VEN in one ordered pass).

Before that, a writer holding its known VENs' locks locked the VENs it had
just registered out of id order; with a third writer committing one of them
between two lookups, two writers could wait on each other (CI found it).
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from adapters.sql.engine import create_engine
from adapters.sql.telemetry import SqlTelemetryStore
from gridcore.telemetry import TelemetrySample

pytestmark = pytest.mark.postgres
T0 = datetime(2025, 2, 3, 9, 0, tzinfo=UTC)
WRITERS = 6
ROUNDS = 15


@pytest.fixture
async def engine(migrated_postgres_url: str) -> AsyncIterator[AsyncEngine]:
    engine = create_engine(migrated_postgres_url, pool_size=WRITERS + 2)
    try:
        yield engine
    finally:
        await engine.dispose()


async def test_writers_registering_overlapping_new_vens_store_every_batch(
    engine: AsyncEngine,
) -> None:
    rng = random.Random(7)
    stores = [SqlTelemetryStore(engine) for _ in range(WRITERS)]
    expected: set[tuple[str, datetime]] = set()
    for round_ in range(ROUNDS):
        # each round, 12 new VENs interleaved (by id) with 12 registered ones
        known = [f"v{round_:02d}-{n:02d}a" for n in range(12)]
        new = [f"v{round_:02d}-{n:02d}b" for n in range(12)]
        first = await stores[0].append([TelemetrySample(v, T0, used_power_kw=1.0) for v in known])
        assert first.stored == len(known)
        expected |= {(v, T0) for v in known}
        batches = []
        for w in range(WRITERS):
            at = T0 + timedelta(seconds=w + 1)
            vens = rng.sample(known, 6) + rng.sample(new, 6)
            batches.append([TelemetrySample(v, at, used_power_kw=2.0) for v in vens])
            expected |= {(v, at) for v in vens}
        results = await asyncio.gather(
            *(store.append(batch) for store, batch in zip(stores, batches, strict=True))
        )
        for result, batch in zip(results, batches, strict=True):
            assert (result.stored, result.duplicates, result.refused) == (len(batch), 0, ())
    for store in stores:
        await store.close()
    async with engine.connect() as conn:
        rows = await conn.execute(text("SELECT ven_id, timestamp FROM ven_telemetry"))
        assert {(ven, at.astimezone(UTC)) for ven, at in rows} == expected
        registered = {row[0] for row in await conn.execute(text("SELECT id FROM vens"))}
    assert registered == {ven for ven, _ in expected}
