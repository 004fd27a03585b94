"""Liveness and readiness; no token needed (load balancers and orchestrators)."""

from __future__ import annotations

import asyncio
import logging

from fastapi import APIRouter
from fastapi.responses import JSONResponse

from entrypoints.api.deps import SettingsDep, StorageDep
from entrypoints.api.schemas import Health

router = APIRouter(prefix="/health", tags=["health"])
log = logging.getLogger("entrypoints.api.health")

# A readiness probe must answer before the orchestrator's own timeout.
PROBE_TIMEOUT = 2.0


@router.get("")
async def live() -> Health:
    """The process answers."""
    return Health(status="ok")


async def _database(storage: StorageDep) -> str:
    try:
        await asyncio.wait_for(storage.ping(), PROBE_TIMEOUT)
    except Exception as exc:  # any failure means "not ready"; the reason goes to the log
        log.warning("readiness: database unreachable: %s", exc)
        return "unreachable"
    return "ok"


async def _broker(host: str | None, port: int) -> str:
    """A TCP connect to the broker the worker uses; the API publishes nothing
    itself (commands go through the outbox), but a control centre whose
    broker is down cannot act, so it is not ready."""
    if host is None:
        return "in-process"
    try:
        _, writer = await asyncio.wait_for(asyncio.open_connection(host, port), PROBE_TIMEOUT)
    except (OSError, TimeoutError) as exc:
        log.warning("readiness: broker %s:%d unreachable: %s", host, port, exc)
        return "unreachable"
    writer.close()
    return "ok"


@router.get(
    "/ready", response_model=Health, responses={503: {"model": Health, "description": "Not ready"}}
)
async def ready(storage: StorageDep, settings: SettingsDep) -> Health | JSONResponse:
    """Database and broker reachable."""
    database, broker = await asyncio.gather(
        _database(storage), _broker(settings.mqtt_host, settings.mqtt_port)
    )
    ok = database == "ok" and broker != "unreachable"
    health = Health(status="ok" if ok else "unavailable", database=database, broker=broker)
    if ok:
        return health
    return JSONResponse(status_code=503, content=health.model_dump(by_alias=True))
