"""A fleet coming back after an outage, or answering an event at once: 2,000
VENs each publish one QoS 1 message (telemetry, or an ACK) within half a
second, into a Mosquitto with its stock limits (20 messages in flight and
1,000 queued per client), consumed by a real ``gridcore worker`` process on
PostgreSQL. Every message is stored.

Mosquitto drops, without a word, what it would have to queue for a client
beyond ``max_queued_messages``, and it queues whatever exceeds the client's
in-flight window (issue 11 item 9: 196 of 2,000 were lost). The worker
connects with MQTT 5 and a Receive Maximum of 10,000, so the broker streams
the burst to it instead of queueing it. ACKs are acknowledged only after
their commit: over MQTT 3.1.1 they would be held to 20 per commit, and about
40 % of them dropped, on a stock broker; with the shipped
``deploy/mosquitto/gridcore.conf`` a 3.1.1 worker keeps them all too.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import aiomqtt
import pytest
import test_dispatch_processes as dispatch_e2e
from sqlalchemy import ColumnElement, func, select
from test_dispatch_processes import Backend, Fleet, Processes, process_env, wait_until
from tests.integration.mosquitto_process import MosquittoProcess, deployment_config

from adapters.sql.tables import ven_acks, ven_telemetry, vens

pytestmark = [pytest.mark.mosquitto, pytest.mark.postgres]

fleet = dispatch_e2e.fleet
backend = dispatch_e2e.backend

VENS = 2_000
BURST_SECONDS = 0.5  # the whole fleet publishes within this (as fast as it can)
CONNECTING_AT_ONCE = 200  # connection attempts in flight while the fleet connects
RECOMMENDED = Path(__file__).parents[2] / "deploy" / "mosquitto" / "gridcore.conf"


def broker_in(directory: Path, recommended: bool = False) -> MosquittoProcess:
    directory.mkdir()
    if not recommended:
        return MosquittoProcess(directory, stock_limits=True)
    shipped = deployment_config(RECOMMENDED, {"/var/lib/mosquitto/": directory})
    # The test broker sets persistence itself (Mosquitto refuses a second location).
    limits = [line for line in shipped if not line.startswith("persistence")]
    return MosquittoProcess(directory, stock_limits=True, access=[*limits, "allow_anonymous true"])


@pytest.fixture
def stock_broker(tmp_path: Path) -> Iterator[MosquittoProcess]:
    with broker_in(tmp_path / "broker") as broker:
        yield broker


@pytest.fixture
def recommended_broker(tmp_path: Path) -> Iterator[MosquittoProcess]:
    with broker_in(tmp_path / "broker", recommended=True) as broker:
        yield broker


async def connect_fleet(
    host: str, port: int, prefix: str, stack: contextlib.AsyncExitStack
) -> list[aiomqtt.Client]:
    gate = asyncio.Semaphore(CONNECTING_AT_ONCE)

    async def one(n: int) -> aiomqtt.Client:
        client = aiomqtt.Client(host, port, identifier=f"{prefix}-{n}", keepalive=60)
        async with gate:
            await stack.enter_async_context(client)
        return client

    return list(await asyncio.gather(*(one(n) for n in range(VENS))))


async def count(backend: Backend, column: ColumnElement[str], prefix: str) -> int:
    """Rows of this test's VENs (``column`` holds the VEN id)."""
    query = select(func.count()).where(column.like(f"{prefix}-%"))
    async with backend.engine.connect() as conn:
        return int((await conn.execute(query)).scalar_one())


# (topic, payload) of VEN number n's one message
Message = Callable[[Fleet, int, int], tuple[str, dict[str, object]]]


def telemetry(fleet: Fleet, n: int, now: int) -> tuple[str, dict[str, object]]:
    return fleet.metering_topic, {
        "venId": f"{fleet.prefix}-{n}",
        "timestamp": now,
        "usedPowerKw": 1.5,
    }


def ack(fleet: Fleet, n: int, now: int) -> tuple[str, dict[str, object]]:
    return f"ven/ack/{fleet.prefix}-{n}", {"op": "ping", "status": "pong"}


async def burst(
    fleet: Fleet,
    backend: Backend,
    broker: MosquittoProcess,
    tmp_path: Path,
    message: Message,
    stored_in: ColumnElement[str],
    **env: str,
) -> None:
    """Every VEN publishes its message in one burst; all of them are stored."""
    fleet = dataclasses.replace(fleet, host="127.0.0.1", port=broker.port)
    processes = Processes(tmp_path, process_env(fleet))
    try:
        worker = processes.start("worker", ["worker"], EVENT_COMMAND_ENABLED="false", **env)
        await wait_until("the worker to subscribe", lambda: "consuming" in worker.log(), processes)
        async with contextlib.AsyncExitStack() as stack:
            clients = await connect_fleet(fleet.host, fleet.port, fleet.prefix, stack)
            now = int(time.time())
            started = time.monotonic()

            async def publish(n: int, client: aiomqtt.Client) -> None:
                # Spread evenly over BURST_SECONDS, as VENs reconnecting after an
                # outage would be (not all in one millisecond).
                await asyncio.sleep(started + n * BURST_SECONDS / VENS - time.monotonic())
                topic, body = message(fleet, n, now)
                await client.publish(topic, json.dumps(body), qos=1)

            await asyncio.gather(*(publish(n, client) for n, client in enumerate(clients)))
            print(f"the fleet published in {time.monotonic() - started:.2f}s")

            async def all_stored() -> bool:
                return await count(backend, stored_in, fleet.prefix) >= VENS

            await wait_until("every VEN's message to be stored", all_stored, processes, within=60)
        assert await count(backend, stored_in, fleet.prefix) == VENS
        assert "Traceback" not in worker.log()
    finally:
        processes.kill_all()


async def test_a_telemetry_burst_of_2000_vens_into_a_stock_mosquitto_is_all_stored(
    fleet: Fleet, backend: Backend, stock_broker: MosquittoProcess, tmp_path: Path
) -> None:
    await burst(fleet, backend, stock_broker, tmp_path, telemetry, ven_telemetry.c.ven_id)
    assert await count(backend, vens.c.id, fleet.prefix) == VENS  # each registered


async def test_an_ack_burst_of_2000_vens_into_a_stock_mosquitto_is_all_stored(
    fleet: Fleet, backend: Backend, stock_broker: MosquittoProcess, tmp_path: Path
) -> None:
    await burst(fleet, backend, stock_broker, tmp_path, ack, ven_acks.c.ven_id)


async def test_with_mqtt_311_the_recommended_conf_keeps_an_ack_burst(
    fleet: Fleet, backend: Backend, recommended_broker: MosquittoProcess, tmp_path: Path
) -> None:
    await burst(
        fleet, backend, recommended_broker, tmp_path, ack, ven_acks.c.ven_id,
        MQTT_PROTOCOL_V5="false",
    )  # fmt: skip
