"""Alembic environment, configured in code (see ``adapters.sql.migrate``): no
alembic.ini is needed at run time. One chain serves PostgreSQL and SQLite;
on SQLite, ALTERs run in batch mode (copy-and-move), as SQLite needs."""

from __future__ import annotations

import asyncio

from alembic import context
from sqlalchemy.engine import Connection

from adapters.sql.engine import create_engine
from adapters.sql.partitions import partition_of
from adapters.sql.tables import metadata


def include_name(name: str | None, type_: str, parent_names: object) -> bool:
    """Compare tables, not the days they are partitioned into (which the
    worker makes and drops, adapters.sql.partitions)."""
    return not (type_ == "table" and name is not None and partition_of(name) is not None)


def _run(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=metadata,
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
        include_name=include_name,
        transaction_per_migration=False,
    )
    with context.begin_transaction():
        context.run_migrations()


async def _run_async(url: str) -> None:
    engine = create_engine(url)
    try:
        async with engine.connect() as conn:
            await conn.run_sync(_run)
            await conn.commit()
    finally:
        await engine.dispose()


def main() -> None:
    config = context.config
    if context.is_offline_mode():
        context.configure(
            url=config.get_main_option("sqlalchemy.url"),
            target_metadata=metadata,
            literal_binds=True,
        )
        with context.begin_transaction():
            context.run_migrations()
        return
    connection = config.attributes.get("connection")
    if connection is not None:  # handed over by adapters.sql.migrate
        _run(connection)
        return
    url = config.get_main_option("sqlalchemy.url")
    if not url:
        raise RuntimeError("no database: set sqlalchemy.url or pass a connection")
    asyncio.run(_run_async(url))


main()
