"""Benchmark: read queries over a large telemetry history in PostgreSQL.

Generates ``--rows`` load-sample rows (10 circuits per message, so a tenth as
many telemetry rows) for ``--vens`` VENs reporting every 5 s, in SQL with
``generate_series`` (10 million rows in a few minutes on 2 cores), then times
through ``SqlTelemetryQueries``:

- the one-VEN, one-day, 5-minute history (288 buckets over 17,280 samples);
- network stats (latest state of every VEN);
- and, for information, load-type stats, latest loads, a telemetry page and a
  circuit-history page.

Prints the median and p95 in ms over ``--repeat`` runs after one warm-up.

Usage::

    python benchmarks/bench_queries.py \\
        --url postgresql+psycopg://postgres@127.0.0.1:5432/gridcore_bench \\
        [--rows 10000000] [--vens 50] [--repeat 20]
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_ingest import CIRCUITS, Database
from fill import dsn_of, fill, latest, load_rows, roll_up
from timing import timed

from adapters.sql.engine import create_engine
from adapters.sql.queries import SqlTelemetryQueries

T0 = datetime(2025, 10, 20, tzinfo=UTC)

# The generated data: VEN v's message number s is at T0 + 5 s * s.
FILL = """
INSERT INTO vens (id, name, enabled, registered_at, last_seen_at)
SELECT 'ven-' || lpad(v::text, 5, '0'), format('VEN %%s', v), true, %(t0)s,
       %(t0)s + make_interval(secs => 5 * (%(steps)s - 1))
FROM generate_series(0, %(vens)s - 1) AS v;

INSERT INTO ven_telemetry (id, ven_id, timestamp, used_power_kw, shed_power_kw,
    requested_reduction_kw, event_id, panel_max_kw, raw_payload)
SELECT v * %(steps)s + s + 1, 'ven-' || lpad(v::text, 5, '0'),
       %(t0)s + make_interval(secs => 5 * s),
       5 + (v + s) %% 7, CASE WHEN s %% 720 < 60 THEN 2.5 ELSE 0 END,
       CASE WHEN s %% 720 < 60 THEN 5 END,
       CASE WHEN s %% 720 < 60 THEN 'evt-0000' || lpad(to_hex(s / 720), 4, '0') END,
       48.0, '{"generated": true}'
FROM generate_series(0, %(vens)s - 1) AS v, generate_series(0, %(steps)s - 1) AS s;
"""


def generate(url: str, rows: int, vens: int) -> tuple[int, float]:
    import psycopg

    steps = rows // (len(CIRCUITS) * vens)
    sql = FILL + load_rows() + latest() + roll_up()
    seconds = fill(url, sql, {"t0": T0, "steps": steps, "vens": vens}, rebuild=["ven_load_samples"])
    with psycopg.connect(dsn_of(url)) as conn:
        count = conn.execute("SELECT count(*) FROM ven_load_samples").fetchone()
    return int(count[0] if count else 0), seconds


async def measure(url: str, vens: int, steps: int, repeat: int) -> list[tuple[str, float, float]]:
    engine = create_engine(url)
    queries = SqlTelemetryQueries(engine)
    end = T0 + timedelta(seconds=5 * steps)
    day = (end - timedelta(days=1), end) if steps * 5 >= 86_400 else (T0, end)
    now = end
    ven = f"ven-{vens // 2:05d}"
    cases: list[tuple[str, Callable[[], Awaitable[Any]]]] = [
        (
            "history: one VEN, one day, 5m",
            lambda: queries.history(
                start=day[0], end=day[1], width=timedelta(minutes=5), ven_id=ven
            ),
        ),
        ("network stats", lambda: queries.network_stats(now, timedelta(seconds=60))),
        (
            "history: network, one day, 5m",
            lambda: queries.history(start=day[0], end=day[1], width=timedelta(minutes=5)),
        ),
        (
            "history: one load, one day, 5m",
            lambda: queries.history(
                start=day[0],
                end=day[1],
                width=timedelta(minutes=5),
                ven_id=ven,
                load_id="circuit_2",
            ),
        ),
        ("load type stats", queries.load_type_stats),
        ("latest loads of one VEN", lambda: queries.latest_loads(ven)),
        ("telemetry page (100, totalCount)", lambda: queries.telemetry(ven, start=day[0])),
        (
            "circuit history page (100, totalCount)",
            lambda: queries.circuit_history(ven, start=day[0]),
        ),
    ]
    results = []
    for name, run in cases:
        median, p95 = await timed(run, repeat)
        results.append((name, median, p95))
    await engine.dispose()
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--url", default="postgresql+psycopg://postgres@127.0.0.1:5432/gridcore_bench"
    )
    parser.add_argument("--rows", type=int, default=10_000_000)
    parser.add_argument("--vens", type=int, default=50)
    parser.add_argument("--repeat", type=int, default=20)
    args = parser.parse_args()
    steps = args.rows // (len(CIRCUITS) * args.vens)
    with Database(args.url) as url:
        count, seconds = generate(url, args.rows, args.vens)
        print(
            f"generated {count:,} load-sample rows ({count // len(CIRCUITS):,} messages, "
            f"{args.vens} VENs x {steps * 5 / 3600:.1f} h) in {seconds:.0f} s"
        )
        for name, median, p95 in asyncio.run(measure(url, args.vens, steps, args.repeat)):
            print(f"{name:42s} median {median:8.2f} ms   p95 {p95:8.2f} ms")


if __name__ == "__main__":
    main()
