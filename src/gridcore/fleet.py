"""Use cases an operator drives by hand: changing a VEN's registration and its
loads' configuration, and sending one VEN a command outside the dispatcher.

A manual command for an event goes only to a VEN the event targets (an
untargeted event targets every VEN), as the dispatcher's do.

Manual commands go through the same ledger as dispatched ones: they are
written PENDING (the outbox) in one transaction and the worker's relay
publishes them on ``ven/cmd/{venId}``, so a manual command is retried,
correlated and audited exactly like an automatic one.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, fields, replace
from datetime import datetime
from typing import Any

from gridcore import audit
from gridcore.audit import Actor, AuditAction
from gridcore.correlation import Command, CommandOp, event_command_id, new_correlation_id
from gridcore.errors import DomainError, InvalidInput, NotFound
from gridcore.events import DrEvent, EventStatus
from gridcore.ports import Clock, IdGenerator, TelemetryQueries, UnitOfWork, UnitOfWorkFactory
from gridcore.quantities import require_finite_kw
from gridcore.targeting import is_targeted, validate_targets
from gridcore.ven import Load, Location, Ven
from gridcore.venconfig import LoadSetting, decode_settings, new_push, overlay

log = logging.getLogger("gridcore.fleet")

# A manual command longer than a day is almost certainly a typo.
MAX_COMMAND_SECONDS = 24 * 3600


class EventNotActive(DomainError):
    """A command was asked for an event that is not running."""

    def __init__(self, event_id: str, status: str) -> None:
        super().__init__(f"event {event_id} is {status}; commands need an active event")
        self.event_id = event_id
        self.status = status


_KEEP = object()  # "leave unchanged", distinct from None ("clear")


async def _ven(uow: UnitOfWork, ven_id: str) -> Ven:
    ven = await uow.vens.get(ven_id)
    if ven is None:
        raise NotFound("VEN", ven_id)
    return ven


async def update_ven(
    uow_factory: UnitOfWorkFactory,
    ven_id: str,
    *,
    name: str | None = None,
    location: Location | object | None = _KEEP,
    enabled: bool | None = None,
    targets: Sequence[str] | None = None,
    actor: Actor | None = None,
) -> Ven:
    """Change name, location (None clears it), enabled or targets (replaced
    as given; empty clears them; None leaves them). A disabled VEN keeps
    reporting telemetry but is sent no DR event."""
    checked = None if targets is None else validate_targets(targets)
    async with uow_factory() as uow:
        ven = await _ven(uow, ven_id)
        if checked is not None:
            ven = replace(ven, targets=checked)
        if name is not None:
            ven = replace(ven, name=name)
        if location is not _KEEP:
            ven = replace(ven, location=location if isinstance(location, Location) else None)
        if enabled is not None:
            ven = replace(ven, enabled=enabled)
        await uow.vens.update(ven)
        # None in ``changed`` is a cleared location; record leaves out the others' Nones.
        changed = {"location": _location_detail(ven.location)} if location is not _KEEP else {}
        await audit.record(
            uow,
            actor,
            AuditAction.VEN_CHANGED,
            ven_id=ven_id,
            details=changed,
            name=name,
            enabled=enabled,
            targets=None if checked is None else list(checked),
        )
        await uow.commit()
    return ven


def _location_detail(location: Location | None) -> dict[str, float] | None:
    return None if location is None else {"lat": location.lat, "lon": location.lon}


async def locate_vens(
    uow_factory: UnitOfWorkFactory,
    positions: Mapping[str, Location],
    *,
    actor: Actor | None = None,
) -> int:
    """Set the positions of many VENs at once (a deployment's customer
    records: no VEN reports where it is). All or nothing: unknown VEN ids
    are :class:`InvalidInput` naming the first few, and nothing is written."""
    async with uow_factory() as uow:
        known = await uow.vens.names(list(positions))
        unknown = sorted(set(positions) - known.keys())
        if unknown:
            more = f" and {len(unknown) - 5} more" if len(unknown) > 5 else ""
            listed = ", ".join(unknown[:5]) + more
            raise InvalidInput("venId", f"not registered: {listed}; nothing was changed")
        for ven_id, location in positions.items():
            ven = await _ven(uow, ven_id)
            await uow.vens.update(replace(ven, location=location))
        await audit.record(uow, actor, AuditAction.VENS_LOCATED, vens=len(positions))
        await uow.commit()
    log.info("set the positions of %d VENs", len(positions))
    return len(positions)


async def deregister_ven(
    uow_factory: UnitOfWorkFactory, ven_id: str, *, actor: Actor | None = None
) -> None:
    """Remove a VEN and its load configuration; its telemetry and ACKs stay (audit).
    A VEN that keeps reporting is registered again when auto-registration is on."""
    async with uow_factory() as uow:
        if not await uow.vens.remove(ven_id):
            raise NotFound("VEN", ven_id)
        await audit.record(uow, actor, AuditAction.VEN_DEREGISTERED, ven_id=ven_id)
        await uow.commit()
    log.info("deregistered VEN %s", ven_id)


@dataclass(frozen=True, slots=True)
class LoadChanges:
    """Configuration an operator may set on a load; None leaves a field as is."""

    name: str | None = None
    type: str | None = None
    priority: int | None = None
    critical: bool | None = None
    enabled: bool | None = None
    capacity_kw: float | None = None
    shed_capability_kw: float | None = None
    targets: tuple[str, ...] | None = None  # replaced as given; () clears them


async def _known_load(
    uow: UnitOfWork, queries: TelemetryQueries, ven_id: str, load_id: str
) -> Load:
    """The load as configured, else as last reported; NotFound when neither."""
    ven = await _ven(uow, ven_id)
    configured = next((load for load in ven.loads if load.id == load_id), None)
    if configured is not None:
        return configured
    reported = next((ld for ld in await queries.latest_loads(ven_id) if ld.id == load_id), None)
    if reported is None:
        raise NotFound("load", f"{ven_id}/{load_id}")
    return reported


def _camel(name: str) -> str:
    """A field's name as the API spells it (``capacity_kw``: ``capacityKw``)."""
    first, *rest = name.split("_")
    return first + "".join(word.title() for word in rest)


