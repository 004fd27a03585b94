"""Measurement and verification (M&V) of a DR event: what the meters show
against a baseline, per VEN and for the fleet.

The rules, one for every adapter and view (docs/measurement.md):

- Per interval: shed = baseline - metered (kW). An interval without a
  baseline or without a metered value is not measured: it verifies nothing
  and is never read as 0 kW of load.
- Energy weighs each interval by the hours it overlaps the window, so an event
  that does not start or end on a 5-minute edge counts only its own part.
  ``shed_kwh`` sums the measured intervals of the event window;
  ``avg_shed_kw`` is that energy over the *elapsed* event hours: what the
  meters verified, averaged over the event (an offline VEN verifies nothing
  while offline; ``coverage`` says how much of the window was measured).
- Performance ratio: verified average kW over the VEN's allocated kW, or over
  the event's requested kW for the fleet.
- Claimed against verified: the kW a VEN said it shed in its ACK, beside the
  verified average; and the VEN's own ``baselinePowerKw`` as a separate,
  labelled *claimed* line with the shed it implies (claimed baseline -
  metered).
- Rebound (snapback): in the hour after the end, the energy of the metered
  load above the baseline (intervals below it add nothing) and the largest
  excess in kW.
- Live progress: ``until`` before the end measures only what has elapsed.
  The use case passes the meter-before chain while the event runs (it needs
  no history), the programme's method once it has ended.

kW and kWh are floats, never rounded here: round for display only.
"""

from __future__ import annotations

import math
import statistics
from bisect import bisect_right
from collections.abc import Iterable, Sequence, Set
from dataclasses import dataclass
from datetime import date, datetime, timedelta, tzinfo
from functools import lru_cache

from gridcore.baselines import (
    DEFAULT_METHOD,
    Baseline,
    BaselineMethod,
    EventWindow,
    VenReported,
    compute_baseline,
    fallback_chain,
)
from gridcore.intervals import INTERVAL, MeterSeries, Readings

_HOUR = timedelta(hours=1)
DEFAULT_CHAIN = fallback_chain(DEFAULT_METHOD)

# --- inputs ----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class VenMeterData:
    """What measurement needs of one VEN: its intervals (history and the event
    day through the hour after the end; gaps are no data), the local dates of
    its earlier events (excluded from its baseline days), the kW allocated to
    it, and the kW it claimed in its ACK (None if it did not answer)."""

    ven_id: str
    readings: Readings
    event_days: frozenset[date] = frozenset()
    allocated_kw: float | None = None
    claimed_kw: float | None = None


# --- results ---------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class MeterPoint:
    """One interval of a VEN's event. ``event_hours``/``after_hours``: how much
    of the interval falls in the elapsed event window and in the elapsed hour
    after it (the weights of its energy). ``shed_kw`` = ``baseline_kw`` -
    ``metered_kw`` when both are known. ``claimed_*``: the VEN's own
    baselinePowerKw and the shed it implies against the meter."""

    start: datetime
    event_hours: float
    after_hours: float
    baseline_kw: float | None
    metered_kw: float | None
    shed_kw: float | None
    claimed_baseline_kw: float | None = None
    claimed_shed_kw: float | None = None


@dataclass(frozen=True, slots=True)
class Rebound:
    """The hour after the end (as far as it has elapsed): ``kwh`` of metered
    load above the baseline, ``peak_kw`` the largest excess (0 when the load
    stayed at or below it), over ``intervals_measured`` of
    ``intervals_expected`` intervals."""

    kwh: float
    peak_kw: float
    intervals_measured: int
    intervals_expected: int


@dataclass(frozen=True, slots=True)
class DataQuality:
    """Of the elapsed event window: intervals with a metered value, samples
    received against those expected (``samples_expected`` None when the VEN
    has no history to calibrate its rate from and none was given; the fleet
    counts samples of the VENs with a known rate only), the
    intervals without data (``offline``), and the history days the baseline
    averaged."""

    intervals_expected: int
    intervals_present: int
    samples_expected: float | None
    samples_present: int
    offline: tuple[datetime, ...]
    baseline_days: int

    @property
    def interval_share(self) -> float | None:
        return interval_share(self.intervals_present, self.intervals_expected)

    @property
    def sample_share(self) -> float | None:
        return sample_share(self.samples_present, self.samples_expected)


def interval_share(present: int, expected: int) -> float | None:
    return present / expected if expected else None


