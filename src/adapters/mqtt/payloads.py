"""Wire payloads of the MQTT contract (seed documents 004 and 002), as pydantic
models with the documents' exact field names, and their mapping to gridcore.

Rules kept on every inbound payload:

- Tolerant in what is accepted: where the documents show two spellings both
  are read (``batterySOC``/``batterySoc``, both ``circuits_curtailed`` shapes,
  ``correlationId``/``correlation_id``); timestamps are epoch seconds (int or
  float) or ISO 8601 (without an offset it is taken as UTC), always returned
  timezone-aware UTC.
- Strict in types: ``false`` is not a number, ``"5.0"`` is not a number,
  ``2.0`` is not an integer, NaN and infinities are refused.
- Only what storage can hold (:mod:`gridcore.limits`): ids, names, types and
  statuses no longer than their columns and without NUL characters (PostgreSQL
  text refuses them), priorities that fit 32 bits, and payloads stored as JSON
  documents (ACKs, statuses, load snapshots, shadows) free of ``\u0000`` and of
  non-finite numbers (jsonb refuses both). Anything else is refused here,
  with the field and the reason, rather than failing its batch's write.
- Unknown fields are not rejected: the payload's JSON text is kept verbatim in
  ``raw_payload``, so nothing a VEN sent is lost.
- Payloads over :data:`MAX_PAYLOAD_BYTES` (the AWS IoT Core limit) are refused
  before parsing.

Outbound commands (``ven/cmd/{venId}``) live in :mod:`adapters.mqtt.commands`.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Annotated, Any, Required

from pydantic import (
    AfterValidator,
    AliasChoices,
    BaseModel,
    ConfigDict,
    Field,
    PlainValidator,
    StringConstraints,
    model_validator,
    with_config,
)
from typing_extensions import TypedDict  # pydantic takes typing's only from Python 3.12

from gridcore.alerts import ALERT_CODE_LENGTH, ALERT_MESSAGE_LENGTH, VenAlert, severity_of
from gridcore.correlation import VenAck
from gridcore.curtailment import CircuitCurtailment
from gridcore.errors import InvalidInput
from gridcore.limits import (
    ACK_CORRELATION_ID_LENGTH,
    ACK_TEXT_LENGTH,
    EVENT_ID_LENGTH,
    INT32_MAX,
    INT32_MIN,
    LOAD_ID_LENGTH,
    LOAD_TYPE_LENGTH,
    MAX_KW,
    NAME_LENGTH,
    VEN_STATUS_LENGTH,
)
from gridcore.telemetry import LoadSample, TelemetrySample
from gridcore.timestamps import REPORTED_EARLIEST, REPORTED_LATEST, to_utc
from gridcore.ven import VEN_ID_SHAPE, validate_ven_id

MAX_PAYLOAD_BYTES = 128 * 1024
# Bounds of a plausible VEN clock: before 2000 or after 2100 is a bug, not data.
_MIN_EPOCH = REPORTED_EARLIEST.timestamp()
_MAX_EPOCH = REPORTED_LATEST.timestamp()


class PayloadTooLargeError(ValueError):
    """The payload exceeds :data:`MAX_PAYLOAD_BYTES`."""


def _timestamp(value: object) -> datetime:
    """Epoch seconds or ISO 8601 -> aware UTC datetime; anything else is refused."""
    if isinstance(value, bool):
        raise ValueError("a timestamp is epoch seconds or ISO 8601, not a boolean")
    if isinstance(value, int | float):
        # Compared before float(): an int of 310 digits overflows it. (NaN fails.)
        if not _MIN_EPOCH <= value < _MAX_EPOCH:
            raise ValueError(f"epoch seconds {str(value)[:40]} are outside 2000..2100")
        return datetime.fromtimestamp(float(value), UTC)
    if isinstance(value, str):
        try:
            parsed = datetime.fromisoformat(value)
        except ValueError:
            raise ValueError(f"{value!r} is not an ISO 8601 timestamp") from None
        return to_utc(parsed, REPORTED_EARLIEST, REPORTED_LATEST)
    if isinstance(value, datetime):  # Python callers (tests, simulator)
        return value if value.tzinfo is not None else value.replace(tzinfo=UTC)
    raise ValueError("a timestamp is epoch seconds or an ISO 8601 string")


Timestamp = Annotated[datetime, PlainValidator(_timestamp)]


def _text(max_length: int, min_length: int = 0) -> StringConstraints:
    """Text no longer than its column. Lengths are checked in pydantic-core at
    no measurable cost; NUL is checked per payload kind below, because a
    pattern on every string costs telemetry ~10 % of its validation time."""
    return StringConstraints(min_length=min_length, max_length=max_length)


VenId = Annotated[str, StringConstraints(pattern=rf"^{VEN_ID_SHAPE}$")]
LoadId = Annotated[str, _text(LOAD_ID_LENGTH, 1)]
EventId = Annotated[str, _text(EVENT_ID_LENGTH)]
Name = Annotated[str, _text(NAME_LENGTH)]
LoadType = Annotated[str, _text(LOAD_TYPE_LENGTH)]
Priority = Annotated[int, Field(ge=INT32_MIN, le=INT32_MAX)]


def _jsonb_storable(value: Any) -> Any:
    """``value`` unchanged if PostgreSQL jsonb can hold it: no NUL in any string
    or key, no NaN or infinity (``1e400`` parses as infinity); else ValueError."""
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            if "\x00" in item:
                raise ValueError("a JSON document cannot hold NUL characters (\\u0000)")
        elif isinstance(item, float):
            if not math.isfinite(item):
                raise ValueError(f"a JSON document cannot hold the number {item}")
        elif isinstance(item, dict):
            stack.extend(item)
            stack.extend(item.values())
        elif isinstance(item, list | tuple):
            stack.extend(item)
    return value


class _Wire(BaseModel):
    # Unknown fields are ignored by the model but kept in the raw text.
    model_config = ConfigDict(strict=True, extra="ignore", allow_inf_nan=False, frozen=True)


class _KeptWhole(BaseModel):
    """A payload stored as a JSON document, unknown fields included: they are
    kept (``extra="allow"``) and held to what jsonb stores. (A ``before``
    validator would see the whole input, but it makes pydantic validate JSON
    as Python objects, where strict mode refuses a JSON array for a tuple.)"""

    model_config = ConfigDict(strict=True, extra="allow", allow_inf_nan=False, frozen=True)

    @model_validator(mode="after")
    def _storable(self) -> Any:
        _jsonb_storable((self.__dict__, self.model_extra))
        return self


Document = Annotated[dict[str, Any], AfterValidator(_jsonb_storable)]


def _alias(*names: str) -> Any:
    """A field read under any of ``names`` (the documents' spellings)."""
    return Field(default=None, validation_alias=AliasChoices(*names))


def _reading_alias(*names: str) -> Any:
    """A number a VEN reports about its panel (kW, amps, volts, percent): any
    sign (a panel exporting solar reads negative), but finite and within
    MAX_KW either way, so that a fleet's sums in the stats stay finite (one
    ``1e308`` would make every total infinity, which JSON cannot carry)."""
    return Field(default=None, ge=-MAX_KW, le=MAX_KW, validation_alias=AliasChoices(*names))


def _kw_alias(*names: str) -> Any:
    """A kW a VEN reports about itself: no VEN sheds negative kW, nor more than
    any kW gridcore handles (sums of them stay finite)."""
    return Field(default=None, ge=0, le=MAX_KW, validation_alias=AliasChoices(*names))


# --- telemetry: volttron/metering -------------------------------------------

_LINE_CONFIG = ConfigDict(strict=True, extra="ignore", allow_inf_nan=False)


def _line_reading(*names: str) -> Any:
    """``_reading_alias`` for a field of a line (a TypedDict: no defaults)."""
    return Field(ge=-MAX_KW, le=MAX_KW, validation_alias=AliasChoices(*names))


# A message's circuits and loads are validated into plain dicts, by the same
# rules as the models below, keyed by the models' field names, a field absent
# from the payload absent from the dict. Why: pydantic-core builds a dict for
# a line in a fifth of the time it builds a model instance (10 circuits and 10
# loads: 13 against 69 us a message), and these are most of a message.
@with_config(_LINE_CONFIG)
class CircuitLine(TypedDict, total=False):
    """A ``circuits`` entry of a metering message (electrical view)."""

    id: Required[LoadId]
    name: Name | None
    breaker_amps: Annotated[float | None, _line_reading("breakerAmps", "breaker_amps")]
    current_kw: Annotated[float | None, _line_reading("currentKw", "current_kw")]
    current_amps: Annotated[float | None, _line_reading("currentAmps", "current_amps")]
    enabled: bool | None
    critical: bool | None


@with_config(_LINE_CONFIG)
class LoadLine(TypedDict, total=False):
    """A ``loads`` entry of a metering message (DR view)."""

    load_id: Required[
        Annotated[LoadId, Field(validation_alias=AliasChoices("loadId", "load_id", "id"))]
    ]
    name: Name | None
    type: LoadType | None
    capacity_kw: Annotated[float | None, _line_reading("capacityKw", "capacity_kw")]
    current_power_kw: Annotated[float | None, _line_reading("currentPowerKw", "current_power_kw")]
    shed_capability_kw: Annotated[
        float | None, _line_reading("shedCapabilityKw", "shed_capability_kw")
    ]
    enabled: bool | None
    priority: Priority | None
    critical: bool | None


class CircuitWire(_Wire):
    """:class:`CircuitLine` as a model, for callers holding one circuit."""

    id: LoadId
    name: Name | None = None
    breaker_amps: float | None = _reading_alias("breakerAmps", "breaker_amps")
    current_kw: float | None = _reading_alias("currentKw", "current_kw")
    current_amps: float | None = _reading_alias("currentAmps", "current_amps")
    enabled: bool | None = None
    critical: bool | None = None


class LoadWire(_Wire):
    """:class:`LoadLine` as a model (the lines of a load snapshot)."""

    load_id: LoadId = Field(validation_alias=AliasChoices("loadId", "load_id", "id"))
    name: Name | None = None
    type: LoadType | None = None
    capacity_kw: float | None = _reading_alias("capacityKw", "capacity_kw")
    current_power_kw: float | None = _reading_alias("currentPowerKw", "current_power_kw")
    shed_capability_kw: float | None = _reading_alias("shedCapabilityKw", "shed_capability_kw")
    enabled: bool | None = None
    priority: Priority | None = None
    critical: bool | None = None


class TelemetryWire(_Wire):
    ven_id: VenId = Field(validation_alias="venId")
    timestamp: Timestamp
    used_power_kw: float | None = _reading_alias("usedPowerKw")
    shed_power_kw: float | None = _reading_alias("shedPowerKw")
    requested_reduction_kw: float | None = _reading_alias("requestedReductionKw")
    event_id: EventId | None = _alias("eventId")
    baseline_power_kw: float | None = _reading_alias("baselinePowerKw")
    battery_soc: float | None = _reading_alias("batterySOC", "batterySoc")
    panel_amperage_rating: float | None = _reading_alias("panelAmperageRating")
    panel_voltage: float | None = _reading_alias("panelVoltage")
    panel_max_kw: float | None = _reading_alias("panelMaxKw")
    current_amps: float | None = _reading_alias("currentAmps")
    panel_utilization_percent: float | None = _reading_alias("panelUtilizationPercent")
    circuits: tuple[CircuitLine, ...] = ()
    loads: tuple[LoadLine, ...] = ()
    # Present: the message is a batch (batch_samples); read here so that a
    # batch carrying venId and timestamp is never taken for one sample.
    samples: tuple[Any, ...] | None = None


def _line(item: Any) -> Any:
    """A line as a dict of its fields, from a dict or from a wire model."""
    return item if type(item) is dict else item.__dict__


def merge_loads(
    circuits: Sequence[CircuitLine | CircuitWire], loads: Sequence[LoadLine | LoadWire]
) -> tuple[LoadSample, ...]:
    """One line per id: a ``circuits`` entry (electrical view) and a ``loads``
    entry (DR view) with the same id describe the same circuit. Where both
    report a value the ``loads`` one wins (it is the DR contract's view).
    Order: circuits as sent, then loads without a circuit. Takes the lines as
    :class:`TelemetryWire` holds them, or as models."""
    return _merge_lines([_line(c) for c in circuits], [_line(ld) for ld in loads])


_NO_LINE: dict[str, Any] = {}  # the other view of a circuit reported in one view only
_new_tuple = tuple.__new__  # a named tuple from a tuple in field order, without its __new__'s call


def _merged(load_id: str, c: CircuitLine, ld: LoadLine) -> LoadSample:
    """A circuit's ``circuits`` entry and its ``loads`` entry (either may be
    ``_NO_LINE``) as one line; where both report a value, the load's wins.
    The one place a line is built from the payload: it runs for every
    circuit of every message, hence the lookups written out in field order."""
    get, lget = c.get, ld.get
    name, power = lget("name"), lget("current_power_kw")
    enabled, critical = lget("enabled"), lget("critical")
    line = (
        load_id,
        name if name is not None else get("name"),
        lget("type"),
        lget("capacity_kw"),
        power if power is not None else get("current_kw"),
        lget("shed_capability_kw"),
        enabled if enabled is not None else get("enabled"),
        lget("priority"),
        critical if critical is not None else get("critical"),
        get("breaker_amps"),
        get("current_amps"),
    )
    return _new_tuple(LoadSample, line)


def _merge_lines(
    circuits: Sequence[CircuitLine], loads: Sequence[LoadLine]
) -> tuple[LoadSample, ...]:
    by_id: dict[str, LoadLine] = {load["load_id"]: load for load in loads}
    merged: list[LoadSample] = []
    seen: set[str] = set()
    matched = 0  # loads that had a circuit of the same id
    for c in circuits:
        cid = c["id"]
        if cid in seen:
            continue
        seen.add(cid)
        ld = by_id.get(cid)
        if ld is None:
            merged.append(_merged(cid, c, _NO_LINE))  # type: ignore[arg-type]
        else:
            matched += 1
            merged.append(_merged(cid, c, ld))
    if matched < len(by_id):
        for ld in loads:
            if (load_id := ld["load_id"]) not in seen:
                seen.add(load_id)
                merged.append(_merged(load_id, _NO_LINE, ld))  # type: ignore[arg-type]
    return tuple(merged)


def _refuse_nul(wire: TelemetryWire) -> None:
    """Raise :class:`InvalidInput` naming the first text field holding NUL."""
    fields: list[tuple[str, str | None]] = [("eventId", wire.event_id)]
    for n, c in enumerate(wire.circuits):
        fields += [(f"circuits.{n}.id", c["id"]), (f"circuits.{n}.name", c.get("name"))]
    for n, ld in enumerate(wire.loads):
        fields += [(f"loads.{n}.loadId", ld["load_id"]), (f"loads.{n}.name", ld.get("name")),
                   (f"loads.{n}.type", ld.get("type"))]  # fmt: skip
    for name, value in fields:
        if value is not None and "\x00" in value:
            raise InvalidInput(name, "must not contain NUL characters (\\u0000)")


def to_telemetry_sample(
    wire: TelemetryWire, raw_text: str, received_at: datetime | None = None
) -> TelemetrySample:
    """The domain's sample. Raises :class:`InvalidInput` for a text field
    holding NUL (PostgreSQL text cannot); ``received_at`` is when it arrived."""
    if "\\u0000" in raw_text:  # JSON can only carry NUL escaped, so mostly this is all
        _refuse_nul(wire)
    return TelemetrySample(
        received_at=received_at,
        ven_id=wire.ven_id,
        timestamp=wire.timestamp,
        used_power_kw=wire.used_power_kw,
        shed_power_kw=wire.shed_power_kw,
        requested_reduction_kw=wire.requested_reduction_kw,
        event_id=wire.event_id,
        baseline_power_kw=wire.baseline_power_kw,
        battery_soc=wire.battery_soc,
        panel_amperage_rating=wire.panel_amperage_rating,
        panel_voltage=wire.panel_voltage,
        panel_max_kw=wire.panel_max_kw,
        current_amps=wire.current_amps,
        panel_utilization_percent=wire.panel_utilization_percent,
        loads=_merge_lines(wire.circuits, wire.loads),
        raw_payload=raw_text,
    )


# --- ACKs: ven/ack/{venId} ----------------------------------------------------


class CurtailedCircuitWire(_Wire):
    """Either documented shape: ``{id, name, breaker_amps, original_kw,
    curtailed_kw, final_kw, critical}`` (002) or ``{loadId, name, shedKw}`` (004)."""

    id: LoadId = Field(validation_alias=AliasChoices("id", "loadId", "load_id"))
    name: Name | None = None
    curtailed_kw: float | None = _kw_alias("curtailed_kw", "shedKw", "shed_kw", "curtailedKw")
    breaker_amps: float | None = _alias("breaker_amps", "breakerAmps")
    original_kw: float | None = _kw_alias("original_kw", "originalKw")
    final_kw: float | None = _kw_alias("final_kw", "finalKw")
    critical: bool | None = None

    def to_domain(self) -> CircuitCurtailment:
        curtailed = self.curtailed_kw
        if curtailed is None and self.original_kw is not None and self.final_kw is not None:
            curtailed = self.original_kw - self.final_kw
        if curtailed is None:
            raise ValueError(f"circuit {self.id!r}: curtailed_kw (or shedKw) is missing")
        if curtailed < 0:  # final_kw above original_kw
            raise ValueError(f"circuit {self.id!r}: curtailed kW {curtailed} is negative")
        return CircuitCurtailment(
            id=self.id,
            curtailed_kw=curtailed,
            name=self.name,
            breaker_amps=self.breaker_amps,
            original_kw=self.original_kw,
            final_kw=self.final_kw,
            critical=self.critical,
        )


class AckWire(_Wire):
    """Event, restore, ping (and shed_load) ACKs; only event ACKs carry an
    event id. ``ts`` may be missing: the receive time stands in for it."""

    op: Annotated[str, _text(ACK_TEXT_LENGTH, 1)]
    status: Annotated[str, _text(ACK_TEXT_LENGTH, 1)]
    ven_id: str | None = _alias("venId", "ven_id")
    correlation_id: Annotated[str, _text(ACK_CORRELATION_ID_LENGTH)] | None = _alias(
        "correlationId", "correlation_id"
    )
    event_id: EventId | None = _alias("event_id", "eventId")
    requested_shed_kw: float | None = _kw_alias("requested_shed_kw", "requestedShedKw")
    actual_shed_kw: float | None = _kw_alias("actual_shed_kw", "actualShedKw")
    circuits_curtailed: tuple[CurtailedCircuitWire, ...] | None = _alias(
        "circuits_curtailed", "circuitsCurtailed"
    )
    ts: Timestamp | None = _alias("ts", "timestamp")


def to_ven_ack(wire: AckWire, ven_id: str, raw_text: str, received_at: datetime) -> VenAck:
    """``ven_id`` comes from the topic (the consumer has checked the payload's
    ``venId``, when present, agrees). Raises ``ValueError`` for a malformed
    VEN id, which the ledger could neither look up nor store, and for a
    payload jsonb cannot hold (the wire model has refused the rest)."""
    validate_ven_id(ven_id)
    raw = _jsonb_storable(json.loads(raw_text))  # ven_acks.raw_payload is jsonb
    return VenAck(
        ven_id=ven_id,
        op=wire.op,
        status=wire.status,
        timestamp=wire.ts or received_at,
        correlation_id=wire.correlation_id or None,
        event_id=wire.event_id or None,
        requested_shed_kw=wire.requested_shed_kw,
        actual_shed_kw=wire.actual_shed_kw,
        circuits_curtailed=tuple(c.to_domain() for c in wire.circuits_curtailed or ()),
        raw_payload=raw if isinstance(raw, dict) else {},
    )


# --- shadows, load snapshots, status ------------------------------------------


class ShadowStateWire(_KeptWhole):
    reported: Document | None = None
    desired: Document | None = None


class ShadowUpdateWire(_KeptWhole):
    """``{"state": {"reported": {...}}}``; the document is kept whole."""

    state: ShadowStateWire


class SnapshotLoadWire(LoadWire, _KeptWhole):
    """A load line of a snapshot: kept whole (``load_snapshots.raw_payload``)."""


class LoadSnapshotWire(_Wire):
    """``ven/loads/{venId}``: ``{schemaVersion, venId, timestamp, loads[]}``."""

    schema_version: str | None = _alias("schemaVersion")
    ven_id: VenId = Field(validation_alias="venId")
    timestamp: Timestamp
    loads: tuple[SnapshotLoadWire, ...] = ()

    def load_samples(self) -> tuple[LoadSample, ...]:
        return _merge_lines((), [_line(ld) for ld in self.loads])


class StatusWire(_Wire):
    """A VEN status transition (``ven_statuses``): ``{venId, status, timestamp,
    details}``. The documents name the table but show no payload; this is the
    shape gridcore defines (docs/mqtt-commands.md)."""

    ven_id: VenId = Field(validation_alias=AliasChoices("venId", "ven_id"))
    status: Annotated[str, _text(VEN_STATUS_LENGTH, 1)]
    timestamp: Timestamp | None = _alias("timestamp", "ts")
    details: Document | None = None


# --- alerts: ven/alerts/{venId} -------------------------------------------------


class AlertWire(_Wire):
    """``{venId, timestamp, severity, code, message, loadId, details}``
    (docs/mqtt-commands.md; 004 names the topic, not its payload). ``type``
    and ``alertType`` are read for ``code``, ``ts`` for ``timestamp``,
    ``load_id`` and ``circuitId`` for ``loadId``; a missing timestamp is the
    time it arrived."""

    ven_id: VenId | None = _alias("venId", "ven_id")
    timestamp: Timestamp | None = _alias("timestamp", "ts")
    severity: Annotated[str, _text(16, 1)]
    code: Annotated[str, _text(ALERT_CODE_LENGTH, 1)] = Field(
        validation_alias=AliasChoices("code", "type", "alertType")
    )
    message: Annotated[str, _text(ALERT_MESSAGE_LENGTH)] | None = None
    load_id: LoadId | None = _alias("loadId", "load_id", "circuitId")
    details: Document | None = None


def to_ven_alert(wire: AlertWire, ven_id: str, received_at: datetime) -> VenAlert:
    """Raises :class:`InvalidInput` for an unknown severity or a text holding NUL."""
    return VenAlert(
        ven_id=ven_id,
        timestamp=wire.timestamp or received_at,
        severity=severity_of(wire.severity),
        code=wire.code,
        message=wire.message or None,
        load_id=wire.load_id,
        details=wire.details,
        received_at=received_at,
    )


# --- batched telemetry: several samples in one volttron/metering message -------

MAX_BATCH_SAMPLES = 120  # ten minutes at the documents' 5 s cadence


def batch_samples(text: str) -> tuple[str | None, list[Any]] | None:
    """The samples of a batched metering message, else None (a single sample).

    A batch is ``{"venId": ..., "samples": [sample, ...]}`` (each sample a
    metering payload whose ``venId`` may be left out), or a bare JSON array
    of samples. The consumer asks only about a message that failed as a
    single sample or whose ``samples`` field is set (a substring search on
    every message would cost a single sample 3 % of its parse).
    Raises :class:`InvalidInput` for a batch that is not one: samples not a
    list, none of them, more than :data:`MAX_BATCH_SAMPLES`, or a ``venId``
    that is not text (and ``json.JSONDecodeError`` for one that is not JSON)."""
    first = text[:1]
    if (
        '"samples"' not in text
        and first != "["
        and not (first.isspace() and text.lstrip().startswith("["))
    ):
        return None
    try:
        document = json.loads(text)  # the hot path's parser refuses bad JSON alike
    except json.JSONDecodeError:
        raise
    except (RecursionError, ValueError) as exc:
        # "[[[[..." 100,000 deep, or an integer of more than 4,300 digits (Python's
        # limit on converting one): JSON, but not any a VEN sends; unparseable.
        raise json.JSONDecodeError(f"not readable ({exc})", text, 0) from None
    if isinstance(document, list):
        ven_id, samples = None, document
    elif isinstance(document, dict) and "samples" in document:
        ven_id, samples = document.get("venId", document.get("ven_id")), document["samples"]
        if ven_id is not None and not isinstance(ven_id, str):
            raise InvalidInput("venId", "a batch's venId must be text")
    else:
        return None  # "samples" was inside a value of a single sample
    if not isinstance(samples, list) or not samples:
        raise InvalidInput("samples", "must be a non-empty list of samples")
    if len(samples) > MAX_BATCH_SAMPLES:
        raise InvalidInput("samples", f"{len(samples)} in one message; at most {MAX_BATCH_SAMPLES}")
    return ven_id, samples


def sample_text(sample: Any, ven_id: str | None) -> str:
    """One sample of a batch as the JSON text of a single metering message,
    with the batch's ``venId`` when the sample has none; ``ValueError`` when
    the sample is not an object."""
    if not isinstance(sample, dict):
        raise ValueError("a sample must be a JSON object")
    if ven_id is not None and "venId" not in sample:
        sample = {"venId": ven_id, **sample}
    return json.dumps(sample, separators=(",", ":"), allow_nan=False)


def decode_text(payload: bytes) -> str:
    """The payload as text, refusing oversize and non-UTF-8 payloads."""
    if len(payload) > MAX_PAYLOAD_BYTES:
        raise PayloadTooLargeError(
            f"{len(payload)} bytes exceeds the {MAX_PAYLOAD_BYTES}-byte limit"
        )
    return payload.decode("utf-8")
