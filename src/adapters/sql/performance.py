"""Kept event performance reports (:class:`gridcore.ports.PerformanceStore`)
in ``event_performance`` (the fleet: figures and interval series as one
document) and ``event_ven_performance`` (a row per VEN, for settlement
queries). Saving replaces what was kept for the event and method, in one
transaction."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, fields
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import delete, select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncEngine

from adapters.sql.engine import SQLITE_BEGIN
from adapters.sql.tables import VEN_PERFORMANCE_FIELDS, event_performance, event_ven_performance
from gridcore.baselines import EventWindow
from gridcore.measurement import FleetMeasurement, FleetPoint, Rebound
from gridcore.verification import PerformanceReport, VenPerformanceLine

# Chunks of VEN rows per statement (SQLite binds at most 32,766 values).
_CHUNK = 1000


def fleet_document(fleet: FleetMeasurement) -> dict[str, Any]:
    """The fleet as JSON: datetimes as ISO text, the rest as it is."""
    document = asdict(fleet)
    document["series"] = [{**p, "start": p["start"].isoformat()} for p in document["series"]]
    return document


def fleet_from(document: dict[str, Any]) -> FleetMeasurement:
    values = dict(document)
    values["series"] = tuple(
        FleetPoint(**{**p, "start": datetime.fromisoformat(p["start"])}) for p in values["series"]
    )
    rebound = values.get("rebound")
    values["rebound"] = None if rebound is None else Rebound(**rebound)
    return FleetMeasurement(**{f.name: values[f.name] for f in fields(FleetMeasurement)})


def _ven_row(report: PerformanceReport, line: VenPerformanceLine) -> dict[str, Any]:
    row = {f: getattr(line, f) for f in VEN_PERFORMANCE_FIELDS}
    row["fell_back"] = list(line.fell_back)
    return {"event_id": report.event_id, "method": report.method, "ven_id": line.ven_id, **row}


class SqlPerformanceStore:
    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine

    async def save(self, report: PerformanceReport) -> None:
        head = {
            "computed_at": report.computed_at,
            "measured_until": report.measured_until,
            "window_start": report.window.start,
            "window_end": report.window.end,
            "rebound_seconds": int(report.window.after.total_seconds()),
            "fleet": fleet_document(report.fleet),
        }
        insert = pg_insert if self._engine.dialect.name == "postgresql" else sqlite_insert
        upsert = insert(event_performance).values(
            event_id=report.event_id, method=report.method, **head
        )
        async with self._engine.connect() as conn:
            await conn.execution_options(**{SQLITE_BEGIN: "IMMEDIATE"})
            async with conn.begin():
                # The head row first: its lock makes two savers of one report
                # (the worker's pass and an API call) take turns, each
                # replacing the other's VEN rows whole.
                await conn.execute(
                    upsert.on_conflict_do_update(
                        index_elements=["event_id", "method"],
                        set_={name: upsert.excluded[name] for name in head},
                    )
                )
                await conn.execute(
                    delete(event_ven_performance).where(
                        (event_ven_performance.c.event_id == report.event_id)
                        & (event_ven_performance.c.method == report.method)
                    )
                )
                rows = [_ven_row(report, line) for line in report.vens]
                for first in range(0, len(rows), _CHUNK):
                    await conn.execute(event_ven_performance.insert(), rows[first : first + _CHUNK])

    async def get(self, event_id: str, method: str) -> PerformanceReport | None:
        p, v = event_performance.c, event_ven_performance.c
        async with self._engine.connect() as conn:
            head = (
                (
                    await conn.execute(
                        select(event_performance).where(p.event_id == event_id, p.method == method)
                    )
                )
                .mappings()
                .one_or_none()
            )
            if head is None:
                return None
            lines = (
                await conn.execute(
                    select(event_ven_performance)
                    .where(v.event_id == event_id, v.method == method)
                    .order_by(v.ven_id)
                )
            ).mappings()
            vens = tuple(
                VenPerformanceLine(
                    ven_id=r["ven_id"],
                    **{f: r[f] for f in VEN_PERFORMANCE_FIELDS if f != "fell_back"},
                    fell_back=tuple(r["fell_back"]),
                )
                for r in lines
            )
        return PerformanceReport(
            event_id=event_id,
            method=method,
            computed_at=head["computed_at"],
            measured_until=head["measured_until"],
            window=EventWindow(
                head["window_start"],
                head["window_end"],
                timedelta(seconds=head["rebound_seconds"]),
            ),
            fleet=fleet_from(head["fleet"]),
            vens=vens,
        )

    async def kept(self, event_ids: Sequence[str], method: str) -> set[str]:
        p = event_performance.c
        found: set[str] = set()
        async with self._engine.connect() as conn:
            for first in range(0, len(event_ids), _CHUNK):
                chunk = list(event_ids[first : first + _CHUNK])
                rows = await conn.execute(
                    select(p.event_id).where(p.event_id.in_(chunk), p.method == method)
                )
                found.update(r[0] for r in rows)
        return found
