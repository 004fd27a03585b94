"""Every ACK twice, two real `gridcore worker` processes, one PostgreSQL
database: an event's actualReductionKw is still counted once per VEN.

The workers share an MQTT 5 shared subscription (``MQTT_SHARED_GROUP``), so
Mosquitto hands the two copies of an ACK to one worker or to both, which then
record them in concurrent transactions. The test plays the VENs itself: it
reports telemetry on the test's metering topic (so the VENs are online with
shed capacity), and answers every event command on ``ven/cmd/{venId}``
(re-sends included, same correlationId) with the same accepted ACK published
twice at QoS 1 on ``ven/ack/{venId}``. Each VEN delivers its own share of the
kW it was asked for.

Once every event command is ACKed and every ACK sent is in ``ven_acks``:
actualReductionKw is exactly the sum over VENs of the kW their newest accepted
ACK reports (to 3 decimals: kW are stored rounded to watts), every event
command is ``acked``, and the audit table holds both copies of every ACK.

The event lasts 25 s, under the dispatcher's 30 s minimum for re-allocating a
shortfall, so the VENs' partial delivery starts no second round of commands
(were there one, the expected sum still takes each VEN's newest command).

Process management, the test's fleet/database/broker names and the database
view are the dispatch e2e tests' (``test_dispatch_processes``).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
import time
from collections import Counter
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime

import aiomqtt
import pytest
import test_dispatch_processes as dispatch_e2e
from test_dispatch_processes import (
    Backend,
    Fleet,
    Processes,
    start_worker,
    wait_until,
)

from gridcore.correlation import Command, CommandOp, CommandState
from gridcore.quantities import to_watts

pytestmark = [pytest.mark.mosquitto, pytest.mark.postgres]

# The dispatch tests' fixtures: a unique database (dropped after the test) and
# metering topic, the test's view of the database, and the processes it starts
# (all killed when it ends).
fleet = dispatch_e2e.fleet
backend = dispatch_e2e.backend
processes = dispatch_e2e.processes

VEN_COUNT = 20
COPIES = 2  # every ACK is published this many times
REQUESTED_KW = 12.0  # of the fleet's 14.5 kW shed capacity: every VEN gets a share
EVENT_SECONDS = 25  # < DispatchPolicy.rebalance_min_remaining: no re-allocation
SETTLE_TIMEOUT = 30.0  # for every command to be ACKed and every ACK stored


def ven_number(ven_id: str) -> int:
    return int(ven_id.rsplit("-", 1)[1])


def shed_capability_kw(ven_id: str) -> float:
    """0.25 kW for VEN 1 up to 1.2 kW for VEN 20: the allocation varies per VEN."""
    return round(0.2 + 0.05 * ven_number(ven_id), 3)


def delivered_w(ven_id: str, shed_kw: float) -> int:
    """What a VEN sheds of ``shed_kw``: 43% for VEN 1 up to 100% for VEN 20, in
    whole watts (what gridcore stores), never more than it was asked."""
    return to_watts(shed_kw) * (40 + 3 * ven_number(ven_id)) // 100


def telemetry(ven_id: str) -> bytes:
    shed = shed_capability_kw(ven_id)
    body = {
        "venId": ven_id,
        "timestamp": time.time(),
        "usedPowerKw": 3.0,
        "loads": [
            {
                "loadId": "circuit_1",
                "name": "Main HVAC",
                "type": "hvac",
                "capacityKw": 2 * shed,
                "currentPowerKw": shed,
                "shedCapabilityKw": shed,
                "enabled": True,
                "critical": False,
                "priority": 1,
            }
        ],
    }
    return json.dumps(body).encode()


# --- the VENs: every event command answered with the same ACK, twice -----------------


@dataclass(frozen=True)
class AckSent:
    ven_id: str
    correlation_id: str
    event_id: str
    shed_kw: float
    actual_w: int


@dataclass
class DoubleAckingVens:
    """Answers every event command to ``vens`` with ``COPIES`` identical ACKs."""

    client: aiomqtt.Client
    vens: set[str]
    commands: list[dict[str, object]] = field(default_factory=list)  # event commands received
    sent: list[AckSent] = field(default_factory=list)  # one per ACK published
    task: asyncio.Task[None] | None = None

    async def answer(self) -> None:
        async for message in self.client.messages:
            payload = message.payload
            assert isinstance(payload, bytes)
            command = json.loads(payload)
            ven_id = str(message.topic).removeprefix("ven/cmd/")
            if ven_id not in self.vens or command.get("op") != "event":
                continue  # restores at the event's end need no answer here
            self.commands.append(command)
            shed_kw = float(command["shed_kw"])
            actual_w = delivered_w(ven_id, shed_kw)
            ack = {
                "venId": ven_id,
                "op": "event",
                "status": "accepted",
                "correlationId": command["correlationId"],
                "eventId": command["event_id"],
                "requested_shed_kw": shed_kw,
                "actual_shed_kw": actual_w / 1000,
                "ts": datetime.now(UTC).isoformat(),
            }
            body = json.dumps(ack).encode()
            sent = AckSent(ven_id, ack["correlationId"], ack["eventId"], shed_kw, actual_w)
            for _ in range(COPIES):
                await self.client.publish(f"ven/ack/{ven_id}", body, qos=1)
                self.sent.append(sent)

    def check(self) -> None:
        """Raise what stopped the VENs, if they stopped."""
        if self.task is not None and self.task.done():
            self.task.result()
            raise AssertionError("the test's VENs stopped answering")

    def actual_w(self, correlation_id: str) -> int:
        (amount,) = {a.actual_w for a in self.sent if a.correlation_id == correlation_id}
        return amount

    async def report_telemetry(self, metering_topic: str) -> None:
        """Like a real VEN: a sample every half second (until cancelled)."""
        while True:
            for ven_id in sorted(self.vens):
                await self.client.publish(metering_topic, telemetry(ven_id), qos=1)
            await asyncio.sleep(0.5)


@contextlib.asynccontextmanager
async def double_acking_vens(fleet: Fleet, vens: set[str]) -> AsyncIterator[DoubleAckingVens]:
    identifier = f"{fleet.prefix}-vens"
    async with aiomqtt.Client(fleet.host, fleet.port, identifier=identifier) as client:
        await client.subscribe([(f"ven/cmd/{v}", 1) for v in sorted(vens)])
        player = DoubleAckingVens(client, vens)
        player.task = asyncio.create_task(player.answer())
        try:
            yield player
        finally:
            player.task.cancel()
            with contextlib.suppress(asyncio.CancelledError, aiomqtt.MqttError):
                await player.task


# --- what the database holds -----------------------------------------------------------


@dataclass(frozen=True)
class Stored:
    commands: list[Command]  # the event's event commands
    acks: Counter[str]  # ACKs of the event stored in ven_acks, per correlationId
    actual_reduction_kw: float

    def newest_per_ven(self) -> dict[str, Command]:
        newest: dict[str, Command] = {}
        for c in sorted(self.commands, key=lambda c: (c.created_at, c.correlation_id)):
            newest[c.ven_id] = c
        return newest


async def stored(backend: Backend, event_id: str, vens: set[str]) -> Stored:
    async with backend.uow() as uow:
        commands = await uow.commands.for_event(event_id)
        acks = await uow.acks.for_event(event_id, 0, 1000)
        event = await uow.events.get(event_id)
    assert event is not None
    return Stored(
        commands=[c for c in commands if c.op is CommandOp.EVENT],
        # Other tests' ACKs reach these workers too (ven/ack/+): only this test's VENs.
        acks=Counter(a.correlation_id or "" for a in acks.items if a.ven_id in vens),
        actual_reduction_kw=event.actual_reduction_kw,
    )


def settled(now: Stored, vens: DoubleAckingVens) -> bool:
    """Every VEN was sent the event, every event command is ACKed, every ACK
    the VENs sent is stored."""
    return (
        {c.ven_id for c in now.commands} == vens.vens
        and all(c.state is CommandState.ACKED for c in now.commands)
        and now.acks == Counter(a.correlation_id for a in vens.sent)
    )


_ACK_LINE = re.compile(r"ACK (matched|late|duplicate) from (\S+) for (\S+) \(event (\S+)\)")


def ack_outcomes(processes: Processes, event_id: str) -> dict[str, list[str]]:
    """From the workers' logs: per correlationId, 'worker: outcome' of every
    copy of its ACK that was recorded."""
    outcomes: dict[str, list[str]] = {}
    for process in processes.started:
        for outcome, _ven, correlation_id, event in _ACK_LINE.findall(process.log()):
            if event == event_id:
                outcomes.setdefault(correlation_id, []).append(f"{process.name}: {outcome}")
    return outcomes


# --- the test --------------------------------------------------------------------------


async def test_every_ack_twice_over_two_workers_counts_each_ven_once(
    fleet: Fleet, backend: Backend, processes: Processes
) -> None:
    started = time.monotonic()
    vens = fleet.ven_ids(VEN_COUNT)
    group = f"{fleet.prefix}-workers"
    workers = [start_worker(processes, f"worker-{n}", MQTT_SHARED_GROUP=group) for n in range(2)]
    async with double_acking_vens(fleet, vens) as player:
        reporting = asyncio.create_task(player.report_telemetry(fleet.metering_topic))
        try:
            await wait_until(
                "both workers to connect to the broker",
                lambda: all("connected to" in w.log() for w in workers),
                processes,
            )

            async def all_online() -> bool:
                player.check()
                return await backend.online() >= vens

            await wait_until("the test's VENs to be online", all_online, processes)
        finally:
            reporting.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await reporting

        event = await backend.create_event(kw=REQUESTED_KW, seconds=EVENT_SECONDS)

        async def all_acked_and_stored() -> bool:
            player.check()
            return settled(await stored(backend, event.id, vens), player)

        await wait_until(
            "every event command ACKed and every ACK stored",
            all_acked_and_stored,
            processes,
            within=SETTLE_TIMEOUT,
        )
        await asyncio.sleep(0.5)  # a re-send crossing the ACK would be answered by now
        player.check()
        final = await stored(backend, event.id, vens)

    outcomes = ack_outcomes(processes, event.id)
    counted_twice = {
        cid: found
        for cid, found in outcomes.items()
        if sum(not o.endswith("duplicate") for o in found) > 1
    }
    newest = final.newest_per_ven()
    expected_w = sum(player.actual_w(c.correlation_id) for c in newest.values())
    workers_used = Counter(o.split(":")[0] for found in outcomes.values() for o in found)
    summary = (
        f"{len(final.commands)} event command(s) to {len(newest)} VENs, "
        f"{len(player.commands)} received, {len(player.sent)} ACKs sent, "
        f"{final.acks.total()} stored; ACK copies recorded per worker: {dict(workers_used)}; "
        f"actualReductionKw {final.actual_reduction_kw:.3f}, "
        f"sum of the distinct ACKs {expected_w / 1000:.3f} "
        f"(requested {REQUESTED_KW}); {time.monotonic() - started:.1f}s"
    )
    print(summary)

    def failure(what: str) -> str:
        return f"{what}\n{summary}\n{processes.logs()}"

    # The test's own bookkeeping first: a failure here is not the double count.
    assert settled(final, player), failure("ACKs or commands changed after settling")
    assert all(c.state is CommandState.ACKED for c in final.commands), failure("command states")
    assert final.acks == Counter(a.correlation_id for a in player.sent), failure("ven_acks")
    for c in newest.values():
        assert c.delivered_kw is not None, failure(f"{c.correlation_id}: no delivered kW")
        assert to_watts(c.delivered_kw) == player.actual_w(c.correlation_id), failure(
            f"{c.correlation_id}: delivered {c.delivered_kw} kW is not what its ACK said"
        )
    # The claim: each VEN's delivered kW counted once, however many copies arrived where.
    assert round(final.actual_reduction_kw, 3) == round(expected_w / 1000, 3), failure(
        f"actualReductionKw {final.actual_reduction_kw:.3f} != "
        f"{expected_w / 1000:.3f}, the sum of the distinct ACKs "
        f"(excess {final.actual_reduction_kw - expected_w / 1000:+.3f} kW); "
        f"ACKs recorded as a first answer more than once: {counted_twice}"
    )
