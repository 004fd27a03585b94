"""The dispatcher over the in-memory adapters, driven by a manual clock."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import pytest

from adapters.memory.repositories import InMemoryUnitOfWorkFactory, InProcessLease
from adapters.memory.telemetry import (
    InMemoryTelemetry,
    InMemoryTelemetryQueries,
    InMemoryTelemetryStore,
)
from adapters.system import ManualClock, SequentialIds
from gridcore import (
    AckOutcome,
    Command,
    CommandOp,
    CommandState,
    EventStatus,
    LoadSample,
    TelemetrySample,
    VenAck,
    services,
)
from gridcore.dispatch import Dispatcher, DispatchPolicy

T0 = datetime(2025, 10, 20, 15, 0, tzinfo=UTC)
POLICY = DispatchPolicy(
    offline_after=timedelta(seconds=60), ack_timeout=timedelta(seconds=30), max_retries=2
)


@dataclass
class RecordingPublisher:
    """A CommandPublisher that keeps what it was asked to send (or fails)."""

    sent: list[Command] = field(default_factory=list)
    failing: bool = False

    async def publish(self, command: Command) -> None:
        if self.failing:
            raise ConnectionError("broker unreachable")
        self.sent.append(command)

    def to(self, ven_id: str, op: CommandOp = CommandOp.EVENT) -> list[Command]:
        return [c for c in self.sent if c.ven_id == ven_id and c.op is op]


@dataclass
class Fleet:
    clock: ManualClock
    uow: InMemoryUnitOfWorkFactory
    store: InMemoryTelemetryStore
    publisher: RecordingPublisher
    dispatcher: Dispatcher
    ids: SequentialIds

    async def report(self, ven_id: str, shed_kw: float) -> None:
        """Telemetry from a VEN: one EV charger that can shed ``shed_kw``."""
        load = LoadSample(
            load_id="ev1", type="ev", current_power_kw=shed_kw, shed_capability_kw=shed_kw
        )
        sample = TelemetrySample(ven_id=ven_id, timestamp=self.clock.now(), loads=(load,))
        await services.ingest_telemetry(self.store, [sample])

    async def event(self, kw: float, start_in: float = 0, minutes: float = 60) -> str:
        start = self.clock.now() + timedelta(seconds=start_in)
        event = await services.create_event(
            self.uow,
            self.clock,
            self.ids,
            start_time=start,
            end_time=start + timedelta(minutes=minutes),
            requested_reduction_kw=kw,
        )
        return event.id

    async def ack(self, command: Command, status: str = "accepted", kw: float | None = None):
        ack = VenAck(
            ven_id=command.ven_id,
            op=command.op.value,
            status=status,
            timestamp=self.clock.now(),
            correlation_id=command.correlation_id,
            event_id=command.event_id if command.op is CommandOp.EVENT else None,
            actual_shed_kw=command.shed_kw if kw is None else kw,
        )
        return await services.record_ack(self.uow, self.clock, ack)

    async def get_event(self, event_id: str):
        async with self.uow() as tx:
            return await tx.events.get(event_id)

    async def commands(self, event_id: str) -> list[Command]:
        async with self.uow() as tx:
            return await tx.commands.for_event(event_id)


@pytest.fixture
def fleet() -> Fleet:
    clock = ManualClock(T0)
    uow = InMemoryUnitOfWorkFactory()
    telemetry = InMemoryTelemetry()
    store = InMemoryTelemetryStore(uow.state, telemetry)
    queries = InMemoryTelemetryQueries(uow.state, telemetry)
    publisher = RecordingPublisher()
    ids = SequentialIds()
    dispatcher = Dispatcher(uow, queries, publisher, clock, POLICY)
    return Fleet(clock, uow, store, publisher, dispatcher, ids)


async def test_event_on_time_splits_equally_and_sends_once(fleet: Fleet) -> None:
    await fleet.report("ven-1", 8)
    await fleet.report("ven-2", 8)
    event_id = await fleet.event(10, start_in=60)
    report = await fleet.dispatcher.run_once()
    assert report.activated == [] and fleet.publisher.sent == []
    fleet.clock.advance(timedelta(seconds=30))
    await fleet.report("ven-1", 8)
    await fleet.report("ven-2", 8)
    fleet.clock.advance(timedelta(seconds=30))
    report = await fleet.dispatcher.run_once()
    assert report.activated == [event_id]
    assert sorted((c.ven_id, c.shed_kw) for c in fleet.publisher.sent) == [
        ("ven-1", 5.0),
        ("ven-2", 5.0),
    ]
    assert all(c.correlation_id.startswith(event_id + "-") for c in fleet.publisher.sent)
    assert all(c.duration_sec == 3600 for c in fleet.publisher.sent)
    event = await fleet.get_event(event_id)
    assert event is not None and event.status is EventStatus.ACTIVE
    again = await fleet.dispatcher.run_once()
    assert again.idle and len(fleet.publisher.sent) == 2


async def test_acks_set_actual_reduction_and_duplicates_count_once(fleet: Fleet) -> None:
    await fleet.report("ven-1", 8)
    await fleet.report("ven-2", 8)
    event_id = await fleet.event(10)
    await fleet.dispatcher.run_once()
    first, second = fleet.publisher.sent
    assert (await fleet.ack(first, kw=4.8)).outcome is AckOutcome.MATCHED
    assert (await fleet.ack(first, kw=4.8)).outcome is AckOutcome.DUPLICATE
    await fleet.ack(second, kw=5.0)
    event = await fleet.get_event(event_id)
    assert event is not None and event.actual_reduction_kw == pytest.approx(9.8)


async def test_stop_restores_every_ven_that_was_sent_the_event(fleet: Fleet) -> None:
    await fleet.report("ven-1", 8)
    await fleet.report("ven-2", 8)
    event_id = await fleet.event(10)
    await fleet.dispatcher.run_once()
    await services.stop_event(fleet.uow, fleet.clock, event_id)
    await fleet.dispatcher.run_once()
    restores = [c for c in fleet.publisher.sent if c.op is CommandOp.RESTORE]
    assert sorted(c.ven_id for c in restores) == ["ven-1", "ven-2"]
    restore_ack = VenAck("ven-1", "restore", "success", fleet.clock.now())  # no event id
    match = await services.record_ack(fleet.uow, fleet.clock, restore_ack)
    assert match.outcome is AckOutcome.MATCHED
    assert match.command is not None and match.command.event_id == event_id


async def test_end_completes_and_restores(fleet: Fleet) -> None:
    await fleet.report("ven-1", 8)
    event_id = await fleet.event(5, minutes=10)
    await fleet.dispatcher.run_once()
    fleet.clock.advance(timedelta(minutes=10))
    report = await fleet.dispatcher.run_once()
    assert report.finished == [event_id]
    event = await fleet.get_event(event_id)
    assert event is not None and event.status is EventStatus.COMPLETED
    assert [c.op for c in fleet.publisher.to("ven-1", CommandOp.RESTORE)] == [CommandOp.RESTORE]


async def test_cancel_before_start_sends_nothing(fleet: Fleet) -> None:
    await fleet.report("ven-1", 8)
    event_id = await fleet.event(5, start_in=300)
    await services.cancel_event(fleet.uow, fleet.clock, event_id)
    fleet.clock.advance(timedelta(minutes=10))
    await fleet.dispatcher.run_once()
    assert fleet.publisher.sent == []


async def test_no_online_vens_activates_and_sends_nothing(fleet: Fleet) -> None:
    await fleet.report("ven-1", 8)
    fleet.clock.advance(timedelta(minutes=5))  # ven-1 is now offline
    event_id = await fleet.event(5)
    report = await fleet.dispatcher.run_once()
    assert report.activated == [event_id]
    assert fleet.publisher.sent == []


async def test_timeout_retries_with_same_correlation_id_then_gives_up(fleet: Fleet) -> None:
    await fleet.report("ven-1", 8)
    await fleet.event(5)
    await fleet.dispatcher.run_once()
    (first,) = fleet.publisher.sent
    for _ in range(POLICY.max_retries):
        fleet.clock.advance(POLICY.ack_timeout)
        report = await fleet.dispatcher.run_once()
        assert report.retried == 1
    fleet.clock.advance(POLICY.ack_timeout)
    report = await fleet.dispatcher.run_once()
    assert report.timed_out == 1
    sends = fleet.publisher.to("ven-1")
    assert len(sends) == 1 + POLICY.max_retries
    assert {c.correlation_id for c in sends} == {first.correlation_id}
    (stored,) = await fleet.commands(first.event_id or "")
    assert stored.state is CommandState.TIMED_OUT
    late = await fleet.ack(first)
    assert late.outcome is AckOutcome.LATE
    assert late.command is not None and late.command.late


async def test_rejection_is_reallocated_to_vens_with_headroom(fleet: Fleet) -> None:
    for ven in ("ven-1", "ven-2", "ven-3"):
        await fleet.report(ven, 10)
    event_id = await fleet.event(12)
    await fleet.dispatcher.run_once()
    by_ven = {c.ven_id: c for c in fleet.publisher.sent}
    assert {v: c.shed_kw for v, c in by_ven.items()} == {"ven-1": 4, "ven-2": 4, "ven-3": 4}
    await fleet.ack(by_ven["ven-1"], status="rejected", kw=0)
    await fleet.ack(by_ven["ven-2"])
    await fleet.ack(by_ven["ven-3"], kw=3.0)  # delivered less than asked
    assert (await fleet.dispatcher.run_once()).reallocated == 0  # judged every 5 s, not now
    fleet.clock.advance(POLICY.rebalance_every)
    report = await fleet.dispatcher.run_once()
    assert report.reallocated == 2
    topups = {c.ven_id: c for c in fleet.publisher.sent[3:]}
    assert "ven-1" not in topups  # a VEN that refused is not asked again
    assert sum(c.shed_kw or 0 for c in topups.values()) == pytest.approx(12)
    assert all(c.supersedes == by_ven[c.ven_id].correlation_id for c in topups.values())
    for command in topups.values():
        await fleet.ack(command)
    event = await fleet.get_event(event_id)
    assert event is not None and event.actual_reduction_kw == pytest.approx(12)


async def test_ven_offline_during_event_gets_no_reallocation(fleet: Fleet) -> None:
    await fleet.report("ven-1", 10)
    await fleet.report("ven-2", 10)
    await fleet.event(12)
    await fleet.dispatcher.run_once()
    by_ven = {c.ven_id: c for c in fleet.publisher.sent}
    await fleet.ack(by_ven["ven-1"], status="rejected", kw=0)
    fleet.clock.advance(timedelta(seconds=61))  # ven-2 silent since: offline
    await fleet.report("ven-1", 10)
    await fleet.ack(by_ven["ven-2"])
    report = await fleet.dispatcher.run_once()
    assert report.reallocated == 0
    assert len(fleet.publisher.sent) == 2


async def test_failed_publish_returns_to_outbox_and_is_sent_later(fleet: Fleet) -> None:
    await fleet.report("ven-1", 8)
    event_id = await fleet.event(5)
    fleet.publisher.failing = True
    report = await fleet.dispatcher.run_once()
    assert report.failed == 1
    (pending,) = await fleet.commands(event_id)
    assert pending.state is CommandState.PENDING and pending.attempts == 0
    fleet.publisher.failing = False
    await fleet.dispatcher.run_once()
    (sent,) = fleet.publisher.sent
    assert sent.correlation_id == pending.correlation_id and sent.attempts == 1


async def test_crash_between_mark_and_publish_sends_no_duplicate(fleet: Fleet) -> None:
    """Simulate a worker killed after committing 'sent' but before publishing:
    a fresh dispatcher publishes nothing until the ACK deadline, then retries
    with the same correlationId."""
    await fleet.report("ven-1", 8)
    event_id = await fleet.event(5)
    await fleet.dispatcher.activate_due()
    async with fleet.uow() as tx:
        (command,) = await tx.commands.pending()
        await tx.commands.update_many([command.mark_sent(fleet.clock.now(), POLICY.ack_timeout)])
        await tx.commit()
    restarted = Dispatcher(
        fleet.uow,
        fleet.dispatcher._queries,
        fleet.publisher,
        fleet.clock,
        POLICY,
    )
    await restarted.run_once()
    assert fleet.publisher.sent == []
    fleet.clock.advance(POLICY.ack_timeout)
    await restarted.run_once()
    (resent,) = fleet.publisher.sent
    assert resent.correlation_id == command.correlation_id
    assert (await fleet.commands(event_id))[0].attempts == 2


async def test_only_the_lease_holder_dispatches(fleet: Fleet) -> None:
    await fleet.report("ven-1", 8)
    await fleet.event(5)
    lease = InProcessLease()
    queries = fleet.dispatcher._queries
    a = Dispatcher(fleet.uow, queries, fleet.publisher, fleet.clock, POLICY, lease.for_worker())
    b_lease = lease.for_worker()
    b = Dispatcher(fleet.uow, queries, fleet.publisher, fleet.clock, POLICY, b_lease)
    assert (await a.run_once()).activated
    assert (await b.run_once()).idle
    assert len(fleet.publisher.sent) == 1
    await a._lease.release()  # type: ignore[union-attr]
    await fleet.event(3)
    assert (await b.run_once()).activated


async def test_overlapping_events_do_not_ask_a_ven_twice_for_the_same_kw(fleet: Fleet) -> None:
    await fleet.report("ven-1", 10)
    await fleet.event(6)
    await fleet.dispatcher.run_once()
    await fleet.event(6)
    await fleet.dispatcher.run_once()
    shares = [c.shed_kw for c in fleet.publisher.sent]
    assert shares == [6.0, 4.0]


async def test_event_whose_window_passed_is_completed_without_commands(fleet: Fleet) -> None:
    await fleet.report("ven-1", 10)
    event_id = await fleet.event(5, minutes=1)
    fleet.clock.advance(timedelta(minutes=2))
    await fleet.dispatcher.run_once()
    event = await fleet.get_event(event_id)
    assert event is not None and event.status is EventStatus.COMPLETED
    assert fleet.publisher.sent == []


async def test_reallocation_counts_what_a_ven_owes_other_active_events(fleet: Fleet) -> None:
    """ven-1 can shed 10 kW; it owes 5 to the first event. When ven-2 refuses the
    second event, its shortfall must not land on ven-1 beyond ven-1's remaining 5."""
    await fleet.report("ven-1", 10)
    await fleet.report("ven-2", 10)
    first = await fleet.event(10)
    await fleet.dispatcher.run_once()
    for command in list(fleet.publisher.sent):
        await fleet.ack(command)
    second = await fleet.event(10)
    await fleet.dispatcher.run_once()
    by_ven = {c.ven_id: c for c in fleet.publisher.sent if c.event_id == second}
    assert {v: c.shed_kw for v, c in by_ven.items()} == {"ven-1": 5.0, "ven-2": 5.0}
    await fleet.ack(by_ven["ven-1"])
    await fleet.ack(by_ven["ven-2"], status="rejected", kw=0)
    fleet.clock.advance(POLICY.rebalance_every)
    await fleet.report("ven-1", 10)
    await fleet.report("ven-2", 10)
    report = await fleet.dispatcher.run_once()
    assert report.reallocated == 0  # ven-1 owes 5 + 5 already: no headroom left
    owed: dict[str, float] = {}
    for event_id in (first, second):
        for c in await fleet.commands(event_id):
            if c.state is CommandState.ACKED:
                owed[c.ven_id] = owed.get(c.ven_id, 0.0) + (c.delivered_kw or 0.0)
    assert owed == {"ven-1": 10.0, "ven-2": 5.0}


