"""Retention of the time-kept tables (``tables.TIME_KEPT``), implementing
:class:`gridcore.ports.StorageRetention`.

PostgreSQL (``PostgresPartitions``): each table is range-partitioned by UTC day
on ``timestamp``: ``{table}_pYYYYMMDD`` holds one day, ``{table}_default``
catches any row no day holds (a VEN clock in 2003, a day not made yet), so an
insert never fails for lack of a partition. A pass, by one worker at a time
(a session advisory lock; the others skip the pass):

1. makes today and the days ahead, and any day within retention that has rows
   in the catch-all: the day is created as a plain table, the catch-all's
   rows of that day are moved into it, and it is attached, in one transaction,
   so no row is ever in neither or both. Creating it as a partition directly
   would take an ACCESS EXCLUSIVE lock on the parent (blocking all ingest);
   ATTACH takes SHARE UPDATE EXCLUSIVE, which inserts and reads do not
   conflict with. A CHECK constraint of the day's bounds spares ATTACH a scan.
2. drops each day past retention: DETACH (a catalog change, milliseconds),
   then DROP of the detached table, each in its own short transaction.
   DETACH ... CONCURRENTLY would not block ingest at all, but PostgreSQL
   refuses it on a table with a default partition; so DETACH waits at most
   ``lock_timeout`` for its lock (while it waits, it queues the inserts
   behind it: that is the longest ingest stall) and is retried after a short
   pause, which lets the queued inserts through. The timeout starts short
   and doubles with each attempt up to ``max_lock_timeout``: DETACH gets its
   lock once the ingest transactions in flight end, so it must be able to
   outwait one of them, however slow the machine.
3. deletes catch-all rows past retention in bounded batches;
4. deletes the rows of the small time-kept tables (``tables.PRUNED``: dead
   letters and VEN alerts, not partitioned) past retention, likewise.

SQLite (``SqliteRetention``): plain tables; rows past retention (of both
kinds) are deleted in bounded batches, one short write transaction each, so
that ingest (which waits for SQLite's single writer) waits one batch at most.
"""

from __future__ import annotations

import asyncio
import logging
import random
import re
import time
from datetime import date, datetime, timedelta
from typing import Any, cast

import psycopg
from psycopg import sql
from sqlalchemy import delete, literal_column, select
from sqlalchemy.ext.asyncio import AsyncEngine

from adapters.sql.lease import DISPATCH_LOCK_KEY
from adapters.sql.tables import PRUNED, TIME_KEPT, metadata
from gridcore.ports import RetentionReport
from gridcore.retention import ONE_DAY, Kept, RetentionPolicy, midnight

log = logging.getLogger("adapters.sql.partitions")

# Distinct from the dispatch lease: maintenance and dispatch may run on
# different workers.
MAINTENANCE_LOCK_KEY = DISPATCH_LOCK_KEY + 1
DELETE_BATCH = 10_000

_DAY = re.compile(r"^(?P<table>[a-z_]+)_(?:p(?P<day>\d{8})|default)$")


def partition_name(table: str, day: date) -> str:
    return f"{table}_p{day:%Y%m%d}"


def default_name(table: str) -> str:
    return f"{table}_default"


def partition_of(name: str) -> str | None:
    """The time-kept table whose partition (day or catch-all) ``name`` is, or
    None: migrations and schema checks look past partitions."""
    match = _DAY.match(name)
    return match["table"] if match and match["table"] in TIME_KEPT else None


def _day(name: str) -> date | None:
    match = _DAY.match(name)
    day = match["day"] if match else None
    return None if day is None else datetime.strptime(day, "%Y%m%d").date()


# The table's partitions, and day tables left detached (a pass that stopped
# between its DETACH and its DROP): those are dropped when past retention.
_PARTITIONS = """
SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
WHERE i.inhparent = %s::regclass
UNION
SELECT relname FROM pg_class
WHERE relkind = 'r' AND relnamespace = current_schema()::regnamespace
  AND relname ~ ('^' || %s || '_p[0-9]{8}$')
"""

# The UTC days of the catch-all's rows at or after a bound (a small table:
# whatever arrived before its day was made, and implausible clocks).
_DEFAULT_DAYS = """
SELECT DISTINCT (timestamp AT TIME ZONE 'UTC')::date FROM {default}
WHERE timestamp >= %s AND timestamp < %s
"""


