"""Where a history read is answered from, and the event marks its roll-up keeps.

History (network, one VEN, one load) is a mean kW per VEN per bucket, summed
over VENs (:class:`~gridcore.telemetry.HistoryPoint`). Two stores hold what it
needs:

- the raw samples (``ven_telemetry``, ``ven_load_samples``): every reading,
  every load, but kept only ``raw_since`` onwards (retention, default 35 days);
- the 5-minute intervals (:mod:`gridcore.intervals`) with their event marks
  (:class:`IntervalEvents`): kept for years, one row per VEN per 5 minutes
  instead of sixty, but per VEN only, not per load.

- each VEN's days (:class:`DayTotals`, UTC days): the same sums per day, so
  a year of daily points reads 365 rows a VEN instead of 105,120.

A bucket whose width is a whole number of 5-minute intervals is a union of
whole intervals (both are aligned to the Unix epoch), so the intervals give
it exactly what the raw samples give: each VEN's sum of kW over its samples
and their count. Such reads take the intervals, whatever the range. (Where
``start`` or ``end`` falls inside an interval, that interval counts whole:
the bucket holding it is a mean over up to 5 minutes more than the range.) Finer or
odd widths (``30s``, ``7m``) and per-load history need the raw samples, so
they can reach back only as far as those are kept; a read further back is
refused, naming what to change, rather than answered with silently missing
buckets. Buckets of whole days read the whole days of the range from the
days, and the intervals of its partial days at either end
(:func:`whole_days`).

The fleet's history in 5-minute or daily points is a sum over every VEN:
a day of 5-minute points reads 288 intervals a VEN, a year of daily points
365 days a VEN, too many at 1,000 VENs and more. So the storage keeps the
fleet's own roll-ups (:class:`FleetTotals`), one row per closed interval and
per closed UTC day, made by the worker's periodic maintenance, not at ingest
(a row every ingest transaction of every worker would write). An interval
closes :data:`ROLLUP_AFTER` after it ends; the maintenance rolls up what has
closed, up to its ``rolled_through`` (:func:`rollup_horizon`), and the open
tail is read from each VEN's intervals and days as before (:func:`fleet_plan`).
Telemetry arriving for a bucket already rolled up (a VEN replaying its buffer
after an outage) does not change the roll-up: ingest marks the bucket's
interval instead (:func:`late_intervals`), a read takes a marked bucket from
the VENs' rows, and the next maintenance pass makes the roll-up again and
clears the mark. The answer is the same as without roll-ups, always.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import StrEnum

from gridcore.errors import InvalidInput
from gridcore.intervals import INTERVAL, IntervalTotals, interval_start

DAY = timedelta(days=1)
# An interval's fleet roll-up is made once it ended this long ago: telemetry
# later than that is rare (and marks what it changes, late_intervals).
ROLLUP_AFTER = timedelta(minutes=10)
# A read that would take more separate spans from the VENs' rows (marked
# buckets scattered over the range) than this reads all of it from them.
MAX_LIVE_SPANS = 32


class HistorySource(StrEnum):
    RAW = "raw"  # the samples themselves: any width, per load too; only since raw_since
    INTERVALS = "intervals"  # the 5-minute roll-up: widths of whole intervals, any range
    # the fleet's roll-ups of closed intervals and days, the rest from INTERVALS:
    # the fleet (no VEN, no load) in 5-minute or daily points
    FLEET = "fleet"


def needs_raw(width: timedelta, *, per_load: bool) -> bool:
    """Whether only the raw samples can answer buckets of ``width``."""
    return per_load or width % INTERVAL != timedelta(0)


def history_source(
    start: datetime,
    end: datetime,
    width: timedelta,
    *,
    per_load: bool = False,
    raw_since: datetime | None = None,
    fleet_wide: bool = False,
) -> HistorySource:
    """The store that answers [start, end) in buckets of ``width``.

    ``raw_since``: the oldest instant raw samples are kept from (None: kept
    forever). ``fleet_wide``: the read is the fleet's (no VEN, no load). A
    read that needs raw samples from before it is refused:
    its older buckets would be empty not because nothing happened but
    because the samples were dropped."""
    if not needs_raw(width, per_load=per_load):
        return (
            HistorySource.FLEET
            if fleet_wide and width in (INTERVAL, DAY)
            else (HistorySource.INTERVALS)
        )
    if raw_since is not None and start < raw_since and end > start:
        if per_load:
            raise InvalidInput(
                "start",
                f"per-load history comes from raw samples, kept since {raw_since.isoformat()}; "
                "older history has no per-load detail (the VEN's own history has it)",
            )
        raise InvalidInput(
            "granularity",
            f"raw samples are kept since {raw_since.isoformat()}; before that, history is kept "
            f"in {int(INTERVAL.total_seconds() // 60)}-minute intervals: choose a granularity "
            "that is a multiple of 5m, or a later start",
        )
    return HistorySource.RAW


@dataclass(frozen=True, slots=True)
class IntervalEvents:
    """What a VEN's samples in one interval said about DR events: the greatest
    ``eventId`` reported and the sum of ``requestedReductionKw`` (a sample
    without it adds 0, as history reads it). Kept only for intervals where some
    sample carried either, so it costs nothing outside events. Divided by the
    interval's sample count it is the VEN's mean requested kW."""

    event_id: str | None = None
    requested_sum: float = 0.0

    @classmethod
    def of(cls, event_id: str | None, requested_kw: float | None) -> IntervalEvents | None:
        """One sample's contribution; None when it carries neither."""
        if event_id is None and requested_kw is None:
            return None
        return cls(event_id, requested_kw or 0.0)

    def merge(self, other: IntervalEvents) -> IntervalEvents:
        ids = [e for e in (self.event_id, other.event_id) if e is not None]
        return IntervalEvents(max(ids) if ids else None, self.requested_sum + other.requested_sum)


