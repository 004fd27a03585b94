"""DR events and their lifecycle.

    scheduled --activate--> active --complete--> completed
        |                     |
        +--cancel--> cancelled +--stop--> stopped (restore sent)

Every other move is an :class:`IllegalTransition`; the API answers it with 409.
"""

from __future__ import annotations

import enum
import math
import re
from dataclasses import dataclass, replace
from datetime import datetime, timedelta

from gridcore.errors import IllegalTransition, InvalidInput
from gridcore.quantities import require_finite_kw
from gridcore.targeting import Targets, validate_targets

EVENT_ID = re.compile(r"^evt-[0-9a-f]{8}\Z")
# An event longer than this is almost certainly a typo in a date.
MAX_EVENT_DURATION = timedelta(days=7)


class EventStatus(enum.StrEnum):
    SCHEDULED = "scheduled"
    ACTIVE = "active"
    COMPLETED = "completed"
    CANCELLED = "cancelled"
    STOPPED = "stopped"

    @property
    def is_final(self) -> bool:
        return self in _FINAL


_FINAL = frozenset({EventStatus.COMPLETED, EventStatus.CANCELLED, EventStatus.STOPPED})

TRANSITIONS: dict[EventStatus, frozenset[EventStatus]] = {
    EventStatus.SCHEDULED: frozenset({EventStatus.ACTIVE, EventStatus.CANCELLED}),
    EventStatus.ACTIVE: frozenset({EventStatus.COMPLETED, EventStatus.STOPPED}),
    EventStatus.COMPLETED: frozenset(),
    EventStatus.CANCELLED: frozenset(),
    EventStatus.STOPPED: frozenset(),
}


def new_event_id(hex8: str) -> str:
    """`evt-` + 8 hex digits, as the event flow document shows (evt-a1b2c3d4)."""
    event_id = f"evt-{hex8}"
    if not EVENT_ID.match(event_id):
        raise ValueError(f"not 8 lowercase hex digits: {hex8!r}")
    return event_id


def _aware(field: str, value: datetime) -> datetime:
    if value.tzinfo is None or value.utcoffset() is None:
        raise InvalidInput(field, "must carry a timezone (e.g. 2025-10-20T15:00:00Z)")
    return value


@dataclass(frozen=True, slots=True)
class DrEvent:
    id: str
    start_time: datetime
    end_time: datetime
    requested_reduction_kw: float
    status: EventStatus = EventStatus.SCHEDULED
    actual_reduction_kw: float = 0.0
    created_at: datetime | None = None
    activated_at: datetime | None = None
    ended_at: datetime | None = None
    # The VENs it is meant for (gridcore.targeting); none: the whole fleet.
    targets: Targets = ()

    def __post_init__(self) -> None:
        if self.targets:
            object.__setattr__(self, "targets", validate_targets(self.targets, "targets"))
        _aware("startTime", self.start_time)
        _aware("endTime", self.end_time)
        if self.start_time >= self.end_time:
            raise InvalidInput("endTime", "must be after startTime")
        if self.end_time - self.start_time > MAX_EVENT_DURATION:
            raise InvalidInput("endTime", f"event may last at most {MAX_EVENT_DURATION.days} days")
        require_finite_kw("requestedReductionKw", self.requested_reduction_kw, positive=True)
        if not math.isfinite(self.actual_reduction_kw) or self.actual_reduction_kw < 0:
            raise InvalidInput("actualReductionKw", "must be a finite, non-negative kW value")

    @property
    def duration(self) -> timedelta:
        return self.end_time - self.start_time

    def remaining(self, now: datetime) -> timedelta:
        return max(self.end_time - max(now, self.start_time), timedelta(0))

    def is_due(self, now: datetime) -> bool:
        """A scheduled event whose start has come."""
        return self.status is EventStatus.SCHEDULED and now >= self.start_time

    def is_over(self, now: datetime) -> bool:
        """An active event whose end has come."""
        return self.status is EventStatus.ACTIVE and now >= self.end_time

    def _move(self, target: EventStatus) -> None:
        if target not in TRANSITIONS[self.status]:
            raise IllegalTransition(self.id, self.status.value, target.value)

    def activate(self, now: datetime) -> DrEvent:
        self._move(EventStatus.ACTIVE)
        return replace(self, status=EventStatus.ACTIVE, activated_at=now)

    def complete(self, now: datetime) -> DrEvent:
        self._move(EventStatus.COMPLETED)
        return replace(self, status=EventStatus.COMPLETED, ended_at=now)

    def stop(self, now: datetime) -> DrEvent:
        self._move(EventStatus.STOPPED)
        return replace(self, status=EventStatus.STOPPED, ended_at=now)

    def cancel(self, now: datetime) -> DrEvent:
        self._move(EventStatus.CANCELLED)
        return replace(self, status=EventStatus.CANCELLED, ended_at=now)

    def with_actual_reduction(self, kw: float) -> DrEvent:
        return replace(self, actual_reduction_kw=kw)
