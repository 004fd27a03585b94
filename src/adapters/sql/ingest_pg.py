"""PostgreSQL half of telemetry ingest: binary ``COPY`` through psycopg 3.

Why this shape (measured; see docs/benchmarks.md):

- ``COPY ... (FORMAT BINARY)`` of rows whose ids were taken from the sequence
  up front: no per-row parse of SQL, floats and timestamps sent as-is, and the
  load rows can carry their telemetry row's id without a round trip.
- Duplicates are found before the COPY (an index probe per sample), because a
  single duplicate would abort a COPY. The VENs' rows are locked first, in id
  order, so two workers ingesting the same VEN take turns instead of racing on
  the unique key or deadlocking on the current-state rows.
- Heartbeats and the per-VEN current state are set with one ``unnest``
  statement each. There is deliberately no per-load current-state table:
  upserting ten rows per message took 60 ms per 1,000 messages, more than both
  COPYs together; a VEN's latest loads are the load rows of its newest message,
  found through ``ven_latest`` and the samples' primary key.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any, cast

import psycopg
from sqlalchemy.ext.asyncio import AsyncConnection

from adapters.sql.tables import LOAD_FIELDS, PANEL_FIELDS
from adapters.sql.telemetry import Key, Prepared, newest_per_ven

_PANEL_TYPES = ["varchar" if f == "event_id" else "float8" for f in PANEL_FIELDS]
_TELEMETRY_COLUMNS = ["id", "ven_id", "timestamp", *PANEL_FIELDS, "raw_payload"]
_TELEMETRY_TYPES = ["int8", "varchar", "timestamptz", *_PANEL_TYPES, "text"]

_LOAD_COLUMNS = ["ven_id", "timestamp", "load_id", "telemetry_id", *LOAD_FIELDS, "current_amps"]
_LOAD_FIELD_TYPES = {
    "name": "varchar",
    "type": "varchar",
    "enabled": "bool",
    "priority": "int4",
    "critical": "bool",
}
_LOAD_TYPES = [
    "varchar",
    "timestamptz",
    "varchar",
    "int8",
    *(_LOAD_FIELD_TYPES.get(f, "float8") for f in LOAD_FIELDS),
    "float8",
]

_LOCK = "SELECT id FROM vens WHERE id = ANY(%s) ORDER BY id FOR NO KEY UPDATE"

_EXISTING = """
SELECT t.ven_id, t.timestamp
FROM unnest(%s::varchar[], %s::timestamptz[]) AS k(ven_id, ts)
JOIN ven_telemetry t ON t.ven_id = k.ven_id AND t.timestamp = k.ts
"""

_IDS = "SELECT nextval(pg_get_serial_sequence('ven_telemetry', 'id')) FROM generate_series(1, %s)"

_HEARTBEAT = """
UPDATE vens SET last_seen_at = u.ts
FROM unnest(%s::varchar[], %s::timestamptz[]) AS u(id, ts)
WHERE vens.id = u.id AND (vens.last_seen_at IS NULL OR vens.last_seen_at < u.ts)
"""

# Current state is read back from the rows just written (still in shared
# buffers) rather than sent again as arrays of Python values.
_VEN_LATEST = """
INSERT INTO ven_latest AS cur
    (ven_id, telemetry_id, timestamp, used_power_kw, shed_power_kw,
     requested_reduction_kw, event_id)
SELECT t.ven_id, t.id, t.timestamp, t.used_power_kw, t.shed_power_kw,
       t.requested_reduction_kw, t.event_id
FROM unnest(%s::varchar[], %s::timestamptz[]) AS k(ven_id, ts)
JOIN ven_telemetry t ON t.ven_id = k.ven_id AND t.timestamp = k.ts
ORDER BY t.ven_id
ON CONFLICT (ven_id) DO UPDATE SET
    telemetry_id = excluded.telemetry_id, timestamp = excluded.timestamp,
    used_power_kw = excluded.used_power_kw, shed_power_kw = excluded.shed_power_kw,
    requested_reduction_kw = excluded.requested_reduction_kw, event_id = excluded.event_id
WHERE cur.timestamp < excluded.timestamp
"""


async def _driver(conn: AsyncConnection) -> psycopg.AsyncConnection[Any]:
    """The psycopg connection under SQLAlchemy's, inside the same transaction."""
    raw = await conn.get_raw_connection()
    return cast(psycopg.AsyncConnection[Any], raw.driver_connection)


class PostgresBatchWriter:
    async def existing(self, conn: AsyncConnection, keys: Sequence[Key]) -> set[Key]:
        if not keys:
            return set()
        pg = await _driver(conn)
        async with pg.cursor() as cur:
            await cur.execute(_LOCK, (sorted({ven_id for ven_id, _ in keys}),), binary=True)
            await cur.execute(_EXISTING, ([k[0] for k in keys], [k[1] for k in keys]), binary=True)
            return {(ven_id, ts.astimezone(UTC)) for ven_id, ts in await cur.fetchall()}

    async def write(self, conn: AsyncConnection, batch: Sequence[Prepared]) -> None:
        pg = await _driver(conn)
        async with pg.cursor() as cur:
            await cur.execute(_IDS, (len(batch),))
            ids = [row[0] for row in await cur.fetchall()]
            await _copy_telemetry(cur, batch, ids)
            await _copy_loads(cur, batch, ids)
            await _current_state(cur, batch)


async def _copy_telemetry(
    cur: psycopg.AsyncCursor[Any], batch: Sequence[Prepared], ids: Sequence[int]
) -> None:
    columns = ", ".join(f'"{c}"' for c in _TELEMETRY_COLUMNS)
    async with cur.copy(f"COPY ven_telemetry ({columns}) FROM STDIN (FORMAT BINARY)") as copy:
        copy.set_types(_TELEMETRY_TYPES)
        for item, tid in zip(batch, ids, strict=True):
            await copy.write_row((tid, *item.key, *item.panel, item.raw_payload))


async def _copy_loads(
    cur: psycopg.AsyncCursor[Any], batch: Sequence[Prepared], ids: Sequence[int]
) -> None:
    if not any(item.loads for item in batch):
        return
    columns = ", ".join(f'"{c}"' for c in _LOAD_COLUMNS)
    async with cur.copy(f"COPY ven_load_samples ({columns}) FROM STDIN (FORMAT BINARY)") as copy:
        copy.set_types(_LOAD_TYPES)
        for item, tid in zip(batch, ids, strict=True):
            ven_id, ts = item.key
            for load_id, *fields in item.loads:
                await copy.write_row((ven_id, ts, load_id, tid, *fields))


async def _current_state(cur: psycopg.AsyncCursor[Any], batch: Sequence[Prepared]) -> None:
    newest = newest_per_ven(batch)
    ven_ids = [item.key[0] for item in newest]
    stamps: list[datetime] = [item.key[1] for item in newest]
    await cur.execute(_HEARTBEAT, (ven_ids, stamps), binary=True)
    await cur.execute(_VEN_LATEST, (ven_ids, stamps), binary=True)
