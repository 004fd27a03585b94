"""Benchmark: history and stats over a year of 5-minute intervals plus recent
raw telemetry, on PostgreSQL (issue 16).

Generates, in SQL (``generate_series``), into a fresh database (or, with
``--reuse NAME``, into the database NAME kept for the next runs: a year for
1,000 VENs takes half an hour and ~15 GB):

- ``--interval-days`` (default 365) of ``ven_intervals`` for ``--vens`` VENs
  (1,000: 105 million rows), with their event marks (``ven_interval_events``,
  an hour-long event every day) and their days (``ven_days``, rolled up from
  them as migration 0011 does);
- the last ``--raw-days`` of raw telemetry at one message per VEN every
  ``--raw-step`` seconds, each with ``--circuits`` load rows, and ``ven_latest``.

The issue asks for 30 days of raw 5-second rows for 1,000 VENs: 518 million
telemetry rows and 5.2 billion load rows, more than this shared machine's disk
and time allow. Raw rows matter to history only within retention and only for
the reads that still use them (widths under 5 minutes, one load), and not at
all to stats (current state), so the default keeps 1 day of raw rows at one a
minute (1.4 M telemetry, 14 M load rows): enough to time the old query path,
which every history read took before, as the reference in the same run.

Then makes the fleet's roll-ups as the worker's maintenance would at the
data's end (``SqlHistoryRollup``, timed: on a new database, a year's first
roll-up), and times through ``SqlTelemetryQueries`` (median and p95 over
``--repeat`` runs, one warm-up), each against a reference measured in the same
run:

- history of one VEN over the year in daily points, and over the last day in
  5-minute points. Reference: the same call answered from the raw rows (the
  old path). For the year, the raw rows hold only ``--raw-days``: the
  reference reads far fewer rows than a year of raw would (a lower bound of
  the old path), and its ratio says so;
- the fleet's history over the year (daily) and the last day (5-minute), from
  the roll-ups and the open tail (the last two intervals, the last day).
  Reference: the same call read from every VEN's days and intervals (the path
  before the roll-ups);
- network stats and load-type stats (current state, unchanged by this work),
  read afresh each time (the fleet's latest load rows every call), and as the
  API serves them (those load aggregates kept 5 s,
  ``GRIDCORE_API_STATS_MAX_AGE_SECONDS``). Reference: a bare ``SELECT * FROM
  ven_latest`` (the floor of reading every VEN's current state).

Usage::

    python benchmarks/bench_history.py \\
        --url postgresql+psycopg://postgres@127.0.0.1:5432/gridcore_bench \\
        [--vens 1000] [--interval-days 365] [--raw-days 1] [--raw-step 60] \\
        [--circuits 10] [--repeat 15] [--reuse NAME] [--generate-only]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import sys
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_ingest import CIRCUITS, Database
from fill import dsn_of, fill, latest, load_rows
from sqlalchemy import text
from sqlalchemy.engine import make_url
from timing import timed

from adapters.sql.engine import create_engine
from adapters.sql.migrate import migrate
from adapters.sql.queries import SqlTelemetryQueries
from adapters.sql.rollups import SqlHistoryRollup
from gridcore.history import HistorySource
from gridcore.ports import RollupReport

END = datetime(2026, 11, 30, tzinfo=UTC)  # the generated data ends here ("now")
DAY = timedelta(days=1)
FIVE = timedelta(minutes=5)

# Written in time order, as ingest writes them (BRIN indexes rely on it): the
# inner series depends on the outer one, so PostgreSQL cannot swap them.
# Interval k of VEN v starts at END - days + 5 min * k. Sixty 5-s samples each;
# used 3..9 kW; 15:00-16:00 UTC every day an event (shed 2.5 kW, requested 5 kW).
INTERVALS = """
INSERT INTO vens (id, name, enabled, registered_at, last_seen_at)
SELECT 'ven-' || lpad(v::text, 5, '0'), format('VEN %%s', v), true,
       %(end)s - %(days)s * interval '1 day', %(end)s
FROM generate_series(0, %(vens)s - 1) AS v;

INSERT INTO ven_intervals
SELECT 'ven-' || lpad(v::text, 5, '0'),
       %(end)s - %(days)s * interval '1 day' + k * interval '5 minutes',
       60, 60 * (3 + (v + k) %% 7), 60, 3 + (v + k) %% 7, 3 + (v + k) %% 7,
       CASE WHEN k %% 288 BETWEEN 180 AND 191 THEN 150 ELSE 0 END, 60,
       0, CASE WHEN k %% 288 BETWEEN 180 AND 191 THEN 2.5 ELSE 0 END,
       0, 0
FROM generate_series(0, %(days)s * 288 - 1) AS k
CROSS JOIN LATERAL generate_series(0, %(vens)s - 1 + 0 * k) AS v;

