"""A simulated VEN's electrical panel: a 240 V panel of 100, 150 or 200 A with
the circuits of an ordinary home, each drawing what its daily profile says at
a given instant, optionally with rooftop solar (negative power) and a home
battery whose state of charge moves with what it charges and discharges.

Everything about a panel - its size, which appliances it has, their ratings,
and the noise on their draw - follows from one integer seed, so a fleet built
with the same ``--seed`` is the same fleet.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from entrypoints.simulator.profiles import (
    PROFILES,
    SECONDS_PER_DAY,
    derive,
    is_weekend,
    local_hour,
    solar_output,
    spread,
    unit,
)
from gridcore.curtailment import SHED_ORDER
from gridcore.ven import LoadType

PANEL_VOLTAGE = 240
# Loads outside the shed order (critical ones, solar, battery) report this priority.
NEVER_SHED_PRIORITY = len(SHED_ORDER) + 1
_SHED_PRIORITY = {load_type: rank + 1 for rank, (load_type, _) in enumerate(SHED_ORDER)}
# Breakers for the EV chargers a home may have: 32, 40 and 48 A continuous draw.
_EV_OPTIONS = ((7.7, 40), (9.6, 50), (11.5, 60))
_EV_CHANCE = {100: 0.25, 150: 0.55, 200: 0.8}


@dataclass(frozen=True, slots=True)
class CircuitSpec:
    """One breaker of the panel and the appliance behind it."""

    id: str
    name: str
    type: LoadType
    breaker_amps: int
    rated_kw: float
    critical: bool = False
    # What the backend configured (ven/config/{venId}); the panel's own otherwise.
    enabled: bool = True
    configured_priority: int | None = None
    shed_limit_kw: float | None = None

    @property
    def priority(self) -> int:
        """Position in the shed order of the DR event flow (1 = shed first),
        unless the backend configured another."""
        if self.configured_priority is not None:
            return self.configured_priority
        if self.critical:
            return NEVER_SHED_PRIORITY
        return _SHED_PRIORITY.get(self.type, NEVER_SHED_PRIORITY)


@dataclass(slots=True)
class Battery:
    """A home battery. Positive kW charges it, negative discharges it; it
    never goes above 100 % nor below its reserve by discharging."""

    capacity_kwh: float
    max_kw: float
    soc: float  # percent
    reserve: float = 10.0

    def step(self, wanted_kw: float, dt_s: float) -> float:
        """Run at ``wanted_kw`` for ``dt_s`` seconds as far as power and
        charge allow; returns the kW actually flowing and updates the SOC."""
        kw = max(-self.max_kw, min(self.max_kw, wanted_kw))
        hours = max(dt_s, 0.0) / 3600.0
        room_kwh = (100.0 - self.soc) / 100.0 * self.capacity_kwh
        stored_kwh = max(self.soc - self.reserve, 0.0) / 100.0 * self.capacity_kwh
        if hours > 0:
            kw = min(kw, room_kwh / hours) if kw > 0 else max(kw, -stored_kwh / hours)
        elif (kw > 0 and room_kwh <= 0) or (kw < 0 and stored_kwh <= 0):
            kw = 0.0
        self.soc = min(max(self.soc + kw * hours / self.capacity_kwh * 100.0, 0.0), 100.0)
        return kw

    def wanted_kw(self, hour: float, net_kw: float) -> float:
        """The home's battery policy: soak up solar export around midday, top
        up off-peak at night, and cover the evening peak."""
        if 9.0 <= hour < 16.0:
            return max(-net_kw, 0.0)
        if 1.0 <= hour < 5.0:
            return 0.4 * self.max_kw
        if 17.0 <= hour < 22.0:
            return -max(net_kw, 0.0)
        return 0.0


@dataclass(slots=True)
class Panel:
    """The panel of one VEN. :meth:`read` gives every circuit's natural draw
    (what it would draw with no DR curtailment) at an instant."""

    seed: int
    amperage: int
    circuits: tuple[CircuitSpec, ...]
    battery: Battery | None = None
    hour_shift: float = 0.0  # this household's habits, hours later (+) or earlier (-)
    utc_offset_s: float = 0.0
    voltage: int = PANEL_VOLTAGE
    _last_read: float | None = field(default=None, repr=False)

    _seeds: dict[str, int] = field(default_factory=dict, repr=False)

    @property
    def max_kw(self) -> float:
        return self.amperage * self.voltage / 1000.0

    def circuit(self, circuit_id: str) -> CircuitSpec | None:
        return next((c for c in self.circuits if c.id == circuit_id), None)

    def habits(self, epoch: float) -> tuple[float, int, bool]:
        """The household's clock at ``epoch``: (hour of its day, local day
        number, weekend day or not), its habits' shift included."""
        shifted = epoch + self.utc_offset_s + self.hour_shift * 3600.0
        day = int(shifted // SECONDS_PER_DAY)
        return (shifted % SECONDS_PER_DAY) / 3600.0, day, is_weekend(day)

    def _seed(self, spec: CircuitSpec) -> int:
        circuit_seed = self._seeds.get(spec.id)
        if circuit_seed is None:
            circuit_seed = self._seeds[spec.id] = derive(self.seed, spec.id)
        return circuit_seed

    def natural_kw(self, spec: CircuitSpec, epoch: float) -> float:
        """What a load (not the battery) draws at ``epoch`` without curtailment:
        a pure function of the seed and the instant."""
        return self._natural(spec, epoch, self.habits(epoch))

    def _natural(self, spec: CircuitSpec, epoch: float, clock: tuple[float, int, bool]) -> float:
        if spec.type is LoadType.SOLAR:  # the sun keeps no habits: plain local time
            sun = local_hour(epoch, self.utc_offset_s)
            return -solar_output(self._seed(spec), spec.rated_kw, epoch, sun)
        if spec.type is LoadType.BATTERY:
            return 0.0
        hour, day, weekend = clock
        return PROFILES[spec.type].draw(
            self._seed(spec), spec.rated_kw, epoch, hour, day=day, weekend=weekend
        )

    def read(self, epoch: float) -> dict[str, float]:
        """kW per circuit id at ``epoch`` (seconds): solar negative, battery
        positive when charging. Steps the battery by the time since the
        previous read, so reads are expected in time order."""
        clock = self.habits(epoch)
        draws: dict[str, float] = {}
        battery_id: str | None = None
        for spec in self.circuits:
            if spec.type is LoadType.BATTERY:
                battery_id = spec.id
            else:
                draws[spec.id] = self._natural(spec, epoch, clock)
        hour = clock[0]
        if self.battery is not None and battery_id is not None:
            dt = 0.0 if self._last_read is None else min(epoch - self._last_read, 3600.0)
            wanted = self.battery.wanted_kw(hour, sum(draws.values()))
            draws[battery_id] = self.battery.step(wanted, dt)
        self._last_read = epoch
        return draws


def generate_panel(seed: int, index: int, utc_offset_s: float = 0.0) -> Panel:
    """The panel of VEN number ``index`` in a fleet built from ``seed``."""
    ven_seed = derive(seed, "ven", index)

    def pick(*keys: object) -> float:
        return unit(ven_seed, *keys)

    def between(low: float, high: float, *keys: object) -> float:
        return round(spread(ven_seed, low, high, *keys), 2)

    size = pick("panel")
    amperage = 100 if size < 0.2 else 150 if size < 0.5 else 200
    hvac_kw = between(2.5, 5.0, "hvac")
    specs: list[tuple[str, LoadType, int, float, bool]] = [
        ("Main HVAC", LoadType.HVAC, 30 if hvac_kw <= 4.0 else 40, hvac_kw, True),
        ("Refrigerator", LoadType.REFRIGERATOR, 15, between(0.15, 0.3, "fridge"), True),
        ("Water Heater", LoadType.WATER_HEATER, 30, between(3.8, 5.5, "water"), False),
    ]
    if pick("ev") < _EV_CHANCE[amperage]:
        ev_kw, ev_amps = _EV_OPTIONS[int(pick("ev-size") * len(_EV_OPTIONS))]
        specs.append(("EV Charger", LoadType.EV_CHARGER, ev_amps, ev_kw, False))
    range_kw = between(8.0, 12.0, "range")
    specs += [
        ("Dryer", LoadType.DRYER, 30, between(4.5, 5.6, "dryer"), False),
        ("Electric Range", LoadType.RANGE, 40 if range_kw < 10 else 50, range_kw, False),
        ("Lighting", LoadType.LIGHTING, 15, between(0.6, 1.5, "lighting"), False),
        ("General Outlets", LoadType.OUTLETS, 20, between(1.2, 2.0, "outlets"), False),
        ("Kitchen Outlets", LoadType.OUTLETS, 20, between(1.5, 2.4, "kitchen"), False),
    ]
    has_solar = pick("solar") < 0.35
    if has_solar:
        specs.append(("Solar PV", LoadType.SOLAR, 40, between(3.0, 8.0, "solar-kw"), False))
    battery: Battery | None = None
    if pick("battery") < (0.5 if has_solar else 0.1):
        battery = Battery(capacity_kwh=13.5, max_kw=5.0, soc=between(30.0, 90.0, "soc"))
        specs.append(("Battery", LoadType.BATTERY, 30, battery.max_kw, False))
    circuits = tuple(
        CircuitSpec(f"circuit_{n}", name, load_type, amps, kw, critical)
        for n, (name, load_type, amps, kw, critical) in enumerate(specs, start=1)
    )
    return Panel(
        seed=ven_seed,
        amperage=amperage,
        circuits=circuits,
        battery=battery,
        hour_shift=between(-1.0, 1.0, "habits"),
        utc_offset_s=utc_offset_s,
    )
