"""VEN-side curtailment plan: which circuits to shed, and by how much, to meet a
target, in the priority order of the DR event flow document.

    EV charger 100 %, water heater 100 %, dryer 100 %, electric range 80 %,
    general outlets 70 %, lighting 50 %. Critical loads (HVAC, refrigerator,
    anything flagged critical) are NEVER shed.

Circuits of any other type are not shed either: the documents list what a home
agrees to give up, and gridcore does not guess beyond that list.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass

from gridcore.quantities import to_kw, to_watts
from gridcore.ven import LoadType

# (type, fraction of current draw that may be shed), highest priority first.
SHED_ORDER: tuple[tuple[LoadType, float], ...] = (
    (LoadType.EV_CHARGER, 1.0),
    (LoadType.WATER_HEATER, 1.0),
    (LoadType.DRYER, 1.0),
    (LoadType.RANGE, 0.8),
    (LoadType.OUTLETS, 0.7),
    (LoadType.LIGHTING, 0.5),
)
_RANK = {load_type: rank for rank, (load_type, _) in enumerate(SHED_ORDER)}
_FRACTION = dict(SHED_ORDER)
ALWAYS_CRITICAL = frozenset({LoadType.HVAC, LoadType.REFRIGERATOR})

# Keyword -> type, checked in order, for circuits that report only a name
# ("Main HVAC", "EV Charger"). More specific words come first.
_KEYWORDS: tuple[tuple[str, LoadType], ...] = (
    ("water heater", LoadType.WATER_HEATER),
    ("water_heater", LoadType.WATER_HEATER),
    ("waterheater", LoadType.WATER_HEATER),
    ("ev charger", LoadType.EV_CHARGER),
    ("ev_charger", LoadType.EV_CHARGER),
    ("refrigerator", LoadType.REFRIGERATOR),
    ("fridge", LoadType.REFRIGERATOR),
    ("freezer", LoadType.REFRIGERATOR),
    ("hvac", LoadType.HVAC),
    ("heat pump", LoadType.HVAC),
    ("air condition", LoadType.HVAC),
    ("furnace", LoadType.HVAC),
    ("dryer", LoadType.DRYER),
    ("range", LoadType.RANGE),
    ("oven", LoadType.RANGE),
    ("stove", LoadType.RANGE),
    ("cooktop", LoadType.RANGE),
    ("outlet", LoadType.OUTLETS),
    ("receptacle", LoadType.OUTLETS),
    ("plug", LoadType.OUTLETS),
    ("light", LoadType.LIGHTING),
    ("pool", LoadType.POOL_PUMP),
    ("solar", LoadType.SOLAR),
    ("pv", LoadType.SOLAR),
    ("battery", LoadType.BATTERY),
)
_TYPE_ALIASES = {
    "ev": LoadType.EV_CHARGER,
    "ev_charger": LoadType.EV_CHARGER,
    "evse": LoadType.EV_CHARGER,
    "water_heater": LoadType.WATER_HEATER,
    "waterheater": LoadType.WATER_HEATER,
    "dryer": LoadType.DRYER,
    "range": LoadType.RANGE,
    "oven": LoadType.RANGE,
    "outlets": LoadType.OUTLETS,
    "outlet": LoadType.OUTLETS,
    "lighting": LoadType.LIGHTING,
    "lights": LoadType.LIGHTING,
    "hvac": LoadType.HVAC,
    "refrigerator": LoadType.REFRIGERATOR,
    "fridge": LoadType.REFRIGERATOR,
    "pool_pump": LoadType.POOL_PUMP,
    "solar": LoadType.SOLAR,
    "battery": LoadType.BATTERY,
}


def classify_load(load_type: str | None, name: str | None = None) -> LoadType:
    """The load type from a reported type, else guessed from the circuit name."""
    if load_type:
        known = _TYPE_ALIASES.get(load_type.strip().lower().replace(" ", "_").replace("-", "_"))
        if known is not None:
            return known
    if name:
        lowered = name.lower()
        for word, kind in _KEYWORDS:
            if word in lowered:
                return kind
        if lowered.split()[:1] == ["ev"] or " ev " in f" {lowered} ":
            return LoadType.EV_CHARGER
    return LoadType.OTHER


@dataclass(frozen=True, slots=True)
class Circuit:
    """A circuit as the VEN sees it right now."""

    id: str
    current_kw: float
    name: str | None = None
    type: str | None = None
    breaker_amps: float | None = None
    critical: bool = False
    enabled: bool = True

    @property
    def load_type(self) -> LoadType:
        return classify_load(self.type, self.name)

    @property
    def is_critical(self) -> bool:
        return self.critical or self.load_type in ALWAYS_CRITICAL

    @property
    def sheddable_kw(self) -> float:
        """The most this circuit may give up: its type's fraction of its draw."""
        if self.is_critical or not self.enabled:
            return 0.0
        if not math.isfinite(self.current_kw) or self.current_kw <= 0:
            return 0.0
        return to_kw(to_watts(self.current_kw * _FRACTION.get(self.load_type, 0.0)))


