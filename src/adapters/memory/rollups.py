"""The fleet's history roll-ups in memory (gridcore.history), with the same
meaning as ``adapters.sql.rollups``: one process, so a pass is atomic and
ingest marks against the roll-ups' own reach."""

from __future__ import annotations

from datetime import datetime, timedelta

from adapters.memory.telemetry import InMemoryTelemetry
from gridcore.history import (
    ROLLUP_AFTER,
    DayTotals,
    FleetTotals,
    closed_days,
    day_of,
    rollup_horizon,
)
from gridcore.ports import RollupReport


class InMemoryHistoryRollup:
    def __init__(self, telemetry: InMemoryTelemetry, *, after: timedelta = ROLLUP_AFTER) -> None:
        self._telemetry = telemetry
        self._after = after

    async def roll_up(self, now: datetime) -> RollupReport:
        t = self._telemetry
        horizon = rollup_horizon(now, self._after)
        rolled = t.rolled_through
        if rolled is None:
            rolled = min((at for _, at in t.intervals), default=horizon)
        target = max(rolled, horizon)
        late = {s for s in t.late if s < target}
        t.late = [s for s in t.late if s >= target]
        d0, d1 = closed_days(rolled, target)
        intervals = {s for _, s in t.intervals if rolled <= s < target} | late
        days = {d for _, d in t.days if d0 <= d < d1} | {
            day_of(s) for s in late if day_of(s) < day_of(target)
        }
        made_intervals: dict[datetime, FleetTotals] = {}
        for (ven_id, at), totals in t.intervals.items():
            if at in intervals:
                one = DayTotals.of(totals, t.interval_events.get((ven_id, at)))
                made_intervals[at] = made_intervals.get(at, FleetTotals()).add(one)
        made_days: dict[datetime, FleetTotals] = {}
        for (_, day), day_totals in t.days.items():
            if day in days:
                made_days[day] = made_days.get(day, FleetTotals()).add(day_totals)
        t.fleet_intervals.update(made_intervals)
        t.fleet_days.update(made_days)
        t.rolled_through = target
        return RollupReport(target, len(intervals - late), len(days), len(late))
