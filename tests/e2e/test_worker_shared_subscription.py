"""Two workers on one MQTT 5 shared subscription split the stream on real
Mosquitto: every message is stored, none twice."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from pathlib import Path

import aiomqtt
import pytest
from tests.integration.mosquitto_process import MosquittoProcess

from adapters.memory.repositories import InMemoryUnitOfWorkFactory
from adapters.memory.shadows import InMemoryShadowStore
from adapters.memory.telemetry import InMemoryTelemetry, InMemoryTelemetryStore
from adapters.mqtt.topics import MessageKind
from adapters.system import SystemClock
from entrypoints.settings import Settings
from entrypoints.worker import Worker, transport_factory

pytestmark = pytest.mark.mosquitto
COUNT = 2000
TIMEOUT = 30.0


@pytest.fixture
def broker(tmp_path: Path) -> Iterator[MosquittoProcess]:
    process = MosquittoProcess(tmp_path)
    process.start()
    yield process
    process.stop()


async def test_two_workers_split_the_stream(broker: MosquittoProcess) -> None:
    uow = InMemoryUnitOfWorkFactory()
    telemetry = InMemoryTelemetry()
    workers = []
    for n in range(2):
        settings = Settings(
            _env_file=None,  # type: ignore[call-arg]
            mqtt_broker="127.0.0.1", mqtt_port=broker.port, mqtt_client_id=f"gridcore-{n}",
            mqtt_shared_group="gridcore", mqtt_batch_max_delay_ms=10,
        )  # fmt: skip
        workers.append(
            Worker(
                transport_factory=transport_factory(settings),
                uow_factory=uow,
                telemetry_store=InMemoryTelemetryStore(uow.state, telemetry),
                shadow_store=InMemoryShadowStore(),
                clock=SystemClock(),
                settings=settings,
            )
        )
    tasks = [asyncio.create_task(w.run()) for w in workers]
    for w in workers:
        await asyncio.wait_for(w.ready.wait(), TIMEOUT)
    async with aiomqtt.Client("127.0.0.1", broker.port, identifier="fleet") as fleet:
        for i in range(COUNT):
            body = {"venId": f"ven-{i % 50}", "timestamp": 1729700000 + i, "usedPowerKw": 1.0}
            await fleet.publish("volttron/metering", json.dumps(body).encode(), qos=1)

    async def all_stored() -> None:
        while len(telemetry.samples) < COUNT:  # noqa: ASYNC110 - the store has no event
            await asyncio.sleep(0.05)

    try:
        await asyncio.wait_for(all_stored(), TIMEOUT)
    finally:
        for w in workers:
            w.stop()
        await asyncio.wait_for(asyncio.gather(*tasks), TIMEOUT)
    received = [w.stats.by_kind[MessageKind.TELEMETRY] for w in workers if w.stats]
    assert sum(received) == COUNT  # nothing delivered twice
    assert min(received) > 0  # both took a share
    assert sum(w.stats.writes.duplicates for w in workers if w.stats) == 0
    assert len(telemetry.samples) == COUNT
