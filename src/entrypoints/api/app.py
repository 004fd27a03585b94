"""``create_app``: the FastAPI application over a container.

Every route lives under ``/api``. The design document also names bare paths
(``/stats/network``, ``/vens``, ``/events``) and the event flow document posts
to ``/api/events/`` with a trailing slash; both are served by rewriting the
path before routing (no redirect, which some clients follow by dropping a
POST body). The OpenAPI document lists the ``/api`` paths and ``/health``.

``/docs`` is Swagger UI with its scripts and styles served by the app itself
(from the swagger-ui-py package), so it works on a machine without internet.
"""

from __future__ import annotations

import importlib.util
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from datetime import datetime
from pathlib import Path

from fastapi import APIRouter, Depends, FastAPI, Request
from fastapi.middleware.cors import CORSMiddleware
from fastapi.openapi.docs import get_swagger_ui_html, get_swagger_ui_oauth2_redirect_html
from fastapi.responses import HTMLResponse
from starlette.staticfiles import StaticFiles
from starlette.types import ASGIApp, Receive, Scope, Send

from entrypoints.api.auth import TokenChecker, authorize
from entrypoints.api.coalesce import Coalescer
from entrypoints.api.errors import AUTH_ERRORS, install_error_handlers
from entrypoints.api.gate import RequestGate
from entrypoints.api.metrics import METRICS_URL, RequestMetrics, install_metrics
from entrypoints.api.routers import (
    audit,
    events,
    health,
    performance,
    stats,
    ven_data,
    ven_topics,
    vens,
)
from entrypoints.api.sessions import SessionKeeper
from entrypoints.api.strict import WrongMethod, known_query_parameters, wrong_method
from entrypoints.console.pages import install_console
from entrypoints.container import Container, build_storage, container_for
from entrypoints.openadr.app import BASE_PATH as OPENADR_PATH
from entrypoints.openadr.app import create_vtn
from entrypoints.openadr.notifier import mqtt_binding, webhook_policy
from entrypoints.openadr.tokens import TokenService
from entrypoints.settings import Settings
from gridcore.bridging import OpenAdrBridge
from gridcore.openadr import ObjectChange
from gridcore.vtn import Vtn

API_PREFIX = "/api"
# First path segments the documents also show without /api.
_BARE = ("/stats", "/vens", "/events")
VERSION = "1.0.0"
OPENAPI_URL = "/openapi.json"
DOCS_URL = "/docs"
DOCS_ASSETS = "/docs/assets"  # Swagger UI's files: under /docs, so behind the same token
OAUTH2_REDIRECT_URL = "/docs/oauth2-redirect"
# ReDoc is not served (it would need a script of its own); its old URL shows Swagger UI.
OLD_REDOC_URL = "/redoc"


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


def _swagger_ui_files() -> Path:
    """The swagger-ui-dist files that the swagger-ui-py package ships (found
    without importing the package, which would load its web-framework glue)."""
    spec = importlib.util.find_spec("swagger_ui")
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError("the swagger-ui-py package is not installed; /docs needs it")
    return Path(next(iter(spec.submodule_search_locations))) / "static"


def _serve_docs(app: FastAPI) -> None:
    """Swagger UI at ``/docs`` (and ``/redoc``), every file it loads from this app."""
    app.mount(DOCS_ASSETS, StaticFiles(directory=_swagger_ui_files()), name="docs-assets")

    async def swagger_ui(request: Request) -> HTMLResponse:
        root = request.scope.get("root_path", "").rstrip("/")
        return get_swagger_ui_html(
            openapi_url=root + OPENAPI_URL,
            title=f"{app.title} - Swagger UI",
            swagger_js_url=f"{root}{DOCS_ASSETS}/swagger-ui-bundle.js",
            swagger_css_url=f"{root}{DOCS_ASSETS}/swagger-ui.css",
            swagger_favicon_url=f"{root}{DOCS_ASSETS}/favicon-32x32.png",
            oauth2_redirect_url=root + OAUTH2_REDIRECT_URL,
            # no badge sending the document's URL to the online validator
            swagger_ui_parameters={"validatorUrl": None},
        )

    async def oauth2_redirect(_: Request) -> HTMLResponse:
        return get_swagger_ui_oauth2_redirect_html()

    for url in (DOCS_URL, OLD_REDOC_URL):
        app.add_route(url, swagger_ui, include_in_schema=False)
    app.add_route(OAUTH2_REDIRECT_URL, oauth2_redirect, include_in_schema=False)


