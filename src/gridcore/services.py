"""Use cases: thin async functions that open a unit of work, apply the domain
rules and save the result. They talk only to ports."""

from __future__ import annotations

import logging
from collections import Counter, defaultdict
from collections.abc import Sequence
from dataclasses import replace
from datetime import datetime, timedelta

from gridcore import audit
from gridcore.audit import Actor, AuditAction
from gridcore.correlation import AckMatch, AckOutcome, CommandLedger, VenAck
from gridcore.dispatch import end_event_commands
from gridcore.errors import InvalidInput, NotFound
from gridcore.events import DrEvent, new_event_id
from gridcore.logfields import log_ids
from gridcore.ports import (
    AppendResult,
    Clock,
    IdGenerator,
    TelemetryStore,
    UnitOfWork,
    UnitOfWorkFactory,
)
from gridcore.quantities import to_kw
from gridcore.targeting import validate_targets
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
    targets: Sequence[str] = (),
    actor: Actor | None = None,
) -> Ven:
    """Register a VEN, with the targets the operator grants it (gridcore.targeting)."""
    ven = Ven(
        id=ven_id,
        name=name,
        location=location,
        registered_at=clock.now(),
        targets=validate_targets(targets),
    )
    async with uow_factory() as uow:
        if await uow.vens.get(ven_id) is not None:
            raise InvalidInput("id", f"VEN {ven_id!r} is already registered")
        await uow.vens.add(ven)
        await audit.record(
            uow,
            actor,
            AuditAction.VEN_REGISTERED,
            ven_id=ven_id,
            name=name,
            targets=list(ven.targets),
        )
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
    targets: Sequence[str] = (),
    require_match: bool = True,
    actor: Actor | None = None,
) -> DrEvent:
    """Store a new scheduled event. The dispatcher activates it at start time
    (immediately when the start is now or past), over the VENs it targets
    (none: the whole fleet).

    A targeted event whose targets no registered VEN is granted is refused
    (``InvalidInput`` on ``targets``: a misspelt group would otherwise shed
    nothing, silently), unless ``require_match`` is false (a source that may
    target VENs yet to be registered or granted, such as an OpenADR BL). The
    targets are resolved again when the event is allocated: one that then
    reaches no online VEN activates with nothing allocated, as an untargeted
    event does with no VEN online."""
    now = clock.now()
    if end_time <= now:
        raise InvalidInput("endTime", "is in the past; an event must end in the future")
    event = DrEvent(
        id=new_event_id(ids.hex8()),
        start_time=start_time,
        end_time=end_time,
        requested_reduction_kw=requested_reduction_kw,
        created_at=now,
        targets=validate_targets(targets),
    )
    async with uow_factory() as uow:
        if event.targets and require_match and not await uow.vens.targeted(event.targets):
            raise InvalidInput(
                "targets",
                f"targets match no VEN: no registered VEN is granted any of {list(event.targets)}",
            )
        await uow.events.add(event)
        await audit.record(
            uow,
            actor,
            AuditAction.EVENT_CREATED,
            event_id=event.id,
            details=audit.schedule_of(event),
        )
        await uow.commit()
    log.info(
        "event %s created: %.3f kW from %s to %s%s",
        event.id,
        requested_reduction_kw,
        start_time.isoformat(),
        end_time.isoformat(),
        f", targets {', '.join(event.targets)}" if event.targets else "",
    )
    return event


async def _locked_event(uow: UnitOfWork, event_id: str) -> DrEvent:
    event = (await uow.events.lock([event_id])).get(event_id)
    if event is None:
        raise NotFound("event", event_id)
    return event


async def cancel_event(
    uow_factory: UnitOfWorkFactory, clock: Clock, event_id: str, *, actor: Actor | None = None
) -> DrEvent:
    """Cancel a scheduled event; nothing was sent, so nothing is restored."""
    async with uow_factory() as uow:
        event = await _locked_event(uow, event_id)
        cancelled = event.cancel(clock.now())
        await uow.events.save_status(cancelled, event.status)
        await audit.record(uow, actor, AuditAction.EVENT_CANCELLED, event_id=event_id)
        await uow.commit()
    log.info("event %s cancelled", event_id)
    return cancelled


async def stop_event(
    uow_factory: UnitOfWorkFactory,
    clock: Clock,
    event_id: str,
    *,
    restore_spread: timedelta = timedelta(0),
    actor: Actor | None = None,
) -> DrEvent:
    """Stop an active event now, and queue a restore to every VEN it was sent
    to (in the same transaction: the outbox), staggered over ``restore_spread``
    (:mod:`gridcore.rebound`). Under the event's lock: a stop racing the
    event's completion, or an ACK, waits for it and sees its result."""
    now = clock.now()
    async with uow_factory() as uow:
        event = await _locked_event(uow, event_id)
        stopped = event.stop(now)
        await uow.events.save_status(stopped, event.status)
        restores = await end_event_commands(uow, stopped, now, restore_spread)
        await audit.record(
            uow, actor, AuditAction.EVENT_STOPPED, event_id=event_id, restores=len(restores)
        )
        await uow.commit()
    log.info("event %s stopped; %d restore(s) queued", event_id, len(restores))
    return stopped


# --- ACKs ----------------------------------------------------------------


async def record_ack(uow_factory: UnitOfWorkFactory, clock: Clock, ack: VenAck) -> AckMatch:
    (match,) = await record_acks(uow_factory, clock, [ack])
    return match


