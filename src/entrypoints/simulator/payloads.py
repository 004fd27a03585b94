"""The JSON a simulated VEN sends, shaped exactly as the documents show it:
telemetry (004, ``volttron/metering`` and ``ven/telemetry/{venId}``), the
device shadow's ``reported`` state, load snapshots, and ACKs (002's long
``circuits_curtailed`` shape). Key order follows the documents' examples.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from typing import Any

from entrypoints.simulator.panel import Panel
from entrypoints.simulator.shedding import ActiveEvent, CircuitReading
from gridcore.curtailment import CircuitCurtailment

JsonObject = dict[str, Any]


def encode(document: JsonObject) -> bytes:
    return json.dumps(document, separators=(",", ":")).encode()


def _kw(value: float) -> float:
    return round(value, 3) + 0.0  # + 0.0 turns -0.0 into 0.0


def _amps(kw: float, voltage: int) -> float:
    return round(abs(kw) * 1000.0 / voltage, 2)


def circuit_entry(reading: CircuitReading, voltage: int) -> JsonObject:
    return {
        "id": reading.spec.id,
        "name": reading.spec.name,
        "breakerAmps": reading.spec.breaker_amps,
        "currentKw": _kw(reading.kw),
        "currentAmps": _amps(reading.kw, voltage),
        "enabled": reading.enabled,
        "critical": reading.spec.critical,
    }


def load_entry(reading: CircuitReading) -> JsonObject:
    return {
        "loadId": reading.spec.id,
        "name": reading.spec.name,
        "type": reading.spec.type.value,
        "capacityKw": reading.spec.rated_kw,
        "currentPowerKw": _kw(reading.kw),
        "shedCapabilityKw": _kw(reading.shed_capability_kw),
        "enabled": reading.enabled,
        "priority": reading.spec.priority,
    }


def telemetry(
    ven_id: str,
    timestamp: float,
    panel: Panel,
    readings: Sequence[CircuitReading],
    *,
    used_kw: float,
    shed_kw: float,
    baseline_kw: float,
    event: ActiveEvent | None,
) -> JsonObject:
    """004's telemetry payload. ``eventId`` and ``requestedReductionKw``
    appear only while an event is active; ``batterySOC`` is null for a home
    without a battery."""
    body: JsonObject = {
        "venId": ven_id,
        "timestamp": timestamp,
        "usedPowerKw": _kw(used_kw),
        "shedPowerKw": _kw(shed_kw),
    }
    if event is not None:
        body["requestedReductionKw"] = _kw(event.requested_kw)
        body["eventId"] = event.event_id
    body["baselinePowerKw"] = _kw(baseline_kw)
    body["batterySOC"] = round(panel.battery.soc, 1) if panel.battery is not None else None
    body["panelAmperageRating"] = panel.amperage
    body["panelVoltage"] = panel.voltage
    body["panelMaxKw"] = _kw(panel.max_kw)
    body["currentAmps"] = _amps(used_kw, panel.voltage)
    body["panelUtilizationPercent"] = round(abs(used_kw) / panel.max_kw * 100.0, 1)
    body["circuits"] = [circuit_entry(r, panel.voltage) for r in readings]
    body["loads"] = [load_entry(r) for r in readings]
    return body


def shadow_update(
    timestamp: float,
    panel: Panel,
    readings: Sequence[CircuitReading],
    *,
    used_kw: float,
    shed_kw: float,
    event: ActiveEvent | None,
) -> JsonObject:
    """``$aws/things/{venId}/shadow/update``. ``available`` says whether a
    circuit can take part in DR (sheddable now); ``active_event`` is null
    between events, which deletes it from the stored shadow."""
    circuits = [
        {
            "id": r.spec.id,
            "name": r.spec.name,
            "enabled": r.enabled,
            "available": r.shed_capability_kw > 0,
            "current_kw": _kw(r.kw),
            "breaker_amps": r.spec.breaker_amps,
            "current_amps": _amps(r.kw, panel.voltage),
            "critical": r.spec.critical,
        }
        for r in readings
    ]
    active = None
    if event is not None:
        end_ts = int(event.ends_at) if event.ends_at is not None else None
        active = {"event_id": event.event_id, "shed_kw": _kw(event.requested_kw), "end_ts": end_ts}
    reported = {
        "power_kw": _kw(used_kw),
        "shed_kw": _kw(shed_kw),
        "panel_amperage": panel.amperage,
        "panel_voltage": panel.voltage,
        "panel_max_kw": _kw(panel.max_kw),
        "circuits": circuits,
        "active_event": active,
        "timestamp": timestamp,
    }
    return {"state": {"reported": reported}}


def load_snapshot(ven_id: str, timestamp: float, readings: Iterable[CircuitReading]) -> JsonObject:
    """``ven/loads/{venId}``."""
    return {
        "schemaVersion": "1.0",
        "venId": ven_id,
        "timestamp": timestamp,
        "loads": [load_entry(r) for r in readings],
    }


def curtailed_entry(line: CircuitCurtailment) -> JsonObject:
    """002's long shape of one ``circuits_curtailed`` line."""
    return {
        "id": line.id,
        "name": line.name,
        "breaker_amps": line.breaker_amps,
        "original_kw": line.original_kw,
        "curtailed_kw": line.curtailed_kw,
        "final_kw": line.final_kw,
        "critical": bool(line.critical),
    }