INSERT INTO ven_interval_events
SELECT 'ven-' || lpad(v::text, 5, '0'),
       %(end)s - %(days)s * interval '1 day' + k * interval '5 minutes',
       'evt-' || lpad(to_hex(k / 288), 8, '0'), 300
FROM generate_series(0, %(days)s * 288 - 1) AS k
CROSS JOIN LATERAL generate_series(0, %(vens)s - 1 + 0 * k) AS v
WHERE k %% 288 BETWEEN 180 AND 191;

INSERT INTO ven_days
SELECT i.ven_id, date_trunc('day', i.start, 'UTC'), sum(i.samples), sum(i.used_sum),
       sum(i.shed_sum), coalesce(sum(e.requested_sum), 0), max(e.event_id)
FROM ven_intervals i LEFT JOIN ven_interval_events e ON e.ven_id = i.ven_id AND e.start = i.start
GROUP BY 1, 2;
"""

# Raw message s of VEN v at END - raw days + step * s.
RAW = """
INSERT INTO ven_telemetry (id, ven_id, timestamp, used_power_kw, shed_power_kw,
    requested_reduction_kw, event_id, panel_max_kw, raw_payload)
SELECT v * %(steps)s + s + 1, 'ven-' || lpad(v::text, 5, '0'),
       %(end)s - %(raw_days)s * interval '1 day' + s * %(step)s * interval '1 second',
       3 + (v + s) %% 7, 0, NULL, NULL, 48.0, '{"generated": true}'
