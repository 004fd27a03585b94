"""Alerts a VEN raises on ``ven/alerts/{venId}`` (004's future topic:
"critical alerts (overcurrent, offline circuits)").

Rules (docs/decisions.md, "VEN alerts"):

- An alert has a severity (``critical``, ``warning`` or ``info``: read in any
  case, stored lower case), a code naming the condition (``overcurrent``,
  ``circuit_offline``, ``over_temperature``...), optionally the load it is
  about, a message for people and the VEN's structured details.
- Every alert of a valid VEN id is stored, registered or not (audit, as ACKs);
  an alert registers nothing and is no heartbeat (a VEN in trouble may still
  be alive, but telemetry says so, not its alarms).
- A re-delivered alert (same VEN, timestamp, code and load) is stored once.
- Sizes are bounded: a code of 64 characters, a message of 1,000, and the
  whole payload of :data:`MAX_ALERT_BYTES`.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from gridcore.errors import InvalidInput
from gridcore.limits import LOAD_ID_LENGTH
from gridcore.ven import validate_ven_id

ALERT_CODE_LENGTH = 64
ALERT_MESSAGE_LENGTH = 1000
MAX_ALERT_BYTES = 16 * 1024  # an alert is a few hundred bytes; anything larger is a bug


class Severity(enum.StrEnum):
    CRITICAL = "critical"
    WARNING = "warning"
    INFO = "info"


def severity_of(value: str) -> Severity:
    try:
        return Severity(value.strip().lower())
    except ValueError:
        known = ", ".join(s.value for s in Severity)
        raise InvalidInput("severity", f"must be one of {known}, not {value[:40]!r}") from None


def _bounded(field: str, value: str | None, length: int, *, required: bool = False) -> None:
    if value is None:
        if required:
            raise InvalidInput(field, "is required")
        return
    if not isinstance(value, str) or not 0 < len(value) <= length or "\x00" in value:
        raise InvalidInput(field, f"must be 1-{length} characters without NUL")


@dataclass(frozen=True, slots=True)
class VenAlert:
    """One alert as stored. Raises :class:`InvalidInput` when it cannot be."""

    ven_id: str
    timestamp: datetime
    severity: Severity
    code: str
    message: str | None = None
    load_id: str | None = None
    details: Mapping[str, Any] | None = None
    received_at: datetime | None = None  # None: not over the wire

    def __post_init__(self) -> None:
        validate_ven_id(self.ven_id)
        if self.timestamp.tzinfo is None or self.timestamp.utcoffset() is None:
            raise InvalidInput("timestamp", "must be a timezone-aware datetime")
        object.__setattr__(self, "severity", severity_of(str(self.severity)))
        _bounded("code", self.code, ALERT_CODE_LENGTH, required=True)
        _bounded("message", self.message, ALERT_MESSAGE_LENGTH)
        _bounded("loadId", self.load_id, LOAD_ID_LENGTH)

    @property
    def key(self) -> tuple[str, datetime, str, str]:
        """What makes a re-delivery the same alert."""
        return (self.ven_id, self.timestamp, self.code, self.load_id or "")


@dataclass(frozen=True, slots=True)
class AlertFilter:
    """Which alerts a listing answers (None: any)."""

    ven_id: str | None = None
    severity: Severity | None = None
    since: datetime | None = None

    def matches(self, alert: VenAlert) -> bool:
        return (
            (self.ven_id is None or alert.ven_id == self.ven_id)
            and (self.severity is None or alert.severity is self.severity)
            and (self.since is None or alert.timestamp >= self.since)
        )
