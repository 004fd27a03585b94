"""PostgreSQL half of telemetry ingest: binary ``COPY`` through psycopg 3.

Why this shape (measured; see docs/benchmarks.md):

- ``COPY ... (FORMAT BINARY)`` of rows whose ids were taken from the sequence
  up front: no per-row parse of SQL, floats and timestamps sent as-is, and the
  load rows can carry their telemetry row's id without a round trip.
- Duplicates are found before the COPY (an index probe per sample), because a
  single duplicate would abort a COPY. The VENs' rows are locked first, in id
  order, so two workers ingesting the same VEN take turns instead of racing on
  the unique key or deadlocking on the current-state rows.
- Heartbeats and the per-VEN current state are set in one statement, from the
  rows just written, found by their ids. There is deliberately no per-load
  current-state table:
  upserting ten rows per message took 60 ms per 1,000 messages, more than both
  COPYs together; a VEN's latest loads are the load rows of its newest message,
  found through ``ven_latest`` and the samples' primary key.
- Keys go to the server as array literals in one text parameter, not as
  Python lists: psycopg dumps a list element by element in Python (2.6 ms
  for 1,000 VEN ids and timestamps, against 0.7 ms for the literal). VEN ids
  need no escaping (``validate_ven_id``: letters, digits, ``_.:-``).
- Rows are formatted straight into the COPY buffer (``formatter.write_row``),
  not through one ``await write_row`` per row; the buffer is sent in blocks.
- Round trips: a batch is six (seven when it takes a block of ids), ten
  before. The lock and the duplicate check go with the transaction's BEGIN
  in one pipeline; each COPY is two (its start, then its end's answer); the
  current-state statement goes with the COMMIT in another pipeline. The
  connection is kept from one batch to the next and used through psycopg
  directly: the pool's pre-ping (a ``SELECT 1``, one more round trip, which
  also sent the BEGIN alone) and SQLAlchemy's checkout, transaction and greenlet hops cost the
  worker CPU on every batch, and a connection that finished a batch a
  moment ago has nothing to tell a ping. One idle for longer than
  ``_KEEP_SECONDS`` goes back to the pool, which pings it at its next
  checkout; one found closed when used again fails its batch with
  ``StaleConnectionError``, which the store retries on a new connection.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import AsyncIterator, Iterable, Sequence
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from typing import Any, cast

import psycopg
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from adapters.sql.tables import LOAD_FIELDS, PANEL_FIELDS
from adapters.sql.telemetry import (
    Key,
    Prepared,
    StaleConnectionError,
    newest_per_ven,
    received_by,
)

log = logging.getLogger("adapters.sql.telemetry")

_PANEL_TYPES = ["varchar" if f == "event_id" else "float8" for f in PANEL_FIELDS]
_TELEMETRY_COLUMNS = ["id", "ven_id", "timestamp", *PANEL_FIELDS, "raw_payload"]
_TELEMETRY_TYPES = ["int8", "varchar", "timestamptz", *_PANEL_TYPES, "text"]

# telemetry_id, ven_id and timestamp first: they are the message's, the rest
# is the prepared load line as it is.
_LOAD_COLUMNS = ["telemetry_id", "ven_id", "timestamp", "load_id", *LOAD_FIELDS, "current_amps"]
_LOAD_FIELD_TYPES = {
    "name": "varchar",
    "type": "varchar",
    "enabled": "bool",
    "priority": "int4",
    "critical": "bool",
}
_LOAD_TYPES = [
    "int8",
    "varchar",
    "timestamptz",
    "varchar",
    *(_LOAD_FIELD_TYPES.get(f, "float8") for f in LOAD_FIELDS),
    "float8",
]

# Locks the VENs' rows (so concurrent appends for a VEN take turns) and says
# which are registered, in one round trip.
_LOCK = "SELECT id FROM vens WHERE id = ANY(%s::varchar[]) ORDER BY id FOR NO KEY UPDATE"

_REGISTER = """
INSERT INTO vens (id, name, enabled, registered_at)
SELECT u.id, u.id, true, u.ts FROM unnest(%s::varchar[], %s::timestamptz[]) AS u(id, ts)
ORDER BY u.id
ON CONFLICT (id) DO NOTHING
"""

_EXISTING = """
SELECT t.ven_id, t.timestamp
FROM unnest(%(ven_ids)s::varchar[], %(stamps)s::timestamptz[]) AS k(ven_id, ts)
JOIN ven_telemetry t ON t.ven_id = k.ven_id AND t.timestamp = k.ts
WHERE {span}
"""

# The ids as one text value: 1,000 int8 rows cost more to fetch than to split.
# Taken a block at a time (a sequence hands out each id once, committed or not):
# a round trip fewer for most batches, a third of a millisecond of the
# worker's CPU each, which at 20 messages a batch is ~15 us a message.
_ID_BLOCK = 5000
_IDS = """
SELECT string_agg(nextval(pg_get_serial_sequence('ven_telemetry', 'id'))::text, ',')
FROM generate_series(1, %s)
"""

# The batch's rows are looked up by id within the batch's time span: the span
# prunes the day partitions to the batch's day(s) (on a partitioned
# ven_telemetry, ids alone would probe every day's index).
# On an unpartitioned table (before migration 0010) the span only misleads the
# planner (ingest 30 % slower, measured): ``by_span=False`` leaves it out, as the
# statements were then; bench_partitions.py's reference.
_SPAN = "t.timestamp BETWEEN %(first)s::timestamptz AND %(last)s::timestamptz"

# Heartbeat and current state from each VEN's newest row just written (still
# in shared buffers), found by id, rather than sent again as Python values.
# ``received`` (``received_by``; NULL: no bound) keeps the heartbeat from
# passing the receive time, and unpins a current state stamped after it.
#
# Energy, in the same statement (gridcore.energy, written again in SQL here so
# that ingest spends no Python on it; the contract tests hold the two
# together): each VEN's readings of the batch newer than its ven_latest row are
# chained from that row; each closes the segment of the one before it (held
# until it, at most ``hold`` seconds), split at UTC midnights (over the days
# ``day_offsets`` a segment can touch: a fixed list, where generate_series'
# estimate of 1,000 rows a call made the planner JIT-compile every batch,
# 30 ms); the VEN's running day takes them, a day it has left goes to
# ven_energy. CTEs see the tables as they were before the statement: ``before``
# is the row before the batch. The energy changes only when the row does: a
# batch with no reading newer than the stored one closes no segment.
_CURRENT_STATE = """
WITH newest AS (
    SELECT t.ven_id, t.id, LEAST(t.timestamp, %(received)s::timestamptz) AS heard,
           t.timestamp, t.used_power_kw, t.shed_power_kw, t.requested_reduction_kw, t.event_id
    FROM ven_telemetry t WHERE t.id = ANY(%(ids)s::int8[]) AND {span}
), intervals AS (
    -- gridcore.intervals.roll_up in SQL: the batch's samples added to their
    -- VENs' 5-minute intervals, wherever in time they fall (late ones too).
    -- LEAST/GREATEST skip NULLs, as the domain's min and max do.
    INSERT INTO ven_intervals AS i
    SELECT t.ven_id, to_timestamp(floor(extract(epoch FROM t.timestamp) / 300) * 300),
           count(*), coalesce(sum(t.used_power_kw), 0), count(t.used_power_kw),
           min(t.used_power_kw), max(t.used_power_kw),
           coalesce(sum(t.shed_power_kw), 0), count(t.shed_power_kw),
           min(t.shed_power_kw), max(t.shed_power_kw),
           coalesce(sum(t.baseline_power_kw), 0), count(t.baseline_power_kw)
    FROM ven_telemetry t WHERE t.id = ANY(%(all_ids)s::int8[]) AND {span}
    GROUP BY 1, 2 ORDER BY 1, 2
    ON CONFLICT (ven_id, start) DO UPDATE SET
        samples = i.samples + excluded.samples,
        used_sum = i.used_sum + excluded.used_sum,
        used_count = i.used_count + excluded.used_count,
        used_min = LEAST(i.used_min, excluded.used_min),
        used_max = GREATEST(i.used_max, excluded.used_max),
        shed_sum = i.shed_sum + excluded.shed_sum,
        shed_count = i.shed_count + excluded.shed_count,
        shed_min = LEAST(i.shed_min, excluded.shed_min),
        shed_max = GREATEST(i.shed_max, excluded.shed_max),
        baseline_sum = i.baseline_sum + excluded.baseline_sum,
        baseline_count = i.baseline_count + excluded.baseline_count
    RETURNING i.start
), interval_events AS (
    -- gridcore.history.IntervalEvents: the event marks of those intervals, for
    -- history read from them past raw retention; rows only during events.
    INSERT INTO ven_interval_events AS ie
    SELECT t.ven_id, to_timestamp(floor(extract(epoch FROM t.timestamp) / 300) * 300),
           max(t.event_id), coalesce(sum(t.requested_reduction_kw), 0)
    FROM ven_telemetry t
    WHERE t.id = ANY(%(all_ids)s::int8[]) AND {span}
      AND (t.event_id IS NOT NULL OR t.requested_reduction_kw IS NOT NULL)
    GROUP BY 1, 2 ORDER BY 1, 2
    ON CONFLICT (ven_id, start) DO UPDATE SET
        event_id = GREATEST(ie.event_id, excluded.event_id),
        requested_sum = ie.requested_sum + excluded.requested_sum
), days AS (
    -- gridcore.history.DayTotals: the same samples added to their VENs' UTC days.
    INSERT INTO ven_days AS d
    SELECT t.ven_id, date_trunc('day', t.timestamp, 'UTC'), count(*),
           coalesce(sum(t.used_power_kw), 0), coalesce(sum(t.shed_power_kw), 0),
           coalesce(sum(t.requested_reduction_kw), 0), max(t.event_id)
    FROM ven_telemetry t WHERE t.id = ANY(%(all_ids)s::int8[]) AND {span}
    GROUP BY 1, 2 ORDER BY 1, 2
    ON CONFLICT (ven_id, day) DO UPDATE SET
        samples = d.samples + excluded.samples,
        used_sum = d.used_sum + excluded.used_sum,
        shed_sum = d.shed_sum + excluded.shed_sum,
        requested_sum = d.requested_sum + excluded.requested_sum,
        event_id = GREATEST(d.event_id, excluded.event_id)
), late AS (
    -- gridcore.history.late_intervals: telemetry added to an interval whose fleet
    -- roll-up may be made already marks it (rows only then: a VEN's replayed
    -- buffer, never the live stream). Appended, so no two writers wait on a row.
    INSERT INTO fleet_late (start)
    SELECT DISTINCT start FROM intervals
    WHERE start < (SELECT marked_through FROM fleet_rollup WHERE id = 1)
), heartbeat AS (
    UPDATE vens SET last_seen_at = n.heard
    FROM newest n
    WHERE vens.id = n.ven_id AND (vens.last_seen_at IS NULL OR vens.last_seen_at < n.heard)
), before AS (
    SELECT l.ven_id, l.timestamp, l.used_power_kw, l.energy_day, l.energy_kwh
    FROM ven_latest l WHERE l.ven_id IN (SELECT ven_id FROM newest)
), chain AS (
    SELECT ven_id, timestamp, used_power_kw FROM before
    UNION ALL
    -- ven_latest itself, not ``before`` (the same rows: every CTE sees the
    -- table as it was before the statement), so that the join is an index
    -- probe per row: joined to the CTE it was a nested loop over it for each
    -- row (the planner guesses a handful of ids), 7.6 s a batch of 5,000.
    SELECT t.ven_id, t.timestamp, t.used_power_kw
    FROM ven_telemetry t LEFT JOIN ven_latest b ON b.ven_id = t.ven_id
    WHERE t.id = ANY(%(all_ids)s::int8[]) AND {span}
      AND (b.timestamp IS NULL OR t.timestamp > b.timestamp)
), segment AS (
    SELECT ven_id, used_power_kw AS kw, timestamp AS s,
           LEAST(nxt, timestamp + %(hold)s * interval '1 second') AS e
    FROM (SELECT *, lead(timestamp) OVER (PARTITION BY ven_id ORDER BY timestamp) AS nxt
          FROM chain) c
    WHERE nxt IS NOT NULL AND used_power_kw IS NOT NULL
), part AS (
    SELECT ven_id, day,
           kw * extract(epoch FROM LEAST(e, day + interval '24 hours') - GREATEST(s, day))::float8
           / 3600.0 AS kwh
    FROM (SELECT segment.*, date_trunc('day', s, 'UTC') + k.n * interval '24 hours' AS day
          FROM segment CROSS JOIN (VALUES {day_offsets}) AS k(n)) d
    WHERE day < e
), day_total AS (
    SELECT ven_id, day, sum(kwh) AS kwh
    FROM (SELECT ven_id, day, kwh FROM part
          UNION ALL
          SELECT ven_id, energy_day, energy_kwh FROM before WHERE energy_day IS NOT NULL) d
    GROUP BY ven_id, day
), running AS (
    SELECT DISTINCT ON (ven_id) ven_id, day, kwh FROM day_total ORDER BY ven_id, day DESC
), completed AS (
    -- plain inserts in practice (a day is completed once); adding keeps it right for a
    -- day completed again after a VEN's future-stamped reading was replaced
    INSERT INTO ven_energy AS e (day, ven_id, used_kwh)
    SELECT d.day, d.ven_id, d.kwh FROM day_total d JOIN running r ON r.ven_id = d.ven_id
    WHERE d.day < r.day AND d.kwh <> 0
    ORDER BY d.day, d.ven_id
    ON CONFLICT (day, ven_id) DO UPDATE SET used_kwh = e.used_kwh + excluded.used_kwh
)
INSERT INTO ven_latest AS cur
    (ven_id, telemetry_id, timestamp, used_power_kw, shed_power_kw,
     requested_reduction_kw, event_id, energy_day, energy_kwh)
