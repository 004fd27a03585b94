"""Benchmark: the CPU one API request costs, per endpoint, on a quiet API.

A fresh PostgreSQL database with ``--vens`` VENs that each reported once (10
circuits and 10 loads: ``bench_mqtt_ingest.message``) and ``--events`` past
events; ``gridcore serve --workers 1`` as its own process. One kept-alive
client (``bench_api_load.BareHttp``) sends ``--requests`` requests to each
endpoint in turn, one after the other, and the CPU seconds of the API process
and of the database's PostgreSQL backends (all the API's: nothing else runs)
are read from /proc around each endpoint's run (``procstat``).

The reference is ``/health`` in the same run: what a request costs the server
(HTTP parsing, routing, the answer) before any route's own work, so each
endpoint's figure is also given as a multiple of it. Under load these
costs are what decides how many requests/s two shared cores can answer
(``bench_api_load.py`` measures that).

Usage::

    python benchmarks/bench_api_cost.py [--vens 10000] [--events 200] [--requests 300]

Needs PostgreSQL (GRIDCORE_TEST_PG_* or 127.0.0.1:5432).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import bench_mqtt_ingest
from bench_api_load import TOKEN, BareHttp, Meters, backends, descendants, seed_events, serve
from bench_mqtt_ingest import drop_database, fresh_database

from adapters.mqtt.payloads import TelemetryWire, to_telemetry_sample
from adapters.sql.engine import create_engine
from adapters.sql.migrate import migrate
from adapters.sql.telemetry import SqlTelemetryStore


async def fleet(url: str, vens: int) -> None:
    """Every VEN reports once, now: registered, online, its loads in ven_latest."""
    engine = create_engine(url)
    store = SqlTelemetryStore(engine)
    now = time.time()
    for start in range(0, vens, 1000):
        batch = []
        for v in range(start, min(vens, start + 1000)):
            raw = bench_mqtt_ingest.message(v, now)
            batch.append(to_telemetry_sample(TelemetryWire.model_validate_json(raw), raw.decode()))
        await store.append(batch)
    await engine.dispose()


REFERENCE = "/health (reference)"


def paths(vens: int) -> dict[str, object]:
    rng = random.Random(1)
    return {
        REFERENCE: lambda: "/health",
        "network stats": lambda: "/api/stats/network",
        "VEN page": lambda: f"/api/vens/ven-{rng.randrange(vens):05d}",
        "VEN list page": lambda: f"/api/vens?limit=100&offset={rng.randrange(max(1, vens - 100))}",
        "event list": lambda: "/api/events?limit=100",
    }


async def measure(
    base: str, url: str, api_pid: int, requests: int, vens: int, only: str | None = None
) -> None:
    host, port = base.removeprefix("http://").split(":")
    http = BareHttp(host, int(port), TOKEN)

    def groups() -> dict[str, set[int]]:
        # Every backend of the database is the API's here (nothing else runs).
        return {"API processes": descendants(api_pid), "PG": set().union(*backends(url).values())}

    reference = None
    for name, path in paths(vens).items():
        if only is not None and name not in (only, REFERENCE):
            continue
        for _ in range(20):  # warm: pool connections, held aggregates, code paths
            await http.get(path())  # type: ignore[operator]
        meters = Meters(groups)
        meters.start()
        began = time.perf_counter()
        for _ in range(requests):
            status = await http.get(path())  # type: ignore[operator]
            if status != 200:
                raise RuntimeError(f"{name}: HTTP {status}")
        wall = (time.perf_counter() - began) / requests
        usage = meters.stop()
        api = usage["cpu"]["API processes"] / requests
        pg = usage["cpu"]["PG"] / requests
        reference = reference or (api + pg)
        print(
            f"{name:<22}{1000 * wall:>9.2f}{1000 * api:>9.2f}{1000 * pg:>8.2f}"
            f"{(api + pg) / reference:>10.1f}"
        )
    http.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--vens", type=int, default=10_000)
    parser.add_argument("--events", type=int, default=200)
    parser.add_argument("--requests", type=int, default=300, help="per endpoint")
    args = parser.parse_args()
    print(f"load average at the start: {os.getloadavg()[0]:.2f}")
    name, url = fresh_database()
    try:
        asyncio.run(migrate(url, retries=3, wait_seconds=0.5, log=lambda _: None))
        asyncio.run(fleet(url, args.vens))
        seed_events(url, args.events)
        print("per request: wall time, CPU of the API process and of its PostgreSQL backends")
        print(f"{'endpoint':<22}{'wall ms':>9}{'API ms':>9}{'PG ms':>8}{'x health':>10}")
        api, base = serve(url, 1, 5)
        try:
            asyncio.run(measure(base, url, api.pid, args.requests, args.vens))
        finally:
            api.terminate()
            api.wait(30)
        # What each refresh of the held figures costs: nothing held.
        print("with GRIDCORE_API_STATS_MAX_AGE_SECONDS=0 (network stats read on every request):")
        api, base = serve(url, 1, 5, GRIDCORE_API_STATS_MAX_AGE_SECONDS="0")
        try:
            asyncio.run(
                measure(base, url, api.pid, args.requests // 5, args.vens, only="network stats")
            )
        finally:
            api.terminate()
            api.wait(30)
    finally:
        drop_database(name)
    print(f"{args.vens} VENs, {args.events} events; load average now {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
