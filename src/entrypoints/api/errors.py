"""Domain errors to HTTP answers: NotFound 404, a refused state change 409,
bad input 422. Every 422 names the field in ``loc`` and in ``message``. A
request that fails because of the database (unreachable, or not migrated to
this code's schema) is a 503 saying so, with no traceback.

FastAPI's own validation answer echoes the offending input, which may be a
NaN or bytes that JSON cannot carry (turning a 422 into a 500); this one keeps
only where, what and why.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any, cast

from fastapi import FastAPI, Request
from fastapi.exception_handlers import http_exception_handler
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel
from sqlalchemy.exc import DBAPIError, SQLAlchemyError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from starlette.exceptions import HTTPException as StarletteHTTPException

from entrypoints.api.deps import database_check
from gridcore.errors import DomainError, IllegalTransition, InvalidInput, NotFound

# Where FastAPI says the value came from; the field name is what a client needs.
_SOURCES = {"body", "query", "path", "header", "cookie"}


def _field(loc: Sequence[Any]) -> str:
    parts = [str(p) for p in loc]
    if parts and parts[0] in _SOURCES:
        parts = parts[1:]
    return ".".join(parts) or "request"


def unprocessable(errors: list[dict[str, Any]]) -> JSONResponse:
    message = "; ".join(f"{_field(e['loc'])}: {e['msg']}" for e in errors)
    return JSONResponse(status_code=422, content={"detail": errors, "message": message})


def _paths(request: Request) -> tuple[dict[str, set[str]], list[tuple[re.Pattern[str], set[str]]]]:
    """The OpenAPI document's paths once per app: the fixed ones by path, and
    every one as a pattern (every API request asks for the fixed ones: going
    through the document each time cost more than most routes' own work)."""
    state = request.app.state
    cached = getattr(state, "path_methods", None)
    if cached is None:
        fixed: dict[str, set[str]] = {}
        every: list[tuple[re.Pattern[str], set[str]]] = []
        for template, operations in request.app.openapi()["paths"].items():
            methods = {m.upper() for m in operations}
            if "{" not in template:
                fixed[template] = methods
            every.append((re.compile(re.sub(r"\{[^}/]+\}", "[^/]+", template)), methods))
        cached = state.path_methods = (fixed, every)
    return cast(tuple[dict[str, set[str]], list[tuple[re.Pattern[str], set[str]]]], cached)


def methods_for_path(request: Request, *, static_only: bool = False) -> set[str]:
    """Methods the OpenAPI document lists for this request's path (Starlette
    names only the first matching route's in ``Allow``, and the routes of one
    path are split by method); ``static_only``: of a path without parameters."""
    fixed, every = _paths(request)
    path = request.url.path
    if static_only:
        return set(fixed.get(path, ()))
    methods: set[str] = set()
    for pattern, operations in every:
        if pattern.fullmatch(path):
            methods |= operations
    return methods


def not_allowed(methods: set[str]) -> JSONResponse:
    return JSONResponse(
        status_code=405,
        content={"detail": "Method Not Allowed"},
        headers={"Allow": ", ".join(sorted(methods))},
    )


async def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, StarletteHTTPException)
    if exc.status_code == 405:
        # A fixed path (/api/events/current) wins over a template that also matches.
        methods = methods_for_path(request, static_only=True) or methods_for_path(request)
        return not_allowed(methods)
    if exc.status_code == 400:
        # FastAPI's "error parsing the body" (bytes that are not JSON): bad input.
        return unprocessable([{"loc": ["body"], "msg": str(exc.detail), "type": "json_invalid"}])
    return await http_exception_handler(request, exc)


async def _request_invalid(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    # DELETE /api/events/current reaches DELETE /api/events/{eventId} and fails
    # its pattern; the truth is that /api/events/current has no DELETE.
    static = methods_for_path(request, static_only=True)
    if static and request.method not in static:
        return not_allowed(static)
    errors = [
        {
            "loc": [p if isinstance(p, int) else str(p) for p in e.get("loc", ())],
            "msg": str(e.get("msg", "invalid")),
            "type": str(e.get("type", "value_error")),
        }
        for e in exc.errors()
    ]
    return unprocessable(errors)


async def _invalid_input(_: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, InvalidInput)
    return unprocessable([{"loc": [exc.field], "msg": exc.message, "type": "value_error"}])


async def _not_found(_: Request, exc: Exception) -> JSONResponse:
    return JSONResponse(status_code=404, content={"detail": str(exc)})


async def _conflict(_: Request, exc: Exception) -> JSONResponse:
    # IllegalTransition and any other rule about the current state of things.
    return JSONResponse(status_code=409, content={"detail": str(exc)})


# SQLSTATE 57014 query_canceled: statement_timeout (GRIDCORE_API_STATEMENT_TIMEOUT_SECONDS).
_CANCELED = "57014"
BUSY_RETRY_AFTER_S = 2


def busy(detail: str) -> JSONResponse:
    return JSONResponse(
        status_code=503,
        content={"detail": detail},
        headers={"Retry-After": str(BUSY_RETRY_AFTER_S)},
    )


def _busy_database(exc: Exception) -> JSONResponse | None:
    """503 with Retry-After for a read the API gave up on so that ingest keeps
    the database: the server cancelled it (statement timeout), or no
    connection of this process's bounded pool came free in time."""
    if isinstance(exc, PoolTimeout):
        return busy(
            "the database is busy: no connection of this API process's pool "
            "(GRIDCORE_API_DB_POOL_SIZE) came free in time; retry"
        )
    if isinstance(exc, DBAPIError) and getattr(exc.orig, "sqlstate", None) == _CANCELED:
        return busy(
            "the database took longer than GRIDCORE_API_STATEMENT_TIMEOUT_SECONDS to answer "
            "and the query was cancelled; retry, or ask for a smaller page or range"
        )
    return None


async def _database_failed(request: Request, exc: Exception) -> Response:
    """503 when the database is why (unreachable, busy, or a statement failed
    on a schema that is not this code's), logged once per kind of problem; any
    other database error is a bug, raised again for its 500 and traceback."""
    answer = _busy_database(exc)
    if answer is not None:
        return answer
    check = database_check(request.app)
    if check is None:
        raise exc
    problem = await check.explain(exc)
    check.report(problem)
    if problem is None:
        raise exc
    return JSONResponse(status_code=503, content={"detail": problem.detail})


def install_error_handlers(app: FastAPI) -> None:
    app.add_exception_handler(RequestValidationError, _request_invalid)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_exception_handler(InvalidInput, _invalid_input)
    app.add_exception_handler(NotFound, _not_found)
    app.add_exception_handler(IllegalTransition, _conflict)
    app.add_exception_handler(DomainError, _conflict)
    app.add_exception_handler(SQLAlchemyError, _database_failed)


class Conflict(DomainError):
    """A request that contradicts what is stored (a VEN id already taken)."""


class ErrorOut(BaseModel):
    detail: str


# OpenAPI descriptions of the error answers, shared by the routers.
Responses = dict[int | str, dict[str, Any]]
AUTH_ERRORS: Responses = {
    401: {"model": ErrorOut, "description": "No valid bearer token"},
    403: {"model": ErrorOut, "description": "The token lacks the scope"},
}
NOT_FOUND: Responses = {404: {"model": ErrorOut, "description": "Unknown VEN, load or event"}}
CONFLICT: Responses = {409: {"model": ErrorOut, "description": "Not allowed in the current state"}}
