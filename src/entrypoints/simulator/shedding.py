"""What a simulated VEN has curtailed, since when, and against which baseline.

Two things can hold a circuit down: the current DR event's plan (from
``gridcore.plan_curtailment``) and per-load shed commands. A circuit shed to
0 kW is switched off (``enabled`` false); a partly shed one is capped at its
plan's ``final_kw``. Solar and battery circuits are never capped.

The baseline for reported shed is the panel's draw just before the first
curtailment and stays fixed until everything is restored: re-planning an
event or a second event on top must not re-measure it from an already
curtailed level, or the reported shed would drift towards zero.

Rebound: a load held down misses energy it still needs - a water heater's
tank cools, an EV is not charged, the laundry waits. When the hold is lifted
(restore, or the event's or shed's time is up) such a load draws that energy
back on top of its normal draw, most at first and decaying exponentially
(:class:`Rebound`): the energy is what it missed (the integral of its natural
draw above its cap over the hold, from the panel's profile, so the same
commands at the same instants give the same rebound) times how much of it
its kind recovers (:data:`RECOVERY`), and the time constant grows with how
long it was held, so that it has faded within 15 to 60 minutes. Loads whose
use is lost rather than deferred (lighting, outlets, cooking) do not rebound.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from entrypoints.simulator.panel import CircuitSpec, Panel
from gridcore.curtailment import Circuit, CircuitCurtailment, CurtailmentPlan, plan_curtailment
from gridcore.quantities import to_kw, to_watts
from gridcore.ven import LoadType

# Share of the missed energy a kind of load draws back after a hold.
RECOVERY: dict[LoadType, float] = {
    LoadType.WATER_HEATER: 1.0,  # the tank is reheated to its set point
    LoadType.EV_CHARGER: 1.0,  # the car still needs its charge
    LoadType.DRYER: 0.8,  # the load of laundry runs later
    LoadType.HVAC: 0.7,  # the house drifted; part of it is made up
    LoadType.REFRIGERATOR: 0.8,
}
REBOUND_TAU_S = (300.0, 1200.0)  # the time constant's bounds: faded (5 tau) in 25-100 min
_HOLD_TO_TAU = 0.25  # tau = a quarter of the hold, within the bounds
_INTEGRATION_STEP_S = 60.0
_INTEGRATION_MAX_STEPS = 2000


@dataclass(frozen=True, slots=True)
class ActiveEvent:
    event_id: str | None
    correlation_id: str | None
    requested_kw: float
    started_at: float  # epoch seconds
    ends_at: float | None  # None: until restored


@dataclass(frozen=True, slots=True)
class LoadShed:
    cap_kw: float
    event_id: str | None
    ends_at: float | None


@dataclass(frozen=True, slots=True)
class Rebound:
    """A load catching up from ``start`` (epoch seconds): ``peak_kw`` above
    its normal draw at first, decaying with time constant ``tau_s``."""

    start: float
    peak_kw: float
    tau_s: float

    def extra_kw(self, at: float) -> float:
        if at < self.start:
            return 0.0
        return self.peak_kw * math.exp(-(at - self.start) / self.tau_s)

    def over(self, at: float) -> bool:
        return at - self.start > 5 * self.tau_s

    def remaining_kwh(self, at: float) -> float:
        return self.extra_kw(at) * self.tau_s / 3600.0


@dataclass(slots=True)
class _Hold:
    """A circuit held at ``cap_kw`` since ``since``, and what it has missed so far."""

    cap_kw: float
    since: float
    first: float
    missed_kwh: float = 0.0


@dataclass(frozen=True, slots=True)
class CircuitReading:
    """One circuit now: what it draws, what it would draw uncurtailed."""

    spec: CircuitSpec
    kw: float
    natural_kw: float
    enabled: bool

    def as_circuit(self, kw: float | None = None) -> Circuit:
        """The domain's view, for planning and for shed capability."""
        return Circuit(
            id=self.spec.id,
            current_kw=self.kw if kw is None else kw,
            name=self.spec.name,
            type=self.spec.type.value,
            breaker_amps=self.spec.breaker_amps,
            critical=self.spec.critical,
        )

    @property
    def shed_capability_kw(self) -> float:
        """What this circuit could give up now, judged on its uncurtailed draw
        (a circuit already shed still reports it, as the documents' example
        of a disabled circuit does), at most the limit the backend configured."""
        sheddable = self.as_circuit(self.natural_kw).sheddable_kw
        limit = self.spec.shed_limit_kw
        return sheddable if limit is None else min(sheddable, limit)


