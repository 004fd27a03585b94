"""Network-wide figures of the dashboard's stats cards, beyond the sums of the
latest state (``NetworkStats``): the reduction in effect now and how well the
network delivered its latest DR event. (Energy used today: :mod:`gridcore.energy`.)
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime, timedelta

from gridcore.energy import Reading
from gridcore.events import DrEvent


def is_current(reported_at: datetime, now: datetime, offline_after: timedelta) -> bool:
    """A VEN's newest reading still says what it does now: it is no older than
    the silence after which the VEN counts as offline (as ``connectivity``)."""
    return now - reported_at <= offline_after


def current_reduction_kw(shed: Iterable[Reading], now: datetime, offline_after: timedelta) -> float:
    """The load reduction in effect: the sum of the ``shedPowerKw`` of each
    VEN's newest reading, over the readings that are current. A reading from a
    VEN gone silent says nothing about now, so an offline VEN adds nothing."""
    return sum(r.kw for r in shed if r.kw is not None and is_current(r.at, now, offline_after))


def latest_dispatched(events: Iterable[DrEvent]) -> DrEvent | None:
    """The DR event the network was asked for last: of the events that were
    activated (active, completed or stopped), the one that started last (the
    greater id between two that started together)."""
    dispatched = [e for e in events if e.activated_at is not None]
    return max(dispatched, key=lambda e: (e.start_time, e.id), default=None)


def delivery_percent(requested_kw: float, actual_kw: float) -> float:
    """How much of an event's requested reduction the VENs delivered (its
    ``actualReductionKw``, credited from their ACKs), in percent, one decimal.
    Over-delivery counts as 100: the share of what was asked, not a bonus."""
    if requested_kw <= 0:
        return 0.0
    return round(min(actual_kw / requested_kw, 1.0) * 100.0, 1)
