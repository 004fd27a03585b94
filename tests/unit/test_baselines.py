"""Baselines (gridcore.baselines): what a VEN would have drawn without the event.

The event in most tests: Tuesday 15 July 2025, 17:00-18:00 in Los Angeles
(PDT). History is built from a function of the local day and clock time, over
the local hours 12:00-20:00 only (the baseline reads 13:00, the start of the
day-of adjustment window, to 19:00, an hour after the end): fast to build and
to read."""

from __future__ import annotations

import math
import random
from collections.abc import Callable, Iterable
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gridcore.baselines import (
    HIGH_4_OF_5,
    METER_BEFORE,
    NO_ADJUSTMENT,
    TEN_IN_TEN,
    AdjustmentKind,
    DayOfAdjustment,
    EventWindow,
    Exclusion,
    MeterBefore,
    Selection,
    VenReported,
    XOfY,
    compute_baseline,
    fallback_chain,
    method_named,
)
from gridcore.errors import InvalidInput
from gridcore.intervals import INTERVAL, IntervalReading, interval_start

TZ = ZoneInfo("America/Los_Angeles")
EVENT_DAY = date(2025, 7, 15)  # a Tuesday


def at(day: date, hour: int, minute: int = 0) -> datetime:
    return datetime.combine(day, time(hour, minute), tzinfo=TZ).astimezone(UTC)


WINDOW = EventWindow(at(EVENT_DAY, 17), at(EVENT_DAY, 18))
Load = Callable[[date, datetime], float | None]  # (local day, local time) -> kW


def series(days: Iterable[date], load: Load, hours: tuple[int, int] = (12, 20)) -> list:
    """Readings of ``load`` over the local ``hours`` of each day (None: no data)."""
    found = []
    for day in days:
        start = at(day, hours[0])
        end = at(day, hours[1]) if hours[1] < 24 else at(day + timedelta(days=1), 0)
        while start < end:
            kw = load(day, start.astimezone(TZ))
            if kw is not None:
                found.append(IntervalReading(start, 60, kw))
            start += INTERVAL
    return found


def before(day: date, n: int) -> list[date]:
    """The ``n`` days before ``day``, and ``day`` itself (its morning feeds the
    day-of adjustment and meter-before)."""
    return [day - timedelta(days=k) for k in range(n, -1, -1)]


def by_hour(profile: dict[int, float]) -> Load:
    return lambda day, local: profile[local.hour]


def kw_at(result, hour: int, minute: int = 0, day: date = EVENT_DAY) -> float | None:
    return result.kw_by_interval()[at(day, hour, minute)]


def compute(method, readings, window=WINDOW, **kwargs):
    return method.compute(readings, window, tz=TZ, **kwargs)


FLAT = by_hour(dict.fromkeys(range(24), 2.0))

# --- worked examples (docs/measurement.md) ----------------------------------------


def test_meter_before_holds_the_mean_of_the_hour_before_flat() -> None:
    # 16:00-16:55 alternate 2 and 4 kW: the mean is 3 kW, over the event and the hour after.
    readings = series([EVENT_DAY], lambda d, t: 2.0 if t.minute % 10 == 0 else 4.0, (16, 17))
    found = compute(METER_BEFORE, readings)
    assert found.method == "meter-before"
    assert found.period_used == (at(EVENT_DAY, 16), at(EVENT_DAY, 17))
    assert found.intervals_used == 12
    assert {p.kw for p in found.points} == {3.0}
    assert [p.start for p in found.points] == [at(EVENT_DAY, 17) + k * INTERVAL for k in range(24)]


def test_meter_before_needs_ninety_percent_of_its_intervals() -> None:
    hour = series([EVENT_DAY], lambda d, t: 3.0, (16, 17))
    assert compute(METER_BEFORE, hour[:11]).available  # 11 of 12: 92 %
    short = compute(METER_BEFORE, hour[:10])
    assert not short.available
    assert short.shortfall == (
        "10 of 12 intervals metered in the 60 min before the start (needs 90%)"
    )
    assert all(p.kw is None for p in short.points)  # never a made-up 0


def test_meter_before_never_reads_the_event_itself() -> None:
    readings = series([EVENT_DAY], lambda d, t: 3.0 if t.hour < 17 else 99.0, (16, 19))
    assert {p.kw for p in compute(METER_BEFORE, readings).points} == {3.0}


