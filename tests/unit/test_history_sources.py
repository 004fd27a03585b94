"""gridcore.history: which store answers a history read, and the days inside it."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest

from gridcore.errors import InvalidInput
from gridcore.history import (
    MAX_LIVE_SPANS,
    DayTotals,
    FleetPlan,
    FleetTotals,
    HistorySource,
    IntervalEvents,
    closed_days,
    fleet_plan,
    history_source,
    late_intervals,
    rollup_horizon,
    rollup_spans,
    whole_days,
)
from gridcore.intervals import IntervalTotals

NOW = datetime(2026, 11, 30, 12, 0, tzinfo=UTC)
SINCE = NOW - timedelta(days=35)
MINUTE = timedelta(minutes=1)
DAY = timedelta(days=1)


@pytest.mark.parametrize("width", [5 * MINUTE, 15 * MINUTE, timedelta(hours=1), DAY, 7 * DAY])
def test_whole_intervals_come_from_the_intervals_whatever_the_range(width: timedelta) -> None:
    for start in (NOW - timedelta(days=365), NOW - DAY):
        assert history_source(start, NOW, width, raw_since=SINCE) is HistorySource.INTERVALS


@pytest.mark.parametrize(
    "width", [timedelta(seconds=30), MINUTE, 7 * MINUTE, timedelta(seconds=301)]
)
def test_finer_or_odd_widths_need_raw_samples_kept_since_retention(width: timedelta) -> None:
    assert history_source(SINCE, NOW, width, raw_since=SINCE) is HistorySource.RAW
    assert history_source(SINCE - DAY, NOW, width) is HistorySource.RAW  # kept forever
    with pytest.raises(InvalidInput, match="granularity: raw samples are kept since 2026-10-26"):
        history_source(SINCE - timedelta(seconds=1), NOW, width, raw_since=SINCE)


def test_one_load_needs_raw_samples_whatever_the_width() -> None:
    assert history_source(SINCE, NOW, DAY, per_load=True, raw_since=SINCE) is HistorySource.RAW
    with pytest.raises(InvalidInput, match="start: per-load history comes from raw samples"):
        history_source(SINCE - DAY, NOW, DAY, per_load=True, raw_since=SINCE)


def test_whole_days_are_the_utc_days_inside_the_range() -> None:
    midnight = datetime(2026, 11, 1, tzinfo=UTC)
    assert whole_days(midnight, midnight + 3 * DAY, DAY) == (midnight, midnight + 3 * DAY)
    assert whole_days(midnight + MINUTE, midnight + 3 * DAY + MINUTE, 2 * DAY) == (
        midnight + DAY,
        midnight + 3 * DAY,
    )
    assert whole_days(midnight + MINUTE, midnight + DAY + MINUTE, DAY) is None  # no whole day
    assert whole_days(midnight, midnight + 3 * DAY, timedelta(hours=12)) is None  # not days
    east = midnight.astimezone(timezone(timedelta(hours=-5)))  # 19:00 the day before
    assert whole_days(east, midnight + DAY, DAY) == (midnight, midnight + DAY)


def test_a_day_adds_up_its_samples_and_keeps_the_greatest_event() -> None:
    one = DayTotals.of(IntervalTotals.of(2.0, None, 9.0), IntervalEvents.of("evt-00000002", 3.0))
    two = DayTotals.of(IntervalTotals.of(None, 1.5, None), IntervalEvents.of("evt-00000001", None))
    three = DayTotals.of(IntervalTotals.of(4.0, 0.5, None), IntervalEvents.of(None, None))
    assert one.merge(two).merge(three) == DayTotals(3, 6.0, 2.0, 3.0, "evt-00000002")
    assert IntervalEvents.of(None, None) is None
    assert IntervalEvents.of(None, 1.0) == IntervalEvents(None, 1.0)


# --- the fleet's roll-ups -----------------------------------------------------

FIVE = 5 * MINUTE
MIDNIGHT = datetime(2026, 11, 30, tzinfo=UTC)


def test_the_fleet_in_5_minute_or_daily_points_reads_its_roll_ups() -> None:
    for width in (FIVE, DAY):
        assert history_source(NOW - DAY, NOW, width, fleet_wide=True) is HistorySource.FLEET
        assert history_source(NOW - DAY, NOW, width) is HistorySource.INTERVALS  # one VEN
    for width in (15 * MINUTE, timedelta(hours=1), 2 * DAY):  # no roll-up of those widths
        assert history_source(NOW - DAY, NOW, width, fleet_wide=True) is HistorySource.INTERVALS
    assert history_source(NOW - DAY, NOW, MINUTE, fleet_wide=True) is HistorySource.RAW


def test_an_interval_rolls_up_once_it_ended_ten_minutes_ago() -> None:
    assert rollup_horizon(MIDNIGHT + timedelta(minutes=14, seconds=59)) == MIDNIGHT
    assert rollup_horizon(MIDNIGHT + timedelta(minutes=15)) == MIDNIGHT + FIVE
    assert late_intervals([MIDNIGHT, MIDNIGHT + FIVE], MIDNIGHT + FIVE) == {MIDNIGHT}
    assert late_intervals([MIDNIGHT], None) == set()  # nothing rolled up: nothing is late


def test_a_first_roll_up_goes_a_day_per_step_and_days_close_with_their_last_interval() -> None:
    start = MIDNIGHT - 2 * DAY + timedelta(hours=15)
    spans = rollup_spans(start, MIDNIGHT + timedelta(hours=1))
    assert spans == [
        (start, MIDNIGHT - DAY),
        (MIDNIGHT - DAY, MIDNIGHT),
        (MIDNIGHT, MIDNIGHT + timedelta(hours=1)),
    ]
    assert [closed_days(lo, hi) for lo, hi in spans] == [
        (MIDNIGHT - 2 * DAY, MIDNIGHT - DAY),  # the first day: its intervals before start are none
        (MIDNIGHT - DAY, MIDNIGHT),
        (MIDNIGHT, MIDNIGHT),  # today is not closed
    ]


def test_a_fleet_read_takes_closed_buckets_from_the_roll_ups_and_the_rest_per_ven() -> None:
    rolled = MIDNIGHT - timedelta(minutes=15)
    # A day of 5-minute points from 00:02: the 00:00 interval counts whole.
    plan = fleet_plan(MIDNIGHT - DAY + 2 * MINUTE, MIDNIGHT, FIVE, rolled)
    assert plan == FleetPlan((MIDNIGHT - DAY, rolled), (), ((rolled, MIDNIGHT),))
    # A late mark: that bucket per VEN too, beside the open tail.
    late = rolled - 2 * FIVE
    plan = fleet_plan(MIDNIGHT - DAY, MIDNIGHT, FIVE, rolled, [late, late, MIDNIGHT - 3 * DAY])
    assert plan == FleetPlan(
        (MIDNIGHT - DAY, rolled), (late,), ((late, late + FIVE), (rolled, MIDNIGHT))
    )
    # Adjacent spans merge: the mark just before the open tail.
    plan = fleet_plan(MIDNIGHT - DAY, MIDNIGHT, FIVE, rolled, [rolled - FIVE])
    assert plan is not None and plan.live == ((rolled - FIVE, MIDNIGHT),)
    # Daily points: today is open; a partial first day per VEN; a marked day per VEN.
    year = fleet_plan(MIDNIGHT - 365 * DAY - timedelta(hours=3), MIDNIGHT + DAY, DAY, rolled)
    assert year == FleetPlan(
        (MIDNIGHT - 365 * DAY, MIDNIGHT - DAY),
        (),
        ((MIDNIGHT - 365 * DAY - timedelta(hours=3), MIDNIGHT - 365 * DAY),
         (MIDNIGHT - DAY, MIDNIGHT + DAY)),
    )  # fmt: skip
    marked = fleet_plan(MIDNIGHT - 7 * DAY, MIDNIGHT, DAY, rolled, [MIDNIGHT - 3 * DAY + FIVE])
    assert marked is not None and marked.skip == (MIDNIGHT - 3 * DAY,)
    assert marked.live == ((MIDNIGHT - 3 * DAY, MIDNIGHT - 2 * DAY), (MIDNIGHT - DAY, MIDNIGHT))


def test_no_plan_where_the_roll_ups_answer_nothing() -> None:
    assert fleet_plan(MIDNIGHT - DAY, MIDNIGHT, FIVE, None) is None  # none made yet
    assert fleet_plan(MIDNIGHT - DAY, MIDNIGHT, FIVE, MIDNIGHT - DAY) is None  # all open
    assert fleet_plan(MIDNIGHT - DAY, MIDNIGHT, 15 * MINUTE, MIDNIGHT) is None  # width
    assert fleet_plan(MIDNIGHT + MINUTE, MIDNIGHT + DAY, DAY, MIDNIGHT + DAY) is None  # part day
    scattered = [MIDNIGHT - DAY + 2 * k * FIVE for k in range(MAX_LIVE_SPANS + 1)]
    assert fleet_plan(MIDNIGHT - DAY, MIDNIGHT, FIVE, MIDNIGHT, scattered) is None


def test_the_fleet_in_a_bucket_sums_each_vens_mean() -> None:
    one = DayTotals(samples=4, used_sum=8.0, shed_sum=2.0, requested_sum=4.0, event_id="evt-1")
    two = DayTotals(samples=1, used_sum=3.0)
    fleet = FleetTotals().add(one).add(two)
    assert fleet == FleetTotals(2, 5, 5.0, 0.5, 1.0, "evt-1")
