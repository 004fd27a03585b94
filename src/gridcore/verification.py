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

import asyncio
import logging
from collections import defaultdict
from collections.abc import AsyncIterator, Iterable, Sequence, Set
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta, tzinfo

from gridcore.baselines import (
    AFTER,
    DEFAULT_METHOD,
    LOOKBACK_DAYS,
    Baseline,
    BaselineMethod,
    DayOfAdjustment,
    EventWindow,
    MeterBefore,
    XOfY,
    fallback_chain,
    history_days,
)
from gridcore.correlation import Command, delivered_per_ven, latest_per_ven
from gridcore.errors import InvalidInput, NotFound
from gridcore.events import MAX_EVENT_DURATION, DrEvent
from gridcore.intervals import INTERVAL, MAX_INTERVAL_VENS, MeterSeries
from gridcore.measurement import (
    EventMeasurement,
    FleetMeasurement,
    VenMeasurement,
    VenMeterData,
    fleet_measurement,
    measure_event,
    measure_ven,
)
from gridcore.ports import PerformanceStore, TelemetryQueries, UnitOfWork, UnitOfWorkFactory
from gridcore.quantities import to_kw

log = logging.getLogger("gridcore.verification")

LIVE_METHOD = "meter-before"
# Earlier events read per page when finding a VEN's event days.
_EVENT_PAGE = 500


@dataclass(frozen=True, slots=True)
class Programme:
    """What measurement takes from the programme's rules: its time zone
    (baseline days are its local dates), its holidays and its baseline method."""

    tz: tzinfo = UTC
    method: str = DEFAULT_METHOD
    holidays: frozenset[date] = frozenset()
    rebound: timedelta = AFTER  # how long after an event its rebound is measured


@dataclass(frozen=True, slots=True)
class EventPerformance:
    """An event's measurement and how it was asked for: ``live`` while the
    measured span (the event and the hour after it) is not over."""

    event: DrEvent
    method: str
    live: bool
    measurement: EventMeasurement


@dataclass(frozen=True, slots=True)
class VenPerformanceLine:
    """One VEN's line of a report: its figures without the interval series
    (which :func:`measure_event_performance` gives for one VEN on demand)."""

    ven_id: str
    baseline_method: str  # the method used, after any fallback
    fell_back: tuple[str, ...]  # "method: why not", in the order tried
    shed_kwh: float | None
    avg_shed_kw: float | None
    allocated_kw: float | None
    performance_ratio: float | None
    claimed_kw: float | None
    claimed_avg_shed_kw: float | None
    coverage: float | None
    intervals_expected: int
    intervals_present: int
    samples_expected: float | None
    samples_present: int
    offline_intervals: int
    baseline_days: int
    rebound_kwh: float | None
    rebound_peak_kw: float | None

    @classmethod
    def of(cls, v: VenMeasurement) -> VenPerformanceLine:
        q = v.quality
        return cls(
            ven_id=v.ven_id,
            baseline_method=v.baseline.method,
            fell_back=fallbacks_said(v.baseline),
            shed_kwh=v.shed_kwh,
            avg_shed_kw=v.avg_shed_kw,
            allocated_kw=v.allocated_kw,
            performance_ratio=v.performance_ratio,
            claimed_kw=v.claimed_kw,
            claimed_avg_shed_kw=v.claimed_avg_shed_kw,
            coverage=v.coverage,
            intervals_expected=q.intervals_expected,
            intervals_present=q.intervals_present,
            samples_expected=q.samples_expected,
            samples_present=q.samples_present,
            offline_intervals=len(q.offline),
            baseline_days=q.baseline_days,
            rebound_kwh=v.rebound.kwh if v.rebound else None,
            rebound_peak_kw=v.rebound.peak_kw if v.rebound else None,
        )