SELECT n.ven_id, n.id, n.timestamp, n.used_power_kw, n.shed_power_kw,
       n.requested_reduction_kw, n.event_id, r.day, r.kwh
FROM newest n LEFT JOIN running r ON r.ven_id = n.ven_id
ORDER BY n.ven_id
ON CONFLICT (ven_id) DO UPDATE SET
    telemetry_id = excluded.telemetry_id, timestamp = excluded.timestamp,
    used_power_kw = excluded.used_power_kw, shed_power_kw = excluded.shed_power_kw,
    requested_reduction_kw = excluded.requested_reduction_kw, event_id = excluded.event_id,
    energy_day = excluded.energy_day, energy_kwh = excluded.energy_kwh
WHERE cur.timestamp < excluded.timestamp OR cur.timestamp > %(received)s::timestamptz
"""


# A connection that finished a batch this recently is used again without a ping.
_KEEP_SECONDS = 2.0


async def _driver(conn: AsyncConnection) -> psycopg.AsyncConnection[Any]:
    """The psycopg connection under SQLAlchemy's."""
    raw = await conn.get_raw_connection()
    return cast(psycopg.AsyncConnection[Any], raw.driver_connection)


def _ven_ids(ven_ids: Iterable[str]) -> str:
    """A ``varchar[]`` literal; every element quoted (a VEN may be called NULL)."""
    text = '","'.join(ven_ids)
    return f'{{"{text}"}}' if text else "{}"


