"""Interval data: a VEN's telemetry rolled up into fixed 5-minute intervals.

Measurement (baselines, metered shed) works on interval series, as meters and
settlement do, never on the raw 5-second stream: ten days of a 10,000-VEN
fleet are 29 million intervals, not 1.7 billion samples.

An interval is the half-open span ``[start, start + INTERVAL)``, aligned to
the Unix epoch in UTC (so every adapter and every VEN agree on the edges).
It keeps sums and counts, not means, so that intervals filled from several
batches, or from telemetry that arrives late (a VEN sending its buffer after
an outage), merge exactly: :meth:`IntervalTotals.merge`.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, NamedTuple

from gridcore.errors import InvalidInput

INTERVAL = timedelta(minutes=5)
_INTERVAL_SECONDS = int(INTERVAL.total_seconds())
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


# What one read of intervals may span: a baseline looks back 45 days at most
# (CAISO's 10-in-10 for a VEN with many event days), plus the event.
MAX_INTERVAL_SPAN = timedelta(days=62)
# VENs per read: a 10,000-VEN fleet is read in slices, each bounded.
MAX_INTERVAL_VENS = 1000
# Spans per read (one a day of the longest span, and some).
MAX_INTERVAL_SPANS = 100


def check_interval_range(
    start: datetime, end: datetime, spans: Sequence[tuple[datetime, datetime]] | None = None
) -> None:
    """Refuse a read of intervals no store should answer in one go."""
    if end <= start:
        raise InvalidInput("end", "must be after start")
    if end - start > MAX_INTERVAL_SPAN:
        raise InvalidInput("end", f"at most {MAX_INTERVAL_SPAN.days} days after start")
    if spans is not None and len(spans) > MAX_INTERVAL_SPANS:
        raise InvalidInput("spans", f"at most {MAX_INTERVAL_SPANS} in one read")


def spans_range(spans: Sequence[tuple[datetime, datetime]]) -> tuple[datetime, datetime]:
    """From the first start to the last end of ``spans`` (in time order), once
    :func:`check_interval_range` allows the read."""
    if not spans:
        raise InvalidInput("spans", "at least one span to read")
    check_interval_range(spans[0][0], spans[-1][1], spans)
    return spans[0][0], spans[-1][1]


def in_spans(at: datetime, spans: Sequence[tuple[datetime, datetime]] | None) -> bool:
    return spans is None or any(lo <= at < hi for lo, hi in spans)


def interval_start(at: datetime) -> datetime:
    """The start of the interval holding ``at`` (UTC, a multiple of 5 minutes)."""
    seconds = math.floor((at - _EPOCH).total_seconds())
    return _EPOCH + timedelta(seconds=seconds - seconds % _INTERVAL_SECONDS)


@dataclass(frozen=True, slots=True)
class IntervalTotals:
    """What the samples of one VEN in one interval add up to. A field's sum and
    count cover the samples that carried it (a sample without ``usedPowerKw``
    adds nothing to ``used``); min and max are of those samples too."""

    samples: int = 0
    used_sum: float = 0.0
    used_count: int = 0
    used_min: float | None = None
    used_max: float | None = None
    shed_sum: float = 0.0
    shed_count: int = 0
    shed_min: float | None = None
    shed_max: float | None = None
    baseline_sum: float = 0.0  # the VEN's own baselinePowerKw: what it claims
    baseline_count: int = 0

    @classmethod
    def of(
        cls, used_kw: float | None, shed_kw: float | None, baseline_kw: float | None
    ) -> IntervalTotals:
        """One sample's contribution."""
        used = _finite(used_kw)
        shed = _finite(shed_kw)
        baseline = _finite(baseline_kw)
        return cls(
            samples=1,
            used_sum=used or 0.0,
            used_count=int(used is not None),
            used_min=used,
            used_max=used,
            shed_sum=shed or 0.0,
            shed_count=int(shed is not None),
            shed_min=shed,
            shed_max=shed,
            baseline_sum=baseline or 0.0,
            baseline_count=int(baseline is not None),
        )

    def merge(self, other: IntervalTotals) -> IntervalTotals:
        return IntervalTotals(
            samples=self.samples + other.samples,
            used_sum=self.used_sum + other.used_sum,
            used_count=self.used_count + other.used_count,
            used_min=_lesser(self.used_min, other.used_min),
            used_max=_greater(self.used_max, other.used_max),
            shed_sum=self.shed_sum + other.shed_sum,
            shed_count=self.shed_count + other.shed_count,
            shed_min=_lesser(self.shed_min, other.shed_min),
            shed_max=_greater(self.shed_max, other.shed_max),
            baseline_sum=self.baseline_sum + other.baseline_sum,
            baseline_count=self.baseline_count + other.baseline_count,
        )


