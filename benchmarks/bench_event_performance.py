"""Benchmark: an event's performance over a 10,000-VEN fleet, through PostgreSQL.

Fills a fresh database with what measurement reads: ``--vens`` VENs, each
with ``--days`` days of 5-minute intervals (``ven_intervals``, as ingest keeps
them) over the hours a baseline of a 2-hour event reads (12:00-21:00 UTC;
the event 17:00-19:00 UTC on a Wednesday), a daily shape per VEN with noise,
a 30 % drop during the event on the event day; the event, dispatched: one
accepted event command per VEN. Then times, in one process against the same
server:

- ``event_report(..., method="10-in-10", recompute=True)``: what the worker's
  measurer and ``GET /api/events/{id}/performance?recompute=true`` do: read
  every VEN's intervals on the days its baseline reads (``history_days``,
  ``history_spans``), measure each VEN and the fleet, keep the report
  (10,000 VEN rows);
- of which the reads alone (``TelemetryQueries.meter_series`` over the same
  spans, to domain ``MeterSeries`` columns);
- the reference: a bare ``SELECT`` of the same rows through the same engine,
  fetched as SQLAlchemy rows and dropped (what any use of these intervals
  costs at least).

Prints each time and the ratio of the whole to the reference.

Usage::

    python benchmarks/bench_event_performance.py \\
        --url postgresql+psycopg://postgres@127.0.0.1:5432/gridcore_bench \\
        [--vens 10000] [--days 16]
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import psycopg
from sqlalchemy import and_, or_, select
from sqlalchemy.engine import make_url

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_ingest import Database

from adapters.memory.performance import InMemoryPerformanceStore
from adapters.sql.engine import create_engine
from adapters.sql.performance import SqlPerformanceStore
from adapters.sql.queries import SqlTelemetryQueries
from adapters.sql.tables import ven_intervals
from adapters.sql.uow import SqlUnitOfWorkFactory
from gridcore.baselines import LOOKBACK_DAYS, fallback_chain, history_days
from gridcore.events import DrEvent, EventStatus
from gridcore.verification import (
    Programme,
    event_report,
    event_window,
    history_spans,
    reach_before,
)

START = datetime(2026, 11, 18, 17, 0, tzinfo=UTC)  # a Wednesday
END = START + timedelta(hours=2)
EVENT_ID = "evt-bench001"

FILL = """
INSERT INTO vens (id, name, enabled, registered_at, last_seen_at)
SELECT 'ven-' || lpad(v::text, 5, '0'), 'Home ' || v, true,
       %(start)s - interval '60 days', %(start)s
FROM generate_series(0, %(vens)s - 1) AS v;

INSERT INTO ven_intervals
SELECT 'ven-' || lpad(v::text, 5, '0'), t, 60, 60 * kw, 60, kw * 0.8, kw * 1.2, 0, 60, 0, 0, 0, 0
FROM generate_series(0, %(vens)s - 1) AS v,
     generate_series(1, %(days)s) AS d,
     generate_series(0, 107) AS k,
     LATERAL (SELECT %(start)s - make_interval(days => d) - interval '5 hours'
                     + make_interval(mins => 5 * k) AS t) AS s,
     LATERAL (SELECT 2.0 + (v %% 7) * 0.5 + 1.5 * sin(k / 20.0)
                     + ((v * 31 + d * 17 + k) %% 10) / 20.0 AS kw) AS l;

INSERT INTO ven_intervals
SELECT 'ven-' || lpad(v::text, 5, '0'), t, 60, 60 * kw, 60, kw, kw, 0, 60, 0, 0, 0, 0
FROM generate_series(0, %(vens)s - 1) AS v,
     generate_series(0, 107) AS k,
     LATERAL (SELECT %(start)s - interval '5 hours' + make_interval(mins => 5 * k) AS t) AS s,
     LATERAL (SELECT (2.0 + (v %% 7) * 0.5 + 1.5 * sin(k / 20.0))
                     * CASE WHEN t >= %(start)s AND t < %(end)s THEN 0.7 ELSE 1.0 END AS kw) AS l;

INSERT INTO events (event_id, status, start_time, end_time, requested_reduction_kw,
                    actual_reduction_kw, created_at, activated_at, ended_at)
VALUES (%(event)s, 'completed', %(start)s, %(end)s, %(vens)s * 0.9, %(vens)s * 0.9,
        %(start)s - interval '1 hour', %(start)s, %(end)s);

INSERT INTO commands (correlation_id, ven_id, op, event_id, shed_kw, state, attempts,
                      created_at, first_sent_at, last_sent_at, deadline, acked_at,
                      ack_status, delivered_kw, late)