def openadr_vtn(settings: Settings, container: Container) -> FastAPI:
    """The OpenADR 3.1.1 VTN (entrypoints.openadr), over the container's storage."""
    storage = container.storage()
    if storage.openadr is None:
        raise RuntimeError("this storage keeps no OpenADR objects")
    clock = container.clock()
    return create_vtn(
        storage.openadr,
        clock,
        container.ids(),
        TokenService.from_settings(settings, clock),
        webhooks=webhook_policy(settings),
        mqtt=mqtt_binding(settings),
        outbox=storage.outbox,
    )


def openadr_bridge(settings: Settings, container: Container, vtn_app: FastAPI) -> OpenAdrBridge:
    """The bridge to gridcore's events (gridcore.bridging), hooked after
    whatever already consumes the VTN's changes (notifiers keep theirs); what
    it writes itself goes to the VTN's sink as it is at the time, so that
    notifications see it too."""
    storage = container.storage()
    assert storage.openadr is not None  # openadr_vtn refused such storage already
    vtn: Vtn = vtn_app.state.vtn

    async def publish(changes: Sequence[ObjectChange]) -> None:
        await vtn.changes(changes)

    async def available(now: datetime) -> dict[str, float]:
        # what the dispatcher allocates on, read the way it reads it
        return await storage.telemetry_queries.available_shed(now, settings.offline_after)

    bridge = OpenAdrBridge(
        storage.uow_factory,
        storage.openadr,
        container.clock(),
        performance=storage.performance,
        method=settings.programme.method,
        publish=publish,
        available=available,
    )
    before = vtn.changes

    async def changes(batch: Sequence[ObjectChange]) -> None:
        await before(batch)
        await bridge.on_changes(batch)

    vtn.changes = changes
    return bridge


def create_app(settings: Settings, container: Container | None = None) -> FastAPI:
    """The API for ``settings``. A container passed in (the demo shares one with
    its worker) is the caller's to close; one built here is closed at shutdown."""
    owned = container is None
    if container is None:
        container = container_for(settings, storage=build_storage(settings, api=True))

    vtn = openadr_vtn(settings, container)

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        vtn.state.notifier.start()  # resumes what the outbox holds undelivered
        yield
        await vtn.state.notifier.close()
        if owned:
            await container.storage().close()

    app = FastAPI(
        title="gridcore",
        version=VERSION,
        description="Control core of a demand-response programme: VENs, telemetry, DR events. "
        "Read endpoints need a bearer token with read scope, writes one with control scope.",
        lifespan=lifespan,
        redirect_slashes=False,
        openapi_url=OPENAPI_URL,
        docs_url=None,  # served by _serve_docs, without a CDN
        redoc_url=None,
    )
    app.state.container = container
    app.state.tokens = TokenChecker.from_settings(settings)
    app.state.sessions = SessionKeeper(app.state.tokens)
    app.state.coalescer = Coalescer()
    app.state.max_page_bytes = settings.gridcore_api_max_page_bytes
    install_error_handlers(app)
    app.add_exception_handler(WrongMethod, wrong_method)

    api = APIRouter(
        prefix=API_PREFIX,
        dependencies=[Depends(authorize), Depends(known_query_parameters)],
        responses=AUTH_ERRORS,
    )
    areas = (stats, vens, ven_data, ven_topics, events, performance, audit)
    for area in (module.router for module in areas):
        api.include_router(area)
    app.include_router(api)
    app.include_router(health.router)
    app.state.bridge = openadr_bridge(settings, container, vtn)
    app.mount(OPENADR_PATH, vtn)
    _serve_docs(app)
    install_metrics(app)
    install_console(app)

    # Middleware added first runs innermost: the gate sees /api paths (after
    # PathCompatibility) and CORS answers preflights before the gate asks for a token.
    # The docs pages, /openapi.json and /metrics need a read token too (bearer or
    # Basic); /health stays open.
    app.add_middleware(
        RequestGate,
        prefix=API_PREFIX,
        docs=[OPENAPI_URL, DOCS_URL, OLD_REDOC_URL, METRICS_URL],
        tokens=app.state.tokens,
        sessions=app.state.sessions,
        max_body_bytes=settings.gridcore_max_body_bytes,
    )
    origins = _cors_origins(settings)
    if origins:
        app.add_middleware(
            CORSMiddleware,
            allow_origins=origins,
            allow_methods=["GET", "POST", "PATCH", "PUT", "DELETE"],  # PUT: /openadr3
            allow_headers=["Authorization", "Content-Type"],
            expose_headers=["X-Total-Count", "X-Next-Offset", "Link"],
        )
    # Outside the gate (its refusals are counted too), inside the path rewriting
    # (the route that answered is known once the request is done).
    app.add_middleware(RequestMetrics, owner=app)
    app.add_middleware(PathCompatibility)
    return app
