"""Benchmark: telemetry ingest into PostgreSQL, store vs naive baseline.

Both runs store the same ``volttron/metering`` messages shaped like the MQTT
topics document's example, with 10 circuits (and their 10 load lines), into a
fresh, migrated database of their own, raw payload kept:

1. naive: what the original backend does, one ORM object per telemetry row
   and per load row, ``flush`` for the telemetry id, ``commit`` per message;
2. store: ``SqlTelemetryStore.append`` in batches (binary COPY).

Messages are parsed with the worker's wire schema before timing starts: this
measures storage only. Prints messages/s and rows/s for both and the ratio.

Usage::

    python benchmarks/bench_ingest.py \\
        --url postgresql+psycopg://postgres@127.0.0.1:5432/gridcore_bench \\
        [--messages 100000] [--batch 1000] [--vens 1000] [--naive-messages 2000]

The database named in ``--url`` is created and dropped by the benchmark (a
random suffix is added so that it never touches an existing database).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import psycopg
from sqlalchemy import text
from sqlalchemy.engine import make_url

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from adapters.mqtt.payloads import TelemetryWire, to_telemetry_sample
from adapters.sql.engine import create_engine
from adapters.sql.migrate import migrate
from adapters.sql.partitions import PostgresPartitions
from adapters.sql.tables import ven_load_samples, ven_telemetry, vens
from adapters.sql.telemetry import SqlTelemetryStore
from gridcore.retention import RetentionPolicy
from gridcore.telemetry import TelemetrySample

CIRCUITS = [
    ("Main HVAC", "hvac", 30, 5.0, 2),
    ("EV Charger", "ev", 50, 11.5, 1),
    ("Water Heater", "water_heater", 30, 4.5, 1),
    ("Dryer", "dryer", 30, 5.0, 1),
    ("Electric Range", "range", 40, 8.0, 3),
    ("Pool Pump", "pool_pump", 20, 2.0, 2),
    ("Refrigerator", "refrigerator", 15, 0.8, 5),
    ("Lighting", "lighting", 15, 1.2, 4),
    ("General Outlets", "outlets", 20, 1.8, 4),
    ("Dishwasher", "other", 20, 1.5, 3),
]
T0 = datetime(2025, 10, 20, tzinfo=UTC)


def message(ven: int, step: int) -> str:
    """One metering message as the topics document shows it, 10 circuits."""
    used = 0.0
    circuits, loads = [], []
    for n, (name, kind, amps, capacity, priority) in enumerate(CIRCUITS, start=1):
        kw = round(capacity * ((ven * 7 + step * 3 + n) % 10) / 10, 3)
        used += kw
        circuits.append(
            {
                "id": f"circuit_{n}",
                "name": name,
                "breakerAmps": amps,
                "currentKw": kw,
                "currentAmps": round(kw * 1000 / 240, 2),
                "enabled": True,
                "critical": kind in ("hvac", "refrigerator"),
            }
        )
        loads.append(
            {
                "loadId": f"circuit_{n}",
                "name": name,
                "type": kind,
                "capacityKw": capacity,
                "currentPowerKw": kw,
                "shedCapabilityKw": capacity,
                "enabled": True,
                "priority": priority,
            }
        )
    return json.dumps(
        {
            "venId": f"ven-{ven:05d}",
            "timestamp": int((T0 + timedelta(seconds=5 * step)).timestamp()),
            "usedPowerKw": round(used, 3),
            "shedPowerKw": 0.0,
            "requestedReductionKw": 0.0,
            "eventId": None,
            "baselinePowerKw": 13.0,
            "batterySOC": 85.5,
            "panelAmperageRating": 200,
            "panelVoltage": 240,
            "panelMaxKw": 48.0,
            "currentAmps": round(used * 1000 / 240, 1),
            "panelUtilizationPercent": round(used / 48.0 * 100, 1),
            "circuits": circuits,
            "loads": loads,
        }
    )


def samples(count: int, vens_: int, offset: int = 0) -> list[TelemetrySample]:
    out = []
    for i in range(offset, offset + count):
        text = message(i % vens_, i // vens_)
        out.append(to_telemetry_sample(TelemetryWire.model_validate_json(text), text))
    return out


async def naive(url: str, batch: list[TelemetrySample]) -> float:
    """ORM insert + commit per message, as the original backend's consumer."""
    from sqlalchemy.ext.asyncio import AsyncSession
    from sqlalchemy.orm import registry

    class Telemetry:
        def __init__(self, **kw: Any) -> None:
            self.__dict__.update(kw)

    class LoadRow(Telemetry):
        pass

    class VenRow(Telemetry):
        pass

    mapper = registry()
    mapper.map_imperatively(Telemetry, ven_telemetry)
    mapper.map_imperatively(LoadRow, ven_load_samples)
    mapper.map_imperatively(VenRow, vens)
    engine = create_engine(url)
    started = time.perf_counter()
    async with AsyncSession(engine, expire_on_commit=False) as session:
        for s in batch:
            if await session.get(VenRow, s.ven_id) is None:
                session.add(VenRow(id=s.ven_id, name=s.ven_id, enabled=True))
            row = Telemetry(
                ven_id=s.ven_id,
                timestamp=s.timestamp,
                used_power_kw=s.used_power_kw,
                shed_power_kw=s.shed_power_kw,
                requested_reduction_kw=s.requested_reduction_kw,
                event_id=s.event_id,
                baseline_power_kw=s.baseline_power_kw,
                battery_soc=s.battery_soc,
                panel_amperage_rating=s.panel_amperage_rating,
                panel_voltage=s.panel_voltage,
                panel_max_kw=s.panel_max_kw,
                current_amps=s.current_amps,
                panel_utilization_percent=s.panel_utilization_percent,
                raw_payload=s.raw_payload,
            )
            session.add(row)
            await session.flush()
            for ld in s.loads:
                session.add(
                    LoadRow(
                        ven_id=s.ven_id,
                        timestamp=s.timestamp,
                        load_id=ld.load_id,
                        telemetry_id=row.id,
                        name=ld.name,
                        type=ld.type,
                        capacity_kw=ld.capacity_kw,
                        current_power_kw=ld.current_power_kw,
                        shed_capability_kw=ld.shed_capability_kw,
                        enabled=ld.enabled,
                        priority=ld.priority,
                        critical=ld.critical,
                        breaker_amps=ld.breaker_amps,
                        current_amps=ld.current_amps,
                    )
                )
            await session.commit()
    elapsed = time.perf_counter() - started
    await engine.dispose()
    return len(batch) / elapsed


