"""What ``/api/events/{eventId}/performance`` answers: an event's measured
shed against a baseline (:mod:`gridcore.verification`), as JSON for screens
and as CSV for settlement (one row per VEN, then the fleet)."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable
from datetime import datetime

from pydantic import Field

from entrypoints.api.fields import ApiModel, UtcDateTime
from gridcore.baselines import Adjustment
from gridcore.measurement import Rebound, VenMeasurement, interval_share, sample_share
from gridcore.verification import (
    EventPerformance,
    PerformanceReport,
    VenPerformanceLine,
    fallbacks_said,
)


class QualityOut(ApiModel):
    intervals_expected: int
    intervals_present: int
    interval_share: float | None
    samples_expected: float | None
    samples_present: int
    sample_share: float | None
    offline_intervals: int = Field(description="Event intervals without any metered value")
    baseline_days: int


class ReboundOut(ApiModel):
    kwh: float = Field(description="Energy above the baseline in the hour after the end")
    peak_kw: float = Field(description="The highest interval above the baseline then")


class FleetPointOut(ApiModel):
    start: UtcDateTime
    baseline_kw: float
    metered_kw: float
    shed_kw: float
    vens: int = Field(description="VENs with both a baseline and a meter value in the interval")


class FleetPerformanceOut(ApiModel):
    shed_kwh: float
    avg_shed_kw: float | None
    requested_kw: float | None
    performance_ratio: float | None = Field(description="avgShedKw / requestedKw")
    claimed_kw: float | None = Field(description="What the VENs' ACKs claim, summed")
    vens: int
    vens_offline: int
    vens_without_baseline: int
    rebound: ReboundOut | None
    series: list[FleetPointOut]


class VenPerformanceOut(ApiModel):
    ven_id: str
    method: str = Field(description="The baseline method used (after any fallback)")
    fell_back: list[str] = Field(description="Methods tried first, each with why it could not")
    shed_kwh: float | None
    avg_shed_kw: float | None
    allocated_kw: float | None
    performance_ratio: float | None = Field(description="avgShedKw / allocatedKw")
    claimed_kw: float | None = Field(description="What its ACK claims (not verified)")
    claimed_avg_shed_kw: float | None = Field(
        description="From the baselinePowerKw the VEN reported: its own claim, not verified"
    )
    coverage: float | None = Field(description="Share of the elapsed event measured")
    quality: QualityOut
    rebound: ReboundOut | None


class MeterPointOut(ApiModel):
    start: UtcDateTime
    event_hours: float
    after_hours: float
    baseline_kw: float | None
    metered_kw: float | None
    shed_kw: float | None
    claimed_baseline_kw: float | None
    claimed_shed_kw: float | None


class BaselineOut(ApiModel):
    method: str
    asked: str
    fell_back: list[str]
    shortfall: str | None
    days_used: list[str]
    days_excluded: list[str] = Field(description="Each as 'YYYY-MM-DD: reason'")
    adjustment: str | None


class VenSeriesOut(VenPerformanceOut):
    event_id: str
    baseline: BaselineOut
    series: list[MeterPointOut]


class EventPerformanceOut(ApiModel):
    event_id: str
    method: str = Field(description="The baseline method asked for")
    live: bool = Field(description="True until the hour after the event's end is over")
    computed_at: UtcDateTime = Field(
        description="When it was measured; once the event is over the result is kept "
        "and served as it was (recompute=true measures again)"
    )
    measured_until: UtcDateTime
    start: UtcDateTime
    end: UtcDateTime = Field(description="The event's end, or its stop if earlier")
    timezone: str
    fleet: FleetPerformanceOut
    vens: list[VenPerformanceOut]


def _rebound(r: Rebound | None) -> ReboundOut | None:
    return None if r is None else ReboundOut(kwh=r.kwh, peak_kw=r.peak_kw)


def _ven_line_out(line: VenPerformanceLine) -> VenPerformanceOut:
    rebound = (
        None
        if line.rebound_kwh is None or line.rebound_peak_kw is None
        else ReboundOut(kwh=line.rebound_kwh, peak_kw=line.rebound_peak_kw)
    )
    return VenPerformanceOut(
        ven_id=line.ven_id,
        method=line.baseline_method,
        fell_back=list(line.fell_back),
        shed_kwh=line.shed_kwh,
        avg_shed_kw=line.avg_shed_kw,
        allocated_kw=line.allocated_kw,
        performance_ratio=line.performance_ratio,
        claimed_kw=line.claimed_kw,
        claimed_avg_shed_kw=line.claimed_avg_shed_kw,
        coverage=line.coverage,
        quality=QualityOut(
            intervals_expected=line.intervals_expected,
            intervals_present=line.intervals_present,
            interval_share=interval_share(line.intervals_present, line.intervals_expected),
            samples_expected=line.samples_expected,
            samples_present=line.samples_present,
            sample_share=sample_share(line.samples_present, line.samples_expected),
            offline_intervals=line.offline_intervals,
            baseline_days=line.baseline_days,
        ),
        rebound=rebound,
    )


def event_performance_out(r: PerformanceReport, timezone: str) -> EventPerformanceOut:
    fleet = r.fleet
    return EventPerformanceOut(
        event_id=r.event_id,
        method=r.method,
        live=r.live,
        computed_at=r.computed_at,
        measured_until=r.measured_until,
        start=r.window.start,
        end=r.window.end,
        timezone=timezone,
        fleet=FleetPerformanceOut(
            shed_kwh=fleet.shed_kwh,
            avg_shed_kw=fleet.avg_shed_kw,
            requested_kw=fleet.requested_kw,
            performance_ratio=fleet.performance_ratio,
            claimed_kw=fleet.claimed_kw,
            vens=fleet.vens,
            vens_offline=fleet.vens_offline,
            vens_without_baseline=fleet.vens_without_baseline,
            rebound=_rebound(fleet.rebound),
            series=[
                FleetPointOut(
                    start=f.start,
                    baseline_kw=f.baseline_kw,
                    metered_kw=f.metered_kw,
                    shed_kw=f.shed_kw,
                    vens=f.vens,
                )
                for f in fleet.series
            ],
        ),
        vens=[_ven_line_out(line) for line in r.vens],
    )


def ven_series_out(p: EventPerformance, v: VenMeasurement) -> VenSeriesOut:
    b = v.baseline
    adjustment = b.adjustment
    return VenSeriesOut(
        event_id=p.event.id,
        baseline=BaselineOut(
            method=b.method,
            asked=b.asked,
            fell_back=list(fallbacks_said(b)),
            shortfall=b.shortfall,
            days_used=[d.isoformat() for d in b.days_used],
            days_excluded=[f"{d.day.isoformat()}: {d.reason.value}" for d in b.days_excluded],
            adjustment=None if adjustment is None else _adjustment_text(adjustment),
        ),
        series=[
            MeterPointOut(
                start=s.start,
                event_hours=s.event_hours,
                after_hours=s.after_hours,
                baseline_kw=s.baseline_kw,
                metered_kw=s.metered_kw,
                shed_kw=s.shed_kw,
                claimed_baseline_kw=s.claimed_baseline_kw,
                claimed_shed_kw=s.claimed_shed_kw,
            )
            for s in v.series
        ],
        **_ven_line_out(VenPerformanceLine.of(v)).model_dump(),
    )


def _adjustment_text(a: Adjustment) -> str:
    name = a.kind.value
    if a.applied is None:
        return f"{name}: not applied ({a.note})" if a.note else f"{name}: not applied"
    capped = f" (capped from {a.raw:.4g})" if a.capped and a.raw is not None else ""
    return f"{name}: {a.applied:.4g}{capped}"


# --- CSV for settlement ------------------------------------------------------------

_VEN_COLUMNS = (
    "venId",
    "method",
    "shedKwh",
    "avgShedKw",
    "allocatedKw",
    "performanceRatio",
    "claimedKw",
    "claimedAvgShedKw",
    "coverage",
    "intervalsExpected",
    "intervalsPresent",
    "baselineDays",
    "reboundKwh",
    "reboundPeakKw",
)


def _cell(value: object) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return f"{value:.6g}"
    if isinstance(value, datetime):
        return value.isoformat().replace("+00:00", "Z")
    return str(value)


def _csv(header: Iterable[str], rows: Iterable[Iterable[object]]) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(header)
    for row in rows:
        writer.writerow([_cell(v) for v in row])
    return out.getvalue()


def event_performance_csv(body: EventPerformanceOut) -> str:
    """One row per VEN, then one for the fleet (``venId`` = ``FLEET``, whose
    ``allocatedKw`` is the event's requested kW)."""
    rows: list[list[object]] = []
    for v in body.vens:
        rows.append(
            [
                v.ven_id,
                v.method,
                v.shed_kwh,
                v.avg_shed_kw,
                v.allocated_kw,
                v.performance_ratio,
                v.claimed_kw,
                v.claimed_avg_shed_kw,
                v.coverage,
                v.quality.intervals_expected,
                v.quality.intervals_present,
                v.quality.baseline_days,
                v.rebound.kwh if v.rebound else None,
                v.rebound.peak_kw if v.rebound else None,
            ]
        )
    f = body.fleet
    rows.append(
        [
            "FLEET",
            body.method,
            f.shed_kwh,
            f.avg_shed_kw,
            f.requested_kw,
            f.performance_ratio,
            f.claimed_kw,
            None,
            None,
            None,
            None,
            None,
            f.rebound.kwh if f.rebound else None,
            f.rebound.peak_kw if f.rebound else None,
        ]
    )
    return _csv(_VEN_COLUMNS, rows)


def ven_series_csv(body: VenSeriesOut) -> str:
    return _csv(
        (
            "start",
            "eventHours",
            "afterHours",
            "baselineKw",
            "meteredKw",
            "shedKw",
            "claimedBaselineKw",
            "claimedShedKw",
        ),
        (
            (
                s.start,
                s.event_hours,
                s.after_hours,
                s.baseline_kw,
                s.metered_kw,
                s.shed_kw,
                s.claimed_baseline_kw,
                s.claimed_shed_kw,
            )
            for s in body.series
        ),
    )
