"""The MQTT edge refuses what storage could not hold and what gridcore does not
believe (issue 11, items 2, 6 and 7): each such message is dead-lettered on
its own topic with a reason naming the field, between good messages that are
stored. (That a payload at every limit is stored: ``tests/integration/
test_edge_matches_storage.py``.)"""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any

import pytest
from pydantic import ValidationError
from tests.unit import test_mqtt_consumer_reports as consumer_reports
from tests.unit.test_mqtt_consumer import T0, metering
from tests.unit.test_mqtt_consumer_reports import ReportRig

from adapters.mqtt.consumer import ConsumerConfig
from adapters.mqtt.payloads import (
    AckWire,
    LoadSnapshotWire,
    ShadowUpdateWire,
    StatusWire,
    TelemetryWire,
    to_telemetry_sample,
    to_ven_ack,
)
from adapters.mqtt.topics import METERING
from gridcore import limits
from gridcore.errors import InvalidInput
from gridcore.plausibility import DEFAULT_MAX_LOADS_PER_VEN, ReportLimits

NOW = int(T0.timestamp())  # the rig's clock


def telemetry(**fields: Any) -> str:
    return json.dumps({"venId": "v1", "timestamp": NOW, **fields})


def load(**fields: Any) -> dict[str, Any]:
    return {"loadId": "a", **fields}


ONE_PAST_THE_LIMIT = [
    ("venId", telemetry(venId="bad ven/#")),
    ("venId", telemetry(venId="v" * (limits.VEN_ID_LENGTH + 1))),
    ("eventId", telemetry(eventId="e" * (limits.EVENT_ID_LENGTH + 1))),
    ("loads.0.loadId", telemetry(loads=[load(loadId="l" * (limits.LOAD_ID_LENGTH + 1))])),
    ("loads.0.loadId", telemetry(loads=[load(loadId="")])),
    ("loads.0.name", telemetry(loads=[load(name="é" * (limits.NAME_LENGTH + 1))])),
    ("loads.0.type", telemetry(loads=[load(type="t" * (limits.LOAD_TYPE_LENGTH + 1))])),
    ("loads.0.priority", telemetry(loads=[load(priority=limits.INT32_MAX + 1)])),
    ("loads.0.priority", telemetry(loads=[load(priority=limits.INT32_MIN - 1)])),
    ("circuits.0.id", telemetry(circuits=[{"id": "c" * (limits.LOAD_ID_LENGTH + 1)}])),
    ("circuits.0.name", telemetry(circuits=[{"id": "c", "name": "n" * 256}])),
    ("usedPowerKw", telemetry(usedPowerKw=1e400)),  # parses as infinity
    # Finite, but two of them sum to infinity in the fleet's stats.
    ("usedPowerKw", telemetry(usedPowerKw=1e308)),
    ("shedPowerKw", telemetry(shedPowerKw=-limits.MAX_KW * 2)),
    ("loads.0.currentPowerKw", telemetry(loads=[load(currentPowerKw=limits.MAX_KW * 2)])),
    ("circuits.0.current_kw", telemetry(circuits=[{"id": "c", "current_kw": 1e300}])),
]


def test_a_panel_exporting_reads_negative_and_is_believed() -> None:
    wire = TelemetryWire.model_validate_json(telemetry(usedPowerKw=-3.5, panelMaxKw=48.0))
    assert wire.used_power_kw == -3.5


@pytest.mark.parametrize(("field", "text"), ONE_PAST_THE_LIMIT)
def test_telemetry_one_past_a_limit_is_refused_naming_the_field(field: str, text: str) -> None:
    with pytest.raises(ValidationError) as refused:
        TelemetryWire.model_validate_json(text)
    assert [".".join(map(str, e["loc"])) for e in refused.value.errors()] == [field]