@dataclass(slots=True)
class ConfigPush:
    """What :func:`configure_load` needs to push a change to the VEN; once it
    has, ``queued`` is the push (committed)."""

    clock: Clock
    ids: IdGenerator
    queued: Command | None = None


async def configure_load(
    uow_factory: UnitOfWorkFactory,
    queries: TelemetryQueries,
    ven_id: str,
    load_id: str,
    changes: LoadChanges,
    push: ConfigPush | None = None,
    *,
    actor: Actor | None = None,
) -> Load:
    """Persist a load's configuration. The first change to a load the VEN only
    reported starts from what it reported; configuration then takes precedence
    over telemetry for name, type, priority, critical and capacity.

    With ``push``, a change to what the VEN must do with the load (enabled,
    priority, critical, shed capability: :mod:`gridcore.venconfig`) queues a
    configuration push to the VEN in the same transaction: every instruction
    so far, this one laid over its newest push's."""
    for field, kw in (
        ("capacityKw", changes.capacity_kw),
        ("shedCapabilityKw", changes.shed_capability_kw),
    ):
        if kw is not None:
            require_finite_kw(field, kw)
    async with uow_factory() as uow:
        if push is not None:
            await _serialize_pushes(uow)
        load = await _known_load(uow, queries, ven_id, load_id)
        updates: dict[str, Any] = {f.name: getattr(changes, f.name) for f in fields(changes)}
        load = replace(load, **{k: v for k, v in updates.items() if v is not None})
        await uow.vens.save_load(ven_id, load)
        asked = {
            _camel(k): list(v) if isinstance(v, tuple) else v
            for k, v in updates.items()
            if v is not None
        }
        await audit.record(
            uow, actor, AuditAction.LOAD_CHANGED, ven_id=ven_id, load_id=load_id, details=asked
        )
        if push is not None:
            previous = await uow.commands.latest_for(ven_id, CommandOp.CONFIG.value, None)
            desired = overlay(
                decode_settings(previous.config if previous else None), load_id, **updates
            )
            if desired is not None:
                await _queue_push(uow, push, ven_id, desired, previous)
        await uow.commit()
    log.info("load %s/%s configured", ven_id, load_id)
    return load