class ShedState:
    """The curtailment state of one VEN. Times are epoch seconds."""

    def __init__(self, panel: Panel | None = None) -> None:
        """``panel``: the home whose loads rebound after a hold (without one,
        nothing rebounds)."""
        self.baseline_kw: float | None = None
        self.event: ActiveEvent | None = None
        self._event_caps: dict[str, float] = {}
        self._load_sheds: dict[str, LoadShed] = {}
        self._panel = panel
        self._holds: dict[str, _Hold] = {}
        self.rebounds: dict[str, Rebound] = {}

    @property
    def active(self) -> bool:
        return self.event is not None or bool(self._load_sheds)

    def readings(
        self, specs: Iterable[CircuitSpec], natural: Mapping[str, float], at: float | None = None
    ) -> list[CircuitReading]:
        """Each circuit at instant ``at`` (rebounds need it): its natural
        draw, plus any rebound (up to its rating), under any cap."""
        result: list[CircuitReading] = []
        for spec in specs:
            if not spec.enabled:  # switched off by the backend's configuration
                result.append(CircuitReading(spec, 0.0, 0.0, False))
                continue
            free = natural[spec.id]
            rebound = self.rebounds.get(spec.id)
            if rebound is not None and at is not None:
                if rebound.over(at):
                    del self.rebounds[spec.id]
                else:
                    free = max(free, min(free + rebound.extra_kw(at), spec.rated_kw))
            kw = free
            cap = self._cap(spec.id)
            if cap is not None and kw > 0:
                kw = min(kw, cap)
            result.append(CircuitReading(spec, kw, free, cap is None or cap > 0))
        return result

    def shed_kw(self, used_kw: float) -> float:
        """Reported shed: baseline minus what the panel draws now, never below 0."""
        if self.baseline_kw is None:
            return 0.0
        return to_kw(max(to_watts(self.baseline_kw) - to_watts(used_kw), 0))

    def start_event(
        self,
        readings: list[CircuitReading],
        target_kw: float,
        *,
        event_id: str | None,
        correlation_id: str | None,
        now: float,
        duration_s: float | None,
    ) -> CurtailmentPlan:
        """Plan and apply ``target_kw``, replacing any earlier event plan.

        The plan starts from the circuits as they would be without an event
        (per-load sheds still count), so a re-plan gets the new target, not
        the old one plus the new one."""
        self._fix_baseline(readings)
        live = [r.as_circuit(self._load_capped(r)) for r in readings]
        plan = plan_curtailment(live, target_kw)
        self._event_caps = {line.id: line.final_kw or 0.0 for line in plan.circuits}
        ends_at = now + duration_s if duration_s is not None else None
        self.event = ActiveEvent(event_id, correlation_id, target_kw, now, ends_at)
        self._track(now)
        return plan

    def shed_load(
        self,
        reading: CircuitReading,
        shed_kw: float | None,
        *,
        all_readings: list[CircuitReading],
        event_id: str | None,
        now: float,
        duration_s: float | None,
    ) -> CircuitCurtailment:
        """Hold one circuit ``shed_kw`` below its present draw (all of it when
        ``shed_kw`` is None) until restored or ``duration_s`` has passed."""
        self._fix_baseline(all_readings)
        original = to_watts(max(reading.kw, 0.0))
        wanted = original if shed_kw is None else to_watts(shed_kw)
        curtailed = max(min(wanted, original), 0)
        final = original - curtailed
        ends_at = now + duration_s if duration_s is not None else None
        self._load_sheds[reading.spec.id] = LoadShed(to_kw(final), event_id, ends_at)
        self._track(now)
        return CircuitCurtailment(
            id=reading.spec.id,
            name=reading.spec.name,
            breaker_amps=reading.spec.breaker_amps,
            original_kw=to_kw(original),
            curtailed_kw=to_kw(curtailed),
            final_kw=to_kw(final),
            critical=reading.spec.critical,
        )

    def restore(self, event_id: str | None = None, *, now: float | None = None) -> None:
        """Restore everything - unless ``event_id`` names an event other than
        the current one (a late restore of an earlier event): then only the
        per-load sheds made for that event are lifted. ``now``: when, for the
        loads' rebound (without it, lifted loads do not rebound)."""
        current = self.event.event_id if self.event is not None else None
        if event_id is not None and self.event is not None and current != event_id:
            self._load_sheds = {k: v for k, v in self._load_sheds.items() if v.event_id != event_id}
        else:
            self.event = None
            self._event_caps = {}
            self._load_sheds = {}
        if now is None:
            self._holds = {k: v for k, v in self._holds.items() if self._cap(k) is not None}
        else:
            self._track(now)
        self._settle()

    def next_expiry(self) -> float | None:
        times = [s.ends_at for s in self._load_sheds.values() if s.ends_at is not None]
        if self.event is not None and self.event.ends_at is not None:
            times.append(self.event.ends_at)
        return min(times, default=None)

    def expire(self, now: float) -> ActiveEvent | None:
        """Lift what has run its duration; returns the event if it just ended."""
        self._load_sheds = {
            k: v for k, v in self._load_sheds.items() if v.ends_at is None or v.ends_at > now
        }
        ended: ActiveEvent | None = None
        if self.event is not None and self.event.ends_at is not None and self.event.ends_at <= now:
            ended, self.event, self._event_caps = self.event, None, {}
        self._track(now)
        self._settle()
        return ended

    def _cap(self, circuit_id: str) -> float | None:
        caps = (self._event_caps.get(circuit_id), self._load_cap(circuit_id))
        return min((c for c in caps if c is not None), default=None)

    def _load_cap(self, circuit_id: str) -> float | None:
        shed = self._load_sheds.get(circuit_id)
        return shed.cap_kw if shed is not None else None

    def _load_capped(self, reading: CircuitReading) -> float:
        cap = self._load_cap(reading.spec.id)
        if cap is None or reading.natural_kw <= 0:
            return reading.natural_kw
        return min(reading.natural_kw, cap)

    def _track(self, now: float) -> None:
        """Follow each circuit's cap from ``now``: a changed cap closes the
        hold's stretch at the old cap, a lifted one starts its rebound."""
        held = set(self._event_caps) | set(self._load_sheds)
        for circuit_id in sorted(held | set(self._holds)):
            cap = self._cap(circuit_id) if circuit_id in held else None
            hold = self._holds.get(circuit_id)
            if hold is not None and cap == hold.cap_kw:
                continue
            if hold is not None:
                hold.missed_kwh += self._missed_kwh(circuit_id, hold.cap_kw, hold.since, now)
                hold.since = now
            if cap is None:
                if hold is not None:
                    del self._holds[circuit_id]
                    self._rebound(circuit_id, hold, now)
            elif hold is None:
                self._holds[circuit_id] = _Hold(cap, now, now)
            else:
                hold.cap_kw = cap

    def _missed_kwh(self, circuit_id: str, cap_kw: float, start: float, end: float) -> float:
        """kWh the circuit would have drawn above ``cap_kw`` from ``start`` to ``end``."""
        spec = self._panel.circuit(circuit_id) if self._panel is not None else None
        if self._panel is None or spec is None or end <= start:
            return 0.0
        steps = min(max(math.ceil((end - start) / _INTEGRATION_STEP_S), 1), _INTEGRATION_MAX_STEPS)
        dt = (end - start) / steps
        above = sum(
            max(self._panel.natural_kw(spec, start + (k + 0.5) * dt) - cap_kw, 0.0)
            for k in range(steps)
        )
        return above * dt / 3600.0

    def _rebound(self, circuit_id: str, hold: _Hold, now: float) -> None:
        spec = self._panel.circuit(circuit_id) if self._panel is not None else None
        recovery = RECOVERY.get(spec.type, 0.0) if spec is not None else 0.0
        energy_kwh = hold.missed_kwh * recovery
        previous = self.rebounds.pop(circuit_id, None)
        if previous is not None and not previous.over(now):
            energy_kwh += previous.remaining_kwh(now)
        if spec is None or energy_kwh <= 0 or spec.rated_kw <= 0:
            return
        low, high = REBOUND_TAU_S
        # Long enough for the energy to fit under the rating, within the bounds.
        tau = max((now - hold.first) * _HOLD_TO_TAU, energy_kwh * 3600.0 / spec.rated_kw)
        tau = min(max(tau, low), high)
        self.rebounds[circuit_id] = Rebound(now, energy_kwh * 3600.0 / tau, tau)

    def _fix_baseline(self, readings: list[CircuitReading]) -> None:
        if self.baseline_kw is None:
            self.baseline_kw = to_kw(sum(to_watts(r.kw) for r in readings))

    def _settle(self) -> None:
        if not self.active:
            self.baseline_kw = None
