"""Measurement & verification (gridcore.measurement): shed against a baseline,
per VEN and for the fleet, with known answers.

Most tests use the meter-before baseline (the mean of the hour before the
start), so that the baseline is a number written in the test: 5 kW."""

from __future__ import annotations

import math
import random
import statistics
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gridcore.baselines import METER_BEFORE, EventWindow, fallback_chain
from gridcore.intervals import INTERVAL, IntervalReading
from gridcore.measurement import VenMeterData, fleet_measurement, measure_event, measure_ven

TZ = ZoneInfo("America/Los_Angeles")
DAY = date(2025, 7, 15)


def at(hour: int, minute: int = 0, second: int = 0) -> datetime:
    return datetime.combine(DAY, time(hour, minute, second), tzinfo=TZ).astimezone(UTC)


WINDOW = EventWindow(at(17), at(18))
EVENT = [at(17) + k * INTERVAL for k in range(12)]
AFTER = [at(18) + k * INTERVAL for k in range(12)]
CHAIN = fallback_chain("meter-before")


def hour_before(kw: float = 5.0, samples: int = 60) -> list[IntervalReading]:
    return [IntervalReading(at(16) + k * INTERVAL, samples, kw) for k in range(12)]


def readings(
    event_kw: list[float | None],
    after_kw: list[float | None] | None = None,
    claimed: float | None = None,
) -> list[IntervalReading]:
    """The hour before at 5 kW, then the given event and after-hour loads."""
    found = hour_before()
    kws = event_kw + (after_kw or [])
    for start, kw in zip(EVENT + AFTER, kws, strict=False):
        if kw is not None:
            found.append(IntervalReading(start, 60, kw, reported_baseline_kw=claimed))
    return found


def measure(data: list[IntervalReading], **kwargs):
    ven = VenMeterData("ven-1", data, allocated_kw=kwargs.pop("allocated_kw", 4.0), claimed_kw=3.0)
    return measure_ven(ven, WINDOW, tz=TZ, methods=CHAIN, **kwargs)


# --- one VEN ---------------------------------------------------------------------


def test_shed_is_baseline_minus_metered_and_energy_its_integral() -> None:
    # Baseline 5 kW; metered 3 kW the first half hour, 2 kW the second.
    found = measure(readings([3.0] * 6 + [2.0] * 6, claimed=6.0))
    assert found.baseline.method == "meter-before"
    assert [p.shed_kw for p in found.series[:12]] == [2.0] * 6 + [3.0] * 6
    assert found.shed_kwh == pytest.approx(2.0 * 0.5 + 3.0 * 0.5)  # 2.5 kWh
    assert found.avg_shed_kw == pytest.approx(2.5)
    assert found.elapsed_hours == found.measured_hours == pytest.approx(1.0)
    assert found.coverage == pytest.approx(1.0)
    assert found.performance_ratio == pytest.approx(2.5 / 4.0)
    # The ACK claimed 3 kW; the VEN's own baseline line (6 kW) claims 3.5 kW.
    assert found.claimed_kw == 3.0
    assert [p.claimed_shed_kw for p in found.series[:2]] == [3.0, 3.0]
    assert found.claimed_avg_shed_kw == pytest.approx(3.5)
    assert found.claimed_line.method == "ven-reported"


def test_an_offline_interval_verifies_nothing_and_is_listed() -> None:
    event: list[float | None] = [3.0] * 12
    event[4] = event[5] = None
    found = measure(readings(event))
    assert found.quality.offline == (EVENT[4], EVENT[5])
    assert found.offline
    assert found.series[4].shed_kw is None
    assert found.measured_hours == pytest.approx(10 / 12)
    assert found.shed_kwh == pytest.approx(2.0 * 10 / 12)
    assert found.avg_shed_kw == pytest.approx(2.0 * 10 / 12)  # over the whole hour
    assert found.coverage == pytest.approx(10 / 12)
    assert (found.quality.intervals_expected, found.quality.intervals_present) == (12, 10)


def test_samples_expected_come_from_the_vens_own_history() -> None:
    data = hour_before(samples=12)  # this VEN reports every 25 s: 12 a interval
    data += [IntervalReading(s, 6, 3.0) for s in EVENT]  # half its rate during the event
    found = measure(data)
    assert found.quality.samples_expected == pytest.approx(12 * 12)
    assert found.quality.samples_present == 6 * 12
    assert found.quality.sample_share == pytest.approx(0.5)
    given_rate = measure(data, samples_per_interval=6)
    assert given_rate.quality.sample_share == pytest.approx(1.0)
    unknown = measure([IntervalReading(s, 6, 3.0) for s in EVENT])
    assert unknown.quality.samples_expected is None
    assert unknown.quality.sample_share is None


