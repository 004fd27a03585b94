"""Field types shared by the HTTP models and parameters: strict numbers,
ids that fit MQTT topics and storage, and UTC timestamps.

Requests are strict about types (``false`` is not a number, ``"3"`` is not a
number) and about text that storage or MQTT topics cannot hold (control
characters, over-long ids). Timestamps are ISO 8601; a timestamp without a
zone is read as UTC; every timestamp is answered in UTC with ``Z``.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Annotated

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PlainSerializer,
    Strict,
    StringConstraints,
    WithJsonSchema,
)
from pydantic.alias_generators import to_camel

from gridcore.limits import LOAD_ID_LENGTH, LOAD_TYPE_LENGTH, MAX_KW, NAME_LENGTH
from gridcore.targeting import MAX_TARGET_LENGTH, MAX_TARGETS, validate_targets
from gridcore.timestamps import to_utc
from gridcore.ven import VEN_ID_SHAPE

# Far enough for any real schedule, and keeps date arithmetic from overflowing.
EARLIEST = datetime(1970, 1, 1, tzinfo=UTC)
LATEST = datetime(2200, 1, 1, tzinfo=UTC)


def as_utc(value: datetime) -> datetime:
    """Naive input is UTC (documented); aware input is converted to UTC."""
    try:
        return to_utc(value, EARLIEST, LATEST)
    except ValueError:
        raise ValueError(
            "must be between 1970-01-01T00:00:00Z and 2200-01-01T00:00:00Z in UTC"
        ) from None


def iso_z(value: datetime) -> str:
    return value.astimezone(UTC).isoformat().replace("+00:00", "Z")


# ISO 8601 date and time; seconds, fraction and zone optional (no zone: UTC).
# Written out so that the OpenAPI document says exactly what is accepted:
# no bare dates, no Unix numbers (which pydantic would otherwise take).
ISO_DATE_TIME = (
    r"^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}(:[0-9]{2}(\.[0-9]{1,6})?)?"
    r"(Z|[+-][0-9]{2}:[0-9]{2})?$"
)
_ISO = re.compile(ISO_DATE_TIME)


def iso_only(value: object) -> object:
    if isinstance(value, datetime):
        return value
    if not isinstance(value, str) or not _ISO.match(value):
        raise ValueError("must be an ISO 8601 date-time such as 2025-10-20T15:00:00Z")
    return value


UtcDateTime = Annotated[
    datetime,
    BeforeValidator(iso_only),
    AfterValidator(as_utc),
    PlainSerializer(iso_z, return_type=str),
    WithJsonSchema({"type": "string", "pattern": ISO_DATE_TIME}, mode="validation"),
    WithJsonSchema({"type": "string", "format": "date-time"}, mode="serialization"),
]

Kw = Annotated[float, Strict(), Field(ge=0, le=MAX_KW, allow_inf_nan=False)]
PositiveKw = Annotated[float, Strict(), Field(gt=0, le=MAX_KW, allow_inf_nan=False)]
Seconds = Annotated[int, Strict(), Field(ge=1, le=24 * 3600)]
VEN_ID_PATTERN = rf"^{VEN_ID_SHAPE}$"
LOAD_ID_PATTERN = rf"^[^\x00-\x1f\x7f]{{1,{LOAD_ID_LENGTH}}}$"
EVENT_ID_PATTERN = r"^evt-[0-9a-f]{8}$"
VenId = Annotated[str, StringConstraints(pattern=VEN_ID_PATTERN)]
EventId = Annotated[str, StringConstraints(pattern=EVENT_ID_PATTERN)]
Name = Annotated[
    str, StringConstraints(min_length=1, max_length=NAME_LENGTH, pattern=r"^[^\x00-\x1f\x7f]+$")
]
LoadTypeName = Annotated[
    str, StringConstraints(pattern=rf"^[A-Za-z0-9_ .-]{{1,{LOAD_TYPE_LENGTH}}}$")
]


def _targets(values: list[str]) -> list[str]:
    # The domain's rule (no surrounding whitespace, repeats dropped): one place.
    return list(validate_targets(values))


Target = Annotated[str, Strict(), StringConstraints(min_length=1, max_length=MAX_TARGET_LENGTH)]
Targets = Annotated[
    list[Target],
    Field(
        max_length=MAX_TARGETS,
        description="OpenADR 3.1 targets: strings of 1 to "
        f"{MAX_TARGET_LENGTH} characters without surrounding whitespace (a VEN's id, a group "
        "such as 'group1', an attribute such as 'feeder-12' or 'postal-94110'); repeats are "
        "dropped. An event with targets reaches the VENs granted one of them (by the VEN or by "
        "one of its loads); none: the whole fleet",
    ),
    AfterValidator(_targets),
]


class ApiModel(BaseModel):
    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True)


class Request(ApiModel):
    # Unknown fields are ignored: older dashboards and scripts send extras.
    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="ignore")
