"""``MessageTransport`` over aiomqtt (pinned below 3): Mosquitto on plain TCP,
or AWS IoT Core with X.509 mutual TLS on 8883.

Contract beyond the port's:

- One aiomqtt client for the transport's life, with a stable client id;
  with ``persistent=True`` the broker keeps the session (subscriptions and
  QoS 1 messages that arrive while we are away): ``clean_session=False`` on
  MQTT 3.1.1, ``clean_start=False`` plus a session expiry on MQTT 5.
- When the connection drops the transport reconnects by itself, with capped
  exponential backoff, resubscribes every filter and logs both. ``messages``
  keeps yielding across reconnects; ``publish`` waits (bounded by
  ``publish_timeout``) for the connection and raises ``ConnectionError`` if
  it does not come back in time: the caller keeps the message pending.
- Received messages go straight from paho's callback into one queue as
  ``BrokerMessage``s: no aiomqtt ``Message``/``Topic`` objects and no task per
  message on the receive path (the ingest budget is ~250 us per message).
- That queue is bounded by ``max_queued``: above it the transport stops
  reading the socket until the consumer has taken half, so TCP flow control
  makes the broker hold the rest. A pause longer than the keepalive ends in a
  reconnect; a persistent session keeps the QoS 1 messages meanwhile.
- QoS 1 messages on the ``settle_after_store`` filters are acknowledged to the
  broker (PUBACK) only when the consumer calls their ``settle``, after its
  commit: a crash before it leaves them with the broker, which redelivers
  them to the persistent session. Every other message is acknowledged on
  receipt, so that the broker's in-flight window (20 messages on a stock
  Mosquitto) never waits for a database write.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import ssl
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass
from typing import Any

import aiomqtt
import paho.mqtt.client as paho
from paho.mqtt.enums import MQTTErrorCode
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from adapters.mqtt.topics import match_levels, unshared
from gridcore.ports import BrokerMessage

log = logging.getLogger("adapters.mqtt.transport")


@dataclass(frozen=True, slots=True)
class MqttConnection:
    """Where and how to connect. TLS is on when ``ca_cert`` is set; a client
    certificate and key (both or neither) make it mutual TLS."""

    host: str
    port: int = 1883
    client_id: str | None = None
    ca_cert: str | None = None
    client_cert: str | None = None
    client_key: str | None = None
    username: str | None = None
    password: str | None = None
    mqtt5: bool = False
    persistent: bool = False
    session_expiry: int = 3600  # seconds the broker keeps a persistent MQTT 5 session
    keepalive: int = 30
    connect_timeout: float = 10.0
    publish_timeout: float = 10.0
    reconnect_initial: float = 0.5
    reconnect_max: float = 30.0
    max_queued: int = 20_000  # received, not yet consumed: reading pauses here
    # Topic filters whose QoS 1 messages are acknowledged only once settled.
    settle_after_store: tuple[str, ...] = ()
    # MQTT 5: how many QoS 1 messages the broker may send before our PUBACKs
    # (its own default, 20 on Mosquitto, when None; MQTT 3.1.1 has no say).
    receive_maximum: int | None = None

    @property
    def tls(self) -> bool:
        return self.ca_cert is not None

    def __post_init__(self) -> None:
        if (self.client_cert is None) != (self.client_key is None):
            raise ValueError("MQTT_CLIENT_CERT and MQTT_CLIENT_KEY must be set together")
        if self.client_cert is not None and self.ca_cert is None:
            raise ValueError("a client certificate needs MQTT_CA_CERT as well")
        if self.persistent and not self.client_id:
            raise ValueError("a persistent session needs a stable MQTT_CLIENT_ID")


def tls_context(conn: MqttConnection) -> ssl.SSLContext:
    """TLS settings from the certificate files; a missing or unreadable file is
    reported with the setting that names it."""
    files = (
        ("MQTT_CA_CERT", conn.ca_cert),
        ("MQTT_CLIENT_CERT", conn.client_cert),
        ("MQTT_CLIENT_KEY", conn.client_key),
    )
    for setting, path in files:
        if path is not None and not os.path.isfile(path):
            raise ValueError(f"{setting}={path}: no such file")
    try:
        context = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=conn.ca_cert)
    except ssl.SSLError as exc:
        raise ValueError(f"MQTT_CA_CERT={conn.ca_cert}: not a CA certificate ({exc})") from exc
    if conn.client_cert is not None:
        try:
            context.load_cert_chain(conn.client_cert, conn.client_key)
        except ssl.SSLError as exc:
            raise ValueError(
                "MQTT_CLIENT_CERT/MQTT_CLIENT_KEY: certificate and key do not load"
                f" together ({exc})"
            ) from exc
    return context


_READ_SIZE = 64 * 1024
_READS_PER_TURN = 8  # at most 512 KB (~150 telemetry messages) before others run


class BufferedSocket:
    """A plain TCP socket of paho's, read in large chunks. paho reads a packet
    in several ``recv`` calls (its type byte, each byte of its length, then the
    rest): five system calls a telemetry message. This takes what the socket
    holds in one call and hands paho its bytes from memory.

    ``pending`` (as an SSL socket has it: aiomqtt's reader and
    :meth:`_Client.resume` read on while it is above 0) counts the buffered
    bytes, which the event loop cannot see. The socket is read at most
    ``_READS_PER_TURN`` times per turn of the reader (a turn ends when
    ``pending`` is 0): then a packet cut at the end of a chunk waits for the
    next turn, which the event loop starts while the socket has data, instead
    of the reader going on for as long as the broker sends while everything
    else waits. Everything else is the socket's."""

    def __init__(self, sock: Any) -> None:
        self._sock = sock
        self._buffer = b""
        self._pos = 0
        self._reads_left = _READS_PER_TURN

    def recv(self, size: int) -> bytes:
        buffer, pos = self._buffer, self._pos
        if pos >= len(buffer):
            if not self._reads_left:
                raise BlockingIOError  # enough this turn: paho keeps its partial packet
            self._reads_left -= 1
            data: bytes = self._sock.recv(max(size, _READ_SIZE))  # raises as the socket does
            if len(data) <= size:
                return data  # b"" included: the connection closed
            buffer, pos = data, 0
        end = pos + size
        if end >= len(buffer):
            self._buffer, self._pos = b"", 0
        else:
            self._buffer, self._pos = buffer, end
        return buffer[pos:end]

    def pending(self) -> int:
        buffered = len(self._buffer) - self._pos
        if buffered == 0:
            self._reads_left = _READS_PER_TURN  # the reader's turn ends
        return buffered

    def __getattr__(self, name: str) -> Any:
        return getattr(self._sock, name)