def test_ten_in_ten_averages_the_ten_most_recent_weekdays() -> None:
    # Day k back from the event has 1 + k kW at 17:00; the other hours 2 kW.
    # Ten weekdays back from Tue 15 July: 14, 11, 10, 9, 8, 7, 4, 3, 2, 1 July.
    def load(day: date, local: datetime) -> float:
        return 1.0 + (EVENT_DAY - day).days if local.hour == 17 else 2.0

    found = compute(XOfY(10, 10, adjustment=NO_ADJUSTMENT), series(before(EVENT_DAY, 30), load))
    assert found.days_used == tuple(date(2025, 7, d) for d in (14, 11, 10, 9, 8, 7, 4, 3, 2, 1))
    back = [1, 4, 5, 6, 7, 8, 11, 12, 13, 14]
    assert kw_at(found, 17) == pytest.approx(sum(1 + k for k in back) / 10)  # 9.1
    assert kw_at(found, 18) == 2.0
    weekends = [e.day for e in found.days_excluded if e.reason is Exclusion.WEEKEND]
    assert weekends == [date(2025, 7, d) for d in (13, 12, 6, 5)]


def test_high_four_of_five_takes_the_highest_event_hours_and_ties_go_to_the_recent() -> None:
    # Event-hour load of the five most recent weekdays: 14th 3, 11th 5, 10th 3,
    # 9th 4, 8th 3. Three days tie at 3 kW for the last two places: the more
    # recent (14th, 10th) win.
    event_kw = {14: 3.0, 11: 5.0, 10: 3.0, 9: 4.0, 8: 3.0}

    def load(day: date, local: datetime) -> float:
        return event_kw.get(day.day, 9.0) if local.hour == 17 else 2.0

    method = XOfY(4, 5, Selection.HIGHEST, NO_ADJUSTMENT)
    found = compute(method, series(before(EVENT_DAY, 10), load))
    assert found.method == "high-4-of-5"
    assert found.days_used == (
        date(2025, 7, 14),
        date(2025, 7, 11),
        date(2025, 7, 10),
        date(2025, 7, 9),
    )
    assert kw_at(found, 17) == pytest.approx((3 + 5 + 3 + 4) / 4)


def test_multiplicative_adjustment_scales_by_the_morning_ratio() -> None:
    # History: 2 kW all day. Event day 13:00-16:00: 2.2 kW. Factor 1.1, under the cap.
    def load(day: date, local: datetime) -> float:
        return 2.2 if day == EVENT_DAY else 2.0

    found = compute(TEN_IN_TEN, series(before(EVENT_DAY, 20), load))
    adjustment = found.adjustment
    assert adjustment is not None
    assert (adjustment.window_start, adjustment.window_end) == (
        at(EVENT_DAY, 13),
        at(EVENT_DAY, 16),
    )
    assert adjustment.raw == pytest.approx(1.1)
    assert adjustment.applied == pytest.approx(1.1)
    assert not adjustment.capped
    assert kw_at(found, 17) == pytest.approx(2.2)


@pytest.mark.parametrize(
    ("morning", "raw", "applied"),
    [(4.0, 2.0, 1.2), (1.0, 0.5, 0.8)],
)
def test_multiplicative_adjustment_is_capped_both_ways(
    morning: float, raw: float, applied: float
) -> None:
    found = compute(
        TEN_IN_TEN, series(before(EVENT_DAY, 20), lambda d, t: morning if d == EVENT_DAY else 2.0)
    )
    assert found.adjustment is not None
    assert found.adjustment.raw == pytest.approx(raw)
    assert found.adjustment.applied == pytest.approx(applied)
    assert found.adjustment.capped
    assert kw_at(found, 17) == pytest.approx(2.0 * applied)


@pytest.mark.parametrize(
    ("morning", "raw", "applied"),
    [(2.3, 0.3, 0.3), (7.0, 5.0, 0.4), (0.0, -2.0, -0.4)],
)
def test_additive_adjustment_shifts_within_its_cap(
    morning: float, raw: float, applied: float
) -> None:
    found = compute(
        HIGH_4_OF_5,
        series(before(EVENT_DAY, 10), lambda d, t: morning if d == EVENT_DAY else 2.0),
    )
    assert found.adjustment is not None
    assert found.adjustment.kind is AdjustmentKind.ADDITIVE
    assert found.adjustment.raw == pytest.approx(raw)
    assert found.adjustment.applied == pytest.approx(applied)
    assert found.adjustment.capped is (raw != applied)
    assert kw_at(found, 17) == pytest.approx(2.0 + applied)


