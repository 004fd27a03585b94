"""Measurement of a stored DR event: what :mod:`gridcore.measurement` needs,
gathered from the stores, for every VEN the event was sent to.

- The window is the event's, cut at its stop when it was stopped early: a
  VEN is not measured for the minutes after it was told to restore.
- Per VEN: its 5-minute intervals from the lookback (45 days before the
  start) to the hour after the end; the local dates of its earlier events
  (never baseline days); the kW allocated to it (its newest event command)
  and the kW it claimed (what its accepted ACK delivers).
- While the event runs (and until the hour after its end is over) the answer
  is live: measured as far as now. While the event itself runs, against the
  meter-before baseline (a day-of figure an operator can watch move); once it
  is over, with the programme's method.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta, tzinfo
from zoneinfo import ZoneInfo

from gridcore.baselines import (
    DEFAULT_METHOD,
    LOOKBACK_DAYS,
    EventWindow,
    fallback_chain,
)
from gridcore.correlation import Command, delivered_per_ven, latest_per_ven
from gridcore.errors import InvalidInput, NotFound
from gridcore.events import DrEvent
from gridcore.intervals import MAX_INTERVAL_VENS, IntervalReading
from gridcore.measurement import EventMeasurement, VenMeterData, measure_event
from gridcore.ports import TelemetryQueries, UnitOfWork, UnitOfWorkFactory
from gridcore.quantities import to_kw

LIVE_METHOD = "meter-before"
# Earlier events read per page when finding a VEN's event days.
_EVENT_PAGE = 500


@dataclass(frozen=True, slots=True)
class Programme:
    """What measurement takes from the programme's rules: its time zone
    (baseline days are its local dates), its holidays and its baseline method."""

    tz: tzinfo = field(default_factory=lambda: ZoneInfo("UTC"))
    method: str = DEFAULT_METHOD
    holidays: frozenset[date] = frozenset()


@dataclass(frozen=True, slots=True)
class EventPerformance:
    """An event's measurement and how it was asked for: ``live`` while the
    measured span (the event and the hour after it) is not over."""

    event: DrEvent
    method: str
    live: bool
    measurement: EventMeasurement


def event_window(event: DrEvent) -> EventWindow:
    """The event's window, ending when it was stopped if that came first."""
    end = event.end_time
    if event.ended_at is not None and event.start_time < event.ended_at < end:
        end = event.ended_at
    return EventWindow(event.start_time, end)


def local_dates(start: datetime, end: datetime, tz: tzinfo) -> set[date]:
    """Every local date ``[start, end)`` touches."""
    first, last = start.astimezone(tz).date(), (end - timedelta(microseconds=1)).astimezone(tz)
    days, day = set(), first
    while day <= last.date():
        days.add(day)
        day += timedelta(days=1)
    return days


def event_days_per_ven(
    events: Iterable[DrEvent], commands: Iterable[Command], tz: tzinfo
) -> dict[str, frozenset[date]]:
    """Per VEN, the local dates of the events among ``events`` it was sent."""
    dates = {e.id: local_dates(e.start_time, event_window(e).end, tz) for e in events}
    per_ven: dict[str, set[date]] = defaultdict(set)
    for command in commands:
        if command.event_id in dates:
            per_ven[command.ven_id] |= dates[command.event_id]
    return {ven_id: frozenset(days) for ven_id, days in per_ven.items()}


async def measure_event_performance(
    uow_factory: UnitOfWorkFactory,
    queries: TelemetryQueries,
    event_id: str,
    *,
    programme: Programme,
    now: datetime,
    method: str | None = None,
    ven_ids: Sequence[str] | None = None,
) -> EventPerformance:
    """Measure ``event_id`` as far as ``now`` with ``method`` (default: the
    programme's; meter-before while the event runs), for every VEN it was
    sent to, or only ``ven_ids``. An event that has not started, or that was
    never sent to any VEN, has nothing to measure: :class:`InvalidInput`."""
    async with uow_factory() as uow:
        event = await uow.events.get(event_id)
        if event is None:
            raise NotFound("event", event_id)
        commands = await uow.commands.for_event(event_id, list(ven_ids) if ven_ids else None)
        lookback_start = event.start_time - timedelta(days=LOOKBACK_DAYS + 1)
        earlier = await _earlier_events(uow, event, lookback_start)
        earlier_commands = await uow.commands.for_events([e.id for e in earlier])
    if now <= event.start_time:
        raise InvalidInput("eventId", f"event {event_id} has not started: nothing to measure yet")
    in_force = latest_per_ven(commands)
    if not in_force:
        raise InvalidInput("eventId", f"event {event_id} was sent to no VEN: nothing to measure")
    window = event_window(event)
    asked = method or programme.method
    running = now < window.end
    chain = fallback_chain(LIVE_METHOD if running and method is None else asked)
    delivered = delivered_per_ven(commands)
    event_days = event_days_per_ven(earlier, earlier_commands, programme.tz)
    readings = await _readings(queries, sorted(in_force), lookback_start, window.baseline_end)
    vens = [
        VenMeterData(
            ven_id=ven_id,
            readings=readings.get(ven_id, ()),
            event_days=event_days.get(ven_id, frozenset()),
            allocated_kw=command.shed_kw,
            claimed_kw=to_kw(delivered[ven_id]) if ven_id in delivered else None,
        )
        for ven_id, command in sorted(in_force.items())
    ]
    measured = measure_event(
        vens,
        window,
        tz=programme.tz,
        requested_kw=event.requested_reduction_kw,
        methods=chain,
        holidays=programme.holidays,
        until=min(now, window.baseline_end),
    )
    return EventPerformance(event, chain[0].name, now < window.baseline_end, measured)


async def _earlier_events(uow: UnitOfWork, event: DrEvent, since: datetime) -> list[DrEvent]:
    """Dispatched events before ``event`` that overlap the lookback: their
    days are not baseline days for the VENs they were sent to."""
    found: list[DrEvent] = []
    after: DrEvent | None = None
    while True:
        page = await uow.events.overlapping(
            start=since, end=event.start_time, after=after, limit=_EVENT_PAGE
        )
        found += [e for e in page if e.id != event.id and e.activated_at is not None]
        if len(page) < _EVENT_PAGE:
            return found
        after = page[-1]


async def _readings(
    queries: TelemetryQueries, ven_ids: Sequence[str], start: datetime, end: datetime
) -> dict[str, list[IntervalReading]]:
    found: dict[str, list[IntervalReading]] = {}
    for first in range(0, len(ven_ids), MAX_INTERVAL_VENS):
        found.update(
            await queries.intervals(ven_ids[first : first + MAX_INTERVAL_VENS], start, end)
        )
    return found
