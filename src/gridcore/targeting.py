"""Targeting: which VENs an event (or an OpenADR program or event) is meant for.

OpenADR 3.1 made targets plain strings (1 to 128 characters): BL "grants"
targets to a VEN (its name, a group such as ``group1``, an attribute such
as ``feeder-12`` or ``postal-94110``) through the VEN and its resources,
and an object with targets is meant for, and readable by, exactly the VENs
granted at least one of them. An object without targets is meant for
everyone: the documents' untargeted event keeps meaning "the whole fleet".

gridcore uses the same terms for its own events: a VEN's granted targets
always include its own id, so ``targets=["ven-001"]`` reaches that VEN
whatever else it was granted.
"""

from __future__ import annotations

from collections.abc import Iterable

from gridcore.errors import InvalidInput

MAX_TARGET_LENGTH = 128  # openadr3.yaml components/schemas/target
MAX_TARGETS = 1_000  # per object: beyond this a list is a mistake, not a targeting

Targets = tuple[str, ...]


def validate_targets(values: Iterable[object], field: str = "targets") -> Targets:
    """Targets as given, in order, without repeats; each a string of 1 to 128
    characters (no surrounding whitespace: ``"group1 "`` would silently
    target nobody)."""
    seen: dict[str, None] = {}
    for value in values:
        if not isinstance(value, str):
            raise InvalidInput(field, f"a target is a string, not {type(value).__name__}")
        if not value or len(value) > MAX_TARGET_LENGTH:
            raise InvalidInput(field, f"a target has 1 to {MAX_TARGET_LENGTH} characters")
        if value != value.strip():
            raise InvalidInput(field, f"target {value!r} has surrounding whitespace")
        seen.setdefault(value, None)
        if len(seen) > MAX_TARGETS:
            raise InvalidInput(field, f"at most {MAX_TARGETS} targets")
    return tuple(seen)


def granted(
    ven_id: str, ven_targets: Iterable[str], *resource_targets: Iterable[str]
) -> frozenset[str]:
    """Everything a VEN may be targeted by: its id, its own targets and those
    of its resources (OpenADR's "ven object and associated resource objects")."""
    out = {ven_id, *ven_targets}
    for targets in resource_targets:
        out.update(targets)
    return frozenset(out)


def is_targeted(object_targets: Iterable[str], granted_targets: frozenset[str]) -> bool:
    """Whether an object with ``object_targets`` is meant for a VEN granted
    ``granted_targets``: an untargeted object is meant for every VEN."""
    wanted = tuple(object_targets)
    return not wanted or any(t in granted_targets for t in wanted)


def readable(
    object_targets: Iterable[str],
    granted_targets: frozenset[str],
    requested: Iterable[str] | None = None,
) -> Targets | None:
    """OpenADR object privacy for a VEN client reading a program or event:
    the request's targets (all granted ones when it names none) AND the
    granted ones must meet the object's. Returns the targets the VEN may see
    in the response (target hiding: only those it asked for and was
    granted), or None when the object is not for it. An untargeted object is
    for every VEN, with no targets shown, unless the request names targets
    (a query's targets keep only objects carrying one of them)."""
    wanted = tuple(object_targets)
    asked = None if requested is None else frozenset(requested)
    if asked and not any(t in asked for t in wanted):
        return None
    if not wanted:
        return ()
    allowed = granted_targets & asked if asked else granted_targets
    shown = tuple(t for t in wanted if t in allowed)
    return shown or None


def matches_query(object_targets: Iterable[str], requested: Iterable[str] | None) -> bool:
    """The ``targets`` query filter for a client that sees everything (BL):
    no targets asked keeps every object, else an object carrying one of them."""
    asked = frozenset(requested or ())
    return not asked or any(t in asked for t in object_targets)
