"""One hostile MQTT message cannot stop a running `gridcore worker` (issue 11).

A real ``gridcore worker`` process on a fresh PostgreSQL database, fed by the
real Mosquitto on the test's own metering topic. Through the broker the test
publishes poison messages, each followed by a good message of the same kind
(telemetry on the metering topic, a ping ACK on ``ven/ack/{venId}``), then
good telemetry and ACKs for every test VEN:

- the two payloads of issue 11, whose timestamps overflow when converted to
  UTC (they used to kill the consumer with an ``OverflowError``);
- malformed JSON, bytes that are not UTF-8, a payload over 128 KiB, a JSON
  array, JSON ``null``, nesting deeper than any parser allows, wrong types,
  NaN and out-of-range numbers, an ACK naming another VEN than its topic.

Proven: every good message is stored (``ven_telemetry`` row, VEN registered
with ``last_seen_at``, ``ven_acks`` row) within 1 s of its publication; every
poison message is in ``dead_letters`` once, with its topic, its bytes and a
reason of the consumer's categories (never ``internal``: that is the catch-all
for what validation did not foresee); no poison reached the telemetry or ACK
tables; the worker process is still running. The process alone proves
little: at the commit before issue 11's fix the consumer died on the first
payload, logging no traceback, while the process (its dispatcher) ran on; the
good messages published after each poison message are what fail then.

``storage-and-plausibility`` holds telemetry that once got through validation
and failed later: a venId no topic can carry and a 200-character loadId (the
store refused them, and they were dead-lettered under the pseudo-topic
``telemetry`` as "VEN is not registered"), a 300-character load name (it failed
the COPY of its whole batch, and the poison search stalled ingestion ~200 s),
a NUL in a load name, 129 loads, and timestamps in 2099 and ten minutes ahead
(one pinned a VEN at 999 kW, online). Each is now refused at the edge, on its
topic, naming the field. ``test_a_row_the_database_refuses_is_bisected_out``
makes PostgreSQL itself refuse one row of a batch (a CHECK constraint): the
worker isolates it in O(log n) writes and stores the rest at once.

An ACK whose correlationId holds a NUL (``"c\\u0000"``), or from a VEN id over
128 characters, used to pass validation, fail its database write and hold
every ACK behind it for ~2 s of retries; it is now refused at the edge. They
are sent on the test's own ACK topic (``MQTT_TOPIC_RESPONSES``), not
``ven/ack/{venId}``, which every worker on the broker consumes.

Process management, the test's names (VEN prefix, metering topic, database)
and the database view are the dispatch e2e tests' (``test_dispatch_processes``).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import aiomqtt
import pytest
import test_dispatch_processes as dispatch_e2e
from sqlalchemy import select, text
from test_dispatch_processes import Backend, Fleet, Process, Processes, start_worker, wait_until

from adapters.mqtt.payloads import MAX_PAYLOAD_BYTES
from adapters.sql.tables import dead_letters, ven_acks, ven_telemetry, vens

pytestmark = [pytest.mark.mosquitto, pytest.mark.postgres]

# The dispatch tests' fixtures: a unique database (dropped after the test) and
# metering topic, the test's view of the database, and the processes it starts
# (all killed when it ends).
fleet = dispatch_e2e.fleet
backend = dispatch_e2e.backend
processes = dispatch_e2e.processes

GOOD_WITHIN = 1.0  # seconds from publication to the database, for every good message
SETTLE = 8.0  # how long after the last publication a late message is still waited for
POLL = 0.05
VEN_COUNT = 3
# Where the telemetry batcher dead-lettered a sample the store refused, before
# each sample carried its topic (checked: nothing goes there any more).
TELEMETRY_PSEUDO_TOPIC = "telemetry"
# The consumer's reasons for refusing a message it has read (not a failed write).
VALIDATION = {"invalid", "unparseable", "oversize", "ven mismatch"}


def private_ack_topic(fleet: Fleet) -> str:
    """The test's own ACK topic (the worker's ``MQTT_TOPIC_RESPONSES``): a poison
    ACK that holds a write queue sent there holds no other test's worker's, as
    one on ``ven/ack/+`` would (every worker on the broker has that one)."""
    return fleet.metering_topic.rpartition("/")[0] + "/acks"


def ms(moment: datetime) -> datetime:
    """``moment`` to whole milliseconds: it survives ISO text and the database exactly."""
    return moment.replace(microsecond=moment.microsecond // 1000 * 1000)


def dumps(body: object) -> bytes:
    return json.dumps(body).encode()


# --- what is published -------------------------------------------------------------------


@dataclass(frozen=True)
class Poison:
    what: str
    topic: str
    payload: bytes
    # The dead letter's reason starts with "<category>:". None: the message may
    # also be stored (made storable, e.g. without its NUL) rather than refused.
    category: str | None


def documented_poison(fleet: Fleet, ven: str) -> list[Poison]:
    """Hostile messages naming ``ven`` (one of the test's good VENs) where they name one."""
    metering, ack = fleet.metering_topic, f"ven/ack/{ven}"
    now = time.time()
    oversize = "x" * (MAX_PAYLOAD_BYTES + 1)
    return [
        Poison(
            "issue 11: telemetry timestamp that overflows in UTC",
            metering,
            dumps({"venId": ven, "timestamp": "9999-12-31T23:59:59-23:59"}),
            "invalid",
        ),
        Poison(
            "issue 11: ACK ts that overflows in UTC",
            ack,
            dumps({"op": "ping", "status": "pong", "ts": "0001-01-01T00:00:00+01:00"}),
            "invalid",
        ),
        Poison(
            "malformed JSON telemetry",
            metering,
            b'{"venId": "' + ven.encode() + b'", "timestamp": ',
            "unparseable",
        ),
        Poison("malformed JSON ACK", ack, b'{"op": "ping", "status": "pong"', "unparseable"),
        Poison("telemetry not UTF-8", metering, b'\xff\xfe{"venId": \xc3\x28}', "unparseable"),
        Poison("ACK not UTF-8", ack, b'{"op": "ping", "status": "\xed\xa0\x80"}', "unparseable"),
        Poison(
            "telemetry over 128 KiB",
            metering,
            dumps({"venId": ven, "timestamp": now, "padding": oversize}),
            "oversize",
        ),
        Poison(
            "ACK over 128 KiB",
            ack,
            dumps({"op": "ping", "status": "pong", "padding": oversize}),
            "oversize",
        ),
        # (a JSON array of samples is a batch, docs/mqtt-commands.md; an empty one is none)
        Poison("telemetry as an empty JSON array", metering, dumps([]), "invalid"),
        Poison("ACK as a JSON array", ack, dumps([{"op": "ping", "status": "pong"}]), "invalid"),
        Poison("telemetry as JSON null", metering, b"null", "invalid"),
        Poison("telemetry nested 100,000 deep", metering, b"[" * 100_000, "unparseable"),
        Poison(
            "telemetry with wrong types",
            metering,
            dumps({"venId": 42, "timestamp": True, "usedPowerKw": "5.0", "loads": {}}),
            "invalid",
        ),
        Poison(
            "ACK with wrong types",
            ack,
            dumps({"op": 1, "status": ["pong"], "ts": {"at": now}, "actual_shed_kw": "2"}),
            "invalid",
        ),
        Poison(
            "telemetry with NaN",
            metering,
            b'{"venId": "%s", "timestamp": %d, "usedPowerKw": NaN}' % (ven.encode(), now),
            "invalid",
        ),
        Poison(
            "telemetry with epoch seconds 1e308",
            metering,
            dumps({"venId": ven, "timestamp": 1e308}),
            "invalid",
        ),
        Poison(
            "telemetry with a load priority that is a float",
            metering,
            dumps({"venId": ven, "timestamp": now, "loads": [{"loadId": "a", "priority": 1e30}]}),
            "invalid",
        ),
        Poison(
            "ACK naming another VEN than its topic",
            ack,
            dumps({"venId": f"{ven}-other", "op": "ping", "status": "pong"}),
            "ven mismatch",
        ),
        Poison(
            "ACK with a curtailed circuit without kW",
            ack,
            dumps({"op": "event", "status": "accepted", "circuits_curtailed": [{"id": "a"}]}),
            "invalid",
        ),
        Poison(
            "ACK with a NUL in its correlationId",
            private_ack_topic(fleet),
            dumps({"venId": ven, "op": "event", "status": "accepted", "correlationId": "c\u0000"}),
            "invalid",
        ),
        Poison(
            "ACK from a VEN id over 128 characters",
            private_ack_topic(fleet),
            dumps({"venId": ven + "x" * 200, "op": "ping", "status": "pong"}),
            "invalid",
        ),
    ]


def storage_and_plausibility(fleet: Fleet, ven: str) -> list[Poison]:
    """Telemetry storage could not hold, or gridcore should not believe (see the
    module docstring); ``ven`` is one of the test's good VENs."""
    now, metering = time.time(), fleet.metering_topic

    def telemetry(what: str, **fields: object) -> Poison:
        return Poison(what, metering, dumps({"venId": ven, "timestamp": now, **fields}), "invalid")

    return [
        Poison(
            "telemetry from a venId no topic can carry",
            metering,
            dumps({"venId": "bad ven/#", "timestamp": now}),
            "invalid",
        ),
        telemetry("telemetry with a 200-character loadId", loads=[{"loadId": "l" * 200}]),
        telemetry("a 300-character load name", loads=[{"loadId": "a", "name": "n" * 300}]),
        telemetry("a NUL in a load name", loads=[{"loadId": "a", "name": "a\u0000b"}]),
        telemetry("129 loads", circuits=[{"id": f"c{n}"} for n in range(129)]),
        telemetry("stamped in 2099", timestamp="2099-06-01T00:00:00Z", usedPowerKw=999.0),
        telemetry("stamped ten minutes ahead", timestamp=now + 600, usedPowerKw=999.0),
    ]


@dataclass(frozen=True)
class Good:
    ven_id: str
    topic: str
    payload: bytes
    key: tuple[str, object]  # ("telemetry", timestamp) or ("ack", correlationId)


@dataclass
class GoodMessages:
    """Good telemetry and ping ACKs of the test's VENs, each unique."""

    fleet: Fleet
    vens: list[str]
    # A second in the past: a sample stamped after it arrives (by the ms the
    # schedule takes to publish) is heard from at its receive time, not its stamp.
    start: datetime = field(default_factory=lambda: ms(datetime.now(UTC) - timedelta(seconds=1)))
    made: int = 0

    def _next(self) -> tuple[str, int]:
        self.made += 1
        return self.vens[self.made % len(self.vens)], self.made

    def telemetry(self, ven: str | None = None) -> Good:
        rotated, n = self._next()
        ven = ven or rotated
        stamp = self.start + timedelta(milliseconds=n)
        body = {
            "venId": ven,
            "timestamp": stamp.isoformat(),
            "usedPowerKw": 2.5,
            "loads": [
                {"loadId": "hvac", "type": "hvac", "currentPowerKw": 1.5, "shedCapabilityKw": 1.0}
            ],
        }
        return Good(ven, self.fleet.metering_topic, dumps(body), ("telemetry", stamp))

    def ack(self, ven: str | None = None, *, private: bool = False) -> Good:
        """A ping ACK on ``ven/ack/{venId}``, or on the test's own ACK topic."""
        rotated, n = self._next()
        ven = ven or rotated
        correlation_id = f"{ven}-{'own' if private else 'ping'}-{n}"
        body = {
            "op": "ping",
            "status": "pong",
            "correlationId": correlation_id,
            "ts": datetime.now(UTC).isoformat(),
        }
        if private:
            topic, body["venId"] = private_ack_topic(self.fleet), ven
        else:
            topic = f"ven/ack/{ven}"
        return Good(ven, topic, dumps(body), ("ack", correlation_id))

    def like(self, poison: Poison) -> Good:
        """A good message on the poison's topic."""
        if poison.topic == private_ack_topic(self.fleet):
            return self.ack(private=True)
        return self.ack() if poison.topic.startswith("ven/ack/") else self.telemetry()


# --- what the database holds ---------------------------------------------------------------


async def stored_keys(backend: Backend, vens: list[str]) -> set[tuple[str, object]]:
    async with backend.engine.connect() as conn:
        telemetry = await conn.execute(
            select(ven_telemetry.c.ven_id, ven_telemetry.c.timestamp).where(
                ven_telemetry.c.ven_id.in_(vens)
            )
        )
        acks = await conn.execute(
            select(ven_acks.c.ven_id, ven_acks.c.correlation_id).where(ven_acks.c.ven_id.in_(vens))
        )
        return {("telemetry", stamp) for _, stamp in telemetry} | {
            ("ack", correlation_id) for _, correlation_id in acks
        }


async def stored_telemetry(backend: Backend, vens: list[str]) -> list[tuple[str, datetime]]:
    async with backend.engine.connect() as conn:
        rows = await conn.execute(
            select(ven_telemetry.c.ven_id, ven_telemetry.c.timestamp).where(
                ven_telemetry.c.ven_id.in_(vens)
            )
        )
        return [(ven, stamp) for ven, stamp in rows]


async def last_seen(backend: Backend, prefix: str) -> dict[str, datetime | None]:
    async with backend.engine.connect() as conn:
        rows = await conn.execute(
            select(vens.c.id, vens.c.last_seen_at).where(vens.c.id.startswith(prefix))
        )
        return {ven: seen for ven, seen in rows}


async def letters(backend: Backend, topics: set[str]) -> list[tuple[str, bytes, str]]:
    async with backend.engine.connect() as conn:
        rows = await conn.execute(
            select(dead_letters.c.topic, dead_letters.c.payload, dead_letters.c.reason)
            .where(dead_letters.c.topic.in_(sorted(topics)))
            .order_by(dead_letters.c.id)
        )
        return [(topic, bytes(payload), reason) for topic, payload, reason in rows]


def judge(poison: Poison, found: list[tuple[str, bytes, str]]) -> str | None:
    """What is wrong with ``poison``'s dead letters (topic, payload, reason), if anything."""
    shown = f"{poison.what} ({poison.payload[:100]!r} on {poison.topic[:60]})"
    elsewhere = [(t, r) for t, p, r in found if p == poison.payload and t != poison.topic]
    if elsewhere:
        topic, reason = elsewhere[0]
        return f"{shown}: dead-lettered under {topic!r}, reason {reason[:200]!r}"
    reasons = [r for t, p, r in found if (t, p) == (poison.topic, poison.payload)]
    if not reasons:
        return None if poison.category is None else f"{shown}: not dead-lettered"
    if len(reasons) > 1:
        return f"{shown}: {len(reasons)} dead letters"
    expected = VALIDATION if poison.category is None else {poison.category}
    if reasons[0].partition(":")[0] not in expected:
        return f"{shown}: reason {reasons[0][:300]!r}, not {' or '.join(sorted(expected))}"
    return None


@dataclass
class Arrivals:
    """When each good message was published, and first seen in the database."""

    published: dict[tuple[str, object], float] = field(default_factory=dict)
    seen: dict[tuple[str, object], float] = field(default_factory=dict)

    def latencies(self) -> dict[tuple[str, object], float]:
        return {k: self.seen[k] - t for k, t in self.published.items() if k in self.seen}

    def missing(self) -> list[tuple[str, object]]:
        return [k for k in self.published if k not in self.seen]

    def summary(self) -> str:
        latencies = self.latencies()
        worst = sorted(latencies.items(), key=lambda kv: -kv[1])[:3]
        return (
            f"good ones stored in at most {max(latencies.values(), default=float('nan')):.3f}s "
            f"after publication (worst: {[(str(k[1]), round(s, 3)) for k, s in worst]})"
        )

    def problems(self) -> list[str]:
        """Good messages not all stored, each within GOOD_WITHIN of its publication."""
        wrong = []
        if self.missing():
            wrong.append(
                f"good messages not stored {SETTLE:.0f}s after the last publication: "
                f"{sorted(str(k[1]) for k in self.missing())}"
            )
        slow = {str(k[1]): round(s, 3) for k, s in self.latencies().items() if s > GOOD_WITHIN}
        if slow:
            wrong.append(
                f"good messages stored later than {GOOD_WITHIN}s after publication: {slow}"
            )
        return wrong


def good_rows(schedule: list[Poison | Good]) -> list[tuple[str, datetime]]:
    """The good telemetry's (venId, timestamp), sorted."""
    return sorted(
        (m.ven_id, stamp)
        for m in schedule
        if isinstance(m, Good) and isinstance(stamp := m.key[1], datetime)
    )


async def telemetry_problems(
    backend: Backend, vens: list[str], schedule: list[Poison | Good]
) -> list[str]:
    """Telemetry rows of the test's VENs that no good message sent."""
    expected = good_rows(schedule)
    rows = sorted(await stored_telemetry(backend, vens))
    if rows == expected:
        return []
    extra = sorted(set(rows) - set(expected))
    return [f"ven_telemetry rows of the test's VENs that no good message sent: {extra}"]


@contextlib.asynccontextmanager
async def watching(backend: Backend, vens: list[str]) -> AsyncIterator[Arrivals]:
    """Polls the database every ``POLL`` s, noting when each good message appears."""
    arrivals = Arrivals()

    async def poll() -> None:
        while True:
            found = await stored_keys(backend, vens)
            at = time.monotonic()
            for key in found:
                arrivals.seen.setdefault(key, at)
            await asyncio.sleep(POLL)

    task = asyncio.create_task(poll())
    try:
        yield arrivals
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


async def publish_watched(
    client: aiomqtt.Client, backend: Backend, vens: list[str], schedule: list[Poison | Good]
) -> Arrivals:
    """Publish ``schedule`` in order and wait (at most SETTLE) until every good
    message is stored, noting when each was published and first seen."""
    async with watching(backend, vens) as arrivals:
        for message in schedule:
            if isinstance(message, Good):
                arrivals.published[message.key] = time.monotonic()
            await client.publish(message.topic, message.payload, qos=1)
        last_published = time.monotonic()
        # Polling: rows arriving in another process's commits have no event to await.
        while arrivals.missing() and time.monotonic() < last_published + SETTLE:  # noqa: ASYNC110
            await asyncio.sleep(POLL)
        await asyncio.sleep(2 * POLL)  # one more poll: every row seen
    return arrivals


# --- the tests -------------------------------------------------------------------------


async def worker_consuming(
    fleet: Fleet, backend: Backend, processes: Processes, client: aiomqtt.Client
) -> Process:
    """A worker subscribed to its topics: a probe VEN's telemetry and ACKs (on
    ``ven/ack/{venId}`` and the test's own ACK topic), re-published until stored."""
    worker = start_worker(processes, "worker", MQTT_TOPIC_RESPONSES=private_ack_topic(fleet))
    probe = f"{fleet.prefix}-probe"
    goods = GoodMessages(fleet, [probe])
    last_sent = 0.0

    async def probed() -> bool:
        nonlocal last_sent
        if not worker.running:
            pytest.fail(f"the worker exited at start\n{processes.logs()}")
        found = await stored_keys(backend, [probe])
        kinds = {
            "telemetry" if kind == "telemetry" else str(key).split("-")[-2] for kind, key in found
        }
        if kinds == {"telemetry", "ping", "own"}:
            return True
        if time.monotonic() - last_sent > 0.25:  # lost while the worker was not subscribed
            last_sent = time.monotonic()
            for good in (goods.telemetry(), goods.ack(), goods.ack(private=True)):
                await client.publish(good.topic, good.payload, qos=1)
        return False

    await wait_until("the worker to store a probe's telemetry and ACKs", probed, processes)
    return worker


@pytest.mark.parametrize(
    "poison_messages",
    [
        pytest.param(documented_poison, id="issue-11-and-nasty"),
        pytest.param(storage_and_plausibility, id="storage-and-plausibility"),
    ],
)
async def test_poison_messages_do_not_stop_the_worker(
    fleet: Fleet,
    backend: Backend,
    processes: Processes,
    poison_messages: Callable[[Fleet, str], list[Poison]],
) -> None:
    started = time.monotonic()
    vens = sorted(fleet.ven_ids(VEN_COUNT))
    identifier = f"{fleet.prefix}-publisher"
    async with aiomqtt.Client(fleet.host, fleet.port, identifier=identifier) as client:
        worker = await worker_consuming(fleet, backend, processes, client)
        poisons = poison_messages(fleet, vens[0])
        goods = GoodMessages(fleet, vens)
        # Each poison message is followed by a good one of its kind; then every
        # VEN reports and ACKs once more, after all of the poison.
        schedule: list[Poison | Good] = []
        for poison in poisons:
            schedule += [poison, goods.like(poison)]
        for ven in vens:
            schedule += [goods.telemetry(ven), goods.ack(ven)]
        good_keys = {m.key for m in schedule if isinstance(m, Good)}

        arrivals = await publish_watched(client, backend, vens, schedule)

    summary = f"{len(poisons)} poison and {len(good_keys)} good messages; {arrivals.summary()}"
    # Every claim is judged, so that a failure says all that is wrong.
    wrong = arrivals.problems() + await telemetry_problems(backend, vens, schedule)
    expected_rows = good_rows(schedule)
    newest = {ven: max(s for v, s in expected_rows if v == ven) for ven in vens}
    seen = await last_seen(backend, fleet.prefix)
    if {v: seen.get(v) for v in vens} != newest:
        wrong.append(f"VENs not registered with last_seen_at at their newest sample: {seen}")
    if registered := sorted(set(seen) - {*vens, f"{fleet.prefix}-probe"}):
        wrong.append(f"a poison message registered a VEN: {registered}")

    # The poison: each dead-lettered once, with its topic, its bytes and a reason
    # from validation. Rejections are written in arrival order before the last
    # good ACKs, so they are all there by now (a second is room for stragglers).
    topics = {p.topic for p in poisons} | {TELEMETRY_PSEUDO_TOPIC}

    async def all_dead_lettered() -> bool:
        found = {(t, p) for t, p, _ in await letters(backend, topics)}
        return all((p.topic, p.payload) in found for p in poisons if p.category is not None)

    with contextlib.suppress(pytest.fail.Exception):  # judged below, message by message
        await wait_until("every poison message dead-lettered", all_dead_lettered, processes, 1.0)
    found = await letters(backend, topics)
    wrong += [problem for p in poisons if (problem := judge(p, found))]
    poison_bytes = {p.payload for p in poisons}
    strays = [(t, p[:100], r[:200]) for t, p, r in found if p not in poison_bytes]
    if strays:
        wrong.append(f"dead letters of no poison message: {strays}")

    if not worker.running:
        wrong.append(f"the worker exited with status {worker.popen and worker.popen.poll()}")
    if "failed unexpectedly" in worker.log():
        wrong.append("a message escaped validation (dead-lettered as 'internal')")
    assert not wrong, "\n".join([*wrong, summary, processes.logs()])
    print(f"{summary}; {time.monotonic() - started:.1f}s")


REFUSED_KW = 13.13
CHECK = "e2e_refuses_one_reading"
BURST = 200


async def test_a_row_the_database_refuses_is_bisected_out_of_its_batch(
    fleet: Fleet, backend: Backend, processes: Processes
) -> None:
    """PostgreSQL refuses one row of a burst (a CHECK constraint on this test's
    database: the COPY of its batch fails, as a 300-character name once made it
    fail). The worker bisects the batch, dead-letters that message on its topic
    with the database's reason, and stores every other message within 1 s."""
    async with backend.engine.begin() as conn:
        await conn.execute(
            text(
                f"ALTER TABLE ven_telemetry ADD CONSTRAINT {CHECK} "
                f"CHECK (used_power_kw IS DISTINCT FROM {REFUSED_KW})"
            )
        )
    vens = sorted(fleet.ven_ids(VEN_COUNT))
    async with aiomqtt.Client(fleet.host, fleet.port, identifier=f"{fleet.prefix}-pub") as client:
        worker = await worker_consuming(fleet, backend, processes, client)
        goods = GoodMessages(fleet, vens)
        schedule: list[Poison | Good] = [goods.telemetry() for _ in range(BURST)]
        stamp = (goods.start - timedelta(seconds=1)).isoformat()
        refused = dumps({"venId": vens[0], "timestamp": stamp, "usedPowerKw": REFUSED_KW})
        schedule.insert(
            BURST // 2, Poison("a row PostgreSQL refuses", fleet.metering_topic, refused, None)
        )
        arrivals = await publish_watched(client, backend, vens, schedule)

    wrong = arrivals.problems() + await telemetry_problems(backend, vens, schedule)
    topics = {fleet.metering_topic, TELEMETRY_PSEUDO_TOPIC}

    async def dead_lettered() -> bool:
        return bool(await letters(backend, topics))

    with contextlib.suppress(pytest.fail.Exception):  # judged below
        await wait_until("the refused row dead-lettered", dead_lettered, processes, 1.0)
    found = [
        (t, p == refused, r.partition(":")[0], CHECK in r)
        for t, p, r in await letters(backend, topics)
    ]
    if found != [(fleet.metering_topic, True, "store refused the sample", True)]:
        wrong.append(f"dead letters (topic, the refused row's, category, names {CHECK}): {found}")
    if "bisecting it for a bad item" not in worker.log():
        wrong.append("the worker did not say it bisected the failed batch")
    assert not wrong, "\n".join([*wrong, arrivals.summary(), processes.logs()])
    print(f"{BURST} good messages and one refused row; {arrivals.summary()}")
