"""DR events: create, list, progress, stop, cancel, and their ACKs and circuits.

The lifecycle is time-driven: the worker's dispatcher activates an event at
its startTime (within a second when it starts now or in the past), allocates
it over the online VENs it targets (an untargeted event: every online VEN)
and completes it at endTime.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Query, Response
from fastapi.responses import StreamingResponse
from pydantic import TypeAdapter

from entrypoints.api.deps import (
    ActorDep,
    ClockDep,
    CoalescerDep,
    IdsDep,
    MirrorDep,
    NowDep,
    OfflineAfterDep,
    QueriesDep,
    SettingsDep,
    StorageDep,
    UowDep,
)
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
    EventMetricsOut,
    EventOut,
    EventWithMetrics,
)
from entrypoints.api.views import (
    ack_out,
    event_circuits,
    event_detail,
    event_out,
    event_with_metrics,
    metrics_out,
)
from gridcore import services
from gridcore.errors import NotFound
from gridcore.events import DrEvent, EventStatus
from gridcore.participation import event_metrics, reduction_instant
from gridcore.ports import UnitOfWork, UnitOfWorkFactory
from gridcore.telemetry import MAX_PAGE_SIZE
from gridcore.verification import event_progress

router = APIRouter(prefix="/events", tags=["events"])

# An event's ACKs beyond this are not part of its circuit breakdown; an event
# has one ACK per VEN and command, so this is thousands of homes.
MAX_ACKS_PER_EVENT = 10_000
# Events per query while the history streams a whole range.
HISTORY_BATCH = MAX_PAGE_SIZE

HistoryLimit = Annotated[
    int | None,
    Query(ge=1, le=MAX_LIMIT, description=f"One page of at most {MAX_LIMIT}; omitted: every event"),
]
HistoryOffset = Annotated[int | None, Query(ge=0, le=1_000_000, description="Events to skip")]


async def _event(uow: UnitOfWork, event_id: str) -> DrEvent:
    event = await uow.events.get(event_id)
    if event is None:
        raise NotFound("event", event_id)
    return event


@router.post("", status_code=201)
async def create_event(
    body: EventCreate,
    uow: UowDep,
    clock: ClockDep,
    ids: IdsDep,
    mirror: MirrorDep,
    actor: ActorDep,
) -> EventOut:
    """Store a new event (status ``scheduled``). ``status: active`` is accepted
    as the documents' clients send it; the event becomes active at startTime.
    With ``targets``, only the VENs granted one of them are allocated and sent
    it (422 when no registered VEN is granted any); without, the whole fleet."""
    event = await services.create_event(
        uow,
        clock,
        ids,
        start_time=body.start_time,
        end_time=body.end_time,
        requested_reduction_kw=body.requested_reduction_kw,
        targets=body.targets,
        actor=actor,
    )
    return event_out(await mirror(event))


_EVENT_LIST = TypeAdapter(list[EventOut])


@router.get("", response_model=list[EventOut])
async def list_events(
    uow: UowDep,
    shared: CoalescerDep,
    status: EventStatus | None = None,
    limit: Limit = DEFAULT_LIMIT,
    offset: Offset = 0,
) -> Response:
    """Events, newest start first; the total is in ``X-Total-Count``.
    Concurrent requests for the same page share one read begun after they
    arrived (``entrypoints.api.coalesce``), and its JSON, made once."""

    async def read() -> tuple[int, bytes]:
        async with uow() as u:
            page = await u.events.page(status=status, offset=offset, limit=limit)
        body = _EVENT_LIST.dump_json([event_out(e) for e in page.items], by_alias=True)
        return page.total_count, body

    total, body = await shared.read(("events", status, offset, limit), read)
    return Response(body, media_type="application/json", headers={"X-Total-Count": str(total)})


@router.get("/current")
async def current_event(
    uow: UowDep, queries: QueriesDep, now: NowDep, offline_after: OfflineAfterDep
) -> EventWithMetrics | None:
    """The active event (the earliest started, when several overlap) with its
    metrics (as ``/events/{eventId}/metrics``), or null."""
    async with uow() as u:
        active = await u.events.active()
    if not active:
        return None
    metrics = await event_metrics(uow, queries, active[0], now, offline_after)
    return event_with_metrics(active[0], metrics)


def _json_array(events: Sequence[DrEvent]) -> bytes:
    return b",".join(event_out(e).model_dump_json(by_alias=True).encode() for e in events)


async def _streamed(
    uow: UnitOfWorkFactory,
    start: datetime | None,
    end: datetime | None,
    first: Sequence[DrEvent],
    whole: bool,
) -> AsyncIterator[bytes]:
    """``first`` and, for a whole range, every later batch, each read in its
    own short transaction after the one before it (a keyset: events added
    meanwhile neither repeat nor shift an event out)."""
    yield b"[" + _json_array(first)
    batch = first
    while whole and len(batch) == HISTORY_BATCH:
        async with uow() as u:
            batch = await u.events.overlapping(
                start=start, end=end, after=batch[-1], limit=HISTORY_BATCH
            )
        if batch:
            yield b"," + _json_array(batch)
    yield b"]"


@router.get("/history", response_model=list[EventOut])
async def event_history(
    uow: UowDep,
    start: Start = None,
    end: End = None,
    limit: HistoryLimit = None,
    offset: HistoryOffset = None,
) -> StreamingResponse:
    """Events overlapping [start, end), newest start first: every one of them
    (streamed, read in batches of bounded queries), or one page with
    ``limit``/``offset``. The total is in ``X-Total-Count``."""
    checked_range(start, end)
    whole = limit is None and offset is None
    async with uow() as u:
        # The first batch is read before the answer starts, so a database
        # problem still gets its status code rather than a cut-off body.
        total = (await u.events.page(start=start, end=end, limit=0)).total_count
        if whole:
            first = await u.events.overlapping(
                start=start, end=end, after=None, limit=HISTORY_BATCH
            )
        else:
            page = await u.events.page(
                start=start, end=end, offset=offset or 0, limit=limit or MAX_LIMIT
            )
            first = list(page.items)
    return StreamingResponse(
        _streamed(uow, start, end, first, whole),
        media_type="application/json",
        headers={"X-Total-Count": str(total)},
    )


@router.get("/{eventId}", responses=NOT_FOUND)
async def get_event(
    event_id: EventIdPath,
    uow: UowDep,
    queries: QueriesDep,
    storage: StorageDep,
    settings: SettingsDep,
    now: NowDep,
    offline_after: OfflineAfterDep,
) -> EventDetail:
    """The event, its metrics (as ``/events/{eventId}/metrics``) and, per VEN,
    its progress from the ledger: name, allocated kW, command state, attempts,
    ACK status and the VEN's answer, delivered kW, response time; next to
    what the VENs claim, what the meters show (``metered``)."""
    async with uow() as u:
        event = await _event(u, event_id)
        commands = await u.commands.for_event(event_id)
        names = await u.vens.names(sorted({c.ven_id for c in commands}))
    at = reduction_instant(event, now)
    reduction = await queries.reported_reduction(event_id, at, offline_after)
    metered = await event_progress(
        queries, storage.performance, event, commands, programme=settings.programme, now=now
    )
    return event_detail(event, commands, names, reduction, metered)


@router.get("/{eventId}/metrics", responses=NOT_FOUND)
async def get_event_metrics(
    event_id: EventIdPath,
    uow: UowDep,
    queries: QueriesDep,
    now: NowDep,
    offline_after: OfflineAfterDep,
) -> EventMetricsOut:
    """The original backend's event metrics: kW the VENs report shedding for
    it (now, or when it ended), VENs that accepted it, and the mean measured
    time from a command's send to its ACK."""
    async with uow() as u:
        event = await _event(u, event_id)
    return metrics_out(await event_metrics(uow, queries, event, now, offline_after))


@router.post("/{eventId}/stop", responses={**NOT_FOUND, **CONFLICT})
async def stop_event(
    event_id: EventIdPath,
    uow: UowDep,
    clock: ClockDep,
    settings: SettingsDep,
    mirror: MirrorDep,
    actor: ActorDep,
) -> EventOut:
    """Stop an active event now; a restore is queued to every VEN it reached."""
    spread = settings.restore_spread  # staggered as at the event's end (gridcore.rebound)
    stopped = await services.stop_event(uow, clock, event_id, restore_spread=spread, actor=actor)
    return event_out(await mirror(stopped))


@router.delete("/{eventId}", responses={**NOT_FOUND, **CONFLICT})
async def cancel_event(
    event_id: EventIdPath, uow: UowDep, clock: ClockDep, mirror: MirrorDep, actor: ActorDep
) -> EventOut:
    """Cancel a scheduled event (nothing was sent). Any other state: 409."""
    cancelled = await services.cancel_event(uow, clock, event_id, actor=actor)
    return event_out(await mirror(cancelled))


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