@dataclass(frozen=True, slots=True)
class DayTotals:
    """One VEN's samples in one UTC day, as history reads them: the sample
    count and the sums of used, shed (a sample without one adds 0) and
    requested kW, and the greatest eventId. The sum of its intervals."""

    samples: int = 0
    used_sum: float = 0.0
    shed_sum: float = 0.0
    requested_sum: float = 0.0
    event_id: str | None = None

    @classmethod
    def of(cls, totals: IntervalTotals, events: IntervalEvents | None = None) -> DayTotals:
        events = events or IntervalEvents()
        return cls(
            totals.samples, totals.used_sum, totals.shed_sum, events.requested_sum, events.event_id
        )

    def merge(self, other: DayTotals) -> DayTotals:
        ids = [e for e in (self.event_id, other.event_id) if e is not None]
        return DayTotals(
            self.samples + other.samples,
            self.used_sum + other.used_sum,
            self.shed_sum + other.shed_sum,
            self.requested_sum + other.requested_sum,
            max(ids) if ids else None,
        )


def day_of(at: datetime) -> datetime:
    """The UTC midnight starting ``at``'s day."""
    return at.astimezone(UTC).replace(hour=0, minute=0, second=0, microsecond=0)


def whole_days(
    start: datetime, end: datetime, width: timedelta
) -> tuple[datetime, datetime] | None:
    """For buckets of whole days, the whole UTC days inside [start, end) that
    the days answer (the rest, at either end, the intervals); else None."""
    if width % DAY != timedelta(0):
        return None
    first = day_of(start) if start == day_of(start) else day_of(start) + DAY
    last = day_of(end)
    return (first, last) if first < last else None


def rollup_horizon(now: datetime, after: timedelta = ROLLUP_AFTER) -> datetime:
    """How far the fleet's roll-ups may reach at ``now``: the start of the
    first interval not closed yet (every interval before it ended at least
    ``after`` ago). Days roll up to the UTC midnight at or before it."""
    return interval_start(now - after)


def late_intervals(starts: Iterable[datetime], marked_through: datetime | None) -> set[datetime]:
    """Of the intervals (starts) telemetry is added to, those whose fleet
    roll-up may be made already: before ``marked_through`` (None: none is)."""
    if marked_through is None:
        return set()
    return {s for s in starts if s < marked_through}


