"""How long gridcore keeps what VENs send, and which UTC days storage must be
ready for (docs/decisions.md, "Telemetry partitions and retention").

Time is cut into UTC days: a day is kept whole or dropped whole, so that
storage can drop a day as one unit (a PostgreSQL partition) instead of
deleting rows one by one. A table kept ``keep_days`` days holds today and the
``keep_days`` full days before it; a day whose end is older than that goes.

- Raw 5-second telemetry and its load rows, VEN status messages and load
  snapshots: ``raw_days`` (default 35, enough for the 10-in-10 and high-X-of-Y
  baselines' look-back of weekdays; history beyond it reads ``ven_intervals``).
  Dead letters (what VENs sent that could not be stored) and VEN alerts too:
  evidence for a fault being chased, not for settlement.
- ACKs: ``ack_days`` (default 400): they are settlement evidence, kept for a
  programme year and its dispute window. 0 keeps them for ever.
- The interval roll-up, daily energy and event performance are not covered:
  they are what history and settlement read for years.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from enum import Enum

DEFAULT_RAW_RETENTION_DAYS = 35
DEFAULT_ACK_RETENTION_DAYS = 400
# Days made ready ahead of today: the worker may be down over a weekend
# without rows piling into the catch-all.
DEFAULT_DAYS_AHEAD = 3

ONE_DAY = timedelta(days=1)


class Kept(Enum):
    """What a time-kept table holds, and so which retention applies."""

    RAW = "raw"
    ACKS = "acks"


def day_of(moment: datetime) -> date:
    """The UTC day of an aware datetime."""
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise ValueError(f"naive datetime {moment!r}: timestamps must be timezone-aware")
    return moment.astimezone(UTC).date()


def midnight(day: date) -> datetime:
    """The start of a UTC day."""
    return datetime.combine(day, time(), UTC)


@dataclass(frozen=True, slots=True)
class RetentionPolicy:
    raw_days: int = DEFAULT_RAW_RETENTION_DAYS
    ack_days: int = DEFAULT_ACK_RETENTION_DAYS
    days_ahead: int = DEFAULT_DAYS_AHEAD

    def __post_init__(self) -> None:
        if self.raw_days < 1:
            raise ValueError("raw telemetry must be kept at least 1 day")
        if self.ack_days < 0:
            raise ValueError("ACK retention is a number of days, or 0 for ever")
        if self.days_ahead < 1:
            raise ValueError("at least one day (tomorrow) must be made ready ahead")

    def keep_days(self, kept: Kept) -> int | None:
        """Full days kept before today; None: kept for ever."""
        if kept is Kept.RAW:
            return self.raw_days
        return self.ack_days or None

    def first_kept_day(self, kept: Kept, now: datetime) -> date | None:
        """The oldest UTC day still kept at ``now`` (older days go); None: all kept."""
        days = self.keep_days(kept)
        return None if days is None else day_of(now) - timedelta(days=days)

    def cutoff(self, kept: Kept, now: datetime) -> datetime | None:
        """Rows stamped before this are past retention (None: none are)."""
        first = self.first_kept_day(kept, now)
        return None if first is None else midnight(first)

    def days_to_prepare(self, now: datetime) -> list[date]:
        """Today and the days ahead, each of which storage must have ready."""
        today = day_of(now)
        return [today + timedelta(days=n) for n in range(self.days_ahead + 1)]

    def expired(self, kept: Kept, days: Iterable[date], now: datetime) -> list[date]:
        """Which of ``days`` are wholly past retention, oldest first."""
        first = self.first_kept_day(kept, now)
        return [] if first is None else sorted(d for d in days if d < first)
