"""What a simulated VEN has curtailed, since when, and against which baseline.

Two things can hold a circuit down: the current DR event's plan (from
``gridcore.plan_curtailment``) and per-load shed commands. A circuit shed to
0 kW is switched off (``enabled`` false); a partly shed one is capped at its
plan's ``final_kw``. Solar and battery circuits are never capped.

The baseline for reported shed is the panel's draw just before the first
curtailment and stays fixed until everything is restored: re-planning an
event or a second event on top must not re-measure it from an already
curtailed level, or the reported shed would drift towards zero.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from entrypoints.simulator.panel import CircuitSpec
from gridcore.curtailment import Circuit, CircuitCurtailment, CurtailmentPlan, plan_curtailment
from gridcore.quantities import to_kw, to_watts


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
        of a disabled circuit does)."""
        return self.as_circuit(self.natural_kw).sheddable_kw


class ShedState:
    """The curtailment state of one VEN. Times are epoch seconds."""

    def __init__(self) -> None:
        self.baseline_kw: float | None = None
        self.event: ActiveEvent | None = None
        self._event_caps: dict[str, float] = {}
        self._load_sheds: dict[str, LoadShed] = {}

    @property
    def active(self) -> bool:
        return self.event is not None or bool(self._load_sheds)

    def readings(
        self, specs: Iterable[CircuitSpec], natural: Mapping[str, float]
    ) -> list[CircuitReading]:
        result: list[CircuitReading] = []
        for spec in specs:
            kw = natural[spec.id]
            cap = self._cap(spec.id)
            if cap is not None and kw > 0:
                kw = min(kw, cap)
            result.append(CircuitReading(spec, kw, natural[spec.id], cap is None or cap > 0))
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
        return CircuitCurtailment(
            id=reading.spec.id,
            name=reading.spec.name,
            breaker_amps=reading.spec.breaker_amps,
            original_kw=to_kw(original),
            curtailed_kw=to_kw(curtailed),
            final_kw=to_kw(final),
            critical=reading.spec.critical,
        )

    def restore(self, event_id: str | None = None) -> None:
        """Restore everything - unless ``event_id`` names an event other than
        the current one (a late restore of an earlier event): then only the
        per-load sheds made for that event are lifted."""
        current = self.event.event_id if self.event is not None else None
        if event_id is not None and self.event is not None and current != event_id:
            self._load_sheds = {k: v for k, v in self._load_sheds.items() if v.event_id != event_id}
        else:
            self.event = None
            self._event_caps = {}
            self._load_sheds = {}
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

    def _fix_baseline(self, readings: list[CircuitReading]) -> None:
        if self.baseline_kw is None:
            self.baseline_kw = to_kw(sum(to_watts(r.kw) for r in readings))

    def _settle(self) -> None:
        if not self.active:
            self.baseline_kw = None
