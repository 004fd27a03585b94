"""``create_app``: the FastAPI application over a container.

Every route lives under ``/api``. The design document also names bare paths
(``/stats/network``, ``/vens``, ``/events``) and the event flow document posts
to ``/api/events/`` with a trailing slash; both are served by rewriting the
path before routing (no redirect, which some clients follow by dropping a
POST body). The OpenAPI document lists the ``/api`` paths only.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import APIRouter, Depends, FastAPI
from fastapi.middleware.cors import CORSMiddleware
from starlette.types import ASGIApp, Receive, Scope, Send

from entrypoints.api.auth import TokenChecker, authorize
from entrypoints.api.errors import AUTH_ERRORS, install_error_handlers
from entrypoints.api.gate import RequestGate
from entrypoints.api.routers import events, health, stats, ven_data, vens
from entrypoints.api.strict import WrongMethod, known_query_parameters, wrong_method
from entrypoints.container import Container, container_for
from entrypoints.settings import Settings

API_PREFIX = "/api"
# First path segments the documents also show without /api.
_BARE = ("/stats", "/vens", "/events")
VERSION = "1.0.0"


class PathCompatibility:
    """ASGI middleware: ``/vens/x`` -> ``/api/vens/x`` and ``/api/events/`` ->
    ``/api/events``, before routing."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            path: str = scope["path"]
            new = path.rstrip("/") or "/"
            if any(new == bare or new.startswith(bare + "/") for bare in _BARE):
                new = API_PREFIX + new
            if new != path:
                scope = {**scope, "path": new, "raw_path": new.encode()}
        await self.app(scope, receive, send)


def _cors_origins(settings: Settings) -> list[str]:
    return [o.strip() for o in (settings.gridcore_cors_origins or "").split(",") if o.strip()]


def create_app(settings: Settings, container: Container | None = None) -> FastAPI:
    """The API for ``settings``. A container passed in (the demo shares one with
    its worker) is the caller's to close; one built here is closed at shutdown."""
    owned = container is None
    container = container if container is not None else container_for(settings)

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        yield
        if owned:
            await container.storage().close()

    app = FastAPI(
        title="gridcore",
        version=VERSION,
        description="Control core of a demand-response programme: VENs, telemetry, DR events. "
        "Read endpoints need a bearer token with read scope, writes one with control scope.",
        lifespan=lifespan,
        redirect_slashes=False,
    )
    app.state.container = container
    app.state.tokens = TokenChecker.from_settings(settings)
    install_error_handlers(app)
    app.add_exception_handler(WrongMethod, wrong_method)

    api = APIRouter(
        prefix=API_PREFIX,
        dependencies=[Depends(authorize), Depends(known_query_parameters)],
        responses=AUTH_ERRORS,
    )
    for area in (stats.router, vens.router, ven_data.router, events.router):
        api.include_router(area)
    app.include_router(api)
    app.include_router(health.router)

    # Middleware added first runs innermost: the gate sees /api paths (after
    # PathCompatibility) and CORS answers preflights before the gate asks for a token.
    # The docs pages and /openapi.json need a read token too; /health stays open.
    app.add_middleware(
        RequestGate,
        prefix=API_PREFIX,
        docs=[url for url in (app.openapi_url, app.docs_url, app.redoc_url) if url],
        tokens=app.state.tokens,
        max_body_bytes=settings.gridcore_max_body_bytes,
    )
    origins = _cors_origins(settings)
    if origins:
        app.add_middleware(
            CORSMiddleware,
            allow_origins=origins,
            allow_methods=["GET", "POST", "PATCH", "DELETE"],
            allow_headers=["Authorization", "Content-Type"],
            expose_headers=["X-Total-Count"],
        )
    app.add_middleware(PathCompatibility)
    return app
