"""Benchmark: the dashboard's VEN summary over a fleet of 10,000 VENs on PostgreSQL.

Fills a fresh database with bench_queries' generator (``--vens`` VENs, 10
circuits each, ``--steps`` messages of 5 s per VEN), then adds what the
summary reads besides telemetry: a position for every other VEN, a
configured load for every tenth (one it no longer reports), and a ledger of
``--commands`` commands per VEN, three in four of them answered (pings and
shed commands; ``ix_commands_ven_id_acked_at`` finds each VEN's newest).

Times, median and p95 over ``--repeat`` runs after a warm-up, in one process
against the same server:

- the summary query (``SqlTelemetryQueries.ven_summaries``: 10,000 lines);
- the reference: a bare ``SELECT * FROM vens ORDER BY id`` of the same 10,000
  rows through the same engine (what any list of the fleet costs at least);
- ``GET /api/vens/summary`` through the app in-process (ASGI, no socket:
  query, domain mapping, pydantic, JSON);
- ``GET /api/stats/network`` (the dashboard's fleet totals);
- for information, ``GET /api/vens`` (the whole fleet with every load; with
  ``--whole-fleet`` only, as it answers 2 kB a VEN: 210 MB at 100,000).

Prints each figure and the summary query's ratio to the reference.

Usage::

    python benchmarks/bench_dashboard_summary.py \\
        --url postgresql+psycopg://postgres@127.0.0.1:5432/gridcore_bench \\
        [--vens 10000] [--steps 12] [--commands 20] [--repeat 20] [--whole-fleet]

At 100,000 VENs: ``--vens 100000 --steps 2 --commands 4`` (2 million load
rows and 400,000 commands: filling takes minutes).
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from collections.abc import Awaitable, Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import psycopg

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_ingest import CIRCUITS, Database
from bench_queries import T0, generate
from sqlalchemy import select
from sqlalchemy.engine import make_url
from timing import timed

from adapters.sql.engine import create_engine
from adapters.sql.queries import SqlTelemetryQueries
from adapters.sql.tables import vens
from adapters.system import ManualClock
from entrypoints.api.app import create_app
from entrypoints.container import container_for
from entrypoints.settings import Settings

DEFAULT_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/gridcore_bench"

# What the summary reads besides telemetry. Command k of VEN v was sent at
# T0 + k s and, for k % 4 != 3, answered 50-250 ms later.
EXTRAS = """
UPDATE vens SET lat = 37.0 + (substr(id, 5)::int %% 100) / 100.0,
                lon = -122.0 - (substr(id, 5)::int / 100) / 100.0
WHERE substr(id, 5)::int %% 2 = 0;

INSERT INTO ven_loads (ven_id, load_id, type, name, capacity_kw, shed_capability_kw,
    current_power_kw, priority, critical, enabled)
SELECT id, 'retired', 'other', 'Retired circuit', 2.0, 1.5, 0.0, 5, false, true
FROM vens WHERE substr(id, 5)::int %% 10 = 0;

INSERT INTO commands (correlation_id, ven_id, op, shed_kw, state, attempts, created_at,
    first_sent_at, last_sent_at, deadline, acked_at, ack_status, late)
SELECT 'cmd-' || lpad(to_hex(v * %(commands)s + k), 8, '0'),
       'ven-' || lpad(v::text, 5, '0'),
       CASE WHEN k %% 2 = 0 THEN 'ping' ELSE 'shed_load' END,
       CASE WHEN k %% 2 = 0 THEN NULL ELSE 1.0 END,
       CASE WHEN k %% 4 = 3 THEN 'timed_out' ELSE 'acked' END,
       1, %(t0)s + make_interval(secs => k), %(t0)s + make_interval(secs => k),
       %(t0)s + make_interval(secs => k), %(t0)s + make_interval(secs => k + 30),
       CASE WHEN k %% 4 = 3 THEN NULL
            ELSE %(t0)s + make_interval(secs => k + (50 + (v + k) %% 200) / 1000.0) END,
       CASE WHEN k %% 4 = 3 THEN NULL ELSE 'pong' END, false