def sample_share(present: int, expected: float | None) -> float | None:
    """Received over expected, at most 1 (a VEN sending faster than its usual
    rate is not more than complete); None when no rate is known."""
    if not expected:
        return None
    return min(1.0, present / expected)


@dataclass(frozen=True, slots=True)
class VenMeasurement:
    """One VEN's verified performance in one event, up to ``until``.

    ``elapsed_hours``: of the event window; ``measured_hours``: of those, the
    ones with both baseline and metered values (``coverage`` = their share).
    ``shed_kwh`` and ``avg_shed_kw`` (= shed_kwh / elapsed_hours) are None when
    nothing was measured. ``claimed_kw``: from the ACK; ``claimed_shed_kwh`` /
    ``claimed_avg_shed_kw``: from the VEN's own baseline line."""

    ven_id: str
    baseline: Baseline
    claimed_line: Baseline
    series: tuple[MeterPoint, ...]
    elapsed_hours: float
    measured_hours: float
    shed_kwh: float | None
    avg_shed_kw: float | None
    allocated_kw: float | None
    performance_ratio: float | None
    claimed_kw: float | None
    claimed_shed_kwh: float | None
    claimed_avg_shed_kw: float | None
    quality: DataQuality
    rebound: Rebound | None

    @property
    def coverage(self) -> float | None:
        return self.measured_hours / self.elapsed_hours if self.elapsed_hours else None

    @property
    def offline(self) -> bool:
        """Some interval of the elapsed event window has no metered value."""
        return bool(self.quality.offline)


@dataclass(frozen=True, slots=True)
class FleetPoint:
    """One interval of the fleet: sums over the ``vens`` measured in it (both
    baseline and metered known), so ``shed_kw`` is their shed exactly."""

    start: datetime
    event_hours: float
    after_hours: float
    baseline_kw: float
    metered_kw: float
    shed_kw: float
    vens: int


@dataclass(frozen=True, slots=True)
class FleetMeasurement:
    """The event's verified performance across its VENs.

    ``avg_shed_kw`` is the sum of the VENs' averages (= shed_kwh over the
    elapsed event hours); ``performance_ratio`` is it over ``requested_kw``.
    ``claimed_kw``: the sum of the ACK claims (None if none claimed).
    Rebound is of the fleet series (what the grid sees), so it is not the sum
    of the VENs' rebounds: one VEN's excess can meet another's continued shed.
    """

    series: tuple[FleetPoint, ...]
    elapsed_hours: float
    shed_kwh: float
    avg_shed_kw: float | None
    requested_kw: float | None
    performance_ratio: float | None
    claimed_kw: float | None
    claimed_avg_shed_kw: float | None
    vens: int
    vens_offline: int
    vens_without_baseline: int
    intervals_expected: int
    intervals_present: int
    samples_expected: float | None
    samples_present: int
    rebound: Rebound | None


@dataclass(frozen=True, slots=True)
class EventMeasurement:
    window: EventWindow
    until: datetime
    vens: dict[str, VenMeasurement]
    fleet: FleetMeasurement


# --- per VEN ---------------------------------------------------------------------


