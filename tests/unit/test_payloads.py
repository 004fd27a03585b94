"""Wire payloads: the documents' examples verbatim, both spellings, strict types."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest
from pydantic import ValidationError

from adapters.mqtt.commands import command_payload, encode_command
from adapters.mqtt.payloads import (
    MAX_PAYLOAD_BYTES,
    AckWire,
    LoadSnapshotWire,
    PayloadTooLargeError,
    ShadowUpdateWire,
    StatusWire,
    TelemetryWire,
    decode_text,
    to_telemetry_sample,
    to_ven_ack,
)
from gridcore import Command, CommandOp

# --- the documents' examples, verbatim ----------------------------------------

# 004, "volttron/metering - Primary Telemetry"
METERING_004 = """{
  "venId": "ven-001",
  "timestamp": 1729700000,
  "usedPowerKw": 8.2,
  "shedPowerKw": 4.8,
  "requestedReductionKw": 5.0,
  "eventId": "evt-123",
  "baselinePowerKw": 13.0,
  "batterySOC": 85.5,
  "panelAmperageRating": 200,
  "panelVoltage": 240,
  "panelMaxKw": 48.0,
  "currentAmps": 34.2,
  "panelUtilizationPercent": 17.1,
  "circuits": [
    {
      "id": "circuit_1",
      "name": "Main HVAC",
      "breakerAmps": 30,
      "currentKw": 2.1,
      "currentAmps": 8.75,
      "enabled": true,
      "critical": false
    },
    {
      "id": "circuit_3",
      "name": "Pool Pump",
      "breakerAmps": 20,
      "currentKw": 0.0,
      "currentAmps": 0.0,
      "enabled": false,
      "critical": false
    }
  ],
  "loads": [
    {
      "loadId": "circuit_1",
      "name": "Main HVAC",
      "type": "hvac",
      "capacityKw": 5.0,
      "currentPowerKw": 2.1,
      "shedCapabilityKw": 5.0,
      "enabled": true,
      "priority": 2
    }
  ]
}"""

# 004, "ven/ack/{venId}" event ACK ({loadId, name, shedKw} shape)
EVENT_ACK_004 = """{
  "op": "event",
  "status": "accepted",
  "event_id": "evt-123",
  "requested_shed_kw": 5.0,
  "actual_shed_kw": 4.8,
  "circuits_curtailed": [
    {
      "loadId": "circuit_3",
      "name": "HVAC",
      "shedKw": 3.5
    },
    {
      "loadId": "circuit_5",
      "name": "Pool Pump",
      "shedKw": 1.3
    }
  ],
  "ts": 1729700000,
  "correlationId": "xyz-123"
}"""

# 004, restore ACK (no event id)
RESTORE_ACK_004 = """{
  "op": "restore",
  "status": "success",
  "ts": 1729700000,
  "correlationId": "xyz-456"
}"""

# 002, step 4 ACK ({id, name, breaker_amps, original_kw, curtailed_kw, final_kw, critical})
EVENT_ACK_002 = """{
  "op": "event",
  "status": "accepted",
  "event_id": "evt-a1b2c3d4",
  "correlationId": "evt-a1b2c3d4-abc12345",
  "requested_shed_kw": 5.0,
  "actual_shed_kw": 5.0,
  "circuits_curtailed": [
    {
      "id": "ev1",
      "name": "EV Charger",
      "breaker_amps": 50,
      "original_kw": 8.5,
      "curtailed_kw": 8.5,
      "final_kw": 0.0,
      "critical": false
    },
    {
      "id": "heater1",
      "name": "Water Heater",
      "breaker_amps": 30,
      "original_kw": 3.2,
      "curtailed_kw": 3.2,
      "final_kw": 0.0,
      "critical": false
    }
  ],
  "ts": 1698765432
}"""

# 004, shadow update
SHADOW_004 = """{
  "state": {
    "reported": {
      "power_kw": 8.2,
      "shed_kw": 4.8,
      "panel_amperage": 200,
      "panel_voltage": 240,
      "panel_max_kw": 48.0,
      "circuits": [
        {
          "id": "circuit_1",
          "name": "Main HVAC",
          "enabled": true,
          "available": true,
          "current_kw": 2.1,
          "breaker_amps": 30,
          "current_amps": 8.75,
          "critical": false
        }
      ],
      "active_event": {
        "event_id": "evt-123",
        "shed_kw": 5.0,
        "end_ts": 1729703600
      },
      "timestamp": 1729700000
    }
  }
}"""

# 004, ven/loads/{venId}
LOADS_004 = """{
  "schemaVersion": "1.0",
  "venId": "ven-001",
  "timestamp": 1729700000,
  "loads": [
    {
      "loadId": "circuit_1",
      "name": "Main HVAC",
      "type": "hvac",
      "capacityKw": 5.0,
      "currentPowerKw": 2.1,
      "shedCapabilityKw": 5.0,
      "enabled": true,
      "priority": 2
    }
  ]
}"""

# 002, step 2 command
EVENT_CMD_002 = """{
  "op": "event",
  "correlationId": "evt-a1b2c3d4-abc12345",
  "venId": "volttron_thing",
  "event_id": "evt-a1b2c3d4",
  "shed_kw": 5.0,
  "duration_sec": 3600,
  "data": {
    "event_id": "evt-a1b2c3d4",
    "requestedReductionKw": 5.0,
    "duration_s": 3600
  }
}"""

T = datetime(2024, 10, 23, 16, 13, 20, tzinfo=UTC)  # 1729700000
NOW = datetime(2025, 10, 20, 15, 0, tzinfo=UTC)


def test_metering_example_maps_to_a_sample_with_merged_loads() -> None:
    sample = to_telemetry_sample(TelemetryWire.model_validate_json(METERING_004), METERING_004)
    assert sample.ven_id == "ven-001"
    assert sample.timestamp == T
    assert (sample.used_power_kw, sample.shed_power_kw) == (8.2, 4.8)
    assert sample.requested_reduction_kw == 5.0
    assert sample.event_id == "evt-123"
    assert sample.baseline_power_kw == 13.0
    assert sample.battery_soc == 85.5
    assert sample.panel_amperage_rating == 200
    assert sample.panel_voltage == 240
    assert sample.panel_max_kw == 48.0
    assert sample.current_amps == 34.2
    assert sample.panel_utilization_percent == 17.1
    assert sample.raw_payload == METERING_004
    hvac, pool = sample.loads
    assert hvac.load_id == "circuit_1"
    assert hvac.type == "hvac"
    assert hvac.capacity_kw == 5.0
    assert hvac.priority == 2
    assert hvac.shed_capability_kw == 5.0
    assert hvac.current_power_kw == 2.1
    assert hvac.breaker_amps == 30
    assert hvac.current_amps == 8.75
    assert hvac.critical is False
    assert pool.load_id == "circuit_3"
    assert pool.enabled is False
    assert pool.type is None
    assert pool.current_power_kw == 0.0
    assert pool.breaker_amps == 20


def test_battery_soc_accepts_both_spellings_and_iso_timestamps() -> None:
    text = '{"venId":"v","timestamp":"2024-10-23T16:13:20Z","batterySoc":40}'
    wire = TelemetryWire.model_validate_json(text)
    assert wire.battery_soc == 40.0
    assert wire.timestamp == T
    offset = TelemetryWire.model_validate_json(
        '{"venId":"v","timestamp":"2024-10-23T18:13:20+02:00"}'
    )
    assert offset.timestamp == T
    assert offset.timestamp.tzinfo is UTC
    naive = TelemetryWire.model_validate_json('{"venId":"v","timestamp":"2024-10-23T16:13:20"}')
    assert naive.timestamp == T
    fractional = TelemetryWire.model_validate_json('{"venId":"v","timestamp":1729700000.25}')
    assert fractional.timestamp.microsecond == 250000


def test_loads_without_circuits_and_unknown_fields_are_kept_in_raw() -> None:
    text = '{"venId":"v","timestamp":1729700000,"firmware":"2.1","loads":[{"loadId":"a"}]}'
    sample = to_telemetry_sample(TelemetryWire.model_validate_json(text), text)
    assert [ld.load_id for ld in sample.loads] == ["a"]
    assert json.loads(sample.raw_payload or "")["firmware"] == "2.1"


@pytest.mark.parametrize(
    "text",
    [
        '{"venId":"v","timestamp":1729700000,"usedPowerKw":false}',
        '{"venId":"v","timestamp":1729700000,"usedPowerKw":"8.2"}',
        '{"venId":"v","timestamp":1729700000,"usedPowerKw":NaN}',
        '{"venId":"v","timestamp":1729700000,"usedPowerKw":1e999}',
        '{"venId":"v","timestamp":true}',
        '{"venId":"v","timestamp":"yesterday"}',
        '{"venId":"v","timestamp":17297000000000}',
        '{"venId":"","timestamp":1729700000}',
        '{"venId":7,"timestamp":1729700000}',
        '{"timestamp":1729700000}',
        '{"venId":"v"}',
        '{"venId":"v","timestamp":1729700000,"circuits":[{"id":"c","enabled":1}]}',
        '{"venId":"v","timestamp":1729700000,"loads":[{"loadId":"c","priority":2.0}]}',
        "[1, 2]",
    ],
)
def test_wrong_types_are_refused(text: str) -> None:
    with pytest.raises(ValidationError):
        TelemetryWire.model_validate_json(text)


def test_oversize_and_non_utf8_payloads_are_refused() -> None:
    assert decode_text(b"x" * MAX_PAYLOAD_BYTES) == "x" * MAX_PAYLOAD_BYTES
    with pytest.raises(PayloadTooLargeError):
        decode_text(b"x" * (MAX_PAYLOAD_BYTES + 1))
    with pytest.raises(UnicodeDecodeError):
        decode_text(b"\xff\xfe")


def test_event_ack_short_shape_004() -> None:
    ack = to_ven_ack(AckWire.model_validate_json(EVENT_ACK_004), "ven-001", EVENT_ACK_004, NOW)
    assert (ack.ven_id, ack.op, ack.status) == ("ven-001", "event", "accepted")
    assert ack.event_id == "evt-123"
    assert ack.correlation_id == "xyz-123"
    assert (ack.requested_shed_kw, ack.actual_shed_kw) == (5.0, 4.8)
    assert ack.timestamp == T
    first, second = ack.circuits_curtailed
    assert (first.id, first.name, first.curtailed_kw) == ("circuit_3", "HVAC", 3.5)
    assert first.original_kw is None
    assert first.breaker_amps is None
    assert second.curtailed_kw == 1.3
    assert ack.raw_payload == json.loads(EVENT_ACK_004)


def test_event_ack_long_shape_002() -> None:
    ack = to_ven_ack(AckWire.model_validate_json(EVENT_ACK_002), "volttron_thing", EVENT_ACK_002,
                     NOW)  # fmt: skip
    assert ack.correlation_id == "evt-a1b2c3d4-abc12345"
    ev, heater = ack.circuits_curtailed
    assert (ev.id, ev.breaker_amps, ev.original_kw, ev.curtailed_kw, ev.final_kw) == (
        "ev1", 50, 8.5, 8.5, 0.0,
    )  # fmt: skip
    assert ev.critical is False
    assert heater.name == "Water Heater"
    assert ack.timestamp == datetime.fromtimestamp(1698765432, UTC)


def test_restore_and_ping_acks_need_no_event_id_nor_ts() -> None:
    ack = to_ven_ack(AckWire.model_validate_json(RESTORE_ACK_004), "v", RESTORE_ACK_004, NOW)
    assert ack.op == "restore"
    assert ack.event_id is None
    assert ack.accepted
    ping = '{"op":"ping","status":"pong","correlationId":"cmd-0000000a"}'
    pong = to_ven_ack(AckWire.model_validate_json(ping), "v", ping, NOW)
    assert pong.timestamp == NOW
    assert pong.circuits_curtailed == ()


def test_ack_curtailment_line_without_any_kw_is_refused() -> None:
    text = '{"op":"event","status":"accepted","circuits_curtailed":[{"id":"a"}]}'
    with pytest.raises(ValueError, match="curtailed_kw"):
        to_ven_ack(AckWire.model_validate_json(text), "v", text, NOW)
    with pytest.raises(ValidationError):
        AckWire.model_validate_json('{"op":"event","status":"accepted","actual_shed_kw":false}')


def test_shadow_loads_and_status() -> None:
    shadow = ShadowUpdateWire.model_validate_json(SHADOW_004)
    assert shadow.state.reported is not None
    assert shadow.state.reported["power_kw"] == 8.2
    with pytest.raises(ValidationError):
        ShadowUpdateWire.model_validate_json('{"reported": {}}')
    snap = LoadSnapshotWire.model_validate_json(LOADS_004)
    assert snap.schema_version == "1.0"
    assert snap.timestamp == T
    (load,) = snap.load_samples()
    assert (load.load_id, load.type, load.shed_capability_kw) == ("circuit_1", "hvac", 5.0)
    status = StatusWire.model_validate_json('{"venId":"v","status":"online","ts":1729700000}')
    assert status.timestamp == T
    assert status.details is None


def _command(op: CommandOp, **kw: object) -> Command:
    return Command(correlation_id="evt-a1b2c3d4-abc12345", ven_id="volttron_thing", op=op,
                   created_at=NOW, **kw)  # type: ignore[arg-type]  # fmt: skip


def test_event_command_is_the_documents_example_byte_for_byte() -> None:
    command = _command(CommandOp.EVENT, event_id="evt-a1b2c3d4", shed_kw=5.0, duration_sec=3600)
    assert command_payload(command) == json.loads(EVENT_CMD_002)
    compact = json.dumps(json.loads(EVENT_CMD_002), separators=(",", ":")).encode()
    assert encode_command(command) == compact


def test_restore_ping_and_shed_load_commands() -> None:
    restore = command_payload(_command(CommandOp.RESTORE))
    assert restore == {"op": "restore", "correlationId": "evt-a1b2c3d4-abc12345",
                       "venId": "volttron_thing"}  # fmt: skip
    assert command_payload(_command(CommandOp.RESTORE, event_id="evt-a1b2c3d4"))["event_id"] == (
        "evt-a1b2c3d4"
    )
    assert command_payload(_command(CommandOp.PING))["op"] == "ping"
    shed = command_payload(
        _command(CommandOp.SHED_LOAD, load_id="ev1", shed_kw=3, duration_sec=900)
    )
    assert shed == {
        "op": "shed_load", "correlationId": "evt-a1b2c3d4-abc12345", "venId": "volttron_thing",
        "load_id": "ev1", "shed_kw": 3.0, "duration_sec": 900,
    }  # fmt: skip
    with pytest.raises(ValueError, match="needs"):
        command_payload(_command(CommandOp.EVENT, event_id="evt-a1b2c3d4"))
    with pytest.raises(ValueError, match="needs"):
        command_payload(_command(CommandOp.SHED_LOAD, shed_kw=1.0))


def test_loads_without_a_circuit_are_kept_when_circuits_are_as_many() -> None:
    """Two circuits and two other loads: four lines, none dropped."""
    from adapters.mqtt.payloads import CircuitWire, LoadWire, merge_loads

    circuits = tuple(CircuitWire.model_validate({"id": f"c{i}", "currentKw": 1.0}) for i in (1, 2))
    loads = tuple(
        LoadWire.model_validate({"loadId": f"l{i}", "currentPowerKw": 2.0}) for i in (1, 2)
    )
    merged = merge_loads(circuits, loads)
    assert [m.load_id for m in merged] == ["c1", "c2", "l1", "l2"]
