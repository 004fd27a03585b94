"""Stopping and restarting Mosquitto mid-stream loses no QoS 1 message: the
worker's persistent session keeps what arrives while it is away, it
reconnects and resubscribes by itself, and the publisher re-sends what was
not acknowledged (duplicates are skipped by (VEN, timestamp))."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from tests.integration.mosquitto_process import MosquittoProcess

from adapters.memory.repositories import InMemoryUnitOfWorkFactory
from adapters.memory.shadows import InMemoryShadowStore
from adapters.memory.telemetry import InMemoryTelemetry, InMemoryTelemetryStore
from adapters.mqtt.transport import AiomqttTransport, MqttConnection
from adapters.system import SystemClock
from entrypoints.settings import Settings
from entrypoints.worker import Worker, transport_factory

pytestmark = pytest.mark.mosquitto
COUNT = 600
TIMEOUT = 60.0


@pytest.fixture
def broker(tmp_path: Path) -> Iterator[MosquittoProcess]:
    process = MosquittoProcess(tmp_path)
    process.start()
    yield process
    process.stop()


async def publish_all(broker: MosquittoProcess, restart_at: int) -> int:
    """Publish COUNT samples at QoS 1, re-sending any publish that fails, and
    stop/restart the broker once. Returns how many publishes were retried."""
    conn = MqttConnection(
        host="127.0.0.1", port=broker.port, client_id="ven-restart",
        publish_timeout=2.0, reconnect_initial=0.1, reconnect_max=0.5,
    )  # fmt: skip
    ven = await AiomqttTransport.connect(conn)
    retried = 0
    try:
        for i in range(COUNT):
            if i == restart_at:
                await asyncio.to_thread(broker.stop)
                await asyncio.sleep(0.5)
                await asyncio.to_thread(broker.start)
            body = json.dumps({"venId": "ven-r", "timestamp": 1729700000 + i, "usedPowerKw": 1.0})
            while True:
                try:
                    await ven.publish("volttron/metering", body.encode(), qos=1)
                    break
                except ConnectionError:
                    retried += 1
                    await asyncio.sleep(0.1)
    finally:
        await ven.close()
    return retried


async def test_no_qos1_message_is_lost_across_a_broker_restart(broker: MosquittoProcess) -> None:
    uow = InMemoryUnitOfWorkFactory()
    telemetry = InMemoryTelemetry()
    settings = Settings(
        _env_file=None,  # type: ignore[call-arg]
        mqtt_broker="127.0.0.1", mqtt_port=broker.port, mqtt_client_id="gridcore-restart",
        mqtt_batch_max_delay_ms=10,
    )  # fmt: skip
    worker = Worker(
        transport_factory=transport_factory(settings), uow_factory=uow,
        telemetry_store=InMemoryTelemetryStore(uow.state, telemetry),
        shadow_store=InMemoryShadowStore(), clock=SystemClock(), settings=settings,
    )  # fmt: skip
    running = asyncio.create_task(worker.run())
    await asyncio.wait_for(worker.ready.wait(), TIMEOUT)
    await asyncio.wait_for(publish_all(broker, restart_at=COUNT // 3), TIMEOUT)

    async def all_stored() -> None:
        while len(telemetry.samples) < COUNT:  # noqa: ASYNC110 - the store has no event
            await asyncio.sleep(0.05)

    async def resubscribed() -> None:
        # The session's backlog can be stored before the three SUBACKs of the
        # resubscription are back: the reconnect is counted once they are.
        while worker.transport is None or worker.transport.reconnects < 1:  # noqa: ASYNC110
            await asyncio.sleep(0.01)

    try:
        await asyncio.wait_for(all_stored(), TIMEOUT)
        await asyncio.wait_for(resubscribed(), TIMEOUT)
    finally:
        worker.stop()
        await asyncio.wait_for(running, TIMEOUT)
    stamps = {ts for (_, ts) in telemetry.samples}
    first = datetime.fromtimestamp(1729700000, UTC)
    assert len(stamps) == COUNT
    assert min(stamps) == first
    assert isinstance(worker.transport, AiomqttTransport)
    assert worker.transport.reconnects >= 1
