"""How much each kind of household load draws over a day, and the seeded noise
that makes every home and every sample a little different.

A day is a working day or a weekend day: on Saturdays and Sundays a home gets
up later (its morning peak moves about an hour and a half later), is at home
in the daytime (more lighting, cooking, laundry) and charges its EV less
overnight. Each home also has days busier or quieter than others (a hot day,
guests): a per-day factor on its loads, the day-to-day spread a baseline
averages out.

Noise is a pure function of (seed, keys): a VEN's circuit draws the same at
the same instant whatever order samples are taken in, so a run is
reproducible for a given ``--seed`` even when scheduling jitters, and the
history the simulator writes for past days (``--backfill-days``) is the
same function of time as its live telemetry.
"""

from __future__ import annotations

import functools
import hashlib
import math
from dataclasses import dataclass

from gridcore.ven import LoadType

SECONDS_PER_DAY = 86_400


def unit(seed: int, *keys: object) -> float:
    """A reproducible pseudo-random number in [0, 1) for ``(seed, *keys)``."""
    digest = hashlib.blake2b(repr((seed, keys)).encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") / 2.0**64


_MASK = (1 << 64) - 1


def jitter_unit(seed: int, second: int) -> float:
    """A reproducible number in [0, 1) for (seed, second), cheaper than
    :func:`unit` for the one value drawn afresh at every read: hashing a
    tuple of ints is deterministic in CPython (only str and bytes hashes are
    salted), then mixed with splitmix64's finaliser."""
    z = (hash((seed, second)) * 0x9E3779B97F4A7C15) & _MASK
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & _MASK
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & _MASK
    return (z ^ (z >> 31)) / 2.0**64


@functools.lru_cache(maxsize=1 << 16)
def held(seed: int, *keys: object) -> float:
    """:func:`unit` for values that hold for a while (a slot, a day): the same
    number, remembered, since a VEN reads it every few seconds."""
    return unit(seed, *keys)


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


def local_day(epoch: float, utc_offset_s: float) -> int:
    """Days since 1970-01-01 in local time (the key of a day's own factor)."""
    return int((epoch + utc_offset_s) // SECONDS_PER_DAY)


def is_weekend(day: int) -> bool:
    """Whether local day number ``day`` (see :func:`local_day`) is a Saturday
    or a Sunday: 1970-01-01 was a Thursday."""
    return (day + 3) % 7 >= 5


def weekend_shape(
    hourly: tuple[float, ...], *, lag_h: float, daytime: float, overall: float = 1.0
) -> tuple[float, ...]:
    """A weekend day made from a working day: the morning (up to midday) runs
    ``lag_h`` hours later, the daytime hours (10:00-17:00) draw ``daytime``
    times as much, and the whole day ``overall`` times as much."""

    def level(hour: float) -> float:
        low = math.floor(hour) % 24
        frac = hour - math.floor(hour)
        return hourly[low] * (1 - frac) + hourly[(low + 1) % 24] * frac

    def lag(hour: int) -> float:  # full lag 05:00-12:00, tapering in and out
        if 5 <= hour <= 12:
            return lag_h
        if 3 <= hour < 5:
            return lag_h * (hour - 3) / 2
        if 12 < hour < 15:
            return lag_h * (15 - hour) / 3
        return 0.0

    shaped = []
    for hour in range(24):
        value = level(hour - lag(hour)) * overall
        if 10 <= hour <= 17:
            value *= daytime
        shaped.append(round(min(value, 1.0), 4))
    return tuple(shaped)


@dataclass(frozen=True, slots=True)
class DailyProfile:
    """A load's typical day.

    ``hourly`` holds 24 values for a working day, ``weekend`` 24 for a
    Saturday or Sunday, interpolated linearly between hours. For a continuous
    load (lighting, HVAC) the value is the fraction of rated power drawn; for
    a cycling load (EV charger, dryer) it is the chance of being on during one
    ``slot_s``-long slot, and when on the load draws ``on_draw`` of its
    rating: appliances run in blocks, not in 5-second flickers. Each day
    scales the level by a factor within ``1 +- day_spread`` (the home's own,
    seeded). Slots are multiples of 5 minutes aligned to the epoch, so a
    cycling load is on or off for whole 5-minute intervals.
    """

    hourly: tuple[float, ...]
    cycling: bool
    slot_s: int
    on_draw: tuple[float, float] = (0.9, 1.0)
    weekend: tuple[float, ...] | None = None  # None: like a working day
    day_spread: float = 0.1

    def level(self, hour: float, weekend: bool = False) -> float:
        values = self.weekend if weekend and self.weekend is not None else self.hourly
        low = int(hour) % 24
        frac = hour - math.floor(hour)
        return values[low] * (1 - frac) + values[(low + 1) % 24] * frac

    def day_factor(self, seed: int, day: int) -> float:
        return 1.0 + self.day_spread * (2 * held(seed, "day", day) - 1)

    def draw(
        self,
        seed: int,
        rated_kw: float,
        epoch: float,
        hour: float,
        *,
        day: int = 0,
        weekend: bool = False,
    ) -> float:
        """kW drawn at ``epoch``: ``hour`` is its local hour and ``day`` its
        local day number (:func:`local_day`), both already shifted by the
        household's habits; ``weekend`` whether that day is a weekend day."""
        slot = int(epoch // self.slot_s)
        jitter = 1.0 + 0.04 * (2 * jitter_unit(seed, int(epoch)) - 1)
        level = self.level(hour, weekend) * self.day_factor(seed, day)
        if self.cycling:
            if held(seed, "on", slot) >= level:
                return 0.0
            low, high = self.on_draw
            return rated_kw * (low + (high - low) * held(seed, "draw", slot)) * jitter
        slow = 1.0 + 0.25 * (2 * held(seed, "slow", slot) - 1)
        return rated_kw * min(level * slow, 1.0) * jitter


def _p(*values: float) -> tuple[float, ...]:
    if len(values) != 24:
        raise ValueError("a daily profile has one value per hour")
    return values


def _profile(
    hourly: tuple[float, ...],
    *,
    cycling: bool,
    slot_s: int,
    lag_h: float,
    daytime: float,
    overall: float = 1.0,
    day_spread: float = 0.1,
    on_draw: tuple[float, float] = (0.9, 1.0),
) -> DailyProfile:
    weekend = weekend_shape(hourly, lag_h=lag_h, daytime=daytime, overall=overall)
    return DailyProfile(hourly, cycling, slot_s, on_draw, weekend, day_spread)


# Shapes of an ordinary home on a working day: morning and evening peaks, EVs
# charging overnight, air conditioning peaking in the late afternoon. At the
# weekend: later mornings, busier days at home (laundry, cooking), less EV
# charging (fewer commutes); air conditioning varies most from day to day.
# fmt: off
PROFILES: dict[LoadType, DailyProfile] = {
    LoadType.HVAC: _profile(
        _p(0.30, 0.28, 0.26, 0.25, 0.25, 0.28, 0.35, 0.40, 0.42, 0.45, 0.50, 0.55,
           0.60, 0.65, 0.70, 0.75, 0.75, 0.72, 0.65, 0.55, 0.48, 0.42, 0.38, 0.33),
        cycling=False, slot_s=900, lag_h=0.5, daytime=1.1, day_spread=0.2,
    ),
    LoadType.REFRIGERATOR: _profile(
        _p(0.35, 0.35, 0.33, 0.33, 0.33, 0.35, 0.40, 0.45, 0.45, 0.45, 0.45, 0.50,
           0.50, 0.50, 0.55, 0.55, 0.55, 0.60, 0.60, 0.55, 0.50, 0.45, 0.40, 0.38),
        cycling=True, slot_s=300, on_draw=(0.7, 1.0), lag_h=1.0, daytime=1.1, day_spread=0.05,
    ),
    LoadType.WATER_HEATER: _profile(
        _p(0.05, 0.04, 0.04, 0.04, 0.06, 0.15, 0.45, 0.55, 0.40, 0.20, 0.12, 0.10,
           0.10, 0.08, 0.08, 0.10, 0.12, 0.20, 0.35, 0.40, 0.35, 0.25, 0.12, 0.08),
        cycling=True, slot_s=600, lag_h=1.5, daytime=1.3, day_spread=0.15,
    ),
    LoadType.EV_CHARGER: _profile(
        _p(0.55, 0.55, 0.50, 0.45, 0.35, 0.25, 0.15, 0.10, 0.08, 0.08, 0.10, 0.12,
           0.15, 0.15, 0.15, 0.18, 0.22, 0.35, 0.50, 0.60, 0.65, 0.65, 0.60, 0.58),
        cycling=True, slot_s=1800, lag_h=0.0, daytime=1.3, overall=0.75, day_spread=0.15,
    ),
    LoadType.DRYER: _profile(
        _p(0.01, 0.01, 0.01, 0.01, 0.01, 0.01, 0.02, 0.05, 0.10, 0.15, 0.18, 0.18,
           0.15, 0.12, 0.12, 0.12, 0.15, 0.18, 0.20, 0.18, 0.12, 0.06, 0.03, 0.02),
        cycling=True, slot_s=1800, lag_h=1.0, daytime=1.8, day_spread=0.2,
    ),
    LoadType.RANGE: _profile(
        _p(0.00, 0.00, 0.00, 0.00, 0.00, 0.02, 0.10, 0.25, 0.15, 0.05, 0.05, 0.20,
           0.30, 0.10, 0.05, 0.05, 0.15, 0.45, 0.55, 0.30, 0.10, 0.05, 0.02, 0.00),
        cycling=True, slot_s=900, on_draw=(0.2, 0.5), lag_h=1.5, daytime=1.4, day_spread=0.15,
    ),
    LoadType.LIGHTING: _profile(
        _p(0.08, 0.05, 0.05, 0.05, 0.05, 0.10, 0.30, 0.40, 0.25, 0.10, 0.08, 0.08,
           0.08, 0.08, 0.08, 0.10, 0.20, 0.45, 0.70, 0.80, 0.80, 0.65, 0.40, 0.18),
        cycling=False, slot_s=900, lag_h=1.5, daytime=1.3,
    ),
    LoadType.OUTLETS: _profile(
        _p(0.15, 0.12, 0.12, 0.12, 0.12, 0.15, 0.30, 0.40, 0.35, 0.30, 0.30, 0.35,
           0.40, 0.35, 0.30, 0.30, 0.35, 0.50, 0.60, 0.65, 0.60, 0.50, 0.35, 0.20),
        cycling=False, slot_s=900, lag_h=1.5, daytime=1.3,
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