def test_an_uncapped_adjustment_applies_the_raw_factor() -> None:
    method = XOfY(10, 10, adjustment=DayOfAdjustment(cap=None))
    found = compute(
        method, series(before(EVENT_DAY, 20), lambda d, t: 6.0 if d == EVENT_DAY else 2.0)
    )
    assert found.adjustment is not None
    assert found.adjustment.applied == pytest.approx(3.0)
    assert kw_at(found, 17) == pytest.approx(6.0)


def test_no_adjustment_without_the_mornings_meter_data() -> None:
    history = series(before(EVENT_DAY, 20)[:-1], FLAT)  # nothing on the event day
    found = compute(TEN_IN_TEN, history)
    assert found.available
    assert found.adjustment is not None
    assert found.adjustment.applied is None
    assert found.adjustment.note == "not applied: 0 of 36 intervals metered"
    assert kw_at(found, 17) == 2.0  # the unadjusted average stands


# --- eligibility -----------------------------------------------------------------


def test_event_days_weekends_holidays_and_gaps_are_excluded_with_their_reason() -> None:
    gap = date(2025, 7, 10)

    def load(day: date, local: datetime) -> float | None:
        if day == gap and local.hour == 17 and local.minute < 10:
            return None  # 2 of 12 event intervals missing: 83 % < 90 %
        return 2.0

    found = compute(
        TEN_IN_TEN,
        series(before(EVENT_DAY, 30), load),
        event_days={date(2025, 7, 14)},
        holidays={date(2025, 7, 4)},
    )
    reasons = {e.day: e.reason for e in found.days_excluded}
    assert reasons[date(2025, 7, 14)] is Exclusion.EVENT_DAY
    assert reasons[date(2025, 7, 13)] is Exclusion.WEEKEND
    assert reasons[date(2025, 7, 4)] is Exclusion.HOLIDAY
    assert reasons[gap] is Exclusion.MISSING_DATA
    missing = next(e for e in found.days_excluded if e.day == gap)
    assert (missing.present, missing.expected) == (70, 72)
    assert not set(reasons) & set(found.days_used)
    assert len(found.days_used) == 10


def test_a_weekend_event_takes_weekend_days_and_holidays() -> None:
    sunday = date(2025, 7, 13)
    window = EventWindow(at(sunday, 17), at(sunday, 18))
    found = compute(
        TEN_IN_TEN,
        series(before(sunday, 45), FLAT),
        window=window,
        holidays={date(2025, 7, 4)},
    )
    assert date(2025, 7, 4) in found.days_used  # a Friday, but a holiday
    assert all(d.weekday() >= 5 or d == date(2025, 7, 4) for d in found.days_used)
    assert {e.reason for e in found.days_excluded} == {Exclusion.WEEKDAY}


def test_a_day_without_enough_data_in_the_event_hours_is_excluded() -> None:
    # Whole span 91 % present (66 of 72), but 6 of 12 event intervals missing.
    def load(day: date, local: datetime) -> float | None:
        return None if day == date(2025, 7, 14) and local.hour == 17 and local.minute < 30 else 2.0

    found = compute(TEN_IN_TEN, series(before(EVENT_DAY, 20), load))
    assert date(2025, 7, 14) not in found.days_used
    excluded = {e.day: e for e in found.days_excluded}
    assert excluded[date(2025, 7, 14)].reason is Exclusion.MISSING_DATA


def test_an_interval_no_chosen_day_has_is_missing_not_zero() -> None:
    def load(day: date, local: datetime) -> float | None:
        return None if (local.hour, local.minute) == (17, 30) and day != EVENT_DAY else 2.0

    found = compute(TEN_IN_TEN, series(before(EVENT_DAY, 20), load))
    assert found.available
    assert found.missing == (at(EVENT_DAY, 17, 30),)
    assert kw_at(found, 17, 30) is None
    assert kw_at(found, 17, 35) == 2.0


# --- daylight saving time --------------------------------------------------------


