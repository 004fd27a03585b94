"""In-memory MQTT broker: real topic matching, retained messages and shared
subscriptions, inside one process. A real adapter, not a mock: fast tests and
the zero-setup demo run the same code against it as against Mosquitto or AWS
IoT Core, and ``tests/integration/broker_contract.py`` holds both to it.

Semantics (MQTT 3.1.1 / 5 unless noted):

- Filters: ``+`` matches exactly one level, which may be empty; ``#`` must be
  the last level and matches its parent level and everything below it. A
  filter starting with a wildcard does not match a topic starting with ``$``
  (``$SYS/...``, ``$aws/...``); an explicit ``$aws/things/+/...`` does.
- Shared subscriptions ``$share/<group>/<filter>``: as in MQTT 5, one shared
  subscription is a group *and* a filter; each message matching it goes to
  exactly one member, round robin in subscription order. They receive no
  retained messages (MQTT 5, 4.8.2).
- Retained messages: the last retained publish per topic is kept; an empty
  retained payload clears it and is still delivered as a normal message. A new
  subscription receives the matching retained messages with ``retain=True``;
  live deliveries carry ``retain=False``.
- A message reaches a client at most once however many of its subscriptions
  match, at the highest QoS granted among them, capped by the publish QoS.
  (Mosquitto 2 may send one copy per matching subscription; MQTT allows both.)
- Sessions are clean: closing a transport forgets its subscriptions and its
  undelivered messages. Connecting with a client id in use closes the older
  transport (session takeover, MQTT-3.1.4-2).
- Delivery happens inside ``publish``: when it returns, the message is in every
  recipient's queue, so each subscriber sees one publisher's messages in
  publish order, and QoS 1 "the broker has it" holds trivially.
- Back-pressure: a client's queue holds at most ``max_queued`` messages and a
  publish never waits for a slow consumer. When a client's queue is full the
  message is dropped for that client only (a shared group does not pass it to
  another member) and counted in ``dropped`` and ``dropped_for``, as a real
  broker drops for a client beyond its queue limit. Nothing else is lost, so
  there is no QoS 1 redelivery.
"""

from __future__ import annotations

import asyncio
import itertools
from collections import Counter
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field, replace

from gridcore.ports import BrokerMessage

__all__ = [
    "InMemoryBroker",
    "InMemoryTransport",
    "topic_matches",
    "validate_topic_filter",
    "validate_topic_name",
]

_SHARE = "$share/"
_MAX_TOPIC_BYTES = 65_535  # MQTT strings carry a 16-bit length prefix


def validate_topic_name(topic: str) -> None:
    """Raise ``ValueError`` unless ``topic`` can be published to: non-empty, at
    most 65,535 UTF-8 bytes, no NUL character and no wildcard."""
    _check_string(topic, "topic name")
    if "+" in topic or "#" in topic:
        raise ValueError(
            f"topic name {topic!r} contains a wildcard ('+' or '#'); "
            "wildcards are only allowed in subscription filters"
        )


def validate_topic_filter(topic_filter: str) -> None:
    """Raise ``ValueError`` unless ``topic_filter`` is a valid subscription
    filter: ``+`` and ``#`` each occupy a whole level, ``#`` only as the last
    one; ``$share/<group>/<filter>`` needs a group without wildcards and a
    valid filter after it."""
    _parse_filter(topic_filter)


def topic_matches(topic_filter: str, topic: str) -> bool:
    """Whether a message published on ``topic`` matches ``topic_filter``. A
    shared filter ``$share/<group>/<f>`` matches what ``f`` matches. Raises
    ``ValueError`` for an invalid filter or topic name."""
    _, levels = _parse_filter(topic_filter)
    validate_topic_name(topic)
    return _matches(levels, topic.split("/"))


def _check_string(value: str, what: str) -> None:
    if not value:
        raise ValueError(f"{what} must not be empty")
    if "\x00" in value:
        raise ValueError(f"{what} {value!r} contains a NUL character")
    if len(value.encode()) > _MAX_TOPIC_BYTES:
        raise ValueError(f"{what} is longer than {_MAX_TOPIC_BYTES} bytes")


