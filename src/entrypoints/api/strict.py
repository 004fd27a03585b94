"""Requests are held to the document: unknown query parameters are refused
(422 naming them), not ignored, since a typo such as ``?loadId=`` for
``?load_id=`` would otherwise silently answer every circuit instead of one;
and a method a fixed path does not have is 405 even when a templated path
would take it (``DELETE /api/events/current`` is not ``DELETE /api/events/{eventId}``)."""

from __future__ import annotations

from fastapi import Request
from fastapi.dependencies.models import Dependant
from fastapi.responses import Response
from fastapi.routing import APIRoute

from entrypoints.api.errors import methods_for_path, not_allowed
from gridcore.errors import InvalidInput


def _query_names(dependant: Dependant) -> set[str]:
    names = {param.alias for param in dependant.query_params}
    for sub in dependant.dependencies:
        names |= _query_names(sub)
    return names


_DECLARED: dict[str, frozenset[str]] = {}


def _declared(route: APIRoute) -> frozenset[str]:
    names = _DECLARED.get(route.unique_id)
    if names is None:
        names = _DECLARED[route.unique_id] = frozenset(_query_names(route.dependant))
    return names


class WrongMethod(Exception):
    def __init__(self, allowed: set[str]) -> None:
        super().__init__("method not allowed")
        self.allowed = allowed


async def known_query_parameters(request: Request) -> None:
    fixed = methods_for_path(request, static_only=True)
    if fixed and request.method not in fixed:
        raise WrongMethod(fixed)
    route = request.scope.get("route")
    if not isinstance(route, APIRoute):
        return
    unknown = sorted(set(request.query_params) - _declared(route))
    if unknown:
        allowed = ", ".join(sorted(_declared(route))) or "none"
        raise InvalidInput(unknown[0], f"unknown query parameter (this endpoint takes: {allowed})")


async def wrong_method(_: Request, exc: Exception) -> Response:
    assert isinstance(exc, WrongMethod)
    return not_allowed(exc.allowed)
