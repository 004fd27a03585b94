"""What a VEN reported and was told: telemetry, history, circuits, shadow,
ACKs, and the manual commands (``send-event``, ``ping``, per-load ``shed``)."""

from __future__ import annotations

from fastapi import APIRouter, Query, Response

from entrypoints.api.deps import (
    ActorDep,
    ClockDep,
    IdsDep,
    NowDep,
    OfflineAfterDep,
    QueriesDep,
    RawSinceDep,
    ShadowsDep,
    UowDep,
)
from entrypoints.api.errors import CONFLICT, NOT_FOUND
from entrypoints.api.fields import LOAD_ID_PATTERN
from entrypoints.api.params import (
    DEFAULT_LIMIT,
    End,
    Granularity,
    Limit,
    LoadIdPath,
    Offset,
    SnapshotLimit,
    Start,
    VenIdPath,
    checked_range,
    history_window,
)
from entrypoints.api.schemas import (
    AcksResponse,
    CircuitHistoryResponse,
    CommandAccepted,
    HistoryResponse,
    SendEventBody,
    ShadowResponse,
    ShedBody,
    TelemetryResponse,
    VenEventOut,
)
from entrypoints.api.views import (
    ack_out,
    history_point,
    snapshot_out,
    telemetry_point,
    ven_event_out,
)
from gridcore import services
from gridcore.correlation import Command, VenAck
from gridcore.errors import NotFound
from gridcore.fleet import ping_ven, send_event_command, shed_load_command
from gridcore.participation import circuits_with_readings
from gridcore.ports import UnitOfWorkFactory
from gridcore.telemetry import DEFAULT_GRANULARITY, Page

router = APIRouter(prefix="/vens/{venId}", tags=["ven data"], responses=NOT_FOUND)


async def _known(uow_factory: UnitOfWorkFactory, ven_id: str) -> None:
    async with uow_factory() as uow:
        await services.get_ven(uow, ven_id)


@router.get("/telemetry")
async def telemetry(
    ven_id: VenIdPath,
    uow: UowDep,
    queries: QueriesDep,
    start: Start = None,
    end: End = None,
    limit: Limit = DEFAULT_LIMIT,
) -> TelemetryResponse:
    """Panel-level samples, newest first."""
    checked_range(start, end)
    await _known(uow, ven_id)
    page = await queries.telemetry(ven_id, start=start, end=end, limit=limit)
    return TelemetryResponse(
        total_count=page.total_count, telemetry=[telemetry_point(s) for s in page.items]
    )


@router.get("/circuits/history")
async def circuit_history(
    ven_id: VenIdPath,
    uow: UowDep,
    queries: QueriesDep,
    load_id: str | None = Query(None, pattern=LOAD_ID_PATTERN, description="One circuit only"),
    start: Start = None,
    end: End = None,
    limit: SnapshotLimit = DEFAULT_LIMIT,
) -> CircuitHistoryResponse:
    """Circuit snapshots, newest first, with the circuit's name."""
    checked_range(start, end)
    await _known(uow, ven_id)
    page = await queries.circuit_history(ven_id, load_id=load_id, start=start, end=end, limit=limit)
    return CircuitHistoryResponse(
        ven_id=ven_id,
        load_id=load_id,
        total_count=page.total_count,
        snapshots=[snapshot_out(s) for s in page.items],
    )


@router.get("/history")
async def ven_history(
    ven_id: VenIdPath,
    uow: UowDep,
    queries: QueriesDep,
    now: NowDep,
    raw_since: RawSinceDep,
    start: Start = None,
    end: End = None,
    granularity: Granularity = DEFAULT_GRANULARITY,
) -> HistoryResponse:
    """The VEN's mean used/shed kW per bucket."""
    lo, hi, width = history_window(start, end, granularity, now, raw_since=raw_since)
    await _known(uow, ven_id)
    points = await queries.history(
        start=lo, end=hi, width=width, ven_id=ven_id, raw_since=raw_since
    )
    return HistoryResponse(points=[history_point(p) for p in points])


@router.get("/loads/{loadId}/history")
async def load_history(
    ven_id: VenIdPath,
    load_id: LoadIdPath,
    uow: UowDep,
    queries: QueriesDep,
    now: NowDep,
    raw_since: RawSinceDep,
    start: Start = None,
    end: End = None,
    granularity: Granularity = DEFAULT_GRANULARITY,
) -> HistoryResponse:
    """One load's mean used kW per bucket; shed is its shed capability while
    the VEN reports it switched off. From raw samples only: a start before
    they are kept (GRIDCORE_RAW_RETENTION_DAYS) is refused."""
    lo, hi, width = history_window(start, end, granularity, now, raw_since=raw_since, per_load=True)
    async with uow() as u:
        ven = await services.get_ven(u, ven_id)
    known = {load.id for load in ven.loads} | {ld.id for ld in await queries.latest_loads(ven_id)}
    if load_id not in known:
        raise NotFound("load", f"{ven_id}/{load_id}")
    points = await queries.history(
        start=lo, end=hi, width=width, ven_id=ven_id, load_id=load_id, raw_since=raw_since
    )
    return HistoryResponse(points=[history_point(p) for p in points])


