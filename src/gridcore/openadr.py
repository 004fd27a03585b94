"""OpenADR 3.1 objects as gridcore's VTN keeps them: the six kinds, the
roles and scopes of its clients, what storage indexes of each object, and
when an event has transpired.

The objects themselves are plain JSON documents (dicts) in the shapes of
``openadr3.yaml``; the entrypoint validates them against its request schemas
before they get here. What is a rule lives here and in :mod:`gridcore.vtn`
(who may read and write what); target matching is :mod:`gridcore.targeting`.
"""

from __future__ import annotations

import calendar
import enum
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import MAXYEAR, MINYEAR, UTC, datetime, timedelta
from typing import Any, Literal

from gridcore.targeting import matches_query

Document = dict[str, Any]


class Kind(enum.StrEnum):
    """The addressable objects (openadr3.yaml ``objectTypes``); the value is
    the ``objectType`` the VTN writes into each object."""

    PROGRAM = "PROGRAM"
    EVENT = "EVENT"
    REPORT = "REPORT"
    SUBSCRIPTION = "SUBSCRIPTION"
    VEN = "VEN"
    RESOURCE = "RESOURCE"


# --- clients, roles and scopes (openadr3.yaml securitySchemes) ---------------

READ_ALL = "read_all"
READ_BL = "read_bl"  # used by some /notifiers/mqtt/topics operations, not declared in the yaml
READ_TARGETS = "read_targets"
READ_VEN_OBJECTS = "read_ven_objects"
WRITE_PROGRAMS = "write_programs"
WRITE_EVENTS = "write_events"
WRITE_REPORTS = "write_reports"
WRITE_SUBSCRIPTIONS = "write_subscriptions"
WRITE_VENS = "write_vens"


class Role(enum.StrEnum):
    BL = "bl"  # business logic: the utility's side
    VEN = "ven"


# The yaml's scope descriptions, role by role: BL reads everything and writes
# programs, events, subscriptions, vens and resources, never reports ("only
# VENs can write to reports"); a VEN reads what is targeted at it and its own
# objects, and writes reports, subscriptions, its ven and its resources.
ROLE_SCOPES: Mapping[Role, frozenset[str]] = {
    Role.BL: frozenset(
        {
            READ_ALL,
            READ_BL,
            READ_TARGETS,
            READ_VEN_OBJECTS,
            WRITE_PROGRAMS,
            WRITE_EVENTS,
            WRITE_SUBSCRIPTIONS,
            WRITE_VENS,
        }
    ),
    Role.VEN: frozenset(
        {READ_TARGETS, READ_VEN_OBJECTS, WRITE_REPORTS, WRITE_SUBSCRIPTIONS, WRITE_VENS}
    ),
}

# The scope each operation needs (openadr3.yaml, per path and method).
READ_SCOPE: Mapping[Kind, str] = {
    Kind.PROGRAM: READ_TARGETS,
    Kind.EVENT: READ_TARGETS,
    Kind.REPORT: READ_VEN_OBJECTS,
    Kind.SUBSCRIPTION: READ_VEN_OBJECTS,
    Kind.VEN: READ_VEN_OBJECTS,
    Kind.RESOURCE: READ_VEN_OBJECTS,
}
WRITE_SCOPE: Mapping[Kind, str] = {
    Kind.PROGRAM: WRITE_PROGRAMS,
    Kind.EVENT: WRITE_EVENTS,
    Kind.REPORT: WRITE_REPORTS,
    Kind.SUBSCRIPTION: WRITE_SUBSCRIPTIONS,
    Kind.VEN: WRITE_VENS,
    Kind.RESOURCE: WRITE_VENS,
}


@dataclass(frozen=True, slots=True)
class Client:
    """Who makes a request, as its bearer token says."""

    client_id: str
    role: Role
    scopes: frozenset[str]

    @property
    def sees_all(self) -> bool:
        """BL's "carte blanche": every object, no target hiding."""
        return READ_ALL in self.scopes


# --- what storage indexes -----------------------------------------------------


@dataclass(frozen=True, slots=True)
class ObjectIndex:
    """The fields of an object that queries filter on, taken from its document.
    ``name`` is the unique one of its kind (programName, venName, resourceName
    within its ven); ``ends_at`` when an event has transpired (None: not known
    to end, so never "transpired")."""

    name: str | None = None
    program_id: str | None = None
    event_id: str | None = None
    ven_id: str | None = None
    client_id: str | None = None
    client_name: str | None = None
    object_types: tuple[str, ...] = ()
    targets: tuple[str, ...] = ()
    ends_at: datetime | None = None