async def record_acks(
    uow_factory: UnitOfWorkFactory, clock: Clock, acks: Sequence[VenAck]
) -> list[AckMatch]:
    """Store a batch of ACKs in one transaction, match each to its command, and
    add what they deliver to their events' actualReductionKw.

    actualReductionKw is the sum over VENs of the kW their newest accepted ACK
    reports (never a sum over time; see :func:`gridcore.correlation.delivered_w`).
    The commands the ACKs answer are matched under their events' locks, and
    the change in delivered kW is computed from the commands this transaction
    changed: the same ACK handled by two workers at once counts once. Every ACK
    is stored, matched or not: it is the audit trail."""
    now = clock.now()
    async with uow_factory() as uow:
        ledger = await _ack_ledger(uow, acks)
        events = {c.event_id for c in ledger.commands() if c.event_id is not None}
        before = {event_id: ledger.delivered_w(event_id) for event_id in events}
        matches: list[AckMatch] = []
        stored: list[VenAck] = []
        for ack in acks:
            match = ledger.match(ack, now)
            matches.append(match)
            new = match.command
            if new is not None and ack.event_id is None and new.event_id:
                # Restore ACKs carry no event id; the ledger knows which event it was.
                ack = replace(ack, event_id=new.event_id)
            if match.flag is not None:
                ack = replace(ack, flag=match.flag)
            stored.append(ack)
        await uow.acks.add_many(stored)
        await uow.commands.update_many(ledger.changed())
        for event_id in sorted(events):
            delta = ledger.delivered_w(event_id) - before[event_id]
            if delta:
                await uow.events.add_actual_reduction(event_id, to_kw(delta))
        await uow.commit()
    _log_acks(stored, matches)
    return matches


def _log_acks(stored: Sequence[VenAck], matches: Sequence[AckMatch]) -> None:
    """An unmatched ACK is a warning each; matched ones are one INFO line per
    batch, event and outcome, each ACK's at DEBUG: a fleet answering an event
    a few at a time would otherwise log a line per VEN (100,000 lines cost the
    worker about 0.75 s). ``ven_acks`` keeps every one."""
    detailed = log.isEnabledFor(logging.DEBUG)  # the arguments of lines nobody keeps cost too
    counts: Counter[tuple[str, str | None, str]] = Counter()
    for ack, match in zip(stored, matches, strict=True):  # stored: with the ledger's event id
        if match.outcome is AckOutcome.UNMATCHED:
            log.warning(
                "ACK from %s (correlationId %s) matches no command; stored",
                ack.ven_id,
                ack.correlation_id,
                extra=log_ids(ack.event_id, ack.correlation_id, ack.ven_id),
            )
        else:
            counts[(match.outcome.value, ack.event_id, ack.status)] += 1
            if not detailed:
                continue
            command = match.command  # a restore ACK may name neither: its command does
            log.debug(
                "ACK %s from %s for %s (%s): %s",
                match.outcome.value,
                ack.ven_id,
                command.correlation_id if command is not None else ack.correlation_id,
                f"event {ack.event_id}" if ack.event_id else "no event",
                ack.status,
                extra=log_ids(
                    ack.event_id,
                    command.correlation_id if command is not None else ack.correlation_id,
                    ack.ven_id,
                ),
            )
    for (outcome, event_id, status), n in sorted(counts.items(), key=str):
        log.info(
            "%d ACK(s) %s (%s): %s",
            n,
            outcome,
            f"event {event_id}" if event_id else "no event",
            status,
            extra=log_ids(event_id),
        )


async def _ack_ledger(uow: UnitOfWork, acks: Sequence[VenAck]) -> CommandLedger:
    """The commands ``acks`` may answer, read once, under their locks: for
    each (event, VEN) an ACK touches, every command of that VEN in that event
    (what the VEN delivers to the event is decided over all of them).

    Which events to lock comes first, from the commands' event ids alone (a
    command never changes event), then every command is read under the
    locks: at fleet size reading the rows twice, before and after locking,
    was a third of the worker's time per ACK. An ACK naming another VEN's
    correlationId loads its own VEN's commands of that event: it matches none
    of them (:meth:`CommandLedger.match`), as before."""
    owners = await uow.commands.events_of([a.correlation_id for a in acks if a.correlation_id])
    vens_by_event: dict[str, set[str]] = defaultdict(set)
    loose_ids: list[str] = []
    for ack in acks:
        if ack.correlation_id is not None and ack.correlation_id in owners:
            event_id = owners[ack.correlation_id]
            if event_id is None:
                loose_ids.append(ack.correlation_id)
            else:
                vens_by_event[event_id].add(ack.ven_id)
        elif ack.correlation_id is None:
            found = await uow.commands.latest_for(ack.ven_id, ack.op, ack.event_id, sent_only=True)
            if found is None:
                continue
            if found.event_id is None:
                loose_ids.append(found.correlation_id)
            else:
                vens_by_event[found.event_id].add(found.ven_id)
    # Events first, then the commands outside any event: always the same order.
    await uow.events.lock(list(vens_by_event))
    loaded = list((await uow.commands.lock(loose_ids)).values())
    for event_id, ven_ids in sorted(vens_by_event.items()):
        loaded += await uow.commands.for_event(event_id, sorted(ven_ids))
    return CommandLedger(loaded)


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
    """Keep a rejected message (topic, raw bytes, reason) for the operator; the
    caller logs it with what it knows of why."""
    async with uow_factory() as uow:
        await uow.dead_letters.add(letter)
        await uow.commit()
