"""How much each kind of household load draws over a day, and the seeded noise
that makes every home and every sample a little different.

Noise is a pure function of (seed, keys): a VEN's circuit draws the same at
the same instant whatever order samples are taken in, so a run is
reproducible for a given ``--seed`` even when scheduling jitters.
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass

from gridcore.ven import LoadType

SECONDS_PER_DAY = 86_400


def unit(seed: int, *keys: object) -> float:
    """A reproducible pseudo-random number in [0, 1) for ``(seed, *keys)``."""
    digest = hashlib.blake2b(repr((seed, keys)).encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") / 2.0**64


def derive(seed: int, *keys: object) -> int:
    """A reproducible 63-bit seed for a part of the fleet (one VEN, one circuit)."""
    digest = hashlib.blake2b(repr((seed, keys)).encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") >> 1


def spread(seed: int, low: float, high: float, *keys: object) -> float:
    """A reproducible number in [low, high)."""
    return low + (high - low) * unit(seed, *keys)


def local_hour(epoch: float, utc_offset_s: float) -> float:
    """Hour of the local day in [0, 24) as a float."""
    return ((epoch + utc_offset_s) % SECONDS_PER_DAY) / 3600.0


@dataclass(frozen=True, slots=True)
class DailyProfile:
    """A load's typical day.

    ``hourly`` holds 24 values, interpolated linearly between hours. For a
    continuous load (lighting, HVAC) the value is the fraction of rated power
    drawn; for a cycling load (EV charger, dryer) it is the chance of being on
    during one ``slot_s``-long slot, and when on the load draws ``on_draw`` of
    its rating: appliances run in blocks, not in 5-second flickers.
    """

    hourly: tuple[float, ...]
    cycling: bool
    slot_s: int
    on_draw: tuple[float, float] = (0.9, 1.0)

    def level(self, hour: float) -> float:
        low = int(hour) % 24
        frac = hour - math.floor(hour)
        return self.hourly[low] * (1 - frac) + self.hourly[(low + 1) % 24] * frac

    def draw(self, seed: int, rated_kw: float, epoch: float, hour: float) -> float:
        """kW drawn at ``epoch`` (``hour`` is its local hour, already shifted)."""
        slot = int(epoch // self.slot_s)
        jitter = 1.0 + 0.04 * (2 * unit(seed, "jitter", int(epoch)) - 1)
        if self.cycling:
            if unit(seed, "on", slot) >= self.level(hour):
                return 0.0
            low, high = self.on_draw
            return rated_kw * spread(seed, low, high, "draw", slot) * jitter
        slow = 1.0 + 0.25 * (2 * unit(seed, "slow", slot) - 1)
        return rated_kw * min(self.level(hour) * slow, 1.0) * jitter


def _p(*values: float) -> tuple[float, ...]:
    if len(values) != 24:
        raise ValueError("a daily profile has one value per hour")
    return values


# Shapes of an ordinary home: morning and evening peaks, EVs charging overnight,
# air conditioning peaking in the late afternoon.
# fmt: off
PROFILES: dict[LoadType, DailyProfile] = {
    LoadType.HVAC: DailyProfile(
        _p(0.30, 0.28, 0.26, 0.25, 0.25, 0.28, 0.35, 0.40, 0.42, 0.45, 0.50, 0.55,
           0.60, 0.65, 0.70, 0.75, 0.75, 0.72, 0.65, 0.55, 0.48, 0.42, 0.38, 0.33),
        cycling=False, slot_s=900,
    ),
    LoadType.REFRIGERATOR: DailyProfile(
        _p(0.35, 0.35, 0.33, 0.33, 0.33, 0.35, 0.40, 0.45, 0.45, 0.45, 0.45, 0.50,
           0.50, 0.50, 0.55, 0.55, 0.55, 0.60, 0.60, 0.55, 0.50, 0.45, 0.40, 0.38),
        cycling=True, slot_s=300, on_draw=(0.7, 1.0),
    ),
    LoadType.WATER_HEATER: DailyProfile(
        _p(0.05, 0.04, 0.04, 0.04, 0.06, 0.15, 0.45, 0.55, 0.40, 0.20, 0.12, 0.10,
           0.10, 0.08, 0.08, 0.10, 0.12, 0.20, 0.35, 0.40, 0.35, 0.25, 0.12, 0.08),
        cycling=True, slot_s=600,
    ),
    LoadType.EV_CHARGER: DailyProfile(
        _p(0.55, 0.55, 0.50, 0.45, 0.35, 0.25, 0.15, 0.10, 0.08, 0.08, 0.10, 0.12,
           0.15, 0.15, 0.15, 0.18, 0.22, 0.35, 0.50, 0.60, 0.65, 0.65, 0.60, 0.58),
        cycling=True, slot_s=1800,
    ),
    LoadType.DRYER: DailyProfile(
        _p(0.01, 0.01, 0.01, 0.01, 0.01, 0.01, 0.02, 0.05, 0.10, 0.15, 0.18, 0.18,
           0.15, 0.12, 0.12, 0.12, 0.15, 0.18, 0.20, 0.18, 0.12, 0.06, 0.03, 0.02),
        cycling=True, slot_s=1800,
    ),
    LoadType.RANGE: DailyProfile(
        _p(0.00, 0.00, 0.00, 0.00, 0.00, 0.02, 0.10, 0.25, 0.15, 0.05, 0.05, 0.20,
           0.30, 0.10, 0.05, 0.05, 0.15, 0.45, 0.55, 0.30, 0.10, 0.05, 0.02, 0.00),
        cycling=True, slot_s=900, on_draw=(0.2, 0.5),
    ),
    LoadType.LIGHTING: DailyProfile(
        _p(0.08, 0.05, 0.05, 0.05, 0.05, 0.10, 0.30, 0.40, 0.25, 0.10, 0.08, 0.08,
           0.08, 0.08, 0.08, 0.10, 0.20, 0.45, 0.70, 0.80, 0.80, 0.65, 0.40, 0.18),
        cycling=False, slot_s=900,
    ),
    LoadType.OUTLETS: DailyProfile(
        _p(0.15, 0.12, 0.12, 0.12, 0.12, 0.15, 0.30, 0.40, 0.35, 0.30, 0.30, 0.35,
           0.40, 0.35, 0.30, 0.30, 0.35, 0.50, 0.60, 0.65, 0.60, 0.50, 0.35, 0.20),
        cycling=False, slot_s=900,
    ),
}
# fmt: on


def solar_output(seed: int, rated_kw: float, epoch: float, hour: float) -> float:
    """kW generated (positive) : a clear-sky arc from 06:00 to 19:00, dimmed by
    clouds that change every quarter hour."""
    if not 6.0 < hour < 19.0:
        return 0.0
    clear_sky = math.sin(math.pi * (hour - 6.0) / 13.0)
    clouds = spread(seed, 0.55, 1.0, "clouds", int(epoch // 900))
    return rated_kw * clear_sky * clouds
