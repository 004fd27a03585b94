"""The composition root: the one place that knows which adapter serves which
port. Chosen from settings: ``DATABASE_URL=memory://`` keeps everything in
process memory, any other URL is SQL (PostgreSQL or SQLite)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from dependency_injector import containers, providers

from adapters.memory.alerts import InMemoryVenAlertStore
from adapters.memory.openadr import InMemoryOpenAdrStore
from adapters.memory.outbox import InMemoryNotificationOutbox
from adapters.memory.performance import InMemoryPerformanceStore
from adapters.memory.reports import (
    InMemoryLoadSnapshotStore,
    InMemoryReports,
    InMemoryVenStatusStore,
)
from adapters.memory.repositories import InMemoryUnitOfWorkFactory, InProcessLease
from adapters.memory.rollups import InMemoryHistoryRollup
from adapters.memory.shadows import InMemoryShadowStore
from adapters.memory.telemetry import (
    InMemoryTelemetry,
    InMemoryTelemetryQueries,
    InMemoryTelemetryStore,
)
from adapters.system import RandomIds, SystemClock
from entrypoints.settings import Settings
from gridcore.dispatch import DispatchPolicy
from gridcore.ports import (
    DispatchLease,
    HistoryRollup,
    LoadSnapshotStore,
    NotificationOutbox,
    OpenAdrStore,
    PerformanceStore,
    ShadowStore,
    StorageRetention,
    TelemetryQueries,
    TelemetryStore,
    UnitOfWorkFactory,
    VenAlertStore,
    VenStatusStore,
)
from gridcore.ven import DEFAULT_OFFLINE_AFTER

MEMORY_URL = "memory://"


async def _nothing() -> None:
    return None


@dataclass
class Storage:
    """Every storage port, from one backend, and how to let it go."""

    uow_factory: UnitOfWorkFactory
    telemetry_store: TelemetryStore
    telemetry_queries: TelemetryQueries
    shadows: ShadowStore
    new_lease: Callable[[], DispatchLease]
    backend: str
    performance: PerformanceStore
    statuses: VenStatusStore | None = None
    load_snapshots: LoadSnapshotStore | None = None
    alerts: VenAlertStore | None = None  # ven/alerts/{venId}
    # None: nothing kept by time needs maintenance (memory storage)
    retention: StorageRetention | None = None
    # The OpenADR VTN's objects; None only where a caller assembles storage
    # without them (a process that serves no /openadr3).
    openadr: OpenAdrStore | None = None
    # The fleet's history roll-ups (gridcore.history), kept by the worker
    rollup: HistoryRollup | None = None
    # OpenADR notifications waiting for delivery (entrypoints.openadr.notifier)
    outbox: NotificationOutbox | None = None
    ping: Callable[[], Awaitable[None]] = _nothing
    close: Callable[[], Awaitable[None]] = field(default=_nothing)


def memory_storage(*, max_hold: timedelta = DEFAULT_OFFLINE_AFTER) -> Storage:
    """``max_hold``: how long a telemetry reading counts for energy (the time
    after which a silent VEN is offline, gridcore.energy)."""
    uow = InMemoryUnitOfWorkFactory()
    telemetry = InMemoryTelemetry()
    lease = InProcessLease()
    reports = InMemoryReports()
    return Storage(
        uow_factory=uow,
        telemetry_store=InMemoryTelemetryStore(uow.state, telemetry, max_hold=max_hold),
        telemetry_queries=InMemoryTelemetryQueries(uow.state, telemetry),
        shadows=InMemoryShadowStore(),
        new_lease=lease.for_worker,
        backend="memory",
        performance=InMemoryPerformanceStore(),
        statuses=InMemoryVenStatusStore(uow.state, reports),
        load_snapshots=InMemoryLoadSnapshotStore(uow.state, reports),
        alerts=InMemoryVenAlertStore(),
        openadr=InMemoryOpenAdrStore(),
        rollup=InMemoryHistoryRollup(telemetry),
        outbox=InMemoryNotificationOutbox(),
    )


def sql_storage(
    url: str,
    timeout: float,
    *,
    max_hold: timedelta = DEFAULT_OFFLINE_AFTER,
    engine_options: dict[str, Any] | None = None,
    loads_max_age: float = 0.0,
) -> Storage:
    from sqlalchemy import text

    from adapters.sql.alerts import SqlVenAlertStore
    from adapters.sql.engine import create_engine
    from adapters.sql.lease import FileLockLease, PostgresAdvisoryLease
    from adapters.sql.openadr import SqlOpenAdrStore
    from adapters.sql.outbox import SqlNotificationOutbox
    from adapters.sql.partitions import PostgresPartitions, SqliteRetention
    from adapters.sql.performance import SqlPerformanceStore
    from adapters.sql.queries import SqlTelemetryQueries
    from adapters.sql.reports import SqlLoadSnapshotStore, SqlVenStatusStore
    from adapters.sql.rollups import SqlHistoryRollup
    from adapters.sql.shadows import SqlShadowStore
    from adapters.sql.telemetry import SqlTelemetryStore
    from adapters.sql.uow import SqlUnitOfWorkFactory

    engine = create_engine(url, timeout=timeout, **(engine_options or {}))
    backend = engine.dialect.name
    if backend == "postgresql":

        def new_lease() -> DispatchLease:
            return PostgresAdvisoryLease(engine)
    elif engine.url.database in (None, "", ":memory:"):
        # An in-memory SQLite database lives in one process: so does its lease.
        new_lease = InProcessLease().for_worker
    else:
        lock_path = f"{engine.url.database}.dispatch-lock"

        def new_lease() -> DispatchLease:
            return FileLockLease(lock_path)

    async def ping() -> None:
        async with engine.connect() as conn:
            await conn.execute(text("SELECT 1"))

    telemetry_store = SqlTelemetryStore(engine, max_hold=max_hold)

    async def close() -> None:
        await telemetry_store.close()  # the connection it keeps between batches
        await engine.dispose()

    return Storage(
        uow_factory=SqlUnitOfWorkFactory(engine),
        telemetry_store=telemetry_store,
        telemetry_queries=SqlTelemetryQueries(engine, loads_max_age=loads_max_age),
        shadows=SqlShadowStore(engine),
        new_lease=new_lease,
        backend=backend,
        performance=SqlPerformanceStore(engine),
        statuses=SqlVenStatusStore(engine),
        load_snapshots=SqlLoadSnapshotStore(engine),
        alerts=SqlVenAlertStore(engine),
        retention=PostgresPartitions(engine)
        if backend == "postgresql"
        else SqliteRetention(engine),
        openadr=SqlOpenAdrStore(engine),
        rollup=SqlHistoryRollup(engine),
        outbox=SqlNotificationOutbox(engine),
        ping=ping,
        close=close,
    )


API_APPLICATION_NAME = "gridcore-api"


def api_engine_options(settings: Settings) -> dict[str, Any]:
    """An API process's database limits: a pool of GRIDCORE_API_DB_POOL_SIZE
    connections and no more (readers queue in the process, not as backends
    competing with ingest for the server's CPU), a statement timeout, and a
    name its backends show in ``pg_stat_activity``."""
    return {
        "application_name": API_APPLICATION_NAME,
        "pool_size": settings.gridcore_api_db_pool_size,
        "max_overflow": 0,
        "statement_timeout": settings.gridcore_api_statement_timeout_seconds,
    }


def build_storage(settings: Settings, *, api: bool = False) -> Storage:
    """The configured storage; ``api``: with the API process's database limits.
    With ``SHADOW_STORE=aws`` an API's shadows are AWS IoT Device Shadows
    (read by its shadow endpoint, given a configuration push's desired state);
    a worker then writes none (AWS keeps them from the VENs' updates)."""
    url = settings.resolved_database_url
    if url.startswith(MEMORY_URL):
        storage = memory_storage(max_hold=settings.offline_after)
    else:
        storage = sql_storage(
            url,
            settings.db_timeout,
            max_hold=settings.offline_after,
            engine_options=api_engine_options(settings) if api else None,
            loads_max_age=settings.gridcore_api_stats_max_age_seconds if api else 0.0,
        )
    if api and settings.shadow_store == "aws":
        storage.shadows = aws_shadows(settings)
    return storage


def aws_shadows(settings: Settings) -> ShadowStore:
    """AWS IoT Device Shadow through boto3 (AWS feeds it from the VENs'
    shadow updates itself; credentials and region the usual AWS way)."""
    from adapters.aws.shadows import Boto3ShadowStore

    endpoint = settings.iot_endpoint
    return Boto3ShadowStore(
        endpoint_url=f"https://{endpoint}" if endpoint else None, region=settings.aws_region
    )


def describe_storage(settings: Settings) -> str:
    """Where a process keeps its data, for its first log line: 'SQLite at
    ./gridcore.db', 'PostgreSQL at db:5432/gridcore' (never the password)."""
    url = settings.resolved_database_url
    if url.startswith(MEMORY_URL):
        return "process memory (DATABASE_URL=memory://: nothing is kept)"
    from adapters.sql.migrate import describe

    return describe(url)


def describe_broker(settings: Settings, client_id: str | None) -> str:
    """Which broker a process talks to, for its first log line: host:port,
    whether TLS is on, and the client id (never the password)."""
    if settings.mqtt_host is None:
        return "the in-memory broker (inside this process)"
    tls = "TLS on" if settings.mqtt_ca_cert else "TLS off"
    who = client_id or "assigned by the broker"
    return f"MQTT {settings.mqtt_host}:{settings.mqtt_port}, {tls}, client id {who}"


def dispatch_policy(settings: Settings) -> DispatchPolicy:
    return DispatchPolicy(
        offline_after=settings.offline_after,
        ack_timeout=settings.ack_timeout,
        max_retries=settings.ack_max_retries,
        reconcile_after=settings.reconcile_after,
        restore_spread=settings.restore_spread,
    )


class Container(containers.DeclarativeContainer):
    """Built per process by ``create_app`` / the worker / the CLI; nothing at import."""

    settings: providers.Dependency[Settings] = providers.Dependency(instance_of=Settings)
    clock = providers.Singleton(SystemClock)
    ids = providers.Singleton(RandomIds)
    storage = providers.Singleton(build_storage, settings=settings)
    policy = providers.Singleton(dispatch_policy, settings=settings)


def container_for(settings: Settings, **overrides: Any) -> Container:
    """A container for ``settings``; ``overrides`` replace providers by name
    (``storage=...``, ``clock=...``) for the demo and tests."""
    container = Container(settings=settings)
    for name, value in overrides.items():
        getattr(container, name).override(providers.Object(value))
    return container