@pytest.mark.parametrize(
    ("field", "text"),
    [
        ("eventId", telemetry(eventId="e\u0000")),
        ("circuits.0.id", telemetry(circuits=[{"id": "c\u0000"}])),
        ("circuits.0.name", telemetry(circuits=[{"id": "c", "name": "\u0000"}])),
        ("loads.1.loadId", telemetry(loads=[load(), load(loadId="\u0000")])),
        ("loads.0.name", telemetry(loads=[load(name="x\u0000")])),
        ("loads.0.type", telemetry(loads=[load(type="\u0000ev")])),
    ],
)
def test_telemetry_text_with_nul_is_refused_naming_the_field(field: str, text: str) -> None:
    wire = TelemetryWire.model_validate_json(text)
    with pytest.raises(InvalidInput) as refused:
        to_telemetry_sample(wire, text)
    assert refused.value.field == field


def test_an_escaped_backslash_before_u0000_is_no_nul() -> None:
    text = telemetry(loads=[load(name="C:\\u0000")])  # the text holds \\u0000
    sample = to_telemetry_sample(TelemetryWire.model_validate_json(text), text)
    assert sample.loads[0].name == "C:\\u0000"


def ack(**fields: Any) -> str:
    return json.dumps({"op": "ping", "status": "pong", **fields})


@pytest.mark.parametrize(
    "text",
    [
        ack(op="o" * (limits.ACK_TEXT_LENGTH + 1)),
        ack(status="s" * (limits.ACK_TEXT_LENGTH + 1)),
        ack(correlationId="c" * (limits.ACK_CORRELATION_ID_LENGTH + 1)),
        ack(eventId="e" * (limits.EVENT_ID_LENGTH + 1)),
        ack(circuits_curtailed=[{"id": "c", "original_kw": 1.7e308, "final_kw": -1.7e308}]),
        ack(correlationId="c\u0000"),
        ack(anything={"kept": ["in raw_payload", "\u0000"]}),  # ven_acks.raw_payload is jsonb
        ack(anything=[1e400]),
        '{"op": "ping", "status": "pong", "anything": NaN}',
    ],
)
def test_an_ack_storage_cannot_hold_is_refused(text: str) -> None:
    with pytest.raises(ValueError, match=r"character|finite|NUL|number|should"):
        to_ven_ack(AckWire.model_validate_json(text), "v1", text, T0)


SNAPSHOT = '{"venId": "v1", "timestamp": 1e9, "loads": [%s]}'


@pytest.mark.parametrize(
    ("model", "text"),
    [
        (StatusWire, '{"venId": "v1", "status": "%s"}' % ("s" * 33)),
        (StatusWire, '{"venId": "v1", "status": "on", "details": {"a": "\\u0000"}}'),
        (StatusWire, '{"venId": "v1", "status": "on", "details": {"a": [NaN]}}'),
        (StatusWire, '{"venId": "v/1", "status": "on"}'),
        (LoadSnapshotWire, SNAPSHOT % '{"id": "a", "x": "\\u0000"}'),
        (LoadSnapshotWire, SNAPSHOT % '{"id": "a\\u0000"}'),
        (LoadSnapshotWire, SNAPSHOT % '{"id": "a", "x": 1e400}'),
        (ShadowUpdateWire, '{"state": {"reported": {"kW": Infinity}}}'),
        (ShadowUpdateWire, '{"state": {"reported": {}}, "meta": {"\\u0000": 1}}'),
        (ShadowUpdateWire, '{"state": {"desired": {}, "x": "\\u0000"}}'),
    ],
)
def test_documents_jsonb_cannot_hold_are_refused(model: type[Any], text: str) -> None:
    with pytest.raises(ValidationError):
        model.model_validate_json(text)


# --- through the consumer ---------------------------------------------------------------


rig = consumer_reports.rig  # the fixture: a started ReportRig (statuses and snapshots stored)


def reasons(rig: ReportRig) -> list[tuple[str, str]]:
    return [(letter.topic, letter.reason) for letter in rig.uow.state.dead_letters]