def test_without_a_baseline_nothing_is_verified() -> None:
    found = measure([IntervalReading(s, 60, 3.0) for s in EVENT])
    assert not found.baseline.available
    assert found.baseline.method == "unavailable"
    assert found.shed_kwh is None and found.avg_shed_kw is None
    assert found.performance_ratio is None
    assert all(p.shed_kw is None for p in found.series)
    assert found.rebound is None


def test_rebound_is_the_energy_and_peak_above_the_baseline_in_the_hour_after() -> None:
    # After the end: 7 kW (2 above) for 15 min, 8 kW (3 above) for 5 min,
    # then 4 kW (below the baseline: no rebound) for the last 40 min.
    after: list[float | None] = [7.0] * 3 + [8.0] + [4.0] * 8
    found = measure(readings([3.0] * 12, after))
    assert found.rebound is not None
    assert found.rebound.kwh == pytest.approx(2.0 * 0.25 + 3.0 / 12)  # 0.75 kWh
    assert found.rebound.peak_kw == pytest.approx(3.0)
    assert (found.rebound.intervals_measured, found.rebound.intervals_expected) == (12, 12)
    assert found.shed_kwh == pytest.approx(2.0)  # the rebound is not taken off the shed


def test_live_progress_measures_only_what_has_elapsed() -> None:
    data = readings([3.0] * 12, [9.0] * 12)
    until = at(17, 22, 30)  # 22.5 minutes in: 4 whole intervals and half of the fifth
    found = measure(data, until=until)
    assert [p.start for p in found.series] == EVENT[:5]
    assert found.elapsed_hours == pytest.approx(22.5 / 60)
    assert found.shed_kwh == pytest.approx(2.0 * 22.5 / 60)
    assert found.avg_shed_kw == pytest.approx(2.0)
    assert found.quality.intervals_expected == 5
    assert found.quality.samples_expected == pytest.approx(4.5 * 60)
    assert found.rebound is None  # the event has not ended
    # The interval under way without data yet is not offline: not rolled up yet.
    unrolled = measure([r for r in data if r.start != at(17, 20)], until=until)
    assert unrolled.quality.offline == ()
    assert unrolled.quality.intervals_expected == 4
    assert unrolled.shed_kwh == pytest.approx(2.0 * 20 / 60)
    later = measure(data, until=at(18, 10))
    assert later.rebound is not None and later.rebound.intervals_expected == 2
    assert later.rebound.kwh == pytest.approx(4.0 * 10 / 60)


def test_an_event_off_the_five_minute_grid_counts_only_its_part_of_the_edge_intervals() -> None:
    window = EventWindow(at(17, 2, 30), at(17, 12, 30))  # 10 minutes
    data = hour_before() + [IntervalReading(s, 60, 3.0) for s in EVENT + AFTER]
    found = measure_ven(VenMeterData("v", data), window, tz=TZ, methods=CHAIN)
    first, second, third = found.series[:3]
    assert (first.start, first.event_hours) == (at(17), pytest.approx(2.5 / 60))
    assert second.event_hours == pytest.approx(5 / 60)
    assert (third.event_hours, third.after_hours) == (
        pytest.approx(2.5 / 60),
        pytest.approx(2.5 / 60),
    )
    assert found.shed_kwh == pytest.approx(2.0 * 10 / 60)


# --- the fleet -------------------------------------------------------------------


