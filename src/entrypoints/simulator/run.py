"""``run_simulator``: the fleet wired to a broker from :class:`Settings`, for
the ``gridcore ven`` command and the zero-setup demo; with ``processes`` above
1, the fleet's shards each in a process of its own (:mod:`.processes`)."""

from __future__ import annotations

import asyncio
import logging
import secrets
from dataclasses import replace
from datetime import datetime

from adapters.memory.broker import InMemoryBroker
from adapters.mqtt.transport import AiomqttTransport
from adapters.system import SystemClock
from entrypoints.settings import Settings
from entrypoints.simulator.backfill import BROKER_RATE, backfill_broker
from entrypoints.simulator.fleet import Connect, FleetConfig, run_fleet
from entrypoints.simulator.processes import run_shards
from entrypoints.worker import mqtt_connection
from gridcore.ports import Clock, MessageTransport

log = logging.getLogger("entrypoints.simulator")


def local_utc_offset_s() -> float:
    """This machine's UTC offset now, so simulated homes keep local hours."""
    offset = datetime.now().astimezone().utcoffset()
    return offset.total_seconds() if offset is not None else 0.0


def connector(settings: Settings, prefix: str, broker: InMemoryBroker | None = None) -> Connect:
    """How the fleet opens connection number n: to ``broker`` when given (the
    demo's in-process broker), else to the broker of the ``MQTT_*`` settings.

    Each connection gets its own client id (``{prefix}-sim-{n}-{random}``),
    never ``MQTT_CLIENT_ID``: reusing the worker's id would make the broker
    drop the worker (session takeover). Sessions are clean; the transport
    resubscribes after a reconnect and the backend re-sends unanswered
    commands.
    """
    run_id = secrets.token_hex(3)
    if broker is not None:
        memory = broker

        async def connect_memory(n: int) -> MessageTransport:
            return memory.connect(f"{prefix}-sim-{n}-{run_id}")

        return connect_memory
    if settings.mqtt_host is None:
        raise ValueError(
            "the VEN simulator needs a broker: set MQTT_BROKER (or IOT_ENDPOINT), "
            "or run `gridcore demo` for the in-process broker"
        )
    base = mqtt_connection(settings)

    async def connect_mqtt(n: int) -> MessageTransport:
        conn = replace(base, client_id=f"{prefix}-sim-{n}-{run_id}", persistent=False)
        return await AiomqttTransport.connect(conn)

    return connect_mqtt


async def run_simulator(
    settings: Settings,
    count: int,
    prefix: str = "ven",
    seed: int = 0,
    interval: float = 5.0,
    reject_fraction: float = 0.0,
    silent_fraction: float = 0.0,
    *,
    broker: InMemoryBroker | None = None,
    start_index: int = 1,
    vens_per_connection: int = 500,
    utc_offset_s: float | None = None,
    clock: Clock | None = None,
    ready: asyncio.Event | None = None,
    backfill_days: float = 0.0,
    backfill_rate: float = BROKER_RATE,
    processes: int = 1,
    batch: int = 1,
) -> None:
    """Simulate ``count`` VENs (``{prefix}-1``..) until cancelled.

    Raises ``ValueError`` for bad options or a missing broker setting, and
    ``ConnectionError`` when the broker cannot be reached. Telemetry goes to
    ``MQTT_TOPIC_METERING`` (default ``volttron/metering``) so the worker
    reads what the simulator writes. Homes keep the hours of ``utc_offset_s``
    (default: this machine's time zone; fix it for runs reproducible across
    machines). ``ready`` is set once every VEN listens to its command topic.

    ``backfill_days``: first publish that many days of past telemetry (one
    sample per VEN per 5 minutes, :func:`backfill_broker`) at most
    ``backfill_rate`` samples a second on a connection of its own, while the
    live VENs already run; a backfill that fails is logged, the VENs go on.

    ``processes``: split the fleet into that many shards, each simulated by a
    process of its own (one core runs a few thousand VENs at the documents' 5 s
    cadence: a larger fleet needs more processes, a longer interval, or both);
    this process then only watches them (and backfills). Not with ``broker``,
    which lives in this process.

    ``batch``: metering samples per ``volttron/metering`` message (1: one
    message a sample, as the documents send them).
    """
    config = FleetConfig(
        count=count,
        prefix=prefix,
        seed=seed,
        interval=interval,
        reject_fraction=reject_fraction,
        silent_fraction=silent_fraction,
        start_index=start_index,
        vens_per_connection=vens_per_connection,
        metering_topic=settings.mqtt_topic_metering,
        utc_offset_s=local_utc_offset_s() if utc_offset_s is None else utc_offset_s,
        batch=batch,
    )
    if backfill_rate <= 0:
        raise ValueError("the backfill rate must be a positive number of samples a second")
    if not 1 <= processes <= count:
        raise ValueError("processes must be at least 1 and at most the number of VENs")
    if processes > 1 and broker is not None:
        raise ValueError("an in-process broker serves one process: run the fleet in one")
    connect = connector(settings, prefix, broker)
    live_fleet = (
        run_fleet(config, connect, clock=clock, ready=ready)
        if processes == 1
        else run_shards(settings, config, processes, ready=ready)
    )
    if backfill_days <= 0:
        await live_fleet
        return
    live = asyncio.create_task(live_fleet)
    history = asyncio.create_task(
        _backfill(config, connect, clock or SystemClock(), backfill_days, backfill_rate)
    )
    try:
        await live
    finally:
        history.cancel()
        await asyncio.gather(history, return_exceptions=True)


async def _backfill(
    config: FleetConfig, connect: Connect, clock: Clock, days: float, rate: float
) -> None:
    try:
        transport = await connect(config.connections)  # one beyond the live ones
    except (ConnectionError, OSError) as exc:
        log.error("backfill failed: %s; the live VENs go on", exc)
        return
    try:
        log.info(
            "backfill: publishing %g day(s) of history for %d VEN(s), at most %g samples a second",
            days, config.count, rate,
        )  # fmt: skip
        result = await backfill_broker(
            transport, config, now=clock.now(), days=days, rate=rate, progress=log.info
        )
        log.info("%s", result.summary(days))
    except (ConnectionError, OSError) as exc:
        log.error("backfill failed: %s; the live VENs go on", exc)
    finally:
        try:
            await transport.close()
        except Exception:  # already gone
            log.debug("closing the backfill connection failed", exc_info=True)