class PostgresPartitions:
    """Daily partitions made ahead and dropped by retention (module docstring)."""

    def __init__(
        self,
        engine: AsyncEngine,
        *,
        lock_timeout: timedelta = timedelta(milliseconds=100),
        max_lock_timeout: timedelta = timedelta(seconds=2),
        attempts: int = 20,
        delete_batch: int = DELETE_BATCH,
    ) -> None:
        self._engine = engine
        self._lock_timeout_ms = max(1, int(lock_timeout.total_seconds() * 1000))
        self._max_lock_timeout_ms = max(
            self._lock_timeout_ms, int(max_lock_timeout.total_seconds() * 1000)
        )
        self._attempts = attempts
        self._delete_batch = delete_batch

    async def enforce(self, policy: RetentionPolicy, now: datetime) -> RetentionReport | None:
        async with self._engine.connect() as conn:
            await conn.execution_options(isolation_level="AUTOCOMMIT")
            raw = await conn.get_raw_connection()
            pg = cast(psycopg.AsyncConnection[Any], raw.driver_connection)
            got = await (
                await pg.execute("SELECT pg_try_advisory_lock(%s)", (MAINTENANCE_LOCK_KEY,))
            ).fetchone()
            if not got or not got[0]:
                log.debug("another worker maintains the partitions; skipping this pass")
                return None
            try:
                report = RetentionReport()
                for table, kept in TIME_KEPT.items():
                    report = _merge(report, await self._table(pg, table, kept, policy, now))
                for table, (column, kept) in PRUNED.items():
                    cutoff = policy.cutoff(kept, now)
                    if cutoff is not None:
                        deleted = await self._delete_before(pg, table, column, cutoff)
                        if deleted:
                            log.info("%s: deleted %d row(s) before %s", table, deleted, cutoff)
                        report = _merge(report, RetentionReport(deleted=deleted))
                return report
            finally:
                await pg.execute("RESET lock_timeout")
                await pg.execute("SELECT pg_advisory_unlock(%s)", (MAINTENANCE_LOCK_KEY,))

    async def _table(
        self,
        pg: psycopg.AsyncConnection[Any],
        table: str,
        kept: Kept,
        policy: RetentionPolicy,
        now: datetime,
    ) -> RetentionReport:
        names = [r[0] for r in await (await pg.execute(_PARTITIONS, (table, table))).fetchall()]
        days = {d for name in names if (d := _day(name)) is not None}
        if default_name(table) not in names:  # a table made outside the migrations
            await pg.execute(
                sql.SQL("CREATE TABLE IF NOT EXISTS {} PARTITION OF {} DEFAULT").format(
                    sql.Identifier(default_name(table)), sql.Identifier(table)
                )
            )
        wanted = set(policy.days_to_prepare(now))
        # Days within retention with rows waiting in the catch-all get their
        # partition too; kept for ever, rows older than the oldest day stay there.
        first = policy.first_kept_day(kept, now) or min(days | wanted)
        last = max(wanted) + ONE_DAY
        waiting = await pg.execute(
            sql.SQL(_DEFAULT_DAYS).format(default=sql.Identifier(default_name(table))),
            (midnight(first), midnight(last)),
        )
        wanted |= {row[0] for row in await waiting.fetchall()}
        prepared, moved = [], 0
        for day in sorted(wanted - days):
            moved += await self._retrying(pg, table, day, self._make_day)
            prepared.append(f"{table}:{day.isoformat()}")
        dropped = []
        for day in policy.expired(kept, days, now):
            await self._retrying(pg, table, day, self._drop_day)
            dropped.append(f"{table}:{day.isoformat()}")
        deleted = 0
        cutoff = policy.cutoff(kept, now)
        if cutoff is not None:
            deleted = await self._delete_expired_defaults(pg, table, cutoff)
        if prepared or dropped or moved or deleted:
            log.info(
                "%s: made %s, dropped %s, moved %d row(s) out of the catch-all, "
                "deleted %d past retention",
                table, prepared or "none", dropped or "none", moved, deleted,
            )  # fmt: skip
        return RetentionReport(tuple(prepared), tuple(dropped), moved, deleted)

    async def _retrying(
        self, pg: psycopg.AsyncConnection[Any], table: str, day: date, step: Any
    ) -> int:
        """Run a step, again after a short pause when it timed out waiting for
        a lock (a transaction in flight on the table), each time with twice
        the timeout (module docstring): ingest queued behind it never stalls
        longer than the timeout of the attempt."""
        timeout = self._lock_timeout_ms
        started = time.perf_counter()
        for attempt in range(1, self._attempts + 1):
            await pg.execute(f"SET lock_timeout = {timeout}")
            try:
                moved = cast(int, await step(pg, table, day))
            except psycopg.errors.LockNotAvailable:
                if attempt == self._attempts:
                    raise
                timeout = min(timeout * 2, self._max_lock_timeout_ms)
                await asyncio.sleep(random.uniform(0.02, 0.1))
                continue
            log.debug(
                "%s %s %s: %d attempt(s), %.0f ms",
                step.__name__, table, day, attempt, (time.perf_counter() - started) * 1000,
            )  # fmt: skip
            return moved
        raise AssertionError("unreachable")

    async def _make_day(self, pg: psycopg.AsyncConnection[Any], table: str, day: date) -> int:
        """Create ``day``'s partition, moving the catch-all's rows of that day
        into it, atomically. Returns how many rows moved."""
        part, default = (
            sql.Identifier(partition_name(table, day)),
            sql.Identifier(default_name(table)),
        )
        parent = sql.Identifier(table)
        check = sql.Identifier(f"{partition_name(table, day)}_bounds")
        lo, hi = midnight(day), midnight(day + ONE_DAY)
        async with pg.transaction():
            # Another maintainer (a lease lost mid-pass) may have made it meanwhile.
            exists = await (
                await pg.execute("SELECT to_regclass(%s)", (partition_name(table, day),))
            ).fetchone()
            if exists and exists[0] is not None:
                return 0
            # INCLUDING COMPRESSION: lz4 on raw payloads (migration 0012), not pglz.
            await pg.execute(
                sql.SQL("CREATE TABLE {} (LIKE {} INCLUDING COMPRESSION)").format(part, parent)
            )
            # DDL takes no parameters: the bounds go in as literals.
            bounds = {"lo": sql.Literal(lo), "hi": sql.Literal(hi)}
            await pg.execute(
                sql.SQL(
                    "ALTER TABLE {part} ADD CONSTRAINT {check}"
                    " CHECK (timestamp >= {lo} AND timestamp < {hi})"
                ).format(part=part, check=check, **bounds)
            )
            # No row of the day may reach the catch-all between the move and the
            # attach (ATTACH would then fail): hold its inserts, not its readers.
            await pg.execute(sql.SQL("LOCK TABLE {} IN EXCLUSIVE MODE").format(default))
            cur = await pg.execute(
                sql.SQL(
                    "WITH moved AS (DELETE FROM {default} WHERE timestamp >= %s AND timestamp < %s"
                    " RETURNING *) INSERT INTO {part} SELECT * FROM moved"
                ).format(default=default, part=part),
                (lo, hi),
            )
            moved = cur.rowcount
            await pg.execute(
                sql.SQL(
                    "ALTER TABLE {parent} ATTACH PARTITION {part} FOR VALUES FROM ({lo}) TO ({hi})"
                ).format(parent=parent, part=part, **bounds)
            )
            await pg.execute(sql.SQL("ALTER TABLE {} DROP CONSTRAINT {}").format(part, check))
        return max(moved, 0)

    async def _drop_day(self, pg: psycopg.AsyncConnection[Any], table: str, day: date) -> int:
        part = sql.Identifier(partition_name(table, day))
        # DETACH holds the parent's lock for a catalog change only; the files go
        # with the DROP of the detached table, which locks nothing ingest uses.
        async with pg.transaction():
            attached = await (
                await pg.execute(
                    "SELECT 1 FROM pg_inherits WHERE inhrelid = to_regclass(%s)"
                    " AND inhparent = %s::regclass",
                    (partition_name(table, day), table),
                )
            ).fetchone()
            if attached:
                await pg.execute(
                    sql.SQL("ALTER TABLE {} DETACH PARTITION {}").format(
                        sql.Identifier(table), part
                    )
                )
        await pg.execute(sql.SQL("DROP TABLE IF EXISTS {}").format(part))
        return 0

    async def _delete_expired_defaults(
        self, pg: psycopg.AsyncConnection[Any], table: str, cutoff: datetime
    ) -> int:
        return await self._delete_before(pg, default_name(table), "timestamp", cutoff)

    async def _delete_before(
        self, pg: psycopg.AsyncConnection[Any], table: str, column: str, cutoff: datetime
    ) -> int:
        """Rows of ``table`` stamped before ``cutoff``, deleted a bounded batch
        per statement (each its own transaction: autocommit)."""
        statement = sql.SQL(
            "DELETE FROM {t} WHERE ctid = ANY(ARRAY(SELECT ctid FROM {t} WHERE {c} < %s LIMIT %s))"
        ).format(t=sql.Identifier(table), c=sql.Identifier(column))
        total = 0
        while True:
            cur = await pg.execute(statement, (cutoff, self._delete_batch))
            total += max(cur.rowcount, 0)
            if cur.rowcount < self._delete_batch:
                return total


