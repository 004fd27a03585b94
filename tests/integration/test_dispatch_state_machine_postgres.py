"""The dispatcher held to the invariants of tests/dispatch_machine.py on
PostgreSQL: fewer, shorter examples than the in-memory run, all in one database
(migrated once, its tables emptied before each example), not shrunk."""

from __future__ import annotations

import asyncio

import pytest
from hypothesis import Phase, settings
from hypothesis.stateful import run_state_machine_as_test
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine
from tests.dispatch_machine import PHASES, DispatchMachine

from adapters.sql.engine import create_engine
from adapters.sql.migrate import migrate
from adapters.sql.uow import SqlUnitOfWorkFactory
from gridcore.ports import UnitOfWorkFactory

# What the machine writes: events, their commands, and ACKs.
TABLES = "events, commands, ven_acks"


async def _empty(engine: AsyncEngine) -> None:
    async with engine.begin() as conn:
        # CASCADE: tables that refer to events (event_performance, 0008) go too.
        await conn.execute(text(f"TRUNCATE {TABLES} CASCADE"))


@pytest.mark.postgres
@pytest.mark.slow
def test_dispatch_keeps_its_invariants_on_postgres(postgres_url: str) -> None:
    loop = asyncio.new_event_loop()
    try:
        loop.run_until_complete(migrate(postgres_url, retries=1, log=lambda _: None))
        engine = create_engine(postgres_url)

        class OnPostgres(DispatchMachine):
            def open_store(self) -> tuple[asyncio.AbstractEventLoop, UnitOfWorkFactory]:
                loop.run_until_complete(_empty(engine))
                return loop, SqlUnitOfWorkFactory(engine)

        try:
            run_state_machine_as_test(
                OnPostgres,
                settings=settings(
                    max_examples=15,
                    stateful_step_count=15,
                    deadline=None,
                    # A shrink re-runs examples against the database for minutes;
                    # 15 steps read as they are, and the in-memory run shrinks.
                    phases=[p for p in PHASES if p is not Phase.shrink],
                ),
            )
        finally:
            loop.run_until_complete(engine.dispose())
    finally:
        loop.close()