async def test_refused_telemetry_is_dead_lettered_on_its_topic_naming_the_field(
    rig: ReportRig,
) -> None:
    await rig.send(METERING, metering("v1", 0))
    await rig.send(METERING, telemetry(venId="bad ven/#"))
    await rig.send("ven/telemetry/v1", telemetry(loads=[load(loadId="l" * 200)]))
    await rig.send(METERING, telemetry(loads=[load(name="\u0000")]))
    await rig.send(METERING, metering("v1", 1))
    await rig.settle()
    assert len(rig.telemetry.samples) == 2
    (bad_ven, long_id, nul) = reasons(rig)
    assert bad_ven[0] == METERING and bad_ven[1].startswith("invalid: venId: String should")
    assert long_id[0] == "ven/telemetry/v1"
    assert long_id[1].startswith("invalid: loads.0.loadId: String should have at most 128")
    assert nul == (METERING, "invalid: loads.0.name: must not contain NUL characters (\\u0000)")


async def test_a_report_stamped_past_the_skew_is_refused_and_one_inside_it_is_no_heartbeat(
    rig: ReportRig,
) -> None:
    skew = ReportLimits().max_future_skew.total_seconds()
    inside, past = NOW + skew, NOW + skew + 1
    await rig.send(METERING, telemetry(timestamp=past, usedPowerKw=999.0))
    await rig.send("ven/status/v1", json.dumps({"venId": "v1", "status": "on", "ts": past}))
    await rig.send("ven/loads/v1", json.dumps({"venId": "v1", "timestamp": past, "loads": []}))
    await rig.send(METERING, telemetry(timestamp=inside, usedPowerKw=2.0))
    await rig.send("ven/status/v1", json.dumps({"venId": "v1", "status": "on", "ts": inside}))
    await rig.settle()
    topics = [topic for topic, reason in reasons(rig) if "s of clock skew is accepted" in reason]
    assert topics == [METERING, "ven/status/v1", "ven/loads/v1"]
    assert [s.used_power_kw for s in rig.telemetry.samples.values()] == [2.0]
    # Stored as stamped, but the VEN was heard from when the messages arrived.
    assert rig.uow.state.vens["v1"].last_seen_at == T0
    assert [r.timestamp.timestamp() for r in rig.reports.statuses["v1"]] == [inside]


async def test_more_loads_than_a_ven_may_have_is_refused(rig: ReportRig) -> None:
    most = DEFAULT_MAX_LOADS_PER_VEN
    circuits = [{"id": f"c{n}"} for n in range(most)]
    await rig.send(METERING, telemetry(circuits=circuits))
    await rig.send(METERING, telemetry(timestamp=NOW - 1, circuits=circuits, loads=[load()]))
    loads = [load(loadId=f"l{n}") for n in range(most + 1)]
    await rig.send("ven/loads/v1", json.dumps({"venId": "v1", "timestamp": NOW, "loads": loads}))
    await rig.settle()
    assert [len(s.loads) for s in rig.telemetry.samples.values()] == [most]
    expected = f"invalid: loads: {most + 1} loads is more than the {most} a VEN may report"
    assert reasons(rig) == [(METERING, expected), ("ven/loads/v1", expected)]


async def test_the_limits_are_the_configured_ones() -> None:
    rig = ReportRig()
    limits_ = ReportLimits(max_loads=1, max_future_skew=timedelta(0))
    rig.consumer.config = ConsumerConfig(limits=limits_)
    await rig.start()
    await rig.send(METERING, telemetry(timestamp=NOW + 1))
    await rig.send(METERING, telemetry(loads=[load(), load(loadId="b")]))
    await rig.send(METERING, telemetry(loads=[load()]))
    await rig.settle()
    await rig.stop()
    assert len(rig.telemetry.samples) == 1
    assert [reason.split(":")[1] for _, reason in reasons(rig)] == [" timestamp", " loads"]


async def test_a_sample_the_store_refuses_is_dead_lettered_on_its_topic_with_why() -> None:
    rig = ReportRig()
    rig.consumer.batcher.auto_register = False
    await rig.start()
    await rig.send("ven/telemetry/stranger", metering("stranger", 0))
    await rig.settle()
    await rig.stop()
    assert reasons(rig) == [("ven/telemetry/stranger", "refused: VEN is not registered")]