@dataclass(frozen=True, slots=True)
class PerformanceReport:
    """What settlement reads of an event: measured as far as
    ``measured_until`` with ``method`` (the one asked; each VEN's line says
    which it used), the fleet (figures and interval series) and a line per
    VEN. ``live`` until the measured span (the event and the hour after it)
    is over; only a report that is not live is kept."""

    event_id: str
    method: str
    computed_at: datetime
    measured_until: datetime
    window: EventWindow
    fleet: FleetMeasurement
    vens: tuple[VenPerformanceLine, ...]

    @property
    def live(self) -> bool:
        return self.measured_until < self.window.baseline_end

    @classmethod
    def of(cls, performance: EventPerformance, computed_at: datetime) -> PerformanceReport:
        m = performance.measurement
        return cls(
            event_id=performance.event.id,
            method=performance.method,
            computed_at=computed_at,
            measured_until=m.until,
            window=m.window,
            fleet=m.fleet,
            vens=tuple(VenPerformanceLine.of(v) for _, v in sorted(m.vens.items())),
        )


def fallbacks_said(baseline: Baseline) -> tuple[str, ...]:
    """The methods a baseline fell back from, each as "method: why not"."""
    return tuple(f"{f.method}: {f.reason}" for f in baseline.fallbacks)


def event_window(event: DrEvent, rebound: timedelta = AFTER) -> EventWindow:
    """The event's window, ending when it was stopped if that came first,
    with ``rebound`` measured after it."""
    end = event.end_time
    if event.ended_at is not None and event.start_time < event.ended_at < end:
        end = event.ended_at
    return EventWindow(event.start_time, end, rebound)


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
        window = event_window(event, programme.rebound)
        asked = method or programme.method
        running = now < window.end
        chain = fallback_chain(LIVE_METHOD if running and method is None else asked)
        lookback_start = _history_start(chain, event)
        earlier: list[DrEvent] = []
        earlier_commands: list[Command] = []
        if lookback_start < event.start_time - timedelta(days=1):  # days, not minutes, back
            earlier = await _earlier_events(uow, event, lookback_start)
            earlier_commands = await uow.commands.for_events([e.id for e in earlier])
    event_days = event_days_per_ven(earlier, earlier_commands, programme.tz)
    return await _measured(queries, event, commands, chain, event_days, programme, now)


async def _measured(
    queries: TelemetryQueries,
    event: DrEvent,
    commands: Sequence[Command],
    chain: Sequence[BaselineMethod],
    event_days: dict[str, frozenset[date]],
    programme: Programme,
    now: datetime,
) -> EventPerformance:
    """``event`` measured with ``chain`` from its commands and the VENs'
    intervals (``event_days``: each VEN's earlier event days)."""
    window = event_window(event, programme.rebound)
    if now <= event.start_time:
        raise InvalidInput("eventId", f"event {event.id} has not started: nothing to measure yet")
    in_force = latest_per_ven(commands)
    if not in_force:
        raise InvalidInput("eventId", f"event {event.id} was sent to no VEN: nothing to measure")
    delivered = delivered_per_ven(commands)
    until = min(now, window.baseline_end)

    def measure(ven_id: str, series: MeterSeries | None) -> VenMeasurement:
        data = VenMeterData(
            ven_id=ven_id,
            readings=series or MeterSeries.empty(),
            event_days=event_days.get(ven_id, frozenset()),
            allocated_kw=in_force[ven_id].shed_kw,
            claimed_kw=to_kw(delivered[ven_id]) if ven_id in delivered else None,
        )
        return measure_ven(
            data, window, tz=programme.tz, methods=chain, holidays=programme.holidays, until=until
        )

    # First the days each VEN's baseline reads when they all have data; then,
    # for the VENs that had to look further back, every day they could read.
    # A fleet's baselines read 10 of 45 days, not all of them.
    reads = _HistoryReads(chain, event, window, event_days, programme)
    measured: dict[str, VenMeasurement] = {}
    async for ven_id, series in _series(queries, sorted(in_force), reads.first()):
        measured[ven_id] = measure(ven_id, series)
    further = [v for v, m in measured.items() if not reads.enough(v, m.baseline)]
    if further:
        async for ven_id, series in _series(queries, further, reads.every(further)):
            measured[ven_id] = measure(ven_id, series)  # in its place: VENs stay in id order
    fleet = fleet_measurement(measured.values(), requested_kw=event.requested_reduction_kw)
    return EventPerformance(
        event,
        chain[0].name,
        now < window.baseline_end,
        EventMeasurement(window, until, measured, fleet),
    )