FROM generate_series(0, %(steps)s - 1) AS s
CROSS JOIN LATERAL generate_series(0, %(vens)s - 1 + 0 * s) AS v;
"""


def generate(url: str, params: dict[str, Any], circuits: int) -> float:
    sql = INTERVALS + RAW + load_rows(circuits) + latest()
    return fill(url, sql, params, rebuild=["ven_intervals", "ven_load_samples"])


class KeptDatabase:
    """``--reuse NAME``: the database NAME, kept between runs (generating a
    year for 1,000 VENs takes half an hour): made and generated on the first
    run, reused as it is by the next ones with the same data options (each
    brought to the code's newest migration). Drop it by hand when done."""

    def __init__(self, url: str, name: str, params: dict[str, Any]) -> None:
        parsed = make_url(url)
        self.name = name
        self.url = parsed.set(database=name).render_as_string(hide_password=False)
        self.admin = dsn_of(parsed.set(database="postgres").render_as_string(hide_password=False))
        self.params = json.dumps(params, default=str, sort_keys=True)

    def open(self) -> bool:
        """Whether the database is new (to be generated)."""
        import psycopg

        with psycopg.connect(self.admin, autocommit=True) as conn:
            exists = conn.execute(
                "SELECT 1 FROM pg_database WHERE datname = %s", (self.name,)
            ).fetchone()
            if not exists:
                conn.execute(f'CREATE DATABASE "{self.name}"')
        if exists:
            with psycopg.connect(dsn_of(self.url)) as conn:
                marker = conn.execute("SELECT to_regclass('bench_history_params')").fetchone()
                kept = None
                if marker and marker[0]:
                    kept = conn.execute("SELECT params FROM bench_history_params").fetchone()
            if kept is None or kept[0] != self.params:
                raise SystemExit(
                    f"database {self.name} holds other (or half-generated) data: "
                    f'drop it (DROP DATABASE "{self.name}") or --reuse another name'
                )
        asyncio.run(migrate(self.url, retries=3, log=lambda _: None))
        return not exists

    def generated(self) -> None:
        import psycopg

        with psycopg.connect(dsn_of(self.url), autocommit=True) as conn:
            conn.execute("CREATE TABLE bench_history_params (params text NOT NULL)")
            conn.execute("INSERT INTO bench_history_params VALUES (%s)", (self.params,))


Case = tuple[str, Callable[[], Awaitable[Any]], str, Callable[[], Awaitable[Any]]]


async def roll_up(url: str) -> tuple[RollupReport | None, float]:
    """The fleet's roll-ups as the worker's maintenance makes them at END
    (the last two intervals and the last day stay open, read per VEN); on a
    reused database, only what is not made yet."""
    engine = create_engine(url)
    started = time.perf_counter()
    report = await SqlHistoryRollup(engine).roll_up(END)
    seconds = time.perf_counter() - started
    await engine.dispose()
    return report, seconds


async def measure(url: str, vens: int, days: int, repeat: int) -> list[tuple[str, ...]]:
    engine = create_engine(url)
    queries = SqlTelemetryQueries(engine)
    cached = SqlTelemetryQueries(engine, loads_max_age=5.0)
    ven = f"ven-{vens // 2:05d}"
    year = {"start": END - days * DAY, "end": END, "width": DAY}
    day = {"start": END - DAY, "end": END, "width": FIVE}
    raw, per_ven = HistorySource.RAW, HistorySource.INTERVALS

    async def bare_latest() -> None:
        async with engine.connect() as conn:
            (await conn.execute(text("SELECT * FROM ven_latest"))).all()

    cases: list[Case] = [
        (
            f"one VEN, {days} d, daily",
            lambda: queries.history(**year, ven_id=ven),
            "raw rows (old path)",
            lambda: queries.history(**year, ven_id=ven, source=raw),
        ),
        (
            "one VEN, 1 d, 5-minute",
            lambda: queries.history(**day, ven_id=ven),
            "raw rows (old path)",
            lambda: queries.history(**day, ven_id=ven, source=raw),
        ),
        (
            f"fleet, {days} d, daily",
            lambda: queries.history(**year),
            "each VEN's days (no roll-up)",
            lambda: queries.history(**year, source=per_ven),
        ),
        (
            "fleet, 1 d, 5-minute",
            lambda: queries.history(**day),
            "each VEN's intervals (no roll-up)",
            lambda: queries.history(**day, source=per_ven),
        ),
        (
            "network stats",
            lambda: queries.network_stats(END, timedelta(seconds=60)),
            "bare SELECT * FROM ven_latest",
            bare_latest,
        ),
        ("load-type stats", queries.load_type_stats, "bare SELECT * FROM ven_latest", bare_latest),
        # As the API serves them: the fleet's load aggregates kept 5 s
        # (GRIDCORE_API_STATS_MAX_AGE_SECONDS), read again by one request in that time.
        (
            "network stats, API (5 s)",
            lambda: cached.network_stats(END, timedelta(seconds=60)),
            "bare SELECT * FROM ven_latest",
            bare_latest,
        ),
        (
            "load-type stats, API (5 s)",
            cached.load_type_stats,
            "bare SELECT * FROM ven_latest",
            bare_latest,
        ),
    ]
    rows = []
    for name, run, ref_name, reference in cases:
        median, p95 = await timed(run, repeat)
        ref_median, _ = await timed(reference, repeat)
        rows.append(
            (
                name,
                f"{median:9.2f}",
                f"{p95:9.2f}",
                ref_name,
                f"{ref_median:9.2f}",
                f"{median / ref_median:6.2f}",
            )
        )
    await engine.dispose()
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--url", default="postgresql+psycopg://postgres@127.0.0.1:5432/gridcore_bench"
    )
    parser.add_argument("--vens", type=int, default=1000)
    parser.add_argument("--interval-days", type=int, default=365)
    parser.add_argument("--raw-days", type=int, default=1)
    parser.add_argument("--raw-step", type=int, default=60, help="seconds between raw messages")
    parser.add_argument("--circuits", type=int, default=10, choices=range(len(CIRCUITS) + 1))
    parser.add_argument("--repeat", type=int, default=15)
    parser.add_argument(
        "--reuse",
        metavar="NAME",
        help="keep the generated database under this name and reuse it on the next run",
    )
    parser.add_argument(
        "--generate-only", action="store_true", help="generate (or check) the data; time nothing"
    )
    args = parser.parse_args()
    steps = args.raw_days * 86_400 // args.raw_step
    params = {
        "end": END,
        "days": args.interval_days,
        "vens": args.vens,
        "raw_days": args.raw_days,
        "steps": steps,
        "step": args.raw_step,
    }
    started = time.perf_counter()
    with contextlib.ExitStack() as stack:
        if args.reuse:
            kept = KeptDatabase(args.url, args.reuse, {**params, "circuits": args.circuits})
            url, fresh = kept.url, kept.open()
        else:
            url, fresh = stack.enter_context(Database(args.url)), True
        if fresh:
            seconds = generate(url, params, args.circuits)
            if args.reuse:
                kept.generated()
            intervals = args.vens * args.interval_days * 288
            print(
                f"generated {intervals:,} intervals ({args.vens} VENs x {args.interval_days} d) "
                f"and {args.vens * steps:,} raw messages x {args.circuits} circuits "
                f"({args.raw_days} d, one per {args.raw_step} s) in {seconds:.0f} s"
            )
        else:
            print(f"reusing database {args.reuse}")
        report, seconds = asyncio.run(roll_up(url))
        print(f"fleet roll-ups at {END.isoformat()}: {report} in {seconds:.1f} s")
        if args.generate_only:
            return
        header = ("query", "median ms", "p95 ms", "reference", "ref ms", "ratio")
        print(
            f"{header[0]:26s} {header[1]:>9s} {header[2]:>9s}  {header[3]:30s} "
            f"{header[4]:>9s} {header[5]:>6s}"
        )
        for row in asyncio.run(measure(url, args.vens, args.interval_days, args.repeat)):
            print(f"{row[0]:26s} {row[1]} {row[2]}  {row[3]:30s} {row[4]} {row[5]}")
    print(f"total {time.perf_counter() - started:.0f} s")


if __name__ == "__main__":
    main()
