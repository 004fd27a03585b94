"""Measurement of one event over a synthetic fleet: the pure domain's time per VEN.

python benchmarks/bench_measurement.py [--vens 2000] [--seed 1] [--day 2025-03-25]

Each VEN has 45 days of 5-minute intervals before the event day and the event
day through an hour after the end: a daily shape (low at night, an evening
peak), weekends unlike weekdays, seeded noise, a few short offline gaps, a few
earlier event days (load shed in the event hours), and ~2 % of the VENs with a
few days of history only (their baseline falls back). The event: 17:00-19:00
local time in America/Los_Angeles on a weekday (by default Tuesday 25 March
2025, whose 45-day lookback crosses the spring-forward day).

Each VEN is measured (``measure_ven``, as ``measure_event`` does; the fleet
roll-up is timed apart) with 10-in-10 and with high-4-of-5 (the default chain),
on two inputs:

- full: every interval of the 45 days and the event day (288 a day);
- restricted: of each local day, only the intervals a baseline reads: local
  clock times from the day-of adjustment window's start (4 h before the
  event) to an hour after the end (84 a day for a 2-hour event).

The reference, timed in the same run on the same input, is a bare loop that
touches each reading once (sums used_kw). Generating the readings is not
timed. A digest of the results is printed so that two versions of the code
can be checked to give the same answers; the restricted input is checked to
give the same answers as the full one.
"""

from __future__ import annotations

import argparse
import hashlib
import math
import random
import time
from collections.abc import Callable, Sequence
from datetime import UTC, date, datetime, timedelta
from datetime import time as clock
from zoneinfo import ZoneInfo

from gridcore.baselines import EventWindow, fallback_chain
from gridcore.intervals import INTERVAL, IntervalReading
from gridcore.measurement import VenMeasurement, VenMeterData, fleet_measurement, measure_ven

TZ = ZoneInfo("America/Los_Angeles")
LOOKBACK = 45
EVENT_HOURS = (17, 19)
READ_FROM = timedelta(hours=4)  # the adjustment window starts 4 h before the event
READ_AFTER = timedelta(hours=1)  # the rebound hour
CHAINS = {"10-in-10": fallback_chain("10-in-10"), "high-4-of-5": fallback_chain("high-4-of-5")}


def local(day: date, hour: int, minute: int = 0) -> datetime:
    return datetime.combine(day, clock(hour, minute), tzinfo=TZ).astimezone(UTC)


def starts(first: datetime, end: datetime) -> list[datetime]:
    found = []
    while first < end:
        found.append(first)
        first += INTERVAL
    return found


def restricted_starts(window: EventWindow, event_day: date) -> set[datetime]:
    """What the caller reads: of each local day of the lookback and the event
    day, the intervals from the adjustment window's start to an hour after
    the end, by local clock time (so a DST change shifts the UTC span)."""
    start_local = window.start.astimezone(TZ).replace(tzinfo=None)
    end_local = (window.end).astimezone(TZ).replace(tzinfo=None)
    first = start_local - READ_FROM
    last = end_local + READ_AFTER
    found: set[datetime] = set()
    for back in range(LOOKBACK, -1, -1):
        shift = timedelta(days=back)
        lo = (first - shift).replace(tzinfo=TZ).astimezone(UTC)
        hi = (last - shift).replace(tzinfo=TZ).astimezone(UTC)
        found.update(starts(lo, hi))
    return found


class Fleet:
    """Seeded synthetic VENs, built one at a time (a fleet's readings do not
    fit in memory as objects at once)."""

    def __init__(self, seed: int, event_day: date) -> None:
        self.rng = random.Random(seed)
        self.event_day = event_day
        first_day = event_day - timedelta(days=LOOKBACK)
        self.window = EventWindow(
            local(event_day, EVENT_HOURS[0]), local(event_day, EVENT_HOURS[1])
        )
        self.starts = starts(local(first_day, 0), self.window.end + READ_AFTER)
        # Per interval: local day, hour as a float, weekend, in an event's hours.
        self.shape = []
        for s in self.starts:
            at = s.astimezone(TZ)
            hour = at.hour + at.minute / 60
            self.shape.append((at.date(), hour, at.weekday() >= 5))
        self.weekdays = [
            first_day + timedelta(days=k)
            for k in range(LOOKBACK)
            if (first_day + timedelta(days=k)).weekday() < 5
        ]

    def ven(self, index: int) -> VenMeterData:
        rng = self.rng
        scale = rng.uniform(0.8, 4.0)
        peak = rng.uniform(1.5, 3.0)
        weekend = rng.uniform(0.7, 1.3)
        noise = rng.uniform(0.03, 0.15)
        event_days = frozenset(rng.sample(self.weekdays, rng.randint(1, 4)))
        short = rng.random() < 0.02  # a new VEN: a few days of history only
        history_from = self.event_day - timedelta(days=3) if short else date.min
        gaps = {rng.randrange(len(self.starts)) for _ in range(rng.randint(0, 6))}
        lo, hi = EVENT_HOURS
        readings = []
        offline = 0
        for k, (start, (day, hour, is_weekend)) in enumerate(
            zip(self.starts, self.shape, strict=True)
        ):
            if k in gaps:
                offline = rng.randint(1, 24)  # 5 min to 2 h without data
            if offline:
                offline -= 1
                continue
            if day < history_from:
                continue
            kw = scale * (1.0 + peak * math.exp(-(((hour - 18.0) / 2.5) ** 2)))
            kw *= 0.5 + 0.5 * math.cos((hour - 3.0) / 24 * 2 * math.pi) ** 2
            if is_weekend:
                kw *= weekend
            if (day in event_days or day == self.event_day) and lo <= hour < hi:
                kw *= 0.6  # shed
            elif day == self.event_day and hi <= hour < hi + 1:
                kw *= 1.15  # rebound
            kw *= 1.0 + rng.gauss(0.0, noise)
            samples = 60 if rng.random() < 0.97 else rng.randint(50, 59)
            readings.append(
                IntervalReading(
                    start,
                    samples,
                    kw,
                    used_min_kw=kw * 0.9,
                    used_max_kw=kw * 1.1,
                    shed_kw=scale * 0.4 if day == self.event_day and lo <= hour < hi else 0.0,
                    reported_baseline_kw=scale * (1.0 + peak) if day == self.event_day else None,
                )
            )
        return VenMeterData(
            f"ven-{index:05d}",
            readings,
            event_days=event_days,
            allocated_kw=scale * 0.5,
            claimed_kw=scale * 0.4 if rng.random() < 0.9 else None,
        )


