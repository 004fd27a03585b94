"""Every error of the VTN as openadr3.yaml's ``problem`` object (title,
status, detail), whatever raised it: a refused token (401), a missing scope
or role (403), an unknown object (404), a name taken or a reference to
nothing (409), bad input (400), an unknown path (404) or method (405), an
unavailable database (503), or a bug (500, logged with its traceback, the
answer saying nothing of it)."""

from __future__ import annotations

import logging
from http import HTTPStatus

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from sqlalchemy.exc import DBAPIError, OperationalError, ProgrammingError, SQLAlchemyError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import Match

from entrypoints.openadr.models import BadRequest
from gridcore.errors import Conflict, Forbidden, InvalidInput, NotFound

log = logging.getLogger("gridcore.openadr")

PROBLEM_TYPE = "application/problem+json"
BEARER_CHALLENGE = {"WWW-Authenticate": "Bearer"}


class Unauthorized(Exception):
    """No bearer token, or one this VTN did not issue or that expired."""


def problem(status: int, detail: str, headers: dict[str, str] | None = None) -> JSONResponse:
    body = {"title": HTTPStatus(status).phrase, "status": status, "detail": detail}
    # application/json, as openadr3.yaml declares every answer (not problem+json)
    return JSONResponse(body, status_code=status, headers=headers)


async def _unauthorized(_: Request, exc: Exception) -> Response:
    return problem(401, str(exc), BEARER_CHALLENGE)


async def _forbidden(_: Request, exc: Exception) -> Response:
    return problem(403, str(exc))


async def _not_found(_: Request, exc: Exception) -> Response:
    return problem(404, str(exc))


async def _conflict(_: Request, exc: Exception) -> Response:
    return problem(409, str(exc))


async def _bad_request(_: Request, exc: Exception) -> Response:
    return problem(400, str(exc))


def _allowed(request: Request) -> str:
    """Every method of the path (Starlette names only the first route's)."""
    methods: set[str] = set()
    for route in request.app.routes:
        match, _ = route.matches({**request.scope, "method": "?"})
        if match is not Match.NONE:
            methods |= set(getattr(route, "methods", None) or ())
    return ", ".join(sorted(methods))


async def _http(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, StarletteHTTPException)
    detail = exc.detail if isinstance(exc.detail, str) else HTTPStatus(exc.status_code).phrase
    headers = dict(exc.headers or {})
    if exc.status_code == 404:
        detail = "no such path in the OpenADR 3 API"
    elif exc.status_code == 405:
        headers["Allow"] = _allowed(request)
        detail = f"{request.method} is not an operation of this path (it has: {headers['Allow']})"
    return problem(exc.status_code, detail, headers or None)


async def _request_invalid(_: Request, exc: Exception) -> Response:
    assert isinstance(exc, RequestValidationError)
    parts = [
        f"{'.'.join(str(p) for p in e.get('loc', ()))}: {e.get('msg', 'invalid')}"
        for e in exc.errors()[:5]
    ]
    return problem(400, "; ".join(parts) or "invalid request")


async def _database(_: Request, exc: Exception) -> Response:
    if isinstance(exc, PoolTimeout | OperationalError) or (
        isinstance(exc, DBAPIError) and exc.connection_invalidated
    ):
        log.warning("OpenADR request failed on the database: %s", type(exc).__name__)
        return problem(503, "the database is unavailable or busy; retry", {"Retry-After": "2"})
    if isinstance(exc, ProgrammingError):
        log.error("OpenADR request failed on the database schema: %s", exc)
        return problem(503, "the database is not at this version's schema: run `gridcore migrate`")
    return await _bug(_, exc)


async def _bug(request: Request, exc: Exception) -> Response:
    log.error("OpenADR %s %s failed", request.method, request.url.path, exc_info=exc)
    return problem(500, "the VTN failed on this request; the failure is logged")


def install(app: FastAPI) -> None:
    app.add_exception_handler(Unauthorized, _unauthorized)
    app.add_exception_handler(Forbidden, _forbidden)
    app.add_exception_handler(NotFound, _not_found)
    app.add_exception_handler(Conflict, _conflict)
    app.add_exception_handler(BadRequest, _bad_request)
    app.add_exception_handler(InvalidInput, _bad_request)
    app.add_exception_handler(RequestValidationError, _request_invalid)
    app.add_exception_handler(StarletteHTTPException, _http)
    app.add_exception_handler(SQLAlchemyError, _database)
    app.add_exception_handler(Exception, _bug)
