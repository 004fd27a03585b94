"""Kept event performance reports in memory (:class:`gridcore.ports.PerformanceStore`)."""

from __future__ import annotations

from collections.abc import Sequence

from gridcore.verification import PerformanceReport


class InMemoryPerformanceStore:
    def __init__(self) -> None:
        self._reports: dict[tuple[str, str], PerformanceReport] = {}

    async def save(self, report: PerformanceReport) -> None:
        self._reports[(report.event_id, report.method)] = report

    async def get(self, event_id: str, method: str) -> PerformanceReport | None:
        return self._reports.get((event_id, method))

    async def kept(self, event_ids: Sequence[str], method: str) -> set[str]:
        return {e for e in event_ids if (e, method) in self._reports}
