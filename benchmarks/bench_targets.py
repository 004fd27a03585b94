"""Benchmark: finding the VENs a targeted event reaches (``VenRepository.targeted``),
against reading every VEN id (what an untargeted event's fleet is), in the
same invocation, on PostgreSQL and SQLite.

The fleet: ``--vens`` VENs, each in one of 100 groups (``group-0`` ..
``group-99``, 1 % of the fleet each), two configured loads per VEN, one load
in 50 on a feeder (``feeder-0`` .. ``feeder-19``). Timed (median of
``--repeat``): the VENs of one group; of a feeder (through the loads); of a
group, a feeder and five VEN ids at once; and, the reference, every VEN id
(``targeted([])``). On PostgreSQL the plan of the group query is printed, to
show the GIN index at work.

Usage: ``python benchmarks/bench_targets.py [--vens 100000] [--repeat 7]``
Needs PostgreSQL (GRIDCORE_TEST_PG_* or 127.0.0.1:5432); creates and drops
its own database, and a SQLite file in a temporary directory.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import psycopg
from sqlalchemy import Text, bindparam, text
from sqlalchemy.dialects.postgresql import ARRAY

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from adapters.sql.engine import create_engine
from adapters.sql.migrate import migrate
from adapters.sql.uow import SqlUnitOfWorkFactory

PG_HOST = os.environ.get("GRIDCORE_TEST_PG_HOST", "127.0.0.1")
PG_PORT = int(os.environ.get("GRIDCORE_TEST_PG_PORT", "5432"))
PG_USER = os.environ.get("GRIDCORE_TEST_PG_USER", "postgres")
GROUPS, FEEDERS = 100, 20
TEXT_ARRAY = ARRAY(Text())


def admin() -> psycopg.Connection[Any]:
    return psycopg.connect(
        host=PG_HOST, port=PG_PORT, user=PG_USER, dbname="postgres", autocommit=True
    )


def rows(count: int, postgres: bool) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    def listed(targets: list[str]) -> Any:
        return targets if postgres else json.dumps(targets)

    vens = [
        {"id": f"ven-{n:06d}", "name": f"Home {n}", "targets": listed([f"group-{n % GROUPS}"])}
        for n in range(count)
    ]
    loads = []
    for n in range(count):
        for k in range(2):
            on_feeder = (2 * n + k) % 50 == 0
            loads.append(
                {
                    "ven_id": f"ven-{n:06d}",
                    "load_id": f"load{k}",
                    "targets": listed([f"feeder-{(n // 25) % FEEDERS}"]) if on_feeder else None,
                }
            )
    return vens, loads


async def fill(url: str, count: int) -> None:
    engine = create_engine(url)
    postgres = engine.dialect.name == "postgresql"
    vens, loads = rows(count, postgres)
    ven_sql = text(
        "INSERT INTO vens (id, name, enabled, targets) VALUES (:id, :name, true, :targets)"
    )
    load_sql = text(
        "INSERT INTO ven_loads (ven_id, load_id, type, shed_capability_kw, current_power_kw,"
        " critical, enabled, targets) VALUES (:ven_id, :load_id, 'ev', 1, 0, false, true,"
        " :targets)"
    )
    if postgres:  # the lists bound as text[]
        ven_sql = ven_sql.bindparams(bindparam("targets", type_=TEXT_ARRAY))
        load_sql = load_sql.bindparams(bindparam("targets", type_=TEXT_ARRAY))
    async with engine.begin() as conn:
        for start in range(0, len(vens), 10_000):
            await conn.execute(ven_sql, vens[start : start + 10_000])
        for start in range(0, len(loads), 10_000):
            await conn.execute(load_sql, loads[start : start + 10_000])
        if postgres:
            await conn.execute(text("ANALYZE vens"))
            await conn.execute(text("ANALYZE ven_loads"))
    await engine.dispose()


async def timed(
    uow: SqlUnitOfWorkFactory, targets: Sequence[str], repeat: int
) -> tuple[float, int]:
    times, found = [], 0
    for _ in range(repeat):
        async with uow() as tx:
            start = time.perf_counter()
            found = len(await tx.vens.targeted(targets))
            times.append(time.perf_counter() - start)
    return statistics.median(times), found


async def measure(name: str, url: str, count: int, repeat: int) -> None:
    await migrate(url)
    began = time.perf_counter()
    await fill(url, count)
    took = time.perf_counter() - began
    print(f"{name}: {count:,} VENs, {2 * count:,} loads written in {took:.1f} s")
    engine = create_engine(url)
    uow = SqlUnitOfWorkFactory(engine)
    try:
        reference, everyone = await timed(uow, [], repeat)
        print(f"  every VEN id (reference):     {reference * 1000:8.1f} ms, {everyone:,} VENs")
        cases = {
            "one group (1 %)": ["group-7"],
            "one feeder (via loads)": ["feeder-5"],
            "group + feeder + 5 ids": ["group-7", "feeder-5", *(f"ven-{n:06d}" for n in range(5))],
            "no VEN (a misspelt group)": ["gruop-7"],
        }
        for label, targets in cases.items():
            median, found = await timed(uow, targets, repeat)
            print(
                f"  {label + ':':<29} {median * 1000:8.1f} ms, {found:,} VENs"
                f"  ({median / reference:.3f}x the reference)"
            )
        if engine.dialect.name == "postgresql":
            async with engine.connect() as conn:
                plan = await conn.execute(
                    text(
                        "EXPLAIN SELECT id FROM vens WHERE id = ANY(:t)"
                        " UNION SELECT id FROM vens WHERE targets && :t"
                        " UNION SELECT ven_id FROM ven_loads WHERE targets && :t"
                    ).bindparams(bindparam("t", ["group-7"], type_=TEXT_ARRAY))
                )
                print("  plan of the group query:")
                for (line,) in plan:
                    print(f"    {line}")
    finally:
        await engine.dispose()


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--vens", type=int, default=100_000)
    parser.add_argument("--repeat", type=int, default=7)
    args = parser.parse_args()
    print(f"load average before: {os.getloadavg()}")
    name = f"gridcore_bench_targets_{uuid.uuid4().hex[:8]}"
    with admin() as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        url = f"postgresql+psycopg://{PG_USER}@{PG_HOST}:{PG_PORT}/{name}"
        await measure("PostgreSQL", url, args.vens, args.repeat)
    finally:
        with admin() as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    with tempfile.TemporaryDirectory() as tmp:
        await measure("SQLite", f"sqlite+aiosqlite:///{tmp}/targets.db", args.vens, args.repeat)
    print(f"load average after: {os.getloadavg()}")


if __name__ == "__main__":
    asyncio.run(main())
