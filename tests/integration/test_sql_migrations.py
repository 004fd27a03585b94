"""The Alembic chain: upgrades and downgrades completely on both dialects, and
produces exactly the schema of ``adapters.sql.tables`` (no autogenerate diff)."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import inspect, text
from sqlalchemy.engine import Connection

from adapters.sql.engine import create_engine
from adapters.sql.migrate import DatabaseUnavailable, downgrade, head_revision, migrate
from adapters.sql.partitions import partition_of
from adapters.sql.tables import PARTITIONED_PRIMARY_KEYS, metadata


def _not_a_partition(name: str | None, type_: str, parent_names: object) -> bool:
    return not (type_ == "table" and name is not None and partition_of(name) is not None)


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite+aiosqlite:///{tmp_path / 'gridcore.db'}"
    return str(request.getfixturevalue("postgres_url"))


def _state(conn: Connection) -> dict[str, Any]:
    context = MigrationContext.configure(
        conn,
        opts={
            "compare_type": True,
            "target_metadata": metadata,
            "include_name": _not_a_partition,
        },
    )
    inspector = inspect(conn)
    tables = {t for t in inspector.get_table_names() if partition_of(t) is None}
    return {
        "revision": context.get_current_revision(),
        "tables": sorted(tables - {"alembic_version"}),
        "diff": compare_metadata(context, metadata),
        # Alembic does not compare primary keys; on PostgreSQL the partitioned
        # tables' keys carry the partition key (tables.PARTITIONED_PRIMARY_KEYS).
        "keys": {
            t: tuple(inspector.get_pk_constraint(t)["constrained_columns"])
            for t in PARTITIONED_PRIMARY_KEYS
            if t in tables
        },
        "dialect": conn.dialect.name,
    }


async def _inspect(url: str) -> dict[str, Any]:
    engine = create_engine(url)
    try:
        async with engine.connect() as conn:
            return await conn.run_sync(_state)
    finally:
        await engine.dispose()


async def test_upgrade_matches_the_models(url: str) -> None:
    messages: list[str] = []
    await migrate(url, log=messages.append)
    state = await _inspect(url)
    assert state["revision"] == head_revision()
    assert state["tables"] == sorted(metadata.tables)
    assert state["diff"] == []
    assert any("migrated" in m for m in messages)
    if state["dialect"] == "postgresql":
        assert state["keys"] == PARTITIONED_PRIMARY_KEYS
    else:
        assert state["keys"] == {
            t: tuple(c.name for c in metadata.tables[t].primary_key)
            for t in PARTITIONED_PRIMARY_KEYS
        }


async def test_downgrade_and_upgrade_the_whole_chain(url: str) -> None:
    await migrate(url, log=lambda _: None)
    await downgrade(url, "base")
    state = await _inspect(url)
    assert state["tables"] == []
    assert state["revision"] is None
    await migrate(url, log=lambda _: None)
    messages: list[str] = []
    await migrate(url, log=messages.append)  # a second run changes nothing
    assert messages == [m for m in messages if "up to date" in m]
    assert (await _inspect(url))["diff"] == []


async def test_two_migrators_at_once_take_turns(postgres_url: str) -> None:
    """Serve and worker containers both migrate at start: on an empty database
    one migrates and the other, waiting on the advisory lock, finds it done
    (without the lock the second fails on a table the first has just made)."""
    logs: list[list[str]] = [[], []]
    await asyncio.gather(*(migrate(postgres_url, log=lines.append) for lines in logs))
    state = await _inspect(postgres_url)
    assert state["revision"] == head_revision()
    assert state["diff"] == []
    said = sorted(" ".join(lines) for lines in logs)
    assert "up to date" in said[1] or "up to date" in said[0]
    assert any("migrated" in s for s in said)


async def test_migrate_waits_and_says_what_for() -> None:
    messages: list[str] = []
    with pytest.raises(DatabaseUnavailable, match="after 3 attempts"):
        await migrate(
            "postgresql+psycopg://postgres@127.0.0.1:1/gridcore",
            retries=3,
            wait_seconds=0.01,
            connect_timeout=1,
            log=messages.append,
        )
    assert len(messages) == 2
    assert messages[0].startswith("waiting for PostgreSQL at 127.0.0.1:1/gridcore (attempt 1/3): ")
    assert "refused" in messages[0].lower()


# Rows of every time-kept table over several days, with the awkward stamps:
# a microsecond either side of midnight, a clock stuck in 2001, one a few
# minutes ahead, and days over a year old (these stay in the catch-all).
_ODD_STAMPS = """
SELECT now() - n * interval '1 day' FROM generate_series(0, 5) n
UNION ALL SELECT date_trunc('day', now(), 'UTC') - interval '1 microsecond'
UNION ALL SELECT date_trunc('day', now(), 'UTC')
UNION ALL SELECT now() + interval '4 minutes'
UNION ALL SELECT '2001-01-01T00:00:00Z'::timestamptz
UNION ALL SELECT now() - interval '500 days'
"""
_FILL = [
    f"""INSERT INTO ven_telemetry (ven_id, timestamp, used_power_kw, raw_payload)
        SELECT 'ven-' || v, s, v * 1.5, '{{"x": ' || v || '}}'
        FROM ({_ODD_STAMPS}) AS t(s), generate_series(1, 3) v""",
    """INSERT INTO ven_load_samples (ven_id, timestamp, load_id, telemetry_id, name, enabled)
        SELECT ven_id, timestamp, 'ev', id, 'EV', true FROM ven_telemetry""",
    """INSERT INTO ven_statuses (ven_id, status, details, timestamp)
        SELECT ven_id, 'online', '{"a": 1}', timestamp FROM ven_telemetry""",
    """INSERT INTO load_snapshots (ven_id, load_id, timestamp, name, raw_payload)
        SELECT ven_id, 'ev', timestamp, 'EV', '{"b": 2}' FROM ven_telemetry""",
    """INSERT INTO ven_acks (ven_id, event_id, correlation_id, op, status, timestamp,
                             circuits_curtailed)
        SELECT ven_id, 'evt-00000001', 'evt-00000001-' || id, 'shed', 'ok', timestamp,
               '["ev"]' FROM ven_telemetry""",
]
_TIME_KEPT = ("ven_telemetry", "ven_load_samples", "ven_statuses", "load_snapshots", "ven_acks")


async def _contents(url: str) -> dict[str, list[tuple[Any, ...]]]:
    engine = create_engine(url)
    try:
        async with engine.connect() as conn:
            return {
                t: [
                    tuple(r)
                    for r in await conn.execute(text(f"SELECT * FROM {t} ORDER BY 1, 2, 3"))
                ]
                for t in _TIME_KEPT
            }
    finally:
        await engine.dispose()


@pytest.mark.postgres
async def test_partitioning_an_existing_database_keeps_every_row(postgres_url: str) -> None:
    await migrate(postgres_url, revision="0009", log=lambda _: None)
    engine = create_engine(postgres_url)
    try:
        async with engine.begin() as conn:
            for statement in _FILL:
                await conn.execute(text(statement))
    finally:
        await engine.dispose()
    before = await _contents(postgres_url)
    assert all(len(rows) == 3 * 11 for rows in before.values())

    await migrate(postgres_url, log=lambda _: None)

    assert await _contents(postgres_url) == before
    engine = create_engine(postgres_url)
    try:
        async with engine.begin() as conn:
            where = dict(
                (
                    await conn.execute(
                        text(
                            "SELECT tableoid::regclass::text, count(*) FROM ven_telemetry"
                            " GROUP BY 1"
                        )
                    )
                ).all()
            )
            # ids go on from where they were
            newest = await conn.scalar(text("SELECT max(id) FROM ven_acks"))
            fresh = await conn.scalar(
                text(
                    "INSERT INTO ven_acks (ven_id, op, status, timestamp)"
                    " VALUES ('v', 'shed', 'ok', now()) RETURNING id"
                )
            )
            await conn.execute(text("DELETE FROM ven_acks WHERE id = :i"), {"i": fresh})
    finally:
        await engine.dispose()
    assert fresh > newest
    assert where.pop("ven_telemetry_default") == 3 * 2  # 2001, and 500 days ago
    assert sum(where.values()) == 3 * 9 and all(n.startswith("ven_telemetry_p") for n in where)

    await downgrade(postgres_url, "0009")
    assert await _contents(postgres_url) == before
    assert (await _inspect(postgres_url))["revision"] == "0009"