class SqliteRetention:
    """Retention on SQLite: rows past retention deleted in bounded batches."""

    def __init__(self, engine: AsyncEngine, *, delete_batch: int = DELETE_BATCH) -> None:
        self._engine = engine
        self._delete_batch = delete_batch

    async def enforce(self, policy: RetentionPolicy, now: datetime) -> RetentionReport | None:
        deleted = 0
        kept_by = {name: ("timestamp", kept) for name, kept in TIME_KEPT.items()} | PRUNED
        for name, (column, kept) in kept_by.items():
            cutoff = policy.cutoff(kept, now)
            if cutoff is None:
                continue
            table = metadata.tables[name]
            stamp = table.c[column]
            oldest = select(stamp).where(stamp < cutoff)
            batch = delete(table).where(
                # rowid: every time-kept table has one on SQLite
                stamp < cutoff,
                _rowid(table).in_(
                    select(_rowid(table)).where(stamp < cutoff).limit(self._delete_batch)
                ),
            )
            while True:
                async with self._engine.begin() as conn:
                    if (await conn.execute(oldest.limit(1))).first() is None:
                        break
                    deleted += (await conn.execute(batch)).rowcount
        return RetentionReport(deleted=deleted)


def _rowid(table: Any) -> Any:
    return literal_column(f"{table.name}.rowid")


def _merge(a: RetentionReport, b: RetentionReport) -> RetentionReport:
    return RetentionReport(
        a.prepared + b.prepared, a.dropped + b.dropped, a.moved + b.moved, a.deleted + b.deleted
    )
