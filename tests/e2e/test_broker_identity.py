"""A device publishes only as itself (issue 11, identity), with the broker
policy gridcore ships: Mosquitto run from ``deploy/mosquitto/mtls.conf`` and
``deploy/mosquitto/acl`` as they are (only the port and the files' paths are
the test's), every client with a certificate of the test's CA whose CN is its
identity, and a real ``gridcore worker`` process on PostgreSQL with
``GRIDCORE_TELEMETRY_TOPICS=per-ven`` and the backend's certificate.

``ven-a`` publishing as itself is stored. ``ven-a`` publishing on ``ven-b``'s
topics is refused by the broker: with MQTT 5 the PUBACK says 0x87 "Not
authorized". What the broker lets through but cannot judge is the worker's:
``ven-a`` naming ``ven-b`` in a payload on its own topic is dead-lettered, and
a ``ven-b`` sample on the shared ``volttron/metering`` (which the ACL leaves
writable for the documents' VENs) is not read in per-ven mode. Nothing is
stored for ``ven-b``.

The publisher is paho itself: aiomqtt does not surface a PUBACK's reason code.
"""

from __future__ import annotations

import asyncio
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
import pytest
import test_dispatch_processes as dispatch_e2e
from sqlalchemy import select
from test_dispatch_processes import Backend, Fleet, Processes, process_env, wait_until
from tests.integration.mosquitto_process import (
    Certificates,
    ClientCertificate,
    MosquittoProcess,
    client_certificate,
    deployment_config,
    make_certificates,
)

from adapters.sql.tables import dead_letters, ven_acks, ven_telemetry, vens

pytestmark = [pytest.mark.mosquitto, pytest.mark.postgres]

# The dispatch tests' fixtures: a fresh, migrated database and the test's view of it.
fleet = dispatch_e2e.fleet
backend = dispatch_e2e.backend

DEPLOY = Path(__file__).resolve().parents[2] / "deploy" / "mosquitto"
VEN_A, VEN_B, BACKEND = "ven-a", "ven-b", "gridcore-backend"
NOT_AUTHORIZED = 0x87
PUBACK_WITHIN = 5.0


@dataclass(frozen=True)
class Pki:
    certs: Certificates
    identities: dict[str, ClientCertificate]  # by CN


@dataclass(frozen=True)
class Broker:
    process: MosquittoProcess
    pki: Pki


@pytest.fixture
def broker(tmp_path: Path) -> Iterator[Broker]:
    directory = tmp_path / "broker"
    directory.mkdir()
    certs = make_certificates(directory)
    pki = Pki(certs, {cn: client_certificate(certs, cn) for cn in (VEN_A, BACKEND)})
    access = deployment_config(
        DEPLOY / "mtls.conf",
        {
            "/etc/mosquitto/certs/ca.crt": certs.ca,
            "/etc/mosquitto/certs/server.crt": certs.server_cert,
            "/etc/mosquitto/certs/server.key": certs.server_key,
            "/etc/mosquitto/acl": DEPLOY / "acl",
        },
    )
    process = MosquittoProcess(directory, certs, access=access)
    process.start()
    try:
        yield Broker(process, pki)
    finally:
        process.stop()


def publish_as(broker: Broker, cn: str, topic: str, payload: str) -> int:
    """One QoS 1 publish by the client with ``cn``'s certificate, MQTT 5, on a
    connection of its own (Mosquitto closes a client's connection once it has
    refused one of its publishes): the PUBACK's reason code."""
    identity = broker.pki.identities[cn]
    done = threading.Event()
    result: dict[str, Any] = {}
    client = mqtt.Client(
        mqtt.CallbackAPIVersion.VERSION2,
        client_id=f"{cn}-{uuid.uuid4().hex[:8]}",
        protocol=mqtt.MQTTv5,
    )
    client.tls_set(
        ca_certs=str(broker.pki.certs.ca), certfile=str(identity.cert), keyfile=str(identity.key)
    )

    def on_connect(c: mqtt.Client, _u: object, _f: object, code: Any, _p: object) -> None:
        if code.is_failure:
            result["refused connection"] = code
            done.set()
        else:
            c.publish(topic, payload, qos=1)

    def on_publish(_c: mqtt.Client, _u: object, _mid: int, code: Any, _p: object) -> None:
        result["puback"] = code
        done.set()

    client.on_connect = on_connect
    client.on_publish = on_publish
    client.connect("127.0.0.1", broker.process.port)
    client.loop_start()
    try:
        assert done.wait(PUBACK_WITHIN), f"{cn}: no PUBACK for {topic} in {PUBACK_WITHIN}s"
    finally:
        client.disconnect()
        client.loop_stop()
    assert "puback" in result, f"{cn} could not connect: {result}"
    return int(result["puback"].value)


