"""Staggered restores (issue 14, rebound mitigation): each VEN's restore waits
an offset in [0, spread) after the event's end or stop, the same for the same
(event, VEN) wherever it is computed; the relay sends it only once due, and
its ACK deadline counts from that send. In memory; the stores' outbox on
memory, SQLite and PostgreSQL is in tests/integration/test_storage_restores.py."""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import replace
from datetime import timedelta

import pytest
from pydantic import ValidationError
from tests.unit.test_dispatch import POLICY, T0, Fleet, RecordingPublisher

from adapters.memory.repositories import InMemoryUnitOfWorkFactory
from adapters.memory.telemetry import (
    InMemoryTelemetry,
    InMemoryTelemetryQueries,
    InMemoryTelemetryStore,
)
from adapters.system import ManualClock, SequentialIds
from entrypoints.container import dispatch_policy
from entrypoints.settings import Settings
from gridcore import CommandOp, CommandState, services
from gridcore.dispatch import Dispatcher
from gridcore.rebound import MAX_RESTORE_SPREAD, restore_not_before, restore_offset

SPREAD = timedelta(minutes=10)
VENS = [f"ven-{n}" for n in range(1, 9)]


# --- the offsets ----------------------------------------------------------------------


def test_an_offset_is_the_same_for_the_same_event_and_ven() -> None:
    first = restore_offset("evt-0000abcd", "ven-1", SPREAD)
    assert restore_offset("evt-0000abcd", "ven-1", SPREAD) == first
    assert restore_offset("evt-0000abcd", "ven-2", SPREAD) != first
    assert restore_offset("evt-0000abce", "ven-1", SPREAD) != first  # each event reshuffles


def test_offsets_fall_within_the_window_roughly_uniformly() -> None:
    offsets = [restore_offset("evt-0000abcd", f"ven-{n:05}", SPREAD) for n in range(10_000)]
    assert all(timedelta(0) <= o < SPREAD for o in offsets)
    tenths = Counter(int(o / SPREAD * 10) for o in offsets)
    assert sorted(tenths) == list(range(10))
    assert all(900 <= count <= 1100 for count in tenths.values()), tenths  # 1,000 +- 10 %
    mean = sum(offsets, timedelta(0)) / len(offsets)
    assert abs(mean - SPREAD / 2) < SPREAD / 50


def test_no_spread_means_at_once_and_the_window_is_bounded() -> None:
    assert restore_offset("evt-0000abcd", "ven-1", timedelta(0)) == timedelta(0)
    assert restore_not_before("evt-0000abcd", "ven-1", T0, timedelta(0)) is None
    assert restore_not_before("evt-0000abcd", "ven-1", T0, SPREAD) == T0 + restore_offset(
        "evt-0000abcd", "ven-1", SPREAD
    )
    with pytest.raises(ValueError, match="over"):
        restore_offset("evt-0000abcd", "ven-1", MAX_RESTORE_SPREAD + timedelta(seconds=1))


def test_the_setting_reaches_the_policy_and_is_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir("/")  # no .env
    assert dispatch_policy(Settings()).restore_spread == timedelta(0)
    monkeypatch.setenv("GRIDCORE_RESTORE_SPREAD_SECONDS", "900")
    assert dispatch_policy(Settings()).restore_spread == timedelta(minutes=15)
    for bad in ("-1", "3601", "later"):
        monkeypatch.setenv("GRIDCORE_RESTORE_SPREAD_SECONDS", bad)
        with pytest.raises(ValidationError):
            Settings()


# --- the dispatcher ------------------------------------------------------------------------


@pytest.fixture
def fleet() -> Fleet:
    clock = ManualClock(T0)
    uow = InMemoryUnitOfWorkFactory()
    telemetry = InMemoryTelemetry()
    store = InMemoryTelemetryStore(uow.state, telemetry)
    queries = InMemoryTelemetryQueries(uow.state, telemetry)
    publisher = RecordingPublisher()
    policy = replace(POLICY, restore_spread=SPREAD)
    dispatcher = Dispatcher(uow, queries, publisher, clock, policy)
    return Fleet(clock, uow, store, publisher, dispatcher, SequentialIds())


async def sent_event(fleet: Fleet, minutes: float = 10) -> str:
    for ven in VENS:
        await fleet.report(ven, 2.0)
    event_id = await fleet.event(len(VENS), minutes=minutes)
    await fleet.dispatcher.run_once()
    for command in list(fleet.publisher.sent):
        await fleet.ack(command)
    return event_id