def test_days_line_up_by_local_clock_time_across_a_dst_change() -> None:
    # Mon 10 March 2025 follows the spring-forward; the week before was PST.
    # The load depends on the local hour: 17:00 must take 17:00 of PST days.
    monday = date(2025, 3, 10)
    window = EventWindow(at(monday, 17), at(monday, 18))
    profile = {h: float(h) for h in range(24)}
    found = compute(
        XOfY(10, 10, adjustment=NO_ADJUSTMENT),
        series(before(monday, 20), by_hour(profile)),
        window=window,
    )
    assert len(found.days_used) == 10
    assert kw_at(found, 17, day=monday) == 17.0
    assert kw_at(found, 18, day=monday) == 18.0  # the hour after the end


def test_on_a_25_hour_day_both_one_oclock_hours_take_the_one_oclock_baseline() -> None:
    # Sun 2 Nov 2025, clocks go back at 02:00 PDT: 01:00-02:00 happens twice.
    # An event 00:30-02:30 local lasts three hours; the history (weekends) is
    # read at the local clock time, the repeated hour at its one value.
    sunday = date(2025, 11, 2)
    start = datetime(2025, 11, 2, 0, 30, tzinfo=TZ).astimezone(UTC)
    end = datetime(2025, 11, 2, 2, 30, tzinfo=TZ).astimezone(UTC)
    window = EventWindow(start, end)
    assert end - start == timedelta(hours=3)
    profile = {h: float(h) for h in range(24)}
    readings = series(before(sunday, 30)[:-1], by_hour(profile), (0, 24))
    found = compute(XOfY(4, 4, adjustment=NO_ADJUSTMENT), readings, window=window)
    assert found.available
    local_kw = [(p.start.astimezone(TZ), p.kw) for p in found.points]
    ones = [kw for t, kw in local_kw if t.hour == 1]
    assert len(ones) == 24 and set(ones) == {1.0}
    assert all(kw == float(t.hour) for t, kw in local_kw)


def test_a_23_hour_history_day_has_no_value_for_the_skipped_hour() -> None:
    # Sun 9 March 2025 skips 02:00-03:00. An event at 02:00 on the next Sunday:
    # that day is still eligible (the rest of its span is there) but gives
    # nothing for 02:xx; the other Sundays do.
    sunday = date(2025, 3, 16)
    window = EventWindow(at(sunday, 2), at(sunday, 3))
    readings = series(before(sunday, 30)[:-1], FLAT, (0, 24))
    found = compute(XOfY(4, 4, adjustment=NO_ADJUSTMENT), readings, window=window)
    assert date(2025, 3, 9) in found.days_used
    assert all(p.kw == 2.0 for p in found.points)


# --- fallback --------------------------------------------------------------------


def test_the_fallback_chain_says_why_each_method_was_passed_over() -> None:
    # Three weekdays of history: too few for high 4 of 5 and for 10-in-10.
    history = series(before(EVENT_DAY, 5), FLAT)
    found = compute_baseline(fallback_chain("high-4-of-5"), history, WINDOW, tz=TZ)
    assert (found.asked, found.method) == ("high-4-of-5", "meter-before")
    assert [f.method for f in found.fallbacks] == ["high-4-of-5", "10-in-10"]
    assert found.fallbacks[0].reason == (
        "3 eligible days in the 45 days before 2025-07-15, needs 5"
        " (excluded: 14 weekend, 28 missing data)"
    )
    assert found.fallbacks[1].reason.endswith("needs 5 (excluded: 14 weekend, 28 missing data)")
    assert {p.kw for p in found.points} == {2.0}


def test_without_any_data_the_baseline_is_unavailable_and_says_so() -> None:
    found = compute_baseline(fallback_chain("10-in-10"), [], WINDOW, tz=TZ)
    assert found.method == "unavailable"
    assert found.asked == "10-in-10"
    assert [f.method for f in found.fallbacks] == ["10-in-10", "meter-before"]
    assert found.shortfall.startswith("10-in-10: 0 eligible days")
    assert "meter-before: 0 of 12 intervals metered" in found.shortfall
    assert len(found.missing) == len(found.points) == 24


