"""The fleet's history roll-ups (gridcore.history), implementing
:class:`gridcore.ports.HistoryRollup`: ``fleet_intervals`` and ``fleet_days``
made from ``ven_intervals`` (with their event marks) and ``ven_days`` once
closed, by one worker at a time (a session advisory lock on PostgreSQL; the
others skip the pass). A pass:

1. moves ``marked_through`` up to the horizon (gridcore.history.rollup_horizon):
   from then on ingest marks telemetry it adds to an interval before it
   (``fleet_late``). It does so holding ``ven_intervals`` in SHARE mode, which
   waits for the ingest transactions in flight (they hold ROW EXCLUSIVE on it
   from their current-state statement, which writes the intervals, to their
   commit) and holds new ones back for the one-row update only: an ingest
   statement takes its table locks before its snapshot, so every one that
   ends after this commit sees the new bound and marks what it adds before it.
   Short lock timeouts, retried with a pause, as for the partitions'
   DETACH (adapters.sql.partitions): ingest never waits longer than that.
2. rolls up the intervals from ``rolled_through`` to ``marked_through``, a
   day per transaction, each moving ``rolled_through`` (what reads trust) as
   it commits. Every ingest that did not see the new bound committed before
   step 1 did, so before these snapshots: the roll-ups miss nothing unmarked.
3. makes again the buckets of the marks it sees (deleting them), in one
   transaction: each later statement's snapshot holds every mark's
   telemetry (a mark commits with it). A mark committed meanwhile stays for the
   next pass; until then reads take its bucket from the VENs' rows.

SQLite has one writer at a time: ingest and a pass take turns, the same
steps hold without the lock.
"""

from __future__ import annotations

import asyncio
import logging
import random
from datetime import datetime, timedelta
from typing import Any

from psycopg.errors import LockNotAvailable
from sqlalchemy import (
    Column,
    Float,
    Select,
    Table,
    and_,
    cast,
    delete,
    func,
    insert,
    select,
    text,
    update,
)
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.exc import OperationalError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine
from sqlalchemy.sql.elements import ColumnElement

from adapters.sql.engine import SQLITE_BEGIN
from adapters.sql.partitions import MAINTENANCE_LOCK_KEY
from adapters.sql.tables import (
    fleet_days,
    fleet_intervals,
    fleet_late,
    fleet_rollup,
    ven_days,
    ven_interval_events,
    ven_intervals,
)
from gridcore.history import (
    ROLLUP_AFTER,
    closed_days,
    day_of,
    rollup_horizon,
    rollup_spans,
)
from gridcore.ports import RollupReport

log = logging.getLogger("adapters.sql.rollups")

# Its own lock: a roll-up pass and a partition pass may run side by side.
ROLLUP_LOCK_KEY = MAINTENANCE_LOCK_KEY + 1
_FLEET_COLUMNS = ("vens", "samples", "used_kw", "shed_kw", "requested_kw", "event_id")
_CHUNK = 500  # marked buckets made again per statement

# Which buckets a step makes: a range [lo, hi) of starts, or the starts themselves.
Buckets = tuple[datetime, datetime] | list[datetime]


