"""Telemetry read for DR events (:mod:`gridcore.participation`): the reduction
the VENs report at one instant, and a VEN's samples around its ACKs.

Both are index seeks on ``ven_telemetry``'s (ven_id, timestamp) key or reads of
``ven_latest``; neither scans more history than the VEN offline window.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import ColumnElement, and_, exists, func, not_, or_, select
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from adapters.sql.latest import load_sample, sample_from
from adapters.sql.repositories import MAX_DISPATCH_BATCH, MAX_LIMIT
from adapters.sql.tables import commands, ven_latest, ven_load_samples, ven_telemetry
from gridcore.correlation import CommandOp, CommandState
from gridcore.participation import Around
from gridcore.telemetry import LoadSample, TelemetrySample

# Instants per statement of `samples_around`: two scalar subqueries each, under
# SQLite's 2,000 result columns and every driver's parameter limit.
_INSTANTS_PER_QUERY = 200
# Ids per IN list, under every driver's parameter limit.
_IDS_PER_QUERY = 500


def _quiet(row: Any, event_id: str) -> ColumnElement[bool]:
    """gridcore.reconcile.quiet: names another event or none, and no shed."""
    return and_(
        or_(row.event_id.is_(None), row.event_id != event_id),
        func.coalesce(row.shed_power_kw, 0.0) <= 0.0,
    )


class ParticipationQueries:
    """The DR-event half of :class:`gridcore.ports.TelemetryQueries`."""

    _engine: AsyncEngine

    async def not_shedding(
        self, event_id: str, *, acked_before: datetime, since: datetime, limit: int = 1000
    ) -> list[str]:
        latest, t, c = ven_latest.c, ven_telemetry.c, commands.c
        # The event's accepted VENs through its (event_id, ven_id) index; their
        # current state is one row each; only those it says are quiet have
        # the window of their history read, by their (ven_id, timestamp) key.
        accepted = select(c.ven_id).where(
            c.event_id == event_id,
            c.op == CommandOp.EVENT.value,
            c.state == CommandState.ACKED.value,
            c.acked_at <= acked_before,
        )
        shedding = exists().where(
            t.ven_id == latest.ven_id, t.timestamp > since, not_(_quiet(t, event_id))
        )
        query = (
            select(latest.ven_id)
            .where(
                latest.ven_id.in_(accepted),
                latest.timestamp > since,
                _quiet(latest, event_id),
                ~shedding,
            )
            .order_by(latest.ven_id)
            .limit(min(max(limit, 1), MAX_DISPATCH_BATCH))
        )
        async with self._engine.connect() as conn:
            return list((await conn.scalars(query)).all())

    async def reported_reduction(self, event_id: str, at: datetime, within: timedelta) -> float:
        latest, t = ven_latest.c, ven_telemetry.c
        since = at - within
        # A VEN whose newest message is at or before `at` (every VEN, when `at`
        # is now): that message is its newest sample then; latest state says it.
        current = select(func.sum(latest.shed_power_kw)).where(
            latest.event_id == event_id, latest.timestamp > since, latest.timestamp <= at
        )
        # A VEN heard from since `at` (an event that ended): its newest sample
        # in the window before `at`, found through its (ven_id, timestamp) key.
        newest = (
            select(t.ven_id, func.max(t.timestamp).label("timestamp"))
            .where(
                t.ven_id.in_(select(latest.ven_id).where(latest.timestamp > at)),
                t.timestamp > since,
                t.timestamp <= at,
            )
            .group_by(t.ven_id)
            .subquery()
        )
        past = (
            select(func.sum(t.shed_power_kw))
            .select_from(
                ven_telemetry.join(
                    newest, and_(t.ven_id == newest.c.ven_id, t.timestamp == newest.c.timestamp)
                )
            )
            .where(t.event_id == event_id)
        )
        async with self._engine.connect() as conn:
            now_kw = await conn.scalar(current)
            then_kw = await conn.scalar(past)
        return round(float(now_kw or 0.0) + float(then_kw or 0.0), 3)

    async def samples_around(
        self, ven_id: str, instants: Sequence[datetime], within: timedelta
    ) -> dict[datetime, Around]:
        wanted = sorted(set(instants))[:MAX_LIMIT]
        t = ven_telemetry.c
        mine = t.ven_id == ven_id
        neighbours: dict[datetime, tuple[datetime | None, datetime | None]] = {}
        async with self._engine.connect() as conn:
            for first in range(0, len(wanted), _INSTANTS_PER_QUERY):
                chunk = wanted[first : first + _INSTANTS_PER_QUERY]
                columns: list[Any] = []
                for n, at in enumerate(chunk):
                    before = select(t.timestamp).where(
                        mine, t.timestamp < at, t.timestamp > at - within
                    )
                    after = select(t.timestamp).where(
                        mine, t.timestamp >= at, t.timestamp < at + within
                    )
                    columns.append(
                        before.order_by(t.timestamp.desc())
                        .limit(1)
                        .scalar_subquery()
                        .label(f"b{n}")
                    )
                    columns.append(
                        after.order_by(t.timestamp).limit(1).scalar_subquery().label(f"a{n}")
                    )
                row = (await conn.execute(select(*columns))).one()
                for n, at in enumerate(chunk):
                    neighbours[at] = (row[2 * n], row[2 * n + 1])
            stamps = sorted({s for pair in neighbours.values() for s in pair if s is not None})
            samples = await _samples_at(conn, ven_id, stamps)
        return {
            at: Around(
                samples.get(before) if before is not None else None,
                samples.get(after) if after is not None else None,
            )
            for at, (before, after) in neighbours.items()
            if before is not None or after is not None
        }


async def _samples_at(
    conn: AsyncConnection, ven_id: str, stamps: Sequence[datetime]
) -> dict[datetime, TelemetrySample]:
    """The VEN's samples stamped at ``stamps``, with their loads."""
    rows: list[Any] = []
    loads: dict[datetime, list[LoadSample]] = {}
    s = ven_load_samples.c
    for first in range(0, len(stamps), _IDS_PER_QUERY):
        chunk = stamps[first : first + _IDS_PER_QUERY]
        found = await conn.execute(
            select(ven_telemetry).where(
                ven_telemetry.c.ven_id == ven_id, ven_telemetry.c.timestamp.in_(chunk)
            )
        )
        rows += found.mappings().all()
        lines = await conn.execute(
            select(ven_load_samples)
            .where(s.ven_id == ven_id, s.timestamp.in_(chunk))
            .order_by(s.timestamp, s.load_id)
        )
        for line in lines.mappings():
            loads.setdefault(line["timestamp"], []).append(load_sample(line))
    return {r["timestamp"]: sample_from(r, loads.get(r["timestamp"], [])) for r in rows}