def test_method_names_parse_to_methods_and_chains() -> None:
    assert method_named("10-in-10") == TEN_IN_TEN
    assert method_named(" High-4-of-5 ") == HIGH_4_OF_5
    assert method_named("meter-before") == METER_BEFORE
    assert method_named("meter-before-30") == MeterBefore(30)
    assert method_named("high-5-of-10").name == "high-5-of-10"
    assert method_named("ven-reported") == VenReported()
    assert [m.name for m in fallback_chain("high-5-of-10")] == [
        "high-5-of-10",
        "10-in-10",
        "meter-before",
    ]
    assert [m.name for m in fallback_chain("10-in-10")] == ["10-in-10", "meter-before"]
    assert [m.name for m in fallback_chain("meter-before-15")] == ["meter-before-15"]
    for bad in ("11-in-10", "high-0-of-5", "average", "meter-before-2"):
        with pytest.raises(InvalidInput):
            method_named(bad)


def test_the_ven_reported_line_is_what_the_ven_sent_during_the_event() -> None:
    readings = [
        IntervalReading(WINDOW.start, 60, 1.0, reported_baseline_kw=4.0),
        IntervalReading(WINDOW.start + INTERVAL, 60, 1.0, reported_baseline_kw=5.0),
    ]
    found = compute(VenReported(), readings)
    assert [p.kw for p in found.points[:3]] == [4.0, 5.0, None]
    assert not compute(VenReported(), series([EVENT_DAY], FLAT)).available


# --- properties ------------------------------------------------------------------

hourly = st.lists(st.floats(min_value=0.1, max_value=50, allow_nan=False), min_size=24, max_size=24)
methods = st.sampled_from(
    [
        TEN_IN_TEN,
        HIGH_4_OF_5,
        XOfY(5, 10, Selection.HIGHEST, DayOfAdjustment(AdjustmentKind.ADDITIVE, cap=None)),
        METER_BEFORE,
    ]
)
FAST = settings(max_examples=40, deadline=None)


@FAST
@given(method=methods, profile=hourly)
def test_a_load_the_same_every_day_is_its_own_baseline(method, profile: list[float]) -> None:
    if method is METER_BEFORE:
        profile = [profile[0]] * 24  # meter-before holds one value: a flat day
    found = compute(method, series(before(EVENT_DAY, 21), by_hour(dict(enumerate(profile)))))
    for p in found.points:
        assert p.kw == pytest.approx(profile[p.start.astimezone(TZ).hour], rel=1e-9)


@FAST
@given(
    method=methods,
    days=st.lists(hourly, min_size=22, max_size=22),
    scale=st.floats(min_value=0.01, max_value=100),
)
def test_scaling_the_history_scales_the_baseline(
    method, days: list[list[float]], scale: float
) -> None:
    days_ = before(EVENT_DAY, 21)

    def load(k: float) -> Load:
        return lambda day, local: k * days[days_.index(day)][local.hour]

    plain = compute(method, series(days_, load(1.0)))
    scaled = compute(method, series(days_, load(scale)))
    assert plain.days_used == scaled.days_used
    for a, b in zip(plain.points, scaled.points, strict=True):
        assert b.kw == pytest.approx(scale * a.kw, rel=1e-9)


@FAST
@given(
    history=hourly,
    morning=st.floats(min_value=0, max_value=100, allow_nan=False),
    kind=st.sampled_from([AdjustmentKind.MULTIPLICATIVE, AdjustmentKind.ADDITIVE]),
    cap=st.floats(min_value=0, max_value=1),
)
def test_the_adjustment_never_exceeds_its_cap(
    history: list[float], morning: float, kind: AdjustmentKind, cap: float
) -> None:
    def load(day: date, local: datetime) -> float:
        return morning if day == EVENT_DAY else history[local.hour]

    readings = series(before(EVENT_DAY, 20), load)
    rule = DayOfAdjustment(kind, cap=cap)
    found = compute(XOfY(10, 10, adjustment=rule), readings)
    raw = compute(XOfY(10, 10, adjustment=NO_ADJUSTMENT), readings)
    a = found.adjustment
    assert a is not None and a.applied is not None and a.baseline_kw is not None
    if kind is AdjustmentKind.MULTIPLICATIVE:
        assert 1 - cap <= a.applied <= 1 + cap
        expected = [p.kw * a.applied for p in raw.points]
    else:
        assert abs(a.applied) <= cap * a.baseline_kw * (1 + 1e-12)
        expected = [p.kw + a.applied for p in raw.points]
    assert a.capped is (a.applied != a.raw)
    assert [p.kw for p in found.points] == pytest.approx(expected, rel=1e-12)


