"""OpenADR notifications waiting for delivery, in process memory
(:class:`gridcore.ports.NotificationOutbox`): one process, lost with it."""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from gridcore.notifications import Claimed, Outgoing


@dataclass
class _Row:
    item: Outgoing
    owner: str | None = None
    until: datetime | None = None
    finished: datetime | None = None


class InMemoryNotificationOutbox:
    def __init__(self) -> None:
        self._rows: dict[int, _Row] = {}  # in id order: dicts keep insertion order
        self._ids = itertools.count(1)

    def _pending_by_lane(self) -> dict[tuple[str, str], list[int]]:
        lanes: dict[tuple[str, str], list[int]] = {}
        for row_id, row in self._rows.items():
            if row.finished is None:
                lanes.setdefault(row.item.lane, []).append(row_id)
        return lanes

    async def put(self, items: Sequence[Outgoing], now: datetime, max_per_lane: int) -> int:
        counts = {lane: len(ids) for lane, ids in self._pending_by_lane().items()}
        left_out = 0
        for item in items:
            if counts.get(item.lane, 0) >= max_per_lane:
                left_out += 1
                continue
            counts[item.lane] = counts.get(item.lane, 0) + 1
            self._rows[next(self._ids)] = _Row(item)
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
        out: list[Claimed] = []
        for key, ids in self._pending_by_lane().items():
            if len(out) >= limit:
                break
            if (lane is not None and key != lane) or key[0] not in channels:
                continue
            head = self._rows[ids[0]]
            if head.until is None or head.until < now:
                head.owner, head.until = owner, until
                out.append(Claimed(ids[0], head.item))
        return out

    async def finish(self, row_id: int, owner: str, delivered: bool, now: datetime) -> bool:
        row = self._rows.get(row_id)
        if row is None or row.finished is not None or row.owner != owner:
            return False
        row.finished, row.owner, row.until = now, None, None
        return True

    async def release(self, owner: str) -> int:
        released = 0
        for row in self._rows.values():
            if row.finished is None and row.owner == owner:
                row.owner, row.until = None, None
                released += 1
        return released

    async def prune(self, before: datetime) -> int:
        old = [i for i, r in self._rows.items() if r.finished is not None and r.finished < before]
        for row_id in old:
            del self._rows[row_id]
        return len(old)

    async def pending(self) -> int:
        return sum(1 for r in self._rows.values() if r.finished is None)