def rollup_spans(rolled_through: datetime, horizon: datetime) -> list[tuple[datetime, datetime]]:
    """[rolled_through, horizon) in spans of at most a day, each ending on a
    UTC midnight but the last: one maintenance transaction each, so that a
    first roll-up of a year commits as it goes."""
    spans = []
    at = rolled_through
    while at < horizon:
        nxt = min(day_of(at) + DAY, horizon)
        spans.append((at, nxt))
        at = nxt
    return spans


def closed_days(lo: datetime, hi: datetime) -> tuple[datetime, datetime]:
    """The UTC days whose roll-up a maintenance step that rolls the intervals
    [lo, hi) makes: those that end after ``lo`` and at or before ``hi``
    (a day is rolled up once every interval of it is)."""
    return day_of(lo), day_of(hi)


@dataclass(frozen=True, slots=True)
class FleetTotals:
    """The fleet in one closed bucket (a 5-minute interval or a UTC day), as
    history reads it: over the VENs with samples in it, the sum of each VEN's
    mean used, shed and requested kW, and the greatest eventId; ``vens`` and
    ``samples`` say what it was made of."""

    vens: int = 0
    samples: int = 0
    used_kw: float = 0.0
    shed_kw: float = 0.0
    requested_kw: float = 0.0
    event_id: str | None = None

    def add(self, day: DayTotals) -> FleetTotals:
        """With one more VEN's totals in the bucket (an interval's as a
        :class:`DayTotals` of it)."""
        n = day.samples
        ids = [e for e in (self.event_id, day.event_id) if e is not None]
        return FleetTotals(
            self.vens + 1,
            self.samples + n,
            self.used_kw + day.used_sum / n,
            self.shed_kw + day.shed_sum / n,
            self.requested_kw + day.requested_sum / n,
            max(ids) if ids else None,
        )


@dataclass(frozen=True, slots=True)
class FleetPlan:
    """How a fleet read is answered: the buckets of ``rolled`` (``[lo, hi)``)
    from the fleet's roll-ups, but for ``skip`` (marked by late telemetry);
    the ``live`` spans (the open tail, the skipped buckets, a partial day at
    either end) from the VENs' intervals and days, as a read per VEN is."""

    rolled: tuple[datetime, datetime]
    skip: tuple[datetime, ...]
    live: tuple[tuple[datetime, datetime], ...]


def fleet_plan(
    start: datetime,
    end: datetime,
    width: timedelta,
    rolled_through: datetime | None,
    marked: Iterable[datetime] = (),
) -> FleetPlan | None:
    """The plan for the fleet's buckets of ``width`` over [start, end), given
    the roll-ups made up to ``rolled_through`` (None: none yet) and the
    intervals ``marked`` by late telemetry; None when the roll-ups answer no
    bucket of it (read it all per VEN)."""
    if rolled_through is None or end <= start:
        return None
    if width == INTERVAL:
        lo = interval_start(start)  # the interval holding start counts whole
        hi = min(end, rolled_through)
        first = lo
        skip = {m for m in marked if lo <= m < hi}
    elif width == DAY:
        days = whole_days(start, end, DAY)
        if days is None:
            return None
        lo, hi = days[0], min(days[1], day_of(rolled_through))
        first = start
        skip = {day_of(m) for m in marked if lo <= m < hi}
    else:
        return None
    if lo >= hi:
        return None
    spans = ([(first, lo)] if first < lo else []) + [(b, min(b + width, end)) for b in sorted(skip)]
    if hi < end:
        spans.append((hi, end))
    live: list[tuple[datetime, datetime]] = []
    for a, b in spans:
        if live and live[-1][1] == a:
            live[-1] = (live[-1][0], b)
        else:
            live.append((a, b))
    if len(live) > MAX_LIVE_SPANS:
        return None
    return FleetPlan((lo, hi), tuple(sorted(skip)), tuple(live))
