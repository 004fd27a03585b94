"""Benchmark: the API under 20 concurrent clients while a real worker ingests.

A fresh PostgreSQL database and a Mosquitto of its own (``brokers.py``); a
fleet of ``--vens`` VENs, each of which first reports once (10 circuits and 10
loads: ``bench_mqtt_ingest.message``), and ``--events`` past events. Then for
each ``--workers`` count, ``gridcore serve --workers N`` runs as its own
processes and two phases of ``--seconds`` each are measured, each with a
worker process (``entrypoints.worker.Worker``, COPY into PostgreSQL) taking
``--rate`` messages/s from a publisher process (``bench_mqtt_ingest.publisher``):

1. reference: ingest alone;
2. loaded: ingest, and ``--clients`` HTTP clients (one process, kept-alive
   connections, each request after the previous one's answer; one untimed
   round of every endpoint first, to warm each connection's API process) cycling over
   ``/api/stats/network``, a VEN's page ``/api/vens/{id}``, a ``/api/vens``
   page (``limit=100`` at a random offset) and the event list
   ``/api/events``.

Reports per endpoint p50/p99 (ms) and requests/s, and for each phase the
ingest rate (stored messages/s) and lag p50/p99 (publish to committed, ms):
the loaded phase against the reference of the same run.

Usage::

    python benchmarks/bench_api_load.py [--vens 10000] [--rate 2000] [--seconds 20]
        [--clients 20] [--workers 1,2] [--events 200] [--api-pool 5]

Needs ``mosquitto`` and PostgreSQL (GRIDCORE_TEST_PG_* or 127.0.0.1:5432).
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing as mp
import os
import random
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import psycopg

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import bench_mqtt_ingest
from bench_mqtt_ingest import TimedStore, drop_database, fresh_database
from brokers import start_mosquitto
from sqlalchemy.engine import make_url

from adapters.sql.engine import create_engine
from adapters.sql.migrate import migrate
from adapters.sql.telemetry import SqlTelemetryStore
from adapters.sql.uow import SqlUnitOfWorkFactory
from adapters.system import SystemClock
from entrypoints.settings import Settings
from entrypoints.worker import Worker, transport_factory

GRIDCORE = str(Path(sys.executable).with_name("gridcore"))
TOKEN = "read-token-for-the-load-benchmark-0123"
ENDPOINTS = ("network stats", "VEN page", "VEN list page", "event list")


def publish(port: int, count: int, rate: float, vens: int) -> None:
    """bench_mqtt_ingest's publisher over ``vens`` VENs (its module's fleet size)."""
    bench_mqtt_ingest.VENS = vens
    bench_mqtt_ingest.publisher(port, count, rate, 0, 0)


def ingest(url: str, port: int, count: int, ready: Any, out: Any) -> None:
    """A worker process: stores ``count`` messages, then reports rate and lags."""

    async def run() -> dict[str, Any]:
        engine = create_engine(url)
        store = TimedStore(SqlTelemetryStore(engine))
        settings = Settings(
            _env_file=None,  # type: ignore[call-arg]
            mqtt_broker="127.0.0.1", mqtt_port=port, mqtt_batch_size=500,
            mqtt_batch_max_delay_ms=50, mqtt_max_held_samples=200_000,
        )  # fmt: skip
        worker = Worker(
            transport_factory=transport_factory(settings),
            uow_factory=SqlUnitOfWorkFactory(engine), telemetry_store=store,
            shadow_store=None, clock=SystemClock(), settings=settings,
        )  # fmt: skip
        task = asyncio.create_task(worker.run())
        await asyncio.wait_for(worker.ready.wait(), 30)
        ready.set()
        deadline = time.monotonic() + 60 + count / 200
        while store.stored < count and time.monotonic() < deadline:  # noqa: ASYNC110
            await asyncio.sleep(0.05)
        worker.stop()
        await asyncio.wait_for(task, 30)
        await store.inner.close()
        await engine.dispose()
        lags = sorted(store.lags)
        span = store.last_commit - (store.first_call or 0.0)
        return {
            "stored": store.stored,
            "rate": store.stored / span if span > 0 else 0.0,
            "lag_p50_ms": 1000 * lags[len(lags) // 2] if lags else float("nan"),
            "lag_p99_ms": 1000 * lags[int(len(lags) * 0.99)] if lags else float("nan"),
        }

    out.put(asyncio.run(run()))


def read_load(base: str, clients: int, warmed: Any, stop: Any, vens: int, out: Any) -> None:
    """``clients`` concurrent clients until ``stop`` is set: latencies per endpoint."""

    def path(kind: str, rng: random.Random) -> str:
        if kind == "network stats":
            return "/api/stats/network"
        if kind == "VEN page":
            return f"/api/vens/ven-{rng.randrange(vens):05d}"
        if kind == "VEN list page":
            return f"/api/vens?limit=100&offset={rng.randrange(max(1, vens - 100))}"
        return "/api/events?limit=100"

    async def run() -> dict[str, Any]:
        times: dict[str, list[float]] = {k: [] for k in ENDPOINTS}
        failures: dict[str, int] = {k: 0 for k in ENDPOINTS}
        limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)
        headers = {"Authorization": f"Bearer {TOKEN}"}
        async with httpx.AsyncClient(
            base_url=base, headers=headers, limits=limits, timeout=60
        ) as http:

            async def warm(n: int) -> None:
                # Each connection (so each API process) has built its OpenAPI
                # document, its pool and the held load aggregate first.
                for kind in ENDPOINTS:
                    await http.get(path(kind, random.Random(n)))

            await asyncio.gather(*(warm(n) for n in range(clients)))
            warmed.set()  # the publisher starts now
            began = time.monotonic()

            async def client(n: int) -> None:
                rng = random.Random(n)
                i = n
                while not stop.is_set():
                    kind = ENDPOINTS[i % len(ENDPOINTS)]
                    i += 1
                    started = time.perf_counter()
                    answer = await http.get(path(kind, rng))
                    times[kind].append(time.perf_counter() - started)
                    if answer.status_code != 200:
                        failures[kind] += 1

            await asyncio.gather(*(client(n) for n in range(clients)))
        return {"times": times, "failures": failures, "seconds": time.monotonic() - began}

    out.put(asyncio.run(run()))


def seed_events(url: str, count: int) -> None:
    """``count`` completed events, one an hour back from now."""
    dsn = make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)
    now = datetime.now(UTC).replace(microsecond=0)
    rows = [
        (
            f"evt-{n:08x}",
            now - timedelta(hours=n + 2),
            now - timedelta(hours=n + 1),
            10.0 + n % 7,
            9.0,
        )
        for n in range(count)
    ]
    with psycopg.connect(dsn, autocommit=True) as conn, conn.cursor() as cur:
        cur.executemany(
            "INSERT INTO events (event_id, status, start_time, end_time, requested_reduction_kw, "
            "actual_reduction_kw, created_at, activated_at, ended_at) "
            "VALUES (%s, 'completed', %s, %s, %s, %s, %s, %s, %s)",
            [(e, s, t, r, a, s, s, t) for e, s, t, r, a in rows],
        )


def phase(
    url: str, port: int, args: argparse.Namespace, count: int, base: str | None
) -> dict[str, Any]:
    """One ingest of ``count`` messages at ``--rate``, with readers on ``base``."""
    ctx = mp.get_context("spawn")
    ready, warmed, stop = ctx.Event(), ctx.Event(), ctx.Event()
    results, reads = ctx.Queue(), ctx.Queue()
    worker = ctx.Process(target=ingest, args=(url, port, count, ready, results))
    worker.start()
    if not ready.wait(60):
        raise RuntimeError("the worker did not start")
    readers = None
    if base is not None:
        # The readers run for the whole ingest, however long it takes.
        readers = ctx.Process(
            target=read_load, args=(base, args.clients, warmed, stop, args.vens, reads)
        )
        readers.start()
        if not warmed.wait(300):
            raise RuntimeError("the readers did not get their first answers")
    publisher = ctx.Process(target=publish, args=(port, count, args.rate, args.vens))
    publisher.start()
    stats: dict[str, Any] = results.get(timeout=600)
    stop.set()
    publisher.join(30)
    worker.join(30)
    if readers is not None:
        stats["reads"] = reads.get(timeout=120)
        readers.join(30)
    return stats


def serve(url: str, workers: int, pool: int) -> tuple[subprocess.Popen[bytes], str]:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = int(s.getsockname()[1])
    env = {k: v for k, v in os.environ.items() if not k.startswith(("GRIDCORE_", "DB_"))}
    env.update(DATABASE_URL=url, GRIDCORE_API_TOKENS=f"read:{TOKEN}", GRIDCORE_LOG_LEVEL="WARNING")
    env["GRIDCORE_API_DB_POOL_SIZE"] = str(pool)
    proc = subprocess.Popen(
        [GRIDCORE, "serve", "--port", str(port), "--workers", str(workers)],
        env=env,
        stdout=subprocess.DEVNULL,
    )
    base = f"http://127.0.0.1:{port}"
    for _ in range(300):
        try:
            if httpx.get(f"{base}/health", timeout=1).status_code < 500:
                return proc, base
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    proc.kill()
    raise RuntimeError("gridcore serve did not start")


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return 1000 * ordered[min(len(ordered) - 1, int(len(ordered) * q))] if ordered else float("nan")


def report(workers: int, ref: dict[str, Any], loaded: dict[str, Any]) -> None:
    reads = loaded["reads"]
    print(f"\n== gridcore serve --workers {workers} ==")
    print(f"{'endpoint':<16}{'requests':>10}{'req/s':>8}{'p50 ms':>9}{'p99 ms':>9}{'failed':>8}")
    for kind in ENDPOINTS:
        t = reads["times"][kind]
        print(
            f"{kind:<16}{len(t):>10}{len(t) / reads['seconds']:>8.1f}{pct(t, 0.5):>9.1f}"
            f"{pct(t, 0.99):>9.1f}{reads['failures'][kind]:>8}"
        )
    print(f"{'ingest':<22}{'stored':>8}{'msg/s':>9}{'lag p50 ms':>12}{'lag p99 ms':>12}")
    for name, s in (("alone (reference)", ref), ("with the readers", loaded)):
        print(
            f"{name:<22}{s['stored']:>8}{s['rate']:>9.0f}{s['lag_p50_ms']:>12.0f}"
            f"{s['lag_p99_ms']:>12.0f}"
        )
    print(f"ingest rate loaded / alone: {loaded['rate'] / ref['rate']:.2f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--vens", type=int, default=10_000)
    parser.add_argument("--rate", type=float, default=2000.0, help="messages/s published")
    parser.add_argument("--seconds", type=float, default=20.0, help="per phase")
    parser.add_argument("--clients", type=int, default=20)
    parser.add_argument("--workers", default="1,2", help="API process counts, comma-separated")
    parser.add_argument("--events", type=int, default=200)
    parser.add_argument("--api-pool", type=int, default=5, help="GRIDCORE_API_DB_POOL_SIZE")
    args = parser.parse_args()
    started = time.monotonic()
    name, url = fresh_database()
    try:
        asyncio.run(migrate(url, retries=3, wait_seconds=0.5, log=lambda _: None))
        seed_events(url, args.events)
        with tempfile.TemporaryDirectory() as tmp:
            broker, port = start_mosquitto(Path(tmp))
            try:
                # Every VEN reports once: registered, with its loads in ven_latest.
                phase(url, port, args, args.vens, None)
                count = int(args.rate * args.seconds)
                for workers in (int(w) for w in args.workers.split(",")):
                    api, base = serve(url, workers, args.api_pool)
                    try:
                        ref = phase(url, port, args, count, None)
                        loaded = phase(url, port, args, count, base)
                    finally:
                        api.terminate()
                        api.wait(30)
                    report(workers, ref, loaded)
            finally:
                broker.terminate()
                broker.wait(10)
    finally:
        drop_database(name)
    print(f"\n{args.vens} VENs, {args.rate:.0f} msg/s, {args.clients} clients; "
          f"took {time.monotonic() - started:.0f} s")  # fmt: skip


if __name__ == "__main__":
    main()
