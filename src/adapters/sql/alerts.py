"""VEN alerts on SQL (``ven_alerts``): :class:`gridcore.ports.VenAlertStore`.

A batch is one INSERT ... ON CONFLICT DO NOTHING (the unique key is the
alert's identity, :attr:`gridcore.alerts.VenAlert.key`): a re-delivered
alert, or a repeat within the batch, is skipped by the database itself."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import ColumnElement, func, select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncEngine

from adapters.sql.engine import SQLITE_BEGIN
from adapters.sql.tables import ven_alerts
from gridcore.alerts import AlertFilter, Severity, VenAlert
from gridcore.telemetry import Page, page_bounds


def _row(alert: VenAlert) -> dict[str, Any]:
    return {
        "ven_id": alert.ven_id,
        "timestamp": alert.timestamp,
        "severity": alert.severity.value,
        "code": alert.code,
        "load_id": alert.load_id or "",
        "message": alert.message,
        "details": dict(alert.details) if alert.details is not None else None,
        "received_at": alert.received_at,
    }


def _alert(row: Any) -> VenAlert:
    return VenAlert(
        ven_id=row.ven_id,
        timestamp=row.timestamp,
        severity=Severity(row.severity),
        code=row.code,
        message=row.message,
        load_id=row.load_id or None,
        details=row.details if isinstance(row.details, dict) else None,
        received_at=row.received_at,
    )


def _where(where: AlertFilter) -> list[ColumnElement[bool]]:
    t = ven_alerts.c
    conditions: list[ColumnElement[bool]] = []
    if where.ven_id is not None:
        conditions.append(t.ven_id == where.ven_id)
    if where.severity is not None:
        conditions.append(t.severity == where.severity.value)
    if where.since is not None:
        conditions.append(t.timestamp >= where.since)
    return conditions


class SqlVenAlertStore:
    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine

    async def record_alerts(self, alerts: Sequence[VenAlert]) -> int:
        if not alerts:
            return 0
        async with self._engine.connect() as conn:
            await conn.execution_options(**{SQLITE_BEGIN: "IMMEDIATE"})
            async with conn.begin():
                insert = pg_insert if conn.dialect.name == "postgresql" else sqlite_insert
                statement = insert(ven_alerts).on_conflict_do_nothing().returning(ven_alerts.c.id)
                result = await conn.execute(statement, [_row(a) for a in alerts])
                return len(result.all())

    async def alerts(
        self, where: AlertFilter, *, offset: int = 0, limit: int = 100
    ) -> Page[VenAlert]:
        offset, limit = page_bounds(offset, limit)
        t = ven_alerts.c
        conditions = _where(where)
        async with self._engine.connect() as conn:
            total = (
                await conn.execute(select(func.count()).select_from(ven_alerts).where(*conditions))
            ).scalar_one()
            rows = await conn.execute(
                select(ven_alerts)
                .where(*conditions)
                .order_by(t.timestamp.desc(), t.id.desc())
                .offset(offset)
                .limit(limit)
            )
            return Page(int(total), tuple(_alert(row) for row in rows))