def _publish_fields(
    header: int, data: bytes | bytearray, mqtt5: bool
) -> tuple[str, bytes, int, int] | None:
    """(topic, payload, QoS, message id) of a QoS 0 or 1 PUBLISH packet (its
    bytes after the fixed header); None for QoS 2 or a packet paho would
    refuse. MQTT 5 properties are skipped, not decoded."""
    qos = (header & 0x06) >> 1
    try:
        start = 2 + ((data[0] << 8) | data[1])
        if qos == 2 or start == 2 or start > len(data):
            return None
        topic = data[2:start].decode("utf-8")
        mid = 0
        if qos:
            mid = (data[start] << 8) | data[start + 1]
            start += 2
        if mqtt5:  # the properties' length, a variable byte integer
            length, shift = 0, 0
            while True:
                byte = data[start]
                start += 1
                length |= (byte & 0x7F) << shift
                if byte < 0x80:
                    break
                shift += 7
                if shift > 21:
                    return None
            start += length
            if start > len(data):
                return None
    except (IndexError, UnicodeDecodeError):
        return None
    return topic, bytes(data[start:]), qos, mid


class _Client(aiomqtt.Client):
    """aiomqtt's client with a lean receive path into the transport's queue,
    and reading paused while that queue is above its high-water mark."""

    def __init__(
        self,
        sink: asyncio.Queue[BrokerMessage | None],
        high_water: int,
        settle_after_store: tuple[str, ...] = (),
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self._sink = sink
        self._high_water = high_water
        self.paused_fd: int | None = None
        self.on_lost: asyncio.Event | None = None
        # Each with the literal start of its topics (up to its first wildcard):
        # most messages (telemetry) are told apart by that alone.
        self._settled_filters = tuple(
            (proper, proper.partition("+")[0].partition("#")[0])
            for proper in (unshared(f) for f in settle_after_store)
        )
        if self._settled_filters:
            self._client.manual_ack_set(True)
        self._client._handle_publish = self._handle_publish  # type: ignore[method-assign]
        # Counts connections: a PUBACK belongs to the connection that received
        # the message (message ids restart with each one).
        self.connection = 0
        # The dispatcher keeps up to a thousand QoS 1 publishes in flight.
        self.pending_calls_threshold = 5_000

    @contextlib.contextmanager
    def _pending_call(self, mid: int, value: Any, pending_dict: dict[int, Any]) -> Iterator[None]:
        # aiomqtt's own version lists every pending call twice per call (a
        # membership test and a count over a generator): quadratic when a
        # thousand publishes are in flight. Same contract, in constant time.
        if (
            mid in self._pending_publishes
            or mid in self._pending_subscribes
            or mid in self._pending_unsubscribes
        ):
            raise RuntimeError(f'There already exists a pending call for message ID "{mid}"')
        pending_dict[mid] = value
        try:
            pending = (
                len(self._pending_publishes)
                + len(self._pending_subscribes)
                + len(self._pending_unsubscribes)
            )
            if pending > self.pending_calls_threshold:
                self._logger.warning("There are %d pending publish calls.", pending)
            yield
        finally:
            pending_dict.pop(mid, None)

    def _on_message(self, client: paho.Client, userdata: Any, message: paho.MQTTMessage) -> None:
        payload = message.payload
        if not isinstance(payload, bytes):
            payload = bytes(payload)
        # ``topic``: a property decoding the topic's bytes at each call
        self._deliver(message.topic, payload, message.qos, message.retain, message.mid)

    def _deliver(self, topic: str, payload: bytes, qos: int, retain: bool, mid: int) -> None:
        client = self._client
        settle = None
        if self._settled_filters and qos > 0:
            if any(
                topic.startswith(start) and match_levels(f, topic) is not None
                for f, start in self._settled_filters
            ):
                settle = self._settler(client, mid, qos)
            else:
                client.ack(mid, qos)
        self._sink.put_nowait(BrokerMessage(topic, payload, qos, retain, settle))
        if self.paused_fd is None and self._sink.qsize() >= self._high_water:
            self._pause()

    def _handle_publish(self) -> MQTTErrorCode:
        """paho's ``Client._handle_publish`` for the PUBLISH packets the
        consumer gets (QoS 0 and 1): the packet's fields read straight into
        :meth:`_deliver`. paho builds an ``MQTTMessage`` (with a
        ``threading.Condition``) and, on MQTT 5, a ``Properties`` object (a
        table of every property, rebuilt per packet) for each message: ~15 us
        that nothing here reads. A packet this does not take (QoS 2, or one
        paho refuses: an empty topic, a topic that is not UTF-8, a truncated
        packet) goes to paho's own, as would messages for per-topic callbacks,
        but aiomqtt registers none."""
        client = self._client
        packet = client._in_packet
        header = packet["command"]
        fields = _publish_fields(header, packet["packet"], client._protocol == paho.MQTTv5)
        if fields is None:
            return paho.Client._handle_publish(client)
        topic, payload, qos, mid = fields
        self._deliver(topic, payload, qos, bool(header & 0x01), mid)
        if qos and not client._manual_ack:
            return client._send_puback(mid)
        return MQTTErrorCode.MQTT_ERR_SUCCESS

    def _on_socket_open(self, client: paho.Client, userdata: Any, sock: Any) -> None:
        # paho calls this once the socket is made, before reading or writing on it.
        if isinstance(sock, socket.socket) and not isinstance(sock, ssl.SSLSocket):
            client._sock = BufferedSocket(sock)  # TLS sockets buffer their records themselves
        super()._on_socket_open(client, userdata, sock)

    def _settler(self, client: paho.Client, mid: int, qos: int) -> Callable[[], None]:
        connection = self.connection

        def settle() -> None:
            # After a reconnect the id may name another message: the broker
            # redelivers this one to the session instead (stored twice at
            # worst, which the stores skip).
            if self.connection == connection:
                client.ack(mid, qos)

        return settle

    def _pause(self) -> None:
        # Stop reading the socket: TCP flow control then makes the broker hold
        # further messages (a persistent session keeps QoS 1 ones across a
        # keepalive timeout this may cause).
        sock = self._client.socket()
        if sock is None:
            return
        self.paused_fd = sock.fileno()
        self._loop.remove_reader(self.paused_fd)
        log.warning(
            "receive queue at %d messages: pausing reads from the broker", self._sink.qsize()
        )

    def forget_disconnect(self) -> None:
        """aiomqtt keeps why the connection dropped in a future that only its
        own context manager reads; the transport logs it instead, so mark it
        read (else asyncio logs "Future exception was never retrieved")."""
        lost = self._disconnected
        if lost.done() and not lost.cancelled():
            lost.exception()

    def resume(self) -> None:
        fd, self.paused_fd = self.paused_fd, None
        sock = self._client.socket()
        if fd is None or sock is None or sock.fileno() != fd:
            return  # reconnected meanwhile: the new socket already has its reader
        paho_client = self._client

        def read() -> None:  # as aiomqtt's own reader callback
            try:
                while True:
                    paho_client.loop_read()
                    pending = getattr(paho_client.socket(), "pending", None)
                    if pending is None or pending() <= 0:
                        break
            except Exception as exc:
                if not self._disconnected.done():
                    self._disconnected.set_exception(exc)

        self._loop.add_reader(fd, read)
        log.info("receive queue drained: reading from the broker again")

    def _on_disconnect(self, *args: Any, **kwargs: Any) -> None:
        super()._on_disconnect(*args, **kwargs)
        self.connection += 1
        self.paused_fd = None
        if self.on_lost is not None:
            self.on_lost.set()


class AiomqttTransport:
    """Use ``await AiomqttTransport.connect(conn)``; ``close`` when done."""

    def __init__(self, conn: MqttConnection) -> None:
        self.conn = conn
        self._queue: asyncio.Queue[BrokerMessage | None] = asyncio.Queue()
        self._subscriptions: dict[str, int] = {}
        self._connected = asyncio.Event()
        self._lost = asyncio.Event()
        self._closed = False
        self._supervisor: asyncio.Task[None] | None = None
        self.reconnects = 0
        kwargs: dict[str, Any] = {
            "hostname": conn.host,
            "port": conn.port,
            "identifier": conn.client_id,
            "username": conn.username,
            "password": conn.password,
            "keepalive": conn.keepalive,
            "timeout": conn.connect_timeout,
        }
        if conn.tls:
            kwargs["tls_context"] = tls_context(conn)
        if conn.mqtt5:
            kwargs["protocol"] = aiomqtt.ProtocolVersion.V5
            kwargs["clean_start"] = not conn.persistent
            props = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]
            if conn.persistent:
                props.SessionExpiryInterval = conn.session_expiry
            if conn.receive_maximum is not None:
                props.ReceiveMaximum = conn.receive_maximum
            kwargs["properties"] = props
        else:
            kwargs["protocol"] = aiomqtt.ProtocolVersion.V311
            kwargs["clean_session"] = not conn.persistent
        self._client = _Client(self._queue, conn.max_queued, conn.settle_after_store, **kwargs)
        self._client.on_lost = self._lost

    @classmethod
    async def connect(cls, conn: MqttConnection) -> AiomqttTransport:
        """Connect once (raises ``ConnectionError`` if the broker refuses or
        cannot be reached); after that the transport reconnects by itself."""
        transport = cls(conn)
        try:
            await transport._open()
        except aiomqtt.MqttError as exc:
            hint = ""
            if conn.tls and ("SSL" in str(exc) or "certificate" in str(exc).lower()):
                hint = (
                    " (the TLS handshake failed: check that MQTT_CA_CERT signed the broker's"
                    " certificate and that the broker accepts MQTT_CLIENT_CERT)"
                )
            raise ConnectionError(
                f"MQTT connect to {conn.host}:{conn.port} failed: {exc}{hint}"
            ) from exc
        transport._supervisor = asyncio.create_task(transport._supervise(), name="mqtt-reconnect")
        # paho sends an empty id when none is set: the broker then picks one, unseen here
        who = f"as {transport.client_id}" if transport.client_id else "with an id the broker picks"
        log.info("connected to %s:%d %s%s", conn.host, conn.port, who, " (TLS)" if conn.tls else "")
        return transport

    @property
    def client_id(self) -> str:
        return self._client.identifier

    @property
    def connected(self) -> bool:
        return self._connected.is_set()

    async def _open(self) -> None:
        self._lost.clear()
        await self._client.__aenter__()
        self._connected.set()

    async def _supervise(self) -> None:
        delay = self.conn.reconnect_initial
        while True:
            await self._lost.wait()
            if self._closed:
                return
            self._connected.clear()
            log.warning("connection to %s:%d lost; reconnecting", self.conn.host, self.conn.port)
            while not self._closed:
                await asyncio.sleep(delay)
                self._client.forget_disconnect()
                try:
                    await self._client.__aexit__(None, None, None)
                    await self._open()
                    for topic_filter, qos in self._subscriptions.items():
                        await self._client.subscribe(topic_filter, qos)
                except (aiomqtt.MqttError, OSError) as exc:
                    delay = min(delay * 2, self.conn.reconnect_max)
                    log.warning("reconnect failed (%s); next try in %.1fs", exc, delay)
                    self._connected.clear()
                    continue
                self.reconnects += 1
                delay = self.conn.reconnect_initial
                log.info("reconnected to %s:%d; resubscribed %d filter(s)", self.conn.host,
                         self.conn.port, len(self._subscriptions))  # fmt: skip
                break

    async def _ready(self) -> None:
        if self._closed:
            raise ConnectionError("transport is closed")
        if not self._connected.is_set():
            try:
                await asyncio.wait_for(self._connected.wait(), self.conn.publish_timeout)
            except TimeoutError:
                raise ConnectionError("MQTT broker unreachable") from None

    async def publish(self, topic: str, payload: bytes, qos: int = 0, retain: bool = False) -> None:
        await self._ready()
        try:
            await self._client.publish(
                topic, payload, qos=qos, retain=retain, timeout=self.conn.publish_timeout
            )
        except aiomqtt.MqttError as exc:
            raise ConnectionError(f"publish to {topic} failed: {exc}") from exc

    async def subscribe(self, topic_filter: str, qos: int = 0) -> None:
        # Remembered first: a reconnect racing this call resubscribes it too.
        self._subscriptions[topic_filter] = qos
        await self._ready()
        try:
            result = await self._client.subscribe(topic_filter, qos)
        except aiomqtt.MqttError as exc:
            raise ConnectionError(f"subscribe to {topic_filter} failed: {exc}") from exc
        code = result[0]
        value = code if isinstance(code, int) else code.value
        if value >= 0x80:
            self._subscriptions.pop(topic_filter, None)
            raise ConnectionError(f"broker refused the subscription to {topic_filter}: {code}")
        log.debug("subscribed to %s (QoS %d)", topic_filter, qos)

    async def unsubscribe(self, topic_filter: str) -> None:
        self._subscriptions.pop(topic_filter, None)
        await self._ready()
        try:
            await self._client.unsubscribe(topic_filter)
        except aiomqtt.MqttError as exc:
            raise ConnectionError(f"unsubscribe from {topic_filter} failed: {exc}") from exc

    async def messages(self) -> AsyncIterator[BrokerMessage]:
        queue = self._queue
        client = self._client
        low_water = self.conn.max_queued // 2
        taken = 0
        while True:
            try:
                message = queue.get_nowait()  # the common case under load: no await
                taken += 1
                if taken % 64 == 0:
                    # A consumer working through a backlog without awaiting would
                    # starve the socket: no reads, no PUBACKs, and the broker
                    # queues (and past its limit drops) meanwhile.
                    await asyncio.sleep(0)
            except asyncio.QueueEmpty:
                message = await queue.get()
            if client.paused_fd is not None and queue.qsize() <= low_water:
                client.resume()
            if message is None:
                queue.put_nowait(None)  # let other iterators end too
                return
            yield message

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        self._lost.set()
        if self._supervisor is not None:
            self._supervisor.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._supervisor
        self._client.forget_disconnect()
        with contextlib.suppress(aiomqtt.MqttError, OSError, asyncio.TimeoutError):
            await asyncio.wait_for(self._client.__aexit__(None, None, None), 5.0)
        self._client.forget_disconnect()
        self._connected.clear()
        self._queue.put_nowait(None)
        log.info("disconnected from %s:%d", self.conn.host, self.conn.port)
