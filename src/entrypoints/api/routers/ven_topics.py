"""004's future topics on the API: a VEN's pushed configuration
(``ven/config/{venId}``: ``GET``/``POST /api/vens/{venId}/config``) and the
alerts VENs raise (``ven/alerts/{venId}``: ``/api/vens/{venId}/alerts`` and
the fleet's ``/api/alerts``)."""

from __future__ import annotations

import logging
from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query, Response
from pydantic import Field

from entrypoints.api.deps import ClockDep, IdsDep, QueriesDep, ShadowsDep, StorageDep, UowDep
from entrypoints.api.errors import NOT_FOUND
from entrypoints.api.fields import ApiModel
from entrypoints.api.params import DEFAULT_LIMIT, Limit, Offset, Start, VenIdPath
from gridcore import services
from gridcore.alerts import AlertFilter, Severity, VenAlert
from gridcore.correlation import Command, CommandOp
from gridcore.errors import NotFound
from gridcore.fleet import ConfigPush, push_config
from gridcore.ports import ShadowStore, VenAlertStore
from gridcore.telemetry import LoadSample
from gridcore.venconfig import LoadSetting, compare, config_state, decode_settings

log = logging.getLogger("entrypoints.api.ven_topics")

router = APIRouter(tags=["vens"])

# --- configuration pushed to a VEN ---------------------------------------------


class LoadSettingOut(ApiModel):
    """What the VEN must do with one load, as ``ven/config/{venId}`` carries it."""

    load_id: str
    enabled: bool | None = Field(description="null: not set by the operator; the VEN decides")
    priority: int | None
    critical: bool | None
    shed_capability_kw: float | None = Field(description="The most the VEN may shed of the load")


class ReportedLoadOut(ApiModel):
    """The load's line in the VEN's newest telemetry (null: not reported)."""

    enabled: bool | None
    priority: int | None
    critical: bool | None
    shed_capability_kw: float | None


class LoadConfigOut(ApiModel):
    load_id: str
    desired: LoadSettingOut
    reported: ReportedLoadOut | None
    in_sync: bool
    mismatched: list[str] = Field(description="Fields the VEN reports otherwise")


class VenConfigOut(ApiModel):
    ven_id: str
    state: Literal[
        "none", "pending", "delivered", "confirmed", "rejected", "failed", "superseded"
    ] = Field(description="How far the newest push got (docs/mqtt-commands.md)")
    correlation_id: str | None
    queued_at: datetime | None
    sent_at: datetime | None = Field(description="Its first publication")
    attempts: int
    confirmed_at: datetime | None = Field(description="When the VEN's ACK arrived")
    ack_status: str | None
    in_sync: bool = Field(description="Every desired load as the VEN's telemetry reports it")
    loads: list[LoadConfigOut] = Field(description="The newest push's loads (what is desired)")


def _setting(s: LoadSetting) -> LoadSettingOut:
    return LoadSettingOut(
        load_id=s.load_id, enabled=s.enabled, priority=s.priority, critical=s.critical,
        shed_capability_kw=s.shed_capability_kw,
    )  # fmt: skip


def _reported(line: LoadSample | None) -> ReportedLoadOut | None:
    if line is None:
        return None
    return ReportedLoadOut(
        enabled=line.enabled, priority=line.priority, critical=line.critical,
        shed_capability_kw=line.shed_capability_kw,
    )  # fmt: skip


async def config_view(uow: UowDep, queries: QueriesDep, ven_id: str) -> VenConfigOut:
    async with uow() as u:
        await services.get_ven(u, ven_id)
        push = await u.commands.latest_for(ven_id, CommandOp.CONFIG.value, None)
    newest = await queries.telemetry(ven_id, limit=1)
    reported = newest.items[0].loads if newest.items else ()
    desired = decode_settings(push.config if push else None)
    statuses = compare(desired, reported)
    return VenConfigOut(
        ven_id=ven_id,
        state=config_state(push).value,
        correlation_id=push.correlation_id if push else None,
        queued_at=push.created_at if push else None,
        sent_at=push.first_sent_at if push else None,
        attempts=push.attempts if push else 0,
        confirmed_at=push.acked_at if push else None,
        ack_status=push.ack_status if push else None,
        in_sync=all(s.in_sync for s in statuses),
        loads=[
            LoadConfigOut(
                load_id=s.desired.load_id,
                desired=_setting(s.desired),
                reported=_reported(s.reported),
                in_sync=s.in_sync,
                mismatched=list(s.mismatched),
            )
            for s in statuses
        ],
    )


