"""Benchmark: dispatching one DR event to 10,000 online VENs over Mosquitto,
and taking their 10,000 ACKs back into PostgreSQL.

The worker is composed as ``gridcore worker`` composes it (the MQTT consumer
:class:`entrypoints.worker.Worker` and the dispatcher of
:func:`entrypoints.worker.run_dispatch`: ``Dispatcher`` with the PostgreSQL
lease, ``TransportCommandPublisher`` over its own ``AiomqttTransport``), in
this process. A second process (paho) stands for the fleet: it subscribes to
``ven/cmd/#`` and, when told to, publishes one ACK per command on
``ven/ack/{venId}`` as fast as it can at QoS 1.

1. dispatch: ``--vens`` VENs are made online by writing their telemetry
   through ``SqlTelemetryStore`` (3 kW of sheddable load each); an event of
   1 kW per VEN is created to start ``--lead`` seconds later. Reported: from
   the event's start time to the LAST command received by the subscriber.
2. ACKs: from the first ACK published to every one of them stored (the
   ledger's commands ACKed and the ``ven_acks`` rows, counted in SQL).

Usage: ``python benchmarks/bench_dispatch.py [--vens 10000] [--profile out.prof]``
Needs ``mosquitto`` on PATH (started with its own config: unlimited queues)
or ``--mqtt-port`` of a running broker, and PostgreSQL (GRIDCORE_TEST_PG_* or
127.0.0.1:5432); creates and drops its own database. VEN ids are unique per
run, so a shared broker is fine. A stock Mosquitto (``max_queued_messages``
1000 per client) drops part of a 10,000-ACK burst before the worker reads
it; those commands are then re-sent at their ACK deadline.
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import json
import logging
import multiprocessing as mp
import os
import pstats
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

import psycopg

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from brokers import start_mosquitto

from adapters.sql.migrate import migrate
from adapters.system import RandomIds, SystemClock
from entrypoints.container import Storage, sql_storage
from entrypoints.settings import Settings
from entrypoints.worker import Worker, run_dispatch, transport_factory
from gridcore.services import create_event
from gridcore.telemetry import LoadSample, TelemetrySample

PG_HOST = os.environ.get("GRIDCORE_TEST_PG_HOST", "127.0.0.1")
PG_PORT = int(os.environ.get("GRIDCORE_TEST_PG_PORT", "5432"))
PG_USER = os.environ.get("GRIDCORE_TEST_PG_USER", "postgres")
TIMEOUT = 600.0


# --- the fleet: another process ------------------------------------------------------------


def fleet_process(host: str, port: int, prefix: str, count: int, pipe: Connection) -> None:
    """Counts commands on ``ven/cmd/#`` for this run's VENs; on "ack", publishes
    one accepted ACK per event command. Reports times with ``time.time()``."""
    import threading

    import paho.mqtt.client as paho
    from paho.mqtt.enums import CallbackAPIVersion

    lock = threading.Lock()
    commands: dict[str, dict[str, Any]] = {}
    raw: dict[str, bytes] = {}  # each VEN's command as published, for the bare publisher
    received = {"event": 0, "other": 0, "first": 0.0, "last": 0.0}
    all_in = threading.Event()
    bare = {"on": False, "count": 0, "first": 0.0, "last": 0.0}
    bare_in = threading.Event()
    bare_acks = {"count": 0, "first": 0.0, "last": 0.0}
    bare_acks_in = threading.Event()
    topic_prefix = f"ven/cmd/{prefix}"
    ack_prefix = f"bench/{prefix}ack/"  # the bare ACKs' topics: no worker subscribes

    def on_message(client: paho.Client, userdata: Any, message: paho.MQTTMessage) -> None:
        now = time.time()
        if message.topic.startswith(ack_prefix):
            json.loads(message.payload)  # as the worker parses each ACK
            with lock:
                bare_acks["count"] += 1
                bare_acks["first"] = bare_acks["first"] or now
                bare_acks["last"] = now
                if bare_acks["count"] >= count:
                    bare_acks_in.set()
            return
        if not message.topic.startswith(topic_prefix):
            return  # someone else's VEN on a shared broker
        body = json.loads(message.payload)  # the same work for both publishers
        with lock:
            if bare["on"]:
                bare["count"] += 1
                bare["first"] = bare["first"] or now
                bare["last"] = now
                if bare["count"] >= count:
                    bare_in.set()
                return
            if body["op"] != "event":
                received["other"] += 1
                return
            received["event"] += 1
            received["first"] = received["first"] or now
            received["last"] = now
            commands[body["venId"]] = body
            raw[message.topic] = message.payload
            if len(commands) >= count:
                all_in.set()

    sub = paho.Client(CallbackAPIVersion.VERSION2, client_id=f"{prefix}fleet-sub")
    sub.on_message = on_message
    sub.connect(host, port)
    sub.subscribe("ven/cmd/#", qos=1)
    sub.loop_start()
    pipe.send(("subscribed",))
    if not all_in.wait(TIMEOUT):
        pipe.send(("timeout", dict(received), len(commands)))
        return
    time.sleep(1.0)  # anything arriving after the last VEN's command is a duplicate
    with lock:
        pipe.send(("commands", dict(received), len(commands)))
    if pipe.recv() != "ack":
        return
    pub = paho.Client(CallbackAPIVersion.VERSION2, client_id=f"{prefix}fleet-pub")
    pub.max_inflight_messages_set(1000)
    pub.max_queued_messages_set(0)
    pub.connect(host, port)
    pub.loop_start()
    time.sleep(0.2)
    first = time.time()
    acks: list[tuple[str, bytes]] = []
    for ven_id, cmd in commands.items():
        ack = {
            "op": "event", "status": "accepted", "venId": ven_id,
            "correlationId": cmd["correlationId"], "event_id": cmd["event_id"],
            "requested_shed_kw": cmd["shed_kw"], "actual_shed_kw": cmd["shed_kw"],
            "ts": datetime.now(UTC).isoformat().replace("+00:00", "Z"),
        }  # fmt: skip
        acks.append((f"ven/ack/{ven_id}", json.dumps(ack).encode()))
    built = time.time()
    publish_all(pub, acks)
    pipe.send(("acked", first, built, time.time()))
    pub.loop_stop()
    if pipe.recv() != "bare":
        return
    with lock:
        bare["on"] = True
    pipe.send(("payloads", list(raw.items())))
    if not bare_in.wait(TIMEOUT):
        pipe.send(("timeout", dict(bare)))
        return
    with lock:
        pipe.send(("bare", dict(bare)))
    # The ACKs' transport reference: the same ACK payloads, published the same
    # way through the same broker, to topics only this subscriber takes
    # (QoS 1, parsed on arrival): first publish to last received.
    if pipe.recv() != "bare acks":
        return
    sub.subscribe(f"{ack_prefix}#", qos=1)
    time.sleep(0.5)  # subscribed before the first publish
    pub = paho.Client(CallbackAPIVersion.VERSION2, client_id=f"{prefix}fleet-bare-ack")
    pub.max_inflight_messages_set(1000)
    pub.max_queued_messages_set(0)
    pub.connect(host, port)
    pub.loop_start()
    time.sleep(0.2)
    messages = [(ack_prefix + topic.rsplit("/", 1)[1], payload) for topic, payload in acks]
    started = time.time()
    publish_all(pub, messages)
    published = time.time()
    if not bare_acks_in.wait(TIMEOUT):
        pipe.send(("timeout", dict(bare_acks)))
        return
    with lock:
        pipe.send(("bare acks", started, published, dict(bare_acks)))
    pub.loop_stop()
    sub.loop_stop()


def publish_all(client: Any, messages: list[tuple[str, bytes]]) -> None:
    """QoS 1 publishes, waiting for each 30,000's PUBACKs before the next:
    paho numbers messages 1-65535 and refuses one whose number is still
    unacknowledged (ERR_QUEUE_SIZE), which 100,000 at once would reach."""
    for start in range(0, len(messages), 30_000):
        infos = [client.publish(t, p, qos=1) for t, p in messages[start : start + 30_000]]
        for info in infos:
            info.wait_for_publish(TIMEOUT)


def bare_publisher(
    host: str, port: int, messages: list[tuple[str, bytes]], pipe: Connection
) -> None:
    """The reference: paho publishing the same command payloads to the same
    topics at QoS 1, as many in flight as the dispatcher allows (1,000), and
    nothing else. Reports when its first publish started."""
    import paho.mqtt.client as paho
    from paho.mqtt.enums import CallbackAPIVersion

    client = paho.Client(CallbackAPIVersion.VERSION2, client_id=f"bare-{uuid.uuid4().hex[:8]}")
    client.max_inflight_messages_set(1000)
    client.max_queued_messages_set(0)
    client.connect(host, port)
    client.loop_start()
    time.sleep(0.2)
    first = time.time()
    publish_all(client, messages)
    pipe.send(("published", first, time.time()))
    client.loop_stop()


# --- the database ---------------------------------------------------------------------------


def admin() -> psycopg.Connection[Any]:
    return psycopg.connect(
        host=PG_HOST, port=PG_PORT, user=PG_USER, dbname="postgres", autocommit=True
    )


def fresh_database() -> tuple[str, str]:
    name = f"gridcore_bench_dispatch_{uuid.uuid4().hex[:8]}"
    with admin() as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    return name, f"postgresql+psycopg://{PG_USER}@{PG_HOST}:{PG_PORT}/{name}"


def drop_database(name: str) -> None:
    with admin() as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


async def make_online(storage: Storage, prefix: str, count: int) -> None:
    """Telemetry for every VEN, through the SQL adapter's store (registers them)."""
    now = datetime.now(UTC)
    loads = (
        LoadSample("ev", "EV charger", "ev", 7.2, 3.0, 3.0, True, 1, False),
        LoadSample("hvac", "HVAC", "hvac", 5.0, 2.0, 2.0, True, 9, True),  # critical: never shed
    )
    samples = [
        TelemetrySample(f"{prefix}{n:05d}", now, used_power_kw=5.0, loads=loads)
        for n in range(count)
    ]
    for start in range(0, count, 2000):
        await storage.telemetry_store.append(samples[start : start + 2000], auto_register=True)


