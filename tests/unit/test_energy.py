"""Energy from power readings (gridcore.energy) and the network figures of the
dashboard's stats (gridcore.network)."""

from __future__ import annotations

import itertools
import math
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from adapters.sql.energy import VenEnergy, energy_update
from gridcore.energy import (
    Reading,
    batch_energy,
    closed_energy,
    day_start,
    energy_by_day,
    energy_today,
    open_energy_kwh,
)
from gridcore.events import DrEvent
from gridcore.network import current_reduction_kw, delivery_percent, latest_dispatched

T0 = datetime(2025, 10, 20, 23, 59, 30, tzinfo=UTC)
OCT_20, OCT_21 = datetime(2025, 10, 20, tzinfo=UTC), datetime(2025, 10, 21, tzinfo=UTC)
HOLD = timedelta(seconds=60)

# --- energy ------------------------------------------------------------------------


def test_a_reading_holds_until_the_next_and_is_split_at_midnight_utc() -> None:
    readings = [Reading(T0, 6.0), Reading(T0 + timedelta(seconds=60), 3.0)]
    assert closed_energy(None, readings, HOLD) == {
        OCT_20: pytest.approx(6.0 * 30 / 3600),
        OCT_21: pytest.approx(6.0 * 30 / 3600),
    }


def test_a_gap_counts_no_longer_than_the_hold() -> None:
    readings = [Reading(T0, 36.0), Reading(T0 + timedelta(minutes=10), 1.0)]
    assert sum(closed_energy(None, readings, HOLD).values()) == pytest.approx(36.0 * 60 / 3600)


def test_late_repeated_and_powerless_readings_count_nothing() -> None:
    previous = Reading(T0, 12.0)
    late = [Reading(T0 - timedelta(seconds=5), 99.0), Reading(T0, 99.0)]
    assert closed_energy(previous, late, HOLD) == {}
    unknown = [Reading(T0 + timedelta(seconds=30), None), Reading(T0 + timedelta(seconds=60), 1.0)]
    assert sum(closed_energy(previous, unknown, HOLD).values()) == pytest.approx(12.0 * 30 / 3600)
    repeated = [Reading(T0 + timedelta(seconds=30), 6.0), Reading(T0 + timedelta(seconds=30), 99)]
    assert closed_energy(previous, repeated, HOLD) == closed_energy(previous, repeated[:1], HOLD)


def test_the_open_segment_counts_from_since_until_now_within_the_hold() -> None:
    latest = Reading(T0, 36.0)
    assert day_start(T0 + timedelta(hours=2)) == OCT_21
    assert open_energy_kwh(latest, T0, T0 + timedelta(seconds=20), HOLD) == pytest.approx(0.2)
    assert open_energy_kwh(latest, T0, T0 + timedelta(hours=1), HOLD) == pytest.approx(0.6)
    # From midnight: the 30 s of its minute that fall in the new day.
    assert open_energy_kwh(latest, OCT_21, OCT_21 + timedelta(hours=1), HOLD) == pytest.approx(0.3)
    assert open_energy_kwh(latest, T0, T0 - timedelta(seconds=1), HOLD) == 0.0  # stamped ahead


def test_today_is_the_days_closed_energy_and_the_open_segments() -> None:
    days = {OCT_20: 100.0, OCT_21: 1.0, OCT_21 + timedelta(days=1): 1000.0}
    open_ = [Reading(OCT_21 + timedelta(hours=5), 3.6)]
    now = OCT_21 + timedelta(hours=5, seconds=10)
    assert energy_today(days, open_, now=now, max_hold=HOLD) == pytest.approx(1.01)


readings = st.lists(
    st.tuples(
        st.integers(min_value=1, max_value=400),
        st.one_of(st.none(), st.floats(min_value=-20, max_value=50, allow_nan=False)),
    ),
    min_size=1,
    max_size=60,
)


def _series(steps: list[tuple[int, float | None]]) -> list[Reading]:
    at, series = T0, []
    for seconds, kw in steps:
        at += timedelta(seconds=seconds)
        series.append(Reading(at, kw))
    return series


