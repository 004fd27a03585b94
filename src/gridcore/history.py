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
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import StrEnum

from gridcore.errors import InvalidInput
from gridcore.intervals import INTERVAL, IntervalTotals

DAY = timedelta(days=1)


class HistorySource(StrEnum):
    RAW = "raw"  # the samples themselves: any width, per load too; only since raw_since
    INTERVALS = "intervals"  # the 5-minute roll-up: widths of whole intervals, any range


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
) -> HistorySource:
    """The store that answers [start, end) in buckets of ``width``.

    ``raw_since``: the oldest instant raw samples are kept from (None: kept
    forever). A read that needs raw samples from before it is refused:
    its older buckets would be empty not because nothing happened but
    because the samples were dropped."""
    if not needs_raw(width, per_load=per_load):
        return HistorySource.INTERVALS
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