SELECT %(event)s || '-' || lpad(to_hex(v), 8, '0'), 'ven-' || lpad(v::text, 5, '0'), 'event',
       %(event)s, 0.9, 'acked', 1, %(start)s, %(start)s, %(start)s,
       %(start)s + interval '30 seconds', %(start)s + interval '1 second', 'accepted', 0.9, false
FROM generate_series(0, %(vens)s - 1) AS v;
"""


def fill(url: str, vens: int, days: int) -> int:
    dsn = make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)
    params = {"vens": vens, "days": days, "start": START, "end": END, "event": EVENT_ID}
    with psycopg.connect(dsn, autocommit=True) as conn:
        for statement in FILL.split(";\n"):
            if statement.strip():
                conn.execute(statement, params)
        conn.execute("VACUUM ANALYZE")
        row = conn.execute("SELECT count(*) FROM ven_intervals").fetchone()
    return int(row[0]) if row else 0


async def measure(url: str, vens: int) -> dict[str, float]:
    engine = create_engine(url)
    queries = SqlTelemetryQueries(engine)
    uow = SqlUnitOfWorkFactory(engine)
    programme = Programme(method="10-in-10")
    now = END + timedelta(hours=2)
    ids = [f"ven-{v:05d}" for v in range(vens)]
    window = event_window(DrEvent(EVENT_ID, START, END, 1.0, EventStatus.COMPLETED, ended_at=END))
    chain = fallback_chain("10-in-10")
    # The fleet has no earlier events: every VEN's baseline reads the same days.
    days = history_days(chain, START.astimezone(programme.tz).date(), holidays=programme.holidays)
    spans = history_spans(
        window,
        programme.tz,
        START - timedelta(days=LOOKBACK_DAYS + 1),
        reach_before(chain),
        set(days),
    )
    c = ven_intervals.c
    in_spans = or_(*(and_(c.start >= lo, c.start < hi) for lo, hi in spans))
    times: dict[str, float] = {}

    async def bare() -> int:
        rows = 0
        async with engine.connect() as conn:
            for first in range(0, vens, 1000):
                result = await conn.execute(
                    select(ven_intervals).where(c.ven_id.in_(ids[first : first + 1000]), in_spans)
                )
                rows += len(result.all())
        return rows

    async def reads() -> int:
        rows = 0
        for first in range(0, vens, 1000):
            found = await queries.meter_series(ids[first : first + 1000], spans)
            rows += sum(len(series.starts) for series in found.values())
        return rows

    async def whole(store: object) -> None:
        report = await event_report(
            uow,
            queries,
            store,  # type: ignore[arg-type]
            EVENT_ID,
            programme=programme,
            now=now,
            method="10-in-10",
            recompute=True,
        )
        assert report.fleet.vens == vens and not report.live

    await bare()  # warm the cache: every run reads from memory
    for name, run in (("reference: bare SELECT of the rows read", bare), ("reads", reads)):
        started = time.perf_counter()
        rows = await run()
        times[name] = time.perf_counter() - started
        times[f"{name} rows"] = rows
    for name, store in (
        ("event_report, kept in PostgreSQL", SqlPerformanceStore(engine)),
        ("event_report, kept in memory", InMemoryPerformanceStore()),
    ):
        started = time.perf_counter()
        await whole(store)
        times[name] = time.perf_counter() - started
    await engine.dispose()
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--url", default="postgresql+psycopg://postgres@127.0.0.1:5432/gridcore_bench"
    )
    parser.add_argument("--vens", type=int, default=10_000)
    parser.add_argument("--days", type=int, default=16)
    args = parser.parse_args()
    with Database(args.url) as url:
        started = time.perf_counter()
        rows = fill(url, args.vens, args.days)
        filled = time.perf_counter() - started
        print(f"{args.vens:,} VENs, {rows:,} interval rows; filled in {filled:.0f} s")
        times = asyncio.run(measure(url, args.vens))
    reference = times["reference: bare SELECT of the rows read"]
    print(
        f"rows read per run: {int(times['reads rows']):,}"
        f" (bare SELECT: {int(times['reference: bare SELECT of the rows read rows']):,})"
    )
    for name in (
        "reference: bare SELECT of the rows read",
        "reads",
        "event_report, kept in PostgreSQL",
        "event_report, kept in memory",
    ):
        print(f"{name:42s} {times[name]:8.2f} s   {times[name] / reference:5.1f}x reference")


if __name__ == "__main__":
    main()