def index_of(
    kind: Kind, document: Mapping[str, Any], *, program_id: str | None = None
) -> ObjectIndex:
    """The index of a stored object. A report's ``program_id`` is its event's
    (reports no longer carry programID, but ``GET /reports?programID=`` filters
    on it), so the caller passes it."""
    targets = tuple(document.get("targets") or ())
    if kind is Kind.PROGRAM:
        return ObjectIndex(name=document["programName"], targets=targets)
    if kind is Kind.EVENT:
        return ObjectIndex(
            program_id=document["programID"], targets=targets, ends_at=event_end(document)
        )
    if kind is Kind.REPORT:
        return ObjectIndex(
            program_id=program_id,
            event_id=document["eventID"],
            client_id=document["clientID"],
            client_name=document["clientName"],
        )
    if kind is Kind.SUBSCRIPTION:
        types = {t for op in document["objectOperations"] for t in op["objects"]}
        return ObjectIndex(
            program_id=document.get("programID"),
            client_id=document["clientID"],
            client_name=document["clientName"],
            object_types=tuple(sorted(types)),
            targets=targets,
        )
    if kind is Kind.VEN:
        return ObjectIndex(
            name=document["venName"], client_id=document["clientID"], targets=targets
        )
    return ObjectIndex(
        name=document["resourceName"],
        ven_id=document["venID"],
        client_id=document["clientID"],
        targets=targets,
    )


@dataclass(frozen=True, slots=True)
class ObjectQuery:
    """Filters of a search; every one given must match (Definition.md: "VTN
    SHALL treat filtering params as additive").

    ``targets_any``: None filters nothing; a set keeps the objects carrying one
    of its targets, and with ``or_untargeted`` also those carrying none."""

    program_id: str | None = None
    event_id: str | None = None
    ven_id: str | None = None
    client_id: str | None = None
    client_name: str | None = None
    name: str | None = None
    object_types: frozenset[str] | None = None
    targets_any: frozenset[str] | None = None
    or_untargeted: bool = False
    active_at: datetime | None = None

    def matches(self, index: ObjectIndex) -> bool:
        """The same filter in Python (the memory adapter; the SQL one says it in SQL)."""
        equal = (
            (self.program_id, index.program_id),
            (self.event_id, index.event_id),
            (self.ven_id, index.ven_id),
            (self.client_id, index.client_id),
            (self.client_name, index.client_name),
            (self.name, index.name),
        )
        if any(want is not None and want != have for want, have in equal):
            return False
        if self.object_types is not None and not self.object_types & set(index.object_types):
            return False
        if self.targets_any is not None:
            # an empty set asks for nothing (matches_query would keep everything)
            hit = bool(self.targets_any) and matches_query(index.targets, self.targets_any)
            if not hit and not (self.or_untargeted and not index.targets):
                return False
        return not (
            self.active_at is not None
            and index.ends_at is not None
            and index.ends_at <= self.active_at
        )


Operation = Literal["CREATE", "UPDATE", "DELETE"]


@dataclass(frozen=True, slots=True)
class ObjectChange:
    """One stored change, as a notification will carry it (openadr3.yaml
    ``notification``: objectType, operation, object)."""

    operation: Operation
    kind: Kind
    document: Document = field(repr=False)
    # Which client made it ("openadr:<clientID>"), for the audit trail of
    # what it does to gridcore's events; no part of a notification. None:
    # the VTN's own change (the bridge's mirror events and reports).
    by: str | None = field(default=None, compare=False)


# --- MQTT notifier topic names (Definition.md, "Notifications via Additional Protocols")


def mqtt_topics(prefix: str, *, create: bool = True) -> dict[str, str]:
    """The topic of each operation on the objects under ``prefix``
    (``programs``, ``programs/{id}``, ``vens/{id}/events``...): the example's
    ``programs/create``, ``programs/update``, ``programs/delete`` and
    ``programs/+`` for all. No CREATE for one object (``create=False``): it
    exists already."""
    topics = {"UPDATE": f"{prefix}/update", "DELETE": f"{prefix}/delete", "ALL": f"{prefix}/+"}
    return {"CREATE": f"{prefix}/create", **topics} if create else topics


