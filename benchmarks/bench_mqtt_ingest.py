"""Benchmark: Mosquitto -> worker (aiomqtt consumer) -> PostgreSQL (COPY),
against a bare loop doing the least that stores the same rows.

Each run has the publisher in another process (paho, the same 10-circuit
metering message, 20,000 VENs) and a fresh database of its own, migrated and
with the fleet registered before timing:

1. worker vs bare loop, ``--rounds`` times each, alternating: ``--messages``
   published as fast as the publisher can at QoS 1 (Mosquitto queues what the
   consumer has not taken yet). The worker is ``entrypoints.worker.Worker``
   (transport, validation, mapping, batcher, ``SqlTelemetryStore``). The bare
   loop is aiomqtt's client (paho's parser putting payloads straight into a
   queue, as the worker's transport does), orjson (json if orjson is not
   installed) and a binary COPY of the same rows (the telemetry row with its
   raw payload, one load row per merged circuit/load) in batches of the same
   size and delay: no validation, registration, duplicates, current state or
   intervals. Reported: stored msgs/s from the first write to the last
   commit, the benchmark process's CPU per message (``time.process_time``:
   the publisher, Mosquitto and PostgreSQL run in other processes), and the
   ratios of the two loops.
2. lag: the worker at a steady ``--rate`` messages/s for ``--seconds`` at
   QoS 0 (as VENs publish telemetry); p50/p99/max publish-to-commit lag.
   ``--seconds 0`` skips it.

Usage: ``python benchmarks/bench_mqtt_ingest.py [--messages 60000] [--rounds 2]
[--rate 2000] [--seconds 15] [--profile]``
Needs ``mosquitto`` on PATH and PostgreSQL (GRIDCORE_TEST_PG_* or 127.0.0.1:5432).
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import dataclasses
import json
import multiprocessing as mp
import os
import pstats
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiomqtt
import psycopg
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from brokers import start_mosquitto

from adapters.mqtt.transport import AiomqttTransport
from adapters.sql.engine import create_engine
from adapters.sql.ingest_pg import _LOAD_COLUMNS, _LOAD_TYPES, _TELEMETRY_COLUMNS, _TELEMETRY_TYPES
from adapters.sql.migrate import migrate
from adapters.sql.telemetry import SqlTelemetryStore
from adapters.sql.uow import SqlUnitOfWorkFactory
from adapters.system import SystemClock
from entrypoints.settings import Settings
from entrypoints.worker import (
    CONSUMER_RECEIVE_MAXIMUM,
    TransportFactory,
    Worker,
    consumer_connection,
)
from gridcore.ports import AppendResult, MessageTransport
from gridcore.telemetry import TelemetrySample

PG_HOST = os.environ.get("GRIDCORE_TEST_PG_HOST", "127.0.0.1")
PG_PORT = int(os.environ.get("GRIDCORE_TEST_PG_PORT", "5432"))
PG_USER = os.environ.get("GRIDCORE_TEST_PG_USER", "postgres")
VENS = 20_000

try:
    from orjson import loads as parse_json

    PARSER = "orjson"
except ImportError:  # the bench dependency group installs it
    from json import loads as parse_json

    PARSER = "json"


def message(ven: int, ts: float) -> bytes:
    """The documents' metering message with 10 circuits and 10 loads."""
    circuits = [
        {
            "id": f"circuit_{i}",
            "name": f"Circuit {i}",
            "breakerAmps": 20,
            "currentKw": 0.8,
            "currentAmps": 3.3,
            "enabled": True,
            "critical": i == 1,
        }
        for i in range(1, 11)
    ]
    loads = [
        {
            "loadId": f"circuit_{i}",
            "name": f"Circuit {i}",
            "type": "hvac" if i == 1 else "ev",
            "capacityKw": 5.0,
            "currentPowerKw": 0.8,
            "shedCapabilityKw": 0.8,
            "enabled": True,
            "priority": i,
        }
        for i in range(1, 11)
    ]
    body = {
        "venId": f"ven-{ven:05d}", "timestamp": ts, "usedPowerKw": 8.2, "shedPowerKw": 0.0,
        "requestedReductionKw": 0.0, "baselinePowerKw": 13.0, "batterySOC": 85.5,
        "panelAmperageRating": 200, "panelVoltage": 240, "panelMaxKw": 48.0,
        "currentAmps": 34.2, "panelUtilizationPercent": 17.1, "circuits": circuits,
        "loads": loads,
    }  # fmt: skip
    return json.dumps(body).encode()