class IntervalReading(NamedTuple):
    """One VEN's interval as measurement reads it: means over its samples.
    A named tuple: measuring an event over a fleet reads millions of them,
    and a tuple is made fastest (five times a frozen dataclass)."""

    start: datetime
    samples: int
    used_kw: float | None  # mean usedPowerKw; None: no sample carried it
    used_min_kw: float | None = None
    used_max_kw: float | None = None
    shed_kw: float | None = None  # mean shedPowerKw the VEN reported
    reported_baseline_kw: float | None = None  # mean baselinePowerKw the VEN reported

    @classmethod
    def of(cls, start: datetime, totals: IntervalTotals) -> IntervalReading:
        return cls(
            start=start,
            samples=totals.samples,
            used_kw=_mean(totals.used_sum, totals.used_count),
            used_min_kw=totals.used_min,
            used_max_kw=totals.used_max,
            shed_kw=_mean(totals.shed_sum, totals.shed_count),
            reported_baseline_kw=_mean(totals.baseline_sum, totals.baseline_count),
        )


class MeterSeries:
    """What measurement reads of one VEN's intervals, as columns in time
    order (starts ascending, each once): each interval's start, sample
    count, mean used kW and mean
    VEN-reported baseline kW. A store fills it straight from the arrays it
    reads (ten days of a 10,000-VEN fleet are millions of intervals: an
    object each would cost more than measuring them); :meth:`of` makes one
    from readings. Indexed by start once: every baseline method and the
    measurement of the VEN look intervals up by start.

    One interval per start: of readings that share a start, the last gives
    the sample count and the reported baseline, and the last present used kW
    the metered value."""

    __slots__ = (
        "_position",
        "reported_baseline_kw",
        "samples",
        "starts",
        "used_by_start",
        "used_kw",
    )

    def __init__(
        self,
        starts: list[datetime],
        samples: list[int],
        used_kw: list[float | None],
        reported_baseline_kw: list[float | None],
        *,
        index: dict[datetime, int] | None = None,
    ) -> None:
        """``index``: :meth:`index_of` these ``starts``, when another series
        has the same starts (a store reading a fleet shares one)."""
        if not len(starts) == len(samples) == len(used_kw) == len(reported_baseline_kw):
            raise ValueError("a MeterSeries needs columns of one length")
        self.starts = starts
        self.samples = samples
        self.used_kw = used_kw
        self.reported_baseline_kw = reported_baseline_kw
        self.used_by_start: dict[datetime, float | None] = dict(zip(starts, used_kw, strict=True))
        self._position = self.index_of(starts) if index is None else index

    @staticmethod
    def index_of(starts: Sequence[datetime]) -> dict[datetime, int]:
        return dict(zip(starts, range(len(starts)), strict=True))

    @classmethod
    def of(cls, readings: Readings) -> MeterSeries:
        if isinstance(readings, MeterSeries):
            return readings
        merged: dict[datetime, list[Any]] = {}
        for r in readings:
            used = _finite(r.used_kw)
            held = merged.get(r.start)
            if held is None:
                merged[r.start] = [r.samples, used, r.reported_baseline_kw]
            else:
                held[0], held[2] = r.samples, r.reported_baseline_kw
                if used is not None:
                    held[1] = used
        starts = sorted(merged)
        columns = list(zip(*(merged[s] for s in starts), strict=True)) or [(), (), ()]
        samples, used_kw, reported = (list(c) for c in columns)
        return cls(starts, samples, used_kw, reported)

    @classmethod
    def empty(cls) -> MeterSeries:
        return cls([], [], [], [])

    def __len__(self) -> int:
        return len(self.starts)

    def samples_at(self, start: datetime) -> int:
        i = self._position.get(start)
        return 0 if i is None else self.samples[i]

    def reported_baseline_at(self, start: datetime) -> float | None:
        i = self._position.get(start)
        return None if i is None else _finite(self.reported_baseline_kw[i])


# What measurement takes for a VEN's intervals: readings, or their columns.
Readings = Sequence[IntervalReading] | MeterSeries


def roll_up(
    samples: Iterable[tuple[datetime, float | None, float | None, float | None]],
) -> dict[datetime, IntervalTotals]:
    """``(timestamp, used kW, shed kW, baseline kW)`` samples of one VEN, per
    interval start. The rule every store follows when it keeps intervals."""
    totals: dict[datetime, IntervalTotals] = {}
    for at, used, shed, baseline in samples:
        start = interval_start(at)
        one = IntervalTotals.of(used, shed, baseline)
        held = totals.get(start)
        totals[start] = one if held is None else held.merge(one)
    return totals


def _finite(value: float | None) -> float | None:
    return value if value is not None and math.isfinite(value) else None


def _mean(total: float, count: int) -> float | None:
    return total / count if count else None


def _lesser(a: float | None, b: float | None) -> float | None:
    return b if a is None else a if b is None else min(a, b)


def _greater(a: float | None, b: float | None) -> float | None:
    return b if a is None else a if b is None else max(a, b)