# Longer events read every hour of each day anyway: one span.
_DAILY_SPANS_UP_TO = timedelta(hours=16)
_DEFAULT_REACH = DayOfAdjustment().window + DayOfAdjustment().gap


def reach_before(chain: Sequence[BaselineMethod]) -> timedelta:
    """How long before the event's clock time a chain reads on each day: its
    day-of adjustment window (3 h ending 1 h before, by default) or its
    meter-before minutes, whichever is longest."""
    reach = timedelta(0)
    for method in chain:
        if isinstance(method, MeterBefore):
            reach = max(reach, timedelta(minutes=method.minutes))
        elif isinstance(method, XOfY):
            reach = max(reach, method.adjustment.window + method.adjustment.gap)
    return reach


def history_spans(
    window: EventWindow,
    tz: tzinfo,
    since: datetime,
    before: timedelta = _DEFAULT_REACH,
    days: Set[date] | None = None,
) -> list[tuple[datetime, datetime]]:
    """The UTC spans of VEN intervals measurement reads, from ``since`` to
    the end of the hour after the event: on each local day, the event's
    local clock times from ``before`` ahead of its start to the rebound hour
    after its end (a 2-hour event reads 7 hours of each day, not 24, with
    the same results: docs/measurement.md). Local clock times, so a day on
    the other side of a daylight-saving change is read at the same hours.
    One interval more on each side for a start off the 5-minute grid.
    ``days``: only these history days (local dates, as
    :func:`~gridcore.baselines.history_days` gives them) besides the event
    day. In time order; spans that meet are one."""
    if window.end - window.start > _DAILY_SPANS_UP_TO:
        return [(since, window.baseline_end)]
    first = (window.start - before - INTERVAL).astimezone(tz)
    last = (window.end + window.after + INTERVAL).astimezone(tz)
    spans: list[tuple[datetime, datetime]] = []
    day = since.astimezone(tz).date() - timedelta(days=1)
    end_day = window.start.astimezone(tz).date()
    shift = end_day - first.date()  # from the day a span starts on to its history day
    while day <= end_day:
        if days is not None and day + shift not in days and day + shift != end_day:
            day += timedelta(days=1)
            continue
        offset = day - first.date()
        lo = datetime.combine(first.date() + offset, first.timetz().replace(tzinfo=None), tz)
        hi = datetime.combine(last.date() + offset, last.timetz().replace(tzinfo=None), tz)
        lo, hi = max(lo.astimezone(UTC), since), min(hi.astimezone(UTC), window.baseline_end)
        if lo < hi:
            if spans and lo <= spans[-1][1]:
                spans[-1] = (spans[-1][0], max(hi, spans[-1][1]))
            else:
                spans.append((lo, hi))
        day += timedelta(days=1)
    return spans


def _history_start(chain: Sequence[BaselineMethod], event: DrEvent) -> datetime:
    """How far back the VENs' intervals are read: the minutes before the
    start for meter-before alone (the live view, read on every poll), else
    the lookback of the day-matching methods."""
    if all(isinstance(m, MeterBefore) for m in chain):
        minutes = max(m.minutes for m in chain if isinstance(m, MeterBefore))
        return event.start_time - timedelta(minutes=minutes) - INTERVAL
    return event.start_time - timedelta(days=LOOKBACK_DAYS + 1)


