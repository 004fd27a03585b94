"""HTTP models, with the documents' camelCase field names exactly.

Requests are strict about types (``false`` is not a number, ``"3"`` is not a
number) and about text that storage or MQTT topics cannot hold (control
characters, over-long ids). Timestamps are ISO 8601; a timestamp without a
zone is read as UTC; every timestamp is answered in UTC with ``Z``.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    AliasChoices,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PlainSerializer,
    Strict,
    StringConstraints,
    WithJsonSchema,
)
from pydantic.alias_generators import to_camel

# Far enough for any real schedule, and keeps date arithmetic from overflowing.
EARLIEST = datetime(1970, 1, 1, tzinfo=UTC)
LATEST = datetime(2200, 1, 1, tzinfo=UTC)


def as_utc(value: datetime) -> datetime:
    """Naive input is UTC (documented); aware input is converted to UTC."""
    value = value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
    if not EARLIEST <= value < LATEST:
        raise ValueError("must be between 1970-01-01T00:00:00Z and 2200-01-01T00:00:00Z")
    return value


def iso_z(value: datetime) -> str:
    return value.astimezone(UTC).isoformat().replace("+00:00", "Z")


# ISO 8601 date and time; seconds, fraction and zone optional (no zone: UTC).
# Written out so that the OpenAPI document says exactly what is accepted:
# no bare dates, no Unix numbers (which pydantic would otherwise take).
ISO_DATE_TIME = (
    r"^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}(:[0-9]{2}(\.[0-9]{1,6})?)?"
    r"(Z|[+-][0-9]{2}:[0-9]{2})?$"
)
_ISO = re.compile(ISO_DATE_TIME)


def iso_only(value: object) -> object:
    if isinstance(value, datetime):
        return value
    if not isinstance(value, str) or not _ISO.match(value):
        raise ValueError("must be an ISO 8601 date-time such as 2025-10-20T15:00:00Z")
    return value


UtcDateTime = Annotated[
    datetime,
    BeforeValidator(iso_only),
    AfterValidator(as_utc),
    PlainSerializer(iso_z, return_type=str),
    WithJsonSchema({"type": "string", "pattern": ISO_DATE_TIME}, mode="validation"),
    WithJsonSchema({"type": "string", "format": "date-time"}, mode="serialization"),
]

Kw = Annotated[float, Strict(), Field(ge=0, le=1e9, allow_inf_nan=False)]
PositiveKw = Annotated[float, Strict(), Field(gt=0, le=1e9, allow_inf_nan=False)]
Seconds = Annotated[int, Strict(), Field(ge=1, le=24 * 3600)]
VEN_ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,127}$"
LOAD_ID_PATTERN = r"^[^\x00-\x1f\x7f]{1,128}$"
EVENT_ID_PATTERN = r"^evt-[0-9a-f]{8}$"
VenId = Annotated[str, StringConstraints(pattern=VEN_ID_PATTERN)]
EventId = Annotated[str, StringConstraints(pattern=EVENT_ID_PATTERN)]
Name = Annotated[
    str, StringConstraints(min_length=1, max_length=255, pattern=r"^[^\x00-\x1f\x7f]+$")
]
LoadTypeName = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9_ .-]{1,64}$")]


class ApiModel(BaseModel):
    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True)


class Request(ApiModel):
    # Unknown fields are ignored: older dashboards and scripts send extras.
    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="ignore")


# --- stats and history -----------------------------------------------------------


class NetworkStatsOut(ApiModel):
    ven_count: int
    controllable_power_kw: float
    potential_load_reduction_kw: float
    household_usage_kw: float
    online_vens: int
    average_house_power: float | None


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


class VenMetrics(ApiModel):
    current_power_kw: float
    shed_availability_kw: float
    active_event_id: str | None
    shed_load_ids: list[str]


class VenOut(ApiModel):
    id: str
    name: str
    status: Literal["online", "offline"]
    location: LocationBody | None
    loads: list[LoadOut]
    metrics: VenMetrics


class VenCreate(Request):
    id: VenId | None = Field(
        default=None, description="The VEN's MQTT client id; generated (ven-xxxxxxxx) if omitted"
    )
    name: Name
    location: LocationBody | None = None


class VenPatch(Request):
    name: Name | None = None
    location: LocationBody | None = None
    enabled: Annotated[bool, Strict()] | None = None


class LoadPatch(Request):
    name: Name | None = None
    type: LoadTypeName | None = None
    priority: Annotated[int, Strict(), Field(ge=0, le=1000)] | None = None
    critical: Annotated[bool, Strict()] | None = None
    enabled: Annotated[bool, Strict()] | None = None
    capacity_kw: Kw | None = None
    shed_capability_kw: Kw | None = None


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


class CircuitHistoryResponse(ApiModel):
    total_count: int
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


class VenEventOut(ApiModel):
    event_id: str | None
    timestamp: UtcDateTime
    op: str
    status: str
    requested_shed_kw: float | None
    actual_shed_kw: float | None
    circuits_curtailed: list[CurtailedCircuit]


class VenEventsResponse(ApiModel):
    total_count: int
    events: list[VenEventOut]


class AckOut(VenEventOut):
    ven_id: str
    correlation_id: str | None


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


class EventOut(ApiModel):
    id: str
    status: str
    start_time: UtcDateTime
    end_time: UtcDateTime
    requested_reduction_kw: float
    actual_reduction_kw: float


class VenProgress(ApiModel):
    ven_id: str
    correlation_id: str
    allocated_kw: float
    command_state: str
    attempts: int
    ack_status: str | None
    delivered_kw: float | None
    response_time_seconds: float | None
    restore_state: str | None


class EventDetail(EventOut):
    vens: list[VenProgress]


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
