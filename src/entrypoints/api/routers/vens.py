"""VEN registry and load configuration: ``/api/vens``, the fleet summary
``/api/vens/summary``, and ``/api/vens/{venId}/loads``."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Annotated
from urllib.parse import urlencode

from fastapi import APIRouter, Depends, Request, Response

from entrypoints.api.deps import (
    ActorDep,
    ClockDep,
    IdsDep,
    NowDep,
    OfflineAfterDep,
    QueriesDep,
    ShadowsDep,
    UowDep,
)
from entrypoints.api.errors import CONFLICT, NOT_FOUND, Conflict
from entrypoints.api.params import FleetLimit, LoadIdPath, Offset, SearchParam, SortParam, VenIdPath
from entrypoints.api.routers.ven_topics import mirror_desired
from entrypoints.api.schemas import LoadOut, LoadPatch, VenCreate, VenOut, VenPatch, VenSummaryOut
from entrypoints.api.views import load_out, ven_out, ven_summary_out
from gridcore import services
from gridcore.errors import NotFound
from gridcore.fleet import ConfigPush, LoadChanges, configure_load, deregister_ven, update_ven
from gridcore.listing import VenListing, VenOrder
from gridcore.ports import TelemetryQueries, UnitOfWorkFactory
from gridcore.summary import MAX_FLEET_PAGE, VenState
from gridcore.telemetry import MAX_PAGE_SIZE
from gridcore.ven import Load, Location, Ven, merged_loads

router = APIRouter(prefix="/vens", tags=["vens"])


async def _ven(uow_factory: UnitOfWorkFactory, ven_id: str) -> Ven:
    async with uow_factory() as uow:
        return await services.get_ven(uow, ven_id)


async def _view(
    queries: TelemetryQueries, vens: list[Ven], now: datetime, offline_after: timedelta
) -> list[VenOut]:
    """One bulk read for a whole page of VENs, never one per VEN."""
    states = await queries.ven_states([v.id for v in vens])
    return [ven_out(v, states.get(v.id, VenState()), now, offline_after) for v in vens]


@dataclass(frozen=True, slots=True)
class FleetWindow:
    """Which VENs a fleet-wide list answers; the total goes in ``X-Total-Count``."""

    offset: int
    limit: int
    response: Response

    def total(self, count: int) -> None:
        self.response.headers["X-Total-Count"] = str(count)


def _fleet_window(
    response: Response, limit: FleetLimit = MAX_FLEET_PAGE, offset: Offset = 0
) -> FleetWindow:
    return FleetWindow(offset, limit, response)


FleetWindowDep = Annotated[FleetWindow, Depends(_fleet_window)]


# VENs read per bulk query while a page fills: small first (a page of VENs
# with many loads fills its bytes early), doubling up to MAX_PAGE_SIZE.
FIRST_SLICE = 100


@router.get("", response_model=list[VenOut])
async def list_vens(
    request: Request,
    uow: UowDep,
    queries: QueriesDep,
    now: NowDep,
    offline_after: OfflineAfterDep,
    window: FleetWindowDep,
) -> Response:
    """Registered VENs in id order, each with its loads: up to ``limit`` (the
    whole fleet up to 10,000 by default) and at most
    GRIDCORE_API_MAX_PAGE_BYTES of JSON (4 MiB by default), whichever comes
    first; a page cut by its size says where the next one starts in
    ``X-Next-Offset`` (and a ``Link: rel="next"``). The total is in
    ``X-Total-Count``. Read in slices, a page of the registry and one bulk read each."""
    budget: int = request.app.state.max_page_bytes
    items: list[bytes] = []
    size, cut, total = 2, False, 0  # "[" and "]"
    start, end, step = window.offset, window.offset + window.limit, FIRST_SLICE
    while start < end and not cut:
        async with uow() as u:
            page = await u.vens.page(offset=start, limit=min(step, end - start))
        total = page.total_count
        for ven in await _view(queries, list(page.items), now, offline_after):
            item = ven.model_dump_json(by_alias=True).encode()
            if items and size + len(item) + 1 > budget:
                cut = True  # one VEN always goes, however large
                break
            items.append(item)
            size += len(item) + 1
        if len(page.items) < min(step, end - start):
            break
        start, step = start + len(page.items), min(2 * step, MAX_PAGE_SIZE)
    headers = {"X-Total-Count": str(total)}
    if cut:
        following = window.offset + len(items)
        headers["X-Next-Offset"] = str(following)
        query = request.query_params.multi_items()
        rest = [(k, v) for k, v in query if k != "offset"] + [("offset", str(following))]
        headers["Link"] = f'<{request.url.path}?{urlencode(rest)}>; rel="next"'
    return Response(b"[" + b",".join(items) + b"]", media_type="application/json", headers=headers)


@router.get("/summary")
async def ven_summary(
    queries: QueriesDep,
    now: NowDep,
    offline_after: OfflineAfterDep,
    window: FleetWindowDep,
    sort: SortParam = "id",
    search: SearchParam = None,
) -> list[VenSummaryOut]:
    """The dashboard's VEN list: one line per VEN, in id order, the whole
    fleet up to 10,000 in one answer (computed by the store in one query);
    the total is in ``X-Total-Count``. ``sort`` (``id``, ``name``,
    ``lastSeen``; ``-`` first for descending) and ``search`` (part of the id
    or name, any case) let a client page through a large fleet (the console
    does); the total then counts the VENs found."""
    listing = VenListing(
        search=search, order=VenOrder(sort.removeprefix("-")), descending=sort.startswith("-")
    )
    page = await queries.ven_summaries(offset=window.offset, limit=window.limit, listing=listing)
    window.total(page.total_count)
    return [ven_summary_out(s, now, offline_after) for s in page.items]


@router.post("", status_code=201, responses=CONFLICT)
async def create_ven(
    body: VenCreate,
    uow: UowDep,
    clock: ClockDep,
    ids: IdsDep,
    queries: QueriesDep,
    offline_after: OfflineAfterDep,
    actor: ActorDep,
) -> VenOut:
    """Register a VEN, with the ``targets`` the operator grants it. Its id is
    the MQTT client id it publishes with."""
    ven_id = body.id or f"ven-{ids.hex8()}"
    async with uow() as u:
        if await u.vens.get(ven_id) is not None:
            raise Conflict(f"VEN {ven_id!r} is already registered")
    location = Location(body.location.lat, body.location.lon) if body.location else None
    ven = await services.register_ven(
        uow,
        clock,
        ven_id=ven_id,
        name=body.name,
        location=location,
        targets=body.targets,
        actor=actor,
    )
    return (await _view(queries, [ven], clock.now(), offline_after))[0]


@router.get("/{venId}", responses=NOT_FOUND)
async def get_ven(
    ven_id: VenIdPath, queries: QueriesDep, now: NowDep, offline_after: OfflineAfterDep
) -> VenOut:
    view = await queries.ven_view(ven_id)  # one connection for the whole page
    if view is None:
        raise NotFound("VEN", ven_id)
    return ven_out(*view, now, offline_after)


@router.patch("/{venId}", responses=NOT_FOUND)
async def patch_ven(
    ven_id: VenIdPath,
    body: VenPatch,
    uow: UowDep,
    queries: QueriesDep,
    now: NowDep,
    offline_after: OfflineAfterDep,
    actor: ActorDep,
) -> VenOut:
    """Change name, location (``null`` clears it), enabled or targets (replaced
    as given, ``[]`` clears them); absent fields stay."""
    sent = body.model_fields_set
    location = Location(body.location.lat, body.location.lon) if body.location else None
    ven = await update_ven(
        uow,
        ven_id,
        name=body.name,
        enabled=body.enabled,
        targets=body.targets,
        actor=actor,
        **({"location": location} if "location" in sent else {}),
    )
    return (await _view(queries, [ven], now, offline_after))[0]


@router.delete("/{venId}", status_code=204, responses=NOT_FOUND)
async def delete_ven(ven_id: VenIdPath, uow: UowDep, actor: ActorDep) -> Response:
    """Deregister; its telemetry and ACKs are kept for audit."""
    await deregister_ven(uow, ven_id, actor=actor)
    return Response(status_code=204)


async def _loads(uow: UnitOfWorkFactory, queries: TelemetryQueries, ven_id: str) -> list[Load]:
    ven = await _ven(uow, ven_id)
    return merged_loads(ven, await queries.latest_loads(ven_id))


@router.get("/{venId}/loads", responses=NOT_FOUND)
async def list_loads(ven_id: VenIdPath, uow: UowDep, queries: QueriesDep) -> list[LoadOut]:
    """Each load's newest sample merged with its configuration."""
    return [load_out(load) for load in await _loads(uow, queries, ven_id)]


