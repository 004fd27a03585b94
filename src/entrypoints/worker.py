"""The ``gridcore worker`` process: the MQTT consumer and the event
dispatcher over adapters chosen from settings.

:class:`Worker` takes its collaborators as arguments, so tests and the
container hand it in-memory or real adapters alike; the small factory
functions below build them from :class:`Settings` and are meant to be reused
by the dependency-injector container.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import gc
import hashlib
import logging
import signal
import socket
from collections.abc import Awaitable, Callable, Iterator
from datetime import timedelta
from typing import Any

from adapters.memory.broker import InMemoryBroker
from adapters.mqtt.buffering import RetryPolicy
from adapters.mqtt.commands import TransportCommandPublisher
from adapters.mqtt.consumer import (
    AlertSink,
    ConsumerConfig,
    ConsumerStats,
    LoadSnapshotSink,
    MqttConsumer,
    StatusSink,
)
from adapters.mqtt.topics import (
    ACK_FILTER,
    ALERTS_FILTER,
    LOADS_FILTER,
    SHADOW_UPDATE_FILTER,
    TELEMETRY_FILTER,
    MessageKind,
    Route,
    TopicRouter,
    classify_extra_topic,
    shared,
)
from adapters.mqtt.transport import AiomqttTransport, MqttConnection
from adapters.sql.schema import DatabaseCheck, SchemaMismatch
from entrypoints.container import Storage, container_for, describe_broker, describe_storage
from entrypoints.dispatching import build_dispatcher, run_dispatcher
from entrypoints.measuring import run_bridge_reports, run_measurer
from entrypoints.observing import ObservedLease, WorkerHttp, WorkerView
from entrypoints.retaining import run_retention, run_rollup
from entrypoints.settings import Settings
from gridcore.plausibility import ReportLimits
from gridcore.ports import (
    Clock,
    DispatchLease,
    MessageTransport,
    ShadowStore,
    TelemetryStore,
    UnitOfWorkFactory,
)

log = logging.getLogger("entrypoints.worker")

TransportFactory = Callable[[], Awaitable[MessageTransport]]
SUBSCRIPTION_QOS = 1  # the subscription caps delivery QoS; QoS 0 publishes stay QoS 0
# QoS 1 messages the broker may have in flight to the consumer (MQTT 5 Receive
# Maximum). Mosquitto's own limit, 20, is what a fleet's burst queues behind
# (and past max_queued_messages, 1,000, is dropped): with ACKs acknowledged only
# after their commit, 20 would throttle ACKs to one batch of 20 per commit.
CONSUMER_RECEIVE_MAXIMUM = 10_000


# --- factories (reused by the container) ---------------------------------------


def subscription_routes(settings: Settings) -> list[Route]:
    """What the worker subscribes to, and which handler each goes to: the
    configured topics, ``ven/ack/+`` and ``$aws/things/+/shadow/update``
    and ``ven/alerts/+`` always; loads and status topics when configured. Telemetry comes from
    the metering topic, ``ven/telemetry/+``, or both, by
    ``GRIDCORE_TELEMETRY_TOPICS``. Every filter is shared
    (``$share/<group>/...``) when ``MQTT_SHARED_GROUP`` is set."""
    group = settings.mqtt_shared_group
    telemetry = settings.gridcore_telemetry_topics
    extras = [Route(t, classify_extra_topic(t)) for t in settings.mqtt_extra_topics]
    if telemetry == "per-ven":
        # A telemetry topic with no VEN level lets any client report for any
        # venId: consuming one would undo what per-ven mode is for.
        anonymous = [
            r.topic_filter
            for r in extras
            if r.kind is MessageKind.TELEMETRY and "+" not in r.topic_filter.split("/")
        ]
        if anonymous:
            raise ValueError(
                "GRIDCORE_TELEMETRY_TOPICS=per-ven takes telemetry only from topics that "
                f"name the VEN, but MQTT_TOPICS has {', '.join(anonymous)}: remove it, "
                "or set GRIDCORE_TELEMETRY_TOPICS=both"
            )
    routes: list[Route] = []
    if telemetry != "per-ven":
        routes.append(Route(settings.mqtt_topic_metering, MessageKind.TELEMETRY))
    if telemetry != "shared":
        routes.append(Route(TELEMETRY_FILTER, MessageKind.TELEMETRY))
    routes += [Route(ACK_FILTER, MessageKind.ACK), Route(SHADOW_UPDATE_FILTER, MessageKind.SHADOW)]
    routes.append(Route(ALERTS_FILTER, MessageKind.ALERT))
    if settings.mqtt_topic_status:
        routes.append(Route(settings.mqtt_topic_status, MessageKind.STATUS))
    # The documents leave these two unused; VEN responses to events are ACKs.
    for topic in (settings.mqtt_topic_events, settings.mqtt_topic_responses):
        if topic:
            routes.append(Route(topic, MessageKind.ACK))
    if settings.backend_loads_topic:
        loads = settings.backend_loads_topic
        routes.append(Route(LOADS_FILTER if loads == "ven/loads" else loads, MessageKind.LOADS))
    routes += extras
    unique: dict[str, Route] = {}
    for route in routes:
        topic_filter = shared(route.topic_filter, group)
        unique.setdefault(topic_filter, Route(topic_filter, route.kind))
    return list(unique.values())


def mqtt_connection(settings: Settings) -> MqttConnection:
    host = settings.mqtt_host
    if host is None:
        raise ValueError("set MQTT_BROKER (or IOT_ENDPOINT) to use a real broker")
    mqtt5 = settings.mqtt_protocol_v5
    return MqttConnection(
        host=host,
        port=settings.mqtt_port,
        client_id=settings.mqtt_client_id,
        ca_cert=settings.mqtt_ca_cert,
        client_cert=settings.mqtt_client_cert,
        client_key=settings.mqtt_client_key,
        username=settings.mqtt_username,
        password=settings.mqtt_password,
        mqtt5=bool(settings.mqtt_shared_group) if mqtt5 is None else mqtt5,
        persistent=settings.mqtt_client_id is not None,
    )


def consumer_client_id(settings: Settings) -> str | None:
    """``MQTT_CLIENT_ID``, else a stable default: the broker keeps the worker's
    session (its subscriptions and the QoS 1 messages arriving meanwhile)
    across restarts of the worker and of a broker with persistence on. The
    default names the host and digests the subscriptions, so that a worker
    whose topics changed starts a session of its own instead of inheriting
    the old one's filters. Two workers on one host with the same settings
    would take the session from each other: they need MQTT_CLIENT_IDs of
    their own, as does every member of a shared group (MQTT_SHARED_GROUP),
    which gets no default."""
    if settings.mqtt_client_id:
        return settings.mqtt_client_id
    if settings.mqtt_shared_group:
        return None
    filters = "\n".join(sorted(route.topic_filter for route in subscription_routes(settings)))
    digest = hashlib.sha256(filters.encode()).hexdigest()[:8]
    return f"gridcore-worker-{socket.gethostname()[:40]}-{digest}"


def consumer_connection(settings: Settings) -> MqttConnection:
    """The consumer's connection: a persistent session under
    :func:`consumer_client_id`; ACKs and shadow updates acknowledged to the
    broker only once stored (they are few, and a lost ACK times its command
    out); reconnecting at least every second, since a broker holds at most
    ``max_queued_messages`` (1,000 on a stock Mosquitto) for it meanwhile.
    MQTT 5 unless MQTT_PROTOCOL_V5=false: its Receive Maximum lets the broker
    stream a burst to the worker instead of queueing (and dropping) it, and
    its session expiry ends a session the worker abandoned."""
    client_id = consumer_client_id(settings)
    settled = tuple(
        route.topic_filter
        for route in subscription_routes(settings)
        if route.kind in (MessageKind.ACK, MessageKind.SHADOW)
    )
    v5 = settings.mqtt_protocol_v5
    return dataclasses.replace(
        mqtt_connection(settings),
        client_id=client_id,
        persistent=client_id is not None,
        settle_after_store=settled,
        reconnect_max=1.0,
        mqtt5=True if v5 is None else v5,
        receive_maximum=CONSUMER_RECEIVE_MAXIMUM,
    )


def transport_factory(settings: Settings, broker: InMemoryBroker | None = None) -> TransportFactory:
    """aiomqtt when a broker host is configured, else the in-memory broker
    (one is created unless given: the zero-setup demo shares it)."""
    if settings.mqtt_host is None:
        memory = broker or InMemoryBroker()

        async def connect_memory() -> MessageTransport:
            return memory.connect(settings.mqtt_client_id)

        return connect_memory
    conn = consumer_connection(settings)
    # MQTT 5 is the consumer's default, not the user's choice: a broker that
    # does not speak it (RabbitMQ before 3.13, Azure IoT Hub) gets 3.1.1.
    auto = settings.mqtt_protocol_v5 is None and not settings.mqtt_shared_group
    fallback = dataclasses.replace(conn, mqtt5=False) if auto else None

    async def connect() -> MessageTransport:
        nonlocal conn, fallback
        try:
            return await AiomqttTransport.connect(conn)
        except ConnectionError as refused:
            if fallback is None:
                raise
            try:
                transport = await AiomqttTransport.connect(fallback)
            except ConnectionError:
                raise refused from None  # down, not picky: the first reason is the one
            log.warning(
                "the broker refused MQTT 5 (%s); using MQTT 3.1.1, where ACKs wait in the"
                " broker's in-flight window (max_inflight_messages): raise it (see README,"
                " 'Broker limits'), and set MQTT_PROTOCOL_V5=false to skip the attempt",
                refused,
            )
            conn, fallback = fallback, None
            return transport

    return connect


def consumer_config(settings: Settings) -> ConsumerConfig:
    return ConsumerConfig(
        batch_size=settings.mqtt_batch_size,
        batch_max_delay=settings.mqtt_batch_max_delay_ms / 1000.0,
        max_held_samples=settings.mqtt_max_held_samples,
        auto_register=settings.gridcore_auto_register,
        retry=RetryPolicy(),
        limits=ReportLimits(
            max_loads=settings.gridcore_max_loads_per_ven,
            max_future_skew=timedelta(seconds=settings.gridcore_max_future_skew_seconds),
        ),
    )


# --- the worker ------------------------------------------------------------------


# Python's cyclic collector, while the consumer runs (measured: docs/benchmarks.md,
# "The worker against a bare loop"). With the default first threshold (700
# allocations) a message's ~50 objects set off a young collection every ~14
# messages, and a backlog held for its batch is promoted and walked again by
# full collections that also walk everything the process built to start up:
# ~30 us a message in all, a fifth of the worker's CPU. Most of what a message
# allocates is freed by reference counting within the message, so collecting
# less often finds as much garbage; what start-up built lives as long as the
# process, so it is frozen out of the collector's walks.
GC_THRESHOLDS = (10_000, 20, 100)


# Workers running in this process (tests run several), and the thresholds before the first.
_tuned: list[Any] = [0, gc.get_threshold()]


@contextlib.contextmanager
def collector_tuned() -> Iterator[None]:
    """The collector tuned for ingest (``GC_THRESHOLDS``, start-up frozen)
    while any worker of the process runs, as it was afterwards."""
    if not _tuned[0]:
        _tuned[1] = gc.get_threshold()
        gc.freeze()
        gc.set_threshold(*GC_THRESHOLDS)
    _tuned[0] += 1
    try:
        yield
    finally:
        _tuned[0] -= 1
        if not _tuned[0]:
            gc.set_threshold(*_tuned[1])
            gc.unfreeze()


class Worker:
    """Connects (retrying until the broker is there), subscribes, and runs the
    consumer until :meth:`stop`; then writes what it holds and disconnects."""

    def __init__(
        self,
        *,
        transport_factory: TransportFactory,
        uow_factory: UnitOfWorkFactory,
        telemetry_store: TelemetryStore,
        shadow_store: ShadowStore | None,
        clock: Clock,
        settings: Settings,
        status_sink: StatusSink | None = None,
        load_sink: LoadSnapshotSink | None = None,
        alert_sink: AlertSink | None = None,
    ) -> None:
        self._transport_factory = transport_factory
        self._uow_factory = uow_factory
        self._telemetry_store = telemetry_store
        self._shadow_store = shadow_store
        self._clock = clock
        self.settings = settings
        self._status_sink = status_sink
        self._load_sink = load_sink
        self._alert_sink = alert_sink
        self.routes = subscription_routes(settings)
        self.transport: MessageTransport | None = None
        self.consumer: MqttConsumer | None = None
        self._stopping = asyncio.Event()
        self.ready = asyncio.Event()  # set once subscribed

    @property
    def stats(self) -> ConsumerStats | None:
        return self.consumer.stats if self.consumer is not None else None

    async def _connect(self) -> MessageTransport | None:
        delay = 0.5
        while not self._stopping.is_set():
            try:
                return await self._transport_factory()
            except (ConnectionError, OSError) as exc:
                log.warning("broker not reachable (%s); retrying in %.1fs", exc, delay)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._stopping.wait(), delay)
                delay = min(delay * 2, 30.0)
        return None

    async def run(self) -> None:
        if not self.settings.mqtt_enabled:
            log.info("MQTT_ENABLED is false: the consumer does not run")
            await self._stopping.wait()
            return
        transport = await self._connect()
        if transport is None:
            return
        self.transport = transport
        self.consumer = MqttConsumer(
            transport,
            TopicRouter(self.routes),
            uow_factory=self._uow_factory,
            telemetry_store=self._telemetry_store,
            shadow_store=self._shadow_store,
            clock=self._clock,
            config=consumer_config(self.settings),
            status_sink=self._status_sink,
            load_sink=self._load_sink,
            alert_sink=self._alert_sink,
        )
        with collector_tuned():  # through the drain after the transport closes
            try:
                for route in self.routes:
                    await transport.subscribe(route.topic_filter, SUBSCRIPTION_QOS)
                self.ready.set()
                log.info("consuming %s", ", ".join(r.topic_filter for r in self.routes))
                consuming = asyncio.create_task(self.consumer.run(), name="mqtt-consumer")
                stopping = asyncio.create_task(self._stopping.wait())
                await asyncio.wait({consuming, stopping}, return_when=asyncio.FIRST_COMPLETED)
                stopping.cancel()
                if self.settings.mqtt_shared_group and self._stopping.is_set():
                    await self._leave_group(transport)
            finally:
                await transport.close()  # ends messages(): the consumer drains and returns
            await consuming

    async def _leave_group(self, transport: MessageTransport) -> None:
        """Unsubscribe before disconnecting, so that the group's other members
        take this one's share: Mosquitto 2 goes on routing a shared
        subscription's messages to a member's persistent session while it is
        disconnected, holding them (up to max_queued_messages, then dropping
        them) until it returns. What is already on its way here is still
        received and stored before the transport closes."""
        try:
            async with asyncio.timeout(5.0):
                for route in self.routes:
                    await transport.unsubscribe(route.topic_filter)
        except (ConnectionError, TimeoutError) as exc:
            log.warning("could not leave the shared group cleanly (%s)", exc)

    def stop(self) -> None:
        self._stopping.set()


def command_transport_factory(
    settings: Settings, broker: InMemoryBroker | None = None
) -> TransportFactory:
    """The dispatcher's own connection for commands: separate from the
    consumer's persistent session (a client id may be connected only once),
    and needing no session of its own since the outbox re-sends what failed."""
    if settings.mqtt_host is None:
        return transport_factory(settings, broker)
    base = mqtt_connection(settings)
    consumer_id = consumer_client_id(settings)
    client_id = f"{consumer_id}-dispatch" if consumer_id else None
    conn = dataclasses.replace(base, client_id=client_id, persistent=False, mqtt5=False)

    async def connect() -> MessageTransport:
        return await AiomqttTransport.connect(conn)

    return connect


async def connect_with_retry(
    factory: TransportFactory, stop: asyncio.Event
) -> MessageTransport | None:
    delay = 0.5
    while not stop.is_set():
        try:
            return await factory()
        except (ConnectionError, OSError) as exc:
            log.warning("broker not reachable for commands (%s); retrying in %.1fs", exc, delay)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), delay)
            delay = min(delay * 2, 30.0)
    return None


async def run_dispatch(
    settings: Settings,
    storage: Storage,
    clock: Clock,
    stop: asyncio.Event,
    broker: InMemoryBroker | None = None,
    lease: DispatchLease | None = None,
) -> None:
    """The dispatcher of the worker, publishing over its own connection, and
    beside it the measurer (each finished event measured and kept)."""
    if not settings.event_command_enabled:
        log.info("EVENT_COMMAND_ENABLED is false: this worker dispatches no events")
        return
    transport = await connect_with_retry(command_transport_factory(settings, broker), stop)
    if transport is None:
        return
    try:
        publisher = TransportCommandPublisher(transport)
        await asyncio.gather(
            run_dispatcher(build_dispatcher(storage, publisher, settings, clock, lease), stop),
            run_measurer(storage, settings, clock, stop),
            run_bridge_reports(storage, settings, clock, stop),
        )
    finally:
        await transport.close()


async def run_worker(settings: Settings) -> None:
    """Build the worker's adapters from settings; run the consumer and the
    dispatcher until SIGINT/SIGTERM, then stop both cleanly."""
    container = container_for(settings)
    storage = container.storage()
    clock = container.clock()
    # With AWS IoT the service keeps the shadows; the worker does not write them.
    shadows = None if settings.shadow_store == "aws" else storage.shadows
    worker = Worker(
        transport_factory=transport_factory(settings),
        uow_factory=storage.uow_factory,
        telemetry_store=storage.telemetry_store,
        shadow_store=shadows,
        clock=clock,
        settings=settings,
        status_sink=storage.statuses,
        load_sink=storage.load_snapshots,
        alert_sink=storage.alerts,
    )
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError):
            loop.add_signal_handler(sig, stop.set)
    log.info("worker starting: storage %s; broker %s", describe_storage(settings),
             describe_broker(settings, consumer_client_id(settings)))  # fmt: skip
    view = WorkerView(storage.ping)
    view.worker, view.consuming = worker, settings.mqtt_enabled
    view.lease = lease = ObservedLease(storage.new_lease())
    # Up before the database check, so that a worker waiting for its database
    # answers its probes (alive, not ready) instead of refusing them.
    try:
        http = await _listen(settings, view)
    except WorkerFailedError:
        await storage.close()
        raise
    try:
        await _run_parts(settings, storage, clock, worker, stop, lease)
    finally:
        if http is not None:
            await http.close()


async def _listen(settings: Settings, view: WorkerView) -> WorkerHttp | None:
    """The worker's HTTP listener, or None with GRIDCORE_WORKER_HTTP_PORT=0;
    a port that cannot be bound ends the worker, saying which setting to change."""
    port = settings.gridcore_worker_http_port
    if port == 0:
        return None
    http = WorkerHttp(view, settings.gridcore_worker_http_host, port)
    try:
        await http.start()
    except OSError as exc:
        raise WorkerFailedError(
            f"the worker's HTTP listener cannot bind {settings.gridcore_worker_http_host}:{port}"
            f" ({exc.strerror or exc}): set GRIDCORE_WORKER_HTTP_PORT (or --http-port) to a free"
            " port, or 0 for none"
        ) from None
    return http


async def _run_parts(
    settings: Settings,
    storage: Storage,
    clock: Clock,
    worker: Worker,
    stop: asyncio.Event,
    lease: DispatchLease,
) -> None:
    # Nothing could be stored into a schema that is not this code's: refuse
    # (exit non-zero, saying to run `gridcore migrate`); wait for a database
    # that does not answer yet, as for the broker.
    check = DatabaseCheck.of(storage.uow_factory, timeout=settings.db_timeout)
    try:
        ready = check is None or await check.wait_until_ready(stop)
    except SchemaMismatch:
        await storage.close()
        raise
    if not ready:
        await storage.close()
        return
    consuming = asyncio.create_task(worker.run(), name="consumer")
    dispatching = asyncio.create_task(
        run_dispatch(settings, storage, clock, stop, lease=lease), name="dispatcher"
    )
    retaining = asyncio.create_task(
        run_retention(storage.retention, settings.retention, clock, stop,
                      interval=settings.gridcore_retention_interval_seconds)
        if storage.retention is not None else stop.wait(),
        name="retention",
    )  # fmt: skip
    rolling = asyncio.create_task(
        run_rollup(storage.rollup, clock, stop,
                   interval=settings.gridcore_rollup_interval_seconds)
        if storage.rollup is not None else stop.wait(),
        name="rollup",
    )  # fmt: skip
    stopping = asyncio.create_task(stop.wait(), name="stop")
    failure: str | None = None
    try:
        running: set[asyncio.Task[Any]] = {consuming, dispatching, stopping}
        while failure is None and not stop.is_set():
            _, running = await asyncio.wait(running, return_when=asyncio.FIRST_COMPLETED)
            failure = _failure(consuming, dispatching, stopped=stop.is_set())
        if failure is not None:
            log.error("%s; the worker exits", failure)
    finally:
        log.info("worker stopping")
        stop.set()
        worker.stop()
        await asyncio.gather(
            consuming, dispatching, retaining, rolling, stopping, return_exceptions=True
        )
        await storage.close()
        log.info("worker stopped; %s", _totals(worker.stats))
    if failure is not None:
        # Exit non-zero, so that a supervisor restarts it: a live process that
        # stopped consuming would look healthy while every VEN's data is lost.
        raise WorkerFailedError(failure)


def _totals(stats: ConsumerStats | None) -> str:
    """What this worker took from the broker and what became of it: over a
    shared subscription the workers' totals add up to what was published."""
    if stats is None:
        return "it consumed nothing"
    kinds = ", ".join(f"{kind} {n}" for kind, n in sorted(stats.by_kind.items()))
    w = stats.writes
    return (
        f"received {stats.received} ({kinds or 'none'}); stored {w.stored}, "
        f"duplicates {w.duplicates}, dead letters {stats.dead_lettered}"
    )


class WorkerFailedError(RuntimeError):
    """The consumer or the dispatcher ended without being asked to."""


def _failure(
    consuming: asyncio.Task[None], dispatching: asyncio.Task[None], *, stopped: bool
) -> str | None:
    """Why the worker must exit, if a part of it ended on its own: a part that
    raised, or the consumer returning (the dispatcher returns when disabled)."""
    for name, task in (("the MQTT consumer", consuming), ("the dispatcher", dispatching)):
        if task.done() and not task.cancelled() and task.exception() is not None:
            exc = task.exception()
            log.error("%s failed", name, exc_info=exc)
            return f"{name} failed: {type(exc).__name__}: {exc}"
    if consuming.done() and not stopped:
        return "the MQTT consumer ended unexpectedly"
    return None