async def event_progress(
    queries: TelemetryQueries,
    store: PerformanceStore,
    event: DrEvent,
    commands: Sequence[Command],
    *,
    programme: Programme,
    now: datetime,
) -> PerformanceReport | None:
    """What the event page shows next to the kW the VENs claim, from the
    event and its commands the page has read: from its start until its
    rebound span is over, the metered shed so far against the meter-before
    baseline (only the hour before the start is read: cheap on every poll);
    afterwards the report kept for the programme's method (the worker's).
    None before the start, for an event sent to no VEN, or before the
    report is kept."""
    if event.activated_at is None or now <= event.start_time:
        return None
    if now >= event_window(event, programme.rebound).baseline_end:
        return await store.get(event.id, programme.method)
    chain = fallback_chain(LIVE_METHOD)  # never days back: no earlier event days needed
    try:
        measured = await _measured(queries, event, commands, chain, {}, programme, now)
    except InvalidInput:  # sent to no VEN
        return None
    return PerformanceReport.of(measured, now)


async def event_report(
    uow_factory: UnitOfWorkFactory,
    queries: TelemetryQueries,
    store: PerformanceStore,
    event_id: str,
    *,
    programme: Programme,
    now: datetime,
    method: str | None = None,
    recompute: bool = False,
) -> PerformanceReport:
    """The report kept for ``event_id`` and ``method`` (default: the
    programme's), else (or with ``recompute``) measured now; a measurement
    whose span is over is kept, replacing the one before."""
    if not recompute:
        # Kept under the method's own name ("meter-before-60" is "meter-before").
        kept = await store.get(event_id, fallback_chain(method or programme.method)[0].name)
        if kept is not None:
            return kept
    measured = await measure_event_performance(
        uow_factory, queries, event_id, programme=programme, now=now, method=method
    )
    report = PerformanceReport.of(measured, now)
    if not report.live:
        await store.save(report)
    return report


async def measure_finished_events(
    uow_factory: UnitOfWorkFactory,
    queries: TelemetryQueries,
    store: PerformanceStore,
    *,
    programme: Programme,
    now: datetime,
    horizon: timedelta = timedelta(days=2),
) -> list[str]:
    """The worker's pass: every dispatched event whose measured span (the
    event and the hour after it) ended within ``horizon`` and that has no
    report kept for the programme's method is measured and kept. One event
    that cannot be measured is logged and does not stop the others."""
    async with uow_factory() as uow:
        candidates = await _dispatched_events(uow, now - horizon - MAX_EVENT_DURATION, now)
    over = [
        e
        for e in candidates
        if e.status.is_final
        and now - horizon <= event_window(e, programme.rebound).baseline_end <= now
    ]
    if not over:
        return []
    kept = await store.kept([e.id for e in over], programme.method)
    measured = []
    for event in over:
        if event.id in kept:
            continue
        try:
            await event_report(uow_factory, queries, store, event.id, programme=programme, now=now)
        except InvalidInput as exc:  # sent to no VEN: nothing to measure, ever
            log.info("event %s not measured: %s", event.id, exc.message)
            await store.save(_nothing_measured(event, programme, now))
            continue
        except Exception:
            log.exception("event %s: measuring it failed; next pass tries again", event.id)
            continue
        measured.append(event.id)
        log.info("event %s measured against %s and kept", event.id, programme.method)
    return measured


def _nothing_measured(event: DrEvent, programme: Programme, now: datetime) -> PerformanceReport:
    """The report of an event no VEN was sent: kept, so it is not tried again."""
    window, method = event_window(event, programme.rebound), programme.method
    return PerformanceReport.of(
        EventPerformance(
            event,
            method,
            False,
            measure_event(
                [],
                window,
                tz=UTC,
                requested_kw=event.requested_reduction_kw,
                until=window.baseline_end,
            ),
        ),
        now,
    )


async def _dispatched_events(uow: UnitOfWork, since: datetime, until: datetime) -> list[DrEvent]:
    """Events overlapping ``[since, until)`` that were dispatched, read in
    keyset pages."""
    found: list[DrEvent] = []
    after: DrEvent | None = None
    while True:
        page = await uow.events.overlapping(start=since, end=until, after=after, limit=_EVENT_PAGE)
        found += [e for e in page if e.activated_at is not None]
        if len(page) < _EVENT_PAGE:
            return found
        after = page[-1]


