"""VENs: connectivity from heartbeat age, ids, locations, loads; telemetry
granularity and buckets."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gridcore import (
    Connectivity,
    InvalidInput,
    Load,
    LoadType,
    Location,
    Ven,
    connectivity,
    parse_granularity,
)
from gridcore.telemetry import bucket_start
from gridcore.ven import DEFAULT_OFFLINE_AFTER, available_shed_kw, validate_ven_id

NOW = datetime(2025, 10, 20, 15, 0, tzinfo=UTC)


# --- connectivity -----------------------------------------------------------------


def test_recent_heartbeat_is_online() -> None:
    assert connectivity(NOW - timedelta(seconds=5), NOW) is Connectivity.ONLINE


def test_heartbeat_exactly_at_the_threshold_is_still_online() -> None:
    assert connectivity(NOW - DEFAULT_OFFLINE_AFTER, NOW) is Connectivity.ONLINE


def test_heartbeat_just_past_the_threshold_is_offline() -> None:
    last = NOW - DEFAULT_OFFLINE_AFTER - timedelta(microseconds=1)
    assert connectivity(last, NOW) is Connectivity.OFFLINE


def test_never_seen_is_offline() -> None:
    assert connectivity(None, NOW) is Connectivity.OFFLINE
    assert Ven(id="ven-1", name="Home").connectivity(NOW) is Connectivity.OFFLINE


def test_heartbeat_from_the_future_is_online() -> None:
    # A VEN whose clock runs ahead must not be shown offline.
    assert connectivity(NOW + timedelta(minutes=10), NOW) is Connectivity.ONLINE


def test_the_threshold_is_configurable() -> None:
    last = NOW - timedelta(minutes=3)
    assert connectivity(last, NOW, timedelta(minutes=5)) is Connectivity.ONLINE
    assert connectivity(last, NOW, timedelta(minutes=2)) is Connectivity.OFFLINE
    ven = Ven(id="ven-1", name="Home", last_seen_at=last)
    assert ven.connectivity(NOW, timedelta(minutes=5)) is Connectivity.ONLINE
    assert ven.connectivity(NOW) is Connectivity.OFFLINE


@settings(deadline=None)
@given(age_s=st.integers(-3600, 3600), threshold_s=st.integers(0, 600))
def test_online_iff_age_at_most_threshold(age_s: int, threshold_s: int) -> None:
    state = connectivity(NOW - timedelta(seconds=age_s), NOW, timedelta(seconds=threshold_s))
    assert (state is Connectivity.ONLINE) == (age_s <= threshold_s)


# --- heartbeats -------------------------------------------------------------------


def test_heard_from_moves_forward() -> None:
    ven = Ven(id="ven-1", name="Home").heard_from(NOW)
    assert ven.last_seen_at == NOW
    later = ven.heard_from(NOW + timedelta(seconds=10))
    assert later.last_seen_at == NOW + timedelta(seconds=10)


def test_heard_from_never_moves_back() -> None:
    ven = Ven(id="ven-1", name="Home", last_seen_at=NOW)
    assert ven.heard_from(NOW - timedelta(seconds=30)).last_seen_at == NOW
    assert ven.heard_from(NOW) is ven


@settings(deadline=None)
@given(offsets=st.lists(st.integers(-10_000, 10_000), min_size=1, max_size=30))
def test_heard_from_keeps_the_newest_heartbeat_whatever_the_arrival_order(
    offsets: list[int],
) -> None:
    ven = Ven(id="ven-1", name="Home")
    seen: list[datetime] = []
    for offset in offsets:
        at = NOW + timedelta(seconds=offset)
        seen.append(at)
        previous = ven.last_seen_at
        ven = ven.heard_from(at)
        assert previous is None or ven.last_seen_at >= previous  # type: ignore[operator]
    assert ven.last_seen_at == max(seen)


# --- ids ------------------------------------------------------------------------


@pytest.mark.parametrize(
    "ven_id",
    ["ven-1", "VEN_001", "home.42", "arn:thing:7", "a", "x" * 128, "0ven"],
)
def test_valid_ven_ids(ven_id: str) -> None:
    assert validate_ven_id(ven_id) == ven_id
    assert Ven(id=ven_id, name="Home").id == ven_id


@pytest.mark.parametrize(
    "ven_id",
    [
        "",
        "ven/1",
        "ven+1",
        "ven#1",
        "ven 1",
        " ven1",
        "ven1\n",
        "ven1\t",
        "-ven",
        "x" * 129,
        "vén",
        "$aws",
    ],
)
def test_invalid_ven_ids_are_refused(ven_id: str) -> None:
    with pytest.raises(InvalidInput) as error:
        validate_ven_id(ven_id)
    assert error.value.field == "venId"
    with pytest.raises(InvalidInput):
        Ven(id=ven_id, name="Home")


def test_a_non_string_ven_id_is_refused() -> None:
    with pytest.raises(InvalidInput):
        validate_ven_id(42)  # type: ignore[arg-type]


@settings(deadline=None)
@given(ven_id=st.text(min_size=1, max_size=40))
def test_an_accepted_ven_id_is_safe_in_an_mqtt_topic(ven_id: str) -> None:
    try:
        validate_ven_id(ven_id)
    except InvalidInput:
        return
    assert not set(ven_id) & {"/", "+", "#", " ", "\n", "\r", "\t", "\x00"}
    assert ven_id == ven_id.strip()


# --- locations ------------------------------------------------------------------


@pytest.mark.parametrize(("lat", "lon"), [(0, 0), (90, 180), (-90, -180), (37.77, -122.42)])
def test_valid_locations(lat: float, lon: float) -> None:
    assert Location(lat, lon) == Location(lat=lat, lon=lon)


@pytest.mark.parametrize(
    ("lat", "lon", "field"),
    [
        (90.01, 0, "location.lat"),
        (-91, 0, "location.lat"),
        (math.nan, 0, "location.lat"),
        (0, 180.5, "location.lon"),
        (0, -181, "location.lon"),
        (0, math.inf, "location.lon"),
    ],
)
def test_locations_out_of_bounds(lat: float, lon: float, field: str) -> None:
    with pytest.raises(InvalidInput) as error:
        Location(lat, lon)
    assert error.value.field == field


# --- loads ----------------------------------------------------------------------


def test_available_shed_excludes_critical_and_disabled_loads() -> None:
    loads = [
        Load(id="ev1", type=LoadType.EV_CHARGER.value, shed_capability_kw=7.2),
        Load(id="heater1", type=LoadType.WATER_HEATER.value, shed_capability_kw=3.0),
        Load(id="hvac1", type=LoadType.HVAC.value, shed_capability_kw=4.0, critical=True),
        Load(id="dryer1", type=LoadType.DRYER.value, shed_capability_kw=5.0, enabled=False),
        Load(id="odd", shed_capability_kw=-1.0),
    ]
    assert available_shed_kw(loads) == pytest.approx(10.2)
    assert available_shed_kw(tuple(loads)) == pytest.approx(10.2)
    assert available_shed_kw([]) == 0.0


def test_effective_capacity_prefers_the_configured_capacity() -> None:
    assert Load(id="a", capacity_kw=11.0, current_power_kw=2.0).effective_capacity_kw == 11.0


def test_effective_capacity_falls_back_to_usage_plus_shed_capability() -> None:
    load = Load(id="a", current_power_kw=2.0, shed_capability_kw=1.5)
    assert load.effective_capacity_kw == 3.5
    exporting = Load(id="pv", current_power_kw=-3.0, shed_capability_kw=0.0)
    assert exporting.effective_capacity_kw == 0.0


# --- telemetry granularity --------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("30s", timedelta(seconds=30)),
        ("5m", timedelta(minutes=5)),
        ("1h", timedelta(hours=1)),
        ("168h", timedelta(days=7)),
        (" 15m ", timedelta(minutes=15)),
    ],
)
def test_parse_granularity(text: str, expected: timedelta) -> None:
    assert parse_granularity(text) == expected


@pytest.mark.parametrize(
    "text", ["0m", "5d", "", "m5", "5 m", "5", "-5m", "5M", "1.5h", "169h", None]
)
def test_bad_granularity_is_invalid_input_naming_the_field(text: str) -> None:
    with pytest.raises(InvalidInput) as error:
        parse_granularity(text)
    assert error.value.field == "granularity"


def test_bucket_start_aligns_to_the_origin() -> None:
    origin = datetime(2025, 10, 20, tzinfo=UTC)
    five = timedelta(minutes=5)
    assert bucket_start(origin + timedelta(minutes=7, seconds=3), five, origin) == (
        origin + timedelta(minutes=5)
    )
    assert bucket_start(origin + five, five, origin) == origin + five
    assert bucket_start(origin - timedelta(seconds=1), five, origin) == origin - five


@settings(deadline=None)
@given(offset_s=st.integers(-(10**6), 10**6), width_s=st.integers(1, 7 * 24 * 3600))
def test_a_bucket_holds_its_instant(offset_s: int, width_s: int) -> None:
    origin = datetime(2025, 10, 20, tzinfo=UTC)
    at = origin + timedelta(seconds=offset_s)
    width = timedelta(seconds=width_s)
    start = bucket_start(at, width, origin)
    assert start <= at < start + width
    assert (start - origin).total_seconds() % width_s == 0