def _key_params(keys: Sequence[Key]) -> dict[str, Any]:
    """``_EXISTING``'s parameters: the keys, and their span (partition pruning)."""
    stamps = [k[1] for k in keys]
    return {
        "ven_ids": _ven_ids([k[0] for k in keys]),
        "stamps": _stamps(stamps),
        "first": min(stamps),
        "last": max(stamps),
    }


def _stamps(stamps: Iterable[datetime]) -> str:
    text = '","'.join([ts.isoformat() for ts in stamps])
    return f'{{"{text}"}}' if text else "{}"


class PostgresBatchWriter:
    """The methods take the psycopg connection ``transaction`` yields."""

    def __init__(self, engine: AsyncEngine, max_hold: timedelta, *, by_span: bool = True) -> None:
        self._engine = engine
        # The connection of the last batch (SQLAlchemy's, checked out) and its psycopg one.
        self._kept: tuple[AsyncConnection, psycopg.AsyncConnection[Any]] | None = None
        self._kept_since = 0.0
        self._hold_seconds = max_hold.total_seconds()  # gridcore.energy's max_hold
        # A segment of at most max_hold touches at most this many UTC days.
        days = int(max_hold // timedelta(days=1)) + 2
        self._current_state = _CURRENT_STATE.replace(
            "{day_offsets}", ", ".join(f"({n})" for n in range(days))
        ).replace("{span}", _SPAN if by_span else "true")
        self._existing = _EXISTING.replace("{span}", _SPAN if by_span else "true")
        self._ids: list[int] = []  # taken from the sequence, not used yet

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[psycopg.AsyncConnection[Any]]:
        kept = self._kept is not None
        conn, pg = await self._connection()
        try:
            yield pg
            await pg.commit()  # nothing left to do when ``write`` committed
        except BaseException as exc:
            await self._discard(conn, pg, exc)
            if isinstance(exc, psycopg.IntegrityError):
                # What the store retries (a concurrent writer stored the same row).
                raise IntegrityError(None, None, exc) from exc
            if kept and isinstance(exc, psycopg.OperationalError) and pg.closed:
                # Retried on a new connection (pinged by the pool). Had the
                # COMMIT gone through, the retry finds the rows and skips them.
                raise StaleConnectionError(str(exc)) from exc
            raise
        if self._kept is None:
            self._kept, self._kept_since = (conn, pg), time.monotonic()
        else:  # a concurrent append's: one kept is enough
            await conn.close()

    async def _connection(self) -> tuple[AsyncConnection, psycopg.AsyncConnection[Any]]:
        kept, self._kept = self._kept, None  # concurrent appends get connections of their own
        if kept is not None:
            if time.monotonic() - self._kept_since < _KEEP_SECONDS and not kept[1].closed:
                return kept
            await kept[0].close()  # back to the pool, which pings it at its next checkout
        conn = await self._engine.connect()
        try:
            return conn, await _driver(conn)
        except BaseException:
            await conn.close()
            raise

    async def _discard(
        self, conn: AsyncConnection, pg: psycopg.AsyncConnection[Any], exc: BaseException
    ) -> None:
        """After a failed batch: roll back and give the connection back to the
        pool, or drop it if it broke (or a cancellation left it mid-statement)."""
        try:
            if isinstance(exc, Exception) and not pg.broken and not pg.closed:
                await pg.rollback()
            else:
                await conn.invalidate()
        except Exception:
            log.warning("dropping the ingest connection after a failed rollback", exc_info=True)
            with contextlib.suppress(Exception):
                await conn.invalidate()
        finally:
            with contextlib.suppress(Exception):
                await conn.close()

    async def close(self) -> None:
        kept, self._kept = self._kept, None
        if kept is not None:
            await kept[0].close()

    async def _take_ids(self, cur: psycopg.AsyncCursor[Any], count: int) -> list[int]:
        if len(self._ids) < count:
            want = max(count - len(self._ids), _ID_BLOCK)
            await cur.execute(_IDS, (want,))
            row = await cur.fetchone()
            fresh = [int(i) for i in row[0].split(",")] if row and row[0] else []
            if len(fresh) != want:
                raise RuntimeError(f"asked for {want} ids, got {len(fresh)}")
            self._ids += fresh
        # No await from here on: concurrent appends each take ids of their own.
        ids, self._ids = self._ids[:count], self._ids[count:]
        return ids

    async def known_vens(
        self, pg: psycopg.AsyncConnection[Any], ven_ids: Sequence[str]
    ) -> set[str]:
        if not ven_ids:
            return set()
        async with pg.cursor() as cur:
            await cur.execute(_LOCK, (_ven_ids(ven_ids),))
            return {row[0] for row in await cur.fetchall()}

    async def register(self, pg: psycopg.AsyncConnection[Any], first_seen: Sequence[Key]) -> None:
        if not first_seen:
            return
        async with pg.cursor() as cur:
            ven_ids = _ven_ids([ven_id for ven_id, _ in first_seen])
            await cur.execute(_REGISTER, (ven_ids, _stamps([at for _, at in first_seen])))

    async def existing(self, pg: psycopg.AsyncConnection[Any], keys: Sequence[Key]) -> set[Key]:
        if not keys:
            return set()
        async with pg.cursor() as cur:
            await cur.execute(self._existing, _key_params(keys))
            return {(ven_id, ts.astimezone(UTC)) for ven_id, ts in await cur.fetchall()}

    async def lookup(
        self, pg: psycopg.AsyncConnection[Any], ven_ids: Sequence[str], keys: Sequence[Key]
    ) -> tuple[set[str], set[Key]]:
        """The lock and the duplicate check sent together, with the
        transaction's BEGIN: one round trip. The server runs them in order, so
        the check sees what a writer holding the lock before us committed."""
        if not ven_ids or not keys:
            return await self.known_vens(pg, ven_ids), await self.existing(pg, keys)
        async with pg.pipeline(), pg.cursor() as lock, pg.cursor() as check:
            await lock.execute(_LOCK, (_ven_ids(ven_ids),))
            await check.execute(self._existing, _key_params(keys))
            known = {row[0] for row in await lock.fetchall()}
            rows = await check.fetchall()
        return known, {(ven_id, ts.astimezone(UTC)) for ven_id, ts in rows}

    async def write(self, pg: psycopg.AsyncConnection[Any], batch: Sequence[Prepared]) -> None:
        async with pg.cursor() as cur:
            ids = await self._take_ids(cur, len(batch))
            await _copy_telemetry(cur, batch, ids)
            await _copy_loads(cur, batch, ids)
            newest = {item.key[0]: tid for item, tid in zip(batch, ids, strict=True)}
            if len(newest) < len(batch):  # a VEN twice in the batch: its newest sample
                newest = {item.key[0]: tid for item, tid in _newest_ids(batch, ids)}
            newest_ids = "{" + ",".join(map(str, newest.values())) + "}"
            params = {
                "ids": newest_ids,
                "all_ids": "{" + ",".join(map(str, ids)) + "}",
                "received": received_by(batch),
                "first": min(item.key[1] for item in batch),
                "last": max(item.key[1] for item in batch),
                "hold": self._hold_seconds,
            }
            async with pg.pipeline():  # the statement and the COMMIT: one round trip
                await cur.execute(self._current_state, params)
                await pg.commit()


def _newest_ids(batch: Sequence[Prepared], ids: Sequence[int]) -> list[tuple[Prepared, int]]:
    by_key = {item.key: tid for item, tid in zip(batch, ids, strict=True)}
    return [(item, by_key[item.key]) for item in newest_per_ven(batch)]


async def _copy_rows(
    cur: psycopg.AsyncCursor[Any], statement: str, types: list[str], rows: Iterable[Any]
) -> None:
    async with cur.copy(statement) as copy:
        copy.set_types(types)
        # ``copy.write_row`` is a coroutine call per row; the formatter it uses
        # fills a buffer and hands it back once it is worth sending.
        format_row = copy.formatter.write_row
        for row in rows:
            if data := format_row(row):
                await copy.write(data)


async def _copy_telemetry(
    cur: psycopg.AsyncCursor[Any], batch: Sequence[Prepared], ids: Sequence[int]
) -> None:
    columns = ", ".join(f'"{c}"' for c in _TELEMETRY_COLUMNS)
    await _copy_rows(
        cur,
        f"COPY ven_telemetry ({columns}) FROM STDIN (FORMAT BINARY)",
        _TELEMETRY_TYPES,
        (
            (tid, *item.key, *item.panel, item.raw_payload)
            for item, tid in zip(batch, ids, strict=True)
        ),
    )


async def _copy_loads(
    cur: psycopg.AsyncCursor[Any], batch: Sequence[Prepared], ids: Sequence[int]
) -> None:
    if not any(item.loads for item in batch):
        return
    columns = ", ".join(f'"{c}"' for c in _LOAD_COLUMNS)
    await _copy_rows(
        cur,
        f"COPY ven_load_samples ({columns}) FROM STDIN (FORMAT BINARY)",
        _LOAD_TYPES,
        (
            head + line
            for item, tid in zip(batch, ids, strict=True)
            for head in ((tid, *item.key),)
            for line in item.loads
        ),
    )