def shed_ack(
    op: str,
    status: str,
    *,
    event_id: str | None,
    correlation_id: str | None,
    requested_kw: float | None,
    lines: Sequence[CircuitCurtailment],
    ts: int,
    load_id: str | None = None,
    reason: str | None = None,
) -> JsonObject:
    """An event (or per-load shed) ACK, as 002 shows it; ``actual_shed_kw`` is
    the sum of what the circuits gave up (0 when rejected)."""
    body: JsonObject = {"op": op, "status": status}
    if load_id is not None:
        body["load_id"] = load_id
    body["event_id"] = event_id
    body["correlationId"] = correlation_id
    body["requested_shed_kw"] = _kw(requested_kw) if requested_kw is not None else None
    body["actual_shed_kw"] = _kw(sum(line.curtailed_kw for line in lines))
    body["circuits_curtailed"] = [curtailed_entry(line) for line in lines]
    if reason is not None:
        body["reason"] = reason
    body["ts"] = ts
    return body


def simple_ack(
    op: str,
    status: str,
    *,
    correlation_id: str | None,
    ts: int,
    event_id: str | None = None,
    reason: str | None = None,
) -> JsonObject:
    """Restore, ping and refusal ACKs: ``{op, status, ts, correlationId}``
    (004), with ``event_id`` when the VEN restores an event by itself (there
    is no command, hence no correlationId, to echo)."""
    body: JsonObject = {"op": op, "status": status}
    if event_id is not None:
        body["event_id"] = event_id
    if reason is not None:
        body["reason"] = reason
    body["ts"] = ts
    if correlation_id is not None:
        body["correlationId"] = correlation_id
    return body


def alert(
    ven_id: str,
    timestamp: float,
    severity: str,
    code: str,
    message: str,
    *,
    load_id: str | None = None,
    details: JsonObject | None = None,
) -> JsonObject:
    """``ven/alerts/{venId}`` as docs/mqtt-commands.md defines it."""
    body: JsonObject = {
        "venId": ven_id,
        "timestamp": timestamp,
        "severity": severity,
        "code": code,
        "message": message,
    }
    if load_id is not None:
        body["loadId"] = load_id
    if details is not None:
        body["details"] = details
    return body


def metering_batch(ven_id: str, samples: Sequence[JsonObject]) -> JsonObject:
    """Several metering samples in one ``volttron/metering`` message (004's
    "batching"): ``{venId, timestamp, samples}``, each sample without the
    ``venId`` the batch gives; ``timestamp`` is the newest sample's."""
    trimmed = [{k: v for k, v in sample.items() if k != "venId"} for sample in samples]
    return {"venId": ven_id, "timestamp": samples[-1]["timestamp"], "samples": trimmed}


def config_ack(
    status: str,
    *,
    correlation_id: str | None,
    ts: int,
    loads: Sequence[JsonObject] = (),
    reason: str | None = None,
) -> JsonObject:
    """The answer to a ``ven/config`` push, on ``ven/ack/{venId}``: the loads
    as now applied (the backend compares them), or why it was refused."""
    body: JsonObject = {"op": "config", "status": status}
    if reason is not None:
        body["reason"] = reason
    else:
        body["loads"] = list(loads)
    body["ts"] = ts
    if correlation_id is not None:
        body["correlationId"] = correlation_id
    return body