@FAST
@given(
    method=st.sampled_from([TEN_IN_TEN, HIGH_4_OF_5]),
    event_days=st.sets(st.integers(min_value=1, max_value=30), max_size=8),
    gaps=st.sets(st.integers(min_value=1, max_value=30), max_size=5),
    base=hourly,
)
def test_excluded_days_never_contribute(
    method, event_days: set[int], gaps: set[int], base: list[float]
) -> None:
    # Excluded days (event days, weekends, days with gaps) carry a huge load;
    # the baseline is as if they had no data at all.
    days_ = before(EVENT_DAY, 30)
    events = {EVENT_DAY - timedelta(days=k) for k in event_days}
    gapped = {EVENT_DAY - timedelta(days=k) for k in gaps}

    def excluded(day: date) -> bool:
        return day in events or day in gapped or day.weekday() >= 5

    def load(day: date, local: datetime) -> float | None:
        if day in gapped and local.hour in (16, 17):  # a quarter of the span missing
            return None
        if day != EVENT_DAY and excluded(day):
            return 10_000.0
        return base[local.hour] * (1 + (EVENT_DAY - day).days / 10)

    readings = series(days_, load)
    clean = [r for r in readings if not excluded(r.start.astimezone(TZ).date())]
    found = compute(method, readings, event_days=events)
    assert not set(found.days_used) & (events | gapped)
    assert all(d.weekday() < 5 for d in found.days_used)
    alone = compute(method, clean, event_days=events)
    assert found.days_used == alone.days_used
    assert [p.kw for p in found.points] == [p.kw for p in alone.points]
    assert all(p.kw is None or p.kw < 10_000 for p in found.points)


# --- the worked examples of docs/measurement.md ------------------------------------

DOCS_WINDOW = EventWindow(at(EVENT_DAY, 17), at(EVENT_DAY, 17, 15))


