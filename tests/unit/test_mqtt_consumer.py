"""The consumer over the in-memory broker and memory adapters: routing, every
dead-letter reason, batching, and holding telemetry through a storage outage."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Sequence
from datetime import UTC, datetime, timedelta

import pytest
from tests.unit.test_payloads import EVENT_ACK_002, METERING_004, SHADOW_004

from adapters.memory.broker import InMemoryBroker, InMemoryTransport
from adapters.memory.repositories import InMemoryUnitOfWork, InMemoryUnitOfWorkFactory
from adapters.memory.shadows import InMemoryShadowStore
from adapters.memory.telemetry import InMemoryTelemetry, InMemoryTelemetryStore
from adapters.mqtt.buffering import RetryPolicy
from adapters.mqtt.consumer import ConsumerConfig, MqttConsumer
from adapters.mqtt.payloads import MAX_PAYLOAD_BYTES
from adapters.mqtt.topics import (
    ACK_FILTER,
    LOADS_FILTER,
    METERING,
    SHADOW_UPDATE_FILTER,
    MessageKind,
    Route,
    Routed,
    TopicRouter,
)
from adapters.system import ManualClock
from gridcore import Command, CommandOp, CommandState, DrEvent, TelemetrySample
from gridcore.ports import AppendResult

T0 = datetime(2025, 10, 20, 15, 0, tzinfo=UTC)
TIMEOUT = 5.0
ROUTES = [
    Route(METERING, MessageKind.TELEMETRY),
    Route("ven/telemetry/+", MessageKind.TELEMETRY),
    Route(ACK_FILTER, MessageKind.ACK),
    Route(SHADOW_UPDATE_FILTER, MessageKind.SHADOW),
    Route(LOADS_FILTER, MessageKind.LOADS),
]


class OutageStore:
    """A telemetry store that fails while ``down``: a fake database outage, which
    takes the units of work (dead letters, ACKs) down with it."""

    def __init__(self, inner: InMemoryTelemetryStore) -> None:
        self.inner = inner
        self.down = False
        self.calls = 0

    async def append(
        self, samples: Sequence[TelemetrySample], *, auto_register: bool = True
    ) -> AppendResult:
        self.calls += 1
        if self.down:
            raise ConnectionError("database is down")
        return await self.inner.append(samples, auto_register=auto_register)


class OutageUow(InMemoryUnitOfWorkFactory):
    def __init__(self) -> None:
        super().__init__()
        self.store: OutageStore | None = None

    def __call__(self) -> InMemoryUnitOfWork:
        if self.store is not None and self.store.down:
            raise ConnectionError("database is down")
        return super().__call__()


class Rig:
    def __init__(self, batch_size: int = 10, router: TopicRouter | None = None) -> None:
        self.broker = InMemoryBroker()
        self.uow = OutageUow()
        self.telemetry = InMemoryTelemetry()
        self.store = OutageStore(InMemoryTelemetryStore(self.uow.state, self.telemetry))
        self.uow.store = self.store
        self.shadows = InMemoryShadowStore()
        self.clock = ManualClock(T0)
        self.transport: InMemoryTransport = self.broker.connect("worker")
        self.publisher = self.broker.connect("ven")
        config = ConsumerConfig(
            batch_size=batch_size, batch_max_delay=0.01,
            retry=RetryPolicy(initial_delay=0.01, max_delay=0.05),
        )  # fmt: skip
        self.consumer = MqttConsumer(
            self.transport, router or TopicRouter(ROUTES), uow_factory=self.uow,
            telemetry_store=self.store, shadow_store=self.shadows, clock=self.clock,
            config=config,
        )  # fmt: skip
        self.task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        for route in ROUTES:
            await self.transport.subscribe(route.topic_filter, qos=1)
        self.task = asyncio.create_task(self.consumer.run())

    async def send(self, topic: str, payload: bytes | str) -> None:
        data = payload.encode() if isinstance(payload, str) else payload
        await self.publisher.publish(topic, data, qos=1)

    async def settle(self) -> None:
        """Wait until everything published so far is handled and written."""

        async def idle() -> None:
            # Polling: the transport has no "drained" event to wait on.
            while not self.transport._queue.empty():  # noqa: ASYNC110
                await asyncio.sleep(0.005)
            await asyncio.sleep(0.02)
            await self.consumer.flushed()

        await asyncio.wait_for(idle(), TIMEOUT)

    async def stop(self) -> None:
        await self.transport.close()
        if self.task is not None:
            await asyncio.wait_for(self.task, TIMEOUT)


@pytest.fixture
async def rig() -> AsyncIterator[Rig]:
    r = Rig()
    await r.start()
    yield r
    await r.stop()


def metering(ven: str, second: int, **extra: object) -> str:
    body = {"venId": ven, "timestamp": 1729700000 + second, "usedPowerKw": 1.5, **extra}
    return json.dumps(body)


async def test_documents_examples_are_stored(rig: Rig) -> None:
    await rig.send(METERING, METERING_004)
    await rig.send("$aws/things/ven-001/shadow/update", SHADOW_004)
    await rig.settle()
    (sample,) = rig.telemetry.samples.values()
    assert sample.ven_id == "ven-001"
    assert sample.raw_payload == METERING_004
    assert [ld.load_id for ld in sample.loads] == ["circuit_1", "circuit_3"]
    assert "ven-001" in rig.uow.state.vens  # auto-registered
    assert rig.uow.state.vens["ven-001"].last_seen_at == sample.timestamp
    shadow = await rig.shadows.get("ven-001")
    assert shadow is not None
    assert shadow["state"]["reported"]["power_kw"] == 8.2


async def test_ack_matches_its_command(rig: Rig) -> None:
    command = Command(
        correlation_id="evt-a1b2c3d4-abc12345", ven_id="volttron_thing", op=CommandOp.EVENT,
        created_at=T0, event_id="evt-a1b2c3d4", shed_kw=5.0, duration_sec=3600,
    ).mark_sent(T0, timedelta(seconds=30))  # fmt: skip
    event = DrEvent(
        id="evt-a1b2c3d4", start_time=T0, end_time=T0 + timedelta(hours=1),
        requested_reduction_kw=10.0, created_at=T0,
    )  # fmt: skip
    async with rig.uow() as uow:
        await uow.events.add(event)
        await uow.commands.add_many([command])
        await uow.commit()
    await rig.send("ven/ack/volttron_thing", EVENT_ACK_002)
    await rig.settle()
    (ack,) = rig.uow.state.acks
    assert ack.ven_id == "volttron_thing"
    assert len(ack.circuits_curtailed) == 2
    stored = rig.uow.state.commands[command.correlation_id]
    assert stored.state is CommandState.ACKED
    assert stored.delivered_kw == 5.0


BAD = [
    ("unparseable", METERING, b'{"venId": "v1", "timestamp": '),
    ("unparseable", METERING, b"\xff\xfe not utf-8"),
    ("invalid", METERING, metering("v1", 1, usedPowerKw=False).encode()),
    ("invalid", METERING, metering("v1", 1, usedPowerKw="8.2").encode()),
    ("invalid", METERING, b'{"timestamp": 1729700000}'),
    ("oversize", METERING, metering("v1", 1, pad="x" * MAX_PAYLOAD_BYTES).encode()),
    ("ven mismatch", "ven/telemetry/v2", metering("v1", 1).encode()),
    ("ven mismatch", "ven/ack/v2", b'{"op":"ping","status":"pong","venId":"v1"}'),
    ("ven mismatch", "ven/loads/v2", b'{"venId":"v1","timestamp":1729700000,"loads":[]}'),
    ("invalid", "ven/ack/v1", b'{"op":"event"}'),
    ("invalid", "ven/ack/v1", b'{"op":"event","status":"ok","circuits_curtailed":[{"id":"a"}]}'),
    ("invalid", "$aws/things/v1/shadow/update", b'{"reported":{}}'),
    # Offsets at the calendar's edge overflow when converted to UTC (issue 11).
    ("invalid", METERING, b'{"venId":"v1","timestamp":"9999-12-31T23:59:59-23:59"}'),
    ("invalid", "ven/ack/v1", b'{"op":"ping","status":"pong","ts":"0001-01-01T00:00:00+01:00"}'),
    ("invalid", METERING, b'{"venId":"v1","timestamp":"1900-01-01T00:00:00Z"}'),
    ("invalid", "ven/ack/v1", b'{"op":"event","status":"accepted","actual_shed_kw":-5000}'),
    # What the ledger cannot look up or store fails the ACK alone, at the edge.
    ("invalid", "ven/ack/v1", b'{"op":"event","status":"accepted","correlationId":"c\\u0000"}'),
    ("invalid", "ven/ack/v1", b'{"op":"ev\\u0000","status":"accepted"}'),
    ("invalid", "ven/ack/" + "v" * 200, b'{"op":"ping","status":"pong"}'),
]


@pytest.mark.parametrize(("category", "topic", "payload"), BAD)
async def test_bad_messages_are_dead_lettered_between_good_ones(
    rig: Rig, category: str, topic: str, payload: bytes
) -> None:
    await rig.send(METERING, metering("v1", 0))
    await rig.send(topic, payload)
    await rig.send(METERING, metering("v1", 2))
    await rig.settle()
    assert len(rig.telemetry.samples) == 2
    (letter,) = rig.uow.state.dead_letters
    assert letter.topic == topic
    assert letter.payload == payload
    assert letter.reason.startswith(category)
    assert letter.received_at == T0
    assert rig.consumer.stats.rejected[category] == 1


class BrokenRouter(TopicRouter):
    """A router with a bug for one topic: what no validation foresaw."""

    def route(self, topic: str) -> Routed | None:
        if topic.endswith("/boom"):
            raise KeyError(topic)
        return super().route(topic)


async def test_an_unforeseen_failure_dead_letters_that_message_and_the_loop_goes_on() -> None:
    r = Rig(router=BrokenRouter(ROUTES))
    await r.start()
    await r.send(METERING, metering("v1", 0))
    await r.send("ven/telemetry/boom", metering("boom", 1))
    await r.send(METERING, metering("v1", 2))
    await r.settle()
    await r.stop()
    assert len(r.telemetry.samples) == 2
    (letter,) = r.uow.state.dead_letters
    assert (letter.topic, letter.reason) == (
        "ven/telemetry/boom",
        "internal: KeyError: 'ven/telemetry/boom'",
    )
    assert r.consumer.stats.rejected["internal"] == 1


async def test_unrouted_topic_is_dead_lettered() -> None:
    r = Rig()
    await r.start()
    await r.transport.subscribe("elsewhere/#", qos=1)
    await r.send("elsewhere/x", b"{}")
    await r.settle()
    await r.stop()
    assert r.uow.state.dead_letters[0].reason.startswith("no route")


async def test_batches_are_written_whole_and_duplicates_skipped(rig: Rig) -> None:
    for second in range(25):
        await rig.send(METERING, metering("v1", second))
    await rig.send(METERING, metering("v1", 3))  # a QoS 1 re-delivery
    await rig.settle()
    assert len(rig.telemetry.samples) == 25
    assert rig.consumer.stats.writes.stored == 25
    assert rig.consumer.stats.writes.duplicates == 1
    assert rig.store.calls <= 5  # batched, not one write per message


async def test_outage_holds_telemetry_and_writes_it_on_recovery(rig: Rig) -> None:
    rig.store.down = True
    for second in range(30):
        await rig.send(METERING, metering("v1", second))
    await asyncio.sleep(0.2)
    assert rig.telemetry.samples == {}
    assert rig.consumer.batcher.held == 30
    assert rig.consumer.stats.writes.failures >= 2
    rig.store.down = False
    await rig.settle()
    assert len(rig.telemetry.samples) == 30
    assert rig.uow.state.dead_letters == []


async def test_a_sample_the_store_always_refuses_is_dead_lettered(rig: Rig) -> None:
    class PoisonStore(OutageStore):
        async def append(
            self, samples: Sequence[TelemetrySample], *, auto_register: bool = True
        ) -> AppendResult:
            if any(s.ven_id == "poison" for s in samples):
                raise ValueError("value too long for type character varying(64)")
            return await self.inner.append(samples, auto_register=auto_register)

    rig.consumer.batcher._store = PoisonStore(rig.store.inner)
    await rig.send(METERING, metering("v1", 0))
    await rig.send(METERING, metering("poison", 1))
    await rig.send(METERING, metering("v1", 2))
    await rig.settle()
    assert len(rig.telemetry.samples) == 2
    (letter,) = rig.uow.state.dead_letters
    assert letter.reason.startswith("store refused the sample: ValueError")
    assert json.loads(letter.payload)["venId"] == "poison"


async def test_dead_letters_and_acks_are_held_through_an_outage(rig: Rig) -> None:
    rig.store.down = True
    await rig.send(METERING, b"not json")
    await rig.send("ven/ack/v1", b'{"op":"ping","status":"pong","correlationId":"cmd-00000001"}')
    await asyncio.sleep(0.2)
    assert rig.uow.state.dead_letters == []
    rig.store.down = False
    await rig.settle()
    assert len(rig.uow.state.dead_letters) == 1
    assert len(rig.uow.state.acks) == 1


async def test_receive_pauses_when_the_buffer_is_full() -> None:
    r = Rig(batch_size=5)
    r.consumer.batcher.max_held = 8
    r.store.down = True
    await r.start()
    for second in range(20):
        await r.send(METERING, metering("v1", second))
    await asyncio.sleep(0.2)
    assert r.consumer.batcher.held == 8  # the rest waits in the transport
    r.store.down = False
    await r.settle()
    await r.stop()
    assert len(r.telemetry.samples) == 20


async def test_refused_samples_of_unregistered_vens_are_dead_lettered() -> None:
    r = Rig()
    r.consumer.batcher.auto_register = False
    await r.start()
    await r.send(METERING, metering("stranger", 0))
    await r.settle()
    await r.stop()
    (letter,) = r.uow.state.dead_letters
    assert letter.reason.startswith("refused")
    assert json.loads(letter.payload)["venId"] == "stranger"


async def test_shutdown_writes_what_is_held() -> None:
    r = Rig(batch_size=1000)
    r.consumer.batcher.max_delay = 60.0
    await r.start()
    for second in range(7):
        await r.send(METERING, metering("v1", second))
    await asyncio.sleep(0.05)
    await r.stop()
    assert len(r.telemetry.samples) == 7
