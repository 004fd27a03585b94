"""Status messages (``ven_statuses``) and load snapshots (``load_snapshots``) on
SQL: :class:`gridcore.ports.VenStatusStore` and
:class:`gridcore.ports.LoadSnapshotStore`.

Each batch is one transaction: rows in one executemany, then the heartbeats of
the registered VENs among them in one executemany. On PostgreSQL the VENs'
rows are locked first in id order, as telemetry ingest does, so the two never
deadlock on ``vens``.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import bindparam, func, or_, select, tuple_, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine
from sqlalchemy.sql.elements import BindParameter

from adapters.sql.engine import SQLITE_BEGIN
from adapters.sql.tables import load_snapshots, ven_statuses, vens
from adapters.sql.types import UtcDateTime
from gridcore.limits import INT32_MAX, INT32_MIN, LOAD_TYPE_LENGTH, NAME_LENGTH
from gridcore.reports import LoadSnapshot, VenStatusReport
from gridcore.telemetry import LoadSample, page_bounds

_CHUNK = 500  # keys per IN list: under SQLite's bound-variable limit
_V_ID: BindParameter[str] = bindparam("v_id")
_V_TS: BindParameter[datetime] = bindparam("v_ts", type_=UtcDateTime())


async def advance_heartbeats(conn: AsyncConnection, newest: Mapping[str, datetime]) -> None:
    """Move each registered VEN's last_seen to ``newest[ven_id]``, never back."""
    if not newest:
        return
    ven_ids = sorted(newest)
    if conn.dialect.name == "postgresql":
        for start in range(0, len(ven_ids), _CHUNK):
            lock = (
                select(vens.c.id)
                .where(vens.c.id.in_(ven_ids[start : start + _CHUNK]))
                .order_by(vens.c.id)
                .with_for_update(key_share=True)  # FOR NO KEY UPDATE, as ingest takes it
            )
            await conn.execute(lock)
    await conn.execute(
        update(vens)
        .where(vens.c.id == _V_ID)
        .where(or_(vens.c.last_seen_at.is_(None), vens.c.last_seen_at < _V_TS))
        .values(last_seen_at=_V_TS),
        [{"v_id": ven_id, "v_ts": newest[ven_id]} for ven_id in ven_ids],
    )


def _newest(items: Iterable[tuple[str, datetime]]) -> dict[str, datetime]:
    newest: dict[str, datetime] = {}
    for ven_id, at in items:
        if ven_id not in newest or newest[ven_id] < at:
            newest[ven_id] = at
    return newest


class SqlVenStatusStore:
    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine

    async def record_statuses(self, reports: Sequence[VenStatusReport]) -> int:
        unique: dict[tuple[str, datetime, str], VenStatusReport] = {}
        for report in reports:
            unique.setdefault((report.ven_id, report.timestamp, report.status), report)
        if not unique:
            return 0
        async with self._engine.connect() as conn:
            await conn.execution_options(**{SQLITE_BEGIN: "IMMEDIATE"})
            async with conn.begin():
                known = await self._existing(conn, list(unique))
                fresh = [r for key, r in unique.items() if key not in known]
                if fresh:
                    await conn.execute(
                        ven_statuses.insert(),
                        [
                            {
                                "ven_id": r.ven_id,
                                "status": r.status,
                                "details": dict(r.details) if r.details is not None else None,
                                "timestamp": r.timestamp,
                            }
                            for r in fresh
                        ],
                    )
                await advance_heartbeats(
                    conn, _newest((r.ven_id, r.heard_at) for r in fresh if r.is_heartbeat)
                )
        return len(fresh)

    @staticmethod
    async def _existing(
        conn: AsyncConnection, keys: Sequence[tuple[str, datetime, str]]
    ) -> set[tuple[str, datetime, str]]:
        found: set[tuple[str, datetime, str]] = set()
        pair = tuple_(ven_statuses.c.ven_id, ven_statuses.c.timestamp)
        for start in range(0, len(keys), _CHUNK):
            chunk = keys[start : start + _CHUNK]
            rows = await conn.execute(
                select(ven_statuses.c.ven_id, ven_statuses.c.timestamp, ven_statuses.c.status)
                .where(pair.in_([(k[0], k[1]) for k in chunk]))
            )  # fmt: skip
            found.update((v, t, s) for v, t, s in rows)
        return found

    async def latest_statuses(self, ven_ids: Sequence[str]) -> dict[str, VenStatusReport]:
        ids = sorted(set(ven_ids))
        result: dict[str, VenStatusReport] = {}
        if not ids:
            return result
        t = ven_statuses.c
        rank = func.row_number().over(
            partition_by=t.ven_id, order_by=(t.timestamp.desc(), t.id.desc())
        )
        async with self._engine.connect() as conn:
            for start in range(0, len(ids), _CHUNK):
                ranked = (
                    select(t.ven_id, t.status, t.timestamp, t.details, rank.label("rank"))
                    .where(t.ven_id.in_(ids[start : start + _CHUNK]))
                    .subquery()
                )
                rows = await conn.execute(
                    select(ranked.c.ven_id, ranked.c.status, ranked.c.timestamp, ranked.c.details)
                    .where(ranked.c.rank == 1)
                )  # fmt: skip
                for row in rows:
                    result[row.ven_id] = _status(row)
        return result

    async def statuses(self, ven_id: str, *, limit: int = 100) -> list[VenStatusReport]:
        t = ven_statuses.c
        query = (
            select(t.ven_id, t.status, t.timestamp, t.details)
            .where(t.ven_id == ven_id)
            .order_by(t.timestamp.desc(), t.id.desc())
            .limit(page_bounds(0, limit)[1])
        )
        async with self._engine.connect() as conn:
            return [_status(row) for row in await conn.execute(query)]