def measure_ven(
    data: VenMeterData,
    window: EventWindow,
    *,
    tz: tzinfo,
    methods: Sequence[BaselineMethod] = DEFAULT_CHAIN,
    holidays: Set[date] = frozenset(),
    until: datetime | None = None,
    samples_per_interval: float | None = None,
) -> VenMeasurement:
    """Measure one VEN over ``window`` as far as ``until`` (default: the end
    of the hour after the event). ``methods``: the baseline chain, first
    choice first. ``samples_per_interval``: the samples expected in a full
    interval; None calibrates it from the VEN's own history (the median
    sample count of its intervals before the start)."""
    until = window.baseline_end if until is None else until
    readings = MeterSeries.of(data.readings)  # indexed once, for every method
    baseline = compute_baseline(
        methods, readings, window, tz=tz, event_days=data.event_days, holidays=holidays
    )
    claimed_line = VenReported().compute(readings, window, tz=tz)
    used = readings.used_by_start
    base = baseline.kw_by_interval()
    claimed = claimed_line.kw_by_interval()
    series = []
    for start, event_hours, after_hours, _ in _timeline(window, until):
        metered = _finite(used.get(start))
        b, c = base.get(start), claimed.get(start)
        series.append(
            MeterPoint(
                start=start,
                event_hours=event_hours,
                after_hours=after_hours,
                baseline_kw=b,
                metered_kw=metered,
                shed_kw=_difference(b, metered),
                claimed_baseline_kw=c,
                claimed_shed_kw=_difference(c, metered),
            )
        )
    elapsed = _span_hours(window.start, min(window.end, until))
    measured = [p for p in series if p.event_hours and p.shed_kw is not None]
    measured_hours = math.fsum(p.event_hours for p in measured)
    shed_kwh = math.fsum(p.event_hours * p.shed_kw for p in measured if p.shed_kw is not None)
    avg = shed_kwh / elapsed if measured and elapsed else None
    claimed_points = [p for p in series if p.event_hours and p.claimed_shed_kw is not None]
    claimed_kwh = math.fsum(
        p.event_hours * p.claimed_shed_kw for p in claimed_points if p.claimed_shed_kw is not None
    )
    rate = samples_per_interval
    if rate is None:
        rate = _usual_samples(readings, window.start)
    return VenMeasurement(
        ven_id=data.ven_id,
        baseline=baseline,
        claimed_line=claimed_line,
        series=tuple(series),
        elapsed_hours=elapsed,
        measured_hours=measured_hours,
        shed_kwh=shed_kwh if measured else None,
        avg_shed_kw=avg,
        allocated_kw=data.allocated_kw,
        performance_ratio=_ratio(avg, data.allocated_kw),
        claimed_kw=data.claimed_kw,
        claimed_shed_kwh=claimed_kwh if claimed_points else None,
        claimed_avg_shed_kw=claimed_kwh / elapsed if claimed_points and elapsed else None,
        quality=_quality(series, window, readings, rate, until, len(baseline.days_used)),
        rebound=_rebound([(p.after_hours, p.shed_kw) for p in series if p.after_hours]),
    )


def _quality(
    series: Sequence[MeterPoint],
    window_of: EventWindow,
    readings: MeterSeries,
    rate: float | None,
    until: datetime,
    baseline_days: int,
) -> DataQuality:
    # The interval under way counts once it has data: before that, its VEN is
    # not late, its roll-up just has not happened yet.
    window = [
        p
        for p in series
        if p.event_hours and (p.start + INTERVAL <= until or p.metered_kw is not None)
    ]
    samples = 0
    expected = 0.0
    elapsed = {start: share for start, _, _, share in _timeline(window_of, until)}
    for p in window:
        samples += readings.samples_at(p.start)
        expected += elapsed[p.start]
    return DataQuality(
        intervals_expected=len(window),
        intervals_present=sum(1 for p in window if p.metered_kw is not None),
        samples_expected=expected * rate if rate is not None else None,
        samples_present=samples,
        offline=tuple(p.start for p in window if p.metered_kw is None),
        baseline_days=baseline_days,
    )


# --- the event and its fleet -----------------------------------------------------


def measure_event(
    vens: Iterable[VenMeterData],
    window: EventWindow,
    *,
    tz: tzinfo,
    requested_kw: float | None,
    methods: Sequence[BaselineMethod] = DEFAULT_CHAIN,
    holidays: Set[date] = frozenset(),
    until: datetime | None = None,
) -> EventMeasurement:
    """Every VEN of the event, and the fleet they add up to."""
    until = window.baseline_end if until is None else until
    measured = {
        data.ven_id: measure_ven(
            data, window, tz=tz, methods=methods, holidays=holidays, until=until
        )
        for data in vens
    }
    fleet = fleet_measurement(measured.values(), requested_kw=requested_kw)
    return EventMeasurement(window, until, measured, fleet)


