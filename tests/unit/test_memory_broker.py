"""The in-memory broker: topic matching rules and the behaviour a real broker
leaves open (shared-subscription rotation, overflow, overlapping filters)."""

from __future__ import annotations

import asyncio
import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from adapters.memory.broker import (
    InMemoryBroker,
    InMemoryTransport,
    topic_matches,
    validate_topic_filter,
    validate_topic_name,
)
from gridcore.ports import BrokerMessage

TIMEOUT = 5.0

# --- topic matching ------------------------------------------------------------


@pytest.mark.parametrize(
    ("topic_filter", "topic", "expected"),
    [
        ("a/b", "a/b", True),
        ("a/b", "a/c", False),
        ("a/b", "a/b/c", False),
        ("a/b", "a", False),
        ("A/b", "a/b", False),  # case-sensitive
        # + is exactly one level, possibly empty
        ("a/+", "a/b", True),
        ("a/+", "a/", True),
        ("a/+", "a", False),
        ("a/+", "a/b/c", False),
        ("+/+", "/x", True),
        ("+", "/x", False),
        ("/+", "/x", True),
        ("a/+/c", "a//c", True),
        ("+", "a", True),
        # # is the parent and everything below, and must be last
        ("#", "a", True),
        ("#", "a/b/c", True),
        ("#", "/", True),
        ("a/#", "a", True),
        ("a/#", "a/", True),
        ("a/#", "a/b/c", True),
        ("a/#", "ab", False),
        ("a/#", "b/a", False),
        ("a/+/#", "a/b", True),
        ("a/+/#", "a", False),
        ("ven/ack/+", "ven/ack/ven-1", True),
        ("ven/cmd/ven-1", "ven/cmd/ven-2", False),
        # $-topics: wildcard-first filters never match them
        ("#", "$SYS/broker/uptime", False),
        ("+/things/x/shadow/update", "$aws/things/x/shadow/update", False),
        ("+", "$x", False),
        ("$aws/things/+/shadow/update", "$aws/things/x/shadow/update", True),
        ("$aws/#", "$aws/things/x/shadow/update", True),
        ("$SYS/#", "$SYS", True),
        ("a/+", "a/$b", True),  # $ only matters in the first level
        # shared filters match what their inner filter matches
        ("$share/g/volttron/metering", "volttron/metering", True),
        ("$share/g/ven/+", "ven/1", True),
        ("$share/g/#", "$SYS/x", False),
        ("$share/g/a", "$share/g/a", False),
    ],
)
def test_topic_matches(topic_filter: str, topic: str, expected: bool) -> None:
    assert topic_matches(topic_filter, topic) is expected


@pytest.mark.parametrize(
    ("topic_filter", "reason"),
    [
        ("", "empty"),
        ("a/#/b", "last level"),
        ("#/a", "last level"),
        ("a+", "whole level"),
        ("a/b+/c", "whole level"),
        ("a/#b", "whole level"),
        ("a#", "whole level"),
        ("a/\x00", "NUL"),
        ("x" * 65_536, "longer"),
        ("$share/g", "no topic filter"),
        ("$share/g/", "no topic filter"),
        ("$share//a", "share name"),
        ("$share/g+/a", "share name"),
        ("$share/g/a/#/b", "last level"),
    ],
)
def test_invalid_filters_are_refused(topic_filter: str, reason: str) -> None:
    with pytest.raises(ValueError, match=reason):
        validate_topic_filter(topic_filter)
    with pytest.raises(ValueError, match=reason):
        topic_matches(topic_filter, "a/b")


@pytest.mark.parametrize(
    ("topic", "reason"),
    [("", "empty"), ("a/+", "wildcard"), ("a/#", "wildcard"), ("a+b", "wildcard"), ("\x00", "NUL")],
)
def test_invalid_topic_names_are_refused(topic: str, reason: str) -> None:
    with pytest.raises(ValueError, match=reason):
        validate_topic_name(topic)
    with pytest.raises(ValueError, match=reason):
        topic_matches("#", topic)


@pytest.mark.parametrize("topic_filter", ["a", "/", "+", "#", "a/+/#", "$SYS/#", "$share/g/+"])
def test_valid_filters_pass(topic_filter: str) -> None:
    validate_topic_filter(topic_filter)


def reference_matches(topic_filter: str, topic: str) -> bool:
    """MQTT matching as a regex, independent of the broker's level walk."""
    if topic.startswith("$") and topic_filter[0] in "+#":
        return False
    levels = topic_filter.split("/")
    tail = ""
    if levels[-1] == "#":
        levels.pop()
        tail = "(/.*)?" if levels else ".*"
    body = "/".join("[^/]*" if level == "+" else re.escape(level) for level in levels)
    return re.fullmatch(body + tail, topic, re.DOTALL) is not None


