"""openadr3.yaml's request schemas, written by hand as pydantic TypedDicts.

A validated request is a plain dict with exactly the fields the schema
defines (others are dropped, as Definition.md allows: "a VTN may create a
corresponding resource without the additional property"); absent optional
fields stay absent, and ``null`` is accepted only where the yaml says
``nullable``. Validation is strict (no "1" for 1, no 1 for true), so what
the schema refuses the VTN refuses, with a 400 naming the field.
"""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal, NotRequired

from pydantic import AfterValidator, Field, TypeAdapter, ValidationError
from typing_extensions import TypedDict

from gridcore.openadr import DURATION, Kind, parse_date_time

INT32 = Field(ge=-(2**31), le=2**31 - 1)
_SCHEME = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*:\S+$")


def _date_time(text: str) -> str:
    parse_date_time(text)
    return text


def _duration(text: str) -> str:
    if not DURATION.match(text):
        raise ValueError(f"{text!r} is not an ISO 8601 duration such as PT1H")
    return text


def _uri(text: str) -> str:
    if not _SCHEME.match(text):
        raise ValueError(f"{text!r} is not an absolute URI (https://...)")
    return text


ObjectID = Annotated[str, Field(min_length=1, max_length=128, pattern=r"^[a-zA-Z0-9_-]*$")]
Name = Annotated[str, Field(min_length=1, max_length=128)]  # venName, clientName, target...
DateTime = Annotated[str, AfterValidator(_date_time)]
Duration = Annotated[str, AfterValidator(_duration)]
Uri = Annotated[str, Field(min_length=2, max_length=8000), AfterValidator(_uri)]
Int32 = Annotated[int, INT32]
Number = Annotated[float, Field(allow_inf_nan=False)]  # JSON has no NaN or Infinity
Targets = list[Name] | None


class IntervalPeriod(TypedDict):
    start: NotRequired[DateTime | None]
    duration: NotRequired[Duration | None]
    randomizeStart: NotRequired[Duration | None]


class Point(TypedDict):
    x: Number
    y: Number


class ValuesMap(TypedDict):
    type: Name
    values: list[int | Number | str | bool | Point]


class Interval(TypedDict):
    id: Int32
    intervalPeriod: NotRequired[IntervalPeriod | None]
    payloads: list[ValuesMap]


class EventPayloadDescriptor(TypedDict):
    objectType: Literal["EVENT_PAYLOAD_DESCRIPTOR"]
    payloadType: Name
    units: NotRequired[Name | None]
    currency: NotRequired[str | None]


class ReportPayloadDescriptor(TypedDict):
    objectType: Literal["REPORT_PAYLOAD_DESCRIPTOR"]
    payloadType: Name
    readingType: NotRequired[Name | None]
    units: NotRequired[Name | None]
    accuracy: NotRequired[Number | None]
    confidence: NotRequired[Annotated[int, Field(ge=0, le=100)] | None]


class ReportDescriptor(TypedDict):
    payloadType: Name
    readingType: NotRequired[Name | None]
    units: NotRequired[Name | None]
    targets: NotRequired[Targets]
    aggregate: NotRequired[bool | None]
    startInterval: NotRequired[Int32 | None]
    numIntervals: NotRequired[Int32 | None]
    historical: NotRequired[bool | None]
    frequency: NotRequired[Int32 | None]
    repeat: NotRequired[Int32 | None]
    reportIntervals: NotRequired[Literal["INTERVALS", "SUB_INTERVALS", "OPEN_INTERVALS"] | None]


class ProgramDescription(TypedDict):
    URL: Uri


AnyPayloadDescriptor = Annotated[
    EventPayloadDescriptor | ReportPayloadDescriptor, Field(discriminator="objectType")
]


class ProgramRequest(TypedDict):
    programName: Name
    intervalPeriod: NotRequired[IntervalPeriod | None]
    programDescriptions: NotRequired[list[ProgramDescription] | None]
    payloadDescriptors: NotRequired[list[AnyPayloadDescriptor] | None]
    attributes: NotRequired[list[ValuesMap] | None]
    targets: NotRequired[Targets]


class EventRequest(TypedDict):
    programID: ObjectID
    eventName: NotRequired[str | None]
    duration: NotRequired[Duration | None]
    priority: NotRequired[Annotated[int, Field(ge=0)] | None]
    targets: NotRequired[Targets]
    reportDescriptors: NotRequired[list[ReportDescriptor] | None]
    payloadDescriptors: NotRequired[list[EventPayloadDescriptor] | None]
    intervalPeriod: NotRequired[IntervalPeriod | None]
    intervals: NotRequired[list[Interval] | None]


class ReportResource(TypedDict):
    resourceName: Name
    intervalPeriod: NotRequired[IntervalPeriod | None]
    intervals: list[Interval]


class ReportRequest(TypedDict):
    eventID: ObjectID
    clientName: Name
    reportName: NotRequired[str | None]
    payloadDescriptors: NotRequired[list[ReportPayloadDescriptor] | None]
    resources: list[ReportResource]


ObjectTypes = Literal["PROGRAM", "EVENT", "REPORT", "SUBSCRIPTION", "VEN", "RESOURCE"]


