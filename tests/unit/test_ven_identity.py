"""A message counts for the VEN its topic names, never for another (issue 11,
identity): where the topic carries the VEN id the payload must agree, and
``GRIDCORE_TELEMETRY_TOPICS=per-ven`` takes telemetry only from such topics.

The broker's part, a client publishing only on its own topics, is proven with
Mosquitto in ``tests/e2e/test_broker_identity.py``; here ``ven-a`` is that
client, and every message it sends claiming to be ``ven-b`` must be refused.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Callable
from datetime import timedelta

import pytest
from pydantic import ValidationError
from tests.unit.test_mqtt_consumer import T0
from tests.unit.test_mqtt_consumer_reports import ReportRig
from tests.unit.test_mqtt_worker import settings

from adapters.memory.broker import InMemoryBroker
from adapters.memory.repositories import InMemoryUnitOfWorkFactory
from adapters.memory.shadows import InMemoryShadowStore
from adapters.memory.telemetry import InMemoryTelemetry, InMemoryTelemetryStore
from adapters.mqtt.topics import METERING, MessageKind
from adapters.system import ManualClock
from entrypoints.settings import Settings
from entrypoints.simulator.fleet import FleetConfig, build_vens
from entrypoints.worker import Worker, subscription_routes, transport_factory
from gridcore.alerts import AlertFilter
from gridcore.ven import Ven

SENDER, VICTIM = "ven-a", "ven-b"
AT = T0  # the consumer's clock: what VENs report is stamped at the receive time
EPOCH = int(AT.timestamp())
TIMEOUT = 5.0


def body(**fields: object) -> bytes:
    return json.dumps(fields).encode()


# What the sender may publish on its own topic, naming ``ven`` in the payload
# the ways each kind allows (ACKs and statuses take venId or ven_id).
KINDS: dict[str, tuple[str, Callable[[str], bytes]]] = {
    "telemetry": (
        "ven/telemetry/{}",
        lambda ven: body(venId=ven, timestamp=EPOCH, usedPowerKw=1.5),
    ),
    "ack venId": ("ven/ack/{}", lambda ven: body(venId=ven, op="ping", status="pong", ts=EPOCH)),
    "ack ven_id": (
        "ven/ack/{}",
        lambda ven: body(ven_id=ven, op="ping", status="pong", ts=EPOCH + 1),
    ),
    "loads": (
        "ven/loads/{}",
        lambda ven: body(venId=ven, timestamp=EPOCH, loads=[{"loadId": "c1", "type": "hvac"}]),
    ),
    "status venId": (
        "ven/status/{}",
        lambda ven: body(venId=ven, status="online", timestamp=EPOCH),
    ),
    "status ven_id": (
        "ven/status/{}",
        lambda ven: body(ven_id=ven, status="degraded", timestamp=EPOCH + 1),
    ),
    "alert": (
        "ven/alerts/{}",
        lambda ven: body(venId=ven, timestamp=EPOCH, severity="warning", code="overcurrent"),
    ),
}


@pytest.fixture
async def rig() -> AsyncIterator[ReportRig]:
    """The consumer with every kind routed and stored; both VENs registered
    (status messages and snapshots register no VEN)."""
    r = ReportRig()
    async with r.uow() as uow:
        for ven in (SENDER, VICTIM):
            await uow.vens.add(Ven(id=ven, name=ven, registered_at=AT))
        await uow.commit()
    await r.start()
    yield r
    await r.stop()


async def stored_for(rig: ReportRig, ven: str) -> dict[str, int]:
    """How many of each kind of message were stored as ``ven``'s."""
    counts = {
        "telemetry": sum(1 for v, _ in rig.telemetry.samples if v == ven),
        "ack": sum(1 for a in rig.uow.state.acks if a.ven_id == ven),
        "loads": sum(1 for v, _ in rig.reports.snapshots if v == ven),
        "status": len(rig.reports.statuses.get(ven, [])),
        "shadow": int(await rig.shadows.get(ven) is not None),
        "alert": (await rig.alerts.alerts(AlertFilter(ven_id=ven))).total_count,
    }
    return {kind: n for kind, n in counts.items() if n}


@pytest.mark.parametrize("kind", list(KINDS))
async def test_a_payload_naming_another_ven_than_its_topic_is_refused(
    rig: ReportRig, kind: str
) -> None:
    topic_pattern, payload = KINDS[kind]
    own_topic = topic_pattern.format(SENDER)
    await rig.send(own_topic, payload(VICTIM))
    await rig.send(own_topic, payload(SENDER))  # the same message, honest, still goes through
    await rig.settle()
    (letter,) = rig.uow.state.dead_letters
    assert (letter.topic, letter.payload) == (own_topic, payload(VICTIM))
    assert letter.reason == f"ven mismatch: topic names VEN {SENDER!r}, payload {VICTIM!r}"
    assert await stored_for(rig, VICTIM) == {}
    assert await stored_for(rig, SENDER) == {kind.split(" ")[0]: 1}


async def test_an_ack_without_a_ven_in_its_payload_is_its_topics_vens(rig: ReportRig) -> None:
    """The documents' ACKs carry no venId: the topic alone names the VEN."""
    await rig.send(f"ven/ack/{SENDER}", body(op="ping", status="pong", ts=EPOCH))
    await rig.settle()
    assert rig.uow.state.dead_letters == []
    assert await stored_for(rig, SENDER) == {"ack": 1}