def reference(readings: Sequence[IntervalReading]) -> float:
    """A bare loop that touches each reading once."""
    total = 0.0
    for r in readings:
        if r.used_kw is not None:
            total += r.used_kw
    return total


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--vens", type=int, default=2000)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--day", type=date.fromisoformat, default=date(2025, 3, 25))
    args = parser.parse_args()
    fleet = Fleet(args.seed, args.day)
    window = fleet.window
    needed = restricted_starts(window, args.day)
    inputs: dict[str, Callable[[VenMeterData], VenMeterData]] = {
        "full": lambda data: data,
        "restricted": lambda data: VenMeterData(
            data.ven_id,
            [r for r in data.readings if r.start in needed],
            data.event_days,
            data.allocated_kw,
            data.claimed_kw,
        ),
    }
    cases = [(i, m) for i in inputs for m in [*CHAINS, "reference"]]
    seconds = dict.fromkeys(cases, 0.0)
    results: dict[tuple[str, str], list[VenMeasurement]] = {c: [] for c in cases}
    readings = dict.fromkeys(inputs, 0)
    methods_used: dict[str, int] = {}
    sink = 0.0
    for index in range(args.vens):
        full = fleet.ven(index)
        for name, restrict in inputs.items():
            data = restrict(full)
            readings[name] += len(data.readings)
            t0 = time.perf_counter()
            sink += reference(data.readings)
            seconds[(name, "reference")] += time.perf_counter() - t0
            for method, chain in CHAINS.items():
                t0 = time.perf_counter()
                measured = measure_ven(data, window, tz=TZ, methods=chain)
                seconds[(name, method)] += time.perf_counter() - t0
                results[(name, method)].append(measured)
                if name == "full":
                    key = f"{method} -> {measured.baseline.method}"
                    methods_used[key] = methods_used.get(key, 0) + 1

    n = args.vens
    print(
        f"measure_ven over {n:,} VENs, event {window.start.astimezone(TZ):%a %Y-%m-%d %H:%M}"
        f"-{window.end.astimezone(TZ):%H:%M} {TZ.key}, {LOOKBACK} days of history"
    )
    for name in inputs:
        ref_ms = seconds[(name, "reference")] / n * 1000
        print(
            f"  {name:<10} input: {readings[name] / n:,.0f} readings per VEN;"
            f" reference loop {ref_ms:.3f} ms per VEN"
        )
        for method in CHAINS:
            total = seconds[(name, method)]
            fleet_t0 = time.perf_counter()
            fleet_measurement(results[(name, method)], requested_kw=1000.0)
            fleet_s = time.perf_counter() - fleet_t0
            print(
                f"    {method:<12} {total / n * 1000:7.3f} ms per VEN, {total:7.2f} s total"
                f" ({total / n * 10_000:6.1f} s for 10,000 VENs),"
                f" {total / seconds[(name, 'reference')]:6.1f}x the reference;"
                f" fleet roll-up {fleet_s * 1000:.1f} ms"
            )
    print(
        "  baselines used (full input): " + ", ".join(f"{k}: {v}" for k, v in methods_used.items())
    )
    for method in CHAINS:
        full_results = results[("full", method)]
        restricted_results = results[("restricted", method)]
        same = sum(1 for a, b in zip(full_results, restricted_results, strict=True) if a == b)
        digest = hashlib.sha256(repr(full_results).encode()).hexdigest()[:16]
        print(
            f"  {method}: restricted input gives the same result as the full one"
            f" for {same:,} of {n:,} VENs; results digest {digest}"
        )
    if math.isnan(sink):
        print("(unreachable)")


if __name__ == "__main__":
    main()
