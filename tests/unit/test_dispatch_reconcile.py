"""Reconciliation (issue 14): a VEN that accepted an event and whose telemetry
then shows it is not shedding (it rebooted) is sent the same command again,
and what it delivered stops counting until it answers. In memory, under a
manual clock; the SQL twins are in tests/integration/test_storage_reconcile.py."""

from __future__ import annotations

import logging
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
from gridcore import (
    AckOutcome,
    Command,
    CommandOp,
    CommandState,
    LoadSample,
    TelemetrySample,
    services,
)
from gridcore.correlation import CommandLedger, delivered_per_ven, expected_per_ven
from gridcore.dispatch import Dispatcher, DispatchPolicy
from gridcore.reconcile import not_shedding, quiet
from gridcore.telemetry import TelemetrySample as Sample

AFTER = timedelta(seconds=60)


def make_fleet(policy: DispatchPolicy = POLICY) -> Fleet:
    clock = ManualClock(T0)
    uow = InMemoryUnitOfWorkFactory()
    telemetry = InMemoryTelemetry()
    store = InMemoryTelemetryStore(uow.state, telemetry)
    queries = InMemoryTelemetryQueries(uow.state, telemetry)
    publisher = RecordingPublisher()
    dispatcher = Dispatcher(uow, queries, publisher, clock, replace(policy, reconcile_after=AFTER))
    return Fleet(clock, uow, store, publisher, dispatcher, SequentialIds())


@pytest.fixture
def fleet() -> Fleet:
    return make_fleet()


async def report(fleet: Fleet, ven_id: str, event_id: str | None, shed_kw: float) -> None:
    """A VEN's telemetry: an EV charger that can shed 8 kW; shedding ``shed_kw``
    for ``event_id`` (None: no event, as after a reboot)."""
    load = LoadSample(load_id="ev1", type="ev", current_power_kw=8.0, shed_capability_kw=8.0)
    sample = TelemetrySample(
        ven_id=ven_id,
        timestamp=fleet.clock.now(),
        loads=(load,),
        event_id=event_id,
        shed_power_kw=shed_kw,
    )
    await services.ingest_telemetry(fleet.store, [sample])


async def running_event(fleet: Fleet) -> tuple[str, dict[str, Command]]:
    """A 10 kW event over ven-1 and ven-2, both accepted (5 kW each), both
    reporting their shed for it."""
    for ven in ("ven-1", "ven-2"):
        await report(fleet, ven, None, 0.0)
    event_id = await fleet.event(10)
    await fleet.dispatcher.run_once()
    sent = {c.ven_id: c for c in fleet.publisher.sent}
    for command in sent.values():
        assert (await fleet.ack(command)).outcome is AckOutcome.MATCHED
    return event_id, sent


