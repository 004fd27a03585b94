"""In-memory VEN alerts, with the SQL adapter's meaning
(:class:`gridcore.ports.VenAlertStore`)."""

from __future__ import annotations

from collections.abc import Sequence

from gridcore.alerts import AlertFilter, VenAlert
from gridcore.telemetry import Page, page_bounds


class InMemoryVenAlertStore:
    def __init__(self) -> None:
        self._alerts: list[VenAlert] = []  # in arrival order
        self._keys: set[tuple[str, object, str, str]] = set()

    async def record_alerts(self, alerts: Sequence[VenAlert]) -> int:
        stored = 0
        for alert in alerts:
            if alert.key in self._keys:
                continue
            self._keys.add(alert.key)
            self._alerts.append(alert)
            stored += 1
        return stored

    async def alerts(
        self, where: AlertFilter, *, offset: int = 0, limit: int = 100
    ) -> Page[VenAlert]:
        offset, limit = page_bounds(offset, limit)
        found = [a for a in reversed(self._alerts) if where.matches(a)]
        found.sort(key=lambda a: a.timestamp, reverse=True)  # stable: later stored first
        return Page(len(found), tuple(found[offset : offset + limit]))
