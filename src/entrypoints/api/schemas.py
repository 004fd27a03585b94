"""HTTP models, with the documents' camelCase field names exactly (field
types and their rules are in :mod:`entrypoints.api.fields`)."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import AliasChoices, BaseModel, ConfigDict, Field, Strict

from entrypoints.api.fields import (
    ApiModel,
    EventId,
    Kw,
    LoadTypeName,
    Name,
    PositiveKw,
    Request,
    Seconds,
    Targets,
    UtcDateTime,
    VenId,
)

# --- stats and history -----------------------------------------------------------


class NetworkStatsOut(ApiModel):
    ven_count: int
    controllable_power_kw: float
    potential_load_reduction_kw: float
    household_usage_kw: float
    online_vens: int
    average_house_power: float | None
    # The original dashboard's cards (see docs/api.md): kW, percent, kWh.
    current_load_reduction_kw: float
    network_efficiency: float | None
    total_house_power_today: float


class LoadTypeStatsOut(ApiModel):
    type: str
    total_capacity_kw: float
    total_shed_capability_kw: float
    current_usage_kw: float


class TimeseriesPoint(ApiModel):
    timestamp: UtcDateTime
    used_power_kw: float
    shed_power_kw: float
    event_id: str | None = None
    requested_reduction_kw: float | None = None


class HistoryResponse(ApiModel):
    points: list[TimeseriesPoint]


# --- VENs and loads ------------------------------------------------------------


class LocationBody(ApiModel):
    lat: Annotated[float, Strict(), Field(ge=-90, le=90, allow_inf_nan=False)]
    lon: Annotated[float, Strict(), Field(ge=-180, le=180, allow_inf_nan=False)]


class LoadOut(ApiModel):
    id: str
    type: str
    name: str | None
    capacity_kw: float
    shed_capability_kw: float
    current_power_kw: float
    priority: int | None
    critical: bool
    enabled: bool
    breaker_amps: float | None
    # Added fields have defaults: the documents' shapes keep their required set.
    targets: list[str] = Field(
        default_factory=list, description="Targets the operator granted this load (see VenOut)"
    )


class VenMetrics(ApiModel):
    current_power_kw: float
    shed_availability_kw: float
    active_event_id: str | None
    shed_load_ids: list[str]


class VenOut(ApiModel):
    id: str
    name: str
    status: Literal["online", "offline"]
    location: LocationBody | None = Field(
        description="Where the VEN is, as registered (POST/PATCH); null when no position "
        "is known: gridcore never makes one up (a VEN registered from its telemetry has none)"
    )
    created_at: UtcDateTime | None = Field(description="When the VEN was registered")
    last_seen: UtcDateTime | None = Field(
        description="Its last heartbeat (telemetry, status or load snapshot); null if never heard"
    )
    response_time_ms: float | None = Field(
        description="Round trip of the command the VEN answered last (a ping's pong included), "
        "from the command's first send to its ACK's arrival, in ms; null until it answered one"
    )
    loads: list[LoadOut]
    metrics: VenMetrics
    targets: list[str] = Field(
        default_factory=list,
        description="Targets the operator granted the VEN (a group, a feeder, a postal code...): "
        "an event targeting one of them, one of its loads' targets or its id reaches it",
    )


class VenSummaryOut(ApiModel):
    """The dashboard's ``VenSummaryItem``."""

    id: str
    name: str
    location: str | None = Field(description="'lat, lon' (3 decimals); null when none is known")
    status: Literal["online", "offline"]
    controllable_power: float = Field(description="kW the VEN can shed now")
    current_power: float = Field(description="kW it uses now")
    address: str | None = Field(description="'Lat x / Lon y'; null when no position is known")
    last_seen: UtcDateTime | None
    response_time: float | None = Field(
        description="Its last round trip in ms (see VenOut.responseTimeMs); null until it "
        "answered a command"
    )
    created_at: UtcDateTime | None


class VenCreate(Request):
    id: VenId | None = Field(
        default=None, description="The VEN's MQTT client id; generated (ven-xxxxxxxx) if omitted"
    )
    name: Name
    location: LocationBody | None = None
    targets: Targets = Field(default_factory=list)


class VenPatch(Request):
    name: Name | None = None
    location: LocationBody | None = None
    enabled: Annotated[bool, Strict()] | None = None
    targets: Targets | None = Field(
        default=None, description="Replaces the VEN's targets ([] clears them); absent: unchanged"
    )