class SqlHistoryRollup:
    """The roll-ups on PostgreSQL or SQLite (module docstring)."""

    def __init__(
        self,
        engine: AsyncEngine,
        *,
        after: timedelta = ROLLUP_AFTER,
        lock_timeout: timedelta = timedelta(milliseconds=100),
        max_lock_timeout: timedelta = timedelta(seconds=2),
        attempts: int = 20,
    ) -> None:
        self._engine = engine
        self._after = after
        self._postgres = engine.dialect.name == "postgresql"
        self._lock_timeout_ms = max(1, int(lock_timeout.total_seconds() * 1000))
        self._max_lock_timeout_ms = max(
            self._lock_timeout_ms, int(max_lock_timeout.total_seconds() * 1000)
        )
        self._attempts = attempts

    async def roll_up(self, now: datetime) -> RollupReport | None:
        horizon = rollup_horizon(now, self._after)
        async with self._engine.connect() as conn:
            if not self._postgres:  # writers take SQLite's write lock up front
                await conn.execution_options(**{SQLITE_BEGIN: "IMMEDIATE"})
            if self._postgres:
                got = await conn.scalar(select(func.pg_try_advisory_lock(ROLLUP_LOCK_KEY)))
                await conn.commit()
                if not got:
                    log.debug("another worker rolls up the fleet's history; skipping this pass")
                    return None
            try:
                return await self._pass(conn, horizon)
            finally:
                if self._postgres:
                    await conn.rollback()
                    await conn.execute(select(func.pg_advisory_unlock(ROLLUP_LOCK_KEY)))
                    await conn.commit()

    async def _pass(self, conn: AsyncConnection, horizon: datetime) -> RollupReport:
        async with conn.begin():
            # Its one row (made by the migration; made again if the rows were emptied).
            upsert = pg_insert if self._postgres else sqlite_insert
            await conn.execute(upsert(fleet_rollup).values(id=1).on_conflict_do_nothing())
            state = (await conn.execute(select(fleet_rollup).where(fleet_rollup.c.id == 1))).one()
        marked: datetime | None = state.marked_through
        if marked is None or marked < horizon:
            await self._mark_through(conn, horizon)
            marked = horizon
        rolled: datetime | None = state.rolled_through
        if rolled is None:
            # The first day (its index answers; the intervals' min would scan them all).
            first = await conn.scalar(select(func.min(ven_days.c.day)))
            rolled = marked if first is None else min(first, marked)
            await conn.commit()
        intervals = days = 0
        for lo, hi in rollup_spans(rolled, marked):
            async with conn.begin():
                intervals += await self._make_intervals(conn, (lo, hi))
                d0, d1 = closed_days(lo, hi)
                if d0 < d1:
                    days += await self._make_days(conn, (d0, d1))
                await conn.execute(
                    update(fleet_rollup).where(fleet_rollup.c.id == 1).values(rolled_through=hi)
                )
            rolled = hi
        restated = await self._restate(conn, rolled)
        if intervals or days or restated:
            log.info(
                "fleet history rolled up through %s: %d interval(s), %d day(s), "
                "%d bucket(s) made again after late telemetry",
                rolled.isoformat(), intervals, days, restated,
            )  # fmt: skip
        return RollupReport(rolled, intervals, days, restated)

    async def _mark_through(self, conn: AsyncConnection, bound: datetime) -> None:
        """Step 1: ingest marks what it adds before ``bound`` from now on."""
        moved = update(fleet_rollup).where(fleet_rollup.c.id == 1).values(marked_through=bound)
        if not self._postgres:
            async with conn.begin():
                await conn.execute(moved)
            return
        timeout = self._lock_timeout_ms
        for attempt in range(1, self._attempts + 1):
            try:
                async with conn.begin():
                    await conn.execute(text(f"SET LOCAL lock_timeout = {timeout}"))
                    await conn.execute(text("LOCK TABLE ven_intervals IN SHARE MODE"))
                    await conn.execute(moved)
                return
            except OperationalError as exc:
                if not isinstance(exc.orig, LockNotAvailable) or attempt == self._attempts:
                    raise
                timeout = min(timeout * 2, self._max_lock_timeout_ms)
                await asyncio.sleep(random.uniform(0.02, 0.1))

    async def _make_intervals(self, conn: AsyncConnection, which: Buckets) -> int:
        """The fleet's intervals ``which`` (a range or starts), made (again)
        from each VEN's."""
        i, e = ven_intervals.c, ven_interval_events.c
        n = cast(i.samples, Float)
        rows = (
            select(
                i.start,
                func.count(),
                func.sum(i.samples),
                func.sum(i.used_sum / n),
                func.sum(i.shed_sum / n),
                func.sum(func.coalesce(e.requested_sum, 0.0) / n),
                func.max(e.event_id),
            )
            .select_from(
                # the marks bounded too: PostgreSQL then reads their range, not all of them
                ven_intervals.outerjoin(
                    ven_interval_events,
                    and_(e.ven_id == i.ven_id, e.start == i.start, *_within(e.start, which)),
                )
            )
            .where(*_within(i.start, which))
            .group_by(i.start)
        )
        return await self._replace(conn, fleet_intervals, fleet_intervals.c.start, which, rows)

    async def _make_days(self, conn: AsyncConnection, which: Buckets) -> int:
        """The fleet's days ``which``, made (again) from each VEN's."""
        d = ven_days.c
        n = cast(d.samples, Float)
        rows = (
            select(
                d.day,
                func.count(),
                func.sum(d.samples),
                func.sum(d.used_sum / n),
                func.sum(d.shed_sum / n),
                func.sum(d.requested_sum / n),
                func.max(d.event_id),
            )
            .where(*_within(d.day, which))
            .group_by(d.day)
        )
        return await self._replace(conn, fleet_days, fleet_days.c.day, which, rows)

    @staticmethod
    async def _replace(
        conn: AsyncConnection, table: Table, key: Column[Any], which: Buckets, rows: Select[Any]
    ) -> int:
        await conn.execute(delete(table).where(*_within(key, which)))
        # (RETURNING: an INSERT ... SELECT's rowcount is not reported through psycopg)
        made = await conn.execute(
            insert(table).from_select([key.key, *_FLEET_COLUMNS], rows).returning(key)
        )
        return len(made.all())

    async def _restate(self, conn: AsyncConnection, rolled: datetime) -> int:
        """Step 3: the buckets late telemetry marked, made again."""
        async with conn.begin():
            seen = await conn.execute(
                delete(fleet_late).where(fleet_late.c.start < rolled).returning(fleet_late.c.start)
            )
            starts = sorted({r[0] for r in seen})
            if not starts:
                return 0
            days = sorted({day_of(s) for s in starts if day_of(s) < day_of(rolled)})
            for k in range(0, len(starts), _CHUNK):
                await self._make_intervals(conn, starts[k : k + _CHUNK])
            for k in range(0, len(days), _CHUNK):
                await self._make_days(conn, days[k : k + _CHUNK])
        return len(starts) + len(days)


def _within(column: ColumnElement[datetime], which: Buckets) -> list[ColumnElement[bool]]:
    if isinstance(which, tuple):
        return [column >= which[0], column < which[1]]
    return [column.in_(which)]