def test_the_fleet_adds_its_vens_per_interval_and_against_the_request() -> None:
    a = VenMeterData("a", readings([3.0] * 12, [6.0] * 12), allocated_kw=2.0, claimed_kw=2.0)
    b = VenMeterData("b", readings([4.0] * 12, [4.0] * 12), allocated_kw=2.0, claimed_kw=1.5)
    dark = VenMeterData("c", [], allocated_kw=2.0)  # never heard from
    found = measure_event([a, b, dark], WINDOW, tz=TZ, requested_kw=6.0, methods=CHAIN)
    fleet = found.fleet
    assert set(found.vens) == {"a", "b", "c"}
    assert fleet.series[0].baseline_kw == 10.0
    assert fleet.series[0].metered_kw == 7.0
    assert fleet.series[0].shed_kw == 3.0
    assert fleet.series[0].vens == 2
    assert fleet.shed_kwh == pytest.approx(3.0)
    assert fleet.avg_shed_kw == pytest.approx(3.0)
    assert fleet.performance_ratio == pytest.approx(0.5)
    assert fleet.claimed_kw == pytest.approx(3.5)
    assert (fleet.vens, fleet.vens_offline, fleet.vens_without_baseline) == (3, 1, 1)
    assert (fleet.intervals_expected, fleet.intervals_present) == (36, 24)
    # After the end a is 1 kW above its baseline, b 1 kW below: the grid sees none.
    assert found.vens["a"].rebound is not None and found.vens["a"].rebound.kwh == pytest.approx(1.0)
    assert fleet.rebound is not None and fleet.rebound.kwh == pytest.approx(0.0, abs=1e-12)
    assert found.vens["b"].performance_ratio == pytest.approx(0.5)


def test_an_empty_fleet_measures_nothing() -> None:
    fleet = fleet_measurement([], requested_kw=5.0)
    assert fleet.series == ()
    assert fleet.avg_shed_kw is None and fleet.performance_ratio is None
    assert fleet.rebound is None


# --- properties ------------------------------------------------------------------

loads = st.lists(
    st.one_of(st.none(), st.floats(min_value=0, max_value=100, allow_nan=False)),
    min_size=24,
    max_size=24,
)


@settings(max_examples=60, deadline=None)
@given(before=st.floats(min_value=0, max_value=100, allow_nan=False), kws=loads)
def test_shed_is_exactly_baseline_minus_metered(before: float, kws: list[float | None]) -> None:
    data = [IntervalReading(at(16) + k * INTERVAL, 60, before) for k in range(12)]
    data += [IntervalReading(s, 60, kw) for s, kw in zip(EVENT + AFTER, kws, strict=True)]
    found = measure_ven(VenMeterData("v", data), WINDOW, tz=TZ, methods=(METER_BEFORE,))
    for p, kw in zip(found.series, kws, strict=True):
        assert p.baseline_kw == pytest.approx(before)
        assert p.metered_kw == kw
        assert p.shed_kw == (None if kw is None else p.baseline_kw - kw)
    measured = [p for p in found.series[:12] if p.shed_kw is not None]
    if measured:
        assert found.shed_kwh == math.fsum(p.event_hours * p.shed_kw for p in measured)
        assert found.shed_kwh == pytest.approx(math.fsum(p.shed_kw / 12 for p in measured))
    else:
        assert found.shed_kwh is None


@settings(max_examples=30, deadline=None)
@given(a=loads, b=loads, until=st.integers(min_value=0, max_value=130))
def test_the_fleet_is_the_sum_of_its_vens(
    a: list[float | None], b: list[float | None], until: int
) -> None:
    vens = [
        VenMeterData(
            name,
            hour_before()
            + [
                IntervalReading(s, 60, kw)
                for s, kw in zip(EVENT + AFTER, kws, strict=True)
                if kw is not None
            ],
        )
        for name, kws in (("a", a), ("b", b))
    ]
    found = measure_event(
        vens,
        WINDOW,
        tz=TZ,
        requested_kw=10.0,
        methods=CHAIN,
        until=at(17) + timedelta(minutes=until),
    )
    parts = [v.shed_kwh for v in found.vens.values() if v.shed_kwh is not None]
    assert found.fleet.shed_kwh == pytest.approx(math.fsum(parts))
    averages = [v.avg_shed_kw for v in found.vens.values() if v.avg_shed_kw is not None]
    assert found.fleet.avg_shed_kw == (pytest.approx(math.fsum(averages)) if averages else None)
    event = math.fsum(p.shed_kw * p.event_hours for p in found.fleet.series)
    assert found.fleet.shed_kwh == pytest.approx(event, abs=1e-9)


