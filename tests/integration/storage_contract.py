"""The storage backends the contract suites run against, behind one fixture.

Every storage port is exercised identically on the in-memory adapter, SQLite
(a file, migrated with Alembic) and PostgreSQL (a migrated database of the test's
own, emptied after it: tests/conftest.py's ``migrated_postgres_url``).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from adapters.memory.reports import (
    InMemoryLoadSnapshotStore,
    InMemoryReports,
    InMemoryVenStatusStore,
)
from adapters.memory.repositories import InMemoryState, InMemoryUnitOfWorkFactory
from adapters.memory.rollups import InMemoryHistoryRollup
from adapters.memory.telemetry import (
    InMemoryTelemetry,
    InMemoryTelemetryQueries,
    InMemoryTelemetryStore,
)
from adapters.sql.engine import create_engine
from adapters.sql.queries import SqlTelemetryQueries
from adapters.sql.reports import SqlLoadSnapshotStore, SqlVenStatusStore
from adapters.sql.rollups import SqlHistoryRollup
from adapters.sql.telemetry import SqlTelemetryStore
from adapters.sql.uow import SqlUnitOfWorkFactory

BACKENDS = ["memory", "sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]


@dataclass
class Backend:
    name: str
    uow: Any  # a UnitOfWorkFactory
    store: Any  # a TelemetryStore
    queries: Any  # TelemetryQueries
    statuses: Any = None  # VenStatusStore
    snapshots: Any = None  # LoadSnapshotStore
    rollup: Any = None  # HistoryRollup


async def open_backend(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Backend]:
    name = request.param
    if name == "memory":
        state, telemetry, reports = InMemoryState(), InMemoryTelemetry(), InMemoryReports()
        yield Backend(
            name,
            InMemoryUnitOfWorkFactory(state),
            InMemoryTelemetryStore(state, telemetry),
            InMemoryTelemetryQueries(state, telemetry),
            InMemoryVenStatusStore(state, reports),
            InMemoryLoadSnapshotStore(state, reports),
            InMemoryHistoryRollup(telemetry),
        )
        return
    url = str(request.getfixturevalue(f"migrated_{name}_url"))
    engine = create_engine(url)
    store = SqlTelemetryStore(engine)
    try:
        yield Backend(
            name,
            SqlUnitOfWorkFactory(engine),
            store,
            SqlTelemetryQueries(engine),
            SqlVenStatusStore(engine),
            SqlLoadSnapshotStore(engine),
            SqlHistoryRollup(engine),
        )
    finally:
        await store.close()
        await engine.dispose()