@router.get("/shadow")
async def shadow(ven_id: VenIdPath, uow: UowDep, shadows: ShadowsDep) -> ShadowResponse:
    """The VEN's device shadow (AWS IoT, or the local store fed by its updates)."""
    await _known(uow, ven_id)
    document = await shadows.get(ven_id)
    if document is None:
        raise NotFound("shadow of VEN", ven_id)
    return ShadowResponse.model_validate(dict(document))


async def _acks(
    uow: UnitOfWorkFactory, ven_id: str, start: Start, end: End, limit: int, offset: int
) -> Page[VenAck]:
    checked_range(start, end)
    async with uow() as u:
        await services.get_ven(u, ven_id)
        return await u.acks.for_ven(ven_id, start=start, end=end, offset=offset, limit=limit)


@router.get("/events")
async def ven_events(
    ven_id: VenIdPath,
    uow: UowDep,
    queries: QueriesDep,
    offline_after: OfflineAfterDep,
    response: Response,
    start: Start = None,
    end: End = None,
    limit: Limit = DEFAULT_LIMIT,
    offset: Offset = 0,
) -> list[VenEventOut]:
    """The VEN's ACKs, newest first (an array, as the original backend and its
    clients have it; the total is in ``X-Total-Count``), with the circuits it
    curtailed in both documented shapes; what an ACK leaves out of a circuit
    comes from the VEN's telemetry around the ACK."""
    page = await _acks(uow, ven_id, start, end, limit, offset)
    instants = [a.timestamp for a in page.items if a.circuits_curtailed]
    arounds = await queries.samples_around(ven_id, instants, offline_after)
    response.headers["X-Total-Count"] = str(page.total_count)
    return [ven_event_out(a, circuits_with_readings(a, arounds)) for a in page.items]


@router.get("/acks")
async def ven_acks(
    ven_id: VenIdPath,
    uow: UowDep,
    start: Start = None,
    end: End = None,
    limit: Limit = DEFAULT_LIMIT,
    offset: Offset = 0,
) -> AcksResponse:
    """Every ACK the VEN sent (matched or not), newest first."""
    page = await _acks(uow, ven_id, start, end, limit, offset)
    return AcksResponse(total_count=page.total_count, acks=[ack_out(a) for a in page.items])


def _accepted(command: Command) -> CommandAccepted:
    return CommandAccepted(
        correlation_id=command.correlation_id,
        ven_id=command.ven_id,
        op=command.op.value,
        state=command.state.value,
        topic=f"ven/cmd/{command.ven_id}",
        event_id=command.event_id,
        load_id=command.load_id,
        shed_kw=command.shed_kw,
        duration_sec=command.duration_sec,
    )


@router.post("/send-event", status_code=202, responses=CONFLICT)
async def send_event(
    ven_id: VenIdPath,
    body: SendEventBody,
    uow: UowDep,
    clock: ClockDep,
    ids: IdsDep,
    actor: ActorDep,
) -> CommandAccepted:
    """Queue a DR event command to this VEN for an active event. It is written
    to the ledger (state ``pending``) and the worker publishes it on
    ``ven/cmd/{venId}`` within a fraction of a second; follow it with the
    correlationId in ``GET /api/events/{eventId}``."""
    command = await send_event_command(
        uow,
        clock,
        ids,
        ven_id=ven_id,
        event_id=body.event_id,
        shed_kw=body.shed_kw,
        duration_sec=body.duration_sec,
        actor=actor,
    )
    return _accepted(command)


@router.post("/ping", status_code=202)
async def ping(
    ven_id: VenIdPath, uow: UowDep, clock: ClockDep, ids: IdsDep, actor: ActorDep
) -> CommandAccepted:
    """Queue a ``ping``; the worker publishes it on ``ven/cmd/{venId}``. When
    the VEN answers (``pong``), the round trip from send to ACK shows as its
    ``responseTimeMs`` (``GET /api/vens/{venId}``) and the summary's
    ``responseTime``."""
    return _accepted(await ping_ven(uow, clock, ids, ven_id=ven_id, actor=actor))


@router.post("/loads/{loadId}/commands/shed", status_code=202, responses=CONFLICT)
async def shed_load(
    ven_id: VenIdPath,
    load_id: LoadIdPath,
    uow: UowDep,
    queries: QueriesDep,
    clock: ClockDep,
    ids: IdsDep,
    actor: ActorDep,
    body: ShedBody | None = None,
) -> CommandAccepted:
    """Queue a ``shed_load`` command for one load (never a critical one); sent
    by the worker like any command."""
    body = body or ShedBody()
    command = await shed_load_command(
        uow,
        queries,
        clock,
        ids,
        ven_id=ven_id,
        load_id=load_id,
        shed_kw=body.shed_kw,
        duration_sec=body.duration_sec,
        event_id=body.event_id,
        actor=actor,
    )
    return _accepted(command)
