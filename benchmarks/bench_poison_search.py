"""Benchmark: one row PostgreSQL refuses in a batch of telemetry, against a clean batch.

The worker's ``TelemetryBatcher`` writes ``--batch`` messages (``bench_ingest``'s
10-circuit messages, 1,000 VENs, parsed before timing) into a fresh migrated
database through ``SqlTelemetryStore``, as one batch, twice per round:

1. clean: every row is stored (one write, the reference);
2. poison: the same number of messages, one of which PostgreSQL refuses (a
   CHECK constraint added to this database: the COPY of its batch fails, as a
   300-character name once made it fail). The batcher bisects the batch,
   dead-letters that message and stores the rest.

Prints, per round, the store writes (transactions) and the wall time of each,
and the poison/clean ratios. Both runs share the session, the database and
the machine's load; rounds alternate.

Usage::

    python benchmarks/bench_poison_search.py \\
        --url postgresql+psycopg://postgres@127.0.0.1:5432/gridcore_bench \\
        [--batch 5000] [--rounds 3]
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import logging
import sys
import time
from collections.abc import Sequence
from pathlib import Path

import psycopg

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from bench_ingest import Database, samples

from adapters.mqtt.buffering import TelemetryBatcher
from adapters.sql.engine import create_engine
from adapters.sql.telemetry import SqlTelemetryStore
from adapters.sql.uow import SqlUnitOfWorkFactory
from adapters.system import SystemClock
from gridcore.ports import AppendResult
from gridcore.telemetry import TelemetrySample

VENS = 1000
REFUSED_KW = 13.13  # no bench_ingest message uses it: they are multiples of 0.1 kW / 3 decimals


class CountingStore:
    def __init__(self, inner: SqlTelemetryStore) -> None:
        self.inner = inner
        self.writes = 0

    async def append(
        self, batch: Sequence[TelemetrySample], *, auto_register: bool = True
    ) -> AppendResult:
        self.writes += 1
        return await self.inner.append(batch, auto_register=auto_register)


async def write(url: str, batch: list[TelemetrySample]) -> tuple[int, float]:
    """Store writes and seconds for ``batch`` through the worker's batcher."""
    engine = create_engine(url)
    store = CountingStore(SqlTelemetryStore(engine))
    batcher = TelemetryBatcher(
        store, SqlUnitOfWorkFactory(engine), SystemClock(),
        batch_size=len(batch), max_batch=len(batch), max_held=2 * len(batch),
    )  # fmt: skip
    for sample in batch:
        batcher.add(sample, "volttron/metering")
    started = time.perf_counter()
    runner = asyncio.create_task(batcher.run())
    await batcher.flushed()
    elapsed = time.perf_counter() - started
    batcher.close()
    await runner
    await store.inner.close()
    await engine.dispose()
    assert batcher.stats.stored + batcher.stats.poisoned == len(batch), batcher.stats
    return store.writes, elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--url", default="postgresql+psycopg://postgres@127.0.0.1:5432/gridcore_bench"
    )
    parser.add_argument("--batch", type=int, default=5000)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    logging.getLogger("adapters").setLevel(logging.CRITICAL)  # the search logs what it finds
    n = args.batch
    data = samples(n * (2 * args.rounds + 1), VENS)
    with Database(args.url) as url:
        admin = url.replace("postgresql+psycopg", "postgresql")
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(
                "ALTER TABLE ven_telemetry ADD CONSTRAINT bench_refuses_one "
                f"CHECK (used_power_kw IS DISTINCT FROM {REFUSED_KW})"
            )
        asyncio.run(write(url, data[:n]))  # registers the VENs; not counted
        ratios = []
        for r in range(args.rounds):
            clean = data[n * (2 * r + 1) : n * (2 * r + 2)]
            poison = data[n * (2 * r + 2) : n * (2 * r + 3)]
            at = (r * 1_777 + n // 3) % n  # a different place each round
            poison[at] = dataclasses.replace(poison[at], used_power_kw=REFUSED_KW)
            clean_writes, clean_s = asyncio.run(write(url, clean))
            poison_writes, poison_s = asyncio.run(write(url, poison))
            ratios.append(poison_s / clean_s)
            print(
                f"round {r + 1}: clean {clean_writes} write(s) {clean_s:.3f}s; "
                f"one refused row at {at}: {poison_writes} writes {poison_s:.3f}s; "
                f"ratio {poison_s / clean_s:.2f}x time, {poison_writes / clean_writes:.0f}x writes"
            )
    print(f"time ratio poison/clean: {min(ratios):.2f} - {max(ratios):.2f}")


if __name__ == "__main__":
    main()
