"""Explicit mapping between rows and domain objects. No ORM object leaves the
adapter: repositories turn rows into gridcore dataclasses here and back."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict, fields
from typing import Any

from sqlalchemy import RowMapping

from gridcore import limits
from gridcore.correlation import Command, CommandOp, CommandState, VenAck
from gridcore.curtailment import CircuitCurtailment
from gridcore.events import DrEvent, EventStatus
from gridcore.telemetry import DeadLetter
from gridcore.ven import Load, Location, Ven

_CIRCUIT_FIELDS = frozenset(f.name for f in fields(CircuitCurtailment))
# Once, not per row: the dispatcher maps 10,000 commands at a time.
_COMMAND_FIELDS = tuple(f.name for f in fields(Command))


def targets_value(targets: Sequence[str]) -> list[str] | None:
    """A target list as stored: NULL for none (as a VEN registered by its
    telemetry has), else the list."""
    return list(targets) or None


def targets_from(value: Sequence[str] | None) -> tuple[str, ...]:
    return tuple(value or ())


def ven_row(ven: Ven) -> dict[str, Any]:
    return {
        "id": ven.id,
        "name": ven.name,
        "lat": ven.location.lat if ven.location else None,
        "lon": ven.location.lon if ven.location else None,
        "enabled": ven.enabled,
        "registered_at": ven.registered_at,
        "last_seen_at": ven.last_seen_at,
        "targets": targets_value(ven.targets),
    }


def ven_from(row: RowMapping, loads: tuple[Load, ...] = ()) -> Ven:
    location = None
    if row["lat"] is not None and row["lon"] is not None:
        location = Location(lat=row["lat"], lon=row["lon"])
    return Ven(
        id=row["id"],
        name=row["name"],
        location=location,
        registered_at=row["registered_at"],
        last_seen_at=row["last_seen_at"],
        enabled=row["enabled"],
        loads=loads,
        targets=targets_from(row["targets"]),
    )


def load_row(ven_id: str, load: Load) -> dict[str, Any]:
    return {
        "ven_id": ven_id,
        "load_id": load.id,
        "type": load.type,
        "name": load.name,
        "capacity_kw": load.capacity_kw,
        "shed_capability_kw": load.shed_capability_kw,
        "current_power_kw": load.current_power_kw,
        "priority": load.priority,
        "critical": load.critical,
        "enabled": load.enabled,
        "breaker_amps": load.breaker_amps,
        "targets": targets_value(load.targets),
    }


def load_from(row: RowMapping) -> Load:
    return Load(
        id=row["load_id"],
        type=row["type"],
        name=row["name"],
        capacity_kw=row["capacity_kw"],
        shed_capability_kw=row["shed_capability_kw"],
        current_power_kw=row["current_power_kw"],
        priority=row["priority"],
        critical=row["critical"],
        enabled=row["enabled"],
        breaker_amps=row["breaker_amps"],
        targets=targets_from(row["targets"]),
    )


def event_row(event: DrEvent) -> dict[str, Any]:
    return {
        "event_id": event.id,
        "status": event.status.value,
        "start_time": event.start_time,
        "end_time": event.end_time,
        "requested_reduction_kw": event.requested_reduction_kw,
        "actual_reduction_kw": event.actual_reduction_kw,
        "created_at": event.created_at,
        "activated_at": event.activated_at,
        "ended_at": event.ended_at,
        "targets": targets_value(event.targets),
    }


def event_from(row: RowMapping) -> DrEvent:
    return DrEvent(
        id=row["event_id"],
        start_time=row["start_time"],
        end_time=row["end_time"],
        requested_reduction_kw=row["requested_reduction_kw"],
        status=EventStatus(row["status"]),
        # Increments of float kW drift (4.994999...); kW to the watt is what is meant.
        actual_reduction_kw=round(row["actual_reduction_kw"], 3),
        created_at=row["created_at"],
        activated_at=row["activated_at"],
        ended_at=row["ended_at"],
        targets=targets_from(row["targets"]),
    )


def command_row(command: Command) -> dict[str, Any]:
    row = {name: getattr(command, name) for name in _COMMAND_FIELDS}
    row["op"] = command.op.value
    row["state"] = command.state.value
    return row


def command_from(row: RowMapping) -> Command:
    values = {name: row[name] for name in _COMMAND_FIELDS}
    values["op"] = CommandOp(row["op"])
    values["state"] = CommandState(row["state"])
    return Command(**values)


def _bounded(value: str | None, length: int) -> str | None:
    """Text as a column can hold it: without NUL, cut to the column's length
    (the raw payload keeps the original)."""
    return None if value is None else value.replace("\x00", "")[:length]


def ack_row(ack: VenAck) -> dict[str, Any]:
    return {
        "ven_id": ack.ven_id,
        "event_id": _bounded(ack.event_id, limits.EVENT_ID_LENGTH),
        "correlation_id": _bounded(ack.correlation_id, limits.ACK_CORRELATION_ID_LENGTH),
        "op": _bounded(ack.op, limits.ACK_TEXT_LENGTH),
        "status": _bounded(ack.status, limits.ACK_TEXT_LENGTH),
        "timestamp": ack.timestamp,
        "requested_shed_kw": ack.requested_shed_kw,
        "actual_shed_kw": ack.actual_shed_kw,
        "circuits_curtailed": [asdict(c) for c in ack.circuits_curtailed],
        "raw_payload": dict(ack.raw_payload),
        "flag": ack.flag,
    }


def _circuit(value: Mapping[str, Any]) -> CircuitCurtailment:
    return CircuitCurtailment(**{k: v for k, v in value.items() if k in _CIRCUIT_FIELDS})


def ack_from(row: RowMapping) -> VenAck:
    circuits = row["circuits_curtailed"] or []
    return VenAck(
        ven_id=row["ven_id"],
        op=row["op"],
        status=row["status"],
        timestamp=row["timestamp"],
        correlation_id=row["correlation_id"],
        event_id=row["event_id"],
        requested_shed_kw=row["requested_shed_kw"],
        actual_shed_kw=row["actual_shed_kw"],
        circuits_curtailed=tuple(_circuit(c) for c in circuits if isinstance(c, Mapping)),
        raw_payload=row["raw_payload"] or {},
        flag=row["flag"],
    )


def dead_letter_row(letter: DeadLetter) -> dict[str, Any]:
    return {
        "topic": letter.topic.replace("\x00", ""),
        "payload": bytes(letter.payload),
        "reason": letter.reason.replace("\x00", ""),
        "received_at": letter.received_at,
    }


def dead_letter_from(row: RowMapping) -> DeadLetter:
    return DeadLetter(
        topic=row["topic"],
        payload=bytes(row["payload"]),
        reason=row["reason"],
        received_at=row["received_at"],
    )