async def _serialize_pushes(uow: UnitOfWork) -> None:
    """One push being built at a time: each lays its change over the newest
    push, so two PATCHes to one VEN read at once would each drop the other's.
    The allocation lock serves (pushes are operator actions, rare and short)."""
    await uow.commands.lock_allocation()


async def _queue_push(
    uow: UnitOfWork,
    push: ConfigPush,
    ven_id: str,
    desired: Sequence[LoadSetting],
    previous: Command | None,
) -> Command:
    """Queue ``desired`` to the VEN; ``previous`` (its newest push), when
    still open, is superseded: the newest push alone is the truth."""
    if previous is not None and previous.state.is_open:
        locked = (await uow.commands.lock([previous.correlation_id]))[previous.correlation_id]
        if locked.state.is_open:
            await uow.commands.update_many([locked.cancel()])
    command = new_push(
        await _new_command_id(uow, push.ids, None), ven_id, desired, push.clock.now()
    )
    await uow.commands.add_many([command])
    push.queued = command
    log.info("queued config push %s to %s", command.correlation_id, ven_id)
    return command


async def push_config(uow_factory: UnitOfWorkFactory, push: ConfigPush, ven_id: str) -> Command:
    """Push the VEN's desired configuration (its newest push's) again, by
    hand: after it failed, or to a VEN that was replaced."""
    async with uow_factory() as uow:
        await _serialize_pushes(uow)
        await _ven(uow, ven_id)
        previous = await uow.commands.latest_for(ven_id, CommandOp.CONFIG.value, None)
        desired = decode_settings(previous.config if previous else None)
        if not desired:
            raise InvalidInput("venId", f"nothing was ever configured for VEN {ven_id!r}")
        command = await _queue_push(uow, push, ven_id, desired, previous)
        await uow.commit()
    return command


def _duration(duration_sec: int | None, event: DrEvent | None, now: datetime) -> int | None:
    if duration_sec is None:
        if event is None:
            return None
        return max(int(event.remaining(now).total_seconds()), 1)
    if isinstance(duration_sec, bool) or not 1 <= duration_sec <= MAX_COMMAND_SECONDS:
        raise InvalidInput("durationSec", f"must be between 1 and {MAX_COMMAND_SECONDS} seconds")
    return duration_sec


def _check_targeted(event: DrEvent, ven: Ven) -> None:
    """A VEN an event does not target is not sent it, by hand either."""
    if not is_targeted(event.targets, ven.granted_targets()):
        raise InvalidInput(
            "venId",
            f"event {event.id} does not target VEN {ven.id!r} "
            f"(its targets: {', '.join(event.targets)}; the VEN is granted none of them)",
        )


async def _running_event(uow: UnitOfWork, event_id: str) -> DrEvent:
    """The active event, locked: its commands are added to under its lock (their
    correlationIds count them), and a stop cannot slip in between."""
    event = (await uow.events.lock([event_id])).get(event_id)
    if event is None:
        raise NotFound("event", event_id)
    if event.status is not EventStatus.ACTIVE:
        raise EventNotActive(event_id, event.status.value)
    return event


async def _new_command_id(uow: UnitOfWork, ids: IdGenerator, event_id: str | None) -> str:
    """An event's next correlationId (the caller holds the event's lock), or a
    random ``cmd-`` one drawn again on the rare collision with a stored one."""
    if event_id is not None:
        return event_command_id(event_id, await uow.commands.count_for_event(event_id))
    for _ in range(8):
        correlation_id = new_correlation_id(None, ids.hex8())
        if await uow.commands.get(correlation_id) is None:
            return correlation_id
    raise RuntimeError("no free cmd- correlationId after 8 draws: is the id generator random?")


async def _record_command(uow: UnitOfWork, actor: Actor | None, command: Command) -> None:
    await audit.record(
        uow,
        actor,
        AuditAction.COMMAND_SENT,
        ven_id=command.ven_id,
        event_id=command.event_id,
        load_id=command.load_id,
        op=command.op.value,
        correlationId=command.correlation_id,
        shedKw=command.shed_kw,
        durationSec=command.duration_sec,
    )


