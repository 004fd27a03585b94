"""The worker's consumer speaks MQTT 5 by default (its Receive Maximum keeps a
burst out of the broker's queue) and falls back to 3.1.1 on a broker that
refuses 5, unless MQTT 5 was asked for. The broker here is Mosquitto behind
a proxy that answers an MQTT 5 CONNECT as a 3.1.1-only broker does: CONNACK
"unacceptable protocol version", then it hangs up."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from mosquitto_process import MosquittoProcess

from adapters.mqtt.transport import AiomqttTransport
from entrypoints.settings import Settings
from entrypoints.worker import transport_factory

pytestmark = pytest.mark.mosquitto

UNACCEPTABLE_PROTOCOL = b"\x20\x02\x00\x01"  # MQTT 3.1.1 CONNACK, return code 1


async def read_packet(reader: asyncio.StreamReader) -> bytes:
    packet = await reader.readexactly(1)
    length, shift = 0, 0
    while True:  # the remaining length, 7 bits a byte
        byte = await reader.readexactly(1)
        packet += byte
        length |= (byte[0] & 0x7F) << shift
        shift += 7
        if not byte[0] & 0x80:
            break
    return packet + await reader.readexactly(length)


@contextlib.asynccontextmanager
async def only_mqtt_311(broker_port: int) -> AsyncIterator[int]:
    async def pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with contextlib.suppress(ConnectionError, asyncio.IncompleteReadError):
            while data := await reader.read(65536):
                writer.write(data)
                await writer.drain()
        writer.close()

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        connect = await read_packet(reader)
        # After the fixed header: protocol name (2-byte length, "MQTT"), then its level.
        start = connect.index(b"MQTT") + 4
        if connect[start] == 5:
            writer.write(UNACCEPTABLE_PROTOCOL)
            await writer.drain()
            writer.close()
            return
        up_reader, up_writer = await asyncio.open_connection("127.0.0.1", broker_port)
        up_writer.write(connect)
        await asyncio.gather(pipe(reader, up_writer), pipe(up_reader, writer))

    server = await asyncio.start_server(serve, "127.0.0.1", 0)
    try:
        yield server.sockets[0].getsockname()[1]
    finally:
        server.close()


@pytest.fixture
def broker(tmp_path: Path) -> Iterator[MosquittoProcess]:
    process = MosquittoProcess(tmp_path)
    process.start()
    yield process
    process.stop()


def settings(port: int, **values: object) -> Settings:
    return Settings(  # type: ignore[call-arg]
        _env_file=None, mqtt_broker="127.0.0.1", mqtt_port=port,
        mqtt_topic_metering="fallback/metering", **values,
    )  # fmt: skip


async def test_the_consumer_speaks_mqtt5_where_the_broker_does(broker: MosquittoProcess) -> None:
    transport = await transport_factory(settings(broker.port))()
    assert isinstance(transport, AiomqttTransport)
    try:
        assert transport.conn.mqtt5
        assert transport.conn.receive_maximum is not None
    finally:
        await transport.close()


async def test_a_broker_without_mqtt5_gets_311_and_a_warning(
    broker: MosquittoProcess, caplog: pytest.LogCaptureFixture
) -> None:
    async with only_mqtt_311(broker.port) as port:
        connect = transport_factory(settings(port))
        transport = await connect()
        assert isinstance(transport, AiomqttTransport)
        try:
            assert not transport.conn.mqtt5
            await transport.subscribe("fallback/metering", 1)
            await transport.publish("fallback/metering", b"through", 1)
            async for message in transport.messages():
                assert message.payload == b"through"
                break
        finally:
            await transport.close()
        assert "refused MQTT 5" in caplog.text
        again = await connect()  # the next connect goes straight to 3.1.1
        assert isinstance(again, AiomqttTransport) and not again.conn.mqtt5
        await again.close()


async def test_mqtt5_asked_for_is_not_silently_dropped(broker: MosquittoProcess) -> None:
    async with only_mqtt_311(broker.port) as port:
        with pytest.raises(ConnectionError):
            await transport_factory(settings(port, mqtt_protocol_v5=True))()
