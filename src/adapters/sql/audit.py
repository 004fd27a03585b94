"""``SqlAuditLog``: the audit trail (gridcore.audit) in ``audit_log``, on the
unit of work's connection (never committing: the entry is kept with the
change it records)."""

from __future__ import annotations

from typing import Any

from sqlalchemy import ColumnElement, select
from sqlalchemy.engine import RowMapping
from sqlalchemy.ext.asyncio import AsyncConnection

from adapters.sql.repositories import page_of
from adapters.sql.tables import audit_log
from gridcore.audit import EVERY_ENTRY, AuditAction, AuditEntry, AuditQuery
from gridcore.telemetry import Page


def _where(query: AuditQuery) -> list[ColumnElement[bool]]:
    c = audit_log.c
    checks = [
        (query.actor, c.actor),
        (query.action, c.action),
        (query.ven_id, c.ven_id),
        (query.event_id, c.event_id),
    ]
    where = [column == value for value, column in checks if value is not None]
    if query.since is not None:
        where.append(c.at >= query.since)
    if query.until is not None:
        where.append(c.at < query.until)
    return where


def _entry(row: RowMapping) -> AuditEntry:
    return AuditEntry(
        at=row["at"],
        actor=row["actor"],
        action=AuditAction(row["action"]),
        ven_id=row["ven_id"],
        event_id=row["event_id"],
        load_id=row["load_id"],
        details=dict(row["details"] or {}),
        id=int(row["id"]),
    )


class SqlAuditLog:
    def __init__(self, conn: AsyncConnection) -> None:
        self._conn = conn

    async def add(self, entry: AuditEntry) -> None:
        row: dict[str, Any] = {
            "at": entry.at,
            "actor": entry.actor,
            "action": entry.action.value,
            "ven_id": entry.ven_id,
            "event_id": entry.event_id,
            "load_id": entry.load_id,
            "details": dict(entry.details),
        }
        await self._conn.execute(audit_log.insert().values(row))

    async def page(
        self, query: AuditQuery = EVERY_ENTRY, *, offset: int = 0, limit: int = 100
    ) -> Page[AuditEntry]:
        statement = (
            select(audit_log)
            .where(*_where(query))
            .order_by(audit_log.c.at.desc(), audit_log.c.id.desc())
        )
        total, rows = await page_of(self._conn, statement, offset, limit)
        return Page(total, tuple(_entry(r) for r in rows))
