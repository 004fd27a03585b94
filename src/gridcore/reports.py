"""What VENs report besides telemetry: status transitions (``ven_statuses``)
and load snapshots (``ven/loads/{venId}``, ``load_snapshots``).

Rules (docs/decisions.md, "Status messages and load snapshots"):

- Both are stored for every VEN id that is valid, registered or not (audit,
  as ACKs); neither registers a VEN: auto-registration is telemetry's.
- Both count as a heartbeat of a registered VEN (its last_seen advances to the
  report's timestamp, never backwards nor past the time it was received),
  except a status that says the VEN is gone (``offline``): that is typically
  the broker's last will for a dead connection, not a sign of life.
- A snapshot's loads are stored and readable; the VEN's current loads stay
  those of its newest telemetry (which carries the same loads every 5 s).
- A re-delivered report (same VEN, timestamp and status; same VEN, timestamp
  and load) is stored once.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from gridcore.errors import InvalidInput
from gridcore.limits import LOAD_ID_LENGTH, VEN_STATUS_LENGTH
from gridcore.telemetry import LoadSample
from gridcore.timestamps import heard_at
from gridcore.ven import validate_ven_id

# Statuses that announce the VEN is gone: recorded, but not a heartbeat.
GONE_STATUSES = frozenset({"offline", "disconnected", "lost"})


def _check_timestamp(at: datetime) -> None:
    if not isinstance(at, datetime) or at.tzinfo is None or at.utcoffset() is None:
        raise InvalidInput("timestamp", "must be a timezone-aware datetime")


@dataclass(frozen=True, slots=True)
class VenStatusReport:
    """A status message from a VEN (``online``, ``offline``, ...), with the
    VEN's structured details. Raises :class:`InvalidInput` when it cannot be
    stored: an invalid VEN id, a naive timestamp, a status that is empty or
    longer than 32 characters."""

    ven_id: str
    status: str
    timestamp: datetime
    details: Mapping[str, Any] | None = None
    received_at: datetime | None = None  # None: not over the wire

    def __post_init__(self) -> None:
        validate_ven_id(self.ven_id)
        _check_timestamp(self.timestamp)
        if not isinstance(self.status, str) or not 0 < len(self.status) <= VEN_STATUS_LENGTH:
            raise InvalidInput("status", f"must be 1-{VEN_STATUS_LENGTH} characters")
        if "\x00" in self.status:
            raise InvalidInput("status", "must not contain NUL")

    @property
    def heard_at(self) -> datetime:
        return heard_at(self.timestamp, self.received_at)

    @property
    def is_heartbeat(self) -> bool:
        """Whether this report shows the VEN alive (see the module docstring)."""
        return self.status.strip().lower() not in GONE_STATUSES


@dataclass(frozen=True, slots=True)
class LoadSnapshot:
    """One ``ven/loads/{venId}`` message: every load of a VEN at one time.
    ``raw_loads`` keeps each load's entry as the VEN sent it (unknown fields
    included), by load id. Loads are unique by id (a repeated id: the later
    line wins). Raises :class:`InvalidInput` for an invalid VEN or load id or
    a naive timestamp."""

    ven_id: str
    timestamp: datetime
    loads: tuple[LoadSample, ...] = ()
    raw_loads: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    received_at: datetime | None = None  # None: not over the wire

    def __post_init__(self) -> None:
        validate_ven_id(self.ven_id)
        _check_timestamp(self.timestamp)
        unique: dict[str, LoadSample] = {}
        for load in self.loads:
            load_id = load.load_id
            if (
                not isinstance(load_id, str)
                or not 0 < len(load_id) <= LOAD_ID_LENGTH
                or "\x00" in load_id
            ):
                raise InvalidInput("loadId", f"must be 1-{LOAD_ID_LENGTH} characters")
            unique[load_id] = load
        if len(unique) != len(self.loads):
            object.__setattr__(self, "loads", tuple(unique.values()))

    @property
    def heard_at(self) -> datetime:
        return heard_at(self.timestamp, self.received_at)