@given(readings, st.lists(st.integers(min_value=1, max_value=10), max_size=20))
def test_batches_of_any_size_add_up_to_the_whole(
    steps: list[tuple[int, float | None]], sizes: list[int]
) -> None:
    """Ingest closes a batch's segments from the VEN's newest reading before it:
    cut anywhere, the hours add up to the integral over the whole series."""
    series = _series(steps)
    whole = closed_energy(None, series, HOLD)
    added: dict[datetime, float] = {}
    stored: dict[str, Reading] = {}  # the VEN's newest reading before each batch
    position = 0
    for size in [*sizes, len(series)]:
        batch = series[position : position + size]
        for (day, _), kwh in batch_energy([("v", r) for r in batch], stored, HOLD).items():
            added[day] = added.get(day, 0.0) + kwh
        if batch:
            stored = {"v": batch[-1]}
        position += size
    assert added.keys() <= whole.keys()
    for day, kwh in whole.items():
        assert added.get(day, 0.0) == pytest.approx(kwh, abs=1e-9)


@given(readings)
def test_energy_is_power_times_held_time(steps: list[tuple[int, float | None]]) -> None:
    series = _series(steps)
    expected = sum(
        (r.kw or 0.0) * min(nxt.at - r.at, HOLD).total_seconds() / 3600
        for r, nxt in itertools.pairwise(series)
    )
    total = sum(closed_energy(None, series, HOLD).values())
    assert math.isclose(total, expected, rel_tol=1e-9, abs_tol=1e-9)


def test_energy_by_day_of_an_empty_or_unknown_span_is_nothing() -> None:
    assert energy_by_day(5.0, T0, T0) == {}
    assert energy_by_day(None, T0, T0 + HOLD) == {}
    assert energy_by_day(math.inf, T0, T0 + HOLD) == {}
    two_days = energy_by_day(1.0, T0, T0 + timedelta(days=1))
    assert two_days == {OCT_20: pytest.approx(30 / 3600), OCT_21: pytest.approx(24 - 30 / 3600)}


# --- the reduction in effect, and the latest event's delivery ------------------------


def test_current_reduction_sums_only_current_readings() -> None:
    now = T0 + timedelta(seconds=90)
    shed = [Reading(T0, 4.8), Reading(T0 + timedelta(seconds=30), 1.2), Reading(now, None)]
    assert current_reduction_kw(shed, now, HOLD) == pytest.approx(1.2)


def _event(event_id: str, start_minutes: int, *, activated: bool) -> DrEvent:
    start = T0 + timedelta(minutes=start_minutes)
    return DrEvent(
        event_id,
        start,
        start + timedelta(hours=1),
        10.0,
        activated_at=start if activated else None,
    )


def test_the_latest_dispatched_event_is_the_last_started_that_was_activated() -> None:
    events = [
        _event("evt-00000001", 0, activated=True),
        _event("evt-00000002", 30, activated=True),
        _event("evt-00000003", 60, activated=False),  # scheduled: not asked yet
        _event("evt-00000004", 30, activated=True),
    ]
    assert latest_dispatched(events) == events[3]
    assert latest_dispatched(events[2:3]) is None


@pytest.mark.parametrize(
    ("requested", "actual", "percent"),
    [(10.0, 0.0, 0.0), (10.0, 2.5, 25.0), (3.0, 1.0, 33.3), (10.0, 12.0, 100.0)],
)
def test_delivery_is_the_share_of_the_request_at_most_all_of_it(
    requested: float, actual: float, percent: float
) -> None:
    assert delivery_percent(requested, actual) == percent


# --- storage: a VEN's running day (adapters.sql.energy) -----------------------------


def test_a_batch_inside_the_running_day_adds_to_it() -> None:
    before = {"v": VenEnergy(Reading(T0 - timedelta(seconds=20), 36.0), (OCT_20, 1.0))}
    update = energy_update([("v", T0 - timedelta(seconds=10), 0.0)], before, HOLD)
    assert update.running == {"v": (OCT_20, pytest.approx(1.1))}
    assert update.completed == []


def test_a_batch_past_midnight_completes_the_day_and_runs_the_next() -> None:
    before = {"v": VenEnergy(Reading(T0, 36.0), (OCT_20, 1.0))}  # 23:59:30
    update = energy_update([("v", T0 + timedelta(seconds=60), 0.0)], before, HOLD)
    assert update.completed == [(OCT_20, "v", pytest.approx(1.3))]
    assert update.running == {"v": (OCT_21, pytest.approx(0.3))}


def test_late_readings_and_first_readings_keep_the_running_day() -> None:
    before = {"v": VenEnergy(Reading(T0, 36.0), (OCT_20, 1.0))}
    update = energy_update([("v", T0 - timedelta(minutes=5), 9.0), ("new", T0, 5.0)], before, HOLD)
    assert update.running == {"v": (OCT_20, 1.0), "new": (None, None)}
    assert update.completed == []