async def _earlier_events(uow: UnitOfWork, event: DrEvent, since: datetime) -> list[DrEvent]:
    """Dispatched events before ``event`` that overlap the lookback: their
    days are not baseline days for the VENs they were sent to."""
    return [e for e in await _dispatched_events(uow, since, event.start_time) if e.id != event.id]


class _HistoryReads:
    """The intervals an event's measurement reads with ``chain``: first, the
    days each VEN's baseline reads when they all have data
    (:func:`~gridcore.baselines.history_days`, for each set of earlier event
    days the fleet's VENs have); then, for a VEN whose baseline had to look
    further back (a day without data, a new VEN), every day of the lookback."""

    def __init__(
        self,
        chain: Sequence[BaselineMethod],
        event: DrEvent,
        window: EventWindow,
        event_days: dict[str, frozenset[date]],
        programme: Programme,
    ) -> None:
        self._chain = chain
        self._window = window
        self._event_days = event_days
        self._programme = programme
        self._day = window.start.astimezone(programme.tz).date()
        self._since = _history_start(chain, event)
        self._day_matching = any(isinstance(m, XOfY) for m in chain)
        self._needed: dict[frozenset[date], list[date]] = {}

    def first(self) -> list[tuple[datetime, datetime]]:
        if not self._day_matching:  # meter-before: the minutes before the start
            return self._spans(None)
        groups: set[frozenset[date]] = {frozenset(), *self._event_days.values()}
        return self._spans({day for g in groups for day in self._days(g)})

    def enough(self, ven_id: str, baseline: Baseline) -> bool:
        """Whether the first read held every day ``baseline`` looked at."""
        if baseline.reached is None:
            return True
        needed = self._days(self._event_days.get(ven_id, frozenset()))
        return bool(needed) and baseline.reached >= needed[-1]

    def every(self, ven_ids: Sequence[str]) -> list[tuple[datetime, datetime]]:
        groups = {self._event_days.get(v, frozenset()) for v in ven_ids}
        return self._spans({day for g in groups for day in self._days(g, every=True)})

    def _days(self, event_days: frozenset[date], *, every: bool = False) -> list[date]:
        if every:
            return history_days(
                self._chain, self._day, holidays=self._programme.holidays, every=True
            )
        found = self._needed.get(event_days)
        if found is None:
            found = self._needed[event_days] = history_days(
                self._chain,
                self._day,
                holidays=self._programme.holidays,
                event_days=event_days,
            )
        return found

    def _spans(self, days: set[date] | None) -> list[tuple[datetime, datetime]]:
        return history_spans(
            self._window, self._programme.tz, self._since, reach_before(self._chain), days
        )


async def _series(
    queries: TelemetryQueries, ven_ids: Sequence[str], spans: Sequence[tuple[datetime, datetime]]
) -> AsyncIterator[tuple[str, MeterSeries | None]]:
    """Each of ``ven_ids`` with its intervals in ``spans`` (None: it has none),
    read in bounded slices. The next slice is read while this one is measured:
    the store works on it while this process computes. After each VEN the
    event loop runs other work: the worker's MQTT consumer and the API's
    requests (a fleet takes seconds of CPU), and the read of the next slice,
    whose rows the server can send only as fast as they are taken off the
    socket (every 25 VENs instead: a fifth longer for 10,000 VENs)."""
    slices = [ven_ids[i : i + MAX_INTERVAL_VENS] for i in range(0, len(ven_ids), MAX_INTERVAL_VENS)]
    if not slices:
        return
    pending = asyncio.ensure_future(queries.meter_series(slices[0], spans))
    try:
        for n, chunk in enumerate(slices):
            found = await pending
            if n + 1 < len(slices):
                pending = asyncio.ensure_future(queries.meter_series(slices[n + 1], spans))
            for ven_id in chunk:
                yield ven_id, found.get(ven_id)
                await asyncio.sleep(0)
    finally:
        if not pending.done():
            pending.cancel()