def fleet_measurement(
    vens: Iterable[VenMeasurement], *, requested_kw: float | None
) -> FleetMeasurement:
    """The fleet from its VENs' measurements (all of one event, to one
    ``until``): per interval, the sums over the VENs measured in it."""
    vens = list(vens)
    points: dict[datetime, list[MeterPoint]] = {}
    weights: dict[datetime, tuple[float, float]] = {}
    for ven in vens:
        for p in ven.series:
            weights[p.start] = (p.event_hours, p.after_hours)
            if p.shed_kw is not None:
                points.setdefault(p.start, []).append(p)
    series = []
    for start in sorted(weights):
        found = points.get(start, [])
        series.append(
            FleetPoint(
                start=start,
                event_hours=weights[start][0],
                after_hours=weights[start][1],
                baseline_kw=math.fsum(p.baseline_kw or 0.0 for p in found),
                metered_kw=math.fsum(p.metered_kw or 0.0 for p in found),
                shed_kw=math.fsum(p.shed_kw or 0.0 for p in found),
                vens=len(found),
            )
        )
    averages = [v.avg_shed_kw for v in vens if v.avg_shed_kw is not None]
    avg = math.fsum(averages) if averages else None
    claims = [v.claimed_kw for v in vens if v.claimed_kw is not None]
    claimed_lines = [v.claimed_avg_shed_kw for v in vens if v.claimed_avg_shed_kw is not None]
    # Samples only of the VENs whose rate is known: a new VEN has no history.
    rated = [v.quality for v in vens if v.quality.samples_expected is not None]
    after = [(p.after_hours, p.shed_kw if p.vens else None) for p in series if p.after_hours]
    return FleetMeasurement(
        series=tuple(series),
        elapsed_hours=max((v.elapsed_hours for v in vens), default=0.0),
        shed_kwh=math.fsum(v.shed_kwh for v in vens if v.shed_kwh is not None),
        avg_shed_kw=avg,
        requested_kw=requested_kw,
        performance_ratio=_ratio(avg, requested_kw),
        claimed_kw=math.fsum(claims) if claims else None,
        claimed_avg_shed_kw=math.fsum(claimed_lines) if claimed_lines else None,
        vens=len(vens),
        vens_offline=sum(1 for v in vens if v.offline),
        vens_without_baseline=sum(1 for v in vens if not v.baseline.available),
        intervals_expected=sum(v.quality.intervals_expected for v in vens),
        intervals_present=sum(v.quality.intervals_present for v in vens),
        samples_expected=math.fsum(q.samples_expected or 0.0 for q in rated) if rated else None,
        samples_present=sum(q.samples_present for q in rated),
        rebound=_rebound(after),
    )


# --- rules shared by VEN and fleet -----------------------------------------------


def _rebound(after: Sequence[tuple[float, float | None]]) -> Rebound | None:
    """From (hours, shed kW) of the elapsed intervals after the end: the load
    above the baseline is the negative shed."""
    excess = [-shed for _, shed in after if shed is not None]
    if not excess:
        return None  # nothing measured after the end (yet): no figure, not 0
    kwh = math.fsum(hours * max(0.0, -shed) for hours, shed in after if shed is not None)
    return Rebound(
        kwh=kwh,
        peak_kw=max(0.0, *excess) if excess else 0.0,
        intervals_measured=len(excess),
        intervals_expected=len(after),
    )


_Slot = tuple[datetime, float, float, float]


@lru_cache(maxsize=64)
def _timeline(window: EventWindow, until: datetime) -> tuple[_Slot, ...]:
    """Each interval of ``window`` that has begun by ``until``: its start, its
    hours in the event and in the hour after (as far as ``until``), and the
    share of it elapsed (the interval under way is expected to hold only
    that part of its samples). The same for every VEN of an event."""
    return tuple(
        (
            start,
            _hours(start, window.start, min(window.end, until)),
            _hours(start, window.end, min(window.baseline_end, until)),
            _span_hours(start, min(start + INTERVAL, until)) / _span_hours(start, start + INTERVAL),
        )
        for start in window.intervals()
        if start < until
    )


def _hours(start: datetime, lower: datetime, upper: datetime) -> float:
    """Hours of the interval at ``start`` inside ``[lower, upper)``."""
    return _span_hours(max(start, lower), min(start + INTERVAL, upper))


def _span_hours(start: datetime, end: datetime) -> float:
    return max(0.0, (end - start) / _HOUR)


def _difference(baseline: float | None, metered: float | None) -> float | None:
    return None if baseline is None or metered is None else baseline - metered


def _ratio(kw: float | None, of: float | None) -> float | None:
    return kw / of if kw is not None and of is not None and of > 0 else None


def _finite(kw: float | None) -> float | None:
    return kw if kw is not None and math.isfinite(kw) else None


def _usual_samples(readings: MeterSeries, before: datetime) -> float | None:
    """The VEN's own rate: the median sample count of its intervals before
    ``before`` (its reporting period differs by VEN and firmware)."""
    # The intervals that end by ``before``: a prefix, as starts are in order.
    ended = bisect_right(readings.starts, before - INTERVAL)
    counts = [n for n in readings.samples[:ended] if n > 0]
    return float(statistics.median(counts)) if counts else None