async def seconds_of(fleet: Fleet, seconds: int, shedding: dict[str, str | None]) -> None:
    """``seconds`` of 5-second telemetry and dispatcher passes; ``shedding``:
    the event each VEN reports shedding 5 kW for (None: no event, no shed)."""
    for _ in range(seconds // 5):
        fleet.clock.advance(timedelta(seconds=5))
        for ven, event_id in shedding.items():
            await report(fleet, ven, event_id, 5.0 if event_id else 0.0)
        await fleet.dispatcher.run_once()


def republished(fleet: Fleet, command: Command) -> list[Command]:
    return [c for c in fleet.publisher.sent if c.correlation_id == command.correlation_id][1:]


async def actual_kw(fleet: Fleet, event_id: str) -> float:
    event = await fleet.get_event(event_id)
    assert event is not None
    return event.actual_reduction_kw


# --- the dispatcher ---------------------------------------------------------------


async def test_a_rebooted_ven_is_sent_the_same_command_and_stops_counting_until_it_answers(
    fleet: Fleet, caplog: pytest.LogCaptureFixture
) -> None:
    event_id, sent = await running_event(fleet)
    await seconds_of(fleet, 60, {"ven-1": event_id, "ven-2": event_id})
    assert await actual_kw(fleet, event_id) == 10.0
    caplog.set_level(logging.INFO, "gridcore.dispatch")
    # ven-1 reboots: no event, no shed. Not judged before a full minute of that.
    await seconds_of(fleet, 55, {"ven-1": None, "ven-2": event_id})
    assert republished(fleet, sent["ven-1"]) == []
    await seconds_of(fleet, 10, {"ven-1": None, "ven-2": event_id})
    (again,) = republished(fleet, sent["ven-1"])
    assert again.correlation_id == sent["ven-1"].correlation_id  # the same command
    assert (again.shed_kw, again.attempts, again.op) == (5.0, 2, CommandOp.EVENT)
    assert republished(fleet, sent["ven-2"]) == []
    assert await actual_kw(fleet, event_id) == 5.0  # the claimed kW dropped
    (line,) = [r.getMessage() for r in caplog.records if "re-asserted" in r.getMessage()]
    assert "ven-1" in line and event_id in line and "no shed for the event" in line
    # It answers (same correlationId): it counts again, once.
    assert (await fleet.ack(again)).outcome is AckOutcome.MATCHED
    assert (await fleet.ack(again)).outcome is AckOutcome.DUPLICATE
    assert await actual_kw(fleet, event_id) == 10.0
    # Shedding again, it is left alone.
    await seconds_of(fleet, 120, {"ven-1": event_id, "ven-2": event_id})
    assert len(republished(fleet, sent["ven-1"])) == 1


async def test_one_shedding_sample_in_the_window_is_enough_to_be_left_alone(
    fleet: Fleet,
) -> None:
    event_id, sent = await running_event(fleet)
    await seconds_of(fleet, 60, {"ven-1": event_id, "ven-2": event_id})
    await seconds_of(fleet, 50, {"ven-1": None, "ven-2": event_id})
    await seconds_of(fleet, 5, {"ven-1": event_id, "ven-2": event_id})
    await seconds_of(fleet, 55, {"ven-1": None, "ven-2": event_id})
    assert republished(fleet, sent["ven-1"]) == []
    assert await actual_kw(fleet, event_id) == 10.0


async def test_a_ven_that_reports_nothing_or_another_events_shed_is_not_judged(
    fleet: Fleet,
) -> None:
    event_id, sent = await running_event(fleet)
    # ven-1 falls silent (offline is another rule); ven-2 reports another
    # event's shed: neither is said to be not shedding by this rule.
    await seconds_of(fleet, 180, {"ven-2": "evt-00000000"})
    assert fleet.publisher.sent == list(sent.values())
    assert await actual_kw(fleet, event_id) == 10.0


async def test_a_ven_answering_late_is_given_the_whole_time_from_its_ack(fleet: Fleet) -> None:
    for ven in ("ven-1", "ven-2"):
        await report(fleet, ven, None, 0.0)
    event_id = await fleet.event(10)
    await fleet.dispatcher.run_once()
    first, second = fleet.publisher.sent
    await fleet.ack(first)
    await seconds_of(fleet, 25, {"ven-1": event_id, "ven-2": None})
    await fleet.ack(second)  # accepted, and reporting no shed yet
    await seconds_of(fleet, 55, {"ven-1": event_id, "ven-2": None})
    assert republished(fleet, second) == []
    await seconds_of(fleet, 10, {"ven-1": event_id, "ven-2": None})
    assert len(republished(fleet, second)) == 1


async def test_reassertions_are_bounded_by_the_sends_a_command_may_have(
    caplog: pytest.LogCaptureFixture,
) -> None:
    fleet = make_fleet(replace(POLICY, max_retries=1))
    event_id, sent = await running_event(fleet)
    await seconds_of(fleet, 65, {"ven-1": None, "ven-2": event_id})
    (again,) = republished(fleet, sent["ven-1"])
    await fleet.ack(again)
    assert await actual_kw(fleet, event_id) == 10.0
    caplog.set_level(logging.WARNING, "gridcore.dispatch")
    # Sent twice (1 + max_retries): not once more; it stays accepted, and one warning says so.
    await seconds_of(fleet, 300, {"ven-1": None, "ven-2": event_id})
    assert len(republished(fleet, sent["ven-1"])) == 1
    assert await actual_kw(fleet, event_id) == 10.0
    warned = [r.getMessage() for r in caplog.records if "not re-asserted again" in r.getMessage()]
    assert len(warned) == 1 and "ven-1" in warned[0] and event_id in warned[0]


async def test_a_reasserted_command_left_unanswered_times_out_and_is_restored(
    fleet: Fleet,
) -> None:
    event_id, sent = await running_event(fleet)
    await seconds_of(fleet, 65, {"ven-1": None, "ven-2": event_id})
    # No answer: retried on the ACK deadline within the same budget, then timed out.
    await seconds_of(fleet, 120, {"ven-1": None, "ven-2": event_id})
    assert [c.attempts for c in republished(fleet, sent["ven-1"])] == [2, 3]
    (ven1,) = [c for c in await fleet.commands(event_id) if c.ven_id == "ven-1"]
    assert ven1.state is CommandState.TIMED_OUT
    assert await actual_kw(fleet, event_id) == 5.0
    await services.stop_event(fleet.uow, fleet.clock, event_id)
    await fleet.dispatcher.run_once()
    restored = {c.ven_id for c in fleet.publisher.sent if c.op is CommandOp.RESTORE}
    assert restored == {"ven-1", "ven-2"}


async def test_reconciliation_can_be_turned_off() -> None:
    fleet = make_fleet()
    fleet.dispatcher.policy = replace(fleet.dispatcher.policy, reconcile_after=None)
    event_id, sent = await running_event(fleet)
    await seconds_of(fleet, 300, {"ven-1": None, "ven-2": None})
    assert fleet.publisher.sent == list(sent.values())
    assert await actual_kw(fleet, event_id) == 10.0


# --- the rules ----------------------------------------------------------------------


def sample(seconds: int, event_id: str | None, shed: float | None) -> Sample:
    return Sample(
        ven_id="ven-1",
        timestamp=T0 + timedelta(seconds=seconds),
        event_id=event_id,
        shed_power_kw=shed,
    )


def test_quiet_means_no_shed_for_this_event() -> None:
    assert quiet(sample(0, None, 0.0), "evt-1") and quiet(sample(0, None, None), "evt-1")
    assert quiet(sample(0, "evt-2", 0.0), "evt-1")
    assert not quiet(sample(0, "evt-1", 0.0), "evt-1")  # says it takes part
    assert not quiet(sample(0, None, 0.5), "evt-1")  # sheds, for whatever reason
    assert not quiet(sample(0, "evt-2", 3.0), "evt-1")


def test_not_shedding_needs_a_quiet_current_state_and_a_quiet_window() -> None:
    since = T0
    window = [sample(5, None, 0.0), sample(10, None, 0.0)]
    assert not_shedding(window[-1], window, "evt-1", since)
    assert not not_shedding(None, [], "evt-1", since)  # never heard from
    assert not not_shedding(sample(0, None, 0.0), [sample(0, None, 0.0)], "evt-1", since)
    shedding = [sample(1, "evt-1", 5.0), *window]
    assert not not_shedding(window[-1], shedding, "evt-1", since)
    older = [sample(-5, "evt-1", 5.0), *window]  # before the window: not looked at
    assert not_shedding(window[-1], older, "evt-1", since)


def test_a_reasserted_top_up_withdraws_everything_the_ven_delivered() -> None:
    """A VEN whose raised target (a re-allocation) is re-asserted delivers
    nothing, not what it accepted before the top-up."""
    first = Command("evt-00000001-00000000", "ven-1", CommandOp.EVENT, T0, "evt-00000001", 3.0)
    top_up = replace(
        first,
        correlation_id="evt-00000001-00000001",
        shed_kw=5.0,
        supersedes=first.correlation_id,
        created_at=T0 + timedelta(seconds=10),
    )
    accepted = [
        replace(c, state=CommandState.ACKED, attempts=1, acked_at=T0, delivered_kw=c.shed_kw)
        for c in (first, top_up)
    ]
    ledger = CommandLedger(accepted)
    assert ledger.delivered_w("evt-00000001") == 5_000
    ledger.reassert(top_up.correlation_id)
    commands = ledger.for_event("evt-00000001")
    assert delivered_per_ven(commands) == {}
    assert expected_per_ven(commands) == {"ven-1": 5_000}  # asked again
    assert ledger.get(top_up.correlation_id).state is CommandState.PENDING
    # Only an accepted command is re-asserted: a second call changes nothing.
    assert ledger.reassert(top_up.correlation_id).state is CommandState.PENDING


# --- the setting ----------------------------------------------------------------------


def test_the_setting_reaches_the_policy_and_is_validated(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir("/")  # no .env
    assert dispatch_policy(Settings()).reconcile_after == timedelta(seconds=60)
    monkeypatch.setenv("GRIDCORE_RECONCILE_AFTER_SECONDS", "90")
    assert dispatch_policy(Settings()).reconcile_after == timedelta(seconds=90)
    monkeypatch.setenv("GRIDCORE_RECONCILE_AFTER_SECONDS", "0")
    assert dispatch_policy(Settings()).reconcile_after is None  # off
    for bad in ("-1", "86401", "soon"):
        monkeypatch.setenv("GRIDCORE_RECONCILE_AFTER_SECONDS", bad)
        with pytest.raises(ValidationError):
            Settings()
