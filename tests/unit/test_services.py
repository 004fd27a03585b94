"""Use cases over the in-memory adapters, with a manual clock."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from adapters.memory.repositories import InMemoryUnitOfWorkFactory
from adapters.memory.telemetry import InMemoryTelemetry, InMemoryTelemetryStore
from adapters.system import ManualClock, SequentialIds
from gridcore import (
    AckOutcome,
    Command,
    CommandOp,
    CommandState,
    DeadLetter,
    EventStatus,
    IllegalTransition,
    InvalidInput,
    NotFound,
    TelemetrySample,
    VenAck,
    new_correlation_id,
    services,
)

T0 = datetime(2025, 10, 20, 15, 0, tzinfo=UTC)


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(T0)


@pytest.fixture
def uow() -> InMemoryUnitOfWorkFactory:
    return InMemoryUnitOfWorkFactory()


async def _event(uow: InMemoryUnitOfWorkFactory, clock: ManualClock, ids: SequentialIds):
    return await services.create_event(
        uow,
        clock,
        ids,
        start_time=T0 + timedelta(minutes=1),
        end_time=T0 + timedelta(hours=1),
        requested_reduction_kw=10.0,
    )


async def _send_event_command(uow, event_id: str, ven_id: str, clock, hexid: str, kw=5.0):
    command = Command(
        correlation_id=new_correlation_id(event_id, hexid),
        ven_id=ven_id,
        op=CommandOp.EVENT,
        created_at=clock.now(),
        event_id=event_id,
        shed_kw=kw,
    ).mark_sent(clock.now(), timedelta(seconds=30))
    async with uow() as tx:
        await tx.commands.add_many([command])
        await tx.commit()
    return command


async def test_create_event_is_scheduled_and_stored(uow, clock) -> None:
    event = await _event(uow, clock, SequentialIds())
    assert event.id == "evt-00000001"
    assert event.status is EventStatus.SCHEDULED
    async with uow() as tx:
        assert await tx.events.get(event.id) == event


async def test_create_event_in_the_past_is_refused(uow, clock) -> None:
    with pytest.raises(InvalidInput) as err:
        await services.create_event(
            uow,
            clock,
            SequentialIds(),
            start_time=T0 - timedelta(hours=2),
            end_time=T0 - timedelta(hours=1),
            requested_reduction_kw=5,
        )
    assert err.value.field == "endTime"


async def test_cancel_scheduled_then_cancel_again_is_illegal(uow, clock) -> None:
    event = await _event(uow, clock, SequentialIds())
    cancelled = await services.cancel_event(uow, clock, event.id)
    assert cancelled.status is EventStatus.CANCELLED
    with pytest.raises(IllegalTransition):
        await services.cancel_event(uow, clock, event.id)
    async with uow() as tx:
        assert await tx.commands.for_event(event.id) == []


async def test_unknown_event_is_not_found(uow, clock) -> None:
    with pytest.raises(NotFound):
        await services.cancel_event(uow, clock, "evt-deadbeef")


async def test_stop_queues_one_restore_per_ven_that_was_sent_the_event(uow, clock) -> None:
    ids = SequentialIds()
    event = await _event(uow, clock, ids)
    async with uow() as tx:
        await tx.events.save_status(event.activate(clock.now()), EventStatus.SCHEDULED)
        await tx.commit()
    await _send_event_command(uow, event.id, "ven-1", clock, "0000aaaa")
    await _send_event_command(uow, event.id, "ven-2", clock, "0000bbbb")
    stopped = await services.stop_event(uow, clock, event.id)
    assert stopped.status is EventStatus.STOPPED
    async with uow() as tx:
        restores = [c for c in await tx.commands.for_event(event.id) if c.op is CommandOp.RESTORE]
    assert sorted(c.ven_id for c in restores) == ["ven-1", "ven-2"]
    assert all(c.state is CommandState.PENDING for c in restores)
    assert all(c.correlation_id.startswith(event.id + "-") for c in restores)


async def test_ack_updates_command_and_actual_reduction_once(uow, clock) -> None:
    ids = SequentialIds()
    event = await _event(uow, clock, ids)
    c1 = await _send_event_command(uow, event.id, "ven-1", clock, "0000aaaa")
    await _send_event_command(uow, event.id, "ven-2", clock, "0000bbbb")
    clock.advance(timedelta(seconds=2))
    ack = VenAck(
        ven_id="ven-1",
        op="event",
        status="accepted",
        timestamp=clock.now(),
        correlation_id=c1.correlation_id,
        event_id=event.id,
        requested_shed_kw=5.0,
        actual_shed_kw=4.8,
    )
    first = await services.record_ack(uow, clock, ack)
    again = await services.record_ack(uow, clock, ack)
    assert first.outcome is AckOutcome.MATCHED
    assert first.command is not None
    assert first.command.response_time == timedelta(seconds=2)
    assert again.outcome is AckOutcome.DUPLICATE
    async with uow() as tx:
        stored = await tx.events.get(event.id)
        acks = await tx.acks.for_event(event.id)
    assert stored is not None
    assert stored.actual_reduction_kw == pytest.approx(4.8)
    assert acks.total_count == 2  # both kept for audit, counted once


async def test_restore_ack_without_event_id_is_matched_and_attributed(uow, clock) -> None:
    ids = SequentialIds()
    event = await _event(uow, clock, ids)
    async with uow() as tx:
        await tx.events.save_status(event.activate(clock.now()), EventStatus.SCHEDULED)
        await tx.commit()
    await _send_event_command(uow, event.id, "ven-1", clock, "0000aaaa")
    await services.stop_event(uow, clock, event.id)
    ack = VenAck(ven_id="ven-1", op="restore", status="success", timestamp=clock.now())
    async with uow() as tx:
        restore = next(
            c for c in await tx.commands.for_event(event.id) if c.op is CommandOp.RESTORE
        )
        await tx.commands.update_many([restore.mark_sent(clock.now(), timedelta(seconds=30))])
        await tx.commit()
    match = await services.record_ack(uow, clock, ack)
    assert match.outcome is AckOutcome.MATCHED
    assert match.command is not None
    assert match.command.state is CommandState.ACKED
    async with uow() as tx:
        assert (await tx.acks.for_event(event.id)).total_count == 1


async def test_unmatched_ack_is_still_stored(uow, clock) -> None:
    ack = VenAck(
        ven_id="ven-9",
        op="event",
        status="accepted",
        timestamp=clock.now(),
        correlation_id="evt-00000000-00000000",
    )
    match = await services.record_ack(uow, clock, ack)
    assert match.outcome is AckOutcome.UNMATCHED
    async with uow() as tx:
        assert (await tx.acks.for_ven("ven-9")).total_count == 1


async def test_uncommitted_work_is_rolled_back(uow, clock) -> None:
    event = await _event(uow, clock, SequentialIds())
    async with uow() as tx:
        await tx.events.save_status(event.activate(clock.now()), EventStatus.SCHEDULED)
        # no commit
    async with uow() as tx:
        stored = await tx.events.get(event.id)
    assert stored is not None
    assert stored.status is EventStatus.SCHEDULED


async def test_dead_letters_are_kept_and_counted(uow, clock) -> None:
    await services.record_dead_letter(
        uow, DeadLetter("volttron/metering", b"{not json", "malformed JSON", clock.now())
    )
    async with uow() as tx:
        assert await tx.dead_letters.count() == 1
        (letter,) = await tx.dead_letters.recent()
    assert letter.payload == b"{not json"


async def test_telemetry_registers_unknown_vens_unless_refused(uow, clock) -> None:
    store = InMemoryTelemetryStore(uow.state, InMemoryTelemetry())
    sample = TelemetrySample(ven_id="ven-1", timestamp=clock.now(), used_power_kw=3.0)
    result = await services.ingest_telemetry(store, [sample, sample])
    assert (result.stored, result.duplicates) == (1, 1)
    async with uow() as tx:
        ven = await tx.vens.get("ven-1")
    assert ven is not None
    assert ven.last_seen_at == clock.now()
    other = TelemetrySample(ven_id="ven-2", timestamp=clock.now())
    refused = await services.ingest_telemetry(store, [other], auto_register=False)
    assert refused.refused == (other,)
    async with uow() as tx:
        assert await tx.vens.get("ven-2") is None


async def test_register_ven_twice_is_refused(uow, clock) -> None:
    await services.register_ven(uow, clock, ven_id="ven-123", name="Main Street Facility")
    with pytest.raises(InvalidInput):
        await services.register_ven(uow, clock, ven_id="ven-123", name="again")
