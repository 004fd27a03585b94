"""The contract every ``MessageTransport`` adapter keeps, as a reusable suite.

A concrete test module subclasses :class:`BrokerContract` (the name has no
``Test`` prefix, so pytest only collects the subclasses) and provides the
``transport_factory`` fixture: ``await transport_factory(client_id=None)``
returns a connected transport, and the fixture closes whatever it handed out
(``close`` must therefore be idempotent).

Every test works under its own unique topic prefix and share group, so the
suite can run against a real, shared broker (Mosquitto) in parallel with other
runs. Every wait is bounded, so a broken adapter fails instead of hanging.

"Nothing more arrived" is proved with a marker: per-publisher ordering means
that once a marker published last has arrived, anything published before it
that was going to arrive has arrived too.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Protocol
from uuid import uuid4

import pytest

from gridcore.ports import BrokerMessage, MessageTransport

TIMEOUT = 5.0


class TransportFactory(Protocol):
    async def __call__(self, client_id: str | None = None) -> MessageTransport: ...


async def receive(stream: AsyncIterator[BrokerMessage]) -> BrokerMessage:
    """The next message, or fail after TIMEOUT."""
    return await asyncio.wait_for(anext(stream), TIMEOUT)


async def receive_until(stream: AsyncIterator[BrokerMessage], marker: str) -> list[BrokerMessage]:
    """Messages up to (not including) the first one on topic ``marker``."""

    async def collect() -> list[BrokerMessage]:
        received: list[BrokerMessage] = []
        async for message in stream:
            if message.topic == marker:
                return received
            received.append(message)
        raise AssertionError(f"stream ended before the marker {marker!r}")

    return await asyncio.wait_for(collect(), TIMEOUT)


class BrokerContract:
    """Behaviour shared by every broker adapter (in-memory, Mosquitto, ...)."""

    @pytest.fixture
    def prefix(self) -> str:
        return f"test/{uuid4().hex}"

    async def test_round_trip_keeps_topic_and_exact_bytes(
        self, transport_factory: TransportFactory, prefix: str
    ) -> None:
        subscriber = await transport_factory()
        publisher = await transport_factory()
        await subscriber.subscribe(f"{prefix}/data", qos=1)
        payload = bytes(range(256)) + b'{"kW": 1.5}'

        await publisher.publish(f"{prefix}/data", payload, qos=1)

        message = await receive(subscriber.messages())
        assert message.topic == f"{prefix}/data"
        assert message.payload == payload
        assert message.retain is False

    async def test_plus_matches_exactly_one_level(
        self, transport_factory: TransportFactory, prefix: str
    ) -> None:
        subscriber = await transport_factory()
        publisher = await transport_factory()
        await subscriber.subscribe(f"{prefix}/+/power", qos=1)
        await subscriber.subscribe(f"{prefix}/end", qos=1)

        for topic in ("a/power", "b/power", "a/b/power", "a/energy", "power"):
            await publisher.publish(f"{prefix}/{topic}", topic.encode(), qos=1)
        await publisher.publish(f"{prefix}/end", b"", qos=1)

        received = await receive_until(subscriber.messages(), f"{prefix}/end")
        assert [m.payload for m in received] == [b"a/power", b"b/power"]

    async def test_hash_matches_parent_and_every_level_below(
        self, transport_factory: TransportFactory, prefix: str
    ) -> None:
        subscriber = await transport_factory()
        publisher = await transport_factory()
        await subscriber.subscribe(f"{prefix}/ven/#", qos=1)
        await subscriber.subscribe(f"{prefix}/end", qos=1)

        for topic in ("ven", "ven/1", "ven/1/ack/x", "vent", "other/ven"):
            await publisher.publish(f"{prefix}/{topic}", topic.encode(), qos=1)
        await publisher.publish(f"{prefix}/end", b"", qos=1)

        received = await receive_until(subscriber.messages(), f"{prefix}/end")
        assert [m.payload for m in received] == [b"ven", b"ven/1", b"ven/1/ack/x"]

    async def test_nothing_arrives_after_unsubscribe(
        self, transport_factory: TransportFactory, prefix: str
    ) -> None:
        subscriber = await transport_factory()
        publisher = await transport_factory()
        await subscriber.subscribe(f"{prefix}/data", qos=1)
        await subscriber.subscribe(f"{prefix}/end", qos=1)
        await publisher.publish(f"{prefix}/data", b"before", qos=1)
        stream = subscriber.messages()
        assert (await receive(stream)).payload == b"before"

        await subscriber.unsubscribe(f"{prefix}/data")
        await publisher.publish(f"{prefix}/data", b"after", qos=1)
        await publisher.publish(f"{prefix}/end", b"", qos=1)

        assert await receive_until(stream, f"{prefix}/end") == []

    async def test_retained_message_reaches_late_subscriber_until_cleared(
        self, transport_factory: TransportFactory, prefix: str
    ) -> None:
        publisher = await transport_factory()
        # QoS 1: publish returns once the broker holds (and so retains) it.
        await publisher.publish(f"{prefix}/shadow", b"state-1", qos=1, retain=True)

        late = await transport_factory()
        await late.subscribe(f"{prefix}/+", qos=1)
        message = await receive(late.messages())
        assert (message.topic, message.payload, message.retain) == (
            f"{prefix}/shadow",
            b"state-1",
            True,
        )

        await publisher.publish(f"{prefix}/shadow", b"", qos=1, retain=True)
        later = await transport_factory()
        await later.subscribe(f"{prefix}/shadow", qos=1)
        await later.subscribe(f"{prefix}/end", qos=1)
        await publisher.publish(f"{prefix}/end", b"", qos=1)
        assert await receive_until(later.messages(), f"{prefix}/end") == []

    async def test_one_publishers_messages_arrive_in_order(
        self, transport_factory: TransportFactory, prefix: str
    ) -> None:
        subscriber = await transport_factory()
        publisher = await transport_factory()
        await subscriber.subscribe(f"{prefix}/seq", qos=1)
        count = 1_000

        async def collect() -> list[int]:
            stream = subscriber.messages()
            return [int((await anext(stream)).payload) for _ in range(count)]

        # Read while publishing, so no broker queue limit is ever reached.
        collector = asyncio.create_task(collect())
        for i in range(count):
            await publisher.publish(f"{prefix}/seq", str(i).encode(), qos=1)

        assert await asyncio.wait_for(collector, TIMEOUT) == list(range(count))

    async def test_qos_is_the_lower_of_publish_and_subscription(
        self, transport_factory: TransportFactory, prefix: str
    ) -> None:
        at_least_once = await transport_factory()
        at_most_once = await transport_factory()
        publisher = await transport_factory()
        await at_least_once.subscribe(f"{prefix}/cmd", qos=1)
        await at_most_once.subscribe(f"{prefix}/cmd", qos=0)

        await publisher.publish(f"{prefix}/cmd", b"shed", qos=1)

        assert (await receive(at_least_once.messages())).qos == 1
        assert (await receive(at_most_once.messages())).qos == 0

    async def test_every_ordinary_subscriber_gets_a_copy(
        self, transport_factory: TransportFactory, prefix: str
    ) -> None:
        first = await transport_factory()
        second = await transport_factory()
        publisher = await transport_factory()
        for subscriber in (first, second):
            await subscriber.subscribe(f"{prefix}/metering", qos=1)

        await publisher.publish(f"{prefix}/metering", b"sample", qos=1)

        assert (await receive(first.messages())).payload == b"sample"
        assert (await receive(second.messages())).payload == b"sample"

    async def test_shared_subscription_splits_messages_between_members(
        self, transport_factory: TransportFactory, prefix: str
    ) -> None:
        group = f"g{uuid4().hex[:12]}"
        members = [await transport_factory(), await transport_factory()]
        publisher = await transport_factory()
        for member in members:
            await member.subscribe(f"$share/{group}/{prefix}/work", qos=1)
            await member.subscribe(f"{prefix}/end", qos=1)  # not shared: both see it
        count = 100

        for i in range(count):
            await publisher.publish(f"{prefix}/work", str(i).encode(), qos=1)
        await publisher.publish(f"{prefix}/end", b"", qos=1)

        got = [
            [int(m.payload) for m in await receive_until(member.messages(), f"{prefix}/end")]
            for member in members
        ]
        first, second = set(got[0]), set(got[1])
        assert len(got[0]) + len(got[1]) == count, "a message was lost or duplicated"
        assert first | second == set(range(count))
        assert first & second == set()
        assert first, "the first member received nothing"
        assert second, "the second member received nothing"

    async def test_publishing_to_a_wildcard_topic_is_refused(
        self, transport_factory: TransportFactory, prefix: str
    ) -> None:
        publisher = await transport_factory()
        for topic in (f"{prefix}/+/x", f"{prefix}/#"):
            with pytest.raises(ValueError):  # noqa: PT011 - adapters word it differently
                await publisher.publish(topic, b"x")

    async def test_messages_ends_after_close(
        self, transport_factory: TransportFactory, prefix: str
    ) -> None:
        transport = await transport_factory()
        await transport.subscribe(f"{prefix}/data")

        async def drain() -> list[BrokerMessage]:
            return [message async for message in transport.messages()]

        reader = asyncio.create_task(drain())
        await asyncio.sleep(0.05)  # let the reader start waiting
        await transport.close()

        assert await asyncio.wait_for(reader, TIMEOUT) == []
