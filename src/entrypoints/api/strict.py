"""Unknown query parameters are refused (422 naming them), not ignored: a
typo such as ``?loadId=`` for ``?load_id=`` would otherwise silently answer
every circuit instead of one."""

from __future__ import annotations

from fastapi import Request
from fastapi.dependencies.models import Dependant
from fastapi.routing import APIRoute

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


async def known_query_parameters(request: Request) -> None:
    route = request.scope.get("route")
    if not isinstance(route, APIRoute):
        return
    unknown = sorted(set(request.query_params) - _declared(route))
    if unknown:
        allowed = ", ".join(sorted(_declared(route))) or "none"
        raise InvalidInput(unknown[0], f"unknown query parameter (this endpoint takes: {allowed})")