def _parse_filter(topic_filter: str) -> tuple[str | None, tuple[str, ...]]:
    """Validate; return (share group or None, levels of the filter proper)."""
    _check_string(topic_filter, "topic filter")
    group: str | None = None
    inner = topic_filter
    if topic_filter.startswith(_SHARE):
        group, _, inner = topic_filter[len(_SHARE) :].partition("/")
        if not group or "+" in group or "#" in group:
            raise ValueError(
                f"shared subscription {topic_filter!r} needs a share name without "
                "wildcards: $share/<group>/<filter>"
            )
        if not inner:
            raise ValueError(
                f"shared subscription {topic_filter!r} has no topic filter after the share name"
            )
    levels = tuple(inner.split("/"))
    for index, level in enumerate(levels):
        if level == "#" and index != len(levels) - 1:
            raise ValueError(f"topic filter {topic_filter!r}: '#' must be the last level")
        if level not in ("+", "#") and ("+" in level or "#" in level):
            raise ValueError(
                f"topic filter {topic_filter!r}: a wildcard must be a whole level, not {level!r}"
            )
    return group, levels


def _matches(levels: Sequence[str], topic_levels: Sequence[str]) -> bool:
    # $-topics belong to the server or platform; only explicit filters see them.
    if topic_levels[0].startswith("$") and levels[0] in ("+", "#"):
        return False
    for index, level in enumerate(levels):
        if level == "#":
            return True  # reached with every earlier level matched: parent included
        if index >= len(topic_levels) or (level != "+" and level != topic_levels[index]):
            return False
    return len(levels) == len(topic_levels)


def _check_qos(qos: int) -> None:
    if qos not in (0, 1, 2):
        raise ValueError(f"qos must be 0, 1 or 2, not {qos!r}")


def _require_bytes(payload: object) -> bytes:
    # Only immutable bytes: a bytearray could change after publish under the
    # subscribers' feet, which a real broker's copy over the wire never does.
    if not isinstance(payload, bytes):
        raise TypeError(f"payload must be bytes, not {type(payload).__name__}")
    return payload


@dataclass(eq=False)
class _Route:
    """One distinct topic filter and the clients holding it, in subscription order."""

    levels: tuple[str, ...]
    holders: dict[str, int] = field(default_factory=dict)  # client id -> granted QoS
    turn: int = 0  # shared subscriptions: how many messages were handed out


class InMemoryBroker:
    """Sessions, subscriptions and retained messages of an in-process broker.

    ``max_queued`` bounds each client's queue; overflow is dropped for that
    client and counted (see the module docstring)."""

    def __init__(self, max_queued: int = 100_000) -> None:
        if max_queued < 1:
            raise ValueError(f"max_queued must be at least 1, not {max_queued}")
        self.max_queued = max_queued
        self._sessions: dict[str, InMemoryTransport] = {}
        # Wildcard-free filters are found by one dict lookup on the topic and
        # only wildcard filters are scanned, so a fleet of VENs each subscribed
        # to its own command topic costs nothing per publish.
        self._exact: dict[str, _Route] = {}
        self._wild: dict[str, _Route] = {}
        self._shared: dict[str, _Route] = {}  # keyed by the full $share/... filter
        self._retained: dict[str, BrokerMessage] = {}
        self._dropped: Counter[str] = Counter()
        self._ids = itertools.count(1)

    @property
    def dropped(self) -> int:
        """Messages dropped because a client's queue was full, over all clients."""
        return self._dropped.total()

    def dropped_for(self, client_id: str) -> int:
        """Messages dropped for one client id (kept across reconnects)."""
        return self._dropped[client_id]

    def connect(self, client_id: str | None = None) -> InMemoryTransport:
        """A connected transport. Without a client id (or with ``""``) the broker
        assigns a unique one; an id already connected is taken over."""
        if not client_id:
            client_id = f"memory-{next(self._ids)}"
            while client_id in self._sessions:
                client_id = f"memory-{next(self._ids)}"
        elif (previous := self._sessions.get(client_id)) is not None:
            previous._disconnect()
        transport = InMemoryTransport(self, client_id, self.max_queued)
        self._sessions[client_id] = transport
        return transport

    def _table(self, group: str | None, levels: tuple[str, ...]) -> dict[str, _Route]:
        if group is not None:
            return self._shared
        return self._wild if "+" in levels or "#" in levels else self._exact

    def _subscribe(self, client_id: str, topic_filter: str, qos: int) -> None:
        group, levels = _parse_filter(topic_filter)
        route = self._table(group, levels).setdefault(topic_filter, _Route(levels))
        route.holders[client_id] = qos
        if group is None:
            for message in list(self._retained.values()):
                if _matches(levels, message.topic.split("/")):
                    self._deliver(client_id, replace(message, qos=min(qos, message.qos)))

    def _unsubscribe(self, client_id: str, topic_filter: str) -> None:
        group, levels = _parse_filter(topic_filter)
        table = self._table(group, levels)
        route = table.get(topic_filter)
        if route is not None:
            route.holders.pop(client_id, None)
            if not route.holders:
                del table[topic_filter]

    def _publish(self, message: BrokerMessage) -> None:
        if message.retain:
            if message.payload:
                self._retained[message.topic] = message
            else:
                self._retained.pop(message.topic, None)
        topic_levels = message.topic.split("/")
        granted: dict[str, int] = {}  # one copy per client, at its best matching QoS
        routes = [r for r in self._wild.values() if _matches(r.levels, topic_levels)]
        if (exact := self._exact.get(message.topic)) is not None:
            routes.append(exact)
        for route in routes:
            for client_id, qos in route.holders.items():
                granted[client_id] = max(qos, granted.get(client_id, 0))
        for route in self._shared.values():
            if _matches(route.levels, topic_levels):
                members = list(route.holders.items())
                client_id, qos = members[route.turn % len(members)]
                route.turn += 1
                granted[client_id] = max(qos, granted.get(client_id, 0))
        for client_id, qos in granted.items():
            live = replace(message, qos=min(qos, message.qos), retain=False)
            self._deliver(client_id, live)

    def _deliver(self, client_id: str, message: BrokerMessage) -> None:
        if not self._sessions[client_id]._offer(message):
            self._dropped[client_id] += 1

    def _forget(self, transport: InMemoryTransport) -> None:
        for topic_filter in transport._filters:
            self._unsubscribe(transport.client_id, topic_filter)
        if self._sessions.get(transport.client_id) is transport:
            del self._sessions[transport.client_id]