def _status(row: Any) -> VenStatusReport:
    details = row.details if isinstance(row.details, dict) else None
    return VenStatusReport(row.ven_id, row.status, row.timestamp, details)


def _number(value: object) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    number = float(value)
    return number if math.isfinite(number) else None


def _text(value: object, length: int) -> str | None:
    # PostgreSQL text cannot hold NUL; the raw payload keeps the value whole.
    return value.replace("\x00", "")[:length] if isinstance(value, str) else None


def _snapshot_rows(snap: LoadSnapshot) -> list[dict[str, Any]]:
    rows = []
    for load in snap.loads:
        raw = snap.raw_loads.get(load.load_id)
        priority = load.priority
        rows.append(
            {
                "ven_id": snap.ven_id,
                "load_id": load.load_id,
                "timestamp": snap.timestamp,
                "name": _text(load.name, NAME_LENGTH),
                "type": _text(load.type, LOAD_TYPE_LENGTH),
                "capacity_kw": _number(load.capacity_kw),
                "current_power_kw": _number(load.current_power_kw),
                "shed_capability_kw": _number(load.shed_capability_kw),
                "enabled": load.enabled if isinstance(load.enabled, bool) else None,
                "priority": priority
                if type(priority) is int and INT32_MIN <= priority <= INT32_MAX
                else None,
                "critical": load.critical if isinstance(load.critical, bool) else None,
                "raw_payload": dict(raw) if raw is not None else None,
            }
        )
    return rows


class SqlLoadSnapshotStore:
    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine

    async def record_snapshots(self, snapshots: Sequence[LoadSnapshot]) -> int:
        rows = [row for snap in snapshots for row in _snapshot_rows(snap)]
        newest = _newest((snap.ven_id, snap.heard_at) for snap in snapshots)
        if not newest:
            return 0
        stored = 0
        async with self._engine.connect() as conn:
            await conn.execution_options(**{SQLITE_BEGIN: "IMMEDIATE"})
            async with conn.begin():
                if rows:
                    insert = pg_insert if conn.dialect.name == "postgresql" else sqlite_insert
                    # A re-delivered snapshot (or a repeat within the batch) is skipped.
                    statement = (
                        insert(load_snapshots)
                        .on_conflict_do_nothing()
                        .returning(load_snapshots.c.id)
                    )
                    stored = len((await conn.execute(statement, rows)).all())
                await advance_heartbeats(conn, newest)
        return stored

    async def latest_snapshots(self, ven_ids: Sequence[str]) -> dict[str, LoadSnapshot]:
        ids = sorted(set(ven_ids))
        t = load_snapshots.c
        found: dict[str, tuple[datetime, list[LoadSample], dict[str, Any]]] = {}
        async with self._engine.connect() as conn:
            for start in range(0, len(ids), _CHUNK):
                newest = (
                    select(t.ven_id, func.max(t.timestamp).label("timestamp"))
                    .where(t.ven_id.in_(ids[start : start + _CHUNK]))
                    .group_by(t.ven_id)
                    .subquery()
                )
                rows = await conn.execute(
                    select(load_snapshots)
                    .join(
                        newest,
                        (t.ven_id == newest.c.ven_id) & (t.timestamp == newest.c.timestamp),
                    )
                    .order_by(t.ven_id, t.load_id)
                )
                for row in rows:
                    _, loads, raw = found.setdefault(row.ven_id, (row.timestamp, [], {}))
                    loads.append(
                        LoadSample(
                            load_id=row.load_id,
                            name=row.name,
                            type=row.type,
                            capacity_kw=row.capacity_kw,
                            current_power_kw=row.current_power_kw,
                            shed_capability_kw=row.shed_capability_kw,
                            enabled=row.enabled,
                            priority=row.priority,
                            critical=row.critical,
                        )
                    )
                    if isinstance(row.raw_payload, dict):
                        raw[row.load_id] = row.raw_payload
        return {
            ven_id: LoadSnapshot(ven_id, at, tuple(loads), raw)
            for ven_id, (at, loads, raw) in found.items()
        }
