"""Query and path parameters as openadr3.yaml declares them, refused with a
400 problem naming the parameter when they break their schema. A parameter
an operation does not declare is refused too (an OpenADR 3.0 client's
``targetType``/``targetValues`` would otherwise be ignored and answer BL
everything), and so is a single-valued one given twice."""

from __future__ import annotations

import re
from collections.abc import Collection

from starlette.datastructures import QueryParams

from entrypoints.openadr.models import BadRequest
from gridcore.vtn import Filters

MAX_LIMIT = 50  # openadr3.yaml: limit maximum 50
INT32_MAX = 2**31 - 1
OBJECT_ID = re.compile(r"^[a-zA-Z0-9_-]{1,128}$")
OBJECT_TYPES = frozenset({"PROGRAM", "EVENT", "REPORT", "SUBSCRIPTION", "VEN", "RESOURCE"})

# Each list operation's parameters besides skip and limit.
LISTED: dict[str, frozenset[str]] = {
    "programs": frozenset({"targets"}),
    "reports": frozenset({"programID", "eventID", "clientName"}),
    "events": frozenset({"programID", "targets", "active"}),
    "subscriptions": frozenset({"programID", "clientName", "objects"}),
    "vens": frozenset({"venName", "targets"}),
    "resources": frozenset({"resourceName", "venID", "targets"}),
}


def object_id(value: str, name: str) -> str:
    if not OBJECT_ID.match(value):
        raise BadRequest(f"{name}: {value!r} is not an objectID (1 to 128 of a-z A-Z 0-9 _ -)")
    return value


def _no_nul(name: str, values: list[str]) -> None:
    if any("\x00" in v for v in values):
        raise BadRequest(f"{name}: a NUL character (%00) is in no stored value")


def _one(params: QueryParams, name: str) -> str | None:
    values = params.getlist(name)
    _no_nul(name, values)
    if len(values) > 1:
        raise BadRequest(f"{name}: given {len(values)} times; it takes one value")
    return values[0] if values else None


def _name(params: QueryParams, name: str) -> str | None:
    value = _one(params, name)
    if value is not None and not 1 <= len(value) <= 128:
        raise BadRequest(f"{name}: 1 to 128 characters")
    return value


def _int(params: QueryParams, name: str, default: int, maximum: int) -> int:
    text = _one(params, name)
    if text is None:
        return default
    if not re.fullmatch(r"[+-]?\d{1,10}", text.strip()):
        raise BadRequest(f"{name}: {text!r} is not an integer")
    value = int(text)
    if not 0 <= value <= maximum:
        raise BadRequest(f"{name}: {value} is not between 0 and {maximum}")
    return value


def _many(
    params: QueryParams, name: str, allowed: Collection[str] | None = None
) -> frozenset[str] | None:
    values = params.getlist(name)
    _no_nul(name, values)
    if not values:
        return None
    for value in values:
        if not 1 <= len(value) <= 128:
            raise BadRequest(f"{name}: each value has 1 to 128 characters")
        if allowed is not None and value not in allowed:
            raise BadRequest(f"{name}: {value!r} is not one of {', '.join(sorted(allowed))}")
    return frozenset(values)


def search_parameters(collection: str, params: QueryParams) -> tuple[Filters, int, int]:
    """The filters, skip and limit of ``GET /<collection>``."""
    declared = LISTED[collection] | {"skip", "limit"}
    unknown = sorted(set(params) - declared)
    if unknown:
        raise BadRequest(
            f"{unknown[0]}: not a parameter of this operation (it takes: "
            f"{', '.join(sorted(declared))})"
        )
    ids = {name: _one(params, name) for name in ("programID", "eventID", "venID")}
    for name, value in ids.items():
        if value is not None:
            object_id(value, name)
    active = _one(params, "active")
    if active not in (None, "true", "false"):
        raise BadRequest(f"active: {active!r} is not true or false")
    filters = Filters(
        program_id=ids["programID"],
        event_id=ids["eventID"],
        ven_id=ids["venID"],
        client_name=_name(params, "clientName"),
        ven_name=_name(params, "venName"),
        resource_name=_name(params, "resourceName"),
        objects=_many(params, "objects", OBJECT_TYPES),
        targets=_many(params, "targets"),
        active=active == "true",
    )
    skip = _int(params, "skip", 0, INT32_MAX)
    limit = _int(params, "limit", MAX_LIMIT, MAX_LIMIT)
    return filters, skip, limit