async def test_a_shadow_is_stored_as_its_topics_ven_whatever_the_document_says(
    rig: ReportRig,
) -> None:
    """A shadow document has no field that names its VEN (004 and AWS IoT
    alike), so there is nothing to disagree with: it is kept whole under the
    topic's VEN, and what it reports cannot land in another VEN's shadow."""
    document = {"state": {"reported": {"venId": VICTIM, "power_kw": 9.9}}}
    await rig.send(f"$aws/things/{SENDER}/shadow/update", json.dumps(document))
    await rig.settle()
    assert rig.uow.state.dead_letters == []
    assert await stored_for(rig, VICTIM) == {}
    stored = await rig.shadows.get(SENDER)
    assert stored is not None
    assert stored["state"]["reported"] == document["state"]["reported"]


async def test_on_the_shared_topic_the_payload_alone_names_the_ven(rig: ReportRig) -> None:
    """Why per-ven mode exists: ``volttron/metering`` carries no identity, so
    whoever can publish there is believed about any VEN."""
    await rig.send(METERING, KINDS["telemetry"][1](VICTIM))
    await rig.settle()
    assert await stored_for(rig, VICTIM) == {"telemetry": 1}


# --- GRIDCORE_TELEMETRY_TOPICS: where the worker takes telemetry from -------------------


def telemetry_filters(config: Settings) -> list[str]:
    return [r.topic_filter for r in subscription_routes(config) if r.kind is MessageKind.TELEMETRY]


def test_telemetry_comes_from_the_shared_topic_by_default() -> None:
    assert telemetry_filters(settings()) == ["volttron/metering"]
    assert telemetry_filters(settings(mqtt_topic_metering="site/metering")) == ["site/metering"]


def test_per_ven_mode_takes_telemetry_from_ven_topics_only() -> None:
    per_ven = settings(gridcore_telemetry_topics="per-ven", mqtt_shared_group="g")
    routes = {r.topic_filter: r.kind for r in subscription_routes(per_ven)}
    assert routes == {
        "$share/g/ven/telemetry/+": MessageKind.TELEMETRY,
        "$share/g/ven/ack/+": MessageKind.ACK,
        "$share/g/$aws/things/+/shadow/update": MessageKind.SHADOW,
        "$share/g/ven/alerts/+": MessageKind.ALERT,
    }
    both = settings(gridcore_telemetry_topics="both", MQTT_TOPICS="ven/telemetry/+")
    assert telemetry_filters(both) == ["volttron/metering", "ven/telemetry/+"]


def test_the_mode_is_read_from_its_variable_and_a_wrong_value_says_what_is_allowed(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("GRIDCORE_TELEMETRY_TOPICS", "per-ven")
    assert telemetry_filters(settings()) == ["ven/telemetry/+"]
    monkeypatch.setenv("GRIDCORE_TELEMETRY_TOPICS", "per_ven")
    with pytest.raises(ValidationError) as refused:
        settings()
    (error,) = refused.value.errors()
    assert error["loc"] == ("gridcore_telemetry_topics",)
    assert error["msg"] == "Input should be 'shared', 'per-ven' or 'both'"


def test_per_ven_mode_refuses_extra_telemetry_topics_that_name_no_ven() -> None:
    mixed = settings(gridcore_telemetry_topics="per-ven", MQTT_TOPICS="site/metering, ven/ack/+")
    with pytest.raises(ValueError, match=r"per-ven .* MQTT_TOPICS has site/metering: remove it"):
        subscription_routes(mixed)
    named = settings(gridcore_telemetry_topics="per-ven", MQTT_TOPICS="site/+/telemetry")
    assert telemetry_filters(named) == ["ven/telemetry/+", "site/+/telemetry"]


# --- the simulator publishes what a per-ven worker consumes ---------------------------


@pytest.mark.parametrize(("mode", "received_per_cycle"), [("per-ven", 1), ("both", 2)])
async def test_simulated_vens_feed_a_worker_in_per_ven_mode(
    mode: str, received_per_cycle: int
) -> None:
    """``gridcore ven`` publishes each sample on the metering topic and on
    ``ven/telemetry/{venId}`` (as the documents' VENs do): a per-ven worker
    stores each sample once from the latter, and with ``both`` the second
    copy is skipped as a duplicate."""
    broker = InMemoryBroker()
    uow = InMemoryUnitOfWorkFactory()
    telemetry = InMemoryTelemetry()
    config = settings(gridcore_telemetry_topics=mode)
    worker = Worker(
        transport_factory=transport_factory(config, broker), uow_factory=uow,
        telemetry_store=InMemoryTelemetryStore(uow.state, telemetry),
        shadow_store=InMemoryShadowStore(), clock=ManualClock(AT), settings=config,
    )  # fmt: skip
    running = asyncio.create_task(worker.run())
    await asyncio.wait_for(worker.ready.wait(), TIMEOUT)
    vens = build_vens(FleetConfig(count=2, seed=3))
    sender = broker.connect("simulator")
    cycles = 3
    for cycle in range(cycles):
        for ven in vens:
            for message in ven.report(AT + timedelta(seconds=5 * cycle)):
                await sender.publish(message.topic, message.payload, qos=1)
    expected = received_per_cycle * cycles * len(vens)

    async def all_handled() -> None:
        # Polling: the worker has no "handled n messages" event to wait on.
        while worker.stats is None or worker.stats.by_kind[MessageKind.TELEMETRY] < expected:  # noqa: ASYNC110
            await asyncio.sleep(0.01)
        await worker.consumer.flushed()  # type: ignore[union-attr]

    await asyncio.wait_for(all_handled(), TIMEOUT)
    worker.stop()
    await asyncio.wait_for(running, TIMEOUT)
    assert sorted(telemetry.samples) == sorted(
        (ven.ven_id, AT + timedelta(seconds=5 * cycle)) for ven in vens for cycle in range(cycles)
    )
    assert worker.stats is not None
    assert worker.stats.by_kind[MessageKind.TELEMETRY] == expected
    assert worker.stats.dead_lettered == 0