class InMemoryTransport:
    """One client connection to an :class:`InMemoryBroker`; implements
    ``gridcore.ports.MessageTransport``.

    ``publish``, ``subscribe`` and ``unsubscribe`` raise ``ConnectionError``
    once the transport is closed; invalid topics or filters raise
    ``ValueError``, a payload that is not ``bytes`` raises ``TypeError``.
    ``close`` is idempotent."""

    def __init__(self, broker: InMemoryBroker, client_id: str, max_queued: int) -> None:
        self._broker = broker
        self._client_id = client_id
        # None is the close marker; close() empties the queue first, so it fits.
        self._queue: asyncio.Queue[BrokerMessage | None] = asyncio.Queue(max_queued)
        self._filters: set[str] = set()
        self._closed = False

    @property
    def client_id(self) -> str:
        return self._client_id

    @property
    def closed(self) -> bool:
        return self._closed

    async def publish(self, topic: str, payload: bytes, qos: int = 0, retain: bool = False) -> None:
        """Deliver to every matching subscriber before returning."""
        self._ensure_open()
        validate_topic_name(topic)
        _check_qos(qos)
        self._broker._publish(BrokerMessage(topic, _require_bytes(payload), qos, retain))

    async def subscribe(self, topic_filter: str, qos: int = 0) -> None:
        """Subscribe (or change the QoS of an existing subscription); matching
        retained messages are queued before this returns."""
        self._ensure_open()
        _check_qos(qos)
        self._broker._subscribe(self._client_id, topic_filter, qos)
        self._filters.add(topic_filter)

    async def unsubscribe(self, topic_filter: str) -> None:
        """Stop the subscription; unsubscribing a filter not held is a no-op."""
        self._ensure_open()
        self._broker._unsubscribe(self._client_id, topic_filter)
        self._filters.discard(topic_filter)

    async def messages(self) -> AsyncIterator[BrokerMessage]:
        """Yield delivered messages in arrival order until ``close``, then end.
        Concurrent iterators share one stream: each message goes to one of them."""
        while not self._closed:
            message = await self._queue.get()
            if message is None:
                self._queue.put_nowait(None)  # pass the marker on to other readers
                return
            yield message

    async def close(self) -> None:
        """Disconnect: subscriptions and undelivered messages are dropped and
        every ``messages`` iterator ends."""
        self._disconnect()

    def _disconnect(self) -> None:
        if self._closed:
            return
        self._closed = True
        self._broker._forget(self)
        while not self._queue.empty():
            self._queue.get_nowait()
        self._queue.put_nowait(None)

    def _offer(self, message: BrokerMessage) -> bool:
        try:
            self._queue.put_nowait(message)
        except asyncio.QueueFull:
            return False
        return True

    def _ensure_open(self) -> None:
        if self._closed:
            raise ConnectionError(f"transport {self._client_id!r} is closed")
