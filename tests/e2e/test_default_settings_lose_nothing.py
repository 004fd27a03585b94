"""With default settings (no MQTT_CLIENT_ID, nothing tuned) a real
``gridcore worker`` process on PostgreSQL loses no QoS 1 message (issue 11
item 8):

- a worker SIGKILLed while its ACK batch waits for the database: the ACKs
  were not yet acknowledged to the broker, which redelivers them to the
  restarted worker's session; every one is stored, once;
- a Mosquitto restart while a VEN publishes 500 messages a second: the
  worker's default session is persistent, so the broker keeps its
  subscription and queues what arrives before it is back.

Before: the worker had a clean session unless MQTT_CLIENT_ID was set (a
broker restart lost 32 % at 500 msg/s) and acknowledged every message on
receipt (a SIGKILL lost what was received but not committed).
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import test_dispatch_processes as dispatch_e2e
from sqlalchemy import text
from test_burst_stock_mosquitto import broker_in, count
from test_dispatch_processes import Backend, Fleet, Processes, process_env, wait_until
from tests.integration.mosquitto_process import MosquittoProcess

from adapters.mqtt.transport import AiomqttTransport, MqttConnection
from adapters.sql.tables import ven_acks, ven_telemetry

pytestmark = [pytest.mark.mosquitto, pytest.mark.postgres]

fleet = dispatch_e2e.fleet
backend = dispatch_e2e.backend
processes = dispatch_e2e.processes

ACKS = 20
RATE = 500  # messages a second
SECONDS = 6.0
VENS = 50


async def connect(fleet: Fleet, client_id: str) -> AiomqttTransport:
    conn = MqttConnection(
        host=fleet.host, port=fleet.port, client_id=client_id,
        publish_timeout=2.0, reconnect_initial=0.1, reconnect_max=0.5,
    )  # fmt: skip
    return await AiomqttTransport.connect(conn)


async def publish_until_acknowledged(ven: AiomqttTransport, topic: str, body: bytes) -> None:
    """As a VEN does: a QoS 1 publish the broker did not acknowledge is sent again."""
    while True:
        try:
            await ven.publish(topic, body, qos=1)
            return
        except ConnectionError:
            await asyncio.sleep(0.1)


async def test_acks_received_before_a_sigkill_are_stored_after_the_restart(
    fleet: Fleet, backend: Backend, processes: Processes
) -> None:
    ack_topic = fleet.metering_topic.rpartition("/")[0] + "/acks"  # this test's own
    env = {"MQTT_TOPIC_RESPONSES": ack_topic, "EVENT_COMMAND_ENABLED": "false"}
    worker = processes.start("worker", ["worker"], **env)
    await wait_until("the worker to subscribe", lambda: "consuming" in worker.log(), processes)
    ven = await connect(fleet, f"{fleet.prefix}-ven")
    blocker = await backend.engine.connect()
    try:
        # Hold every ACK write: the worker receives the ACKs, and its batch
        # waits for this lock until the worker is killed.
        transaction = await blocker.begin()
        await blocker.execute(text("LOCK TABLE ven_acks IN EXCLUSIVE MODE"))
        for n in range(ACKS):
            body = {"venId": f"{fleet.prefix}-{n}", "op": "ping", "status": "pong"}
            await ven.publish(ack_topic, json.dumps(body).encode(), qos=1)

        async def ack_write_waiting() -> bool:
            query = text(
                "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()"
                " AND wait_event_type = 'Lock' AND query ILIKE '%ven_acks%'"
            )
            async with backend.engine.connect() as conn:
                return int((await conn.execute(query)).scalar_one()) > 0

        await wait_until(
            "the worker's ACK write to wait for the lock", ack_write_waiting, processes
        )
        worker.kill()  # SIGKILL: nothing is flushed
        await transaction.rollback()
    finally:
        await blocker.close()
    assert await count(backend, ven_acks.c.ven_id, fleet.prefix) == 0

    processes.start("worker-again", ["worker"], **env)  # the same default client id

    async def all_acks() -> bool:
        return await count(backend, ven_acks.c.ven_id, fleet.prefix) >= ACKS

    try:
        await wait_until("the redelivered ACKs to be stored", all_acks, processes)
        await asyncio.sleep(0.5)  # a redelivery stored twice would show now
        assert await count(backend, ven_acks.c.ven_id, fleet.prefix) == ACKS
    finally:
        await ven.close()


@pytest.fixture
def private_broker(tmp_path: Path) -> Iterator[MosquittoProcess]:
    """Mosquitto with its stock limits (1,000 queued per client) and, as
    Debian's packaged configuration has it, persistence on."""
    with broker_in(tmp_path / "broker") as broker:
        yield broker


async def test_a_broker_restart_at_500_messages_a_second_loses_nothing(
    fleet: Fleet, backend: Backend, private_broker: MosquittoProcess, tmp_path: Path
) -> None:
    fleet = dataclasses.replace(fleet, host="127.0.0.1", port=private_broker.port)
    started = Processes(tmp_path, process_env(fleet))
    total = int(RATE * SECONDS)
    try:
        worker = started.start("worker", ["worker"], EVENT_COMMAND_ENABLED="false")
        await wait_until("the worker to subscribe", lambda: "consuming" in worker.log(), started)
        ven = await connect(fleet, f"{fleet.prefix}-fleet")
        now = int(time.time())
        began = time.monotonic()
        try:
            for n in range(total):
                if n == total // 3:
                    await asyncio.to_thread(private_broker.stop)
                    await asyncio.sleep(1.0)
                    await asyncio.to_thread(private_broker.start)
                await asyncio.sleep(began + n / RATE - time.monotonic())
                body = {
                    "venId": f"{fleet.prefix}-{n % VENS}",
                    "timestamp": now - total + n,  # one sample a second per VEN, in the past
                    "usedPowerKw": 1.0,
                }
                await publish_until_acknowledged(
                    ven, fleet.metering_topic, json.dumps(body).encode()
                )
        finally:
            await ven.close()

        async def all_stored() -> bool:
            return await count(backend, ven_telemetry.c.ven_id, fleet.prefix) >= total

        await wait_until("every sample to be stored", all_stored, started, within=30)
        assert await count(backend, ven_telemetry.c.ven_id, fleet.prefix) == total
        assert "reconnected" in worker.log()  # the restart did happen under the worker
    finally:
        started.kill_all()
