"""The worker stores status messages and load snapshots through the stores of
the Storage bundle, when their topics are configured."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

from tests.unit.test_mqtt_worker import TIMEOUT, settings
from tests.unit.test_payloads import LOADS_004

from adapters.memory.broker import InMemoryBroker
from adapters.system import ManualClock
from entrypoints.container import memory_storage
from entrypoints.worker import Worker, transport_factory


async def test_worker_stores_statuses_and_snapshots_from_the_storage_bundle() -> None:
    broker = InMemoryBroker()
    storage = memory_storage()
    statuses, snapshots = storage.statuses, storage.load_snapshots
    assert statuses is not None and snapshots is not None
    config = settings(mqtt_topic_status="ven/status/+", backend_loads_topic="ven/loads")
    worker = Worker(
        transport_factory=transport_factory(config, broker),
        uow_factory=storage.uow_factory,
        telemetry_store=storage.telemetry_store,
        shadow_store=storage.shadows,
        clock=ManualClock(datetime(2025, 1, 1, tzinfo=UTC)),
        settings=config,
        status_sink=storage.statuses,
        load_sink=storage.load_snapshots,
    )
    task = asyncio.create_task(worker.run())
    await asyncio.wait_for(worker.ready.wait(), TIMEOUT)
    ven = broker.connect("ven-001")
    status = b'{"venId": "ven-001", "status": "online", "timestamp": 1729700000}'
    await ven.publish("ven/status/ven-001", status, qos=1)
    await ven.publish("ven/loads/ven-001", LOADS_004.encode(), qos=1)

    async def stored() -> None:
        while True:
            latest = await statuses.latest_statuses(["ven-001"])
            snaps = await snapshots.latest_snapshots(["ven-001"])
            if latest and snaps:
                return
            await asyncio.sleep(0.01)

    await asyncio.wait_for(stored(), TIMEOUT)
    worker.stop()
    await asyncio.wait_for(task, TIMEOUT)
    assert worker.stats is not None and worker.stats.dead_lettered == 0
