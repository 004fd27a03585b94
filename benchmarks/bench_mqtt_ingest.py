"""Benchmark: Mosquitto -> worker (aiomqtt consumer) -> PostgreSQL (COPY).

Two runs, each with the publisher in another process and a fresh database:

1. throughput: ``--messages`` 10-circuit telemetry messages published as fast
   as the publisher can at QoS 1 (Mosquitto queues what the worker has not
   taken yet); reports stored messages/s from the first message received to
   the last one committed.
2. lag: a steady ``--rate`` messages/s for ``--seconds`` at QoS 0 (as VENs
   publish telemetry); reports p50/p99/max publish-to-commit lag. Each
   message's ``timestamp`` is its publish time, and the lag is measured when
   the batch holding it has committed.

Usage: ``python benchmarks/bench_mqtt_ingest.py [--messages 60000] [--rate 2000]``
Needs ``mosquitto`` on PATH and PostgreSQL (GRIDCORE_TEST_PG_* or 127.0.0.1:5432).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing as mp
import os
import sys
import tempfile
import time
import uuid
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psycopg

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from brokers import start_mosquitto

from adapters.sql.engine import create_engine
from adapters.sql.migrate import migrate
from adapters.sql.telemetry import SqlTelemetryStore
from adapters.sql.uow import SqlUnitOfWorkFactory
from adapters.system import SystemClock
from entrypoints.settings import Settings
from entrypoints.worker import Worker, transport_factory
from gridcore.ports import AppendResult
from gridcore.telemetry import TelemetrySample

PG_HOST = os.environ.get("GRIDCORE_TEST_PG_HOST", "127.0.0.1")
PG_PORT = int(os.environ.get("GRIDCORE_TEST_PG_PORT", "5432"))
PG_USER = os.environ.get("GRIDCORE_TEST_PG_USER", "postgres")
VENS = 20_000


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


async def run(port: int, count: int, rate: float, qos: int, batch: int) -> dict[str, Any]:
    name, url = fresh_database()
    try:
        await migrate(url, retries=3, wait_seconds=0.5)
        engine = create_engine(url)
        await register_fleet(SqlTelemetryStore(engine))
        store = TimedStore(SqlTelemetryStore(engine))
        settings = Settings(
            _env_file=None,  # type: ignore[call-arg]
            mqtt_broker="127.0.0.1", mqtt_port=port, mqtt_batch_size=batch,
            mqtt_batch_max_delay_ms=50, mqtt_max_held_samples=200_000,
        )  # fmt: skip
        worker = Worker(
            transport_factory=transport_factory(settings),
            uow_factory=SqlUnitOfWorkFactory(engine), telemetry_store=store,
            shadow_store=None, clock=SystemClock(), settings=settings,
        )  # fmt: skip
        task = asyncio.create_task(worker.run())
        await asyncio.wait_for(worker.ready.wait(), 10)
        ctx = mp.get_context("spawn")
        pub = ctx.Process(target=publisher, args=(port, count, rate, qos, 0))
        started = time.monotonic()
        cpu_start = time.process_time()
        pub.start()
        deadline = started + max(120.0, count / 500)
        while store.stored < count and time.monotonic() < deadline:  # noqa: ASYNC110
            await asyncio.sleep(0.05)
        cpu = time.process_time() - cpu_start
        await asyncio.to_thread(pub.join, 30)
        worker.stop()
        await asyncio.wait_for(task, 30)
        await engine.dispose()
        lags = sorted(store.lags)
        span = store.last_commit - (store.first_call or started)
        return {
            "stored": store.stored,
            "offered": count,
            "msgs_per_s": store.stored / span if span > 0 else 0.0,
            "p50_lag_ms": 1000 * lags[len(lags) // 2] if lags else None,
            "p99_lag_ms": 1000 * lags[int(len(lags) * 0.99)] if lags else None,
            "max_lag_ms": 1000 * lags[-1] if lags else None,
            "worker_cpu_us_per_msg": 1e6 * cpu / max(store.stored, 1),
            "dead_letters": worker.stats.dead_lettered if worker.stats else None,
        }
    finally:
        drop_database(name)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=60_000)
    parser.add_argument("--rate", type=float, default=2000.0)
    parser.add_argument("--seconds", type=float, default=15.0)
    parser.add_argument("--batch", type=int, default=500)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        proc, port = start_mosquitto(Path(tmp))
        try:
            throughput = asyncio.run(run(port, args.messages, 0.0, 1, args.batch))
            print("throughput (QoS 1, publisher flat out):", json.dumps(throughput))
            steady = int(args.rate * args.seconds)
            lag = asyncio.run(run(port, steady, args.rate, 0, args.batch))
            print(f"steady {args.rate:.0f} msg/s (QoS 0):", json.dumps(lag))
        finally:
            proc.terminate()
            proc.wait(10)


if __name__ == "__main__":
    main()
