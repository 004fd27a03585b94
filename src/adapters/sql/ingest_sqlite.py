"""SQLite half of telemetry ingest: executemany inside one write transaction.

The store opens the transaction with ``BEGIN IMMEDIATE``: this process holds
SQLite's single write lock from the duplicate check to the commit, so the check
is exact and the ids taken after ``max(id)`` are free.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import asdict
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import bindparam, func, or_, select, tuple_, update
from sqlalchemy.dialects.sqlite import insert
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine
from sqlalchemy.sql.elements import BindParameter

from adapters.sql.energy import VenEnergy, energy_update
from adapters.sql.engine import SQLITE_BEGIN
from adapters.sql.tables import (
    INTERVAL_TOTALS,
    LOAD_FIELDS,
    PANEL_FIELDS,
    fleet_late,
    fleet_rollup,
    ven_days,
    ven_energy,
    ven_interval_events,
    ven_intervals,
    ven_latest,
    ven_load_samples,
    ven_telemetry,
    vens,
)
from adapters.sql.telemetry import Key, Prepared, newest_per_ven, received_by
from adapters.sql.types import UtcDateTime
from gridcore.energy import Reading
from gridcore.history import DayTotals, IntervalEvents, day_of, late_intervals
from gridcore.intervals import IntervalTotals, interval_start, roll_up
from gridcore.timestamps import heard_at

# Under SQLite's default limit of 32,766 bound variables per statement.
_CHUNK = 500
_V_ID: BindParameter[str] = bindparam("v_id")
_V_TS: BindParameter[datetime] = bindparam("v_ts", type_=UtcDateTime())


class SqliteBatchWriter:
    def __init__(self, engine: AsyncEngine, max_hold: timedelta) -> None:
        self._engine = engine
        self._max_hold = max_hold  # gridcore.energy's max_hold

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[AsyncConnection]:
        async with self._engine.connect() as conn:
            await conn.execution_options(**{SQLITE_BEGIN: "IMMEDIATE"})
            async with conn.begin():
                yield conn

    async def close(self) -> None:
        pass  # keeps no connection between appends

    async def known_vens(self, conn: AsyncConnection, ven_ids: Sequence[str]) -> set[str]:
        known: set[str] = set()
        for start in range(0, len(ven_ids), _CHUNK):
            chunk = ven_ids[start : start + _CHUNK]
            known.update(
                row[0] for row in await conn.execute(select(vens.c.id).where(vens.c.id.in_(chunk)))
            )
        return known

    async def register(self, conn: AsyncConnection, first_seen: Sequence[Key]) -> None:
        if first_seen:
            await conn.execute(
                insert(vens).on_conflict_do_nothing(),
                [
                    {"id": ven_id, "name": ven_id, "enabled": True, "registered_at": at}
                    for ven_id, at in first_seen
                ],
            )

    async def lookup(
        self, conn: AsyncConnection, ven_ids: Sequence[str], keys: Sequence[Key]
    ) -> tuple[set[str], set[Key]]:
        return await self.known_vens(conn, ven_ids), await self.existing(conn, keys)

    async def existing(self, conn: AsyncConnection, keys: Sequence[Key]) -> set[Key]:
        found: set[Key] = set()
        pair = tuple_(ven_telemetry.c.ven_id, ven_telemetry.c.timestamp)
        for start in range(0, len(keys), _CHUNK):
            rows = await conn.execute(
                select(ven_telemetry.c.ven_id, ven_telemetry.c.timestamp).where(
                    pair.in_(keys[start : start + _CHUNK])
                )
            )
            found.update((ven_id, ts) for ven_id, ts in rows)
        return found

    async def write(self, conn: AsyncConnection, batch: Sequence[Prepared]) -> None:
        # Energy chains from each VEN's ven_latest row as it is before the batch.
        before = await self._energy_before(conn, sorted({item.key[0] for item in batch}))
        energy = energy_update(
            ((*item.key, item.panel[_USED_POWER]) for item in batch), before, self._max_hold
        )
        last = await conn.execute(select(func.coalesce(func.max(ven_telemetry.c.id), 0)))
        first_id = int(last.scalar_one()) + 1
        telemetry_rows: list[dict[str, Any]] = []
        load_rows: list[dict[str, Any]] = []
        for tid, item in enumerate(batch, start=first_id):
            ven_id, ts = item.key
            row = dict(zip(PANEL_FIELDS, item.panel, strict=True))
            row.update(id=tid, ven_id=ven_id, timestamp=ts, raw_payload=item.raw_payload)
            telemetry_rows.append(row)
            for line in item.loads:
                load = dict(zip(_LOAD_COLUMNS, line, strict=True))
                load.update(ven_id=ven_id, timestamp=ts, telemetry_id=tid)
                load_rows.append(load)
        await conn.execute(ven_telemetry.insert(), telemetry_rows)
        if load_rows:
            await conn.execute(ven_load_samples.insert(), load_rows)
        newest = newest_per_ven(batch)
        received = received_by(batch)
        await conn.execute(
            update(vens)
            .where(vens.c.id == _V_ID)
            .where(or_(vens.c.last_seen_at.is_(None), vens.c.last_seen_at < _V_TS))
            .values(last_seen_at=_V_TS),
            [{"v_id": item.key[0], "v_ts": heard_at(item.key[1], received)} for item in newest],
        )
        ids = {item.key: tid for tid, item in enumerate(batch, start=first_id)}
        latest = insert(ven_latest)
        newer = ven_latest.c.timestamp < latest.excluded.timestamp
        await conn.execute(
            latest.on_conflict_do_update(
                index_elements=[ven_latest.c.ven_id],
                set_={c: latest.excluded[c] for c in ("telemetry_id", "timestamp", *_REWRITTEN)},
                # A current state stamped after the batch arrived yields (see received_by).
                where=newer if received is None else or_(newer, ven_latest.c.timestamp > received),
            ),
            [
                {
                    "ven_id": item.key[0],
                    "telemetry_id": ids[item.key],
                    "timestamp": item.key[1],
                    **{f: v for f, v in zip(PANEL_FIELDS, item.panel, strict=True) if f in _LATEST},
                    "energy_day": energy.running[item.key[0]][0],
                    "energy_kwh": energy.running[item.key[0]][1],
                }
                for item in newest
            ],
        )

        await self._add_intervals(conn, batch)
        if energy.completed:
            added = insert(ven_energy)
            await conn.execute(
                added.on_conflict_do_update(
                    index_elements=[ven_energy.c.day, ven_energy.c.ven_id],
                    set_={"used_kwh": ven_energy.c.used_kwh + added.excluded.used_kwh},
                ),
                [{"day": d, "ven_id": v, "used_kwh": kwh} for d, v, kwh in energy.completed],
            )

    async def _add_intervals(self, conn: AsyncConnection, batch: Sequence[Prepared]) -> None:
        """The batch's samples added to their VENs' intervals (gridcore.intervals)."""
        by_ven: dict[str, list[tuple[datetime, Any, Any, Any]]] = {}
        for item in batch:
            ven_id, ts = item.key
            by_ven.setdefault(ven_id, []).append(
                (ts, item.panel[_USED_POWER], item.panel[_SHED_POWER], item.panel[_BASELINE])
            )
        rows = [
            {"ven_id": ven_id, "start": start, **asdict(totals)}
            for ven_id, samples in sorted(by_ven.items())
            for start, totals in sorted(roll_up(samples).items())
        ]
        added = insert(ven_intervals)
        held, new = ven_intervals.c, added.excluded
        merged: dict[str, Any] = {
            f: held[f] + new[f] for f in INTERVAL_TOTALS if not f.endswith(("_min", "_max"))
        }
        for f in INTERVAL_TOTALS:  # SQLite's two-argument min/max would return NULL
            if f.endswith("_min"):
                merged[f] = func.coalesce(func.min(held[f], new[f]), held[f], new[f])
            elif f.endswith("_max"):
                merged[f] = func.coalesce(func.max(held[f], new[f]), held[f], new[f])
        await conn.execute(
            added.on_conflict_do_update(index_elements=[held.ven_id, held.start], set_=merged),
            rows,
        )
        marked = await conn.scalar(
            select(fleet_rollup.c.marked_through).where(fleet_rollup.c.id == 1)
        )
        late = late_intervals((r["start"] for r in rows), marked)
        if late:  # (gridcore.history)
            await conn.execute(insert(fleet_late), [{"start": at} for at in sorted(late)])
        marks: dict[tuple[str, datetime], IntervalEvents] = {}
        days: dict[tuple[str, datetime], DayTotals] = {}
        for item in batch:
            (ven_id, ts), panel = item.key, item.panel
            one = IntervalEvents.of(panel[_EVENT_ID], panel[_REQUESTED])
            if one is not None:
                key = (ven_id, interval_start(ts))
                marks[key] = one if key not in marks else marks[key].merge(one)
            totals = IntervalTotals.of(panel[_USED_POWER], panel[_SHED_POWER], None)
            sample = DayTotals.of(totals, one)
            key = (ven_id, day_of(ts))
            days[key] = sample if key not in days else days[key].merge(sample)
        await self._add_days(conn, days)
        if marks:
            events = insert(ven_interval_events)
            mark, fresh = ven_interval_events.c, events.excluded
            await conn.execute(
                events.on_conflict_do_update(
                    index_elements=[mark.ven_id, mark.start],
                    set_={
                        # SQLite's max() of NULL and a text is NULL: coalesce both ways.
                        "event_id": func.coalesce(
                            func.max(mark.event_id, fresh.event_id), mark.event_id, fresh.event_id
                        ),
                        "requested_sum": mark.requested_sum + fresh.requested_sum,
                    },
                ),
                [
                    {
                        "ven_id": v,
                        "start": at,
                        "event_id": m.event_id,
                        "requested_sum": m.requested_sum,
                    }
                    for (v, at), m in sorted(marks.items())
                ],
            )

    async def _add_days(
        self, conn: AsyncConnection, days: dict[tuple[str, datetime], DayTotals]
    ) -> None:
        """The batch's samples added to their VENs' days (gridcore.history)."""
        if not days:
            return
        added = insert(ven_days)
        held, new = ven_days.c, added.excluded
        sums = ("samples", "used_sum", "shed_sum", "requested_sum")
        merged: dict[str, Any] = {f: held[f] + new[f] for f in sums}
        # SQLite's max() of NULL and a text is NULL: coalesce both ways.
        merged["event_id"] = func.coalesce(
            func.max(held.event_id, new.event_id), held.event_id, new.event_id
        )
        await conn.execute(
            added.on_conflict_do_update(index_elements=[held.ven_id, held.day], set_=merged),
            [{"ven_id": v, "day": d, **asdict(t)} for (v, d), t in sorted(days.items())],
        )

    async def _energy_before(
        self, conn: AsyncConnection, ven_ids: Sequence[str]
    ) -> dict[str, VenEnergy]:
        """Each VEN's newest reading and running day (``ven_latest``)."""
        c = ven_latest.c
        found: dict[str, VenEnergy] = {}
        for start in range(0, len(ven_ids), _CHUNK):
            rows = await conn.execute(
                select(c.ven_id, c.timestamp, c.used_power_kw, c.energy_day, c.energy_kwh).where(
                    c.ven_id.in_(ven_ids[start : start + _CHUNK])
                )
            )
            found.update(
                (v, VenEnergy(Reading(ts, kw), (day, kwh))) for v, ts, kw, day, kwh in rows
            )
        return found


_LATEST = ("used_power_kw", "shed_power_kw", "requested_reduction_kw", "event_id")
_REWRITTEN = (*_LATEST, "energy_day", "energy_kwh")
_USED_POWER = PANEL_FIELDS.index("used_power_kw")
_SHED_POWER = PANEL_FIELDS.index("shed_power_kw")
_BASELINE = PANEL_FIELDS.index("baseline_power_kw")
_EVENT_ID = PANEL_FIELDS.index("event_id")
_REQUESTED = PANEL_FIELDS.index("requested_reduction_kw")
_LOAD_COLUMNS = ("load_id", *LOAD_FIELDS, "current_amps")
