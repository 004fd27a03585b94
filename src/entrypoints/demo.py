"""`gridcore demo`: the whole system in one process, no services needed.

A SQLite file (kept between runs), the in-memory broker, the worker (consumer
and dispatcher), simulated VENs, and the API on http://127.0.0.1:8000 with
access control off: it binds to loopback, and refuses any other ``--host``
without ``--insecure-open-access`` (or GRIDCORE_ALLOW_OPEN_ACCESS=true).

Before anything serves, the VENs' history of the last ``backfill_days`` days
(10 by default) is written into the store where the database has none, so the
first event has a 10-in-10 baseline (:mod:`entrypoints.simulator.backfill`)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from collections.abc import Iterator
from pathlib import Path

import uvicorn

from adapters.memory.broker import InMemoryBroker
from adapters.sql.migrate import migrate
from entrypoints.api.app import create_app
from entrypoints.api.server import check_access
from entrypoints.container import Storage, container_for
from entrypoints.settings import Settings
from entrypoints.simulator import FleetConfig, run_simulator
from entrypoints.simulator.backfill import backfill_store
from entrypoints.simulator.run import local_utc_offset_s
from entrypoints.worker import Worker, run_dispatch, transport_factory
from gridcore.ports import Clock

log = logging.getLogger("gridcore.demo")

DEMO_SEED = 1


class _ApiServer(uvicorn.Server):
    """uvicorn without its own signal handlers: the demo stops all its parts."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


def demo_settings(database: str) -> Settings:
    """The demo's own settings: what the environment says about databases and
    brokers is deliberately ignored, so the demo never touches production."""
    return Settings(
        database_url=f"sqlite+aiosqlite:///{Path(database).resolve()}",
        mqtt_broker=None,
        iot_endpoint=None,
        mqtt_client_id=None,
        mqtt_enabled=True,
        event_command_enabled=True,
        gridcore_auth="disabled",
        shadow_store="local",
        # VENs report every 5 s; shorter ACK deadlines keep the demo lively.
        ack_timeout_seconds=10.0,
    )


def _say(line: str) -> None:
    print(line, flush=True)


async def backfill_history(storage: Storage, config: FleetConfig, days: float, clock: Clock) -> int:
    """Write the fleet's history of the last ``days`` days where the store has
    none (after each VEN's newest sample, so a second run fills only the gap);
    returns the samples written. A second pass covers the minutes the first
    one took, so history runs up to the live telemetry."""
    ven_ids = [
        config.ven_id(n) for n in range(config.start_index, config.start_index + config.count)
    ]
    written = 0
    for attempt in range(2):
        newest = await storage.telemetry_queries.latest_panels(ven_ids)
        since = {ven_id: panel.timestamp for ven_id, panel in newest.items()}
        if attempt == 0:
            _say(f"writing up to {days:g} day(s) of history for {config.count} VENs ...")
        result = await backfill_store(
            storage.telemetry_store, config, now=clock.now(), days=days, since=since,
            progress=_say,
        )  # fmt: skip
        written += result.samples
        if attempt == 0:
            _say(result.summary(days))
    return written


def banner(host: str, port: int, vens: int, database: str) -> str:
    base = f"http://{host}:{port}"
    return f"""
  the console:     {base}/   (open it in a browser: fleet, events, VENs)

gridcore demo is running: {vens} simulated VENs, SQLite at {database}, API at {base}

  network now:     curl -s {base}/api/stats/network
  the fleet:       curl -s '{base}/api/vens?limit=5'
  API docs:        {base}/docs

  create a DR event (10 kW, starting now, for 15 minutes):
    curl -s -X POST {base}/api/events -H 'Content-Type: application/json' -d "{{
      \\"startTime\\": \\"$(date -u +%Y-%m-%dT%H:%M:%SZ)\\",
      \\"endTime\\": \\"$(date -u -d '+15 minutes' +%Y-%m-%dT%H:%M:%SZ)\\",
      \\"requestedReductionKw\\": 10}}"
  then: curl -s {base}/api/events/<id>   and   curl -s {base}/api/events/<id>/acks

Ctrl-C stops it; running it again keeps the data.
"""


async def run_demo(
    *,
    host: str = "127.0.0.1",
    port: int = 8000,
    vens: int = 50,
    database: str = "gridcore-demo.db",
    open_access: bool = False,
    backfill_days: float = 10.0,
) -> None:
    settings = demo_settings(database)
    check_access(settings, host, open_access=open_access, demo=True)  # before any work
    print(f"preparing the SQLite database {database} ...", flush=True)
    await migrate(settings.resolved_database_url, retries=1, log=lambda line: print(line))

    broker = InMemoryBroker()
    container = container_for(settings)
    storage = container.storage()
    stop = asyncio.Event()
    utc_offset_s = local_utc_offset_s()  # the same hours for the history and the live VENs
    if backfill_days > 0:
        fleet = FleetConfig(count=vens, prefix="ven", seed=DEMO_SEED, utc_offset_s=utc_offset_s)
        try:
            await backfill_history(storage, fleet, backfill_days, container.clock())
        except BaseException:
            await storage.close()
            raise

    worker = Worker(
        transport_factory=transport_factory(settings, broker),
        uow_factory=storage.uow_factory,
        telemetry_store=storage.telemetry_store,
        shadow_store=storage.shadows,
        clock=container.clock(),
        settings=settings,
        status_sink=storage.statuses,
        load_sink=storage.load_snapshots,
        alert_sink=storage.alerts,
    )
    server = _ApiServer(
        uvicorn.Config(
            create_app(settings, container),
            host=host,
            port=port,
            log_config=None,
            access_log=False,
            lifespan="on",
        )
    )
    # The demo owns Ctrl-C: stop every part in order rather than die mid-write.
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError):
            loop.add_signal_handler(sig, stop.set)

    tasks = [
        asyncio.create_task(worker.run(), name="worker"),
        asyncio.create_task(
            run_dispatch(settings, storage, container.clock(), stop, broker),
            name="dispatcher",
        ),
        asyncio.create_task(
            run_simulator(
                settings,
                vens,
                prefix="ven",
                seed=DEMO_SEED,
                broker=broker,
                utc_offset_s=utc_offset_s,
            ),
            name="vens",
        ),
        asyncio.create_task(server.serve(), name="api"),
    ]
    try:
        await worker.ready.wait()
        # uvicorn offers no "started" event to wait on; it sets a flag.
        while not server.started and not any(t.done() for t in tasks):  # noqa: ASYNC110
            await asyncio.sleep(0.05)
        if server.started:
            print(banner(host, port, vens, database), flush=True)
        done, _ = await asyncio.wait(
            [*tasks, asyncio.create_task(stop.wait())], return_when=asyncio.FIRST_COMPLETED
        )
        for task in done:
            if task in tasks and task.exception() is not None:
                raise task.exception()  # type: ignore[misc]
    finally:
        print("stopping ...", flush=True)
        stop.set()
        server.should_exit = True
        worker.stop()
        tasks[2].cancel()  # the VENs just go quiet
        await asyncio.gather(*tasks, return_exceptions=True)
        await storage.close()
        print("stopped.", flush=True)
