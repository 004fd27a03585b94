"""Network statistics from the latest telemetry, and network history."""

from __future__ import annotations

from fastapi import APIRouter

from entrypoints.api.deps import (
    ClockDep,
    CoalescerDep,
    NowDep,
    OfflineAfterDep,
    QueriesDep,
    RawSinceDep,
)
from entrypoints.api.params import End, Granularity, Start, history_window
from entrypoints.api.schemas import HistoryResponse, LoadTypeStatsOut, NetworkStatsOut
from entrypoints.api.views import history_point
from gridcore.telemetry import DEFAULT_GRANULARITY

router = APIRouter(prefix="/stats", tags=["stats"])


@router.get("/network")
async def network_stats(
    queries: QueriesDep, clock: ClockDep, offline_after: OfflineAfterDep, shared: CoalescerDep
) -> NetworkStatsOut:
    """Summary of every VEN's newest telemetry (online = heartbeat within
    VEN_OFFLINE_AFTER_SECONDS); the reduction in effect now (shedPowerKw of the
    current readings), the share of the latest dispatched event delivered
    (percent), and the energy used since 00:00 UTC (kWh). The figures may be
    up to GRIDCORE_API_STATS_MAX_AGE_SECONDS old (the VENs' reporting
    interval: they are that old anyway); concurrent requests that find them
    older share one read begun after they arrived (``entrypoints.api.coalesce``)."""
    s = await shared.read(
        ("network", offline_after), lambda: queries.network_stats(clock.now(), offline_after)
    )
    return NetworkStatsOut(
        ven_count=s.ven_count,
        controllable_power_kw=s.controllable_power_kw,
        potential_load_reduction_kw=s.potential_load_reduction_kw,
        household_usage_kw=s.household_usage_kw,
        online_vens=s.online_vens,
        average_house_power=s.average_house_power,
        current_load_reduction_kw=s.current_load_reduction_kw,
        network_efficiency=s.network_efficiency,
        total_house_power_today=s.total_house_power_today,
    )


@router.get("/loads")
async def load_stats(queries: QueriesDep, shared: CoalescerDep) -> list[LoadTypeStatsOut]:
    """Each load's newest sample, grouped by load type (one read shared by
    concurrent requests, as for ``/stats/network``)."""
    return [
        LoadTypeStatsOut(
            type=s.type,
            total_capacity_kw=s.total_capacity_kw,
            total_shed_capability_kw=s.total_shed_capability_kw,
            current_usage_kw=s.current_usage_kw,
        )
        for s in await shared.read("load types", queries.load_type_stats)
    ]


@router.get("/network/history")
async def network_history(
    queries: QueriesDep,
    now: NowDep,
    raw_since: RawSinceDep,
    start: Start = None,
    end: End = None,
    granularity: Granularity = DEFAULT_GRANULARITY,
) -> HistoryResponse:
    """Per bucket: the sum over VENs of each VEN's mean used/shed kW in it."""
    lo, hi, width = history_window(start, end, granularity, now, raw_since=raw_since)
    points = await queries.history(start=lo, end=hi, width=width, raw_since=raw_since)
    return HistoryResponse(points=[history_point(p) for p in points])