def publisher(port: int, count: int, rate: float, qos: int, offset: int) -> None:
    """Runs in its own process (paho, threaded network loop)."""
    import paho.mqtt.client as paho

    client = paho.Client(paho.CallbackAPIVersion.VERSION2, client_id=f"bench-pub-{offset}")
    client.max_inflight_messages_set(1000)
    client.max_queued_messages_set(0)
    client.connect("127.0.0.1", port)
    client.loop_start()
    start = time.monotonic()
    infos = []
    for i in range(count):
        if rate > 0:
            due = start + i / rate
            while (delay := due - time.monotonic()) > 0:
                time.sleep(delay)
        info = client.publish("volttron/metering", message((offset + i) % VENS, time.time()), qos)
        if qos:
            infos.append(info)
    for info in infos:
        info.wait_for_publish(60)
    client.loop_stop()
    client.disconnect()


class TimedStore:
    """Wraps the SQL store to note when each sample's batch committed."""

    def __init__(self, inner: SqlTelemetryStore) -> None:
        self.inner = inner
        self.lags: list[float] = []
        self.stored = 0
        self.first_call: float | None = None
        self.last_commit = 0.0

    async def append(
        self, samples: Sequence[TelemetrySample], *, auto_register: bool = True
    ) -> AppendResult:
        if self.first_call is None:
            self.first_call = time.monotonic()
        result = await self.inner.append(samples, auto_register=auto_register)
        now = time.time()
        self.last_commit = time.monotonic()
        self.lags.extend(now - s.timestamp.timestamp() for s in samples)
        self.stored += result.stored
        return result


async def register_fleet(store: SqlTelemetryStore) -> None:
    """Steady state: every VEN already registered (first contact is a one-off)."""
    at = datetime(2024, 1, 1, tzinfo=UTC)
    fleet = [TelemetrySample(ven_id=f"ven-{v:05d}", timestamp=at) for v in range(VENS)]
    for start in range(0, VENS, 2000):
        await store.append(fleet[start : start + 2000])


def fresh_database() -> tuple[str, str]:
    name = f"gridcore_bench_{uuid.uuid4().hex[:8]}"
    admin = f"host={PG_HOST} port={PG_PORT} user={PG_USER} dbname=postgres"
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    return name, f"postgresql+psycopg://{PG_USER}@{PG_HOST}:{PG_PORT}/{name}"


def drop_database(name: str) -> None:
    admin = f"host={PG_HOST} port={PG_PORT} user={PG_USER} dbname=postgres"
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def database_url(name: str) -> str:
    return f"postgresql+psycopg://{PG_USER}@{PG_HOST}:{PG_PORT}/{name}"


async def prepared_database() -> tuple[str, str]:
    """A fresh, migrated database with the fleet registered (steady state)."""
    name, url = fresh_database()
    await migrate(url, retries=3, wait_seconds=0.5)
    engine = create_engine(url)
    store = SqlTelemetryStore(engine)
    await register_fleet(store)
    await store.close()
    await engine.dispose()
    return name, url


def start_publisher(port: int, count: int, rate: float, qos: int) -> mp.process.BaseProcess:
    ctx = mp.get_context("spawn")
    pub = ctx.Process(target=publisher, args=(port, count, rate, qos, 0))
    pub.start()
    return pub


