"""gridcore.verification.history_spans: what measurement reads of each day."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from itertools import pairwise
from zoneinfo import ZoneInfo

import pytest

from gridcore.baselines import EventWindow, fallback_chain
from gridcore.errors import InvalidInput
from gridcore.verification import history_spans, reach_before

LA = ZoneInfo("America/Los_Angeles")


def test_each_day_reads_the_events_clock_times_widened() -> None:
    # 17:00-19:00 local on Tue 2025-03-25; the lookback crosses the spring change
    # (2025-03-09), after which the same clock times are an hour earlier in UTC.
    window = EventWindow(datetime(2025, 3, 25, 17, tzinfo=LA), datetime(2025, 3, 25, 19, tzinfo=LA))
    since = window.start - timedelta(days=46)
    spans = history_spans(window, LA, since)
    local = [(lo.astimezone(LA), hi.astimezone(LA)) for lo, hi in spans]
    hours = [(lo.strftime("%H:%M"), hi.strftime("%H:%M")) for lo, hi in local]
    assert hours[0] == ("17:00", "20:05")  # from `since`
    assert set(hours[1:-1]) == {("12:55", "20:05")}  # 4 h before to 1 h after, + an interval
    assert hours[-1] == ("12:55", "20:00") and spans[-1][1] == window.baseline_end
    assert len(spans) == 47
    before, after = spans[1], spans[-2]
    assert before[0].astimezone(UTC).hour == 20  # PST: 12:55 is 20:55 UTC
    assert after[0].astimezone(UTC).hour == 19  # PDT: 12:55 is 19:55 UTC
    assert all(a[1] < b[0] for a, b in pairwise(spans))  # ordered, apart
    read = sum((hi - lo for lo, hi in spans), timedelta())
    assert read < timedelta(days=47) * 0.3  # 7 hours and 10 minutes of each 24


def test_a_long_event_reads_everything_in_one_span() -> None:
    start = datetime(2025, 3, 25, 6, tzinfo=UTC)
    window = EventWindow(start, start + timedelta(hours=20))
    since = start - timedelta(days=46)
    assert history_spans(window, UTC, since) == [(since, window.baseline_end)]


def test_spans_that_meet_are_one() -> None:
    # A 16-hour event with a 12-hour meter-before reads more than a day's
    # 24 hours each day: one span.
    start = datetime(2025, 3, 25, 6, tzinfo=UTC)
    window = EventWindow(start, start + timedelta(hours=16))
    since = start - timedelta(days=3)
    chain = fallback_chain("meter-before-720")
    assert reach_before(chain) == timedelta(hours=12)
    assert history_spans(window, UTC, since, reach_before(chain)) == [(since, window.baseline_end)]
    assert reach_before(fallback_chain("10-in-10")) == timedelta(hours=4)


def test_the_rebound_span_is_the_programmes() -> None:
    start = datetime(2025, 3, 25, 17, tzinfo=UTC)
    assert EventWindow(start, start + timedelta(hours=1)).baseline_end == start + timedelta(hours=2)
    none = EventWindow(start, start + timedelta(hours=1), after=timedelta(0))
    assert none.baseline_end == none.end and len(none.intervals()) == 12
    with pytest.raises(InvalidInput, match="after"):
        EventWindow(start, start + timedelta(hours=1), after=timedelta(hours=7))
