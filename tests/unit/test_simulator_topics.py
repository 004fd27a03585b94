"""A simulated VEN on 004's future topics: it applies configuration pushed on
``ven/config/{venId}`` and says so, raises bounded alerts on
``ven/alerts/{venId}``, and sends metering several samples to a message."""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

from adapters.mqtt.commands import command_payload
from adapters.mqtt.payloads import TelemetryWire, batch_samples, sample_text
from entrypoints.simulator.alerting import COOLDOWN_S, MAX_PER_HOUR, AlertWatch
from entrypoints.simulator.panel import CircuitSpec, generate_panel
from entrypoints.simulator.shedding import CircuitReading
from entrypoints.simulator.ven import SimulatedVen
from gridcore.ven import LoadType
from gridcore.venconfig import LoadSetting, new_push

T0 = datetime(2026, 7, 1, 18, 0, tzinfo=UTC)


def ven(**options: Any) -> SimulatedVen:
    return SimulatedVen("ven-7", generate_panel(3, 7), **options)


def push(*settings: LoadSetting, correlation_id: str = "cmd-0000000a") -> bytes:
    command = new_push(correlation_id, "ven-7", settings, T0)
    return json.dumps(command_payload(command)).encode()


def loads(v: SimulatedVen, now: datetime) -> dict[str, dict[str, Any]]:
    (metering,) = [m for m in v.report(now) if m.topic == "volttron/metering"]
    return {ld["loadId"]: ld for ld in json.loads(metering.payload)["loads"]}


def test_a_push_is_applied_reported_and_acked() -> None:
    v = ven()
    water = next(c for c in v.panel.circuits if c.type is LoadType.WATER_HEATER)
    assert v.topics == ("ven/cmd/ven-7", "ven/config/ven-7")
    setting = LoadSetting(water.id, enabled=False, priority=1, shed_capability_kw=0.5)
    (ack,) = v.handle(push(setting), T0)
    assert ack.topic == "ven/ack/ven-7"
    body = json.loads(ack.payload)
    assert body == {
        "op": "config", "status": "applied",
        "loads": [{"loadId": water.id, "enabled": False, "priority": 1,
                   "critical": False, "shedCapabilityKw": 0.5}],
        "ts": int(T0.timestamp()), "correlationId": "cmd-0000000a",
    }  # fmt: skip
    reported = loads(v, T0 + timedelta(seconds=5))[water.id]
    assert (reported["enabled"], reported["priority"], reported["currentPowerKw"]) == (False, 1, 0)
    assert reported["shedCapabilityKw"] <= 0.5
    # A repeat (the backend re-delivers until it hears back) gets the same answer.
    assert v.handle(push(setting), T0 + timedelta(seconds=9))[0].payload == ack.payload


def test_a_push_naming_a_circuit_the_panel_lacks_is_refused_whole() -> None:
    v = ven()
    before = v.panel.circuits
    first = before[0].id
    (ack,) = v.handle(push(LoadSetting(first, enabled=False), LoadSetting("nope", priority=2)), T0)
    body = json.loads(ack.payload)
    assert (body["op"], body["status"]) == ("config", "rejected")
    assert "nope" in body["reason"]
    assert v.panel.circuits == before


def test_metering_goes_several_samples_to_a_message() -> None:
    v = ven(batch=3)
    sent = []
    for n in range(7):
        sent += [
            m for m in v.report(T0 + timedelta(seconds=5 * n)) if m.topic == "volttron/metering"
        ]
    assert len(sent) == 2  # samples 1-3 and 4-6; the seventh waits
    text = sent[0].payload.decode()
    found = batch_samples(text)
    assert found is not None
    ven_id, samples = found
    assert ven_id == "ven-7" and len(samples) == 3
    stamps = [TelemetryWire.model_validate_json(sample_text(s, ven_id)).timestamp for s in samples]
    assert stamps == [T0, T0 + timedelta(seconds=5), T0 + timedelta(seconds=10)]
    assert json.loads(text)["timestamp"] == int((T0 + timedelta(seconds=10)).timestamp())


def reading(spec: CircuitSpec, kw: float) -> CircuitReading:
    return CircuitReading(spec, kw, kw, True)


def test_alerts_follow_the_panel_and_are_bounded() -> None:
    panel = generate_panel(3, 7)
    watch = AlertWatch("ven-7")
    spec = CircuitSpec("circuit_9", "Range", LoadType.RANGE, 40, 12.0)
    epoch = T0.timestamp()
    assert watch.check(panel, [reading(spec, 7.0)], epoch, epoch) == []  # 29 A of 40: fine
    (warning,) = watch.check(panel, [reading(spec, 8.4)], epoch, epoch)  # 35 A: over 80 %
    assert (warning["severity"], warning["code"], warning["loadId"]) == (
        "warning", "overcurrent", "circuit_9",
    )  # fmt: skip
    assert warning["details"] == {"currentAmps": 35.0, "breakerAmps": 40}
    # Still over, within the cool-down: nothing new; after it, critical at the rating.
    assert watch.check(panel, [reading(spec, 9.7)], epoch + 60, epoch + 60) == []
    later = epoch + COOLDOWN_S
    (critical,) = watch.check(panel, [reading(spec, 9.7)], later, later)
    assert critical["severity"] == "critical"
    # However many circuits are over, at most MAX_PER_HOUR alerts an hour.
    specs = [replace(spec, id=f"c{n}") for n in range(3 * MAX_PER_HOUR)]
    burst = watch.check(panel, [reading(s, 9.7) for s in specs], later + 1, later + 1)
    assert len(burst) == MAX_PER_HOUR - 2
