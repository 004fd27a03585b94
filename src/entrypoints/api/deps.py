"""Typed ``Depends`` aliases: routers ask for a port, never for the container.
They are ``async def``: FastAPI runs a plain ``def`` dependency in a worker
thread, which costs more than the lookup itself.

The container lives on ``app.state`` (built by :func:`create_app`); nothing
here creates anything at import time.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta
from typing import Annotated, cast

from fastapi import Depends, FastAPI, Request

from adapters.sql.schema import DatabaseCheck
from entrypoints.api.auth import actor_name
from entrypoints.api.coalesce import Coalescer
from entrypoints.container import Container, Storage
from entrypoints.settings import Settings
from gridcore.audit import Actor
from gridcore.bridging import OpenAdrBridge
from gridcore.events import DrEvent
from gridcore.ports import Clock, IdGenerator, ShadowStore, TelemetryQueries, UnitOfWorkFactory

log = logging.getLogger("gridcore.api")


async def _container(request: Request) -> Container:
    return cast(Container, request.app.state.container)


ContainerDep = Annotated[Container, Depends(_container)]


async def _storage(container: ContainerDep) -> Storage:
    return container.storage()


StorageDep = Annotated[Storage, Depends(_storage)]


def database_check(app: FastAPI) -> DatabaseCheck | None:
    """The app's check of its database (None for in-memory storage), made on
    first use and kept, so that each problem is logged once per app."""
    state = app.state
    if not hasattr(state, "database_check"):
        storage = cast(Container, state.container).storage()
        state.database_check = DatabaseCheck.of(storage.uow_factory)
    return cast(DatabaseCheck | None, state.database_check)


async def _database_check(request: Request) -> DatabaseCheck | None:
    return database_check(request.app)


async def _coalescer(request: Request) -> Coalescer:
    return cast(Coalescer, request.app.state.coalescer)


async def _settings(container: ContainerDep) -> Settings:
    return container.settings()


async def _uow(storage: StorageDep) -> UnitOfWorkFactory:
    return storage.uow_factory


async def _queries(storage: StorageDep) -> TelemetryQueries:
    return storage.telemetry_queries


async def _shadows(storage: StorageDep) -> ShadowStore:
    return storage.shadows


async def _clock(container: ContainerDep) -> Clock:
    return cast(Clock, container.clock())


async def _ids(container: ContainerDep) -> IdGenerator:
    return cast(IdGenerator, container.ids())


async def _offline_after(settings: Annotated[Settings, Depends(_settings)]) -> timedelta:
    return settings.offline_after


async def _now(clock: Annotated[Clock, Depends(_clock)]) -> datetime:
    return clock.now()


async def _raw_since(
    settings: Annotated[Settings, Depends(_settings)], now: Annotated[datetime, Depends(_now)]
) -> datetime:
    """The oldest instant raw telemetry is kept from (GRIDCORE_RAW_RETENTION_DAYS)."""
    return now - settings.telemetry_retention


SettingsDep = Annotated[Settings, Depends(_settings)]
UowDep = Annotated[UnitOfWorkFactory, Depends(_uow)]
QueriesDep = Annotated[TelemetryQueries, Depends(_queries)]
ShadowsDep = Annotated[ShadowStore, Depends(_shadows)]


class Mirror:
    """Serves gridcore's own events as OpenADR events (gridcore.bridging). A
    failure is logged: the gridcore event is stored and dispatched anyway."""

    def __init__(self, bridge: OpenAdrBridge | None) -> None:
        self._bridge = bridge

    async def __call__(self, event: DrEvent) -> DrEvent:
        if self._bridge is not None:
            try:
                await self._bridge.mirror(event)
            except Exception:
                log.exception("event %s: serving it as an OpenADR event failed", event.id)
        return event


async def _mirror(request: Request) -> Mirror:
    return Mirror(getattr(request.app.state, "bridge", None))


ClockDep = Annotated[Clock, Depends(_clock)]
MirrorDep = Annotated[Mirror, Depends(_mirror)]
IdsDep = Annotated[IdGenerator, Depends(_ids)]
OfflineAfterDep = Annotated[timedelta, Depends(_offline_after)]
NowDep = Annotated[datetime, Depends(_now)]
CoalescerDep = Annotated[Coalescer, Depends(_coalescer)]
RawSinceDep = Annotated[datetime, Depends(_raw_since)]
DatabaseCheckDep = Annotated[DatabaseCheck | None, Depends(_database_check)]


async def _actor(request: Request, clock: ClockDep) -> Actor:
    """Who makes this write, and when, for the audit trail (gridcore.audit)."""
    return Actor(actor_name(request), clock.now())


ActorDep = Annotated[Actor, Depends(_actor)]