async def send_event_command(
    uow_factory: UnitOfWorkFactory,
    clock: Clock,
    ids: IdGenerator,
    *,
    ven_id: str,
    event_id: str,
    shed_kw: float,
    duration_sec: int | None = None,
    actor: Actor | None = None,
) -> Command:
    """Queue a DR event command (``op: event``) for one VEN of an active event,
    e.g. to top up a VEN by hand. It replaces the VEN's previous command for
    that event, so what the VEN delivers is counted once."""
    require_finite_kw("shedKw", shed_kw, positive=True)
    now = clock.now()
    async with uow_factory() as uow:
        ven = await _ven(uow, ven_id)
        await uow.commands.lock_allocation()
        event = await _running_event(uow, event_id)
        _check_targeted(event, ven)
        previous = await uow.commands.latest_for(ven_id, CommandOp.EVENT.value, event_id)
        command = Command(
            correlation_id=await _new_command_id(uow, ids, event_id),
            ven_id=ven_id,
            op=CommandOp.EVENT,
            created_at=now,
            event_id=event_id,
            shed_kw=float(shed_kw),
            duration_sec=_duration(duration_sec, event, now),
            supersedes=previous.correlation_id if previous is not None else None,
        )
        await uow.commands.add_many([command])
        await _record_command(uow, actor, command)
        await uow.commit()
    log.info("queued event command %s to %s (%.3f kW)", command.correlation_id, ven_id, shed_kw)
    return command


async def ping_ven(
    uow_factory: UnitOfWorkFactory,
    clock: Clock,
    ids: IdGenerator,
    *,
    ven_id: str,
    actor: Actor | None = None,
) -> Command:
    """Queue a ``ping`` (the documents' health check). The VEN answers pong;
    the round trip from the command's first send to that ACK becomes its last
    response time (:func:`gridcore.summary.newest_answered`). Unanswered, it
    is retried and timed out like any command."""
    now = clock.now()
    async with uow_factory() as uow:
        await _ven(uow, ven_id)
        command = Command(
            correlation_id=await _new_command_id(uow, ids, None),
            ven_id=ven_id,
            op=CommandOp.PING,
            created_at=now,
        )
        await uow.commands.add_many([command])
        await _record_command(uow, actor, command)
        await uow.commit()
    log.info("queued ping %s to %s", command.correlation_id, ven_id)
    return command


async def shed_load_command(
    uow_factory: UnitOfWorkFactory,
    queries: TelemetryQueries,
    clock: Clock,
    ids: IdGenerator,
    *,
    ven_id: str,
    load_id: str,
    shed_kw: float | None = None,
    duration_sec: int | None = None,
    event_id: str | None = None,
    actor: Actor | None = None,
) -> Command:
    """Queue a ``shed_load`` command for one load. Without ``shed_kw`` the
    load's shed capability is asked for; a critical load is never shed."""
    if shed_kw is not None:
        require_finite_kw("shedKw", shed_kw, positive=True)
    now = clock.now()
    async with uow_factory() as uow:
        load = await _known_load(uow, queries, ven_id, load_id)
        if load.critical:
            raise InvalidInput("loadId", f"load {load_id!r} is critical; it is never shed")
        event = await _running_event(uow, event_id) if event_id is not None else None
        if event is not None:
            _check_targeted(event, await _ven(uow, ven_id))
        kw = shed_kw if shed_kw is not None else load.shed_capability_kw
        if kw <= 0:
            raise InvalidInput("shedKw", "the load reports no shed capability; give shedKw")
        command = Command(
            correlation_id=await _new_command_id(uow, ids, event_id),
            ven_id=ven_id,
            op=CommandOp.SHED_LOAD,
            created_at=now,
            event_id=event_id,
            shed_kw=float(kw),
            duration_sec=_duration(duration_sec, event, now),
            load_id=load_id,
        )
        await uow.commands.add_many([command])
        await _record_command(uow, actor, command)
        await uow.commit()
    log.info("queued shed_load %s to %s/%s", command.correlation_id, ven_id, load_id)
    return command
