"""The VEN simulator against a real Mosquitto: a real MQTT subscriber sees its
telemetry and shadows, and the backend's own command publisher gets ACKs."""

from __future__ import annotations

import asyncio
import contextlib
import json
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import pytest

from adapters.mqtt.commands import TransportCommandPublisher
from adapters.mqtt.payloads import AckWire, TelemetryWire
from adapters.mqtt.transport import AiomqttTransport, MqttConnection
from entrypoints.settings import Settings
from entrypoints.simulator import run_simulator
from gridcore.correlation import Command, CommandOp

pytestmark = pytest.mark.mosquitto

WAIT = 10.0


@pytest.fixture
def prefix() -> str:
    """VEN ids no other test (or a simulator left running) uses."""
    return f"sim{uuid.uuid4().hex[:8]}"


@pytest.fixture
async def observer(mosquitto_address: tuple[str, int]) -> AsyncIterator[AiomqttTransport]:
    host, port = mosquitto_address
    transport = await AiomqttTransport.connect(MqttConnection(host=host, port=port))
    yield transport
    await transport.close()


async def next_matching(
    transport: AiomqttTransport, topic: str, where: Any = lambda body: True
) -> dict[str, Any]:
    async with asyncio.timeout(WAIT):
        async for message in transport.messages():
            if message.topic == topic:
                body = json.loads(message.payload)
                if where(body):
                    return body  # type: ignore[no-any-return]
    raise AssertionError("the observer's stream ended")


async def test_a_simulated_fleet_reports_and_answers_over_mosquitto(
    mosquitto_address: tuple[str, int], observer: AiomqttTransport, prefix: str
) -> None:
    host, port = mosquitto_address
    settings = Settings(_env_file=None, mqtt_broker=host, mqtt_port=port)  # type: ignore[call-arg]
    await observer.subscribe("volttron/metering", qos=0)
    await observer.subscribe("ven/ack/+", qos=1)
    await observer.subscribe(f"$aws/things/{prefix}-1/shadow/update", qos=0)
    ready = asyncio.Event()
    simulator = asyncio.create_task(
        run_simulator(settings, 3, prefix=prefix, seed=7, interval=0.2, vens_per_connection=2,
                      ready=ready)
    )  # fmt: skip
    try:
        await asyncio.wait_for(ready.wait(), WAIT)
        seen: set[str] = set()
        async with asyncio.timeout(WAIT):
            while seen != {f"{prefix}-{n}" for n in (1, 2, 3)}:
                body = await next_matching(
                    observer, "volttron/metering", lambda b: b["venId"].startswith(prefix)
                )
                TelemetryWire.model_validate_json(json.dumps(body))
                seen.add(body["venId"])
        shadow = await next_matching(observer, f"$aws/things/{prefix}-1/shadow/update")
        assert shadow["state"]["reported"]["panel_voltage"] == 240

        # The backend's own command publisher, so both sides of the contract meet.
        publisher = TransportCommandPublisher(observer)
        await publisher.publish(
            Command(
                correlation_id="evt-1a2b3c4d-00000001", ven_id=f"{prefix}-2", op=CommandOp.EVENT,
                created_at=datetime.now(UTC), event_id="evt-1a2b3c4d", shed_kw=0.05,
                duration_sec=60,
            )
        )  # fmt: skip
        ack = await next_matching(observer, f"ven/ack/{prefix}-2")
        assert ack["status"] == "accepted" and ack["correlationId"] == "evt-1a2b3c4d-00000001"
        assert ack["actual_shed_kw"] == pytest.approx(0.05, abs=0.002)
        assert AckWire.model_validate_json(json.dumps(ack)).circuits_curtailed
        during = await next_matching(
            observer, "volttron/metering", lambda b: b["venId"] == f"{prefix}-2" and "eventId" in b
        )
        assert during["eventId"] == "evt-1a2b3c4d" and during["requestedReductionKw"] == 0.05

        await observer.publish(
            f"ven/cmd/{prefix}-3", json.dumps({"op": "ping", "correlationId": "p-1"}).encode(), 1
        )
        pong = await next_matching(observer, f"ven/ack/{prefix}-3")
        assert (pong["status"], pong["correlationId"]) == ("pong", "p-1")
        assert not simulator.done()
    finally:
        simulator.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.wait_for(simulator, WAIT)


async def test_an_unreachable_broker_is_a_connection_error() -> None:
    settings = Settings(_env_file=None, mqtt_broker="127.0.0.1", mqtt_port=1)  # type: ignore[call-arg]
    with pytest.raises(ConnectionError, match=r"127\.0\.0\.1:1\b"):
        await asyncio.wait_for(run_simulator(settings, 2), WAIT)


async def test_a_fleet_split_over_processes_reports_and_answers_every_ven_once(
    mosquitto_address: tuple[str, int], observer: AiomqttTransport, prefix: str
) -> None:
    """``--processes 2``: two shard processes, each VEN reporting from exactly
    one of them (one process's VEN answering a ping from two would ACK twice)."""
    host, port = mosquitto_address
    settings = Settings(_env_file=None, mqtt_broker=host, mqtt_port=port)  # type: ignore[call-arg]
    await observer.subscribe("volttron/metering", qos=0)
    await observer.subscribe("ven/ack/+", qos=1)
    ready = asyncio.Event()
    simulator = asyncio.create_task(
        run_simulator(settings, 5, prefix=prefix, seed=3, interval=0.3, vens_per_connection=2,
                      ready=ready, processes=2)
    )  # fmt: skip
    everyone = {f"{prefix}-{n}" for n in range(1, 6)}
    try:
        await asyncio.wait_for(ready.wait(), 3 * WAIT)  # two interpreters start
        seen: set[str] = set()
        async with asyncio.timeout(WAIT):
            while seen != everyone:
                body = await next_matching(
                    observer, "volttron/metering", lambda b: b["venId"].startswith(prefix)
                )
                seen.add(body["venId"])
        for ven_id in sorted(everyone):
            ping = {"op": "ping", "correlationId": f"p-{ven_id}"}
            await observer.publish(f"ven/cmd/{ven_id}", json.dumps(ping).encode(), 1)
        pongs: list[str] = []
        async with asyncio.timeout(WAIT):
            async for message in observer.messages():
                if message.topic.startswith(f"ven/ack/{prefix}-"):
                    pongs.append(json.loads(message.payload)["correlationId"])
                    if len(pongs) == len(everyone):
                        break
        with contextlib.suppress(TimeoutError):  # a second answer would come now
            async with asyncio.timeout(1.0):
                async for message in observer.messages():
                    if message.topic.startswith(f"ven/ack/{prefix}-"):
                        pongs.append(json.loads(message.payload)["correlationId"])
        assert sorted(pongs) == sorted(f"p-{v}" for v in everyone)
        assert not simulator.done()
    finally:
        simulator.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.wait_for(simulator, 3 * WAIT)


async def test_more_processes_than_vens_is_refused(mosquitto_address: tuple[str, int]) -> None:
    host, port = mosquitto_address
    settings = Settings(_env_file=None, mqtt_broker=host, mqtt_port=port)  # type: ignore[call-arg]
    with pytest.raises(ValueError, match="processes"):
        await run_simulator(settings, 2, processes=3)
