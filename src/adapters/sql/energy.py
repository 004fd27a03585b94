"""Energy in SQL: what a telemetry batch adds, and the kWh used today, with the
rule of :mod:`gridcore.energy`.

Each VEN's energy of the UTC day it is in runs in its ``ven_latest`` row
(``energy_day``, ``energy_kwh``: the closed energy of that day so far), which
every batch rewrites anyway; a completed day becomes a ``ven_energy`` row
(day, VEN), written once when the VEN's running day moves on. Today's total
is then one pass over ``ven_latest``, as the other stats are: no history, no
per-VEN upsert per message.

Ingest (each dialect's ``BatchWriter.write``, in the batch's transaction,
after the VEN locks) chains a batch's readings from each VEN's ``ven_latest``
row as it was before the batch: SQLite reads the rows and runs
``energy_update`` (the domain's ``closed_energy``); PostgreSQL does the same
in SQL inside its current-state statement (``ingest_pg``), which saved the
Python and a round trip per batch. Reading computes the open segment of each
VEN's newest reading in SQL too (``today_kwh``). The contract tests of
``/api/stats/network`` hold both SQL versions to the domain's rule.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import datetime, timedelta
from typing import Any, NamedTuple

from sqlalchemy import Float, case, cast, extract, func, literal, select
from sqlalchemy.ext.asyncio import AsyncConnection
from sqlalchemy.sql.elements import ColumnElement

from adapters.sql.tables import ven_energy, ven_latest, vens
from gridcore.energy import Reading, closed_energy, day_start

# A completed day of one VEN: (day, ven_id, kWh), to add to ven_energy.
EnergyRow = tuple[datetime, str, float]
# A VEN's running day (ven_latest.energy_day, .energy_kwh); (None, None): none yet.
RunningDay = tuple[datetime | None, float | None]


class VenEnergy(NamedTuple):
    """A VEN's ``ven_latest`` row as energy needs it: its newest reading and
    the day it is running (``None`` before its first closed segment)."""

    reading: Reading
    running: RunningDay = (None, None)


class EnergyUpdate(NamedTuple):
    running: dict[str, RunningDay]  # every VEN of the batch: its running day after it
    completed: list[EnergyRow]  # days the batch completed, sorted


def energy_update(
    samples: Iterable[tuple[str, datetime, float | None]],
    before: Mapping[str, VenEnergy],
    max_hold: timedelta,
) -> EnergyUpdate:
    """What a batch of (VEN, timestamp, usedPowerKw) does to energy: each VEN's
    segments are closed from its newest reading before the batch and added to
    its running day; the latest day with energy runs on, earlier ones are
    completed. (A segment before the running day is closed only after a
    reading stamped in the future was replaced: that day is completed too.)"""
    by_ven: dict[str, list[Reading]] = {}
    for ven_id, at, kw in samples:
        by_ven.setdefault(ven_id, []).append(Reading(at, kw))
    running: dict[str, RunningDay] = {}
    completed: list[EnergyRow] = []
    for ven_id, readings in by_ven.items():
        state = before.get(ven_id)
        added = closed_energy(state.reading if state else None, readings, max_hold)
        day, kwh = state.running if state else (None, None)
        if day is not None:
            added[day] = added.get(day, 0.0) + (kwh or 0.0)
        if not added:
            running[ven_id] = (day, kwh)
            continue
        latest = max(added)
        running[ven_id] = (latest, added.pop(latest))
        if added:  # the batch moved the VEN into a later day
            completed.extend((d, ven_id, k) for d, k in added.items() if k != 0.0)
    return EnergyUpdate(running, sorted(completed))


def _epoch(dialect: str, column: Any) -> ColumnElement[float]:
    """Seconds since 1970 of a timestamp column, with its fraction."""
    if dialect == "postgresql":
        return cast(extract("epoch", column), Float)
    # SQLite keeps 'YYYY-MM-DD HH:MM:SS.ffffff' UTC text; julianday reads it.
    return (func.julianday(column) - 2440587.5) * 86400.0


def _seconds(at: datetime) -> ColumnElement[float]:
    return literal(at.timestamp(), Float)


def today_kwh(dialect: str, now: datetime, max_hold: timedelta) -> Any:
    """Over registered VENs, in one pass of ``ven_latest``: the closed energy of
    today's running days, and each newest reading's open segment from midnight
    to ``now`` (``gridcore.energy.open_energy_kwh``)."""
    today, latest = day_start(now), ven_latest.c
    ts = _epoch(dialect, latest.timestamp)
    hold = max_hold.total_seconds()
    if dialect == "postgresql":
        seconds = func.least(_seconds(now), ts + hold) - func.greatest(ts, _seconds(today))
    else:  # SQLite's min() and max() of several arguments are scalar
        seconds = func.min(_seconds(now), ts + hold) - func.max(ts, _seconds(today))
    # The open segment is not empty: the reading is before now and held past midnight.
    is_open = (latest.timestamp < now) & (latest.timestamp > today - max_hold)
    opened = case((is_open, func.coalesce(latest.used_power_kw, 0.0) * seconds / 3600.0))
    closed = case((latest.energy_day == today, latest.energy_kwh))
    return (
        select(func.coalesce(func.sum(closed), 0.0) + func.coalesce(func.sum(opened), 0.0))
        .select_from(ven_latest)
        .join(vens, vens.c.id == latest.ven_id)
    )


def completed_today_kwh(now: datetime) -> Any:
    """Today's ``ven_energy`` rows of registered VENs: none, unless a VEN's
    running day moved past today (a clock running ahead across midnight)."""
    return (
        select(func.coalesce(func.sum(ven_energy.c.used_kwh), 0.0))
        .select_from(ven_energy)
        .join(vens, vens.c.id == ven_energy.c.ven_id)
        .where(ven_energy.c.day == day_start(now))
    )


async def energy_today(conn: AsyncConnection, now: datetime, max_hold: timedelta) -> float:
    """kWh registered VENs used from midnight UTC to ``now``
    (``gridcore.energy.energy_today``)."""
    running = await conn.scalar(today_kwh(conn.dialect.name, now, max_hold))
    completed = await conn.scalar(completed_today_kwh(now))
    return float(running or 0.0) + float(completed or 0.0)