class LoadPatch(Request):
    name: Name | None = None
    type: LoadTypeName | None = None
    priority: Annotated[int, Strict(), Field(ge=0, le=1000)] | None = None
    critical: Annotated[bool, Strict()] | None = None
    enabled: Annotated[bool, Strict()] | None = None
    capacity_kw: Kw | None = None
    shed_capability_kw: Kw | None = None
    targets: Targets | None = Field(
        default=None,
        description="Replaces the load's targets ([] clears them); absent: unchanged. An event "
        "targeting one of them reaches the load's VEN",
    )


# --- telemetry, circuits, shadow -----------------------------------------------


class TelemetryPoint(ApiModel):
    timestamp: UtcDateTime
    used_power_kw: float | None
    shed_power_kw: float | None
    requested_reduction_kw: float | None
    event_id: str | None
    battery_soc: float | None
    panel_amperage_rating: float | None
    panel_voltage: float | None
    panel_max_kw: float | None
    current_amps: float | None
    panel_utilization_percent: float | None


class TelemetryResponse(ApiModel):
    total_count: int
    telemetry: list[TelemetryPoint]


class CircuitSnapshotOut(ApiModel):
    timestamp: UtcDateTime
    load_id: str
    name: str | None
    current_power_kw: float | None
    shed_capability_kw: float | None
    enabled: bool | None
    type: str | None = None
    capacity_kw: float | None = None
    priority: int | None = None


class CircuitHistoryResponse(ApiModel):
    ven_id: str
    load_id: str | None = Field(None, description="The circuit asked for; null: every circuit")
    total_count: int = Field(description="Snapshots matching, of which the newest are answered")
    snapshots: list[CircuitSnapshotOut]


class ShadowResponse(BaseModel):
    """The device shadow document as stored (``{"state": {"reported": ...}}``)."""

    model_config = ConfigDict(extra="allow")
    state: dict[str, Any]


# --- ACKs and event history ------------------------------------------------------


class CurtailedCircuit(ApiModel):
    load_id: str
    name: str | None
    shed_kw: float


class CircuitCurtailedOut(CurtailedCircuit):
    """One circuit in both documented shapes at once: 000's ``{loadId, name,
    shedKw}`` and 002's ``{id, name, breaker_amps, original_kw, curtailed_kw,
    final_kw, critical}`` (snake_case, as 002 and the dashboard spell it)."""

    name: str = Field(description="As reported (ACK, else telemetry); the load id if never named")
    id: str = Field(description="= loadId")
    breaker_amps: float | None = Field(alias="breaker_amps")
    original_kw: float | None = Field(
        alias="original_kw",
        description="The circuit's kW before shedding: from the ACK, else from the VEN's "
        "newest sample before the ACK (within the offline window); null if neither says",
    )
    curtailed_kw: float = Field(alias="curtailed_kw", description="= shedKw")
    final_kw: float | None = Field(
        alias="final_kw",
        description="Its kW after shedding: from the ACK, else from the VEN's first sample "
        "at or after the ACK (within the offline window); null if neither says",
    )
    critical: bool | None = Field(alias="critical")


class AckReport(ApiModel):
    event_id: str | None
    timestamp: UtcDateTime
    op: str
    status: str
    requested_shed_kw: float | None
    actual_shed_kw: float | None


class VenEventOut(AckReport):
    circuits_curtailed: list[CircuitCurtailedOut]
    ven_id: str
    correlation_id: str | None


class AckOut(AckReport):
    circuits_curtailed: list[CurtailedCircuit]
    ven_id: str
    correlation_id: str | None
    flag: str | None = Field(
        description="Why the ACK was not credited as reported, e.g. 'capped: reported "
        "999999999 kW, asked 1 kW' (actualShedKw stays as the VEN sent it)"
    )


class AcksResponse(ApiModel):
    total_count: int
    acks: list[AckOut]


class EventCircuitOut(CurtailedCircuit):
    ven_id: str
    critical: bool | None


class EventCircuitsResponse(ApiModel):
    event_id: str
    total_shed_kw: float
    circuits: list[EventCircuitOut]


# --- DR events ---------------------------------------------------------------


class EventCreate(Request):
    start_time: UtcDateTime
    end_time: UtcDateTime
    requested_reduction_kw: PositiveKw
    status: Literal["scheduled", "active"] = Field(
        default="scheduled",
        description="Accepted for the documents' clients. The lifecycle is time-driven: the "
        "event is active from startTime (an event starting now is dispatched within a second).",
    )
    targets: Targets = Field(
        default_factory=list,
        description="The VENs the event is meant for: those granted one of these targets (their "
        "id, a target of theirs or of one of their loads). Absent or []: the whole fleet. "
        "Targets no registered VEN is granted: 422 'targets match no VEN'",
    )


