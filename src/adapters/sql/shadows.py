"""Device shadows stored in the ``shadows`` table (for brokers that are not AWS
IoT: the worker feeds it from ``$aws/things/{venId}/shadow/update``)."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncEngine

from adapters.memory.shadows import merge_state
from adapters.sql.engine import SQLITE_BEGIN
from adapters.sql.tables import shadows


class SqlShadowStore:
    """:class:`gridcore.ports.ShadowStore` on SQL. ``update`` merges with the AWS
    IoT rule (objects merge, null deletes, the rest replaces) under a row lock,
    so concurrent updates of one VEN never lose each other's keys."""

    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine

    async def get(self, ven_id: str) -> Mapping[str, Any] | None:
        async with self._engine.connect() as conn:
            query = select(shadows.c.document).where(shadows.c.ven_id == ven_id)
            document = await conn.scalar(query)
        return dict(document) if isinstance(document, Mapping) else None

    async def update(self, ven_id: str, document: Mapping[str, Any], at: datetime) -> None:
        state = document.get("state")
        if not isinstance(state, Mapping):
            raise ValueError("a shadow update needs a 'state' object")
        async with self._engine.connect() as conn:
            await conn.execution_options(**{SQLITE_BEGIN: "IMMEDIATE"})
            async with conn.begin():
                query = select(shadows.c.document).where(shadows.c.ven_id == ven_id)
                if conn.dialect.name == "postgresql":
                    query = query.with_for_update()
                current = await conn.scalar(query)
                merged = merge_state(current or {"state": {}}, {"state": state})
                merged["timestamp"] = int(at.timestamp())
                if current is None:
                    await conn.execute(
                        shadows.insert().values(ven_id=ven_id, document=merged, updated_at=at)
                    )
                else:
                    await conn.execute(
                        update(shadows)
                        .where(shadows.c.ven_id == ven_id)
                        .values(document=merged, updated_at=at)
                    )
