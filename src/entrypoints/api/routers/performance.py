"""Measured event performance: ``/api/events/{eventId}/performance`` (the
fleet and a line per VEN) and ``/api/events/{eventId}/vens/{venId}/performance``
(one VEN's interval series), JSON, or CSV for settlement with
``Accept: text/csv`` or ``?format=csv``."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query, Request, Response

from entrypoints.api.deps import NowDep, QueriesDep, SettingsDep, StorageDep, UowDep
from entrypoints.api.errors import NOT_FOUND
from entrypoints.api.params import EventIdPath, VenIdPath
from entrypoints.api.performance import (
    EventPerformanceOut,
    VenSeriesOut,
    event_performance_csv,
    event_performance_out,
    ven_series_csv,
    ven_series_out,
)
from gridcore.errors import NotFound
from gridcore.verification import EventPerformance, event_report, measure_event_performance

router = APIRouter(prefix="/events", tags=["performance"])

Method = Annotated[
    str | None,
    Query(
        max_length=40,
        description="Baseline method: high-X-of-Y, X-in-Y (10-in-10), meter-before[-MINUTES] "
        "or ven-reported; default GRIDCORE_BASELINE_METHOD (meter-before while the event runs)",
    ),
]
Format = Annotated[
    Literal["json", "csv"] | None,
    Query(description="csv: the same as Accept: text/csv"),
]
CSV: dict[int | str, dict[str, Any]] = {200: {"content": {"text/csv": {}}}}


def _wants_csv(request: Request, fmt: str | None) -> bool:
    if fmt is not None:
        return fmt == "csv"
    return "text/csv" in request.headers.get("accept", "")


def _csv_response(text: str, name: str) -> Response:
    return Response(
        text,
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": f'attachment; filename="{name}.csv"'},
    )


async def _measure(
    uow: UowDep,
    queries: QueriesDep,
    settings: SettingsDep,
    now: NowDep,
    event_id: str,
    method: str | None,
    ven_id: str | None = None,
) -> EventPerformance:
    return await measure_event_performance(
        uow,
        queries,
        event_id,
        programme=settings.programme,
        now=now,
        method=method,
        ven_ids=[ven_id] if ven_id else None,
    )


@router.get("/{eventId}/performance", responses={**NOT_FOUND, **CSV})
async def event_performance(
    request: Request,
    event_id: EventIdPath,
    uow: UowDep,
    queries: QueriesDep,
    settings: SettingsDep,
    now: NowDep,
    storage: StorageDep,
    method: Method = None,
    format: Format = None,
    recompute: Annotated[
        bool, Query(description="Measure again, replacing the result kept for the method")
    ] = False,
) -> EventPerformanceOut:
    """What the event shed, measured from the VENs' metered telemetry against
    a baseline: the fleet, and a line per VEN (what it was allocated, what
    its ACK claimed, what the meter shows, data quality, rebound). Once the
    event and the hour after it are over, the result is kept per method and
    served as kept (``computedAt`` says when it was measured)."""
    report = await event_report(
        uow,
        queries,
        storage.performance,
        event_id,
        programme=settings.programme,
        now=now,
        method=method,
        recompute=recompute,
    )
    body = event_performance_out(report, settings.gridcore_timezone)
    if _wants_csv(request, format):
        return _csv_response(event_performance_csv(body), f"{event_id}-performance")  # type: ignore[return-value]
    return body


@router.get("/{eventId}/vens/{venId}/performance", responses={**NOT_FOUND, **CSV})
async def ven_performance(
    request: Request,
    event_id: EventIdPath,
    ven_id: VenIdPath,
    uow: UowDep,
    queries: QueriesDep,
    settings: SettingsDep,
    now: NowDep,
    method: Method = None,
    format: Format = None,
) -> VenSeriesOut:
    """One VEN's interval series in the event: baseline, metered and shed kW,
    its own claimed baseline, and what the baseline was made of."""
    measured = await _measure(uow, queries, settings, now, event_id, method, ven_id)
    found = measured.measurement.vens.get(ven_id)
    if found is None:
        raise NotFound("VEN in event", ven_id)
    body = ven_series_out(measured, found)
    if _wants_csv(request, format):
        return _csv_response(ven_series_csv(body), f"{event_id}-{ven_id}")  # type: ignore[return-value]
    return body