FROM generate_series(0, %(vens)s - 1) AS v, generate_series(0, %(commands)s - 1) AS k;
"""


def add_extras(url: str, vens_: int, commands_: int) -> None:
    dsn = make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)
    with psycopg.connect(dsn, autocommit=True) as conn:
        for statement in EXTRAS.split(";\n"):
            if statement.strip():
                conn.execute(statement, {"t0": T0, "vens": vens_, "commands": commands_})
        conn.execute("VACUUM ANALYZE")


async def measure(
    url: str, steps: int, repeat: int, whole_fleet: bool
) -> list[tuple[str, float, float, int]]:
    engine = create_engine(url)
    queries = SqlTelemetryQueries(engine)

    async def bare_select() -> list[Any]:
        async with engine.connect() as conn:
            return list((await conn.execute(select(vens).order_by(vens.c.id))).mappings())

    settings = Settings(database_url=url, gridcore_auth="disabled")
    # "Now" is just after the newest sample: the fleet is online, as a live one is.
    container = container_for(settings, clock=ManualClock(T0 + timedelta(seconds=5 * steps)))
    app = create_app(settings, container)
    transport = httpx.ASGITransport(app=app)
    results: list[tuple[str, float, float, int]] = []
    async with httpx.AsyncClient(transport=transport, base_url="http://gridcore") as client:

        async def get(path: str) -> httpx.Response:
            answer = await client.get(path)
            answer.raise_for_status()
            return answer

        cases: list[tuple[str, Callable[[], Awaitable[Any]], int]] = [
            ("summary query (ven_summaries)", queries.ven_summaries, repeat),
            ("reference: SELECT * FROM vens ORDER BY id", bare_select, repeat),
            ("GET /api/vens/summary (in-process)", lambda: get("/api/vens/summary"), repeat),
            ("GET /api/stats/network (in-process)", lambda: get("/api/stats/network"), repeat),
        ]
        if whole_fleet:
            cases.append(("GET /api/vens (whole fleet, in-process)", lambda: get("/api/vens"), 3))
        for name, run, times in cases:
            median, p95 = await timed(run, times)
            out = await run()
            if isinstance(out, httpx.Response):
                size = len(out.content)
            else:
                size = len(out) if isinstance(out, list) else len(out.items)
            results.append((name, median, p95, size))
    await container.storage().close()
    await engine.dispose()
    return results  # name, median ms, p95 ms, rows or bytes


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--url", default=DEFAULT_URL)
    parser.add_argument("--vens", type=int, default=10_000)
    parser.add_argument("--steps", type=int, default=12)
    parser.add_argument("--commands", type=int, default=20)
    parser.add_argument("--repeat", type=int, default=20)
    parser.add_argument(
        "--whole-fleet", action="store_true", help="also GET /api/vens, every VEN (slow)"
    )
    args = parser.parse_args()
    with Database(args.url) as url:
        started = time.perf_counter()
        rows, _ = generate(url, args.vens * len(CIRCUITS) * args.steps, args.vens)
        add_extras(url, args.vens, args.commands)
        filled = time.perf_counter() - started
        print(
            f"{args.vens:,} VENs, {rows:,} load-sample rows, "
            f"{args.vens * args.commands:,} commands; filled in {filled:.0f} s"
        )
        results = asyncio.run(measure(url, args.steps, args.repeat, args.whole_fleet))
    for name, median, p95, size in results:
        unit = "bytes" if name.startswith("GET") else "rows"
        print(f"{name:44s} median {median:8.1f} ms   p95 {p95:8.1f} ms   {size:,} {unit}")
    summary, reference = results[0][1], results[1][1]
    print(f"summary query / reference: {summary / reference:.1f}x")


if __name__ == "__main__":
    main()