LEVELS = ["a", "b", "", "$s"]


@st.composite
def topics_and_filters(draw: st.DrawFn) -> tuple[str, str]:
    """A topic and a filter over a small alphabet. The filter is derived from
    the topic (levels kept, replaced by ``+`` or by another level, cut short,
    extended, ``#`` appended) so that matches and near misses are both common."""
    levels = draw(st.lists(st.sampled_from(LEVELS), min_size=1, max_size=5))
    topic = "/".join(levels)
    if not topic:  # "" is not a topic name
        levels, topic = ["a"], "a"
    derived = [draw(st.sampled_from([level, level, "+", *LEVELS])) for level in levels]
    derived = derived[: draw(st.sampled_from([len(derived), len(derived) - 1, 0]))]
    derived += draw(st.lists(st.sampled_from([*LEVELS, "+"]), max_size=2))
    if draw(st.booleans()):
        derived.append("#")
    topic_filter = "/".join(derived)
    return topic, topic_filter or "#"  # "" is not a filter


@settings(max_examples=500)  # cheap, and the interesting corners are narrow
@given(topics_and_filters())
def test_topic_matches_agrees_with_a_regex_reference(case: tuple[str, str]) -> None:
    topic, topic_filter = case
    assert topic_matches(topic_filter, topic) == reference_matches(topic_filter, topic)


# --- broker behaviour ----------------------------------------------------------


async def take_queued(transport: InMemoryTransport) -> list[BrokerMessage]:
    """Everything already queued for ``transport``, without waiting for more."""
    taken: list[BrokerMessage] = []
    stream = transport.messages()
    while True:
        try:
            taken.append(await asyncio.wait_for(anext(stream), 0.01))
        except TimeoutError:
            return taken


@pytest.fixture
def broker() -> InMemoryBroker:
    return InMemoryBroker()


async def test_shared_subscription_rotates_round_robin(broker: InMemoryBroker) -> None:
    members = [broker.connect(f"worker-{i}") for i in range(3)]
    watcher = broker.connect("watcher")
    publisher = broker.connect()
    for member in members:
        await member.subscribe("$share/gridcore/volttron/metering", qos=1)
    await watcher.subscribe("volttron/metering")

    for i in range(9):
        await publisher.publish("volttron/metering", str(i).encode(), qos=1)

    assert [[m.payload for m in await take_queued(member)] for member in members] == [
        [b"0", b"3", b"6"],
        [b"1", b"4", b"7"],
        [b"2", b"5", b"8"],
    ]
    assert len(await take_queued(watcher)) == 9  # ordinary subscribers get every one


async def test_each_share_group_gets_its_own_copy(broker: InMemoryBroker) -> None:
    blue, green = broker.connect(), broker.connect()
    publisher = broker.connect()
    await blue.subscribe("$share/blue/ven/+")
    await green.subscribe("$share/green/ven/+")

    await publisher.publish("ven/1", b"x")

    assert len(await take_queued(blue)) == len(await take_queued(green)) == 1


async def test_leaving_a_share_group_sends_everything_to_the_rest(
    broker: InMemoryBroker,
) -> None:
    stays, leaves = broker.connect(), broker.connect()
    publisher = broker.connect()
    await stays.subscribe("$share/g/jobs")
    await leaves.subscribe("$share/g/jobs")
    await leaves.close()

    for i in range(4):
        await publisher.publish("jobs", str(i).encode())

    assert len(await take_queued(stays)) == 4


async def test_shared_subscriptions_get_no_retained_messages(broker: InMemoryBroker) -> None:
    publisher, member = broker.connect(), broker.connect()
    await publisher.publish("state", b"on", retain=True)

    await member.subscribe("$share/g/state")

    assert await take_queued(member) == []


async def test_full_queue_drops_for_that_subscriber_only() -> None:
    broker = InMemoryBroker(max_queued=3)
    slow, other = broker.connect("slow"), broker.connect("other")
    publisher = broker.connect()
    await slow.subscribe("t")
    await other.subscribe("u")

    for i in range(5):
        await publisher.publish("t", str(i).encode())  # never waits for the slow reader
    await publisher.publish("u", b"fine")

    assert [m.payload for m in await take_queued(slow)] == [b"0", b"1", b"2"]
    assert [m.payload for m in await take_queued(other)] == [b"fine"]
    assert broker.dropped == 2
    assert (broker.dropped_for("slow"), broker.dropped_for("other")) == (2, 0)

    await publisher.publish("t", b"room again")
    assert [m.payload for m in await take_queued(slow)] == [b"room again"]