# --- time: when an event has transpired --------------------------------------

# openadr3.yaml components/schemas/duration
DURATION = re.compile(
    r"^(-?)P(?=\d|T\d)(?:(\d+)Y)?(?:(\d+)M)?(?:(\d+)([DW]))?"
    r"(?:T(?:(\d+)H)?(?:(\d+)M)?(?:(\d+(?:\.\d+)?)S)?)?$"
)
# RFC 3339 date-time, as JSON Schema's "date-time" format reads it.
DATE_TIME = re.compile(
    r"^\d{4}-\d{2}-\d{2}[Tt]\d{2}:\d{2}:\d{2}(?:\.\d+)?(?:[Zz]|[+-]\d{2}:\d{2})$"
)
# "P9999Y may indicate infinity" (User Guide); any span this long is open.
_FOREVER_YEARS = 1000
# A start of 0001-01-01 "may indicate 'now'" (User Guide): not a point in time.
_NOW_YEAR = 1


def parse_date_time(text: str) -> datetime:
    """An RFC 3339 date-time, timezone-aware; ``ValueError`` if it is not one."""
    if not DATE_TIME.match(text):
        raise ValueError(f"{text!r} is not an RFC 3339 date-time (2023-06-15T09:30:00Z)")
    try:
        return datetime.fromisoformat(text.upper().replace("Z", "+00:00")).astimezone(UTC)
    except OverflowError:  # 9999-12-31T23:00:00-05:00 is past the calendar in UTC
        raise ValueError(f"{text!r} is outside the calendar in UTC") from None


def _add_months(at: datetime, months: int) -> datetime:
    """``at`` that many calendar months on (31 January + 1 month: the last day
    of February); OverflowError past the calendar."""
    year, month = divmod(at.month - 1 + months, 12)
    year += at.year
    if not MINYEAR <= year <= MAXYEAR:
        raise OverflowError(f"year {year} is outside the calendar")
    day = min(at.day, calendar.monthrange(year, month + 1)[1])
    return at.replace(year=year, month=month + 1, day=day)


def add_duration(at: datetime, text: str) -> datetime | None:
    """``at`` plus an ISO 8601 duration (calendar years and months); None when
    the duration is open-ended (P9999Y) or runs past the calendar."""
    match = DURATION.match(text)
    if match is None:
        raise ValueError(f"{text!r} is not an ISO 8601 duration (PT1H)")
    sign, years, months, days, unit, hours, minutes, seconds = match.groups()
    if years and int(years) >= _FOREVER_YEARS:
        return None
    factor = -1 if sign else 1
    try:
        out = _add_months(at, factor * (int(years or 0) * 12 + int(months or 0)))
        span = timedelta(
            days=int(days or 0) * (7 if unit == "W" else 1),
            hours=int(hours or 0),
            minutes=int(minutes or 0),
            seconds=float(seconds or 0),
        )
        return out + factor * span
    except (OverflowError, ValueError):
        return None


def _start(period: Mapping[str, Any]) -> datetime | None:
    text = period.get("start")
    if text is None:
        return None
    at = parse_date_time(text)
    return None if at.year == _NOW_YEAR else at


def event_end(event: Mapping[str, Any]) -> datetime | None:
    """When an event's last interval ends, from its intervalPeriod and its
    intervals' (an interval without a start follows the one before it); None
    when that is not known or never: a start of 'now', an open duration, an
    interval without a duration. Such an event never counts as transpired."""
    period = event.get("intervalPeriod") or {}
    start = _start(period)
    default = period.get("duration")
    if event.get("duration") is not None:  # looping intervals: the event's own span
        return None if start is None else add_duration(start, event["duration"])
    intervals = event.get("intervals") or []
    if not intervals:
        return None if start is None or default is None else add_duration(start, default)
    cursor, end = start, None
    for interval in intervals:
        own = interval.get("intervalPeriod") or {}
        begin = _start(own) if own.get("start") is not None else cursor
        duration = own.get("duration", default)
        if begin is None or duration is None:
            return None
        cursor = add_duration(begin, duration)
        if cursor is None:
            return None
        end = cursor if end is None else max(end, cursor)
    return end
