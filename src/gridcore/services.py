"""Use cases: thin async functions that open a unit of work, apply the domain
rules and save the result. They talk only to ports."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import replace
from datetime import datetime

from gridcore.correlation import AckMatch, AckOutcome, Command, CommandOp, VenAck, apply_ack
from gridcore.correlation import new_correlation_id as _correlation_id
from gridcore.errors import InvalidInput, NotFound
from gridcore.events import DrEvent, new_event_id
from gridcore.ports import (
    AppendResult,
    Clock,
    IdGenerator,
    TelemetryStore,
    UnitOfWork,
    UnitOfWorkFactory,
)
from gridcore.quantities import to_kw, to_watts
from gridcore.telemetry import DeadLetter, TelemetrySample
from gridcore.ven import Location, Ven

log = logging.getLogger("gridcore.services")


# --- VENs ----------------------------------------------------------------


async def register_ven(
    uow_factory: UnitOfWorkFactory,
    clock: Clock,
    *,
    ven_id: str,
    name: str,
    location: Location | None = None,
) -> Ven:
    ven = Ven(id=ven_id, name=name, location=location, registered_at=clock.now())
    async with uow_factory() as uow:
        if await uow.vens.get(ven_id) is not None:
            raise InvalidInput("id", f"VEN {ven_id!r} is already registered")
        await uow.vens.add(ven)
        await uow.commit()
    log.info("registered VEN %s", ven_id)
    return ven


async def get_ven(uow: UnitOfWork, ven_id: str) -> Ven:
    ven = await uow.vens.get(ven_id)
    if ven is None:
        raise NotFound("VEN", ven_id)
    return ven


# --- DR events -----------------------------------------------------------


async def create_event(
    uow_factory: UnitOfWorkFactory,
    clock: Clock,
    ids: IdGenerator,
    *,
    start_time: datetime,
    end_time: datetime,
    requested_reduction_kw: float,
) -> DrEvent:
    """Store a new scheduled event. The dispatcher activates it at start time
    (immediately when the start is now or past)."""
    now = clock.now()
    if end_time <= now:
        raise InvalidInput("endTime", "is in the past; an event must end in the future")
    event = DrEvent(
        id=new_event_id(ids.hex8()),
        start_time=start_time,
        end_time=end_time,
        requested_reduction_kw=requested_reduction_kw,
        created_at=now,
    )
    async with uow_factory() as uow:
        await uow.events.add(event)
        await uow.commit()
    log.info(
        "event %s created: %.3f kW from %s to %s",
        event.id,
        requested_reduction_kw,
        start_time.isoformat(),
        end_time.isoformat(),
    )
    return event


async def _load_event(uow: UnitOfWork, event_id: str) -> DrEvent:
    event = await uow.events.get(event_id)
    if event is None:
        raise NotFound("event", event_id)
    return event


async def cancel_event(uow_factory: UnitOfWorkFactory, clock: Clock, event_id: str) -> DrEvent:
    """Cancel a scheduled event; nothing was sent, so nothing is restored."""
    async with uow_factory() as uow:
        event = (await _load_event(uow, event_id)).cancel(clock.now())
        await uow.events.update(event)
        await uow.commit()
    log.info("event %s cancelled", event_id)
    return event


async def stop_event(
    uow_factory: UnitOfWorkFactory, clock: Clock, ids: IdGenerator, event_id: str
) -> DrEvent:
    """Stop an active event now, and queue a restore to every VEN it was sent
    to (in the same transaction: the outbox)."""
    now = clock.now()
    async with uow_factory() as uow:
        event = (await _load_event(uow, event_id)).stop(now)
        await uow.events.update(event)
        await uow.commands.add_many(await restore_commands(uow, event, ids, now))
        await uow.commit()
    log.info("event %s stopped", event_id)
    return event


async def restore_commands(
    uow: UnitOfWork, event: DrEvent, ids: IdGenerator, now: datetime
) -> list[Command]:
    """One restore per VEN that was sent this event and has none queued yet."""
    commands = await uow.commands.for_event(event.id)
    sent_to = {c.ven_id for c in commands if c.op is CommandOp.EVENT and c.attempts > 0}
    restored = {c.ven_id for c in commands if c.op is CommandOp.RESTORE}
    return [
        Command(
            correlation_id=_correlation_id(event.id, ids.hex8()),
            ven_id=ven_id,
            op=CommandOp.RESTORE,
            created_at=now,
            event_id=event.id,
        )
        for ven_id in sorted(sent_to - restored)
    ]


# --- ACKs ----------------------------------------------------------------


async def record_ack(uow_factory: UnitOfWorkFactory, clock: Clock, ack: VenAck) -> AckMatch:
    """Store an ACK, match it to its command, and update the event's
    actualReductionKw (the sum of kW delivered per ACK, never a sum over time).

    Every ACK is stored, matched or not: it is the audit trail."""
    now = clock.now()
    async with uow_factory() as uow:
        command: Command | None
        if ack.correlation_id is not None:
            command = await uow.commands.get(ack.correlation_id)
            if command is not None and command.ven_id != ack.ven_id:
                command = None
        else:
            command = await uow.commands.latest_for(ack.ven_id, ack.op, ack.event_id)
        match = apply_ack(command, ack, now)
        if match.command is not None and ack.event_id is None and match.command.event_id:
            # Restore ACKs carry no event id; the ledger knows which event it was.
            ack = replace(ack, event_id=match.command.event_id)
        await uow.acks.add(ack)
        if match.changed and match.command is not None:
            await uow.commands.update_many([match.command])
            if match.command.op is CommandOp.EVENT and match.command.event_id is not None:
                await _refresh_actual_reduction(uow, match.command.event_id)
        await uow.commit()
    if match.outcome is AckOutcome.UNMATCHED:
        log.warning(
            "ACK from %s (correlationId %s) matches no command", ack.ven_id, ack.correlation_id
        )
    else:
        log.info(
            "ACK %s from %s for %s: %s",
            match.outcome.value,
            ack.ven_id,
            ack.correlation_id,
            ack.status,
        )
    return match


async def _refresh_actual_reduction(uow: UnitOfWork, event_id: str) -> None:
    event = await uow.events.get(event_id)
    if event is None:
        return
    commands = await uow.commands.for_event(event_id)
    delivered_w = sum(to_watts(c.delivered_kw or 0.0) for c in commands if c.op is CommandOp.EVENT)
    await uow.events.update(event.with_actual_reduction(to_kw(delivered_w)))


# --- telemetry and rejects -------------------------------------------------


async def ingest_telemetry(
    store: TelemetryStore, samples: Sequence[TelemetrySample], *, auto_register: bool = True
) -> AppendResult:
    result = await store.append(samples, auto_register=auto_register)
    if result.refused:
        log.warning(
            "refused telemetry from %d unregistered VEN(s)", len({s.ven_id for s in result.refused})
        )
    return result


async def record_dead_letter(uow_factory: UnitOfWorkFactory, letter: DeadLetter) -> None:
    async with uow_factory() as uow:
        await uow.dead_letters.add(letter)
        await uow.commit()
    log.warning("dead letter on %s: %s", letter.topic, letter.reason)
