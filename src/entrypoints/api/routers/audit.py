"""The audit trail: ``/api/audit``, who did what to the fleet and when
(gridcore.audit)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from entrypoints.api.deps import UowDep
from entrypoints.api.fields import VEN_ID_PATTERN, UtcDateTime
from entrypoints.api.params import DEFAULT_LIMIT, Limit, Offset, checked_range
from entrypoints.api.schemas import AuditEntryOut, AuditResponse
from gridcore import limits
from gridcore.audit import ACTOR_LENGTH, AuditAction, AuditEntry, AuditQuery

router = APIRouter(prefix="/audit", tags=["audit"])

# No control characters: PostgreSQL text refuses NUL, and no id or name has one.
PRINTABLE = r"^[^\x00-\x1f\x7f]+$"


def _out(entry: AuditEntry) -> AuditEntryOut:
    return AuditEntryOut(
        id=entry.id or 0,
        at=entry.at,
        actor=entry.actor,
        action=entry.action.value,
        ven_id=entry.ven_id,
        event_id=entry.event_id,
        load_id=entry.load_id,
        details=dict(entry.details),
    )


@router.get("")
async def audit_trail(
    uow: UowDep,
    limit: Limit = DEFAULT_LIMIT,
    offset: Offset = 0,
    actor: Annotated[
        str | None, Query(max_length=ACTOR_LENGTH, pattern=PRINTABLE, description="A token's name")
    ] = None,
    action: Annotated[AuditAction | None, Query(description="What was done")] = None,
    ven_id: Annotated[str | None, Query(alias="venId", pattern=VEN_ID_PATTERN)] = None,
    event_id: Annotated[
        str | None, Query(alias="eventId", max_length=limits.EVENT_ID_LENGTH, pattern=PRINTABLE)
    ] = None,
    since: Annotated[
        UtcDateTime | None, Query(description="ISO 8601, inclusive; without a zone, UTC")
    ] = None,
    until: Annotated[
        UtcDateTime | None, Query(description="ISO 8601, exclusive; without a zone, UTC")
    ] = None,
) -> AuditResponse:
    """Operator actions, newest first: events created, stopped and cancelled,
    VENs registered, changed, located and deregistered, loads configured,
    commands sent by hand; each with who (the name of the token that made
    the request, ``anonymous`` with access control off), when and what.
    Every filter given must match; the total of the matching entries is
    ``totalCount``."""
    checked_range(since, until)
    query = AuditQuery(
        actor=actor, action=action, ven_id=ven_id, event_id=event_id, since=since, until=until
    )
    async with uow() as u:
        page = await u.audit.page(query, offset=offset, limit=limit)
    return AuditResponse(total_count=page.total_count, entries=[_out(e) for e in page.items])
