"""The consumer stores status messages and load snapshots through their stores
(memory adapters here), in batches, held through an outage; bad ones are
dead-lettered between good ones."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Sequence
from datetime import UTC, datetime, timedelta

import pytest
from tests.unit.test_mqtt_consumer import ROUTES, T0, Rig
from tests.unit.test_payloads import LOADS_004

from adapters.memory.alerts import InMemoryVenAlertStore
from adapters.memory.reports import (
    InMemoryLoadSnapshotStore,
    InMemoryReports,
    InMemoryVenStatusStore,
)
from adapters.mqtt.buffering import RetryPolicy
from adapters.mqtt.consumer import ConsumerConfig, MqttConsumer
from adapters.mqtt.topics import ALERTS_FILTER, MessageKind, Route, TopicRouter
from gridcore.reports import LoadSnapshot, VenStatusReport
from gridcore.ven import Ven

STATUS_FILTER = "ven/status/+"
EPOCH = 1729700000
AT = datetime.fromtimestamp(EPOCH, UTC)


class CountingStatuses(InMemoryVenStatusStore):
    def __init__(self, *args: object) -> None:
        super().__init__(*args)  # type: ignore[arg-type]
        self.calls = 0
        self.down = False

    async def record_statuses(self, reports: Sequence[VenStatusReport]) -> int:
        self.calls += 1
        if self.down:
            raise ConnectionError("database is down")
        return await super().record_statuses(reports)


class ReportRig(Rig):
    def __init__(self) -> None:
        super().__init__()
        self.reports = InMemoryReports()
        self.statuses = CountingStatuses(self.uow.state, self.reports)
        self.snapshots = InMemoryLoadSnapshotStore(self.uow.state, self.reports)
        self.alerts = InMemoryVenAlertStore()
        config = ConsumerConfig(
            batch_size=10, batch_max_delay=0.01,
            retry=RetryPolicy(initial_delay=0.01, max_delay=0.05),
        )  # fmt: skip
        routes = [
            *ROUTES,
            Route(STATUS_FILTER, MessageKind.STATUS),
            Route(ALERTS_FILTER, MessageKind.ALERT),
        ]
        self.consumer = MqttConsumer(
            self.transport, TopicRouter(routes),
            uow_factory=self.uow, telemetry_store=self.store, shadow_store=self.shadows,
            clock=self.clock, config=config, status_sink=self.statuses,
            load_sink=self.snapshots, alert_sink=self.alerts,
        )  # fmt: skip

    async def start(self) -> None:
        await self.transport.subscribe(STATUS_FILTER, qos=1)
        await self.transport.subscribe(ALERTS_FILTER, qos=1)
        await super().start()


@pytest.fixture
async def rig() -> AsyncIterator[ReportRig]:
    r = ReportRig()
    await r.start()
    yield r
    await r.stop()


def status(ven: str, second: int, value: str = "online", **details: object) -> str:
    body = {"venId": ven, "status": value, "timestamp": EPOCH + second}
    return json.dumps({**body, "details": details} if details else body)


async def test_the_documents_load_snapshot_is_stored(rig: ReportRig) -> None:
    await rig.send("ven/loads/ven-001", LOADS_004)
    await rig.settle()
    snap = (await rig.snapshots.latest_snapshots(["ven-001"]))["ven-001"]
    assert snap.timestamp == AT
    (load,) = snap.loads
    assert (load.load_id, load.type, load.current_power_kw, load.priority) == (
        "circuit_1", "hvac", 2.1, 2,
    )  # fmt: skip
    assert snap.raw_loads["circuit_1"]["shedCapabilityKw"] == 5.0
    assert rig.uow.state.dead_letters == []
    assert rig.consumer.stats.writes.counts["load snapshot"] == 1


async def test_status_messages_are_stored_and_count_as_heartbeats(rig: ReportRig) -> None:
    async with rig.uow() as uow:
        await uow.vens.add(Ven(id="ven-001", name="ven-001", registered_at=AT))
        await uow.commit()
    await rig.send("ven/status/ven-001", status("ven-001", 0, reason="boot"))
    await rig.send("ven/status/ven-001", status("ven-001", 30, "degraded"))
    await rig.send("ven/status/ven-001", status("ven-001", 60, "offline"))
    await rig.send("ven/status/ven-001", status("ven-001", 30, "degraded"))  # re-delivery
    await rig.settle()
    history = await rig.statuses.statuses("ven-001")
    assert [(r.status, r.timestamp) for r in history] == [
        ("offline", AT + timedelta(seconds=60)),
        ("degraded", AT + timedelta(seconds=30)),
        ("online", AT),
    ]
    assert history[-1].details == {"reason": "boot"}
    assert rig.uow.state.vens["ven-001"].last_seen_at == AT + timedelta(seconds=30)
    assert rig.statuses.calls <= 2  # batched, not a write per message


async def test_a_status_without_timestamp_takes_the_receive_time(rig: ReportRig) -> None:
    await rig.send("ven/status/v1", b'{"venId": "v1", "status": "online"}')
    await rig.settle()
    (report,) = await rig.statuses.statuses("v1")
    assert report.timestamp == T0


BAD = [
    ("invalid", "ven/status/v1", b'{"venId": "v1", "timestamp": 1729700000}'),
    ("invalid", "ven/status/v1", b'{"venId": "v1", "status": 1}'),
    ("invalid", "ven/status/v1", status("v1", 0, "x" * 40).encode()),
    ("invalid", "ven/status/v1", b'{"venId": "v1", "status": "online", "details": [1]}'),
    ("unparseable", "ven/status/v1", b'{"venId": "v1", "status": '),
    ("ven mismatch", "ven/status/v2", status("v1", 0).encode()),
    ("invalid", "ven/loads/v1", b'{"venId": "v1", "loads": []}'),
    ("invalid", "ven/loads/v1", b'{"venId":"v1","timestamp":1729700000,"loads":[{"name":"x"}]}'),
    ("invalid", "ven/loads/v1", b'{"venId":"v1","timestamp":1729700000,"loads":[{"loadId":""}]}'),
    ("invalid", "ven/loads/v1",
     b'{"venId":"v1","timestamp":1729700000,"loads":[{"loadId":"a","currentPowerKw":false}]}'),
    ("ven mismatch", "ven/loads/v2", b'{"venId":"v1","timestamp":1729700000,"loads":[]}'),
]  # fmt: skip


@pytest.mark.parametrize(("category", "topic", "payload"), BAD)
async def test_bad_reports_are_dead_lettered_between_good_ones(
    rig: ReportRig, category: str, topic: str, payload: bytes
) -> None:
    await rig.send("ven/status/v1", status("v1", 0))
    await rig.send(topic, payload)
    await rig.send("ven/loads/v1", LOADS_004.replace("ven-001", "v1"))
    await rig.settle()
    assert len(await rig.statuses.statuses("v1")) == 1
    assert "v1" in await rig.snapshots.latest_snapshots(["v1"])
    (letter,) = rig.uow.state.dead_letters
    assert (letter.topic, letter.payload) == (topic, payload)
    assert letter.reason.startswith(category)
    assert rig.consumer.stats.rejected[category] == 1


async def test_statuses_are_held_through_an_outage(rig: ReportRig) -> None:
    rig.statuses.down = rig.store.down = True  # the whole database: dead letters too
    for second in range(5):
        await rig.send("ven/status/v1", status("v1", second))
    await asyncio.sleep(0.15)
    assert rig.reports.statuses == {}
    assert rig.consumer.statuses is not None and rig.consumer.statuses.held == 5
    rig.statuses.down = rig.store.down = False
    await rig.settle()
    assert len(await rig.statuses.statuses("v1")) == 5
    assert rig.uow.state.dead_letters == []


async def test_a_report_the_store_always_refuses_is_dead_lettered(rig: ReportRig) -> None:
    class Refusing(InMemoryLoadSnapshotStore):
        async def record_snapshots(self, snapshots: Sequence[LoadSnapshot]) -> int:
            if any(s.ven_id == "poison" for s in snapshots):
                raise ValueError("value too long")
            return await super().record_snapshots(snapshots)

    assert rig.consumer.snapshots is not None
    rig.consumer.snapshots._write_items = Refusing(rig.uow.state, rig.reports).record_snapshots
    await rig.send("ven/loads/v1", LOADS_004.replace("ven-001", "v1"))
    await rig.send("ven/loads/poison", LOADS_004.replace("ven-001", "poison"))
    await rig.settle()
    await asyncio.wait_for(rig.consumer.flushed(), 5)
    (letter,) = rig.uow.state.dead_letters
    assert letter.topic == "ven/loads/poison"
    assert letter.reason.startswith("load snapshot write failed: ValueError")
    assert "v1" in await rig.snapshots.latest_snapshots(["v1"])


async def test_without_stores_reports_are_counted_not_stored() -> None:
    r = Rig()
    await r.start()
    await r.send("ven/loads/ven-001", LOADS_004)
    await r.settle()
    await r.stop()
    assert r.consumer.stats.unstored[MessageKind.LOADS] == 1
    assert r.uow.state.dead_letters == []