async def test_correlation_ids_are_unique_within_an_event_by_construction(fleet: Fleet) -> None:
    """No random draw: 32 random bits collided about once per hundred 10,000-VEN
    activations. The suffix is the command's sequence number in its event."""
    for n in range(200):
        await fleet.report(f"ven-{n:03}", 1)
    event_id = await fleet.event(150)
    report = await fleet.dispatcher.run_once()
    assert report.activated == [event_id] and report.published == 200
    stopped = await services.stop_event(fleet.uow, fleet.clock, event_id)
    assert stopped.status is EventStatus.STOPPED
    commands = await fleet.commands(event_id)
    ids = [c.correlation_id for c in commands]
    assert len(ids) == len(set(ids)) == 400  # 200 event commands, 200 restores
    assert ids[0] == f"{event_id}-00000000" and f"{event_id}-0000018f" in ids


async def test_an_ack_lost_in_a_crash_costs_one_retry_and_counts_once(fleet: Fleet) -> None:
    """The worker acknowledges an ACK to the broker before its batch commits (see
    docs/decisions.md): a crash in between loses it. The command is re-sent once
    with the same correlationId and the VEN's repeated answer is counted."""
    await fleet.report("ven-1", 8)
    event_id = await fleet.event(5)
    await fleet.dispatcher.run_once()
    (first,) = fleet.publisher.sent  # its ACK is lost: never recorded
    fleet.clock.advance(POLICY.ack_timeout)
    report = await fleet.dispatcher.run_once()
    assert report.retried == 1 and len(fleet.publisher.sent) == 2
    resent = fleet.publisher.sent[1]
    assert resent.correlation_id == first.correlation_id and resent.attempts == 2
    assert (await fleet.ack(resent)).outcome is AckOutcome.MATCHED
    assert (await fleet.ack(resent)).outcome is AckOutcome.DUPLICATE
    fleet.clock.advance(POLICY.ack_timeout * 3)
    assert (await fleet.dispatcher.run_once()).idle  # answered: never sent again
    event = await fleet.get_event(event_id)
    assert event is not None and event.actual_reduction_kw == 5.0


async def test_an_unanswered_event_command_is_not_resent_after_the_stop(fleet: Fleet) -> None:
    """A retry after the restore would start the VEN shedding again."""
    await fleet.report("ven-1", 8)
    event_id = await fleet.event(5)
    await fleet.dispatcher.run_once()
    (sent,) = fleet.publisher.sent
    await services.stop_event(fleet.uow, fleet.clock, event_id)
    await fleet.dispatcher.run_once()
    assert [c.op for c in fleet.publisher.sent] == [CommandOp.EVENT, CommandOp.RESTORE]
    fleet.clock.advance(POLICY.ack_timeout * 4)
    await fleet.dispatcher.run_once()
    assert [c.op for c in fleet.publisher.to("ven-1")] == [CommandOp.EVENT]  # no retry
    assert len(fleet.publisher.to("ven-1", CommandOp.RESTORE)) == 2  # the restore's own retries
    (event_command,) = [c for c in await fleet.commands(event_id) if c.op is CommandOp.EVENT]
    assert event_command.state is CommandState.TIMED_OUT
    assert (await fleet.ack(sent)).outcome is AckOutcome.LATE  # still recorded if it comes