def test_docs_example_meter_before_and_rebound() -> None:
    window = EventWindow(at(17), at(17, 15))
    data = [IntervalReading(at(16, m), 60, kw) for m, kw in ((45, 4.0), (50, 5.0), (55, 6.0))]
    data += [IntervalReading(at(17, m), 60, kw) for m, kw in ((0, 3.0), (5, 3.5), (10, 4.0))]
    data += [IntervalReading(at(17, m), 60, kw) for m, kw in ((15, 7.0), (20, 6.0), (25, 5.0))]
    data += [IntervalReading(at(17, 30) + k * INTERVAL, 60, 4.0) for k in range(9)]
    found = measure_ven(
        VenMeterData("v", data, allocated_kw=2.0),
        window,
        tz=TZ,
        methods=fallback_chain("meter-before-15"),
    )
    assert found.baseline.method == "meter-before-15"
    assert {p.baseline_kw for p in found.series} == {5.0}
    assert [p.shed_kw for p in found.series[:3]] == [2.0, 1.5, 1.0]
    assert found.shed_kwh == pytest.approx(0.375)
    assert found.avg_shed_kw == pytest.approx(1.5)
    assert found.performance_ratio == pytest.approx(0.75)
    assert found.rebound is not None
    assert (found.rebound.kwh, found.rebound.peak_kw) == (pytest.approx(0.25), 2.0)


# --- what the caller reads: the restricted input -----------------------------------


def restricted(data: list[IntervalReading], window: EventWindow, tz: ZoneInfo) -> list:
    """Of each local day, the intervals whose local clock time is from 4 h
    before the start (the day-of adjustment window's start) to an hour after
    the end: what a baseline reads (84 intervals a day for a 2-hour event)."""
    first = (window.start.astimezone(tz) - timedelta(hours=4)).time()
    last = (window.end.astimezone(tz) + timedelta(hours=1)).time()
    return [r for r in data if first <= r.start.astimezone(tz).time() < last]


@pytest.mark.parametrize("chain", ["high-4-of-5", "10-in-10"])
@pytest.mark.parametrize("day", [date(2025, 3, 25), DAY, date(2025, 11, 18)])  # DST in lookback
def test_the_intervals_a_baseline_reads_give_the_same_result_as_whole_days(
    chain: str, day: date
) -> None:
    rng = random.Random(f"{chain} {day}")
    start = datetime.combine(day, time(17), tzinfo=TZ).astimezone(UTC)
    window = EventWindow(start, start + timedelta(hours=2))
    first = datetime.combine(day - timedelta(days=45), time(0), tzinfo=TZ).astimezone(UTC)
    data = []
    s = first
    while s < window.baseline_end:
        if rng.random() > 0.03:  # a few intervals missing
            local = s.astimezone(TZ)
            kw = (2 + math.sin(local.hour / 4)) * (0.7 if local.weekday() >= 5 else 1.0)
            claimed = 4.0 if local.date() == day else None
            data.append(
                IntervalReading(s, 60, kw * rng.uniform(0.9, 1.1), None, None, 0.0, claimed)
            )
        s += INTERVAL
    weekdays = [day - timedelta(days=k) for k in range(1, 45)]
    ven = VenMeterData(
        "ven-1",
        data,
        event_days=frozenset(d for d in rng.sample(weekdays, 6)),
        allocated_kw=1.0,
        claimed_kw=0.5,
    )
    part = VenMeterData(ven.ven_id, restricted(data, window, TZ), ven.event_days, 1.0, 0.5)
    assert len(part.readings) < len(data) / 3
    whole = measure_ven(ven, window, tz=TZ, methods=fallback_chain(chain))
    assert whole.baseline.method == chain
    assert measure_ven(part, window, tz=TZ, methods=fallback_chain(chain)) == whole


@settings(max_examples=30, deadline=None)
@given(
    counts=st.lists(st.integers(min_value=0, max_value=70), min_size=1, max_size=60),
    duplicates=st.integers(min_value=0, max_value=5),
)
def test_the_usual_sample_count_is_the_median_of_the_history(
    counts: list[int], duplicates: int
) -> None:
    # History intervals (some read twice) and the event's, in any order: only
    # history intervals with samples count, each interval once.
    history = [IntervalReading(at(17) - (k + 1) * INTERVAL, n, 5.0) for k, n in enumerate(counts)]
    history += history[:duplicates]
    data = history + [IntervalReading(s, 1000, 3.0) for s in EVENT]
    random.Random(len(counts)).shuffle(data)
    found = measure_ven(VenMeterData("v", data), WINDOW, tz=TZ, methods=CHAIN)
    positive = [r.samples for r in {r.start: r for r in history}.values() if r.samples > 0]
    expected = float(statistics.median(positive)) * 12 if positive else None
    assert found.quality.samples_expected == expected
