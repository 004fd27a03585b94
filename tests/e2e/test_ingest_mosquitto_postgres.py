"""End to end: a real MQTT client publishes the documents' example payloads to
a Mosquitto of the test's own; the worker (aiomqtt) stores them in PostgreSQL.
Malformed JSON, wrong types, a wrong VEN and an oversized payload each land in
dead letters while the good messages around them are stored."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from uuid import uuid4

import aiomqtt
import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine
from tests.integration.mosquitto_process import MosquittoProcess
from tests.unit.test_payloads import EVENT_ACK_002, METERING_004, RESTORE_ACK_004, SHADOW_004

from adapters.mqtt.payloads import MAX_PAYLOAD_BYTES
from adapters.sql.engine import create_engine
from adapters.sql.migrate import migrate
from adapters.sql.shadows import SqlShadowStore
from adapters.sql.telemetry import SqlTelemetryStore
from adapters.sql.uow import SqlUnitOfWorkFactory
from adapters.system import SystemClock
from entrypoints.settings import Settings
from entrypoints.worker import Worker, transport_factory

pytestmark = [pytest.mark.mosquitto, pytest.mark.postgres]
TIMEOUT = 20.0


@pytest.fixture
def broker(tmp_path: Path) -> AsyncIterator[MosquittoProcess]:
    process = MosquittoProcess(tmp_path)
    process.start()
    yield process  # type: ignore[misc]
    process.stop()


@dataclass
class Storage:
    engine: AsyncEngine
    uow_factory: SqlUnitOfWorkFactory
    telemetry_store: SqlTelemetryStore
    shadows: SqlShadowStore


@pytest.fixture
async def storage(postgres_url: str) -> AsyncIterator[Storage]:
    await migrate(postgres_url, retries=3, wait_seconds=0.5)
    engine = create_engine(postgres_url, timeout=10.0)
    store = SqlTelemetryStore(engine)
    yield Storage(engine, SqlUnitOfWorkFactory(engine), store, SqlShadowStore(engine))
    await store.close()
    await engine.dispose()


async def scalar(storage: Storage, sql: str) -> Any:
    async with storage.engine.connect() as conn:
        return (await conn.execute(text(sql))).scalar()


async def rows(storage: Storage, sql: str) -> list[Any]:
    async with storage.engine.connect() as conn:
        return list((await conn.execute(text(sql))).all())


async def wait_for(storage: Storage, sql: str, expected: int) -> None:
    async def poll() -> None:
        # Polling: rows arriving in another process's commits have no event to await.
        while await scalar(storage, sql) < expected:  # noqa: ASYNC110
            await asyncio.sleep(0.05)

    try:
        await asyncio.wait_for(poll(), TIMEOUT)
    except TimeoutError:
        got = await scalar(storage, sql)
        pytest.fail(f"{sql}: {got} rows, expected {expected}")


def metering(ven: str, second: int, **extra: object) -> bytes:
    body = {"venId": ven, "timestamp": 1729700000 + second, "usedPowerKw": 2.5, **extra}
    return json.dumps(body).encode()


async def test_documents_examples_and_bad_input(broker: MosquittoProcess, storage: Storage) -> None:
    settings = Settings(
        _env_file=None,  # type: ignore[call-arg]
        mqtt_broker="127.0.0.1", mqtt_port=broker.port,
        mqtt_client_id=f"gridcore-e2e-{uuid4().hex[:8]}", mqtt_batch_max_delay_ms=20,
    )  # fmt: skip
    worker = Worker(
        transport_factory=transport_factory(settings), uow_factory=storage.uow_factory,
        telemetry_store=storage.telemetry_store, shadow_store=storage.shadows,
        clock=SystemClock(),
        settings=settings,
    )  # fmt: skip
    running = asyncio.create_task(worker.run())
    await asyncio.wait_for(worker.ready.wait(), TIMEOUT)

    bad = [
        ("volttron/metering", b'{"venId": "ven-001", "timestamp": ', "unparseable"),
        ("volttron/metering", metering("ven-001", 50, usedPowerKw=False), "invalid"),
        (
            "ven/ack/ven-002",
            b'{"op":"restore","status":"success","venId":"ven-001"}',
            "ven mismatch",
        ),
        ("volttron/metering", metering("ven-001", 51, pad="x" * MAX_PAYLOAD_BYTES), "oversize"),
    ]
    async with aiomqtt.Client("127.0.0.1", broker.port, identifier="ven-e2e") as ven:
        await ven.publish("volttron/metering", METERING_004.encode(), qos=1)
        await ven.publish("ven/ack/volttron_thing", EVENT_ACK_002.encode(), qos=1)
        await ven.publish("ven/ack/ven-001", RESTORE_ACK_004.encode(), qos=1)
        await ven.publish("$aws/things/ven-001/shadow/update", SHADOW_004.encode(), qos=1)
        for i, (topic, payload, _) in enumerate(bad):
            await ven.publish("volttron/metering", metering("ven-001", 10 + i), qos=1)
            await ven.publish(topic, payload, qos=1)
        await ven.publish("volttron/metering", metering("ven-001", 20), qos=0)

    await wait_for(storage, "SELECT count(*) FROM ven_telemetry", 6)
    await wait_for(storage, "SELECT count(*) FROM dead_letters", len(bad))
    await wait_for(storage, "SELECT count(*) FROM ven_acks", 2)
    worker.stop()
    await asyncio.wait_for(running, TIMEOUT)

    (raw,) = await rows(
        storage, "SELECT raw_payload FROM ven_telemetry WHERE timestamp = to_timestamp(1729700000)"
    )
    assert raw[0] == METERING_004  # the message exactly as received
    loads = await rows(storage, "SELECT load_id FROM ven_load_samples ORDER BY load_id")
    assert [r[0] for r in loads] == ["circuit_1", "circuit_3"]
    assert await scalar(storage, "SELECT count(*) FROM vens WHERE id = 'ven-001'") == 1
    letters = await rows(storage, "SELECT topic, payload, reason FROM dead_letters ORDER BY id")
    assert [(t, bytes(p)) for t, p, _ in letters] == [(t, p) for t, p, _ in bad]
    assert [r.split(":")[0] for _, _, r in letters] == [c for _, _, c in bad]
    acks = await rows(storage, "SELECT ven_id, op, status FROM ven_acks ORDER BY id")
    assert sorted(acks) == [("ven-001", "restore", "success"), ("volttron_thing", "event",
                                                                "accepted")]  # fmt: skip
    shadow = await storage.shadows.get("ven-001")
    assert shadow is not None
    assert shadow["state"]["reported"]["panel_max_kw"] == 48.0
