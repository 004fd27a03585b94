"""Telemetry read for DR events, with the same meaning as the SQL adapter's
(:mod:`adapters.sql.participation`): the rules in the port's docstrings, applied
to the stored samples directly."""

from __future__ import annotations

import bisect
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from gridcore.correlation import CommandOp, CommandState
from gridcore.participation import Around
from gridcore.reconcile import not_shedding
from gridcore.telemetry import MAX_PAGE_SIZE, TelemetrySample

if TYPE_CHECKING:
    from adapters.memory.repositories import InMemoryState
    from adapters.memory.telemetry import InMemoryTelemetry

# As the SQL adapter's dispatch batches.
MAX_NOT_SHEDDING = 20_000


class InMemoryParticipationQueries:
    """The DR-event half of :class:`gridcore.ports.TelemetryQueries`."""

    _state: InMemoryState
    _telemetry: InMemoryTelemetry

    async def not_shedding(
        self, event_id: str, *, acked_before: datetime, since: datetime, limit: int = 1000
    ) -> list[str]:
        acked = {
            c.ven_id
            for c in self._state.commands.values()
            if c.event_id == event_id
            and c.op is CommandOp.EVENT
            and c.state is CommandState.ACKED
            and c.acked_at is not None
            and c.acked_at <= acked_before
        }
        found = [
            ven_id
            for ven_id in sorted(acked)
            if not_shedding(
                self._telemetry.latest.get(ven_id),
                (s for (sid, stamp), s in self._telemetry.samples.items() if sid == ven_id),
                event_id,
                since,
            )
        ]
        return found[: min(max(limit, 1), MAX_NOT_SHEDDING)]

    async def reported_reduction(self, event_id: str, at: datetime, within: timedelta) -> float:
        newest: dict[str, TelemetrySample] = {}
        for (ven_id, stamp), sample in self._telemetry.samples.items():
            if at - within < stamp <= at:
                held = newest.get(ven_id)
                if held is None or held.timestamp < stamp:
                    newest[ven_id] = sample
        return round(
            sum(s.shed_power_kw or 0.0 for s in newest.values() if s.event_id == event_id), 3
        )

    async def samples_around(
        self, ven_id: str, instants: Sequence[datetime], within: timedelta
    ) -> dict[datetime, Around]:
        samples = sorted(
            (s for (sid, _), s in self._telemetry.samples.items() if sid == ven_id),
            key=lambda s: s.timestamp,
        )
        stamps = [s.timestamp for s in samples]
        found: dict[datetime, Around] = {}
        for at in sorted(set(instants))[:MAX_PAGE_SIZE]:
            n = bisect.bisect_left(stamps, at)  # samples[n] is the first at or after `at`
            before = samples[n - 1] if n > 0 and at - stamps[n - 1] < within else None
            after = samples[n] if n < len(samples) and stamps[n] - at < within else None
            if before is not None or after is not None:
                found[at] = Around(before, after)
        return found
