"""``/metrics`` of ``gridcore serve``: request counts and latencies by route
template, and the fleet's gauges read from the database at scrape time.

Access: like the documentation pages, ``/metrics`` needs a read token (as a
bearer token or an HTTP Basic password: Prometheus sends either, see
docs/operations.md) unless GRIDCORE_AUTH=disabled. It names no VEN, but it
is the API's own port, where nothing else is open but ``/health``.

Under ``serve --workers N`` each process writes its samples to files in
PROMETHEUS_MULTIPROC_DIR (a temporary directory the serve command creates,
:func:`multiprocess_dir`) and a scrape, answered by whichever process,
adds up every process's files: the counts are the server's, not one
process's.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import shutil
import tempfile
import time
from collections.abc import Iterable, Iterator

from fastapi import FastAPI
from fastapi.routing import APIRoute
from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, CollectorRegistry, generate_latest
from prometheus_client.metrics_core import Metric
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.registry import Collector
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Mount, Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from adapters.metrics import API_REQUEST_DURATION, API_REQUESTS, FleetCollector, FleetSnapshot
from entrypoints.api.coalesce import Coalescer
from entrypoints.container import Container

log = logging.getLogger("entrypoints.api.metrics")

METRICS_URL = "/metrics"
MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
# A scrape must answer within Prometheus's scrape timeout (10 s by default).
FLEET_TIMEOUT = 3.0
# A request no route took (refused before routing, or no such path).
NO_ROUTE = "(none)"


class RequestMetrics:
    """ASGI middleware: each HTTP request counted by the route that answered
    it (its template, ``/api/vens/{venId}``: bounded, never a VEN id) and
    timed to the end of its response. ``owner`` is the app whose routes
    name the templates."""

    def __init__(self, app: ASGIApp, *, owner: Starlette) -> None:
        self.app = app
        self.owner = owner
        self._plain: dict[object, str] | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500  # what the client gets if the app raises before answering

        async def recording_send(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, recording_send)
        finally:
            route, method = self.route_template(scope), scope["method"]
            API_REQUESTS.labels(route, method, str(status)).inc()
            API_REQUEST_DURATION.labels(route, method).observe(time.perf_counter() - started)

    def route_template(self, scope: Scope) -> str:
        """The template of the route that took the request. FastAPI leaves its
        routes in the scope, but an included router's or mounted app's route
        knows only its own part of the path: the prefix is what of the
        request's path comes before the part it matches (the prefixes are
        literal: ``/api``, ``/openadr3``). Plain routes and mounts (``/metrics``,
        the console's pages, Swagger UI's files) leave only their endpoint."""
        route = scope.get("route")
        template = getattr(route, "path", None)
        regex = getattr(route, "path_regex", None)
        if isinstance(template, str) and regex is not None:
            path: str = scope.get("path", "")
            for at, char in enumerate(path):
                if char == "/" and regex.match(path[at:]):
                    return path[:at] + template
            return template
        if self._plain is None:
            self._plain = _plain_routes(self.owner)
        return self._plain.get(scope.get("endpoint"), NO_ROUTE)


def _plain_routes(app: Starlette) -> dict[object, str]:
    """Each plain route's endpoint and each mount's app, with its template."""
    found: dict[object, str] = {}
    for route in app.routes:
        if isinstance(route, Mount):
            found.setdefault(route.app, route.path + "/{path}")
        elif isinstance(route, Route) and not isinstance(route, APIRoute):
            found.setdefault(route.endpoint, route.path)
    return found


async def fleet_snapshot(container: Container, coalescer: Coalescer) -> FleetSnapshot | None:
    """The fleet's gauges: the /stats/network read (shared with concurrent
    API requests through the coalescer) and the active events; None when the
    database does not answer in time (the gauges are then left out)."""
    storage = container.storage()
    settings = container.settings()
    clock = container.clock()
    offline_after = settings.offline_after

    async def read() -> FleetSnapshot:
        stats = await coalescer.read(
            ("network", offline_after),
            lambda: storage.telemetry_queries.network_stats(clock.now(), offline_after),
        )
        async with storage.uow_factory() as uow:
            active = await uow.events.active()
        return FleetSnapshot(
            registered_vens=stats.ven_count,
            online_vens=stats.online_vens,
            active_events=len(active),
            requested_kw=sum(e.requested_reduction_kw for e in active),
            claimed_kw=sum(e.actual_reduction_kw for e in active),
        )

    try:
        return await asyncio.wait_for(read(), FLEET_TIMEOUT)
    except Exception as exc:  # any failure: the request metrics are still worth answering
        log.warning("/metrics: the fleet's gauges could not be read: %s", exc)
        return None


class _Default(Collector):
    """This process's own metrics (one process serving)."""

    def collect(self) -> Iterable[Metric]:
        return REGISTRY.collect()


def exposition(fleet: FleetSnapshot | None) -> bytes:
    """The text exposition: every serving process's metrics (multiprocess
    mode) or this one's, and the fleet's gauges."""
    registry = CollectorRegistry()
    if os.environ.get(MULTIPROC_ENV):
        MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
    else:
        registry.register(_Default())
    registry.register(FleetCollector(fleet))
    return generate_latest(registry)


def install_metrics(app: FastAPI) -> None:
    """``GET /metrics`` (behind the request gate, see the module's docstring)."""

    async def metrics(request: Request) -> Response:
        state = request.app.state
        fleet = await fleet_snapshot(state.container, state.coalescer)
        return Response(exposition(fleet), media_type=CONTENT_TYPE_LATEST)

    app.add_route(METRICS_URL, metrics, methods=["GET"], include_in_schema=False)


@contextlib.contextmanager
def multiprocess_dir() -> Iterator[None]:
    """For ``serve --workers N``: a fresh PROMETHEUS_MULTIPROC_DIR for the
    processes about to start (they read it when they import
    prometheus_client), removed when they are gone. One the operator set is
    used as it is (and left in place): it must be emptied between runs."""
    if os.environ.get(MULTIPROC_ENV):
        yield
        return
    path = tempfile.mkdtemp(prefix="gridcore-metrics-")
    os.environ[MULTIPROC_ENV] = path
    try:
        yield
    finally:
        os.environ.pop(MULTIPROC_ENV, None)
        shutil.rmtree(path, ignore_errors=True)
