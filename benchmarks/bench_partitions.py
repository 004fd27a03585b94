"""Benchmark: telemetry ingest into day-partitioned tables vs unpartitioned
ones, and dropping a full day's partition while ingest runs.

1. Ingest: ``SqlTelemetryStore.append`` in batches (binary COPY) of the same
   10-circuit messages as ``bench_ingest.py``, into a fresh database at
   the head schema without migration 0010 (unpartitioned, the reference, with
   the ingest statements as they were then: ``PostgresBatchWriter(by_span=False)``)
   and one at head (partitioned
   by day, with the 36 days of a 35-day retention and the days ahead made, as
   a worker leaves them). Rounds alternate the two (ABBA), each on a fresh
   database, so drift of a shared machine hits both. Figure: partitioned / unpartitioned.
2. Drop: a day 40 days back filled with ``--drop-rows`` telemetry rows (SQL
   ``generate_series``, a raw payload of ``--payload`` bytes), ingest running
   into today meanwhile; a retention pass drops the day. Figures: the pass's
   duration, and the longest ingest batch that overlapped it against the
   median batch before it (the stall).

Usage::

    python benchmarks/bench_partitions.py \\
        --url postgresql+psycopg://postgres@127.0.0.1:5432/gridcore_bench \\
        [--messages 30000] [--batch 1000] [--vens 1000] [--rounds 4] \\
        [--drop-rows 1000000] [--payload 300] [--migrate-rows 0]

Databases are created with a random suffix and dropped at the end.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import statistics
import sys
import time
import uuid
from datetime import timedelta
from pathlib import Path

import psycopg
from sqlalchemy import text
from sqlalchemy.engine import make_url

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_ingest import CIRCUITS, T0, make_days, samples, store

from adapters.sql.engine import create_engine
from adapters.sql.ingest_pg import PostgresBatchWriter
from adapters.sql.migrate import migrate
from adapters.sql.partitions import PostgresPartitions
from adapters.sql.telemetry import SqlTelemetryStore
from gridcore.retention import RetentionPolicy
from gridcore.telemetry import TelemetrySample
from gridcore.ven import DEFAULT_OFFLINE_AFTER

DAY = timedelta(days=1)


class Logged(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(record.getMessage())


UNPARTITIONED = "unpartitioned"


class Database:
    """A fresh database at ``revision``, dropped on exit. ``UNPARTITIONED``:
    every migration but 0010 (partitioning), so that the reference has the
    tables today's ingest statements write (0011's among them)."""

    def __init__(self, url: str, revision: str) -> None:
        parsed = make_url(url)
        self.name = f"{parsed.database or 'gridcore_bench'}_{uuid.uuid4().hex[:8]}"
        self.url = parsed.set(database=self.name).render_as_string(hide_password=False)
        self.admin = parsed.set(drivername="postgresql", database="postgres").render_as_string(
            hide_password=False
        )
        self.revision = revision

    def __enter__(self) -> str:
        with psycopg.connect(self.admin, autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{self.name}"')
        quiet = {"retries": 3, "log": lambda _: None}
        if self.revision != UNPARTITIONED:
            asyncio.run(migrate(self.url, revision=self.revision, **quiet))  # type: ignore[arg-type]
            return self.url
        asyncio.run(migrate(self.url, revision="0009", **quiet))  # type: ignore[arg-type]
        with psycopg.connect(
            make_url(self.url).set(drivername="postgresql").render_as_string(hide_password=False)
        ) as conn:
            conn.execute("UPDATE alembic_version SET version_num = '0010'")
        asyncio.run(migrate(self.url, **quiet))  # type: ignore[arg-type]
        return self.url

    def __exit__(self, *_: object) -> None:
        with psycopg.connect(self.admin, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{self.name}" WITH (FORCE)')


async def ingest(url: str, data: list[TelemetrySample], size: int, *, by_span: bool) -> float:
    def old_statements(store_: SqlTelemetryStore) -> None:
        # The reference runs the statements as they were before partitioning.
        store_._writer = PostgresBatchWriter(store_._engine, DEFAULT_OFFLINE_AFTER, by_span=by_span)

    return await store(url, data, size, writer=old_statements)


async def drop_while_ingesting(
    url: str, data: list[TelemetrySample], size: int, rows: int, payload: int
) -> dict[str, float]:
    engine = create_engine(url)
    old = T0 - 40 * DAY
    await PostgresPartitions(engine).enforce(RetentionPolicy(raw_days=100), old)
    async with engine.begin() as conn:
        started = time.perf_counter()
        await conn.execute(
            text(
                "INSERT INTO ven_telemetry (ven_id, timestamp, used_power_kw, raw_payload)"
                " SELECT 'ven-' || (n % 1000), CAST(:t AS timestamptz) + n * interval '5 ms',"
                " n, repeat('x', :p) FROM generate_series(1, :n) n"
            ),
            {"t": old, "n": rows, "p": payload},
        )
    fill = time.perf_counter() - started
    async with engine.connect() as conn:
        # Flush the fill's pages now: left to the next checkpoint, writing them
        # out slows the ingest being measured (batches of 0.2 s took over 2 s).
        await conn.execute(text("CHECKPOINT"))
    async with engine.connect() as conn:
        size_mb = await conn.scalar(
            text(f"SELECT pg_total_relation_size('ven_telemetry_p{old:%Y%m%d}') / 1e6")
        )
    writer = SqlTelemetryStore(engine)
    await writer.append(data[:size])
    batches: list[tuple[float, float]] = []  # (start, end)
    stop = asyncio.Event()

    async def ingesting() -> None:
        i = size
        while not stop.is_set() and i < len(data):
            begun = time.perf_counter()
            await writer.append(data[i : i + size])
            batches.append((begun, time.perf_counter()))
            i += size

    task = asyncio.create_task(ingesting())
    await asyncio.sleep(2.0)
    begun = time.perf_counter()
    report = await PostgresPartitions(engine).enforce(RetentionPolicy(raw_days=35), T0)
    ended = time.perf_counter()
    await asyncio.sleep(1.0)
    stop.set()
    await task
    await writer.close()
    await engine.dispose()
    assert report is not None and any(d.startswith("ven_telemetry:") for d in report.dropped)
    before = [e - s for s, e in batches if e < begun]
    during = [e - s for s, e in batches if s < ended and e > begun]
    return {
        "fill_s": fill,
        "size_mb": float(size_mb or 0),
        "drop_s": ended - begun,
        "median_batch_s": statistics.median(before) if before else float("nan"),
        "longest_during_s": max(during) if during else 0.0,
        "batches_during": float(len(during)),
    }


async def migration(url: str, rows: int) -> dict[str, float]:
    """Migration 0010 on a 0009 database of ``rows`` telemetry rows (over 30
    days, 10 load rows each), against the reference: a plain copy of the same
    two tables with their indexes (what any rewrite costs)."""
    engine = create_engine(url)
    async with engine.begin() as conn:
        await conn.execute(
            text(
                "INSERT INTO ven_telemetry (ven_id, timestamp, used_power_kw, raw_payload)"
                " SELECT 'ven-' || (n % 1000), CAST(:t AS timestamptz) - n * interval '2.5 s',"
                " n, repeat('x', 300) FROM generate_series(1, :n) n"
            ),
            {"t": T0, "n": rows},
        )
        await conn.execute(
            text(
                "INSERT INTO ven_load_samples (ven_id, timestamp, load_id, telemetry_id, name)"
                " SELECT ven_id, timestamp, 'circuit_' || c, id, 'Circuit'"
                " FROM ven_telemetry, generate_series(1, 10) c"
            )
        )
    started = time.perf_counter()
    async with engine.begin() as conn:
        for table in ("ven_telemetry", "ven_load_samples"):
            await conn.execute(text(f"CREATE TABLE copy_{table} (LIKE {table} INCLUDING ALL)"))
            await conn.execute(text(f"INSERT INTO copy_{table} SELECT * FROM {table}"))
            await conn.execute(text(f"DROP TABLE copy_{table}"))
    reference = time.perf_counter() - started
    await engine.dispose()
    started = time.perf_counter()
    await migrate(url, log=lambda _: None)
    return {"migrate_s": time.perf_counter() - started, "copy_s": reference}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--url", default="postgresql+psycopg://postgres@127.0.0.1:5432/gridcore_bench"
    )
    parser.add_argument("--messages", type=int, default=30_000)
    parser.add_argument("--batch", type=int, default=1000)
    parser.add_argument("--vens", type=int, default=1000)
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument("--drop-rows", type=int, default=1_000_000)
    parser.add_argument("--payload", type=int, default=300)
    parser.add_argument(
        "--migrate-rows", type=int, default=0, help="also time migration 0010 on this many rows"
    )
    args = parser.parse_args()

    if args.migrate_rows:
        with Database(args.url, "0009") as url:
            timed = asyncio.run(migration(url, args.migrate_rows))
        print(
            f"migration 0010 of {args.migrate_rows:,} telemetry + {args.migrate_rows * 10:,} "
            f"load rows: {timed['migrate_s']:.1f} s; plain copy of both tables with indexes "
            f"{timed['copy_s']:.1f} s; ratio {timed['migrate_s'] / timed['copy_s']:.2f}\n"
        )

    print(f"preparing {args.messages:,} messages ({len(CIRCUITS)} circuits, {args.vens} VENs)...")
    data = samples(args.messages + args.batch, args.vens)
    if args.rounds:  # 0: the drop only
        rates: dict[str, list[float]] = {"unpartitioned": [], "partitioned (head)": []}
        days = 0
        for round_ in range(args.rounds):
            # ABBA: odd rounds start with the partitioned schema, so order effects cancel.
            pair = (UNPARTITIONED, "head")
            for revision in pair if round_ % 2 == 0 else pair[::-1]:
                with Database(args.url, revision) as url:
                    if revision == "head":
                        days = asyncio.run(make_days(url))
                    rate = asyncio.run(ingest(url, data, args.batch, by_span=revision == "head"))
                rates[
                    "unpartitioned" if revision == UNPARTITIONED else "partitioned (head)"
                ].append(rate)
        rows = 1 + len(data[0].loads)
        print(f"\ningest, batches of {args.batch}, {rows} rows a message ({days} day partitions):")
        print(f"{'schema':24} {'messages/s (each round)':>36} {'median rows/s':>14}")
        for name, values in rates.items():
            each = ", ".join(f"{v:,.0f}" for v in values)
            print(f"{name:24} {each:>36} {statistics.median(values) * rows:>14,.0f}")
        ratio = statistics.median(rates["partitioned (head)"]) / statistics.median(
            rates["unpartitioned"]
        )
        print(f"ratio partitioned / unpartitioned: {ratio:.2f}")

    with Database(args.url, "head") as url:
        asyncio.run(make_days(url))
        # The maintainer's attempts and time per step, as it logs them.
        steps = logging.getLogger("adapters.sql.partitions")
        steps.setLevel(logging.DEBUG)
        steps.propagate = False
        steps.addHandler(logged := Logged())
        figures = asyncio.run(
            drop_while_ingesting(url, data, args.batch, args.drop_rows, args.payload)
        )
    print(
        f"\ndrop a day of {args.drop_rows:,} rows ({figures['size_mb']:,.0f} MB, "
        f"filled in {figures['fill_s']:.1f} s) while ingest runs:"
    )
    print(f"  retention pass (detach + drop, all five tables): {figures['drop_s'] * 1000:8.0f} ms")
    full = f"_drop_day ven_telemetry {(T0 - 40 * DAY).date().isoformat()}:"
    for line in logged.lines:
        if line.startswith(full):
            print(f"  of which the full day of ven_telemetry:        {line.split(': ', 1)[1]}")
    print(
        "  median ingest batch before it:                   "
        f"{figures['median_batch_s'] * 1000:8.0f} ms"
    )
    print(
        f"  longest ingest batch overlapping it:             "
        f"{figures['longest_during_s'] * 1000:8.0f} ms ({figures['batches_during']:.0f} batches)"
    )


if __name__ == "__main__":
    main()
