"""The broker contract over aiomqtt: on the shared Mosquitto (plain TCP), and
on a Mosquitto of our own requiring mutual TLS with generated certificates."""

from __future__ import annotations

import ssl
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from broker_contract import BrokerContract, TransportFactory
from mosquitto_process import Certificates, MosquittoProcess, make_certificates

from adapters.mqtt.transport import AiomqttTransport, MqttConnection

pytestmark = pytest.mark.mosquitto


def _factory(base: MqttConnection) -> tuple[TransportFactory, list[AiomqttTransport]]:
    opened: list[AiomqttTransport] = []

    async def connect(client_id: str | None = None) -> AiomqttTransport:
        conn = MqttConnection(
            host=base.host, port=base.port, client_id=client_id, ca_cert=base.ca_cert,
            client_cert=base.client_cert, client_key=base.client_key, mqtt5=True,
        )  # fmt: skip
        transport = await AiomqttTransport.connect(conn)
        opened.append(transport)
        return transport

    return connect, opened


class TestMosquittoPlain(BrokerContract):
    @pytest.fixture
    async def transport_factory(
        self, mosquitto_address: tuple[str, int]
    ) -> AsyncIterator[TransportFactory]:
        host, port = mosquitto_address
        connect, opened = _factory(MqttConnection(host=host, port=port))
        yield connect
        for transport in opened:
            await transport.close()


@pytest.fixture(scope="module")
def certificates(tmp_path_factory: pytest.TempPathFactory) -> Certificates:
    return make_certificates(tmp_path_factory.mktemp("certs"))


@pytest.fixture(scope="module")
def tls_broker(
    tmp_path_factory: pytest.TempPathFactory, certificates: Certificates
) -> Iterator[MosquittoProcess]:
    broker = MosquittoProcess(tmp_path_factory.mktemp("mosquitto-tls"), certificates)
    broker.start()
    yield broker
    broker.stop()


class TestMosquittoMutualTls(BrokerContract):
    @pytest.fixture
    async def transport_factory(
        self, tls_broker: MosquittoProcess, certificates: Certificates
    ) -> AsyncIterator[TransportFactory]:
        conn = MqttConnection(
            host="127.0.0.1", port=tls_broker.port, ca_cert=str(certificates.ca),
            client_cert=str(certificates.client_cert), client_key=str(certificates.client_key),
        )  # fmt: skip
        connect, opened = _factory(conn)
        yield connect
        for transport in opened:
            await transport.close()


async def _refused(conn: MqttConnection) -> None:
    try:
        transport = await AiomqttTransport.connect(conn)
    except (ConnectionError, ssl.SSLError):
        return
    await transport.close()
    pytest.fail("the broker accepted a client it should have refused")


# Slow: aiomqtt reports the broker's TLS alert only when connect_timeout runs out.
@pytest.mark.slow
async def test_client_without_certificate_is_refused(
    tls_broker: MosquittoProcess, certificates: Certificates
) -> None:
    conn = MqttConnection(host="127.0.0.1", port=tls_broker.port, ca_cert=str(certificates.ca),
                          connect_timeout=5.0)  # fmt: skip
    await _refused(conn)


@pytest.mark.slow
async def test_client_with_a_foreign_certificate_is_refused(
    tls_broker: MosquittoProcess, certificates: Certificates, tmp_path: Path
) -> None:
    foreign = make_certificates(tmp_path)  # same names, another CA
    conn = MqttConnection(
        host="127.0.0.1", port=tls_broker.port, ca_cert=str(certificates.ca),
        client_cert=str(foreign.client_cert), client_key=str(foreign.client_key),
        connect_timeout=5.0,
    )  # fmt: skip
    await _refused(conn)
