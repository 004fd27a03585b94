"""OpenADR notifications waiting for delivery in SQL
(:class:`gridcore.ports.NotificationOutbox`): table ``oadr_outbox``.

A claim leases the lanes' heads (the lowest pending id of each
``(channel, target)``) in one UPDATE whose rows are picked ``FOR UPDATE
SKIP LOCKED`` on PostgreSQL: two API processes claiming at once never get
the same row, and a row finished or leased meanwhile fails the re-check of
its own conditions (pending, lease free or expired) that PostgreSQL makes
on a locked row. A lane's next row is no head while the one before it is
pending, so a lane is delivered in order by one process at a time. SQLite
serialises writers (BEGIN IMMEDIATE) and ignores FOR UPDATE: one process."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import delete, func, insert, or_, select, tuple_, update
from sqlalchemy.ext.asyncio import AsyncEngine

from adapters.sql.engine import SQLITE_BEGIN
from adapters.sql.tables import oadr_outbox as t
from gridcore.notifications import Claimed, Outgoing

_PENDING = t.c.finished_at.is_(None)


class SqlNotificationOutbox:
    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine

    async def put(self, items: Sequence[Outgoing], now: datetime, max_per_lane: int) -> int:
        if not items:
            return 0
        lanes = {item.lane for item in items}
        async with self._engine.connect() as conn:
            await conn.execution_options(**{SQLITE_BEGIN: "IMMEDIATE"})
            async with conn.begin():
                counted = await conn.execute(
                    select(t.c.channel, t.c.target, func.count())
                    .where(_PENDING, tuple_(t.c.channel, t.c.target).in_(list(lanes)))
                    .group_by(t.c.channel, t.c.target)
                )
                counts = {(c, target): n for c, target, n in counted}
                rows, left_out = [], 0
                for item in items:
                    if counts.get(item.lane, 0) >= max_per_lane:
                        left_out += 1
                        continue
                    counts[item.lane] = counts.get(item.lane, 0) + 1
                    rows.append(
                        {
                            "channel": item.channel,
                            "target": item.target,
                            "body": item.body,
                            "bearer_token": item.bearer_token,
                            "subscription_id": item.subscription_id,
                            "created_at": now,
                        }
                    )
                if rows:
                    await conn.execute(insert(t), rows)
        return left_out

    async def claim(
        self,
        owner: str,
        now: datetime,
        until: datetime,
        limit: int,
        lane: tuple[str, str] | None = None,
        channels: Sequence[str] = ("webhook", "mqtt"),
    ) -> list[Claimed]:
        heads = select(func.min(t.c.id)).where(_PENDING, t.c.channel.in_(list(channels)))
        if lane is not None:
            heads = heads.where(t.c.channel == lane[0], t.c.target == lane[1])
        heads = heads.group_by(t.c.channel, t.c.target)
        free = or_(t.c.lease_until.is_(None), t.c.lease_until < now)
        picked = (
            select(t.c.id)
            .where(t.c.id.in_(heads), _PENDING, free)
            .order_by(t.c.id)
            .limit(limit)
            .with_for_update(skip_locked=True)
        )
        async with self._engine.connect() as conn:
            await conn.execution_options(**{SQLITE_BEGIN: "IMMEDIATE"})
            async with conn.begin():
                result = await conn.execute(
                    update(t)
                    .where(t.c.id.in_(picked), _PENDING, free)
                    .values(lease_owner=owner, lease_until=until)
                    .returning(
                        t.c.id,
                        t.c.channel,
                        t.c.target,
                        t.c.body,
                        t.c.bearer_token,
                        t.c.subscription_id,
                    )
                )
                rows = sorted(result.all())
        return [Claimed(r[0], Outgoing(r[1], r[2], bytes(r[3]), r[4], r[5])) for r in rows]

    async def finish(self, row_id: int, owner: str, delivered: bool, now: datetime) -> bool:
        async with self._engine.begin() as conn:
            result = await conn.execute(
                update(t)
                .where(t.c.id == row_id, t.c.lease_owner == owner, _PENDING)
                .values(finished_at=now, delivered=delivered, lease_owner=None, lease_until=None)
            )
        return bool(result.rowcount)

    async def release(self, owner: str) -> int:
        async with self._engine.begin() as conn:
            result = await conn.execute(
                update(t)
                .where(t.c.lease_owner == owner, _PENDING)
                .values(lease_owner=None, lease_until=None)
            )
        return int(result.rowcount)

    async def prune(self, before: datetime) -> int:
        async with self._engine.begin() as conn:
            result = await conn.execute(
                delete(t).where(t.c.finished_at.is_not(None), t.c.finished_at < before)
            )
        return int(result.rowcount)

    async def pending(self) -> int:
        async with self._engine.connect() as conn:
            count = await conn.scalar(select(func.count()).select_from(t).where(_PENDING))
        return int(count or 0)
