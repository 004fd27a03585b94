"""In-memory status and load-snapshot stores, with the SQL adapters' meaning
(:class:`gridcore.ports.VenStatusStore`, :class:`gridcore.ports.LoadSnapshotStore`)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from adapters.memory.repositories import InMemoryState
from gridcore.reports import LoadSnapshot, VenStatusReport
from gridcore.telemetry import LoadSample, page_bounds


@dataclass
class InMemoryReports:
    """Statuses in arrival order per VEN; snapshot loads by (VEN, timestamp)."""

    statuses: dict[str, list[VenStatusReport]] = field(default_factory=dict)
    snapshots: dict[tuple[str, datetime], dict[str, LoadSample]] = field(default_factory=dict)
    raw_loads: dict[tuple[str, datetime, str], dict[str, Any]] = field(default_factory=dict)


def _heard_from(state: InMemoryState, ven_id: str, at: datetime) -> None:
    ven = state.vens.get(ven_id)
    if ven is not None:
        state.vens[ven_id] = ven.heard_from(at)


class InMemoryVenStatusStore:
    def __init__(self, state: InMemoryState, reports: InMemoryReports) -> None:
        self._state = state
        self._reports = reports

    async def record_statuses(self, reports: Sequence[VenStatusReport]) -> int:
        stored = 0
        for report in reports:
            kept = self._reports.statuses.setdefault(report.ven_id, [])
            if any(r.timestamp == report.timestamp and r.status == report.status for r in kept):
                continue
            kept.append(report)
            stored += 1
            if report.is_heartbeat:
                _heard_from(self._state, report.ven_id, report.heard_at)
        return stored

    async def latest_statuses(self, ven_ids: Sequence[str]) -> dict[str, VenStatusReport]:
        latest: dict[str, VenStatusReport] = {}
        for ven_id in dict.fromkeys(ven_ids):
            kept = self._reports.statuses.get(ven_id)
            if kept:
                # max() keeps the first of equals; reversed: the later stored wins a tie.
                latest[ven_id] = max(reversed(kept), key=lambda r: r.timestamp)
        return latest

    async def statuses(self, ven_id: str, *, limit: int = 100) -> list[VenStatusReport]:
        kept = list(reversed(self._reports.statuses.get(ven_id, [])))
        kept.sort(key=lambda r: r.timestamp, reverse=True)  # stable: later stored first
        return kept[: page_bounds(0, limit)[1]]


class InMemoryLoadSnapshotStore:
    def __init__(self, state: InMemoryState, reports: InMemoryReports) -> None:
        self._state = state
        self._reports = reports

    async def record_snapshots(self, snapshots: Sequence[LoadSnapshot]) -> int:
        stored = 0
        for snap in snapshots:
            kept = self._reports.snapshots.setdefault((snap.ven_id, snap.timestamp), {})
            for load in snap.loads:
                if load.load_id in kept:
                    continue
                kept[load.load_id] = load
                raw = snap.raw_loads.get(load.load_id)
                if raw is not None:
                    self._reports.raw_loads[(snap.ven_id, snap.timestamp, load.load_id)] = dict(raw)
                stored += 1
            _heard_from(self._state, snap.ven_id, snap.heard_at)
        return stored

    async def latest_snapshots(self, ven_ids: Sequence[str]) -> dict[str, LoadSnapshot]:
        wanted = set(ven_ids)
        newest: dict[str, datetime] = {}
        for ven_id, at in self._reports.snapshots:
            if ven_id in wanted and (ven_id not in newest or newest[ven_id] < at):
                newest[ven_id] = at
        result: dict[str, LoadSnapshot] = {}
        for ven_id, at in newest.items():
            loads = self._reports.snapshots[(ven_id, at)]
            result[ven_id] = LoadSnapshot(
                ven_id,
                at,
                tuple(_stored(loads[load_id]) for load_id in sorted(loads)),
                {
                    load_id: raw
                    for load_id in loads
                    if (raw := self._reports.raw_loads.get((ven_id, at, load_id))) is not None
                },
            )
        return result


def _stored(load: LoadSample) -> LoadSample:
    """What ``load_snapshots`` keeps of a load line (its columns)."""
    return load._replace(breaker_amps=None, current_amps=None)