def telemetry(ven: str) -> str:
    return f'{{"venId": "{ven}", "timestamp": {time.time():.3f}, "usedPowerKw": 2.5}}'


async def rows(backend: Backend, query: Any) -> list[Any]:
    async with backend.engine.connect() as conn:
        return list(await conn.execute(query))


async def telemetry_of(backend: Backend, ven: str) -> int:
    return len(await rows(backend, select(ven_telemetry.c.id).where(ven_telemetry.c.ven_id == ven)))


async def test_a_ven_certificate_cannot_publish_as_another_ven(
    fleet: Fleet, backend: Backend, broker: Broker, tmp_path: Path
) -> None:
    started = time.monotonic()
    ca, ident = broker.pki.certs.ca, broker.pki.identities[BACKEND]
    env = process_env(fleet) | {
        "MQTT_BROKER": "127.0.0.1",
        "MQTT_PORT": str(broker.process.port),
        "MQTT_CA_CERT": str(ca),
        "MQTT_CLIENT_CERT": str(ident.cert),
        "MQTT_CLIENT_KEY": str(ident.key),
        "GRIDCORE_TELEMETRY_TOPICS": "per-ven",
        "EVENT_COMMAND_ENABLED": "false",
    }
    processes = Processes(tmp_path, env)
    try:
        worker = processes.start("worker", ["worker"])
        own_topic = f"ven/telemetry/{VEN_A}"

        async def from_ven_a(topic: str, payload: str) -> int:
            return await asyncio.to_thread(publish_as, broker, VEN_A, topic, payload)

        async def ven_a_stored() -> bool:
            # Re-published until the worker, subscribing meanwhile, stores one.
            if not worker.running:
                pytest.fail(f"the worker exited\n{processes.logs()}")
            if await telemetry_of(backend, VEN_A):
                return True
            code = await from_ven_a(own_topic, telemetry(VEN_A))
            assert code < 0x80, f"ven-a refused on its own topic: {code:#x}"
            return False

        await wait_until("ven-a's own telemetry to be stored", ven_a_stored, processes)

        # ven-a on ven-b's topics: refused by the broker.
        for topic in (f"ven/telemetry/{VEN_B}", f"ven/ack/{VEN_B}",
                      f"$aws/things/{VEN_B}/shadow/update"):  # fmt: skip
            payload = telemetry(VEN_B) if "telemetry" in topic else '{"op":"ping","status":"pong"}'
            code = await from_ven_a(topic, payload)
            assert code == NOT_AUTHORIZED, f"{topic}: PUBACK {code:#x}, not 0x87"

        # What the broker lets through, and the worker does not believe.
        lie = telemetry(VEN_B)
        assert await from_ven_a(own_topic, lie) < 0x80
        # Writable for the documents' VENs (see the ACL); a per-ven worker reads none of it.
        assert await from_ven_a("volttron/metering", lie) < 0x80

        before = await telemetry_of(backend, VEN_A)
        assert await from_ven_a(own_topic, telemetry(VEN_A)) < 0x80

        async def lie_judged() -> bool:
            stored = await telemetry_of(backend, VEN_A) > before
            return stored and bool(await rows(backend, select(dead_letters.c.id)))

        await wait_until("ven-a's last sample and the dead letter", lie_judged, processes)
        letters = await rows(backend, select(dead_letters.c.topic, dead_letters.c.reason))
        assert letters == [
            (own_topic, f"ven mismatch: topic names VEN {VEN_A!r}, payload {VEN_B!r}")
        ]
        assert await telemetry_of(backend, VEN_B) == 0
        assert await rows(backend, select(ven_acks.c.id).where(ven_acks.c.ven_id == VEN_B)) == []
        assert await rows(backend, select(vens.c.id)) == [(VEN_A,)]
        assert worker.running
        assert "Traceback" not in worker.log()
    finally:
        processes.kill_all()
    print(f"{time.monotonic() - started:.1f}s")
