"""aiomqtt transport specifics on real Mosquitto: reading pauses while the
receive queue is full (memory stays bounded) and nothing is lost by it."""

from __future__ import annotations

import asyncio
import gc
from collections.abc import Iterator
from pathlib import Path

import pytest
from mosquitto_process import MosquittoProcess

from adapters.mqtt.transport import AiomqttTransport, MqttConnection
from gridcore.ports import BrokerMessage

pytestmark = pytest.mark.mosquitto
TIMEOUT = 20.0


@pytest.fixture
def broker(tmp_path: Path) -> Iterator[MosquittoProcess]:
    process = MosquittoProcess(tmp_path)
    process.start()
    yield process
    process.stop()


@pytest.mark.slow  # a burst of 5,000 messages of 2 kB
async def test_reading_pauses_at_the_high_water_mark_and_loses_nothing(
    broker: MosquittoProcess,
) -> None:
    count, limit = 5000, 500
    conn = MqttConnection(host="127.0.0.1", port=broker.port, client_id="slow", max_queued=limit)
    slow = await AiomqttTransport.connect(conn)
    fast = await AiomqttTransport.connect(MqttConnection(host="127.0.0.1", port=broker.port))
    try:
        await slow.subscribe("bp/data", qos=1)
        payload = b"x" * 2000
        for i in range(count):
            await fast.publish("bp/data", i.to_bytes(4, "big") + payload, qos=1)
        await asyncio.sleep(0.3)
        # Paused: what waits in our queue is bounded by the mark (plus one read burst).
        assert slow._queue.qsize() < limit * 2
        assert slow._client.paused_fd is not None

        async def drain() -> list[int]:
            got: list[int] = []
            async for message in slow.messages():
                got.append(int.from_bytes(message.payload[:4], "big"))
                if len(got) == count:
                    return got
            return got

        got = await asyncio.wait_for(drain(), TIMEOUT)
        assert got == list(range(count))
    finally:
        await slow.close()
        await fast.close()


async def next_message(transport: AiomqttTransport) -> BrokerMessage:
    async for message in transport.messages():
        return message
    raise AssertionError("the transport closed")


async def test_settled_messages_are_acknowledged_only_when_settled(
    broker: MosquittoProcess,
) -> None:
    """A QoS 1 message on a ``settle_after_store`` filter stays the broker's
    until ``settle``: a worker that dies before it gets it again in its
    persistent session; one on any other topic is acknowledged on receipt."""
    conn = MqttConnection(
        host="127.0.0.1", port=broker.port, client_id="settling", persistent=True,
        settle_after_store=("st/ack/+",),
    )  # fmt: skip
    publisher = await AiomqttTransport.connect(MqttConnection(host="127.0.0.1", port=broker.port))
    worker = await AiomqttTransport.connect(conn)
    try:
        await worker.subscribe("st/#", qos=1)
        await publisher.publish("st/ack/v1", b"ack", qos=1)
        await publisher.publish("st/metering", b"telemetry", qos=1)
        ack = await asyncio.wait_for(next_message(worker), TIMEOUT)
        telemetry = await asyncio.wait_for(next_message(worker), TIMEOUT)
        assert (ack.topic, ack.settle is not None) == ("st/ack/v1", True)
        assert (telemetry.topic, telemetry.settle) == ("st/metering", None)
        await asyncio.sleep(0.2)  # the telemetry's PUBACK reaches the broker
        await worker.close()  # the process died before storing the ACK

        worker = await AiomqttTransport.connect(conn)
        again = await asyncio.wait_for(next_message(worker), TIMEOUT)
        assert again.payload == b"ack"  # redelivered; the telemetry is not
        assert again.settle is not None
        again.settle()
        await asyncio.sleep(0.2)
        await worker.close()

        worker = await AiomqttTransport.connect(conn)
        await publisher.publish("st/metering", b"after", qos=1)
        following = await asyncio.wait_for(next_message(worker), TIMEOUT)
        assert following.payload == b"after"  # nothing else was still owed
    finally:
        await worker.close()
        await publisher.close()


async def test_a_settle_from_a_previous_connection_is_not_sent_on_the_next(
    broker: MosquittoProcess,
) -> None:
    """Message ids restart with each connection: settling a message received
    before a reconnect must not acknowledge another one; the broker
    redelivers the old one instead."""
    conn = MqttConnection(
        host="127.0.0.1", port=broker.port, client_id="reconnecting", persistent=True,
        settle_after_store=("rc/+",), reconnect_initial=0.05,
    )  # fmt: skip
    publisher = await AiomqttTransport.connect(
        MqttConnection(host="127.0.0.1", port=broker.port, publish_timeout=20)
    )
    worker = await AiomqttTransport.connect(conn)
    try:
        await worker.subscribe("rc/+", qos=1)
        await publisher.publish("rc/a", b"first", qos=1)
        first = await asyncio.wait_for(next_message(worker), TIMEOUT)
        broker.stop()
        broker.start()
        await asyncio.wait_for(publisher._connected.wait(), TIMEOUT)
        await asyncio.wait_for(worker._connected.wait(), TIMEOUT)
        assert first.settle is not None
        first.settle()  # stale: dropped
        redelivered = await asyncio.wait_for(next_message(worker), TIMEOUT)
        assert redelivered.payload == b"first"
    finally:
        await worker.close()
        await publisher.close()


async def test_a_reconnect_leaves_no_unretrieved_exception(broker: MosquittoProcess) -> None:
    """aiomqtt records an unexpected disconnection in a future only its own
    context manager reads; unread, asyncio logs "Future exception was never
    retrieved" on every reconnect (issue 11)."""
    unhandled: list[dict[str, object]] = []
    loop = asyncio.get_running_loop()
    loop.set_exception_handler(lambda _loop, context: unhandled.append(context))
    try:
        conn = MqttConnection(host="127.0.0.1", port=broker.port, reconnect_initial=0.05)
        transport = await AiomqttTransport.connect(conn)
        broker.stop()
        broker.start()
        await asyncio.sleep(0.2)
        await asyncio.wait_for(transport._connected.wait(), TIMEOUT)
        broker.stop()  # lost again, then closed while disconnected
        await asyncio.sleep(0.1)
        await transport.close()
        del transport
        gc.collect()
        await asyncio.sleep(0)
    finally:
        loop.set_exception_handler(None)
    assert [c.get("message") for c in unhandled] == []
