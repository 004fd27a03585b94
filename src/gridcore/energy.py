"""Energy from power readings: the kWh a fleet used, from the kW its VENs report.

A VEN reports its power (``usedPowerKw``) every few seconds; energy is the
integral of that power over time, never a sum of readings (summing a 5-second
stream adds the same kW 720 times an hour). The rule, one for every adapter:

- A reading holds from its timestamp until the VEN's next reading, but no
  longer than ``max_hold`` (``VEN_OFFLINE_AFTER_SECONDS``): what a VEN drew
  while nobody heard from it is not known, so it is not counted.
- The segment of a reading is *closed* when the next one arrives, and kept per
  UTC day (:func:`closed_energy`; a segment across midnight is split). The
  newest reading's segment is still *open*: it counts up to now
  (:func:`open_energy_kwh`). "Today" is the closed energy of the UTC day plus
  the open segments from its midnight (:func:`energy_today`).
- Readings arrive in time order. One that arrives after a newer reading of its
  VEN (late) changes nothing: its time was already counted at the power of the
  reading before it.
- A reading without a power value counts nothing for its segment; negative
  power (export) counts as negative energy.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime, timedelta
from typing import NamedTuple

DAY = timedelta(days=1)
_SECONDS_PER_HOUR = 3600.0


class Reading(NamedTuple):
    """A VEN's power at an instant (``usedPowerKw`` of one telemetry sample).
    A named tuple: ingest makes one per message, and a tuple is made fastest."""

    at: datetime
    kw: float | None


def day_start(at: datetime) -> datetime:
    """Midnight UTC of ``at``'s day: where the dashboard's "today" begins, and
    the key energy is kept under."""
    if at.tzinfo is not UTC:  # gridcore's timestamps are UTC already: skip the call
        at = at.astimezone(UTC)
    return datetime(at.year, at.month, at.day, tzinfo=UTC)  # twice replace()'s speed


def energy_by_day(kw: float | None, start: datetime, end: datetime) -> dict[datetime, float]:
    """kWh of ``kw`` held from ``start`` to ``end``, split at UTC midnights."""
    if kw is None or not math.isfinite(kw) or end <= start:
        return {}
    day = day_start(start)
    if end <= day + DAY:  # the common case: a few seconds inside one day
        return {day: kw * (end - start).total_seconds() / _SECONDS_PER_HOUR}
    split: dict[datetime, float] = {}
    while day < end:
        seconds = (min(end, day + DAY) - max(start, day)).total_seconds()
        split[day] = kw * seconds / _SECONDS_PER_HOUR
        day += DAY
    return split


def closed_energy(
    previous: Reading | None, new: Iterable[Reading], max_hold: timedelta
) -> dict[datetime, float]:
    """kWh per UTC day that ``new`` readings of one VEN close, given its newest
    reading stored before them (``previous``). Readings at or before
    ``previous`` are late and close nothing; the chain runs in time order, a
    repeated timestamp counting once."""
    fresh = [r for r in new if previous is None or r.at > previous.at]
    if len(fresh) > 1:  # one reading per VEN and batch is the common case
        fresh = sorted({r.at: r for r in reversed(fresh)}.values(), key=lambda r: r.at)
    added: dict[datetime, float] = {}
    held = previous
    for reading in fresh:
        if held is not None:
            until = min(reading.at, held.at + max_hold)
            for day, kwh in energy_by_day(held.kw, held.at, until).items():
                added[day] = added.get(day, 0.0) + kwh
        held = reading
    return added


def batch_energy(
    batch: Iterable[tuple[str, Reading]], previous: Mapping[str, Reading], max_hold: timedelta
) -> dict[tuple[datetime, str], float]:
    """kWh per (UTC day, VEN) that a batch of (VEN, reading) closes, each VEN
    chained from its newest reading stored before the batch (``previous``)."""
    by_ven: dict[str, list[Reading]] = {}
    for ven_id, reading in batch:
        by_ven.setdefault(ven_id, []).append(reading)
    return {
        (day, ven_id): kwh
        for ven_id, readings in by_ven.items()
        for day, kwh in closed_energy(previous.get(ven_id), readings, max_hold).items()
        if kwh != 0.0
    }


def open_energy_kwh(latest: Reading, since: datetime, now: datetime, max_hold: timedelta) -> float:
    """kWh of a VEN's newest reading from ``since`` until ``now`` (its segment
    is still open: no newer reading has closed it)."""
    start, end = max(latest.at, since), min(now, latest.at + max_hold)
    return sum(energy_by_day(latest.kw, start, end).values())


def energy_today(
    days: Mapping[datetime, float],
    latest: Iterable[Reading],
    *,
    now: datetime,
    max_hold: timedelta,
) -> float:
    """kWh from midnight UTC to ``now``: the closed energy of today (``days``:
    kWh by UTC day), plus each VEN's open segment from midnight."""
    today = day_start(now)
    opened = sum(open_energy_kwh(r, today, now, max_hold) for r in latest)
    return days.get(today, 0.0) + opened