async def make_days(url: str) -> int:
    """The day partitions a worker keeps around T0 (35 days back to 3 ahead),
    so that the rows land in their day's table as they do in production
    rather than in the DEFAULT catch-all; returns how many ``ven_telemetry``
    has."""
    engine = create_engine(url)
    partitions = PostgresPartitions(engine)
    keep = RetentionPolicy(raw_days=100, ack_days=100)
    for back in range(35, -1, -1):
        await partitions.enforce(keep, T0 - timedelta(days=back))
    async with engine.connect() as conn:
        count = await conn.scalar(
            text("SELECT count(*) FROM pg_inherits WHERE inhparent = 'ven_telemetry'::regclass")
        )
    await engine.dispose()
    return int(count or 0)


async def store(
    url: str,
    batch: list[TelemetrySample],
    size: int,
    writer: Callable[[SqlTelemetryStore], None] | None = None,
) -> float:
    """Messages/s of ``SqlTelemetryStore.append`` in batches of ``size``, the
    first batch (registering the VENs) untimed; ``writer`` may swap the
    store's batch writer first (bench_partitions' reference does)."""
    engine = create_engine(url)
    store_ = SqlTelemetryStore(engine)
    if writer is not None:
        writer(store_)
    await store_.append(batch[:size])  # registers the VENs; not timed
    rest = batch[size:]
    started = time.perf_counter()
    for i in range(0, len(rest), size):
        result = await store_.append(rest[i : i + size])
        assert result.stored == len(rest[i : i + size]), result
    elapsed = time.perf_counter() - started
    await store_.close()
    await engine.dispose()
    return len(rest) / elapsed


class Database:
    """A fresh database named after ``url``'s, dropped on exit."""

    def __init__(self, url: str) -> None:
        parsed = make_url(url)
        self.name = f"{parsed.database or 'gridcore_bench'}_{uuid.uuid4().hex[:8]}"
        self.url = parsed.set(database=self.name).render_as_string(hide_password=False)
        self.admin = parsed.set(drivername="postgresql", database="postgres").render_as_string(
            hide_password=False
        )

    def __enter__(self) -> str:
        with psycopg.connect(self.admin, autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{self.name}"')
        asyncio.run(migrate(self.url, retries=3, log=lambda _: None))
        return self.url

    def __exit__(self, *_: object) -> None:
        with psycopg.connect(self.admin, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{self.name}" WITH (FORCE)')


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--url", default="postgresql+psycopg://postgres@127.0.0.1:5432/gridcore_bench"
    )
    parser.add_argument("--messages", type=int, default=100_000)
    parser.add_argument("--batch", type=int, default=1000)
    parser.add_argument("--vens", type=int, default=1000)
    parser.add_argument("--naive-messages", type=int, default=2000)
    args = parser.parse_args()

    print(f"preparing {args.messages:,} messages ({len(CIRCUITS)} circuits, {args.vens} VENs)...")
    data = samples(args.messages + args.batch, args.vens)
    size = len(data[0].raw_payload or "")
    with Database(args.url) as url:
        slow = asyncio.run(naive(url, data[: args.naive_messages]))
    with Database(args.url) as url:
        asyncio.run(make_days(url))
        fast = asyncio.run(store(url, data, args.batch))
    rows = 1 + len(data[0].loads)
    print(f"raw payload: {size} bytes; rows per message: {rows}")
    print(f"naive (ORM, commit per message): {slow:10,.0f} messages/s {slow * rows:12,.0f} rows/s")
    print(
        f"store (COPY, batch {args.batch}):     {fast:10,.0f} messages/s "
        f"{fast * rows:12,.0f} rows/s"
    )
    print(f"speed-up: {fast / slow:.1f}x")


if __name__ == "__main__":
    main()
