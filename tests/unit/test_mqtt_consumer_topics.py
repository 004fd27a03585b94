"""The consumer on 004's future topics: alerts (``ven/alerts/{venId}``) are
stored, bounded and counted by severity; batched metering messages are read
sample by sample, a bad sample dead-lettered alone."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import pytest
from tests.unit.test_mqtt_consumer import T0
from tests.unit.test_mqtt_consumer_reports import ReportRig

from adapters.mqtt.payloads import MAX_BATCH_SAMPLES
from adapters.mqtt.topics import METERING
from gridcore.alerts import AlertFilter, Severity

EPOCH = int(T0.timestamp())


TopicsRig = ReportRig  # statuses, load snapshots and alerts routed and stored


@pytest.fixture
async def rig() -> AsyncIterator[TopicsRig]:
    r = TopicsRig()
    await r.start()
    yield r
    await r.stop()


def alert(ven: str = "ven-1", **fields: Any) -> str:
    body = {"venId": ven, "timestamp": EPOCH, "severity": "critical", "code": "overcurrent",
            "message": "HVAC draws 31 A on a 30 A breaker", "loadId": "circuit_1",
            "details": {"currentAmps": 31.0}}  # fmt: skip
    return json.dumps({**body, **fields})


def sample(second: int, ven: str | None = "ven-1", **fields: Any) -> dict[str, Any]:
    body: dict[str, Any] = {"timestamp": EPOCH + second, "usedPowerKw": 1.0 + second}
    if ven is not None:
        body["venId"] = ven
    return {**body, **fields}


async def test_alerts_are_stored_once_and_counted_by_severity(rig: TopicsRig) -> None:
    await rig.send("ven/alerts/ven-1", alert())
    await rig.send("ven/alerts/ven-1", alert())  # a QoS 1 re-delivery
    await rig.send("ven/alerts/ven-1", alert(severity="WARNING", code="battery_low", loadId=None))
    # The tolerated spellings: ts, type, load_id; no venId (the topic names the VEN).
    await rig.send(
        "ven/alerts/ven-2",
        json.dumps({"ts": EPOCH, "severity": "info", "type": "restart", "load_id": "c9"}),
    )
    await rig.settle()
    page = await rig.alerts.alerts(AlertFilter())
    assert page.total_count == 3
    assert {(a.ven_id, a.severity, a.code, a.load_id) for a in page.items} == {
        ("ven-1", Severity.CRITICAL, "overcurrent", "circuit_1"),
        ("ven-1", Severity.WARNING, "battery_low", None),
        ("ven-2", Severity.INFO, "restart", "c9"),
    }
    first = next(a for a in page.items if a.code == "overcurrent")
    assert first.details == {"currentAmps": 31.0} and first.received_at == T0
    assert rig.consumer.stats.alerts == {"critical": 2, "warning": 1, "info": 1}
    assert rig.uow.state.dead_letters == []


@pytest.mark.parametrize(
    ("payload", "reason"),
    [
        (alert(severity="panic"), "invalid: severity: must be one of critical, warning, info"),
        (alert(ven="ven-9"), "ven mismatch: topic names VEN 'ven-1', payload 'ven-9'"),
        (alert(code=""), "invalid: code"),
        (alert(message="x" * 1001), "invalid: message"),
        (alert(details={"blob": "x" * 20_000}), "oversize: an alert of"),
        ("{not json", "unparseable"),
    ],
)
async def test_bad_alerts_are_dead_lettered_between_good_ones(
    rig: TopicsRig, payload: str, reason: str
) -> None:
    await rig.send("ven/alerts/ven-1", payload)
    await rig.send("ven/alerts/ven-1", alert(code="after"))
    await rig.settle()
    (letter,) = rig.uow.state.dead_letters
    assert letter.reason.startswith(reason), letter.reason
    assert letter.payload == payload.encode()
    assert [a.code for a in (await rig.alerts.alerts(AlertFilter())).items] == ["after"]


async def test_a_batch_is_stored_sample_by_sample(rig: TopicsRig) -> None:
    batch = {"venId": "ven-1", "timestamp": EPOCH + 2, "samples": [sample(0, None), sample(1)]}
    await rig.send(METERING, json.dumps(batch))
    await rig.send(METERING, json.dumps([sample(2), sample(3, ven="ven-2")]))  # a bare array
    await rig.send(METERING, json.dumps(sample(4)))  # single samples go on as before
    await rig.settle()
    stored = sorted(
        (ven, s.timestamp.timestamp() - EPOCH) for (ven, _), s in rig.telemetry.samples.items()
    )
    assert stored == [("ven-1", 0), ("ven-1", 1), ("ven-1", 2), ("ven-1", 4), ("ven-2", 3)]
    first = next(s for s in rig.telemetry.samples.values() if s.timestamp.timestamp() == EPOCH)
    # Each sample keeps its own JSON, with the batch's venId.
    assert json.loads(first.raw_payload) == {**sample(0, None), "venId": "ven-1"}
    assert rig.consumer.stats.batched_samples == 4
    assert rig.uow.state.dead_letters == []


async def test_a_bad_sample_is_dead_lettered_alone(rig: TopicsRig) -> None:
    samples = [sample(0), sample(1, usedPowerKw="lots"), 7, sample(3, ven="ven-9"), sample(4)]
    await rig.send(METERING, json.dumps({"venId": "ven-1", "samples": samples}))
    await rig.settle()
    assert sorted(s.timestamp.timestamp() - EPOCH for s in rig.telemetry.samples.values()) == [0, 4]
    letters = {letter.reason.split(": ")[1]: letter for letter in rig.uow.state.dead_letters}
    assert set(letters) == {"sample 2 of 5", "sample 3 of 5", "sample 4 of 5"}
    assert json.loads(letters["sample 2 of 5"].payload) == samples[1]  # the sample, not the batch
    assert "usedPowerKw" in letters["sample 2 of 5"].reason
    assert letters["sample 4 of 5"].reason == (
        "ven mismatch: sample 4 of 5: batch of VEN 'ven-1' holds a sample of 'ven-9'"
    )
    assert (
        letters["sample 3 of 5"].reason == "invalid: sample 3 of 5: a sample must be a JSON object"
    )
    assert rig.consumer.stats.rejected == {"invalid": 2, "ven mismatch": 1}


@pytest.mark.parametrize(
    ("batch", "reason"),
    [
        ({"venId": "ven-1", "samples": []}, "invalid: samples: must be a non-empty list"),
        ({"venId": "ven-1", "samples": {"a": 1}}, "invalid: samples: must be a non-empty list"),
        ({"venId": 5, "samples": [sample(0)]}, "invalid: venId"),
        (
            {"venId": "ven-1", "samples": [sample(n) for n in range(MAX_BATCH_SAMPLES + 1)]},
            f"invalid: samples: {MAX_BATCH_SAMPLES + 1} in one message",
        ),
    ],
)
async def test_a_batch_that_is_not_one_is_dead_lettered_whole(
    rig: TopicsRig, batch: dict[str, Any], reason: str
) -> None:
    await rig.send(METERING, json.dumps(batch))
    await rig.send(METERING, json.dumps(sample(9)))
    await rig.settle()
    (letter,) = rig.uow.state.dead_letters
    assert letter.reason.startswith(reason), letter.reason
    assert [s.timestamp.timestamp() - EPOCH for s in rig.telemetry.samples.values()] == [9]


async def test_samples_in_a_value_do_not_make_a_batch(rig: TopicsRig) -> None:
    """A single sample naming "samples" in a text field is still a single sample."""
    await rig.send(METERING, json.dumps(sample(0, eventId='"samples"')))
    await rig.settle()
    assert len(rig.telemetry.samples) == 1 and rig.uow.state.dead_letters == []


@pytest.mark.parametrize(
    "unreadable",
    [
        "[" * 100_000,
        '{"venId": "ven-1", "samples": ' + "[" * 100_000,
        "[" + "1" * 5000 + "]",  # found by the consumer fuzz
    ],
    ids=["nested", "nested-samples", "huge-integer"],
)
async def test_a_batch_python_cannot_read_is_unparseable_not_a_failure(
    rig: TopicsRig, unreadable: str
) -> None:
    """Python's json module recurses, and refuses integers over 4,300 digits:
    either would be a RecursionError or ValueError (an 'internal' dead letter,
    a gap in validation) without the guard."""
    await rig.send(METERING, unreadable)
    await rig.send(METERING, json.dumps(sample(9)))
    await rig.settle()
    (letter,) = rig.uow.state.dead_letters
    assert letter.reason.startswith("unparseable"), letter.reason
    assert len(rig.telemetry.samples) == 1
