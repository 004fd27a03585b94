"""Benchmark: 1, 2 and 4 ``gridcore worker`` processes on one MQTT 5 shared
subscription (``MQTT_SHARED_GROUP``), same publisher load, same machine.

Each run gets a fresh database (the fleet registered first, as in steady
state) and a fresh Mosquitto of its own; N real worker processes join the
group ``$share/bench/volttron/metering``; one publisher process then sends
``--messages`` 10-circuit telemetry messages as fast as it can at QoS 1
(``bench_mqtt_ingest``'s publisher and message). A run reports:

- stored messages/s, from the first row visible to the last (a count(*)
  polled every 0.25 s), and its ratio to the 1-worker run of the same
  invocation: the scale-out figure;
- that nothing is lost or stored twice: rows in SQL vs published, distinct
  (ven_id, timestamp), load rows = 10 per message, and the workers' own
  totals (logged at stop) of messages received, which add up to the count
  published only if the broker gave each message to exactly one member;
- where the time goes: CPU seconds per message of the worker processes
  (summed), of the PostgreSQL backends serving the run's database (from
  /proc/<pid>/stat, before/after), of Mosquitto, of the publisher, and the
  whole machine's busy cores during the run (other users of the machine
  included): on two cores, the sum is the budget the workers share.

Usage: ``python benchmarks/bench_scale_out.py [--messages 40000] [--workers 1,2,4] [--rounds 1]``
Needs ``mosquitto`` on PATH and PostgreSQL (GRIDCORE_TEST_PG_* or 127.0.0.1:5432).
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing as mp
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import psycopg

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_mqtt_ingest import (
    PG_HOST,
    PG_PORT,
    PG_USER,
    drop_database,
    fresh_database,
    publisher,
    register_fleet,
)
from brokers import start_mosquitto
from procstat import (
    CpuMeter,
    backend_pids,
    cpu_seconds,
    machine_busy,
    start_worker,
    stop_process,
    wait_for_log,
)

from adapters.sql.engine import create_engine
from adapters.sql.migrate import migrate
from adapters.sql.telemetry import SqlTelemetryStore

GROUP = "bench"
# The fleet's registration rows are dated 2024-01-01; the run's rows are "now".
RUN_ROWS = "FROM ven_telemetry WHERE timestamp > '2025-01-01'"
TOTALS = re.compile(
    r"worker stopped; received (\d+) \((.*?)\); stored (\d+), duplicates (\d+), dead letters (\d+)"
)


@dataclass
class Run:
    workers: int
    published: int
    rows: int
    distinct: int
    load_rows: int
    dead_letters: int
    received: list[int]  # telemetry messages each worker took from the broker
    duplicates: int
    seconds: float
    worker_cpu: float
    postgres_cpu: float
    broker_cpu: float
    publisher_cpu: float
    machine_busy_cores: float

    @property
    def rate(self) -> float:
        return self.rows / self.seconds if self.seconds > 0 else 0.0

    def us_per_msg(self, cpu: float) -> float:
        return 1e6 * cpu / max(self.rows, 1)

    @property
    def exact(self) -> bool:
        """Every message stored once, and delivered to exactly one worker."""
        return (
            self.rows == self.distinct == self.published
            and self.load_rows == 10 * self.published
            and sum(self.received) == self.published
            and self.duplicates == 0
            and self.dead_letters == 0
        )


async def prepare(url: str) -> None:
    await migrate(url, retries=3, wait_seconds=0.5)
    engine = create_engine(url)
    try:
        store = SqlTelemetryStore(engine)
        await register_fleet(store)
        await store.close()
    finally:
        await engine.dispose()


def dsn(database: str) -> str:
    return f"host={PG_HOST} port={PG_PORT} user={PG_USER} dbname={database}"


def run(workers: int, messages: int, batch: int, logs: Path) -> Run:
    name, url = fresh_database()
    procs = []
    try:
        asyncio.run(prepare(url))
        with tempfile.TemporaryDirectory() as tmp:
            broker, port = start_mosquitto(Path(tmp))
            try:
                own = Path(tempfile.mkdtemp(prefix=f"{workers}w-", dir=logs))  # one per run
                log_files = [own / f"worker-{n}.log" for n in range(workers)]
                for n, log in enumerate(log_files):
                    procs.append(
                        start_worker(
                            log,
                            url,
                            port,
                            MQTT_SHARED_GROUP=GROUP,
                            MQTT_CLIENT_ID=f"bench-worker-{n}",
                            MQTT_BATCH_SIZE=str(batch),
                            MQTT_MAX_HELD_SAMPLES="200000",
                            # Ingest only: no dispatcher or measurer passes in the figures.
                            EVENT_COMMAND_ENABLED="false",
                        )
                    )
                for proc, log in zip(procs, log_files, strict=True):
                    wait_for_log(proc, log, "consuming ")
                return measure(name, workers, messages, procs, log_files, broker.pid, port)
            finally:
                for proc in procs:
                    stop_process(proc)
                stop_process(broker)
    finally:
        drop_database(name)


def measure(
    name: str,
    workers: int,
    messages: int,
    procs: list[subprocess.Popen[bytes]],
    log_files: list[Path],
    broker_pid: int,
    port: int,
) -> Run:
    worker_pids = [p.pid for p in procs]
    pg = CpuMeter()
    pg.start(backend_pids(dsn(name), name))
    worker_cpu = [cpu_seconds(pid) for pid in worker_pids]
    broker_cpu = cpu_seconds(broker_pid)
    busy0, total0 = machine_busy()
    reaped = os.times()  # the publisher's CPU counts here once it is joined
    pub = mp.get_context("spawn").Process(target=publisher, args=(port, messages, 0.0, 1, 0))
    pub.start()
    first: float | None = None
    rows = 0
    deadline = time.monotonic() + max(180.0, messages / 200)
    with psycopg.connect(dsn(name), autocommit=True) as conn:
        while rows < messages and time.monotonic() < deadline:
            time.sleep(0.25)
            (rows,) = conn.execute(f"SELECT count(*) {RUN_ROWS}").fetchone()  # type: ignore[misc]
            if rows and first is None:
                first = time.monotonic()
        last = time.monotonic()
        busy1, total1 = machine_busy()
        postgres_cpu = pg.stop(backend_pids(dsn(name), name))
        used = sum(cpu_seconds(pid) for pid in worker_pids) - sum(worker_cpu)
        broker_used = cpu_seconds(broker_pid) - broker_cpu
        pub.join(60)
        publisher_cpu = sum(os.times()[2:4]) - sum(reaped[2:4])  # children user + system
        (rows, distinct), *_ = conn.execute(
            f"SELECT count(*), count(DISTINCT (ven_id, timestamp)) {RUN_ROWS}"
        ).fetchall()
        (load_rows,) = conn.execute(
            "SELECT count(*) FROM ven_load_samples WHERE timestamp > '2025-01-01'"
        ).fetchone()  # type: ignore[misc]
        (dead,) = conn.execute("SELECT count(*) FROM dead_letters").fetchone()  # type: ignore[misc]
    for proc in procs:
        stop_process(proc)
    received, duplicates = [], 0
    for log in log_files:
        found = TOTALS.search(log.read_text(errors="replace"))
        if found is None:
            raise RuntimeError(f"no totals in {log}:\n{log.read_text()[-2000:]}")
        kinds = dict(k.split(" ") for k in found.group(2).split(", ") if " " in k)
        received.append(int(kinds.get("telemetry", 0)))
        duplicates += int(found.group(4))
    wall = last - (first or last)
    return Run(
        workers=workers, published=messages, rows=rows, distinct=distinct, load_rows=load_rows,
        dead_letters=dead, received=received, duplicates=duplicates, seconds=wall,
        worker_cpu=used, postgres_cpu=postgres_cpu, broker_cpu=broker_used,
        publisher_cpu=publisher_cpu,
        machine_busy_cores=(busy1 - busy0) / ((total1 - total0) or 1) * (os.cpu_count() or 1),
    )  # fmt: skip


def table(runs: list[Run]) -> str:
    by_n: dict[int, list[Run]] = {}
    for r in runs:
        by_n.setdefault(r.workers, []).append(r)
    reference = statistics.median(r.rate for r in by_n.get(1, runs[:1]))
    lines = [
        "workers  msg/s  ratio  worker µs/msg  postgres µs/msg  mosquitto µs/msg  "
        "publisher µs/msg  busy cores  exact  received per worker",
    ]
    for n, group in sorted(by_n.items()):
        for r in group:
            lines.append(
                f"{n:>7}  {r.rate:5.0f}  {r.rate / reference:5.2f}  "
                f"{r.us_per_msg(r.worker_cpu):13.0f}  {r.us_per_msg(r.postgres_cpu):15.0f}  "
                f"{r.us_per_msg(r.broker_cpu):16.0f}  {r.us_per_msg(r.publisher_cpu):16.0f}  "
                f"{r.machine_busy_cores:10.2f}  "
                f"{'yes' if r.exact else 'NO':>5}  {r.received}"
            )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=40_000)
    parser.add_argument("--workers", default="1,2,4", help="worker counts, comma-separated")
    parser.add_argument("--rounds", type=int, default=1, help="repeat the counts, interleaved")
    parser.add_argument("--batch", type=int, default=500)
    args = parser.parse_args()
    counts = [int(n) for n in args.workers.split(",")]
    runs: list[Run] = []
    started = time.monotonic()
    with tempfile.TemporaryDirectory() as logs:
        for _ in range(args.rounds):
            for n in counts:
                r = run(n, args.messages, args.batch, Path(logs))
                runs.append(r)
                print(
                    f"{n} worker(s): {r.rows}/{r.published} rows ({r.distinct} distinct, "
                    f"{r.load_rows} load rows), received {r.received}, duplicates "
                    f"{r.duplicates}, dead letters {r.dead_letters}, {r.rate:.0f} msg/s",
                    flush=True,
                )
    print(table(runs))
    print(f"({len(runs)} runs of {args.messages} messages in {time.monotonic() - started:.0f} s)")
    if not all(r.exact for r in runs):
        sys.exit("a run lost, duplicated or dead-lettered messages")


if __name__ == "__main__":
    main()