@dataclass(frozen=True, slots=True)
class CircuitCurtailment:
    """One line of `circuits_curtailed` in an ACK.

    VENs send it in one of two shapes: ``{id, name, breaker_amps, original_kw,
    curtailed_kw, final_kw, critical}`` or ``{loadId, name, shedKw}``; the
    fields the short shape lacks are None.
    """

    id: str
    curtailed_kw: float
    name: str | None = None
    breaker_amps: float | None = None
    original_kw: float | None = None
    final_kw: float | None = None
    critical: bool | None = None


@dataclass(frozen=True, slots=True)
class CurtailmentPlan:
    target_kw: float
    circuits: tuple[CircuitCurtailment, ...]

    @property
    def curtailed_kw(self) -> float:
        return to_kw(sum(to_watts(c.curtailed_kw) for c in self.circuits))

    @property
    def shortfall_kw(self) -> float:
        return to_kw(max(to_watts(self.target_kw) - to_watts(self.curtailed_kw), 0))

    @property
    def target_met(self) -> bool:
        return to_watts(self.curtailed_kw) >= to_watts(self.target_kw)


def shed_rank(circuit: Circuit) -> int | None:
    """Position in the shed order, or None when the circuit is never shed."""
    if circuit.is_critical:
        return None
    return _RANK.get(circuit.load_type)


def plan_curtailment(circuits: Iterable[Circuit], target_kw: float) -> CurtailmentPlan:
    """Shed circuits in priority order until ``target_kw`` is met.

    Each circuit gives at most its type's fraction of its current draw, and only
    as much as is still needed, so the last circuit may be shed partially.
    Circuits of equal rank go in id order, so a plan is reproducible.
    """
    if isinstance(target_kw, bool) or not math.isfinite(target_kw) or target_kw < 0:
        raise ValueError("target_kw must be a finite, non-negative number")
    ranked = sorted(
        ((rank, c) for c in circuits if (rank := shed_rank(c)) is not None),
        key=lambda rc: (rc[0], rc[1].id),
    )
    needed = to_watts(target_kw)
    lines: list[CircuitCurtailment] = []
    for _, circuit in ranked:
        if needed <= 0:
            break
        shed = min(to_watts(circuit.sheddable_kw), needed)
        if shed <= 0:
            continue
        needed -= shed
        original = to_watts(circuit.current_kw)
        lines.append(
            CircuitCurtailment(
                id=circuit.id,
                name=circuit.name,
                breaker_amps=circuit.breaker_amps,
                original_kw=to_kw(original),
                curtailed_kw=to_kw(shed),
                final_kw=to_kw(original - shed),
                critical=False,
            )
        )
    return CurtailmentPlan(target_kw=target_kw, circuits=tuple(lines))