async def run_worker(
    port: int, count: int, rate: float, qos: int, batch: int, profile: bool = False
) -> dict[str, Any]:
    name, url = await prepared_database()
    try:
        engine = create_engine(url)
        store = TimedStore(SqlTelemetryStore(engine))
        settings = Settings(
            _env_file=None,  # type: ignore[call-arg]
            mqtt_broker="127.0.0.1", mqtt_port=port, mqtt_batch_size=batch,
            mqtt_batch_max_delay_ms=50, mqtt_max_held_samples=200_000,
        )  # fmt: skip
        worker = Worker(
            transport_factory=bench_transport(settings),
            uow_factory=SqlUnitOfWorkFactory(engine), telemetry_store=store,
            shadow_store=None, clock=SystemClock(), settings=settings,
        )  # fmt: skip
        task = asyncio.create_task(worker.run())
        await asyncio.wait_for(worker.ready.wait(), 10)
        profiler = cProfile.Profile() if profile else None
        started = time.monotonic()
        cpu_start = time.process_time()
        pub = start_publisher(port, count, rate, qos)
        if profiler is not None:
            profiler.enable()
        deadline = started + max(120.0, count / 300)
        while store.stored < count and time.monotonic() < deadline:  # noqa: ASYNC110
            await asyncio.sleep(0.05)
        if profiler is not None:
            profiler.disable()
        cpu = time.process_time() - cpu_start
        await asyncio.to_thread(pub.join, 30)
        worker.stop()
        await asyncio.wait_for(task, 30)
        await store.inner.close()
        await engine.dispose()
        if profiler is not None:
            pstats.Stats(profiler).sort_stats("tottime").print_stats(35)
        lags = sorted(store.lags)
        span = store.last_commit - (store.first_call or started)
        return {
            "loop": "worker",
            "stored": store.stored,
            "offered": count,
            "msgs_per_s": store.stored / span if span > 0 else 0.0,
            "p50_lag_ms": 1000 * lags[len(lags) // 2] if lags else None,
            "p99_lag_ms": 1000 * lags[int(len(lags) * 0.99)] if lags else None,
            "max_lag_ms": 1000 * lags[-1] if lags else None,
            "cpu_us_per_msg": 1e6 * cpu / max(store.stored, 1),
            "dead_letters": worker.stats.dead_lettered if worker.stats else None,
        }
    finally:
        drop_database(name)


def bench_transport(settings: Settings) -> TransportFactory:
    """The worker's own connection, but a session that ends with the run: a
    session left behind would queue every later run's messages in Mosquitto
    (and hand them to the next worker run under the same client id)."""
    conn = dataclasses.replace(
        consumer_connection(settings), client_id=f"bench-{uuid.uuid4().hex[:8]}", persistent=False
    )

    async def connect() -> MessageTransport:
        return await AiomqttTransport.connect(conn)

    return connect


def _f(value: Any) -> float | None:
    """What a float8 column takes: the worker stores JSON integers as floats."""
    return None if value is None else float(value)


class BareLoop:
    """The least that stores the same rows as the worker: parse, build the
    telemetry row (raw payload included) and the merged load rows, COPY them
    in batches. Ids come from a counter (the database is fresh and ours)."""

    def __init__(self, pg: psycopg.AsyncConnection[Any], next_id: int, batch: int) -> None:
        self.pg = pg
        self.next_id = next_id
        self.batch = batch
        self.telemetry: list[tuple[Any, ...]] = []
        self.loads: list[tuple[Any, ...]] = []
        self.stored = 0
        self.first_write: float | None = None
        self.last_commit = 0.0
        self.wake = asyncio.Event()
        self.first_at = 0.0

    def take(self, payload: bytes) -> None:
        doc = parse_json(payload)
        self.next_id += 1
        tid, ven, ts = self.next_id, doc["venId"], datetime.fromtimestamp(doc["timestamp"], UTC)
        get = doc.get
        self.telemetry.append((
            tid, ven, ts, _f(get("usedPowerKw")), _f(get("shedPowerKw")),
            _f(get("requestedReductionKw")), get("eventId"), _f(get("baselinePowerKw")),
            _f(get("batterySOC")), _f(get("panelAmperageRating")), _f(get("panelVoltage")),
            _f(get("panelMaxKw")), _f(get("currentAmps")), _f(get("panelUtilizationPercent")),
            payload.decode(),
        ))  # fmt: skip
        loads = {ld["loadId"]: ld for ld in get("loads", ())}
        rows = self.loads
        for c in get("circuits", ()):
            ld = loads.pop(c["id"], None) or {}
            rows.append((
                tid, ven, ts, c["id"], ld.get("name", c.get("name")), ld.get("type"),
                _f(ld.get("capacityKw")), _f(ld.get("currentPowerKw", c.get("currentKw"))),
                _f(ld.get("shedCapabilityKw")), ld.get("enabled", c.get("enabled")),
                ld.get("priority"), ld.get("critical", c.get("critical")),
                _f(c.get("breakerAmps")), _f(c.get("currentAmps")),
            ))  # fmt: skip
        for load_id, ld in loads.items():
            rows.append((
                tid, ven, ts, load_id, ld.get("name"), ld.get("type"), _f(ld.get("capacityKw")),
                _f(ld.get("currentPowerKw")), _f(ld.get("shedCapabilityKw")), ld.get("enabled"),
                ld.get("priority"), ld.get("critical"), None, None,
            ))  # fmt: skip
        if len(self.telemetry) == 1:
            self.first_at = time.monotonic()
            self.wake.set()
        elif len(self.telemetry) >= self.batch:
            self.wake.set()

    async def write_forever(self) -> None:
        while True:
            await self.wake.wait()
            due = self.first_at + 0.05 - time.monotonic()
            if len(self.telemetry) < self.batch and due > 0:
                await asyncio.sleep(due)
            self.wake.clear()
            telemetry, loads = self.telemetry, self.loads
            self.telemetry, self.loads = [], []
            if self.first_write is None:
                self.first_write = time.monotonic()
            async with self.pg.transaction(), self.pg.cursor() as cur:
                await _copy(cur, "ven_telemetry", _TELEMETRY_COLUMNS, _TELEMETRY_TYPES, telemetry)
                await _copy(cur, "ven_load_samples", _LOAD_COLUMNS, _LOAD_TYPES, loads)
            self.stored += len(telemetry)
            self.last_commit = time.monotonic()


async def _copy(
    cur: psycopg.AsyncCursor[Any], table: str, columns: list[str], types: list[str], rows: Any
) -> None:
    names = ", ".join(f'"{c}"' for c in columns)
    async with cur.copy(f"COPY {table} ({names}) FROM STDIN (FORMAT BINARY)") as copy:
        copy.set_types(types)
        format_row = copy.formatter.write_row  # fills a buffer: no await per row
        for row in rows:
            if data := format_row(row):
                await copy.write(data)


class LeanClient(aiomqtt.Client):
    """aiomqtt's client with paho's parsed payloads put straight into a queue,
    as the worker's transport does: aiomqtt's own iterator costs a task and
    an ``asyncio.wait`` per message, which is not the worker's cost to compare."""

    def __init__(self, sink: asyncio.Queue[bytes], *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._sink = sink

    def _on_message(self, client: Any, userdata: Any, message: Any) -> None:
        self._sink.put_nowait(message.payload)


async def run_bare(
    port: int, count: int, qos: int, batch: int, profile: bool = False
) -> dict[str, Any]:
    name, _ = await prepared_database()
    try:
        dsn = f"host={PG_HOST} port={PG_PORT} user={PG_USER} dbname={name}"
        async with await psycopg.AsyncConnection.connect(dsn) as pg:
            cur = await pg.execute("SELECT coalesce(max(id), 0) FROM ven_telemetry")
            row = await cur.fetchone()
            await pg.commit()
            loop = BareLoop(pg, int(row[0]) if row else 0, batch)
            props = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]
            props.ReceiveMaximum = CONSUMER_RECEIVE_MAXIMUM  # as the worker's connection
            payloads: asyncio.Queue[bytes] = asyncio.Queue()
            client = LeanClient(
                payloads, "127.0.0.1", port, protocol=aiomqtt.ProtocolVersion.V5, properties=props
            )
            async with client:
                await client.subscribe("volttron/metering", 1)
                writer = asyncio.create_task(loop.write_forever())

                async def receive() -> None:
                    while True:
                        loop.take(await payloads.get())

                receiver = asyncio.create_task(receive())
                started = time.monotonic()
                cpu_start = time.process_time()
                pub = start_publisher(port, count, 0.0, qos)
                profiler = cProfile.Profile() if profile else None
                if profiler is not None:
                    profiler.enable()
                deadline = started + max(120.0, count / 300)
                while loop.stored < count and time.monotonic() < deadline:  # noqa: ASYNC110
                    await asyncio.sleep(0.05)
                if profiler is not None:
                    profiler.disable()
                    pstats.Stats(profiler).sort_stats("tottime").print_stats(35)
                cpu = time.process_time() - cpu_start
                receiver.cancel()
                writer.cancel()
                await asyncio.gather(receiver, writer, return_exceptions=True)
            await asyncio.to_thread(pub.join, 30)
        span = loop.last_commit - (loop.first_write or started)
        return {
            "loop": f"bare ({PARSER})",
            "stored": loop.stored,
            "offered": count,
            "msgs_per_s": loop.stored / span if span > 0 else 0.0,
            "cpu_us_per_msg": 1e6 * cpu / max(loop.stored, 1),
        }
    finally:
        drop_database(name)


def print_table(results: list[dict[str, Any]]) -> None:
    print(f"\n{'round':>5}  {'loop':<14} {'stored':>7} {'msgs/s':>8} {'CPU us/msg':>11}")
    for r in results:
        print(f"{r['round']:>5}  {r['loop']:<14} {r['stored']:>7} {r['msgs_per_s']:>8.0f}"
              f" {r['cpu_us_per_msg']:>11.0f}")  # fmt: skip
    rounds = sorted({r["round"] for r in results})
    ratios = []
    for n in rounds:
        w = next(r for r in results if r["round"] == n and r["loop"] == "worker")
        b = next(r for r in results if r["round"] == n and r["loop"] != "worker")
        ratios.append(
            (w["cpu_us_per_msg"] / b["cpu_us_per_msg"], b["msgs_per_s"] / w["msgs_per_s"])
        )
        print(f"round {n}: worker CPU/msg = {ratios[-1][0]:.2f}x the bare loop's;"
              f" bare msgs/s = {ratios[-1][1]:.2f}x the worker's")  # fmt: skip
    cpu = statistics.median(r[0] for r in ratios)
    rate = statistics.median(r[1] for r in ratios)
    print(f"median over {len(rounds)} round(s): worker CPU/msg {cpu:.2f}x bare; "
          f"bare msgs/s {rate:.2f}x worker")  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=60_000)
    parser.add_argument("--rounds", type=int, default=2, help="worker and bare runs, alternating")
    parser.add_argument("--rate", type=float, default=2000.0)
    parser.add_argument("--seconds", type=float, default=15.0, help="0: no steady run")
    parser.add_argument("--batch", type=int, default=500)
    parser.add_argument("--profile", action="store_true", help="cProfile each run (by wall time)")
    parser.add_argument("--only", choices=["worker", "bare"], help="run one loop only")
    args = parser.parse_args()
    began = time.monotonic()
    with tempfile.TemporaryDirectory() as tmp:
        proc, port = start_mosquitto(Path(tmp))
        try:
            results: list[dict[str, Any]] = []
            for n in range(1, args.rounds + 1):
                # Alternating which goes first, so that neither always gets the warmer machine.
                order = ["worker", "bare"] if n % 2 else ["bare", "worker"]
                for loop in order:
                    if args.only and loop != args.only:
                        continue
                    if loop == "worker":
                        r = asyncio.run(
                            run_worker(port, args.messages, 0.0, 1, args.batch, args.profile)
                        )
                    else:
                        r = asyncio.run(run_bare(port, args.messages, 1, args.batch, args.profile))
                    r["round"] = n
                    print(json.dumps(r), flush=True)
                    results.append(r)
            if not args.only:
                print_table(results)
            if args.seconds > 0:
                steady = int(args.rate * args.seconds)
                lag = asyncio.run(run_worker(port, steady, args.rate, 0, args.batch))
                print(f"steady {args.rate:.0f} msg/s (QoS 0):", json.dumps(lag))
        finally:
            proc.terminate()
            proc.wait(10)
    print(f"runtime {time.monotonic() - began:.0f} s")


if __name__ == "__main__":
    main()
