"""VENs (Virtual End Nodes: a home or site with a smart panel) and their loads."""

from __future__ import annotations

import enum
import re
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta

from gridcore.errors import InvalidInput
from gridcore.limits import VEN_ID_LENGTH
from gridcore.targeting import Targets, granted, validate_targets

DEFAULT_OFFLINE_AFTER = timedelta(seconds=60)

# Ids travel in MQTT topics (ven/cmd/{venId}), so they must not contain topic
# separators or wildcards; AWS IoT thing names allow [a-zA-Z0-9:_-], we add '.'.
# Unanchored, for the edges' validators to anchor in their own regex dialect.
VEN_ID_SHAPE = rf"[A-Za-z0-9][A-Za-z0-9_.:-]{{0,{VEN_ID_LENGTH - 1}}}"
_VEN_ID = re.compile(rf"^{VEN_ID_SHAPE}\Z")


def validate_ven_id(ven_id: str) -> str:
    if not isinstance(ven_id, str) or not _VEN_ID.match(ven_id):
        raise InvalidInput(
            "venId",
            f"must be 1-{VEN_ID_LENGTH} characters of letters, digits, '_', '-', '.', ':' "
            "(no '/', '+', '#' or spaces, since it is part of MQTT topics)",
        )
    return ven_id


class Connectivity(enum.StrEnum):
    ONLINE = "online"
    OFFLINE = "offline"


@dataclass(frozen=True, slots=True)
class Location:
    lat: float
    lon: float

    def __post_init__(self) -> None:
        if not -90.0 <= self.lat <= 90.0:
            raise InvalidInput("location.lat", "must be between -90 and 90")
        if not -180.0 <= self.lon <= 180.0:
            raise InvalidInput("location.lon", "must be between -180 and 180")


class LoadType(enum.StrEnum):
    """Load types the documents name; VENs may report others, kept as strings."""

    EV_CHARGER = "ev"
    WATER_HEATER = "water_heater"
    DRYER = "dryer"
    RANGE = "range"
    OUTLETS = "outlets"
    LIGHTING = "lighting"
    HVAC = "hvac"
    REFRIGERATOR = "refrigerator"
    POOL_PUMP = "pool_pump"
    SOLAR = "solar"
    BATTERY = "battery"
    OTHER = "other"


@dataclass(frozen=True, slots=True)
class Load:
    """A controllable device or circuit of a VEN, as last configured or reported."""

    id: str
    type: str = LoadType.OTHER.value
    name: str | None = None
    capacity_kw: float | None = None
    shed_capability_kw: float = 0.0
    current_power_kw: float = 0.0
    priority: int | None = None
    critical: bool = False
    enabled: bool = True
    breaker_amps: float | None = None
    # Granted by the operator (gridcore.targeting): an event targeting one of
    # them reaches this load's VEN. Configuration only: telemetry never sets them.
    targets: Targets = ()

    def __post_init__(self) -> None:
        if self.targets:
            object.__setattr__(self, "targets", validate_targets(self.targets, "targets"))

    @property
    def effective_capacity_kw(self) -> float:
        """The guide's fallback: with no capacity configured, usage plus shed
        capability is an upper bound the dashboard can still draw."""
        if self.capacity_kw is not None:
            return self.capacity_kw
        return max(self.current_power_kw, 0.0) + self.shed_capability_kw


@dataclass(frozen=True, slots=True)
class Ven:
    id: str
    name: str
    location: Location | None = None
    registered_at: datetime | None = None
    last_seen_at: datetime | None = None
    enabled: bool = True
    loads: tuple[Load, ...] = field(default_factory=tuple)
    # Granted by the operator (a group, a feeder, a postal code: gridcore.targeting);
    # a VEN never grants itself targets (it is registered from telemetry without any).
    targets: Targets = ()

    def __post_init__(self) -> None:
        validate_ven_id(self.id)
        if self.targets:
            object.__setattr__(self, "targets", validate_targets(self.targets, "targets"))

    def granted_targets(self) -> frozenset[str]:
        """Everything an event may target this VEN by: its id, its targets and
        those of its configured loads (:func:`gridcore.targeting.granted`)."""
        return granted(self.id, self.targets, *(load.targets for load in self.loads))

    def connectivity(
        self, now: datetime, offline_after: timedelta = DEFAULT_OFFLINE_AFTER
    ) -> Connectivity:
        return connectivity(self.last_seen_at, now, offline_after)

    def heard_from(self, at: datetime) -> Ven:
        """Heartbeat: telemetry arrived. Out-of-order messages never move it back."""
        if self.last_seen_at is not None and at <= self.last_seen_at:
            return self
        return replace(self, last_seen_at=at)


def connectivity(
    last_seen_at: datetime | None,
    now: datetime,
    offline_after: timedelta = DEFAULT_OFFLINE_AFTER,
) -> Connectivity:
    """Online iff the last heartbeat is at most ``offline_after`` old.

    A heartbeat from the future (clock skew on the VEN) counts as fresh.
    """
    if last_seen_at is None:
        return Connectivity.OFFLINE
    return Connectivity.ONLINE if now - last_seen_at <= offline_after else Connectivity.OFFLINE


def merged_loads(ven: Ven, reported: Sequence[Load]) -> list[Load]:
    """Reported loads (already merged with their configuration) plus loads an
    operator configured that the VEN has not reported yet, in id order."""
    by_id = {load.id: load for load in ven.loads}
    by_id.update({load.id: load for load in reported})
    return [by_id[k] for k in sorted(by_id)]


def available_shed_kw(loads: tuple[Load, ...] | list[Load]) -> float:
    """What a VEN can shed now: shed capability of its enabled, non-critical loads."""
    return sum(
        max(load.shed_capability_kw, 0.0) for load in loads if not load.critical and load.enabled
    )
