"""The audit trail: who did what to the fleet, and when.

Every operator action (an event created, stopped or cancelled, a VEN or a
load changed, a command sent by hand; an OpenADR client's event creating,
rescheduling, stopping or cancelling its gridcore event) is written as an
:class:`AuditEntry` in the same unit of work as the change it records: the change and its entry
are kept together or not at all. The use cases take the acting
:class:`Actor` (the API's token name, ``entrypoints.api.auth``); without one
(the worker's own work, tests of the rules) nothing is recorded.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from gridcore.events import DrEvent
    from gridcore.ports import UnitOfWork

ACTOR_LENGTH = 128  # token names (entrypoints.api.auth.NAME_PATTERN) and "openadr:<client>"


class AuditAction(enum.StrEnum):
    EVENT_CREATED = "event.created"
    EVENT_STOPPED = "event.stopped"
    EVENT_CANCELLED = "event.cancelled"
    EVENT_RESCHEDULED = "event.rescheduled"  # by its OpenADR event's update (gridcore.bridging)
    VEN_REGISTERED = "ven.registered"
    VEN_CHANGED = "ven.changed"
    VEN_DEREGISTERED = "ven.deregistered"
    VENS_LOCATED = "vens.located"
    LOAD_CHANGED = "load.changed"
    COMMAND_SENT = "command.sent"  # queued for the relay, which publishes it


@dataclass(frozen=True, slots=True)
class Actor:
    """Who acts (a token's name, ``anonymous`` with access control off) and
    when the action was asked for."""

    name: str
    at: datetime


@dataclass(frozen=True, slots=True)
class AuditEntry:
    at: datetime
    actor: str
    action: AuditAction
    ven_id: str | None = None
    event_id: str | None = None
    load_id: str | None = None
    # What was asked (the changed fields, a command's op and correlationId):
    # JSON values only.
    details: Mapping[str, Any] = field(default_factory=dict)
    id: int | None = None  # the store's, ascending in the order entries were kept


@dataclass(frozen=True, slots=True)
class AuditQuery:
    """Which entries a listing returns; every given field must match.
    ``since`` is inclusive, ``until`` exclusive."""

    actor: str | None = None
    action: AuditAction | None = None
    ven_id: str | None = None
    event_id: str | None = None
    since: datetime | None = None
    until: datetime | None = None

    def matches(self, entry: AuditEntry) -> bool:
        return (
            (self.actor is None or entry.actor == self.actor)
            and (self.action is None or entry.action == self.action)
            and (self.ven_id is None or entry.ven_id == self.ven_id)
            and (self.event_id is None or entry.event_id == self.event_id)
            and (self.since is None or entry.at >= self.since)
            and (self.until is None or entry.at < self.until)
        )


EVERY_ENTRY = AuditQuery()


async def record(
    uow: UnitOfWork,
    actor: Actor | None,
    action: AuditAction,
    *,
    ven_id: str | None = None,
    event_id: str | None = None,
    load_id: str | None = None,
    details: Mapping[str, Any] | None = None,
    **more: Any,
) -> None:
    """Add the entry to ``uow`` (committed with the change it records); a
    no-op without an actor. Its details are ``details`` as given (a None
    there says "cleared") and those of ``more`` that are not None (None
    there is "not asked for")."""
    if actor is None:
        return
    await uow.audit.add(
        AuditEntry(
            at=actor.at,
            actor=actor.name[:ACTOR_LENGTH],
            action=action,
            ven_id=ven_id,
            event_id=event_id,
            load_id=load_id,
            details={**(details or {}), **{k: v for k, v in more.items() if v is not None}},
        )
    )


def schedule_of(event: DrEvent) -> dict[str, Any]:
    """The details of an event's creation or rescheduling: what was asked."""
    return {
        "startTime": event.start_time.isoformat(),
        "endTime": event.end_time.isoformat(),
        "requestedReductionKw": event.requested_reduction_kw,
        "targets": list(event.targets),
    }
