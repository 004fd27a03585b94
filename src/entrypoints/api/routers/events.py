"""DR events: create, list, progress, stop, cancel, and their ACKs and circuits.

The lifecycle is time-driven: the worker's dispatcher activates an event at
its startTime (within a second when it starts now or in the past), allocates
it over the online VENs and completes it at endTime.
"""

from __future__ import annotations

from fastapi import APIRouter, Response

from entrypoints.api.deps import ClockDep, IdsDep, UowDep
from entrypoints.api.errors import CONFLICT, NOT_FOUND
from entrypoints.api.params import (
    DEFAULT_LIMIT,
    MAX_LIMIT,
    End,
    EventIdPath,
    Limit,
    Offset,
    Start,
    checked_range,
)
from entrypoints.api.schemas import (
    AcksResponse,
    EventCircuitsResponse,
    EventCreate,
    EventDetail,
    EventOut,
)
from entrypoints.api.views import ack_out, event_circuits, event_detail, event_out
from gridcore import services
from gridcore.errors import NotFound
from gridcore.events import DrEvent, EventStatus
from gridcore.ports import UnitOfWork

router = APIRouter(prefix="/events", tags=["events"])

# An event's ACKs beyond this are not part of its circuit breakdown; an event
# has one ACK per VEN and command, so this is thousands of homes.
MAX_ACKS_PER_EVENT = 10_000


async def _event(uow: UnitOfWork, event_id: str) -> DrEvent:
    event = await uow.events.get(event_id)
    if event is None:
        raise NotFound("event", event_id)
    return event


@router.post("", status_code=201)
async def create_event(body: EventCreate, uow: UowDep, clock: ClockDep, ids: IdsDep) -> EventOut:
    """Store a new event (status ``scheduled``). ``status: active`` is accepted
    as the documents' clients send it; the event becomes active at startTime."""
    event = await services.create_event(
        uow,
        clock,
        ids,
        start_time=body.start_time,
        end_time=body.end_time,
        requested_reduction_kw=body.requested_reduction_kw,
    )
    return event_out(event)


@router.get("")
async def list_events(
    uow: UowDep,
    response: Response,
    status: EventStatus | None = None,
    limit: Limit = DEFAULT_LIMIT,
    offset: Offset = 0,
) -> list[EventOut]:
    """Events, newest start first; the total is in ``X-Total-Count``."""
    async with uow() as u:
        page = await u.events.page(status=status, offset=offset, limit=limit)
    response.headers["X-Total-Count"] = str(page.total_count)
    return [event_out(e) for e in page.items]


@router.get("/current")
async def current_event(uow: UowDep) -> EventOut | None:
    """The active event (the earliest started, when several overlap), or null."""
    async with uow() as u:
        active = await u.events.active()
    return event_out(active[0]) if active else None


@router.get("/history")
async def event_history(
    uow: UowDep,
    response: Response,
    start: Start = None,
    end: End = None,
    limit: Limit = MAX_LIMIT,
    offset: Offset = 0,
) -> list[EventOut]:
    """Events overlapping [start, end), newest start first."""
    checked_range(start, end)
    async with uow() as u:
        page = await u.events.page(start=start, end=end, offset=offset, limit=limit)
    response.headers["X-Total-Count"] = str(page.total_count)
    return [event_out(e) for e in page.items]


@router.get("/{eventId}", responses=NOT_FOUND)
async def get_event(event_id: EventIdPath, uow: UowDep) -> EventDetail:
    """The event and, per VEN, its progress from the ledger: allocated kW,
    command state, attempts, ACK status, delivered kW, response time."""
    async with uow() as u:
        event = await _event(u, event_id)
        commands = await u.commands.for_event(event_id)
    return event_detail(event, commands)


@router.post("/{eventId}/stop", responses={**NOT_FOUND, **CONFLICT})
async def stop_event(event_id: EventIdPath, uow: UowDep, clock: ClockDep) -> EventOut:
    """Stop an active event now; a restore is queued to every VEN it reached."""
    return event_out(await services.stop_event(uow, clock, event_id))


@router.delete("/{eventId}", responses={**NOT_FOUND, **CONFLICT})
async def cancel_event(event_id: EventIdPath, uow: UowDep, clock: ClockDep) -> EventOut:
    """Cancel a scheduled event (nothing was sent). Any other state: 409."""
    return event_out(await services.cancel_event(uow, clock, event_id))


@router.get("/{eventId}/acks", responses=NOT_FOUND)
async def event_acks(
    event_id: EventIdPath, uow: UowDep, limit: Limit = DEFAULT_LIMIT, offset: Offset = 0
) -> AcksResponse:
    """Every ACK for the event, oldest first."""
    async with uow() as u:
        await _event(u, event_id)
        page = await u.acks.for_event(event_id, offset=offset, limit=limit)
    return AcksResponse(total_count=page.total_count, acks=[ack_out(a) for a in page.items])


@router.get("/{eventId}/circuits", responses=NOT_FOUND)
async def event_circuits_view(event_id: EventIdPath, uow: UowDep) -> EventCircuitsResponse:
    """Which circuits each VEN curtailed for the event, from its newest accepted ACK."""
    async with uow() as u:
        await _event(u, event_id)
        page = await u.acks.for_event(event_id, limit=MAX_ACKS_PER_EVENT)
    return event_circuits(event_id, page.items)
