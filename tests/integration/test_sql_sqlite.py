"""SQLite specifics: foreign keys are enforced, timestamps stay aware UTC, and
naive timestamps are refused rather than guessed."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest
from sqlalchemy import select, text
from sqlalchemy.exc import IntegrityError, StatementError

from adapters.sql.engine import create_engine
from adapters.sql.tables import dead_letters, ven_loads


@pytest.fixture
def url(migrated_sqlite_url: str) -> str:
    return migrated_sqlite_url


async def test_foreign_keys_are_enforced(url: str) -> None:
    engine = create_engine(url)
    try:
        async with engine.connect() as conn:
            assert (await conn.execute(text("PRAGMA foreign_keys"))).scalar() == 1
            assert (await conn.execute(text("PRAGMA journal_mode"))).scalar() == "wal"
            with pytest.raises(IntegrityError):
                await conn.execute(
                    ven_loads.insert().values(
                        ven_id="nobody",
                        load_id="l1",
                        type="ev",
                        shed_capability_kw=0.0,
                        current_power_kw=0.0,
                        critical=False,
                        enabled=True,
                    )
                )
    finally:
        await engine.dispose()


async def test_timestamps_round_trip_aware_utc_and_naive_ones_are_refused(url: str) -> None:
    engine = create_engine(url)
    local = datetime(2025, 10, 20, 8, 0, 0, 123456, tzinfo=timezone(timedelta(hours=-7)))
    try:
        async with engine.begin() as conn:
            await conn.execute(
                dead_letters.insert().values(topic="t", payload=b"", reason="r", received_at=local)
            )
            got = (await conn.execute(select(dead_letters.c.received_at))).scalar_one()
            with pytest.raises(StatementError, match="naive"):
                await conn.execute(
                    dead_letters.insert().values(
                        topic="t", payload=b"", reason="r", received_at=datetime(2025, 1, 1)
                    )
                )
    finally:
        await engine.dispose()
    assert got == local
    assert got.tzinfo is UTC
    assert got == datetime(2025, 10, 20, 15, 0, 0, 123456, tzinfo=UTC)
