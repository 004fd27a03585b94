"""Telemetry as gridcore stores and reads it: one sample per VEN per timestamp
(panel level) with one line per load/circuit, and the read models built from it."""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Generic, NamedTuple, TypeVar

from gridcore.errors import InvalidInput
from gridcore.timestamps import heard_at

T = TypeVar("T")


class LoadSample(NamedTuple):
    """A load/circuit as reported in one telemetry message (circuits and loads
    of the payload merged by id).

    A named tuple rather than a frozen dataclass: ingest builds ten of these
    for every message, and a frozen dataclass costs ten times as much to
    construct (one ``object.__setattr__`` per field); the fields are in the
    order of a load row's columns, so that a store may write one as it is.
    Like any tuple it compares equal to a plain tuple of the same values."""

    load_id: str
    name: str | None = None
    type: str | None = None
    capacity_kw: float | None = None
    current_power_kw: float | None = None
    shed_capability_kw: float | None = None
    enabled: bool | None = None
    priority: int | None = None
    critical: bool | None = None
    breaker_amps: float | None = None
    current_amps: float | None = None


@dataclass(frozen=True, slots=True)
class TelemetrySample:
    """One ``volttron/metering`` message. ``raw_payload`` is the JSON text as
    received, unknown fields included, so nothing a VEN sent is lost."""

    ven_id: str
    timestamp: datetime
    used_power_kw: float | None = None
    shed_power_kw: float | None = None
    requested_reduction_kw: float | None = None
    event_id: str | None = None
    baseline_power_kw: float | None = None
    battery_soc: float | None = None
    panel_amperage_rating: float | None = None
    panel_voltage: float | None = None
    panel_max_kw: float | None = None
    current_amps: float | None = None
    panel_utilization_percent: float | None = None
    loads: tuple[LoadSample, ...] = field(default_factory=tuple)
    raw_payload: str | None = None
    # When gridcore received it (None: not over the wire). The heartbeat never
    # goes past it, whatever the VEN's clock says (``heard_at``).
    received_at: datetime | None = None

    @property
    def heard_at(self) -> datetime:
        return heard_at(self.timestamp, self.received_at)


@dataclass(frozen=True, slots=True)
class LatestPanel:
    """The panel-level part of a VEN's newest message, which the store keeps
    beside the VEN: enough for the VEN list, without the payload or the loads."""

    ven_id: str
    timestamp: datetime
    used_power_kw: float | None = None
    shed_power_kw: float | None = None
    requested_reduction_kw: float | None = None
    event_id: str | None = None

    @classmethod
    def of(cls, sample: TelemetrySample) -> LatestPanel:
        return cls(
            sample.ven_id,
            sample.timestamp,
            sample.used_power_kw,
            sample.shed_power_kw,
            sample.requested_reduction_kw,
            sample.event_id,
        )


@dataclass(frozen=True, slots=True)
class NetworkStats:
    ven_count: int
    online_vens: int
    controllable_power_kw: float
    potential_load_reduction_kw: float
    household_usage_kw: float
    average_house_power: float | None
    # What the dashboard's cards add (gridcore.network, gridcore.energy):
    current_load_reduction_kw: float  # shedPowerKw of the current readings
    network_efficiency: float | None  # % delivered of the latest dispatched event
    total_house_power_today: float  # kWh used since 00:00 UTC: an energy, not a power


@dataclass(frozen=True, slots=True)
class LoadTypeStats:
    type: str
    total_capacity_kw: float
    total_shed_capability_kw: float
    current_usage_kw: float


@dataclass(frozen=True, slots=True)
class HistoryPoint:
    timestamp: datetime
    used_power_kw: float
    shed_power_kw: float
    event_id: str | None = None
    requested_reduction_kw: float | None = None


@dataclass(frozen=True, slots=True)
class CircuitSnapshot:
    timestamp: datetime
    load_id: str
    name: str | None
    current_power_kw: float | None
    shed_capability_kw: float | None
    enabled: bool | None
    type: str | None = None
    capacity_kw: float | None = None
    priority: int | None = None


@dataclass(frozen=True, slots=True)
class Page(Generic[T]):
    """A bounded slice of a longer result, with the total it was cut from."""

    total_count: int
    items: tuple[T, ...]


@dataclass(frozen=True, slots=True)
class DeadLetter:
    """A message gridcore could not accept: kept with the reason, never dropped."""

    topic: str
    payload: bytes
    reason: str
    received_at: datetime


_GRANULARITY = re.compile(r"^([1-9][0-9]{0,5})([smh])$")
_UNIT = {"s": 1, "m": 60, "h": 3600}
DEFAULT_GRANULARITY = "5m"
MAX_BUCKETS = 10_000
# No list a store returns is longer than this, whatever a caller asks for.
MAX_PAGE_SIZE = 1000


# Circuit snapshots per answer: the dashboard's circuit dialog asks for 5,000
# (a day of one circuit at one sample a 17 s), which the original served.
MAX_SNAPSHOT_PAGE = 5000


def page_bounds(offset: int, limit: int) -> tuple[int, int]:
    """``offset`` and ``limit`` clamped to what a store will serve."""
    return max(offset, 0), min(max(limit, 0), MAX_PAGE_SIZE)


def check_history_range(start: datetime, end: datetime, width: timedelta) -> None:
    """Buckets must be whole seconds and at most ``MAX_BUCKETS`` of them."""
    seconds = width.total_seconds()
    if seconds < 1 or seconds != int(seconds):
        raise InvalidInput("granularity", "must be a whole number of seconds, at least 1")
    if end > start and (end - start) / width > MAX_BUCKETS:
        raise InvalidInput(
            "granularity", f"too fine for this range: more than {MAX_BUCKETS} buckets"
        )


def parse_granularity(text: str) -> timedelta:
    """``Ns``, ``Nm`` or ``Nh`` (the guide's suffixes), e.g. ``30s``, ``5m``, ``1h``."""
    match = _GRANULARITY.match(text.strip()) if isinstance(text, str) else None
    if match is None:
        raise InvalidInput(
            "granularity", f"must be a positive whole number followed by s, m or h; got {text!r}"
        )
    seconds = int(match.group(1)) * _UNIT[match.group(2)]
    if seconds > 7 * 24 * 3600:
        raise InvalidInput("granularity", "must be at most one week (168h)")
    return timedelta(seconds=seconds)


def bucket_start(at: datetime, width: timedelta, origin: datetime) -> datetime:
    """The start of the bucket holding ``at`` (buckets aligned to ``origin``)."""
    step = int(width.total_seconds())
    offset = math.floor((at - origin).total_seconds() / step) * step
    return origin + timedelta(seconds=offset)