async def mirror_desired(shadows: ShadowStore, push: Command, now: datetime) -> None:
    """Put a push in the VEN's device shadow as its ``desired`` state (AWS IoT
    then tells the device the delta). Best effort: the push itself is in the
    outbox already, and a shadow service that is down must not undo it."""
    desired = {
        "config": {
            "correlationId": push.correlation_id,
            "loads": [s.as_wire() for s in decode_settings(push.config)],
        }
    }
    try:
        await shadows.update(push.ven_id, {"state": {"desired": desired}}, now)
    except Exception:
        log.warning("could not set the desired shadow of %s", push.ven_id, exc_info=True)


@router.get("/vens/{venId}/config", responses=NOT_FOUND)
async def get_ven_config(ven_id: VenIdPath, uow: UowDep, queries: QueriesDep) -> VenConfigOut:
    """The configuration the VEN must apply (what operators set through load
    PATCHes: enabled, priority, critical, shed capability), how far its
    newest push on ``ven/config/{venId}`` got (pending, delivered, confirmed
    by the VEN's ACK, rejected, failed after every re-delivery, superseded),
    and, load by load, whether the VEN's newest telemetry reports it so."""
    return await config_view(uow, queries, ven_id)


@router.post("/vens/{venId}/config", status_code=202, responses=NOT_FOUND)
async def push_ven_config(
    ven_id: VenIdPath,
    uow: UowDep,
    queries: QueriesDep,
    clock: ClockDep,
    ids: IdsDep,
    shadows: ShadowsDep,
) -> VenConfigOut:
    """Push the VEN's configuration again (a load PATCH pushes by itself):
    after a push failed, or to a VEN that was replaced. 422 when nothing was
    ever configured for it."""
    push = await push_config(uow, ConfigPush(clock, ids), ven_id)
    await mirror_desired(shadows, push, clock.now())
    return await config_view(uow, queries, ven_id)


# --- alerts ---------------------------------------------------------------------


class AlertOut(ApiModel):
    ven_id: str
    timestamp: datetime
    severity: Severity
    code: str
    message: str | None
    load_id: str | None
    details: dict[str, Any] | None
    received_at: datetime | None


def _alert_out(alert: VenAlert) -> AlertOut:
    return AlertOut(
        ven_id=alert.ven_id, timestamp=alert.timestamp, severity=alert.severity,
        code=alert.code, message=alert.message, load_id=alert.load_id,
        details=dict(alert.details) if alert.details is not None else None,
        received_at=alert.received_at,
    )  # fmt: skip


SeverityParam = Annotated[Severity | None, Query(description="Only alerts of this severity")]
VenFilter = Annotated[str | None, Query(alias="venId", description="Only this VEN's alerts")]


def _alert_store(storage: StorageDep) -> VenAlertStore:
    if storage.alerts is None:  # every storage gridcore builds has one
        raise RuntimeError("this storage keeps no alerts")
    return storage.alerts


async def _alerts(
    storage: StorageDep, where: AlertFilter, offset: int, limit: int, response: Response
) -> list[AlertOut]:
    page = await _alert_store(storage).alerts(where, offset=offset, limit=limit)
    response.headers["X-Total-Count"] = str(page.total_count)
    return [_alert_out(a) for a in page.items]


@router.get("/vens/{venId}/alerts", responses=NOT_FOUND)
async def ven_alerts(
    ven_id: VenIdPath,
    uow: UowDep,
    storage: StorageDep,
    response: Response,
    severity: SeverityParam = None,
    start: Start = None,
    limit: Limit = DEFAULT_LIMIT,
    offset: Offset = 0,
) -> list[AlertOut]:
    """The alerts the VEN raised on ``ven/alerts/{venId}``, newest first
    (the total is in ``X-Total-Count``); ``severity`` and ``start`` narrow
    them. 404 for a VEN that is not registered."""
    async with uow() as u:
        if await u.vens.get(ven_id) is None:
            raise NotFound("VEN", ven_id)
    return await _alerts(storage, AlertFilter(ven_id, severity, start), offset, limit, response)


@router.get("/alerts")
async def fleet_alerts(
    storage: StorageDep,
    response: Response,
    ven_id: VenFilter = None,
    severity: SeverityParam = None,
    start: Start = None,
    limit: Limit = DEFAULT_LIMIT,
    offset: Offset = 0,
) -> list[AlertOut]:
    """Every VEN's alerts, newest first (the total is in ``X-Total-Count``),
    registered VENs or not; ``venId``, ``severity`` and ``start`` narrow them."""
    return await _alerts(storage, AlertFilter(ven_id, severity, start), offset, limit, response)