class AckProbe:
    """What the worker of this process did with the ACKs, timed in place:
    when the first and the last ACK message reached the consumer, and every
    ``record_acks`` call (one batch, one transaction): its size, its
    duration, and when the ACKs committed so far reached the fleet's count.
    With ``statements``, the wall time of each kind of SQL statement run
    meanwhile (any task's: the dispatcher's passes too), COPY included.
    Waiting on these counters costs nothing, where polling ``count(*)`` over
    100,000 rows every few ms kept a PostgreSQL backend busy on a machine of
    two cores while the worker stored."""

    def __init__(self, statements: bool) -> None:
        self.received = 0
        self.first_received = 0.0
        self.last_received = 0.0
        self.batches: list[tuple[int, float]] = []
        self.committed = 0
        self.committed_at = 0.0
        self.statements_on = statements
        self.phases: dict[str, dict[str, list[float]]] = {}
        self.statements: dict[str, list[float]] | None = None

    def install(self) -> None:
        from sqlalchemy import event
        from sqlalchemy.engine import Engine

        import adapters.mqtt.consumer as consumer_module
        import adapters.sql.repositories as repositories
        import gridcore.services as services

        probe = self
        handle = consumer_module.MqttConsumer.handle
        record_acks = services.record_acks
        pg_copy = repositories._pg_copy

        async def timed_handle(consumer: Any, message: Any) -> None:
            if message.topic.startswith("ven/ack/"):
                now = time.time()
                probe.received += 1
                probe.first_received = probe.first_received or now
                probe.last_received = now
            await handle(consumer, message)

        async def timed_record_acks(uow_factory: Any, clock: Any, acks: Any) -> Any:
            started = time.perf_counter()
            matches = await record_acks(uow_factory, clock, acks)
            self.batches.append((len(acks), time.perf_counter() - started))
            self.committed += len(acks)
            self.committed_at = time.time()
            return matches

        async def timed_copy(conn: Any, table: str, *args: Any, **kwargs: Any) -> None:
            started = time.perf_counter()
            await pg_copy(conn, table, *args, **kwargs)
            probe._statement(f"COPY {table}", time.perf_counter() - started)

        consumer_module.MqttConsumer.handle = timed_handle  # type: ignore[method-assign]
        # Both names: batches come through the consumer's, a write stored
        # alone through record_ack, which calls the services module's.
        consumer_module.record_acks = timed_record_acks
        services.record_acks = timed_record_acks
        if not self.statements_on:
            return
        repositories._pg_copy = timed_copy

        def before(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
            conn.info.setdefault("bench_started", []).append(time.perf_counter())

        def after(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
            started = conn.info["bench_started"].pop()
            probe._statement(" ".join(statement.split())[:70], time.perf_counter() - started)

        event.listen(Engine, "before_cursor_execute", before)
        event.listen(Engine, "after_cursor_execute", after)

    def _statement(self, key: str, seconds: float) -> None:
        if self.statements is not None:
            entry = self.statements.setdefault(key, [0, 0.0])
            entry[0] += 1
            entry[1] += seconds

    def start(self, phase: str) -> None:
        self.statements = self.phases.setdefault(phase, {})

    def stop(self) -> None:
        self.statements = None


async def wait_stored(
    url: str, event_id: str, count: int, probe: AckProbe
) -> tuple[float, int, int]:
    """Wait until the worker has committed ``count`` ACKs (its own counter),
    then check in SQL that ``count`` commands of the event are ACKed and
    ``count`` ``ven_acks`` rows are there; returns when the last of them was
    committed (or, if SQL disagreed at first, when it agreed), and the counts."""
    dsn = url.replace("postgresql+psycopg://", "postgresql://")
    deadline = time.monotonic() + TIMEOUT
    while probe.committed < count:
        if time.monotonic() > deadline:
            raise TimeoutError(f"the worker committed {probe.committed} ACKs after {TIMEOUT}s")
        await asyncio.sleep(0.01)
    committed_at = probe.committed_at
    async with await psycopg.AsyncConnection.connect(dsn, autocommit=True) as conn:
        first = True
        while True:
            cur = await conn.execute(
                "SELECT (SELECT count(*) FROM commands WHERE event_id = %s AND state = 'acked'),"
                " (SELECT count(*) FROM ven_acks WHERE event_id = %s)",
                (event_id, event_id),
            )
            row = await cur.fetchone()
            assert row is not None
            acked, rows = int(row[0]), int(row[1])
            if acked >= count and rows >= count:
                return (committed_at if first else time.time()), acked, rows
            if time.monotonic() > deadline:
                raise TimeoutError(f"only {acked} commands ACKed, {rows} ACK rows after {TIMEOUT}s")
            first = False
            await asyncio.sleep(0.1)


async def bare_copy(url: str, event_id: str) -> tuple[float, int]:
    """The reference for storing ACKs: the event's ``ven_acks`` rows, read
    back, written again by one binary COPY (psycopg formats rows in C) and
    committed; nothing else. Returns the seconds of the COPY and its commit."""
    from psycopg.types.json import Jsonb

    dsn = url.replace("postgresql+psycopg://", "postgresql://")
    async with await psycopg.AsyncConnection.connect(dsn) as conn:
        cur = await conn.execute(
            "SELECT attname, atttypid::int, atttypid = 'jsonb'::regtype FROM pg_attribute"
            " WHERE attrelid = 'ven_acks'::regclass AND attnum > 0 AND NOT attisdropped"
            " AND attname NOT IN ('id', 'created_at') ORDER BY attnum"
        )
        columns = await cur.fetchall()
        names = [c[0] for c in columns]
        types = [int(c[1]) for c in columns]
        documents = [bool(c[2]) for c in columns]
        cur = await conn.execute(
            f"SELECT {', '.join(names)} FROM ven_acks WHERE event_id = %s", (event_id,)
        )
        rows = [
            tuple(
                Jsonb(v) if doc and v is not None else v
                for v, doc in zip(r, documents, strict=True)
            )
            for r in await cur.fetchall()
        ]
        await conn.commit()
        started = time.perf_counter()
        async with conn.cursor() as copy_cur:
            statement = f"COPY ven_acks ({', '.join(names)}) FROM STDIN (FORMAT BINARY)"
            async with copy_cur.copy(statement) as copy:
                copy.set_types(types)  # type OIDs
                for row in rows:
                    await copy.write_row(row)
        await conn.commit()
        return time.perf_counter() - started, len(rows)


def rss_mb() -> float:
    """This process's resident set now (Linux), in MB."""
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 1e6


# --- the run ----------------------------------------------------------------------------------


@dataclass
class Result:
    vens: int
    register_s: float
    dispatch_s: float
    first_command_s: float
    commands: int
    duplicates: int
    ack_s: float
    acks_built_s: float
    acks_published_s: float
    first_ack_received_s: float
    last_ack_received_s: float
    after_last_received_s: float
    ack_batches: list[tuple[int, float]]
    bare_ack_transport_s: float
    bare_ack_published_s: float
    bare_acks_received: int
    acked: int
    ack_rows: int
    actual_reduction_kw: float
    bare_publish_s: float
    bare_received: int
    bare_copy_s: float
    bare_copy_rows: int
    rss_before_mb: float
    rss_after_mb: float
    statements: dict[str, dict[str, list[float]]]

    @property
    def record_acks_s(self) -> float:
        return sum(seconds for _, seconds in self.ack_batches)


class Profiler:
    """cProfile of one phase, into ``{prefix}.{phase}`` (nothing without a prefix)."""

    def __init__(self, prefix: str | None, phase: str) -> None:
        self.path = f"{prefix}.{phase}" if prefix else None
        self.profile = cProfile.Profile() if prefix else None
        if self.profile is not None:
            self.profile.enable()

    def done(self) -> None:
        if self.profile is None or self.path is None:
            return
        self.profile.disable()
        self.profile.dump_stats(self.path)
        print(f"profile of this phase: {self.path}", file=sys.stderr)
        pstats.Stats(self.profile, stream=sys.stderr).sort_stats("tottime").print_stats(15)


async def wait_pipe(pipe: Connection) -> tuple[Any, ...]:
    deadline = time.monotonic() + TIMEOUT
    while not pipe.poll():
        if time.monotonic() > deadline:
            raise TimeoutError("the fleet process did not answer")
        await asyncio.sleep(0.005)
    message: tuple[Any, ...] = pipe.recv()
    return message


async def run(args: argparse.Namespace, url: str) -> Result:
    await migrate(url, retries=3, wait_seconds=0.5, log=lambda line: None)
    prefix = f"b{uuid.uuid4().hex[:6]}-"
    settings = Settings(
        _env_file=None,  # type: ignore[call-arg]
        database_url=url, mqtt_broker=args.mqtt_host, mqtt_port=args.mqtt_port,
        mqtt_client_id=f"{prefix}worker", mqtt_topic_metering=f"bench/{prefix}metering",
        # The fleet ACKs once every command is in: no deadline may pass before.
        ack_timeout_seconds=900, ven_offline_after_seconds=900,
    )  # fmt: skip
    storage = sql_storage(settings.resolved_database_url, settings.db_timeout)
    clock = SystemClock()
    ctx = mp.get_context("spawn")
    ours, theirs = ctx.Pipe()
    fleet = ctx.Process(
        target=fleet_process, args=(args.mqtt_host, args.mqtt_port, prefix, args.vens, theirs)
    )
    stop = asyncio.Event()
    worker = Worker(
        transport_factory=transport_factory(settings), uow_factory=storage.uow_factory,
        telemetry_store=storage.telemetry_store, shadow_store=storage.shadows,
        clock=clock, settings=settings,
    )  # fmt: skip
    tasks: list[asyncio.Task[None]] = []
    probe = AckProbe(args.statements)
    probe.install()
    try:
        registering = time.perf_counter()
        await make_online(storage, prefix, args.vens)
        register_s = time.perf_counter() - registering
        fleet.start()
        await wait_pipe(ours)
        tasks.append(asyncio.create_task(worker.run()))
        tasks.append(asyncio.create_task(run_dispatch(settings, storage, clock, stop)))
        await asyncio.wait_for(worker.ready.wait(), TIMEOUT)
        await asyncio.sleep(1.0)  # the dispatcher has taken the lease and idles
        rss_before = rss_mb()
        start = clock.now() + timedelta(seconds=args.lead)
        event = await create_event(
            storage.uow_factory, clock, RandomIds(), start_time=start,
            end_time=start + timedelta(minutes=10), requested_reduction_kw=float(args.vens),
        )  # fmt: skip
        profiler = Profiler(args.profile, "dispatch")
        probe.start("dispatch")
        got = await wait_pipe(ours)
        probe.stop()
        profiler.done()
        if got[0] != "commands":
            raise RuntimeError(f"not every VEN got its command: {got}")
        _, received, distinct = got
        profiler = Profiler(args.profile, "acks")
        probe.start("acks")
        ours.send("ack")
        stored_at, acked, ack_rows = await wait_stored(url, event.id, distinct, probe)
        probe.stop()
        profiler.done()
        got = await wait_pipe(ours)
        _, first_ack, acks_built, last_ack_published = got
        async with storage.uow_factory() as uow:
            stored = await uow.events.get(event.id)
        rss_after = rss_mb()
        # The references, same broker and database, right after.
        ours.send("bare")
        _, payloads = await wait_pipe(ours)
        mine, publisher_end = ctx.Pipe()
        publisher = ctx.Process(
            target=bare_publisher, args=(args.mqtt_host, args.mqtt_port, payloads, publisher_end)
        )
        del payloads
        publisher.start()
        got = await wait_pipe(ours)
        if got[0] != "bare":
            raise RuntimeError(f"the bare publisher's commands did not all arrive: {got}")
        bare = got[1]
        _, bare_first, _ = await wait_pipe(mine)
        publisher.join(10)
        ours.send("bare acks")
        got = await wait_pipe(ours)
        if got[0] != "bare acks":
            raise RuntimeError(f"the bare ACKs did not all arrive: {got}")
        _, bare_ack_first, bare_ack_published, bare_acks = got
        copy_s, copy_rows = await bare_copy(url, event.id)
        t0 = start.timestamp()
        return Result(
            vens=args.vens,
            register_s=register_s,
            bare_publish_s=bare["last"] - bare_first,
            bare_received=bare["count"],
            bare_copy_s=copy_s,
            bare_copy_rows=copy_rows,
            rss_before_mb=rss_before,
            rss_after_mb=rss_after,
            dispatch_s=received["last"] - t0,
            first_command_s=received["first"] - t0,
            commands=received["event"],
            duplicates=received["event"] - distinct,
            # From the first ACK's publish (the payloads are built before it).
            ack_s=stored_at - acks_built,
            acks_built_s=acks_built - first_ack,
            acks_published_s=last_ack_published - acks_built,
            first_ack_received_s=probe.first_received - acks_built,
            last_ack_received_s=probe.last_received - acks_built,
            after_last_received_s=stored_at - probe.last_received,
            ack_batches=list(probe.batches),
            bare_ack_transport_s=bare_acks["last"] - bare_ack_first,
            bare_ack_published_s=bare_ack_published - bare_ack_first,
            bare_acks_received=bare_acks["count"],
            statements=probe.phases,
            acked=acked,
            ack_rows=ack_rows,
            actual_reduction_kw=stored.actual_reduction_kw if stored else float("nan"),
        )
    finally:
        stop.set()
        worker.stop()
        await asyncio.wait_for(asyncio.gather(*tasks, return_exceptions=True), 30)
        await storage.close()
        if fleet.is_alive():
            fleet.terminate()
        fleet.join(5)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--vens", type=int, default=100_000, help="online VENs (100000)")
    parser.add_argument("--runs", type=int, default=1, help="repeat, fresh database each (1)")
    parser.add_argument(
        "--lead", type=float, default=1.0, help="the event starts N s after its creation (1)"
    )
    parser.add_argument("--mqtt-host", default="127.0.0.1")
    parser.add_argument("--mqtt-port", type=int, default=None,
                        help="use this running broker (default: start mosquitto)")  # fmt: skip
    parser.add_argument("--log-level", default="INFO", help="the worker's log level (INFO)")
    parser.add_argument("--log-file", default=None, help="worker log (default: a temp file)")
    parser.add_argument(
        "--profile", default=None, help="cProfile each phase into PROFILE.dispatch, PROFILE.acks"
    )
    parser.add_argument(
        "--statements", action="store_true",
        help="time each kind of SQL statement (COPY included) per phase, and print them",
    )  # fmt: skip
    args = parser.parse_args()
    log_file = args.log_file or tempfile.mkstemp(prefix="bench_dispatch_", suffix=".log")[1]
    logging.basicConfig(
        level=args.log_level,
        filename=log_file,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    print(f"worker log: {log_file}", flush=True)
    with tempfile.TemporaryDirectory() as directory:
        broker = None
        if args.mqtt_port is None:
            broker, args.mqtt_port = start_mosquitto(Path(directory))
        try:
            for n in range(args.runs):
                report(n, run_once(args))
        finally:
            if broker is not None:
                broker.terminate()
                broker.wait(10)


def run_once(args: argparse.Namespace) -> Result:
    name, url = fresh_database()
    try:
        return asyncio.run(run(args, url))
    finally:
        drop_database(name)


def report(n: int, r: Result) -> None:
    sizes = [size for size, _ in r.ack_batches] or [0]
    rows = [
        ("register (telemetry, auto-registered)", f"{r.register_s:.3f} s", "", ""),
        ("event start -> last command", f"{r.dispatch_s:.3f} s",
         f"first {r.first_command_s:.3f} s; {r.commands} commands, {r.duplicates} duplicates", ""),
        ("  bare paho publisher, same payloads", f"{r.bare_publish_s:.3f} s",
         f"{r.bare_received} received", f"{r.dispatch_s / r.bare_publish_s:.2f}x"),
        ("first ACK published -> all stored", f"{r.ack_s:.3f} s",
         f"{r.acked} ACKed, {r.ack_rows} rows, actualReductionKw {r.actual_reduction_kw:.1f}",
         ""),
        ("  the fleet publishing them (to PUBACK)", f"{r.acks_published_s:.3f} s",
         f"payloads built before, in {r.acks_built_s:.3f} s", ""),
        ("  worker: first ACK received", f"{r.first_ack_received_s:.3f} s",
         "after the first publish", ""),
        ("  worker: last ACK received", f"{r.last_ack_received_s:.3f} s",
         "after the first publish", ""),
        ("  last received -> all stored", f"{r.after_last_received_s:.3f} s", "", ""),
        ("  bare paho transport, same ACKs", f"{r.bare_ack_transport_s:.3f} s",
         f"first publish -> last received by a paho subscriber ({r.bare_acks_received}); "
         f"published in {r.bare_ack_published_s:.3f} s",
         f"{r.ack_s / r.bare_ack_transport_s:.2f}x"),
        ("  bare binary COPY, same rows", f"{r.bare_copy_s:.3f} s", f"{r.bare_copy_rows} rows",
         f"{r.ack_s / r.bare_copy_s:.2f}x"),
        ("store path: record_acks, summed", f"{r.record_acks_s:.3f} s",
         f"{len(r.ack_batches)} batches of {min(sizes)}-{max(sizes)} "
         f"(mean {sum(sizes) / len(sizes):.0f})", f"{r.record_acks_s / r.bare_copy_s:.2f}x"),
        ("worker process RSS", f"{r.rss_after_mb:.0f} MB",
         f"{r.rss_before_mb:.0f} MB before the event", ""),
    ]  # fmt: skip
    print(f"run {n + 1}: {r.vens} VENs", flush=True)
    print(f"  {'measure':<40} {'seconds':>10} {'ratio':>7}  notes")
    for name, value, notes, ratio in rows:
        print(f"  {name:<40} {value:>10} {ratio:>7}  {notes}", flush=True)
    for phase, statements in r.statements.items():
        if not statements:
            continue  # not asked for (--statements)
        print(f"  SQL statements during {phase} (wall time, any task; count, seconds):")
        ranked = sorted(statements.items(), key=lambda kv: -kv[1][1])
        for text, (count, seconds) in ranked[:15]:
            print(f"    {int(count):>7} {seconds:>9.3f}  {text}")


if __name__ == "__main__":
    main()
