"""Path and query parameters shared by the routers, and the rules that bound
them: every list has a default and a maximum size, every time range is
checked, every history request is capped in buckets."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Annotated

from fastapi import Path, Query

from entrypoints.api.fields import (
    EVENT_ID_PATTERN,
    LOAD_ID_PATTERN,
    VEN_ID_PATTERN,
    UtcDateTime,
    as_utc,
)
from gridcore.errors import InvalidInput
from gridcore.history import history_source, needs_raw
from gridcore.listing import MAX_SEARCH, VenOrder
from gridcore.summary import MAX_FLEET_PAGE
from gridcore.telemetry import (
    DEFAULT_GRANULARITY,
    MAX_BUCKETS,
    MAX_SNAPSHOT_PAGE,
    parse_granularity,
)

DEFAULT_LIMIT = 100
MAX_LIMIT = 1000
MAX_OFFSET = 1_000_000

VenIdPath = Annotated[str, Path(alias="venId", pattern=VEN_ID_PATTERN, description="The VEN's id")]
LoadIdPath = Annotated[
    str, Path(alias="loadId", pattern=LOAD_ID_PATTERN, description="The load's id")
]
EventIdPath = Annotated[
    str, Path(alias="eventId", pattern=EVENT_ID_PATTERN, description="evt- + 8 hex digits")
]

Start = Annotated[
    UtcDateTime | None,
    Query(description="ISO 8601, inclusive; without a zone it is read as UTC"),
]
End = Annotated[
    UtcDateTime | None,
    Query(description="ISO 8601, exclusive; without a zone it is read as UTC"),
]
Limit = Annotated[int, Query(ge=1, le=MAX_LIMIT, description=f"At most {MAX_LIMIT}")]
SnapshotLimit = Annotated[
    int, Query(ge=1, le=MAX_SNAPSHOT_PAGE, description=f"At most {MAX_SNAPSHOT_PAGE}")
]
Offset = Annotated[int, Query(ge=0, le=MAX_OFFSET, description="Items to skip")]
# The dashboard's fleet-wide lists answer the whole fleet by default (it never pages).
FleetLimit = Annotated[
    int,
    Query(
        ge=1,
        le=MAX_FLEET_PAGE,
        description=f"At most {MAX_FLEET_PAGE} (the default: the whole fleet up to that size)",
    ),
]
_ORDERS = "|".join(o.value for o in VenOrder)
SortParam = Annotated[
    str,
    Query(
        pattern=f"^-?({_ORDERS})$",
        description="id, name or lastSeen; a leading - sorts descending (never-seen VENs last)",
    ),
]
SearchParam = Annotated[
    str | None,
    Query(max_length=MAX_SEARCH, description="Part of the VEN's id or name, any case"),
]
Granularity = Annotated[
    str, Query(max_length=16, description="Bucket width: Ns, Nm or Nh (default 5m)")
]


def checked_range(start: datetime | None, end: datetime | None) -> None:
    if start is not None and end is not None and start >= end:
        raise InvalidInput("end", "must be after start")


def history_window(
    start: datetime | None,
    end: datetime | None,
    granularity: str,
    now: datetime,
    *,
    raw_since: datetime | None = None,
    per_load: bool = False,
) -> tuple[datetime, datetime, timedelta]:
    """[start, end) and the bucket width for a history request.

    Omitted bounds mean "all stored data": ``end`` defaults to now, ``start``
    to the oldest instant that still fits the bucket cap and, for a read only
    raw samples answer (gridcore.history), that they are still kept for
    (``raw_since``), so an omitted range never fails. An explicit range wider
    than the cap, or reaching raw samples past retention, is refused, naming
    what to change, rather than silently cut.
    """
    width = parse_granularity(granularity or DEFAULT_GRANULARITY)
    checked_range(start, end)
    if end is None:
        end = max(as_utc(now), start + width) if start is not None else as_utc(now)
    if start is None:
        start = end - width * MAX_BUCKETS
        if raw_since is not None and needs_raw(width, per_load=per_load) and raw_since < end:
            start = max(start, raw_since)
    buckets = (end - start) / width
    if buckets > MAX_BUCKETS:
        raise InvalidInput(
            "granularity",
            f"start..end holds {int(buckets)} buckets of {granularity}; at most {MAX_BUCKETS}: "
            "choose a coarser granularity or a shorter range",
        )
    history_source(start, end, width, per_load=per_load, raw_since=raw_since)
    return start, end, width
