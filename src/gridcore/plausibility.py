"""What gridcore believes of a VEN's report before it stores it.

A report (telemetry, a status, a load snapshot) is refused when:

- it is stamped later than its receive time plus ``max_future_skew``: one
  message stamped 2099 would otherwise be the VEN's newest sample for
  decades, pinning its kW and keeping it "online". Inside the skew it is
  stored as stamped, but the heartbeat goes no further than the receive time
  (:func:`gridcore.timestamps.heard_at`);
- it lists more than ``max_loads`` loads: one 45 KB message registered 3,000.
  A VEN's current loads are those of its newest message, so bounding each
  message bounds them too (docs/decisions.md, "Loads per VEN").

Timestamps before 2000 or after 2100 are refused earlier, when parsed
(:data:`gridcore.timestamps.REPORTED_EARLIEST`).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from gridcore.errors import InvalidInput

# A smart panel has up to ~48 circuits; the largest residential panels have 60
# spaces (NEC 2008 lifted the 42-circuit limit), some with tandem breakers, and
# DR loads may be listed beside the circuits. 128 covers them all, and keeps a
# page of /api/vens small (3,000 loads a VEN made it 11 MB).
DEFAULT_MAX_LOADS_PER_VEN = 128
# VEN clocks are NTP-synchronised; five minutes is generous for one that is not.
DEFAULT_MAX_FUTURE_SKEW = timedelta(seconds=300)


@dataclass(frozen=True, slots=True)
class ReportLimits:
    max_loads: int = DEFAULT_MAX_LOADS_PER_VEN
    max_future_skew: timedelta = DEFAULT_MAX_FUTURE_SKEW

    def check(self, timestamp: datetime, received_at: datetime, loads: int = 0) -> None:
        """Raise :class:`InvalidInput` for a report gridcore does not believe."""
        if timestamp > received_at + self.max_future_skew:
            ahead = (timestamp - received_at).total_seconds()
            raise InvalidInput(
                "timestamp",
                f"{timestamp.isoformat()} is {ahead:.0f} s after the message was received; "
                f"at most {self.max_future_skew.total_seconds():.0f} s of clock skew is accepted",
            )
        if loads > self.max_loads:
            raise InvalidInput(
                "loads", f"{loads} loads is more than the {self.max_loads} a VEN may report"
            )
