"""gridcore.history: which store answers a history read, and the days inside it."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest

from gridcore.errors import InvalidInput
from gridcore.history import (
    DayTotals,
    HistorySource,
    IntervalEvents,
    history_source,
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