async def test_overlapping_filters_deliver_once_at_the_highest_qos(
    broker: InMemoryBroker,
) -> None:
    subscriber, publisher = broker.connect(), broker.connect()
    await subscriber.subscribe("ven/+/ack", qos=0)
    await subscriber.subscribe("ven/#", qos=1)
    await subscriber.subscribe("ven/1/ack", qos=0)
    await subscriber.subscribe("$share/g/ven/1/ack", qos=2)

    await publisher.publish("ven/1/ack", b"ok", qos=2)
    await publisher.publish("ven/2/ack", b"ok", qos=0)

    assert [(m.topic, m.qos) for m in await take_queued(subscriber)] == [
        ("ven/1/ack", 2),
        ("ven/2/ack", 0),
    ]


async def test_retained_replay_is_flagged_and_live_delivery_is_not(
    broker: InMemoryBroker,
) -> None:
    publisher, live, late = broker.connect(), broker.connect(), broker.connect()
    await live.subscribe("shadow/#", qos=1)

    await publisher.publish("shadow/a", b"1", qos=1, retain=True)
    await publisher.publish("shadow/b", b"2", qos=0, retain=True)
    await late.subscribe("shadow/+", qos=1)

    assert [(m.payload, m.retain) for m in await take_queued(live)] == [
        (b"1", False),
        (b"2", False),
    ]
    assert [(m.topic, m.qos, m.retain) for m in await take_queued(late)] == [
        ("shadow/a", 1, True),
        ("shadow/b", 0, True),
    ]


async def test_empty_retained_payload_clears_and_is_still_delivered(
    broker: InMemoryBroker,
) -> None:
    publisher, live = broker.connect(), broker.connect()
    await publisher.publish("s", b"x", retain=True)
    await live.subscribe("s")
    await publisher.publish("s", b"", retain=True)

    assert [(m.payload, m.retain) for m in await take_queued(live)] == [(b"x", True), (b"", False)]
    late = broker.connect()
    await late.subscribe("#")
    assert await take_queued(late) == []


async def test_publisher_receives_its_own_messages(broker: InMemoryBroker) -> None:
    transport = broker.connect()
    await transport.subscribe("echo")
    await transport.publish("echo", b"hi")
    assert [m.payload for m in await take_queued(transport)] == [b"hi"]


async def test_resubscribing_changes_qos_without_duplicating(broker: InMemoryBroker) -> None:
    subscriber, publisher = broker.connect(), broker.connect()
    await subscriber.subscribe("t", qos=0)
    await subscriber.subscribe("t", qos=1)
    await publisher.publish("t", b"x", qos=1)
    assert [m.qos for m in await take_queued(subscriber)] == [1]


async def test_bad_arguments_are_refused(broker: InMemoryBroker) -> None:
    transport = broker.connect()
    with pytest.raises(TypeError, match="bytes"):
        await transport.publish("t", "text")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="bytes"):
        await transport.publish("t", bytearray(b"x"))  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="qos"):
        await transport.publish("t", b"x", qos=3)
    with pytest.raises(ValueError, match="qos"):
        await transport.subscribe("t", qos=-1)
    with pytest.raises(ValueError, match="last level"):
        await transport.subscribe("a/#/b")
    with pytest.raises(ValueError, match="max_queued"):
        InMemoryBroker(max_queued=0)


async def test_closed_transport_refuses_work_and_leaves_the_broker(
    broker: InMemoryBroker,
) -> None:
    closing, publisher = broker.connect(), broker.connect()
    await closing.subscribe("t")
    await closing.close()
    await closing.close()  # idempotent

    with pytest.raises(ConnectionError, match="closed"):
        await closing.publish("t", b"x")
    with pytest.raises(ConnectionError, match="closed"):
        await closing.subscribe("t")
    with pytest.raises(ConnectionError, match="closed"):
        await closing.unsubscribe("t")
    await publisher.publish("t", b"x")
    assert broker.dropped == 0
    assert [m async for m in closing.messages()] == []


async def test_close_ends_every_waiting_reader_and_drops_the_backlog(
    broker: InMemoryBroker,
) -> None:
    transport = broker.connect()
    await transport.subscribe("t")

    async def read() -> list[BrokerMessage]:
        return [m async for m in transport.messages()]

    readers = [asyncio.create_task(read()) for _ in range(2)]
    await asyncio.sleep(0)
    await transport.close()

    assert await asyncio.wait_for(asyncio.gather(*readers), TIMEOUT) == [[], []]


async def test_client_ids_are_assigned_and_taken_over(broker: InMemoryBroker) -> None:
    first, second = broker.connect(), broker.connect("")
    assert first.client_id != second.client_id

    old = broker.connect("ven-1")
    await old.subscribe("ven/cmd/ven-1")
    new = broker.connect("ven-1")

    assert old.closed
    assert not new.closed
    await new.subscribe("ven/cmd/ven-1")
    await first.publish("ven/cmd/ven-1", b"shed")
    assert [m.payload for m in await take_queued(new)] == [b"shed"]
