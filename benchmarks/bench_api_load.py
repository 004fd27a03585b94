"""Benchmark: the API under 20 concurrent clients while a real worker ingests.

A fresh PostgreSQL database and a Mosquitto of its own (``brokers.py``); a
fleet of ``--vens`` VENs, each of which first reports once (10 circuits and 10
loads: ``bench_mqtt_ingest.message``), and ``--events`` past events. Then for
each ``--workers`` count, ``gridcore serve --workers N`` runs as its own
processes and three phases of ``--seconds`` each are measured, ingest being a
worker process (``entrypoints.worker.Worker``, COPY into PostgreSQL) taking
``--rate`` messages/s from a publisher process (``bench_mqtt_ingest.publisher``):

1. ingest alone (the reference);
2. readers alone: ``--clients`` HTTP clients without ingest;
3. both: ingest and the readers.

The readers are one process of ``--clients`` kept-alive HTTP/1.1 connections
on a bare asyncio client (a request line out, a Content-Length body in: a
tenth of httpx's CPU per request, so the API's figures are not the client's),
after one untimed round of every endpoint on each (every API process warm),
cycling over ``/api/stats/network`` (``network``), a VEN's page
``/api/vens/{id}`` (``ven``), a ``/api/vens`` page (``limit=100`` at a
random offset: ``list``) and the event list ``/api/events`` (``events``), or
those of ``--endpoints``. With ``--read-rate 0`` each client sends its next request
when the previous one is answered (closed loop: the API gets whatever CPU it
can take); with ``--read-rate R`` the clients together send R requests/s on a
fixed schedule, and a latency counts from the request's scheduled time (a
client that fell behind is charged its wait too).

Reports per endpoint p50/p99 (ms) and requests/s, for each phase the ingest
rate (stored messages/s) and lag p50/p99 (publish to committed, ms), and the
CPU seconds each process used (from /proc, ``procstat``): the API processes
and their PostgreSQL backends (``application_name`` gridcore-api) per
request, the worker and the other backends of the database per message, the
publisher, Mosquitto and the readers themselves, and the machine's busy
share (other users of the cores included).

Usage::

    python benchmarks/bench_api_load.py [--vens 10000] [--rate 2000] [--seconds 20]
        [--clients 20] [--read-rate 0] [--endpoints network,ven,list,events]
        [--workers 1,2] [--events 200] [--api-pool 5]

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
import procstat
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
SHORT = dict(zip(("network", "ven", "list", "events"), ENDPOINTS, strict=True))


def publish(port: int, count: int, rate: float, vens: int) -> None:
    """bench_mqtt_ingest's publisher over ``vens`` VENs (its module's fleet size)."""
    bench_mqtt_ingest.VENS = vens
    bench_mqtt_ingest.publisher(port, count, rate, 0, 0)


def ingest(url: str, port: int, count: int, ready: Any, done: Any, measured: Any, out: Any) -> None:
    """A worker process: stores ``count`` messages, then reports rate and lags.
    It says when it is ``done`` and keeps its connections until ``measured``
    (their backends' CPU is read before they go)."""

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
        done.set()
        await asyncio.to_thread(measured.wait, 60)
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


class BareHttp:
    """One kept-alive HTTP/1.1 connection: GET out, status and Content-Length
    body in. Nothing else is parsed (the API answers every path read here with
    a length), so the readers' own CPU stays small beside the API's."""

    def __init__(self, host: str, port: int, token: str) -> None:
        self.host, self.port = host, port
        self.head = f"Host: {host}:{port}\r\nAuthorization: Bearer {token}\r\n\r\n".encode()
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def get(self, path: str) -> int:
        if self.reader is None or self.writer is None:
            self.reader, self.writer = await asyncio.open_connection(self.host, self.port)
        self.writer.write(b"GET " + path.encode() + b" HTTP/1.1\r\n" + self.head)
        head = await self.reader.readuntil(b"\r\n\r\n")
        status = int(head[9:12])
        at = head.lower().find(b"\r\ncontent-length:")
        if at < 0:
            raise RuntimeError(f"{path}: no Content-Length in {head[:200]!r}")
        length = int(head[at + 17 : head.index(b"\r\n", at + 2)])
        await self.reader.readexactly(length)
        return status

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()


def read_load(
    base: str,
    clients: int,
    rate: float,
    endpoints: tuple[str, ...],
    warmed: Any,
    stop: Any,
    vens: int,
    out: Any,
) -> None:
    """``clients`` concurrent clients until ``stop`` is set, cycling over
    ``endpoints``: latencies per endpoint. ``rate`` > 0: together that many
    requests/s on a schedule."""

    def path(kind: str, rng: random.Random) -> str:
        if kind == "network stats":
            return "/api/stats/network"
        if kind == "VEN page":
            return f"/api/vens/ven-{rng.randrange(vens):05d}"
        if kind == "VEN list page":
            return f"/api/vens?limit=100&offset={rng.randrange(max(1, vens - 100))}"
        return "/api/events?limit=100"

    async def run() -> dict[str, Any]:
        times: dict[str, list[float]] = {k: [] for k in endpoints}
        failures: dict[str, int] = {k: 0 for k in endpoints}
        host, port = base.removeprefix("http://").split(":")
        https = [BareHttp(host, int(port), TOKEN) for _ in range(clients)]

        async def warm(n: int) -> None:
            # Each connection (so each API process) has built its pool and
            # the held load aggregate first.
            for kind in endpoints:
                await https[n].get(path(kind, random.Random(n)))

        await asyncio.gather(*(warm(n) for n in range(clients)))
        warmed.set()  # the publisher starts now
        began = time.monotonic()
        every = clients / rate if rate > 0 else 0.0

        async def client(n: int) -> None:
            rng = random.Random(n)
            i = n
            due = began + every * n / clients  # spread over the first interval
            while not stop.is_set():
                if every:
                    await asyncio.sleep(max(0.0, due - time.monotonic()))
                kind = endpoints[i % len(endpoints)]
                i += 1
                started = time.perf_counter()
                # Open loop: charged from when it was due (a late client waited too).
                late = max(0.0, time.monotonic() - due) if every else 0.0
                status = await https[n].get(path(kind, rng))
                times[kind].append(time.perf_counter() - started + late)
                if status != 200:
                    failures[kind] += 1
                due += every

        await asyncio.gather(*(client(n) for n in range(clients)))
        for http in https:
            http.close()
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


API_APP = "gridcore-api"  # the API's application_name (entrypoints.container)


def descendants(pid: int) -> set[int]:
    """``pid`` and every process under it (uvicorn's workers, their helpers)."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            parent = int(stat[stat.rindex(")") + 2 :].split()[1])
            children.setdefault(parent, []).append(int(entry.name))
    found, todo = set(), [pid]
    while todo:
        p = todo.pop()
        found.add(p)
        todo.extend(children.get(p, []))
    return found


def backends(url: str) -> dict[str, set[int]]:
    """The database's PostgreSQL processes: the API's, and the others
    (the worker's, autovacuum)."""
    dsn = make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)
    database = make_url(url).database
    with psycopg.connect(dsn, autocommit=True) as conn:
        rows = conn.execute(
            "SELECT pid, application_name FROM pg_stat_activity "
            "WHERE datname = %s AND pid <> pg_backend_pid()",
            (database,),
        ).fetchall()
    found: dict[str, set[int]] = {"PG for the API": set(), "PG for ingest": set()}
    for pid, app in rows:
        found["PG for the API" if app == API_APP else "PG for ingest"].add(int(pid))
    return found


class Meters:
    """CPU seconds of each group of processes over one phase."""

    def __init__(self, groups: Any) -> None:
        self.groups = groups  # () -> {name: pids}, asked at start and stop
        self.meters: dict[str, procstat.CpuMeter] = {}
        self.began = 0.0
        self.machine = (0.0, 0.0)

    def start(self) -> None:
        self.began, self.machine = time.monotonic(), procstat.machine_busy()
        for name, pids in self.groups().items():
            self.meters[name] = procstat.CpuMeter()
            self.meters[name].start(pids)

    def stop(self) -> dict[str, Any]:
        wall = time.monotonic() - self.began
        busy, total = (a - b for a, b in zip(procstat.machine_busy(), self.machine, strict=True))
        now = self.groups()
        cpu = {name: m.stop(now.get(name, ())) for name, m in self.meters.items()}
        return {"cpu": cpu, "wall": wall, "busy": busy / total if total else float("nan")}


def phase(
    url: str,
    port: int,
    args: argparse.Namespace,
    count: int,
    base: str | None,
    api: subprocess.Popen[bytes] | None = None,
) -> dict[str, Any]:
    """One phase: ``count`` messages at ``--rate`` (none: readers alone for
    ``--seconds``), with readers on ``base`` (None: no readers)."""
    ctx = mp.get_context("spawn")
    ready, warmed, stop = ctx.Event(), ctx.Event(), ctx.Event()
    done, measured = ctx.Event(), ctx.Event()
    results, reads = ctx.Queue(), ctx.Queue()
    procs: dict[str, Any] = {}
    if count:
        procs["worker"] = ctx.Process(
            target=ingest, args=(url, port, count, ready, done, measured, results)
        )
        procs["worker"].start()
        if not ready.wait(60):
            raise RuntimeError("the worker did not start")
    if base is not None:
        # The readers run for the whole ingest, however long it takes.
        procs["readers"] = ctx.Process(
            target=read_load,
            args=(
                base,
                args.clients,
                args.read_rate,
                args.endpoints,
                warmed,
                stop,
                args.vens,
                reads,
            ),
        )
        procs["readers"].start()
        if not warmed.wait(300):
            raise RuntimeError("the readers did not get their first answers")

    def groups() -> dict[str, set[int]]:
        found = {name: {p.pid} for name, p in procs.items() if p.pid is not None}
        if api is not None:
            found["API processes"] = descendants(api.pid)
        return {**found, **backends(url), "mosquitto": {args.broker_pid}}

    meters = Meters(groups)
    if count:
        procs["publisher"] = ctx.Process(target=publish, args=(port, count, args.rate, args.vens))
        procs["publisher"].start()
    meters.start()
    if count:
        done.wait(600)
    else:
        time.sleep(args.seconds)
    usage = meters.stop()  # before the worker lets its connections go
    measured.set()
    stats: dict[str, Any] = results.get(timeout=120) if count else {}
    stats["usage"] = usage
    stop.set()
    for name, proc in procs.items():
        if name != "readers":
            proc.join(30)
    if base is not None:
        stats["reads"] = reads.get(timeout=120)
        procs["readers"].join(30)
    return stats


def serve(
    url: str, workers: int, pool: int, **settings: str
) -> tuple[subprocess.Popen[bytes], str]:
    """``gridcore serve`` on a free port; ``settings``: more of its environment."""
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = int(s.getsockname()[1])
    env = {k: v for k, v in os.environ.items() if not k.startswith(("GRIDCORE_", "DB_"))}
    env.update(DATABASE_URL=url, GRIDCORE_API_TOKENS=f"read:{TOKEN}", GRIDCORE_LOG_LEVEL="WARNING")
    env["GRIDCORE_API_DB_POOL_SIZE"] = str(pool)
    env.update(settings)
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


GROUPS = (
    "API processes",
    "PG for the API",
    "readers",
    "worker",
    "PG for ingest",
    "publisher",
    "mosquitto",
)


def report_reads(title: str, reads: dict[str, Any]) -> int:
    print(f"-- {title}")
    print(f"{'endpoint':<16}{'requests':>10}{'req/s':>8}{'p50 ms':>9}{'p99 ms':>9}{'failed':>8}")
    every: list[float] = []
    for kind in reads["times"]:
        t = reads["times"][kind]
        every += t
        print(
            f"{kind:<16}{len(t):>10}{len(t) / reads['seconds']:>8.1f}{pct(t, 0.5):>9.1f}"
            f"{pct(t, 0.99):>9.1f}{reads['failures'][kind]:>8}"
        )
    print(
        f"{'all':<16}{len(every):>10}{len(every) / reads['seconds']:>8.1f}"
        f"{pct(every, 0.5):>9.1f}{pct(every, 0.99):>9.1f}"
    )
    return len(every)


def report_cpu(phases: dict[str, dict[str, Any]]) -> None:
    """CPU seconds per second of wall (cores) of each group in each phase;
    per request (ms) for the API's groups, per message (µs) for ingest's."""
    names = list(phases)
    print(f"{'CPU, cores busy':<18}" + "".join(f"{n:>22}" for n in names))
    for group in GROUPS:
        cells = []
        for n in names:
            usage, stats = phases[n]["usage"], phases[n]
            cpu = usage["cpu"].get(group)
            if cpu is None:
                cells.append(f"{'-':>22}")
                continue
            cell = f"{cpu / usage['wall']:.2f}"
            requests = stats.get("requests", 0)
            if group in ("API processes", "PG for the API", "readers") and requests:
                cell += f" ({1000 * cpu / requests:.2f} ms/req)"
            elif group not in ("API processes", "PG for the API", "readers") and stats.get(
                "stored"
            ):
                cell += f" ({1e6 * cpu / stats['stored']:.0f} µs/msg)"
            cells.append(f"{cell:>22}")
        print(f"{group:<18}" + "".join(cells))
    print(f"{'machine busy':<18}" + "".join(f"{phases[n]['usage']['busy']:>22.0%}" for n in names))


def report(
    workers: int, ref: dict[str, Any], alone: dict[str, Any], loaded: dict[str, Any]
) -> None:
    print(f"\n== gridcore serve --workers {workers} ==")
    alone["requests"] = report_reads("readers alone (no ingest)", alone["reads"])
    loaded["requests"] = report_reads("readers while ingesting", loaded["reads"])
    print(f"{'ingest':<22}{'stored':>8}{'msg/s':>9}{'lag p50 ms':>12}{'lag p99 ms':>12}")
    for name, s in (("alone (reference)", ref), ("with the readers", loaded)):
        print(
            f"{name:<22}{s['stored']:>8}{s['rate']:>9.0f}{s['lag_p50_ms']:>12.0f}"
            f"{s['lag_p99_ms']:>12.0f}"
        )
    print(f"ingest rate loaded / alone: {loaded['rate'] / ref['rate']:.2f}")
    report_cpu({"ingest alone": ref, "readers alone": alone, "both": loaded})


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--vens", type=int, default=10_000)
    parser.add_argument("--rate", type=float, default=2000.0, help="messages/s published")
    parser.add_argument("--seconds", type=float, default=20.0, help="per phase")
    parser.add_argument("--clients", type=int, default=20)
    parser.add_argument(
        "--read-rate", type=float, default=0.0, help="requests/s of all clients; 0: closed loop"
    )
    parser.add_argument(
        "--endpoints",
        default=",".join(SHORT),
        help=f"what the clients cycle over, comma-separated, of {','.join(SHORT)}",
    )
    parser.add_argument("--workers", default="1,2", help="API process counts, comma-separated")
    parser.add_argument("--events", type=int, default=200)
    parser.add_argument("--api-pool", type=int, default=5, help="GRIDCORE_API_DB_POOL_SIZE")
    args = parser.parse_args()
    args.endpoints = tuple(SHORT[e] for e in args.endpoints.split(","))
    started = time.monotonic()
    print(f"load average at the start: {os.getloadavg()[0]:.2f}")
    name, url = fresh_database()
    try:
        asyncio.run(migrate(url, retries=3, wait_seconds=0.5, log=lambda _: None))
        seed_events(url, args.events)
        with tempfile.TemporaryDirectory() as tmp:
            broker, port = start_mosquitto(Path(tmp))
            args.broker_pid = broker.pid
            try:
                # Every VEN reports once: registered, with its loads in ven_latest.
                phase(url, port, args, args.vens, None)
                count = int(args.rate * args.seconds)
                for workers in (int(w) for w in args.workers.split(",")):
                    api, base = serve(url, workers, args.api_pool)
                    try:
                        ref = phase(url, port, args, count, None, api)
                        alone = phase(url, port, args, 0, base, api)
                        loaded = phase(url, port, args, count, base, api)
                    finally:
                        api.terminate()
                        api.wait(30)
                    report(workers, ref, alone, loaded)
            finally:
                broker.terminate()
                broker.wait(10)
    finally:
        drop_database(name)
    rate = f"{args.read_rate:.0f} req/s" if args.read_rate else "closed loop"
    rate += ", over " + ", ".join(args.endpoints)
    took = time.monotonic() - started
    print(f"\n{args.vens} VENs, {args.rate:.0f} msg/s, {args.clients} clients ({rate}); "
          f"took {took:.0f} s; load average now {os.getloadavg()[0]:.2f}")  # fmt: skip


if __name__ == "__main__":
    main()
