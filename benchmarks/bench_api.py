"""Benchmark: the REST API through uvicorn over a large PostgreSQL history.

Fills a fresh database with bench_queries' generator (``--rows`` load-sample
rows, 10 circuits per message, ``--vens`` VENs every 5 s), adds one VEN with a
full day of telemetry (17,280 messages, 172,800 load rows) so that the
one-day history has a day to read, starts ``gridcore serve`` (uvicorn, with
token checks on) as a separate process, and times over HTTP with a kept-alive
connection:

- ``GET /api/stats/network``;
- ``GET /api/vens/{venId}/history`` over one day at 5-minute granularity
  (288 points);
- and, for information, ``GET /api/vens?limit=100`` and a VEN's detail.

Prints median and p95 in ms over ``--repeat`` requests after a warm-up.

Usage::

    python benchmarks/bench_api.py \\
        --url postgresql+psycopg://postgres@127.0.0.1:5432/gridcore_bench \\
        [--rows 10000000] [--vens 1000] [--repeat 200]
"""

from __future__ import annotations

import argparse
import os
import socket
import subprocess
import sys
import time
from datetime import timedelta
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_ingest import CIRCUITS, Database
from bench_queries import T0, generate
from fill import dsn_of, latest, load_rows, roll_up
from timing import median_p95

DAY_VEN = "ven-day"
DAY_STEPS = 86_400 // 5
TOKEN = "read-token-for-the-benchmark-0123"

ONE_DAY = """
INSERT INTO vens (id, name, enabled, registered_at, last_seen_at)
VALUES (%(ven)s, 'One full day', true, %(start)s, %(end)s);

INSERT INTO ven_telemetry (id, ven_id, timestamp, used_power_kw, shed_power_kw, panel_max_kw,
    raw_payload)
SELECT %(base)s + s, %(ven)s, %(start)s + make_interval(secs => 5 * s),
       5 + s %% 7, CASE WHEN s %% 720 < 60 THEN 2.5 ELSE 0 END, 48.0, '{"generated": true}'
FROM generate_series(0, %(steps)s - 1) AS s;

{loads_and_latest}
ANALYZE
"""


def add_one_day(url: str, end_seconds: int) -> None:
    import psycopg

    one_ven = "WHERE t.ven_id = %(ven)s"
    sql = ONE_DAY.replace(
        "{loads_and_latest}",
        load_rows(where=one_ven)
        + latest(where=one_ven.replace("t.", ""))
        + roll_up("ven_id = %(ven)s"),
    )
    end = T0 + timedelta(seconds=end_seconds)
    params = {
        "ven": DAY_VEN,
        "start": end - timedelta(days=1),
        "end": end,
        "steps": DAY_STEPS,
        "base": 10**12,  # above every generated id
    }
    with psycopg.connect(dsn_of(url), autocommit=True) as conn:
        for statement in sql.split(";\n"):
            if statement.strip():
                conn.execute(statement, params)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start_server(url: str, port: int) -> subprocess.Popen[bytes]:
    env = {
        **os.environ,
        "DATABASE_URL": url,
        "GRIDCORE_API_TOKENS": f"read:{TOKEN}",
        "GRIDCORE_LOG_LEVEL": "WARNING",
    }
    gridcore = Path(sys.executable).with_name("gridcore")
    server = subprocess.Popen(
        [str(gridcore), "--log-level", "WARNING", "serve", "--port", str(port)], env=env
    )
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/health", timeout=1).status_code == 200:
                return server
        except httpx.HTTPError:
            time.sleep(0.2)
    server.terminate()
    raise RuntimeError("gridcore serve did not answer /health within 30 s")


def timed(client: httpx.Client, path: str, repeat: int) -> tuple[float, float, int]:
    for _ in range(5):  # warm-up: connections, plans, caches
        response = client.get(path)
        if response.status_code != 200:
            raise RuntimeError(f"{path}: {response.status_code} {response.text[:500]}")
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        response = client.get(path)
        times.append((time.perf_counter() - started) * 1000)
        response.raise_for_status()
    median, p95 = median_p95(times)
    return median, p95, len(response.content)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--url", default="postgresql+psycopg://postgres@127.0.0.1:5432/gridcore_bench"
    )
    parser.add_argument("--rows", type=int, default=10_000_000)
    parser.add_argument("--vens", type=int, default=1000)
    parser.add_argument("--repeat", type=int, default=200)
    args = parser.parse_args()
    steps = args.rows // (len(CIRCUITS) * args.vens)
    with Database(args.url) as url:
        count, seconds = generate(url, args.rows, args.vens)
        add_one_day(url, steps * 5)
        print(
            f"generated {count:,} load-sample rows for {args.vens} VENs in {seconds:.0f} s, "
            f"plus {DAY_STEPS * len(CIRCUITS):,} for {DAY_VEN} (one day)"
        )
        end = T0 + timedelta(seconds=steps * 5)
        day = f"start={(end - timedelta(days=1)).isoformat()}&end={end.isoformat()}"
        day = day.replace("+00:00", "Z")
        cases = [
            ("GET /api/stats/network", "/api/stats/network"),
            (
                "GET /api/vens/{venId}/history (1 day, 5m)",
                f"/api/vens/{DAY_VEN}/history?{day}&granularity=5m",
            ),
            ("GET /api/vens?limit=100", "/api/vens?limit=100"),
            ("GET /api/vens/{venId}", f"/api/vens/{DAY_VEN}"),
        ]
        port = free_port()
        server = start_server(url, port)
        try:
            headers = {"Authorization": f"Bearer {TOKEN}"}
            with httpx.Client(base_url=f"http://127.0.0.1:{port}", headers=headers) as client:
                for name, path in cases:
                    median, p95, size = timed(client, path, args.repeat)
                    print(f"{name:44s} median {median:7.2f} ms  p95 {p95:7.2f} ms  {size:,} B")
        finally:
            server.terminate()
            server.wait(timeout=10)


if __name__ == "__main__":
    main()