class ObjectOperation(TypedDict):
    objects: list[ObjectTypes]
    operations: list[Literal["READ", "CREATE", "UPDATE", "DELETE"]]
    callbackUrl: Uri
    bearerToken: NotRequired[str | None]


class SubscriptionRequest(TypedDict):
    clientName: Name
    programID: NotRequired[ObjectID | None]
    objectOperations: list[ObjectOperation]
    targets: NotRequired[Targets]


class BlVenRequest(TypedDict):
    objectType: Literal["BL_VEN_REQUEST"]
    clientID: Name
    targets: NotRequired[Targets]
    venName: Name
    attributes: NotRequired[list[ValuesMap] | None]


class VenVenRequest(TypedDict):
    objectType: Literal["VEN_VEN_REQUEST"]
    venName: Name
    attributes: NotRequired[list[ValuesMap] | None]


class BlResourceRequest(TypedDict):
    objectType: Literal["BL_RESOURCE_REQUEST"]
    clientID: Name
    targets: NotRequired[Targets]
    resourceName: Name
    venID: ObjectID
    attributes: NotRequired[list[ValuesMap] | None]


class VenResourceRequest(TypedDict):
    objectType: Literal["VEN_RESOURCE_REQUEST"]
    resourceName: Name
    venID: ObjectID
    attributes: NotRequired[list[ValuesMap] | None]


VenRequest = Annotated[BlVenRequest | VenVenRequest, Field(discriminator="objectType")]
ResourceRequest = Annotated[
    BlResourceRequest | VenResourceRequest, Field(discriminator="objectType")
]

REQUESTS: dict[Kind, TypeAdapter[Any]] = {
    Kind.PROGRAM: TypeAdapter(ProgramRequest),
    Kind.EVENT: TypeAdapter(EventRequest),
    Kind.REPORT: TypeAdapter(ReportRequest),
    Kind.SUBSCRIPTION: TypeAdapter(SubscriptionRequest),
    Kind.VEN: TypeAdapter(VenRequest),
    Kind.RESOURCE: TypeAdapter(ResourceRequest),
}
_SCHEMA_NAMES = {
    Kind.PROGRAM: "programRequest",
    Kind.EVENT: "eventRequest",
    Kind.REPORT: "reportRequest",
    Kind.SUBSCRIPTION: "subscriptionRequest",
    Kind.VEN: "venRequest",
    Kind.RESOURCE: "resourceRequest",
}


# Optional fields the yaml does not mark nullable (most are a bare $ref, which
# OpenAPI 3.0 cannot mark so), yet "optional fields are generally nullable
# and have default values of null" (Definition.md), and 3.1 clients send
# null for what they leave unset (openadr3-client does): null is taken as
# absent, and the field left out of the stored object.
NULL_AS_ABSENT = frozenset(
    {
        "intervalPeriod",
        "start",
        "duration",
        "randomizeStart",
        "intervals",
        "programID",
        "aggregate",
        "startInterval",
        "numIntervals",
        "historical",
        "frequency",
        "repeat",
        "reportIntervals",
    }
)


def _drop_absent(value: Any) -> Any:
    if isinstance(value, dict):
        return {
            k: _drop_absent(v) for k, v in value.items() if not (v is None and k in NULL_AS_ABSENT)
        }
    if isinstance(value, list):
        return [_drop_absent(v) for v in value]
    return value


class BadRequest(ValueError):
    """A request body or parameter the schema refuses; the message says why."""


def describe(error: ValidationError, limit: int = 5) -> str:
    """The first few problems, each as ``field.path: why``."""
    parts = []
    for item in error.errors(include_url=False)[:limit]:
        where = ".".join(str(p) for p in item.get("loc", ())) or "body"
        parts.append(f"{where}: {item.get('msg', 'invalid')}")
    more = error.error_count() - limit
    return "; ".join(parts) + (f"; and {more} more" if more > 0 else "")


def parse_request(kind: Kind, body: bytes) -> dict[str, Any]:
    """The request body as a validated dict; :class:`BadRequest` if it is not
    JSON or breaks the ``<kind>Request`` schema."""
    if not body.strip():
        raise BadRequest(f"the request needs a JSON body: a {_SCHEMA_NAMES[kind]}")
    try:
        value: dict[str, Any] = REQUESTS[kind].validate_json(body, strict=True)
    except ValidationError as exc:
        raise BadRequest(f"not a valid {_SCHEMA_NAMES[kind]}: {describe(exc)}") from None
    value = _drop_absent(value)
    where = _nul_in(value)
    if where is not None:
        raise BadRequest(f"{where or 'body'}: text with a NUL character (\\u0000) is not stored")
    return value


def _nul_in(value: Any, path: str = "") -> str | None:
    """Where a string holding NUL is (PostgreSQL's text cannot hold one, and
    no OpenADR value needs it), or None."""
    if isinstance(value, str):
        return path if "\x00" in value else None
    items = (
        value.items()
        if isinstance(value, dict)
        else enumerate(value)
        if isinstance(value, list)
        else ()
    )
    for key, item in items:
        found = _nul_in(key, path) if isinstance(key, str) else None
        found = found if found is not None else _nul_in(item, f"{path}.{key}" if path else str(key))
        if found is not None:
            return found
    return None