def docs_load(
    event_kw: dict[int, tuple[float, float, float]], other: tuple, before_kw: float, morning: float
) -> Load:
    """``event_kw``: the three event intervals by day of month (``other`` for
    the rest); ``before_kw`` every other interval of a history day, ``morning``
    every interval of the event day."""

    def load(day: date, local: datetime) -> float:
        if day == EVENT_DAY:
            return morning
        if local.hour == 17 and local.minute < 15:
            return event_kw.get(day.day, other)[local.minute // 5]
        return before_kw

    return load


def test_docs_example_10_in_10() -> None:
    load = docs_load({11: (3.0, 4.0, 5.0), 10: (1.0, 2.0, 3.0)}, (2.0, 3.0, 4.0), 2.5, 3.5)
    found = compute(
        TEN_IN_TEN,
        series(before(EVENT_DAY, 30), load),
        window=DOCS_WINDOW,
        event_days={date(2025, 7, 14)},
        holidays={date(2025, 7, 4)},
    )
    assert found.days_used == (
        *(date(2025, 7, d) for d in (11, 10, 9, 8, 7, 3, 2, 1)),
        date(2025, 6, 30),
        date(2025, 6, 27),
    )
    assert [(e.day.day, e.reason.value) for e in found.days_excluded] == [
        (14, "event day"),
        (13, "weekend"),
        (12, "weekend"),
        (6, "weekend"),
        (5, "weekend"),
        (4, "holiday"),
        (29, "weekend"),
        (28, "weekend"),
    ]
    a = found.adjustment
    assert a is not None
    assert (a.baseline_kw, a.metered_kw) == (pytest.approx(2.5), pytest.approx(3.5))
    assert (a.raw, a.applied, a.capped) == (pytest.approx(1.4), pytest.approx(1.2), True)
    assert [p.kw for p in found.points[:3]] == pytest.approx([2.4, 3.6, 4.8])


@pytest.mark.parametrize(("morning", "offset"), [(2.3, 0.3), (7.0, 0.4)])
def test_docs_example_high_4_of_5(morning: float, offset: float) -> None:
    days = {11: (3.0, 4.0, 5.0), 10: (1.0, 2.0, 3.0), 9: (2.0, 3.0, 4.0), 8: (4.0, 4.0, 4.0)}
    load = docs_load(days, (2.0, 3.0, 4.0), 2.0, morning)
    found = compute(
        HIGH_4_OF_5,
        series(before(EVENT_DAY, 12), load),
        window=DOCS_WINDOW,
        event_days={date(2025, 7, 14)},
    )
    assert found.days_used == tuple(date(2025, 7, d) for d in (11, 9, 8, 7))
    assert found.adjustment is not None and found.adjustment.applied == pytest.approx(offset)
    assert [p.kw for p in found.points[:3]] == pytest.approx(
        [2.75 + offset, 3.5 + offset, 4.25 + offset]
    )


# --- the fast path against a straightforward computation ---------------------------
#
# XOfY looks its intervals up in an index built once per VEN and converts local
# clock times once per event (a cached plan). This reference does it the plain
# way, per day and interval, and must agree with it exactly, on random data.


def reference_x_of_y(method: XOfY, readings, window, tz, event_days, holidays):
    """(days used, days excluded, adjustment, intervals used, points) the plain way."""
    used = {}
    for r in readings:
        if (
            r.used_kw is not None
            and math.isfinite(r.used_kw)
            and r.start + INTERVAL <= window.start
        ):
            used[r.start] = r.used_kw

    def starts(start, end):
        found, s = [], interval_start(start)
        while s < end:
            found.append(s)
            s += INTERVAL
        return found

    def in_event(s):
        return s < window.end and s + INTERVAL > window.start

    event_day = window.start.astimezone(tz).date()

    def key(s):
        local = s.astimezone(tz)
        return (local.date() - event_day).days, local.time().replace(fold=0)

    def on(day, k):
        local = datetime.combine(day + timedelta(days=k[0]), k[1], tzinfo=tz)
        instant = local.astimezone(UTC)
        same = instant.astimezone(tz).replace(tzinfo=None) == local.replace(tzinfo=None)
        return instant if same else None

    def business(day):
        return day.weekday() < 5 and day not in holidays

    adjust_start, adjust_end = method.adjustment.span(window)
    span = starts(min(adjust_start, window.start), window.baseline_end)
    eligible, excluded = [], []
    for back in range(1, method.lookback_days + 1):
        if len(eligible) == method.y:
            break
        day = event_day - timedelta(days=back)
        on_day = {s: i for s in span if (i := on(day, key(s))) is not None}
        present = sum(1 for i in on_day.values() if i in used)
        event = [i for s, i in on_day.items() if in_event(s)]
        enough = (
            bool(on_day)
            and present >= method.min_coverage * len(on_day)
            and sum(1 for i in event if i in used) >= method.min_coverage * len(event)
        )
        if business(event_day):
            reason = (
                Exclusion.WEEKEND
                if day.weekday() >= 5
                else Exclusion.HOLIDAY
                if day in holidays
                else None
            )
        else:
            reason = Exclusion.WEEKDAY if business(day) else None
        if reason is None and day in event_days:
            reason = Exclusion.EVENT_DAY
        if reason is None and not enough:
            reason = Exclusion.MISSING_DATA
        if reason is None:
            eligible.append((day, on_day))
        else:
            looked = reason is Exclusion.MISSING_DATA  # the others are known without a look
            excluded.append((day, reason, present if looked else None, len(on_day)))
    if len(eligible) < method.fewest_days:
        return None, tuple(excluded)
    if method.selection is Selection.HIGHEST:

        def mean(entry):
            values = [used[i] for s, i in entry[1].items() if in_event(s) and i in used]
            return math.fsum(values) / len(values) if values else -math.inf

        eligible = sorted(eligible, key=mean, reverse=True)
    chosen = eligible[: method.x]
    raw, fed = {}, 0
    for s in span:
        values = [used[on_day[s]] for _, on_day in chosen if s in on_day and on_day[s] in used]
        fed += len(values)
        raw[s] = math.fsum(values) / len(values) if values else None
    window_slots = [
        s
        for s in starts(adjust_start, adjust_end)
        if s >= adjust_start and s + INTERVAL <= adjust_end
    ]
    pairs = [(used[s], raw[s]) for s in window_slots if s in used and raw.get(s) is not None]
    return (sorted((d for d, _ in chosen), reverse=True), tuple(excluded), raw, fed, pairs)


ZONES = [TZ, ZoneInfo("Europe/London"), ZoneInfo("Australia/Lord_Howe"), ZoneInfo("UTC")]


@pytest.mark.slow  # 10-15 s: the fast loop leaves it to the whole suite
@settings(max_examples=40, deadline=None)
@given(
    seed=st.integers(min_value=0, max_value=2**32 - 1),
    zone=st.sampled_from(ZONES),
    # Around the spring and autumn changes of both hemispheres, and a plain day.
    event_day=st.sampled_from(
        [date(2025, 3, 11), date(2025, 4, 8), date(2025, 10, 7), date(2025, 11, 4), EVENT_DAY]
    ),
    start_minute=st.integers(min_value=0, max_value=24 * 60 - 1),
    minutes=st.integers(min_value=1, max_value=300),
    method=st.sampled_from(
        [
            TEN_IN_TEN,
            HIGH_4_OF_5,
            XOfY(3, 6, Selection.RECENT, NO_ADJUSTMENT, min_days=1, lookback_days=20),
            XOfY(2, 4, Selection.HIGHEST, DayOfAdjustment(AdjustmentKind.ADDITIVE, cap=None)),
        ]
    ),
    duplicates=st.booleans(),
    local_window=st.booleans(),
)
def test_x_of_y_agrees_with_a_straightforward_computation(
    seed: int,
    zone: ZoneInfo,
    event_day: date,
    start_minute: int,
    minutes: int,
    method: XOfY,
    duplicates: bool,
    local_window: bool,
) -> None:
    rng = random.Random(seed)
    local_start = datetime.combine(event_day, time(0), tzinfo=zone) + timedelta(
        minutes=start_minute, seconds=rng.choice([0, 0, 30])
    )
    start = local_start.astimezone(UTC)
    window = EventWindow(start, start + timedelta(minutes=minutes))
    if local_window:  # an aware window in the zone itself: same instants
        window = EventWindow(window.start.astimezone(zone), window.end.astimezone(zone))
    first = interval_start(start - timedelta(days=method.lookback_days + 2))
    gaps = rng.choice([0.0, 0.02, 0.1, 0.3])  # the share of intervals missing
    readings = []
    s = first
    while s < window.end + timedelta(hours=2):
        roll = rng.random()
        if roll > gaps:  # some intervals missing, some not metered, some NaN
            kw = None if roll < 0.03 else math.nan if roll < 0.035 else rng.uniform(0, 9)
            readings.append(IntervalReading(s, rng.randint(0, 60), kw))
        s += INTERVAL
    if duplicates:
        for r in rng.sample(readings, 50):
            readings.append(IntervalReading(r.start, r.samples, rng.choice([None, 1.0, 99.0])))
    rng.shuffle(readings)
    days = [event_day - timedelta(days=k) for k in range(1, 30)]
    event_days = set(rng.sample(days, 4))
    holidays = set(rng.sample(days, 2)) | ({event_day} if rng.random() < 0.2 else set())

    found = method.compute(readings, window, tz=zone, event_days=event_days, holidays=holidays)
    expected = reference_x_of_y(method, readings, window, zone, event_days, holidays)
    excluded = tuple((e.day, e.reason, e.present, e.expected) for e in found.days_excluded)
    if expected[0] is None:
        assert not found.available
        assert excluded == expected[1]
        return
    days_used, excluded_expected, raw, fed, pairs = expected
    assert list(found.days_used) == days_used
    assert excluded == excluded_expected
    assert found.intervals_used == fed
    again = method.compute(readings, window, tz=zone, event_days=event_days, holidays=holidays)
    assert again == found  # the cached plan gives the same answer twice
    a = found.adjustment
    assert a is not None
    if a.metered_kw is not None:  # the means over the window's intervals with both
        assert a.metered_kw == math.fsum(m for m, _ in pairs) / len(pairs)
        assert a.baseline_kw == math.fsum(b for _, b in pairs) / len(pairs)
    elif a.kind is not AdjustmentKind.NONE:
        assert a.note.startswith(f"not applied: {len(pairs)} of ")
    for p in found.points:
        kw = raw[p.start]
        if kw is not None and a.applied is not None:
            kw = kw * a.applied if a.kind is AdjustmentKind.MULTIPLICATIVE else kw + a.applied
        assert p.kw == kw or (p.kw is None and kw is None)
