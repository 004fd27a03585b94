"""aiomqtt transport specifics on real Mosquitto: reading pauses while the
receive queue is full (memory stays bounded) and nothing is lost by it."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import pytest
from mosquitto_process import MosquittoProcess

from adapters.mqtt.transport import AiomqttTransport, MqttConnection

pytestmark = pytest.mark.mosquitto
TIMEOUT = 20.0


@pytest.fixture
def broker(tmp_path: Path) -> Iterator[MosquittoProcess]:
    process = MosquittoProcess(tmp_path)
    process.start()
    yield process
    process.stop()


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
