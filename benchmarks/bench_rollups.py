"""Benchmark: what keeping the history tables up at ingest costs on PostgreSQL.

``SqlTelemetryStore.append`` in batches (as the worker calls it) with three
versions of the ingest statement, alternating over ``--rounds``, each run into
a fresh, migrated database with the fleet registered before timing:

- ``full``: the statement as the worker runs it (current state, heartbeat,
  energy, ``ven_intervals``, ``ven_interval_events``, ``ven_days``);
- ``no days/marks``: without the ``ven_days`` and ``ven_interval_events``
  upserts (the history store's additions);
- ``no roll-ups``: without ``ven_intervals`` as well.

The messages are bench_ingest's (10 circuits and loads, ``requestedReductionKw``
0.0 as the documents' example sends it), one every 5 s per VEN, parsed before
timing. Reported per message: wall time of ``append``, the benchmark's own CPU
(Python: prepare, COPY formatting) and the CPU of the PostgreSQL backends
serving the database (/proc). The figure is each variant's against ``full``
in the same round.

Usage: ``python benchmarks/bench_rollups.py [--messages 50000] [--batch 500]
[--vens 1000] [--rounds 3]``
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from bench_ingest import Database, samples
from procstat import CpuMeter, backend_pids

from adapters.sql.engine import create_engine
from adapters.sql.telemetry import SqlTelemetryStore
from gridcore.telemetry import TelemetrySample

# The ingest statement's CTEs, in the order it has them.
_CUTS = {
    "full": None,
    "no days/marks": ("), interval_events AS (", "), heartbeat AS ("),
    "no roll-ups": ("), intervals AS (", "), heartbeat AS ("),
}


def statement(full: str, variant: str) -> str:
    """The ingest statement without the CTEs ``variant`` leaves out."""
    cut = _CUTS[variant]
    if cut is None:
        return full
    start, end = full.index(cut[0]), full.index(cut[1])
    return full[:start] + full[end:]


async def run(
    url: str, variant: str, data: list[TelemetrySample], batch: int, vens: int
) -> dict[str, float]:
    engine = create_engine(url)
    store = SqlTelemetryStore(engine)
    writer = store._writer
    writer._current_state = statement(writer._current_state, variant)  # type: ignore[attr-defined]
    try:
        await store.append(data[:vens])  # registers the fleet; not timed
        rest = data[vens:]
        database = engine.url.database or ""
        url_ = engine.url
        dsn = f"host={url_.host} port={url_.port} user={url_.username} dbname=postgres"
        meter = CpuMeter()
        meter.start(backend_pids(dsn, database))
        cpu, wall = time.process_time(), time.perf_counter()
        for i in range(0, len(rest), batch):
            result = await store.append(rest[i : i + batch])
            assert result.stored == len(rest[i : i + batch]), result
        wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
        pg = meter.stop(backend_pids(dsn, database))
        n = len(rest)
        return {"wall_us": 1e6 * wall / n, "python_us": 1e6 * cpu / n, "pg_us": 1e6 * pg / n}
    finally:
        await store.close()
        await engine.dispose()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--url", default="postgresql+psycopg://postgres@127.0.0.1:5432/gridcore_bench"
    )
    parser.add_argument("--messages", type=int, default=50_000)
    parser.add_argument("--batch", type=int, default=500)
    parser.add_argument("--vens", type=int, default=1000)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    data = samples(args.messages + args.vens, args.vens)
    results: dict[str, list[dict[str, float]]] = {v: [] for v in _CUTS}
    began = time.monotonic()
    for n in range(1, args.rounds + 1):
        order = list(_CUTS) if n % 2 else list(reversed(_CUTS))
        for variant in order:
            with Database(args.url) as url:
                r = asyncio.run(run(url, variant, data, args.batch, args.vens))
            results[variant].append(r)
            print(f"round {n} {variant:<14} wall {r['wall_us']:6.1f} us/msg  python "
                  f"{r['python_us']:6.1f}  PostgreSQL {r['pg_us']:6.1f}", flush=True)  # fmt: skip
    print(f"\nmedian over {args.rounds} round(s), {args.messages:,} messages,"
          f" batch {args.batch}:")  # fmt: skip
    head = ("variant", "wall us/msg", "PG us/msg", "wall vs full", "PG vs full")
    print(f"{head[0]:<14} {head[1]:>11} {head[2]:>10} {head[3]:>13} {head[4]:>11}")
    for variant, runs in results.items():
        wall = [r["wall_us"] / f["wall_us"] for r, f in zip(runs, results["full"], strict=True)]
        pg = [r["pg_us"] / f["pg_us"] for r, f in zip(runs, results["full"], strict=True)]
        print(f"{variant:<14} {statistics.median(r['wall_us'] for r in runs):>11.1f}"
              f" {statistics.median(r['pg_us'] for r in runs):>10.1f}"
              f" {statistics.median(wall):>12.2f}x {statistics.median(pg):>10.2f}x")  # fmt: skip
    print(f"runtime {time.monotonic() - began:.0f} s")


if __name__ == "__main__":
    main()
