"""Baselines: what a VEN would have drawn had there been no DR event.

A DR programme pays on what the meter shows against a baseline, not on what
the VEN claims. Every method here is a pure function of one VEN's interval
series (:class:`~gridcore.intervals.IntervalReading`, 5-minute means of
``usedPowerKw``) and the event window, behind one interface,
:class:`BaselineMethod`. Its answer, :class:`Baseline`, covers the event
window and the hour after it (for rebound), and says what it was made from.

- :class:`MeterBefore`: the mean load of the N minutes before the start, held
  flat. For short events, VENs with little history, and live progress.
- :class:`XOfY`: the ISO family. From the Y most recent eligible days take X
  by the method's rule (the most recent: CAISO's 10-in-10; the highest: PJM's
  high 4 of 5) and average them interval by interval, then apply a
  :class:`DayOfAdjustment`, capped.
- :class:`VenReported`: the ``baselinePowerKw`` the VEN itself sent, a
  *claimed* line, never a verified one, and never a fallback.

Days are the programme's local days: every function takes a ``tz``, and a
history day is matched to the event day by local clock time, so a DST day
(23 or 25 hours) lines up with a normal one. A clock time that does not exist
on a day (the hour skipped in spring) has no value that day; one that occurs
twice (the hour repeated in autumn) is read at its first occurrence.

Nothing is invented. An interval a method cannot compute is None, never 0;
a method that lacks the data it needs says which data, and
:func:`compute_baseline` falls back along a chain (:func:`fallback_chain`),
recording the reason for each step. See docs/measurement.md.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Mapping, Sequence, Set
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime, time, timedelta, tzinfo
from enum import Enum
from functools import lru_cache
from typing import Protocol

from gridcore.errors import InvalidInput
from gridcore.intervals import INTERVAL, MeterSeries, Readings, interval_start

AFTER = timedelta(hours=1)  # the rebound hour: baselines run this long past the end
MAX_AFTER = timedelta(hours=6)
MIN_COVERAGE = 0.9  # "enough data": the share of intervals that must be present
LOOKBACK_DAYS = 45  # CAISO's and PJM's weekday lookback (calendar days)
UNAVAILABLE = "unavailable"

# --- the window and the answer ---------------------------------------------------


@dataclass(frozen=True, slots=True)
class EventWindow:
    """``[start, end)`` of a DR event, aware datetimes (UTC in gridcore), and
    how long after the end the rebound is measured (``after``: an hour by
    default; 0 measures none)."""

    start: datetime
    end: datetime
    after: timedelta = AFTER

    def __post_init__(self) -> None:
        if self.start.tzinfo is None or self.end.tzinfo is None:
            raise InvalidInput("window", "start and end must be timezone-aware")
        if self.end <= self.start:
            raise InvalidInput("window", "start must be before end")
        if not timedelta(0) <= self.after <= MAX_AFTER:
            raise InvalidInput("after", f"must be between 0 and {MAX_AFTER}")

    @property
    def baseline_end(self) -> datetime:
        """Baselines cover the event and the rebound span after it."""
        return self.end + self.after

    def intervals(self) -> tuple[datetime, ...]:
        """Starts of the intervals a baseline covers: those overlapping
        ``[start, end + after)``."""
        return _window_starts(self.start, self.baseline_end)


@dataclass(frozen=True, slots=True)
class BaselinePoint:
    start: datetime  # interval start, UTC
    kw: float | None  # None: the method cannot compute it (missing, never 0)


class Exclusion(Enum):
    """Why a history day is not a baseline day."""

    EVENT_DAY = "event day"
    WEEKEND = "weekend"
    HOLIDAY = "holiday"
    WEEKDAY = "weekday"  # the event is on a weekend or holiday: only those are alike
    MISSING_DATA = "missing data"


@dataclass(frozen=True, slots=True)
class ExcludedDay:
    """``present``/``expected``: intervals with a metered value among those the
    baseline reads on that day (the adjustment window to an hour after the end,
    by local clock time). ``present`` is None for a day excluded by its date
    (an event day, or not like the event day): its data is never read."""

    day: date
    reason: Exclusion
    present: int | None
    expected: int


class AdjustmentKind(Enum):
    NONE = "none"
    MULTIPLICATIVE = "multiplicative"  # CAISO: baseline x (metered / baseline)
    ADDITIVE = "additive"  # PJM's symmetric additive adjustment: + (metered - baseline)


@dataclass(frozen=True, slots=True)
class DayOfAdjustment:
    """Scale or shift the baseline so it matches the VEN's load on the event
    day before the event. The window is ``[start - gap - window, start - gap)``:
    by default the 3 hours ending 1 hour before the start (CAISO's load point
    adjustment and PJM's symmetric additive adjustment both read these hours;
    the hour just before is skipped because a VEN may pre-cool or pre-charge in
    it). ``cap``: the most the adjustment may change the baseline, as a share
    (0.20: factor in [0.8, 1.2]; offset within +/-20 % of the window's mean
    baseline); None for no cap."""

    kind: AdjustmentKind = AdjustmentKind.MULTIPLICATIVE
    cap: float | None = 0.20
    window: timedelta = timedelta(hours=3)
    gap: timedelta = timedelta(hours=1)

    def __post_init__(self) -> None:
        if self.cap is not None and not (math.isfinite(self.cap) and self.cap >= 0):
            raise InvalidInput("cap", "must be a share >= 0, or None")
        if self.window < INTERVAL or self.gap < timedelta(0):
            raise InvalidInput("window", "needs at least one interval, at or before the start")

    def span(self, window: EventWindow) -> tuple[datetime, datetime]:
        end = window.start - self.gap
        return end - self.window, end


NO_ADJUSTMENT = DayOfAdjustment(AdjustmentKind.NONE)


@dataclass(frozen=True, slots=True)
class Adjustment:
    """The day-of adjustment as applied. ``metered_kw``/``baseline_kw``: means
    over the window's intervals that have both. ``raw``: the factor
    (multiplicative) or offset in kW (additive) before the cap; ``applied``:
    after it, None when not applied (``note`` says why)."""

    kind: AdjustmentKind
    window_start: datetime
    window_end: datetime
    metered_kw: float | None
    baseline_kw: float | None
    raw: float | None
    applied: float | None
    capped: bool
    note: str = ""


@dataclass(frozen=True, slots=True)
class Fallback:
    """A method that was tried and could not give a baseline, and why."""

    method: str
    reason: str
    days_excluded: tuple[ExcludedDay, ...] = ()


@dataclass(frozen=True, slots=True)
class Baseline:
    """A VEN's baseline over the event window and the hour after it.

    ``method``: the method used (``unavailable`` when none could);
    ``asked``: the method asked for; ``fallbacks``: each method tried before
    ``method``, with its reason. ``days_used``: history days averaged (X of Y);
    ``days_excluded``: days examined and left out, newest first.
    ``period_used``/``intervals_used``: the span read and how many metered
    intervals fed the series. ``shortfall``: why this method could not give a
    baseline (then every point is None); empty when it could. ``reached``:
    the oldest history day this method, or one tried before it, looked at
    (None: none looked at any). Only that day's and newer days' intervals
    decide the baseline, so a caller that read fewer days knows whether it
    read enough."""

    method: str
    asked: str
    points: tuple[BaselinePoint, ...]
    fallbacks: tuple[Fallback, ...] = ()
    days_used: tuple[date, ...] = ()
    days_excluded: tuple[ExcludedDay, ...] = ()
    adjustment: Adjustment | None = None
    period_used: tuple[datetime, datetime] | None = None
    intervals_used: int = 0
    shortfall: str = ""
    reached: date | None = None

    @property
    def available(self) -> bool:
        return not self.shortfall

    @property
    def missing(self) -> tuple[datetime, ...]:
        """Intervals of the window the baseline has no value for."""
        return tuple(p.start for p in self.points if p.kw is None)

    def kw_by_interval(self) -> dict[datetime, float | None]:
        return {p.start: p.kw for p in self.points}


class BaselineMethod(Protocol):
    """A baseline method: a pure function of one VEN's interval series.

    ``readings``: the VEN's intervals, history and event day (gaps allowed:
    a missing interval is no data); only intervals before the event start are
    read as history. ``tz``: the programme's time zone (local days, weekends,
    DST). ``event_days``: the local dates on which this VEN was in an event
    (the event's own day need not be listed). ``holidays``: local dates the
    programme treats like weekends. Returns a :class:`Baseline` whose
    ``shortfall`` is set when the method lacks data; it never raises for that.
    """

    @property
    def name(self) -> str: ...

    def compute(
        self,
        readings: Readings,
        window: EventWindow,
        *,
        tz: tzinfo,
        event_days: Set[date] = frozenset(),
        holidays: Set[date] = frozenset(),
    ) -> Baseline: ...


# --- meter before ----------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class MeterBefore:
    """The mean metered load of the ``minutes`` before the start, held flat
    over the window. Needs ``min_coverage`` of those intervals; only whole
    intervals before the start count."""

    minutes: int = 60
    min_coverage: float = MIN_COVERAGE

    def __post_init__(self) -> None:
        if self.minutes < 5:
            raise InvalidInput("minutes", "must be at least one 5-minute interval")

    @property
    def name(self) -> str:
        return "meter-before" if self.minutes == 60 else f"meter-before-{self.minutes}"

    def compute(
        self,
        readings: Readings,
        window: EventWindow,
        *,
        tz: tzinfo,
        event_days: Set[date] = frozenset(),
        holidays: Set[date] = frozenset(),
    ) -> Baseline:
        metered = _metered(readings, before=window.start)
        period = (window.start - timedelta(minutes=self.minutes), window.start)
        slots = [s for s in _starts(*period) if s >= period[0] and s + INTERVAL <= period[1]]
        values = [v for v in metered(slots) if v is not None]
        if not slots or len(values) < self.min_coverage * len(slots):
            reason = (
                f"{len(values)} of {len(slots)} intervals metered in the {self.minutes} min"
                f" before the start (needs {self.min_coverage:.0%})"
            )
            return unavailable(window, self.name, reason, period_used=period)
        kw = math.fsum(values) / len(values)
        return Baseline(
            method=self.name,
            asked=self.name,
            points=tuple(BaselinePoint(s, kw) for s in window.intervals()),
            period_used=period,
            intervals_used=len(values),
        )


# --- X of Y days -----------------------------------------------------------------


class Selection(Enum):
    RECENT = "recent"  # the X most recent of the eligible days (CAISO 10-in-10)
    HIGHEST = "highest"  # the X with the highest mean load over the event hours (PJM)


@dataclass(frozen=True, slots=True)
class XOfY:
    """From the ``y`` most recent eligible days within ``lookback_days`` before
    the event day, take ``x`` by ``selection``, average them interval by
    interval (by local clock time), then apply ``adjustment``.

    A day is eligible when it is like the event day (a business day for an
    event on one; a weekend day or holiday for an event on one), not one of
    the VEN's event days, and has ``min_coverage`` of the intervals the
    baseline reads on it (the adjustment window to an hour after the end) and
    of its event hours. ``min_days``: the fewest eligible days the method
    accepts (default: half of ``x`` for RECENT, CAISO's 5 of 10; all ``y`` for
    HIGHEST, since ranking fewer days is another method). Each interval is the
    mean of the chosen days that have it; None if none has."""

    x: int
    y: int
    selection: Selection = Selection.RECENT
    adjustment: DayOfAdjustment = field(default_factory=DayOfAdjustment)
    min_days: int | None = None
    lookback_days: int = LOOKBACK_DAYS
    min_coverage: float = MIN_COVERAGE

    def __post_init__(self) -> None:
        if not 1 <= self.x <= self.y:
            raise InvalidInput("x", "X of Y needs 1 <= X <= Y")
        if self.min_days is not None and not 1 <= self.min_days <= self.y:
            raise InvalidInput("min_days", "must be between 1 and Y")

    @property
    def name(self) -> str:
        if self.selection is Selection.HIGHEST:
            return f"high-{self.x}-of-{self.y}"
        return f"{self.x}-in-{self.y}"

    @property
    def fewest_days(self) -> int:
        if self.min_days is not None:
            return self.min_days
        return self.y if self.selection is Selection.HIGHEST else math.ceil(self.x / 2)

    def compute(
        self,
        readings: Readings,
        window: EventWindow,
        *,
        tz: tzinfo,
        event_days: Set[date] = frozenset(),
        holidays: Set[date] = frozenset(),
    ) -> Baseline:
        metered = _metered(readings, before=window.start)
        adjust_start, adjust_end = self.adjustment.span(window)
        plan = _plan(window, min(adjust_start, window.start), tz)
        business = _is_business(plan.day, holidays)
        eligible: list[_Day] = []
        excluded: list[ExcludedDay] = []
        day = plan.day
        for back in range(1, self.lookback_days + 1):
            if len(eligible) == self.y:
                break
            day = plan.day - timedelta(days=back)
            slots, instants, event = plan.on(day)
            reason = _unlike(day, business, holidays)
            if reason is None and day in event_days:
                reason = Exclusion.EVENT_DAY
            if reason is not None:
                excluded.append(ExcludedDay(day, reason, None, len(slots)))
                continue
            values = metered(instants)
            present = len(values) - values.count(None)
            if self._enough(values, present, event):
                eligible.append(_Day(day, slots, event, values))
            else:
                excluded.append(ExcludedDay(day, Exclusion.MISSING_DATA, present, len(slots)))
        if len(eligible) < self.fewest_days:
            counts = {r: sum(1 for e in excluded if e.reason is r) for r in Exclusion}
            why = ", ".join(f"{n} {r.value}" for r, n in counts.items() if n)
            shortfall = (
                f"{len(eligible)} eligible days in the {self.lookback_days} days before"
                f" {plan.day.isoformat()}, needs {self.fewest_days}"
                + (f" (excluded: {why})" if why else "")
            )
            missing = unavailable(window, self.name, shortfall, days_excluded=tuple(excluded))
            return replace(missing, reached=day)
        chosen = self._choose(eligible)
        by_slot = _by_slot(chosen, len(plan.span))
        raw: dict[datetime, float | None] = {
            s: math.fsum(values) / len(values) if values else None
            for s, values in zip(plan.span, by_slot, strict=True)
        }
        fed = sum(map(len, by_slot))
        adjustment = _adjust(self.adjustment, raw, metered, adjust_start, adjust_end)
        return Baseline(
            method=self.name,
            asked=self.name,
            points=tuple(BaselinePoint(s, adjustment.apply(raw[s])) for s in window.intervals()),
            days_used=tuple(sorted((one.day for one in chosen), reverse=True)),
            days_excluded=tuple(excluded),
            adjustment=adjustment.record,
            intervals_used=fed,
            reached=day,
        )

    def _enough(self, values: Sequence[float | None], present: int, event: Sequence[int]) -> bool:
        """``min_coverage`` of the day's intervals, and of its event hours."""
        in_event = sum(1 for j in event if values[j] is not None)
        return (
            bool(values)
            and present >= self.min_coverage * len(values)
            and in_event >= self.min_coverage * len(event)
        )

    def _choose(self, eligible: list[_Day]) -> list[_Day]:
        if self.selection is Selection.RECENT:
            return eligible[: self.x]  # eligible runs newest first

        def event_mean(one: _Day) -> float:
            values = [v for j in one.event if (v := one.values[j]) is not None]
            return math.fsum(values) / len(values) if values else -math.inf

        # sorted() is stable: of days with the same load, the more recent wins.
        return sorted(eligible, key=event_mean, reverse=True)[: self.x]


@dataclass(frozen=True, slots=True)
class _Day:
    """A history day as X of Y reads it: ``slots`` (index in the plan's span,
    instant) of the clock times that exist that day, ``event`` the positions
    in ``slots`` of the event's intervals, ``values`` the metered kW of each
    slot (None: no data)."""

    day: date
    slots: tuple[tuple[int, datetime], ...]
    event: tuple[int, ...]
    values: list[float | None]


def _by_slot(chosen: Sequence[_Day], slots: int) -> list[list[float]]:
    """The metered values of the chosen days at each clock time of the span."""
    if chosen and all(len(one.slots) == slots for one in chosen):
        # Every clock time on every day (no DST change): the days' values,
        # transposed in one go.
        columns = zip(*(one.values for one in chosen), strict=True)
        return [[v for v in column if v is not None] for column in columns]
    by_slot: list[list[float]] = [[] for _ in range(slots)]
    for one in chosen:
        for (i, _), value in zip(one.slots, one.values, strict=True):
            if value is not None:
                by_slot[i].append(value)
    return by_slot


# --- day-of adjustment -----------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Applied:
    record: Adjustment

    def apply(self, kw: float | None) -> float | None:
        a = self.record
        if kw is None or a.applied is None:
            return kw
        return kw * a.applied if a.kind is AdjustmentKind.MULTIPLICATIVE else kw + a.applied


def _adjust(
    rule: DayOfAdjustment,
    raw: Mapping[datetime, float | None],
    kw: _Metered,
    start: datetime,
    end: datetime,
) -> _Applied:
    def skipped(note: str, metered: float | None = None, base: float | None = None) -> _Applied:
        return _Applied(Adjustment(rule.kind, start, end, metered, base, None, None, False, note))

    if rule.kind is AdjustmentKind.NONE:
        return skipped("no day-of adjustment")
    slots = [s for s in _starts(start, end) if s >= start and s + INTERVAL <= end]
    pairs = [
        (m, b)
        for s, m in zip(slots, kw(slots), strict=True)
        if m is not None and (b := raw.get(s)) is not None
    ]
    if not slots or len(pairs) < MIN_COVERAGE * len(slots):
        return skipped(f"not applied: {len(pairs)} of {len(slots)} intervals metered")
    metered = math.fsum(m for m, _ in pairs) / len(pairs)
    base = math.fsum(b for _, b in pairs) / len(pairs)
    cap = math.inf if rule.cap is None else rule.cap
    if rule.kind is AdjustmentKind.MULTIPLICATIVE:
        if base <= 0:
            return skipped("not applied: the baseline is 0 kW over the window", metered, base)
        factor = metered / base
        applied = min(max(factor, 1.0 - cap), 1.0 + cap)
        return _Applied(
            Adjustment(rule.kind, start, end, metered, base, factor, applied, applied != factor)
        )
    offset = metered - base
    limit = cap * abs(base) if rule.cap is not None else math.inf  # inf * 0 would be nan
    applied = min(max(offset, -limit), limit)
    return _Applied(
        Adjustment(rule.kind, start, end, metered, base, offset, applied, applied != offset)
    )


# --- the VEN's own claim ---------------------------------------------------------


@dataclass(frozen=True, slots=True)
class VenReported:
    """The ``baselinePowerKw`` the VEN reported in each interval: a *claimed*
    line to show beside the verified one, never used to settle nor to fall
    back to. Known only for the intervals that have elapsed."""

    @property
    def name(self) -> str:
        return "ven-reported"

    def compute(
        self,
        readings: Readings,
        window: EventWindow,
        *,
        tz: tzinfo,
        event_days: Set[date] = frozenset(),
        holidays: Set[date] = frozenset(),
    ) -> Baseline:
        reported = MeterSeries.of(readings).reported_baseline_at
        points = tuple(BaselinePoint(s, reported(s)) for s in window.intervals())
        fed = sum(1 for p in points if p.kw is not None)
        if not fed:
            return unavailable(window, self.name, "the VEN reported no baselinePowerKw")
        return Baseline(self.name, self.name, points, intervals_used=fed)


# --- names and fallback ----------------------------------------------------------

CAISO_ADJUSTMENT = DayOfAdjustment(AdjustmentKind.MULTIPLICATIVE, cap=0.20)
PJM_ADJUSTMENT = DayOfAdjustment(AdjustmentKind.ADDITIVE, cap=0.20)
TEN_IN_TEN = XOfY(10, 10, Selection.RECENT, CAISO_ADJUSTMENT)
HIGH_4_OF_5 = XOfY(4, 5, Selection.HIGHEST, PJM_ADJUSTMENT)
METER_BEFORE = MeterBefore()
DEFAULT_METHOD = HIGH_4_OF_5.name

_HIGH = re.compile(r"high-(\d{1,2})-of-(\d{1,2})")
_IN = re.compile(r"(\d{1,2})-in-(\d{1,2})")
_BEFORE = re.compile(r"meter-before(?:-(\d{1,3}))?")


def method_named(name: str, adjustment: DayOfAdjustment | None = None) -> BaselineMethod:
    """``meter-before[-MINUTES]``, ``X-in-Y`` (most recent, CAISO's adjustment),
    ``high-X-of-Y`` (highest, PJM's adjustment) or ``ven-reported``.
    ``adjustment`` replaces the method's customary one (X of Y only)."""
    text = name.strip().lower()
    if m := _HIGH.fullmatch(text):
        x, y = int(m[1]), int(m[2])
        return XOfY(x, y, Selection.HIGHEST, adjustment or PJM_ADJUSTMENT)
    if m := _IN.fullmatch(text):
        return XOfY(int(m[1]), int(m[2]), Selection.RECENT, adjustment or CAISO_ADJUSTMENT)
    if m := _BEFORE.fullmatch(text):
        return MeterBefore(int(m[1]) if m[1] else 60)
    if text == "ven-reported":
        return VenReported()
    raise InvalidInput(
        "baseline", f"unknown method {name!r}: meter-before, X-in-Y, high-X-of-Y, ven-reported"
    )


def fallback_chain(
    name: str, adjustment: DayOfAdjustment | None = None
) -> tuple[BaselineMethod, ...]:
    """The asked method, then the ones tried when it lacks data: high X of Y
    -> 10-in-10 -> meter-before; X-in-Y -> meter-before; meter-before alone.
    ``ven-reported`` is a claim and falls back to nothing."""
    first = method_named(name, adjustment)
    chain: list[BaselineMethod] = [first]
    if isinstance(first, XOfY) and first.selection is Selection.HIGHEST:
        chain.append(TEN_IN_TEN)
    if isinstance(first, XOfY):
        chain.append(METER_BEFORE)
    return tuple(dict.fromkeys(chain))  # a chain without repeats, in order


def history_days(
    chain: Sequence[BaselineMethod],
    event_day: date,
    *,
    holidays: Set[date] = frozenset(),
    event_days: Set[date] = frozenset(),
    every: bool = False,
) -> list[date]:
    """The history days whose intervals the X-of-Y methods of ``chain`` read
    for an event on ``event_day`` (a local date) when each has enough data,
    newest first: the days like the event day (weekdays for a weekday event,
    and so on) that are not ``event_days``, back to the Y-th, within the
    lookback. Other days are excluded without a look at their data. A
    method that finds a day without enough looks further back than these
    (:attr:`Baseline.reached` says how far); ``every``: all the days they
    could read, to the end of the lookback. Empty for a chain without X of Y."""
    day_matching = [m for m in chain if isinstance(m, XOfY)]
    if not day_matching:
        return []
    wanted = max(m.y for m in day_matching)
    business = _is_business(event_day, holidays)
    found: list[date] = []
    for back in range(1, max(m.lookback_days for m in day_matching) + 1):
        if len(found) == wanted and not every:
            break
        day = event_day - timedelta(days=back)
        if _unlike(day, business, holidays) is None and day not in event_days:
            found.append(day)
    return found


def compute_baseline(
    methods: Sequence[BaselineMethod],
    readings: Readings,
    window: EventWindow,
    *,
    tz: tzinfo,
    event_days: Set[date] = frozenset(),
    holidays: Set[date] = frozenset(),
) -> Baseline:
    """The first method of ``methods`` that can give a baseline, with the
    reason each earlier one could not; ``unavailable`` (every point None) when
    none can."""
    asked = methods[0].name if methods else UNAVAILABLE
    series = MeterSeries.of(readings)  # indexed once, for every method
    tried: list[Fallback] = []
    reached: date | None = None
    for method in methods:
        found = method.compute(series, window, tz=tz, event_days=event_days, holidays=holidays)
        if found.reached is not None:
            reached = found.reached if reached is None else min(reached, found.reached)
        if found.available:
            return _replace_chain(found, asked, tried, reached)
        tried.append(Fallback(method.name, found.shortfall, found.days_excluded))
    reason = "; ".join(f"{f.method}: {f.reason}" for f in tried) or "no method asked"
    result = unavailable(window, UNAVAILABLE, reason)
    return _replace_chain(result, asked, tried, reached)


def unavailable(
    window: EventWindow,
    method: str,
    reason: str,
    *,
    days_excluded: tuple[ExcludedDay, ...] = (),
    period_used: tuple[datetime, datetime] | None = None,
) -> Baseline:
    """A method's answer when it lacks data: every point None, and why."""
    return Baseline(
        method=method,
        asked=method,
        points=tuple(BaselinePoint(s, None) for s in window.intervals()),
        days_excluded=days_excluded,
        period_used=period_used,
        shortfall=reason,
    )


def _replace_chain(
    found: Baseline, asked: str, tried: list[Fallback], reached: date | None
) -> Baseline:
    return replace(found, asked=asked, fallbacks=tuple(tried), reached=reached)


# --- metered kW, looked up by start ---------------------------------------------------

# Beyond this before the event start, "the interval ends before the start" is
# certain whatever the reading's time zone (a start is UTC; this only guards
# against a caller's zone-aware start, whose wall-clock arithmetic could move
# it by a DST change, or a skipped day).
_CERTAIN = timedelta(days=2)

_Metered = Callable[[Sequence[datetime]], list[float | None]]


def _metered(readings: Readings, *, before: datetime) -> _Metered:
    """For interval starts, the metered kW of each: its finite value if it
    ends by ``before`` (the event never feeds its own baseline), else None.
    Looks the starts up in the series' index rather than building a dict of
    every interval: a baseline reads a few hundred of a VEN's thousands."""
    get = MeterSeries.of(readings).used_by_start.get
    certain = before.astimezone(UTC) - _CERTAIN
    finite = math.isfinite

    def metered(starts: Sequence[datetime]) -> list[float | None]:
        return [
            kw
            if (kw := get(at)) is not None
            and finite(kw)
            and (at <= certain or at + INTERVAL <= before)
            else None
            for at in starts
        ]

    return metered


# --- what X of Y reads, per event --------------------------------------------------


_PlanDay = tuple[tuple[tuple[int, datetime], ...], tuple[datetime, ...], tuple[int, ...]]


class _Plan:
    """What an X-of-Y baseline reads for one event window in one time zone,
    whatever the VEN: the ``span`` of interval starts on the event day (the
    adjustment window to an hour after the end), and for each history day the
    instants of the same local clock times (:meth:`on`). Every VEN of an event
    reads the same instants, so the zone conversions are done once per event
    (:func:`_plan`), not per VEN and interval."""

    __slots__ = ("_clock", "_days", "_event", "_keys", "day", "span")

    def __init__(self, window: EventWindow, first: datetime, tz: tzinfo) -> None:
        self.span = _starts(first, window.baseline_end)
        self._clock = _Clock(window.start, tz)
        self.day = self._clock.day
        self._keys = [self._clock.key(s) for s in self.span]
        self._event = [_in_event(s, window) for s in self.span]
        self._days: dict[date, _PlanDay] = {}

    def on(self, day: date) -> _PlanDay:
        """Of ``day``: (index in ``span``, instant) of each clock time of the
        span that exists that day, those instants alone, and the positions of
        the event's among them."""
        found = self._days.get(day)
        if found is None:
            on = self._clock.on
            slots = tuple(
                (i, at) for i, key in enumerate(self._keys) if (at := on(day, key)) is not None
            )
            event = tuple(j for j, (i, _) in enumerate(slots) if self._event[i])
            found = self._days[day] = (slots, tuple(at for _, at in slots), event)
        return found


def _plan(window: EventWindow, first: datetime, tz: tzinfo) -> _Plan:
    """The plan of an event, shared by calls with the same window (in UTC, as
    gridcore's are) and zone; built afresh otherwise."""
    if window.start.tzinfo is UTC and window.end.tzinfo is UTC and first.tzinfo is UTC:
        try:
            return _cached_plan(window.start, window.end, window.after, first, tz)
        except TypeError:  # a zone that cannot be hashed
            pass
    return _Plan(window, first, tz)


@lru_cache(maxsize=64)
def _cached_plan(
    start: datetime, end: datetime, after: timedelta, first: datetime, tz: tzinfo
) -> _Plan:
    return _Plan(EventWindow(start, end, after), first, tz)


# --- local days and clock times --------------------------------------------------

_Key = tuple[int, time]  # (days after the event's local day, local wall-clock time)


class _Clock:
    """Matches instants of the event day to the same local clock time on
    another day: how a 23- or 25-hour DST day lines up with a normal one."""

    __slots__ = ("day", "tz")

    def __init__(self, start: datetime, tz: tzinfo) -> None:
        self.tz = tz
        self.day = start.astimezone(tz).date()

    def key(self, at: datetime) -> _Key:
        local = at.astimezone(self.tz)
        return (local.date() - self.day).days, local.time().replace(fold=0)

    def on(self, day: date, key: _Key) -> datetime | None:
        """The instant of ``key``'s clock time on ``day``; None if that time
        does not exist there (skipped by a spring-forward). A repeated time
        (autumn) is its first occurrence (fold 0)."""
        local = datetime.combine(day + timedelta(days=key[0]), key[1], tzinfo=self.tz)
        at = local.astimezone(UTC)
        if at.astimezone(self.tz).replace(tzinfo=None) != local.replace(tzinfo=None):
            return None
        return at


def _is_business(day: date, holidays: Set[date]) -> bool:
    return day.weekday() < 5 and day not in holidays


def _unlike(day: date, business: bool, holidays: Set[date]) -> Exclusion | None:
    """Why ``day`` is not like the event day, or None if it is."""
    if business:
        if day.weekday() >= 5:
            return Exclusion.WEEKEND
        return Exclusion.HOLIDAY if day in holidays else None
    return Exclusion.WEEKDAY if _is_business(day, holidays) else None


def _starts(start: datetime, end: datetime) -> list[datetime]:
    """Starts of the intervals overlapping ``[start, end)``."""
    found: list[datetime] = []
    at = interval_start(start)
    while at < end:
        found.append(at)
        at += INTERVAL
    return found


@lru_cache(maxsize=64)
def _window_starts(start: datetime, end: datetime) -> tuple[datetime, ...]:
    # Every VEN of an event, and every method, covers the same intervals.
    return tuple(_starts(start, end))


def _in_event(start: datetime, window: EventWindow) -> bool:
    return start < window.end and start + INTERVAL > window.start
