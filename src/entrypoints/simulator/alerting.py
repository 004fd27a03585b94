"""The alerts a simulated VEN raises on ``ven/alerts/{venId}`` (004's future
topic: "critical alerts (overcurrent, offline circuits)"), from what its
panel reads:

- ``overcurrent``: a circuit drawing more than 80 % of its breaker's rating
  (the continuous-load rule a breaker is sized by): ``warning``; at or over
  the rating itself, ``critical`` (a real breaker would trip).
- ``battery_low``: the home battery at or under its reserve: ``info``.

Bounded: one alert per condition and circuit per :data:`COOLDOWN_S`, and at
most :data:`MAX_PER_HOUR` alerts a VEN in any hour, so a VEN stuck in a
condition does not flood the topic.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Sequence

from entrypoints.simulator import payloads
from entrypoints.simulator.panel import Panel
from entrypoints.simulator.shedding import CircuitReading

CONTINUOUS_SHARE = 0.8
COOLDOWN_S = 600.0
MAX_PER_HOUR = 6


class AlertWatch:
    """What one VEN has raised lately (for the bounds above)."""

    def __init__(self, ven_id: str) -> None:
        self.ven_id = ven_id
        self._last: dict[tuple[str, str], float] = {}  # (code, load) -> when
        self._sent: deque[float] = deque()

    def check(
        self, panel: Panel, readings: Sequence[CircuitReading], now: float, stamp: float
    ) -> list[payloads.JsonObject]:
        """The alerts to publish at epoch ``now`` (``stamp``: the timestamp sent)."""
        found: list[payloads.JsonObject] = []
        for r in readings:
            breaker = r.spec.breaker_amps
            amps = abs(r.kw) * 1000.0 / panel.voltage
            if breaker > 0 and amps > CONTINUOUS_SHARE * breaker:
                severity = "critical" if amps >= breaker else "warning"
                found.append(
                    payloads.alert(
                        self.ven_id, stamp, severity, "overcurrent",
                        f"{r.spec.name} draws {amps:.1f} A on a {breaker} A breaker",
                        load_id=r.spec.id,
                        details={"currentAmps": round(amps, 2), "breakerAmps": breaker},
                    )
                )  # fmt: skip
        battery = panel.battery
        if battery is not None and battery.soc <= battery.reserve:
            found.append(
                payloads.alert(
                    self.ven_id, stamp, "info", "battery_low",
                    f"battery at {battery.soc:.0f} %, its reserve",
                    details={"batterySOC": round(battery.soc, 1)},
                )
            )  # fmt: skip
        return [a for a in found if self._admit(a, now)]

    def _admit(self, alert: payloads.JsonObject, now: float) -> bool:
        while self._sent and self._sent[0] <= now - 3600.0:
            self._sent.popleft()
        key = (str(alert["code"]), str(alert.get("loadId") or ""))
        last = self._last.get(key)
        if (last is not None and now - last < COOLDOWN_S) or len(self._sent) >= MAX_PER_HOUR:
            return False
        self._last[key] = now
        self._sent.append(now)
        return True
