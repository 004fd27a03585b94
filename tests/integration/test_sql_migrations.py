"""The Alembic chain: upgrades and downgrades completely on both dialects, and
produces exactly the schema of ``adapters.sql.tables`` (no autogenerate diff)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import inspect
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