@router.get("/{venId}/loads/{loadId}", responses=NOT_FOUND)
async def get_load(
    ven_id: VenIdPath, load_id: LoadIdPath, uow: UowDep, queries: QueriesDep
) -> LoadOut:
    for load in await _loads(uow, queries, ven_id):
        if load.id == load_id:
            return load_out(load)
    raise NotFound("load", f"{ven_id}/{load_id}")


@router.patch("/{venId}/loads/{loadId}", responses=NOT_FOUND)
async def patch_load(
    ven_id: VenIdPath,
    load_id: LoadIdPath,
    body: LoadPatch,
    uow: UowDep,
    queries: QueriesDep,
    actor: ActorDep,
    clock: ClockDep,
    ids: IdsDep,
    shadows: ShadowsDep,
) -> LoadOut:
    """Persist configuration; it takes precedence over what telemetry reports
    for name, type, priority, critical and capacity. ``targets`` (replaced as
    given, ``[]`` clears them): an event targeting one reaches the load's VEN.
    A change to what the VEN must do (enabled, priority, critical,
    shedCapabilityKw) is pushed to it on ``ven/config/{venId}`` and set as
    its shadow's ``desired`` state; ``GET /api/vens/{venId}/config`` follows
    it until the VEN confirms."""
    push = ConfigPush(clock, ids)
    await configure_load(
        uow,
        queries,
        ven_id,
        load_id,
        LoadChanges(
            name=body.name,
            type=body.type,
            priority=body.priority,
            critical=body.critical,
            enabled=body.enabled,
            capacity_kw=body.capacity_kw,
            shed_capability_kw=body.shed_capability_kw,
            targets=None if body.targets is None else tuple(body.targets),
        ),
        push,
        actor=actor,
    )
    if push.queued is not None:
        await mirror_desired(shadows, push.queued, clock.now())
    return await get_load(ven_id, load_id, uow, queries)
