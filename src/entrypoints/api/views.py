"""Domain objects to HTTP models. The rules for what the dashboard sees live
here: how a VEN's loads are assembled, what its metrics mean, and how an
event's progress is read from the ledger."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import datetime, timedelta
from typing import Any

from entrypoints.api.schemas import (
    AckOut,
    AckReport,
    CircuitCurtailedOut,
    CircuitSnapshotOut,
    CurtailedCircuit,
    EventCircuitOut,
    EventCircuitsResponse,
    EventDetail,
    EventMetricsOut,
    EventOut,
    EventWithMetrics,
    LoadOut,
    LocationBody,
    MeteredOut,
    TelemetryPoint,
    TimeseriesPoint,
    VenEventOut,
    VenMetrics,
    VenOut,
    VenProgress,
    VenSummaryOut,
)
from gridcore.correlation import Command, CommandOp, VenAck, latest_per_ven
from gridcore.curtailment import CircuitCurtailment
from gridcore.events import DrEvent
from gridcore.participation import EventMetrics, event_metrics_from, participation, response_stats
from gridcore.quantities import to_kw, to_watts
from gridcore.summary import VenState, VenSummary, current_power_kw
from gridcore.telemetry import CircuitSnapshot, HistoryPoint, TelemetrySample
from gridcore.ven import Connectivity, Load, Location, Ven, available_shed_kw, merged_loads
from gridcore.verification import PerformanceReport


def load_out(load: Load) -> LoadOut:
    return LoadOut(
        id=load.id,
        type=load.type,
        name=load.name,
        # The guide's fallback: no configured capacity -> usage + shed capability.
        capacity_kw=round(load.effective_capacity_kw, 3),
        shed_capability_kw=load.shed_capability_kw,
        current_power_kw=load.current_power_kw,
        priority=load.priority,
        critical=load.critical,
        enabled=load.enabled,
        breaker_amps=load.breaker_amps,
        targets=list(load.targets),
    )


def _milliseconds(span: timedelta | None) -> float | None:
    return round(span.total_seconds() * 1000.0, 1) if span is not None else None


def ven_out(ven: Ven, state: VenState, now: datetime, offline_after: timedelta) -> VenOut:
    """Status from the heartbeat age. Metrics from the newest sample: panel
    usage (else the loads' sum), what the loads can shed, the event the VEN
    says it is in (while online), and the loads it reports switched off.
    The response time is the round trip of the command it answered last."""
    reported, latest = state.loads, state.panel
    loads = merged_loads(ven, reported)
    status = ven.connectivity(now, offline_after)
    online = status is Connectivity.ONLINE
    return VenOut(
        id=ven.id,
        name=ven.name,
        status="online" if online else "offline",
        location=LocationBody(lat=ven.location.lat, lon=ven.location.lon) if ven.location else None,
        created_at=ven.registered_at,
        last_seen=ven.last_seen_at,
        response_time_ms=_milliseconds(state.round_trip),
        loads=[load_out(load) for load in loads],
        metrics=VenMetrics(
            current_power_kw=current_power_kw(latest, reported),
            shed_availability_kw=round(available_shed_kw(loads), 3),
            active_event_id=latest.event_id if latest is not None and online else None,
            # The newest message's loads that it reports switched off.
            shed_load_ids=sorted(load.id for load in reported if not load.enabled),
        ),
        targets=list(ven.targets),
    )


def _coordinates(location: Location | None, template: str) -> str | None:
    # The original backend's texts for the summary's location and address.
    return template.format(lat=location.lat, lon=location.lon) if location else None


def ven_summary_out(s: VenSummary, now: datetime, offline_after: timedelta) -> VenSummaryOut:
    """One item of ``GET /api/vens/summary``: the dashboard's ``VenSummaryItem``.
    ``controllablePower`` is what the VEN can shed now, ``responseTime`` its
    last round trip in ms (null until it answered a command), ``location``
    and ``address`` its registered position as text (null when none is known)."""
    return VenSummaryOut(
        id=s.id,
        name=s.name,
        location=_coordinates(s.location, "{lat:.3f}, {lon:.3f}"),
        status=s.connectivity(now, offline_after).value,
        controllable_power=s.shed_availability_kw,
        current_power=round(s.current_power_kw, 3),
        address=_coordinates(s.location, "Lat {lat:.3f} / Lon {lon:.3f}"),
        last_seen=s.last_seen_at,
        response_time=_milliseconds(s.round_trip),
        created_at=s.registered_at,
    )


def event_out(event: DrEvent) -> EventOut:
    return EventOut(
        id=event.id,
        status=event.status.value,
        start_time=event.start_time,
        end_time=event.end_time,
        requested_reduction_kw=event.requested_reduction_kw,
        actual_reduction_kw=event.actual_reduction_kw,
        targets=list(event.targets),
    )


def metrics_out(metrics: EventMetrics) -> EventMetricsOut:
    ms = metrics.avg_response_ms
    return EventMetricsOut(
        current_reduction_kw=metrics.current_reduction_kw,
        vens_responding=metrics.vens_responding,
        avg_response_ms=round(ms) if ms is not None else None,
    )


def event_with_metrics(event: DrEvent, metrics: EventMetrics) -> EventWithMetrics:
    return EventWithMetrics(**event_out(event).model_dump(), **metrics_out(metrics).model_dump())


def event_detail(
    event: DrEvent,
    commands: Iterable[Command],
    names: Mapping[str, str],
    current_reduction_kw: float,
    metered: PerformanceReport | None = None,
) -> EventDetail:
    """Per VEN: its newest event command (a re-allocation supersedes older
    ones), what it delivers and the state of the restore sent at the end, if
    any; for the event, its metrics from the same commands."""
    commands = list(commands)
    latest = latest_per_ven(commands)
    restores = latest_per_ven(commands, CommandOp.RESTORE)
    taking_part = participation(commands)
    metrics = event_metrics_from(response_stats(commands), current_reduction_kw)
    metered_kw = {v.ven_id: v.avg_shed_kw for v in metered.vens} if metered else {}
    progress = []
    for ven_id in sorted(latest):
        c = latest[ven_id]
        rt = c.response_time
        progress.append(
            VenProgress(
                ven_id=ven_id,
                ven_name=names.get(ven_id),
                shed_kw=taking_part[ven_id].shed_kw,
                status=taking_part[ven_id].status,
                correlation_id=c.correlation_id,
                allocated_kw=c.shed_kw or 0.0,
                command_state=c.state.value,
                attempts=c.attempts,
                ack_status=c.ack_status,
                delivered_kw=c.delivered_kw,
                response_time_seconds=rt.total_seconds() if rt is not None else None,
                restore_state=restores[ven_id].state.value if ven_id in restores else None,
                metered_shed_kw=metered_kw.get(ven_id),
            )
        )
    return EventDetail(
        **event_with_metrics(event, metrics).model_dump(),
        vens=progress,
        metered=None if metered is None else _metered(metered),
    )


def _metered(report: PerformanceReport) -> MeteredOut:
    fleet = report.fleet
    return MeteredOut(
        method=report.method,
        live=report.live,
        measured_until=report.measured_until,
        shed_kw=fleet.avg_shed_kw,
        shed_kwh=fleet.shed_kwh,
        performance_ratio=fleet.performance_ratio,
        vens_without_baseline=fleet.vens_without_baseline,
    )


def _curtailed(circuits: Iterable[CircuitCurtailment]) -> list[CurtailedCircuit]:
    return [CurtailedCircuit(load_id=c.id, name=c.name, shed_kw=c.curtailed_kw) for c in circuits]


def _ack_report(ack: VenAck) -> dict[str, Any]:
    return AckReport(
        event_id=ack.event_id,
        timestamp=ack.timestamp,
        op=ack.op,
        status=ack.status,
        requested_shed_kw=ack.requested_shed_kw,
        actual_shed_kw=ack.actual_shed_kw,
    ).model_dump()


def circuit_curtailed_out(c: CircuitCurtailment) -> CircuitCurtailedOut:
    # The VEN page splits every circuit's name: one no report names shows its id.
    return CircuitCurtailedOut(
        load_id=c.id,
        name=c.name if c.name is not None else c.id,
        shed_kw=c.curtailed_kw,
        id=c.id,
        breaker_amps=c.breaker_amps,
        original_kw=c.original_kw,
        curtailed_kw=c.curtailed_kw,
        final_kw=c.final_kw,
        critical=c.critical,
    )


def ven_event_out(ack: VenAck, circuits: Iterable[CircuitCurtailment]) -> VenEventOut:
    """``circuits``: the ACK's circuits, completed from telemetry
    (:func:`gridcore.participation.with_readings`)."""
    return VenEventOut(
        **_ack_report(ack),
        circuits_curtailed=[circuit_curtailed_out(c) for c in circuits],
        ven_id=ack.ven_id,
        correlation_id=ack.correlation_id,
    )


def ack_out(ack: VenAck) -> AckOut:
    return AckOut(
        **_ack_report(ack),
        circuits_curtailed=_curtailed(ack.circuits_curtailed),
        ven_id=ack.ven_id,
        correlation_id=ack.correlation_id,
        flag=ack.flag,
    )


def event_circuits(event_id: str, acks: Iterable[VenAck]) -> EventCircuitsResponse:
    """What each circuit gave up for the event: per VEN, its newest accepted
    event ACK counts (a re-allocated VEN answers again with its new total)."""
    newest: dict[str, VenAck] = {}
    for ack in sorted(acks, key=lambda a: a.timestamp):
        if ack.op == CommandOp.EVENT.value and ack.accepted:
            newest[ack.ven_id] = ack
    circuits = [
        EventCircuitOut(
            ven_id=ven_id,
            load_id=c.id,
            name=c.name,
            shed_kw=c.curtailed_kw,
            critical=c.critical,
        )
        for ven_id in sorted(newest)
        for c in newest[ven_id].circuits_curtailed
    ]
    total = to_kw(sum(to_watts(c.shed_kw) for c in circuits))
    return EventCircuitsResponse(event_id=event_id, total_shed_kw=total, circuits=circuits)


def telemetry_point(s: TelemetrySample) -> TelemetryPoint:
    return TelemetryPoint(
        timestamp=s.timestamp,
        used_power_kw=s.used_power_kw,
        shed_power_kw=s.shed_power_kw,
        requested_reduction_kw=s.requested_reduction_kw,
        event_id=s.event_id,
        battery_soc=s.battery_soc,
        panel_amperage_rating=s.panel_amperage_rating,
        panel_voltage=s.panel_voltage,
        panel_max_kw=s.panel_max_kw,
        current_amps=s.current_amps,
        panel_utilization_percent=s.panel_utilization_percent,
    )


def snapshot_out(s: CircuitSnapshot) -> CircuitSnapshotOut:
    return CircuitSnapshotOut(
        timestamp=s.timestamp,
        load_id=s.load_id,
        name=s.name,
        current_power_kw=s.current_power_kw,
        shed_capability_kw=s.shed_capability_kw,
        enabled=s.enabled,
        type=s.type,
        capacity_kw=s.capacity_kw,
        priority=s.priority,
    )


def history_point(p: HistoryPoint) -> TimeseriesPoint:
    return TimeseriesPoint(
        timestamp=p.timestamp,
        used_power_kw=p.used_power_kw,
        shed_power_kw=p.shed_power_kw,
        event_id=p.event_id,
        requested_reduction_kw=p.requested_reduction_kw,
    )
