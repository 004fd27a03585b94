"""gridcore.verification.history_spans: what measurement reads of each day."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from gridcore.baselines import EventWindow
from gridcore.verification import history_spans

LA = ZoneInfo("America/Los_Angeles")


def test_each_day_reads_the_events_clock_times_widened() -> None:
    # 17:00-19:00 local on Tue 2025-03-25; the lookback crosses the spring change
    # (2025-03-09), after which the same clock times are an hour earlier in UTC.
    window = EventWindow(datetime(2025, 3, 25, 17, tzinfo=LA), datetime(2025, 3, 25, 19, tzinfo=LA))
    since = window.start - timedelta(days=46)
    spans = history_spans(window, LA, since)
    local = [(lo.astimezone(LA), hi.astimezone(LA)) for lo, hi in spans]
    assert spans[0] == (since, since + timedelta(hours=4))  # from `since`: 17:00 to 21:00
    assert all((lo.hour, hi.hour) == (12, 21) for lo, hi in local[1:-1])
    assert local[-1][0].hour == 12 and spans[-1][1] == window.baseline_end  # 20:00 local
    assert len(spans) == 47
    before, after = spans[1], spans[-2]
    assert before[0].astimezone(UTC).hour == 20  # PST: 12:00 is 20:00 UTC
    assert after[0].astimezone(UTC).hour == 19  # PDT: 12:00 is 19:00 UTC
    assert all(a[1] < b[0] for a, b in zip(spans, spans[1:], strict=False))  # ordered, apart
    read = sum((hi - lo for lo, hi in spans), timedelta())
    assert read < timedelta(days=46) * 0.4  # 9 hours of each 24


def test_a_long_event_reads_everything_in_one_span() -> None:
    start = datetime(2025, 3, 25, 6, tzinfo=UTC)
    window = EventWindow(start, start + timedelta(hours=20))
    since = start - timedelta(days=46)
    assert history_spans(window, UTC, since) == [(since, window.baseline_end)]


def test_the_longest_daily_spans_leave_an_hour_between_days() -> None:
    # A 16-hour event reads 23 hours of each day, one span a day.
    start = datetime(2025, 3, 25, 6, tzinfo=UTC)
    window = EventWindow(start, start + timedelta(hours=16))
    spans = history_spans(window, UTC, start - timedelta(days=3, hours=5))
    assert [hi - lo for lo, hi in spans] == [timedelta(hours=23)] * 3 + [timedelta(hours=22)]
