"""Liveness and readiness; no token needed (load balancers and orchestrators).

Readiness checks that the database answers with this code's schema: a
database never migrated (or migrated by another version) is not ready, and
says to run ``gridcore migrate``. ``serve`` says the same once at start (the
router's lifespan), and keeps answering, so that a migration job can run
after it.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import APIRouter, FastAPI
from fastapi.responses import JSONResponse

from entrypoints.api.deps import DatabaseCheckDep, SettingsDep, StorageDep, database_check
from entrypoints.api.schemas import Health

log = logging.getLogger("entrypoints.api.health")

# A readiness probe must answer before the orchestrator's own timeout.
PROBE_TIMEOUT = 2.0


@asynccontextmanager
async def _check_at_start(app: FastAPI) -> AsyncIterator[None]:
    """One line at start: the database's schema is this code's, or what to do."""
    check = database_check(app)
    if check is not None:
        problem = await check.problem()
        if problem is None:
            log.info("database %s: schema up to date", check.where)
        else:
            check.report(problem, then="; the API answers 503 until it is fixed")
    yield


router = APIRouter(prefix="/health", tags=["health"], lifespan=_check_at_start)


@router.get("")
async def live() -> Health:
    """The process answers."""
    return Health(status="ok")


async def _database(storage: StorageDep, check: DatabaseCheckDep) -> str:
    """'ok', or what is wrong ('unreachable: Connection refused', 'not
    migrated: run `gridcore migrate`'), each problem logged once."""
    if check is not None:
        problem = await check.problem()
        check.report(problem)
        return "ok" if problem is None else problem.status
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
async def ready(
    storage: StorageDep, check: DatabaseCheckDep, settings: SettingsDep
) -> Health | JSONResponse:
    """Database and broker reachable."""
    database, broker = await asyncio.gather(
        _database(storage, check), _broker(settings.mqtt_host, settings.mqtt_port)
    )
    ok = database == "ok" and broker != "unreachable"
    health = Health(status="ok" if ok else "unavailable", database=database, broker=broker)
    if ok:
        return health
    return JSONResponse(status_code=503, content=health.model_dump(by_alias=True))
