"""The worker over the in-memory broker: subscriptions from settings, shared
groups, and a clean stop that writes what it holds."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

from tests.unit.test_payloads import METERING_004, SHADOW_004

from adapters.memory.broker import InMemoryBroker
from adapters.memory.repositories import InMemoryUnitOfWorkFactory
from adapters.memory.shadows import InMemoryShadowStore
from adapters.memory.telemetry import InMemoryTelemetry, InMemoryTelemetryStore
from adapters.mqtt.topics import MessageKind
from adapters.system import ManualClock
from entrypoints.settings import Settings
from entrypoints.worker import Worker, subscription_routes, transport_factory

TIMEOUT = 5.0


def settings(**values: object) -> Settings:
    return Settings(_env_file=None, **values)  # type: ignore[call-arg]


def test_routes_follow_settings() -> None:
    plain = {r.topic_filter: r.kind for r in subscription_routes(settings())}
    assert plain == {
        "volttron/metering": MessageKind.TELEMETRY,
        "ven/ack/+": MessageKind.ACK,
        "$aws/things/+/shadow/update": MessageKind.SHADOW,
        "ven/alerts/+": MessageKind.ALERT,
    }
    full = settings(
        mqtt_shared_group="gridcore", mqtt_topic_status="ven/status/+",
        backend_loads_topic="ven/loads/+", MQTT_TOPICS="ven/telemetry/+, site/metering",
    )  # fmt: skip
    routes = {r.topic_filter: r.kind for r in subscription_routes(full)}
    assert routes["$share/gridcore/volttron/metering"] is MessageKind.TELEMETRY
    assert routes["$share/gridcore/ven/status/+"] is MessageKind.STATUS
    assert routes["$share/gridcore/ven/loads/+"] is MessageKind.LOADS
    assert routes["$share/gridcore/ven/telemetry/+"] is MessageKind.TELEMETRY
    assert routes["$share/gridcore/site/metering"] is MessageKind.TELEMETRY


async def test_worker_consumes_from_the_in_memory_broker() -> None:
    broker = InMemoryBroker()
    uow = InMemoryUnitOfWorkFactory()
    telemetry = InMemoryTelemetry()
    shadows = InMemoryShadowStore()
    config = settings(mqtt_shared_group="gridcore")
    workers = [
        Worker(
            transport_factory=transport_factory(config, broker),
            uow_factory=uow,
            telemetry_store=InMemoryTelemetryStore(uow.state, telemetry),
            shadow_store=shadows,
            clock=ManualClock(datetime(2025, 1, 1, tzinfo=UTC)),
            settings=config,
        )
        for _ in range(2)
    ]
    tasks = [asyncio.create_task(w.run()) for w in workers]
    for w in workers:
        await asyncio.wait_for(w.ready.wait(), TIMEOUT)
    ven = broker.connect("ven-001")
    await ven.publish("volttron/metering", METERING_004.encode(), qos=1)
    for i in range(1, 40):
        body = f'{{"venId":"ven-002","timestamp":{1729700000 + i},"usedPowerKw":1.0}}'
        await ven.publish("volttron/metering", body.encode(), qos=0)
    await ven.publish("$aws/things/ven-001/shadow/update", SHADOW_004.encode(), qos=1)
    await asyncio.sleep(0.2)
    for w in workers:
        w.stop()
    await asyncio.wait_for(asyncio.gather(*tasks), TIMEOUT)
    assert len(telemetry.samples) == 40
    shares = [w.stats.by_kind[MessageKind.TELEMETRY] for w in workers if w.stats]
    assert sorted(shares) == [20, 20]  # the shared group split the stream
    assert await shadows.get("ven-001") is not None