class EventOut(ApiModel):
    id: str
    status: str
    start_time: UtcDateTime
    end_time: UtcDateTime
    requested_reduction_kw: float
    actual_reduction_kw: float
    targets: list[str] = Field(
        default_factory=list, description="The event's targets; []: the whole fleet"
    )


class VenProgress(ApiModel):
    ven_id: str
    correlation_id: str
    allocated_kw: float
    command_state: str
    attempts: int
    ven_name: str | None = Field(description="null for a VEN since deregistered")
    shed_kw: float | None = Field(
        description="kW the VEN delivers for the event (its newest accepted ACK, capped at what "
        "it was asked): its share of actualReductionKw. 0 if it refused; null before it answered"
    )
    status: str = Field(
        description="accepted or rejected once it answered its newest event command, else that "
        "command's state (pending, sent, timed_out, cancelled)"
    )
    ack_status: str | None
    delivered_kw: float | None
    response_time_seconds: float | None
    restore_state: str | None
    metered_shed_kw: float | None = Field(
        None,
        description="What the meter shows it shed on average so far (see metered): "
        "null before it is measured",
    )


class MeteredOut(ApiModel):
    """The event's shed as the meters show it, next to what the VENs claim."""

    method: str = Field(
        description="The baseline: meter-before while the event and its hour after run, "
        "then the programme's (GRIDCORE_BASELINE_METHOD)"
    )
    live: bool
    measured_until: UtcDateTime
    shed_kw: float | None = Field(description="Average metered shed over the event so far")
    shed_kwh: float
    performance_ratio: float | None = Field(description="shedKw / requestedReductionKw")
    vens_without_baseline: int


class EventMetricsOut(ApiModel):
    """The original backend's event metrics, computed from what is stored."""

    current_reduction_kw: float = Field(
        description="kW the VENs report shedding for the event now (once it ended: when it "
        "ended): each VEN's newest telemetry within the offline window, summed over the VENs "
        "whose report names the event"
    )
    vens_responding: int = Field(description="VENs that accepted the event's command")
    avg_response_ms: int | None = Field(
        description="Mean time from a command's first send to its ACK, over the event's answered "
        "commands, in ms; null before any answer"
    )


class EventWithMetrics(EventMetricsOut, EventOut):
    """An event and its metrics, as the original backend's current event."""


class EventDetail(EventWithMetrics):
    vens: list[VenProgress]
    metered: MeteredOut | None = Field(
        None,
        description="Measured shed (GET /api/events/{eventId}/performance has the detail); "
        "null before the start, and after the hour after the end until the worker kept it",
    )


# --- commands and health ---------------------------------------------------------


class SendEventBody(Request):
    event_id: EventId = Field(
        validation_alias=AliasChoices("eventId", "event_id"),
        description="An active event; the command joins its ledger",
    )
    shed_kw: PositiveKw = Field(
        validation_alias=AliasChoices("shedKw", "shed_kw", "requestedReductionKw")
    )
    duration_sec: Seconds | None = Field(
        default=None,
        validation_alias=AliasChoices("durationSec", "duration_sec"),
        description="Defaults to the event's remaining time",
    )


class ShedBody(Request):
    shed_kw: PositiveKw | None = Field(
        default=None,
        validation_alias=AliasChoices("shedKw", "shed_kw"),
        description="Defaults to the load's shed capability",
    )
    duration_sec: Seconds | None = Field(
        default=None, validation_alias=AliasChoices("durationSec", "duration_sec")
    )
    event_id: EventId | None = Field(
        default=None, validation_alias=AliasChoices("eventId", "event_id")
    )


class CommandAccepted(ApiModel):
    correlation_id: str
    ven_id: str
    op: str
    state: str
    topic: str
    event_id: str | None
    load_id: str | None
    shed_kw: float | None
    duration_sec: int | None


class Health(ApiModel):
    status: Literal["ok", "unavailable"]
    database: str | None = None
    broker: str | None = None


# --- audit trail -------------------------------------------------------------------


class AuditEntryOut(ApiModel):
    id: int
    at: UtcDateTime
    actor: str
    action: str
    ven_id: str | None
    event_id: str | None
    load_id: str | None
    details: dict[str, Any]


class AuditResponse(ApiModel):
    total_count: int
    entries: list[AuditEntryOut]