def restores_sent(fleet: Fleet) -> list[str]:
    return [c.ven_id for c in fleet.publisher.sent if c.op is CommandOp.RESTORE]


async def test_each_ven_holds_its_shed_until_its_own_restore(fleet: Fleet) -> None:
    # A VEN lifts its shed by itself when the command's duration has run: a
    # duration ending at the event's end would bring every home back in the
    # same second whatever the restores do.
    event_id = await sent_event(fleet)
    events = [c for c in fleet.publisher.sent if c.op is CommandOp.EVENT]
    assert sorted(c.ven_id for c in events) == VENS
    end = T0 + timedelta(minutes=10)
    for command in events:
        held = end + restore_offset(event_id, command.ven_id, SPREAD) - T0
        assert command.duration_sec == math.ceil(held.total_seconds())
    assert (
        len({c.duration_sec for c in events}) > 1
    )  # (without a spread: tests/unit/test_dispatch.py)


async def test_restores_go_out_one_by_one_as_their_time_comes(fleet: Fleet) -> None:
    event_id = await sent_event(fleet)
    end = T0 + timedelta(minutes=10)
    fleet.clock.advance(timedelta(minutes=10))
    report = await fleet.dispatcher.run_once()
    assert report.finished == [event_id]
    restores = {c.ven_id: c for c in await fleet.commands(event_id) if c.op is CommandOp.RESTORE}
    due = {v: end + restore_offset(event_id, v, SPREAD) for v in VENS}
    assert {v: c.not_before for v, c in restores.items()} == due
    assert len(set(due.values())) == len(VENS)
    assert restores_sent(fleet) == [v for v in VENS if due[v] <= end]  # (none, most likely)
    for ven in sorted(VENS, key=due.__getitem__):
        # A microsecond early: not yet. On time: that one (unanswered ones
        # sent before it may be retried meanwhile: restores are ACKed too).
        fleet.clock.advance(due[ven] - fleet.clock.now() - timedelta(microseconds=1))
        await fleet.dispatcher.run_once()
        assert ven not in restores_sent(fleet)
        fleet.clock.advance(timedelta(microseconds=1))
        await fleet.dispatcher.run_once()
        assert restores_sent(fleet)[-1] == ven
        # The ACK deadline counts from the actual send, not from the event's end.
        (restore,) = [
            c
            for c in await fleet.commands(event_id)
            if c.op is CommandOp.RESTORE and c.ven_id == ven
        ]
        assert restore.state is CommandState.SENT and restore.attempts == 1
        assert restore.first_sent_at == due[ven]
        assert restore.deadline == due[ven] + POLICY.ack_timeout
    firsts = list(dict.fromkeys(restores_sent(fleet)))
    assert firsts == sorted(VENS, key=due.__getitem__)


async def test_a_stop_staggers_from_the_stop(fleet: Fleet) -> None:
    event_id = await sent_event(fleet, minutes=60)
    fleet.clock.advance(timedelta(minutes=5))
    stopped_at = fleet.clock.now()
    await services.stop_event(fleet.uow, fleet.clock, event_id, restore_spread=SPREAD)
    await fleet.dispatcher.run_once()
    restores = {c.ven_id: c for c in await fleet.commands(event_id) if c.op is CommandOp.RESTORE}
    assert {v: c.not_before for v, c in restores.items()} == {
        v: stopped_at + restore_offset(event_id, v, SPREAD) for v in VENS
    }
    fleet.clock.advance(SPREAD)
    await fleet.dispatcher.run_once()
    assert sorted(restores_sent(fleet)) == VENS


async def test_without_a_spread_every_restore_goes_at_once(fleet: Fleet) -> None:
    fleet.dispatcher.policy = replace(fleet.dispatcher.policy, restore_spread=timedelta(0))
    event_id = await sent_event(fleet)
    fleet.clock.advance(timedelta(minutes=10))
    await fleet.dispatcher.run_once()
    assert sorted(restores_sent(fleet)) == VENS
    assert all(c.not_before is None for c in await fleet.commands(event_id))


async def test_a_late_pass_sends_restores_already_due(fleet: Fleet) -> None:
    """The worker was down past the end and the whole window: nothing waits."""
    await sent_event(fleet)
    fleet.clock.advance(timedelta(minutes=10) + SPREAD)
    await fleet.dispatcher.run_once()
    assert sorted(restores_sent(fleet)) == VENS
