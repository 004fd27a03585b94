"""Shed allocation across VENs: max-min fair water-filling in whole watts."""

from __future__ import annotations

import math
import random
import time

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gridcore import InvalidInput, allocate_shed, allocate_watts
from gridcore.quantities import to_watts

# --- examples from the documents and the design ----------------------------


def test_documents_split_ten_kw_over_two_vens_equally() -> None:
    assert allocate_shed(10, {"a": 8, "b": 8}) == {"a": 5.0, "b": 5.0}


def test_a_capped_ven_gives_its_remainder_to_the_others() -> None:
    assert allocate_shed(10, {"a": 2, "b": 8, "c": 8}) == {"a": 2.0, "b": 4.0, "c": 4.0}


def test_water_filling_caps_several_levels() -> None:
    # Equal split would be 3 kW each; a (1) and b (2) cannot carry it, so c and
    # d share the 9 kW left: 4.5 each.
    assert allocate_shed(12, {"a": 1, "b": 2, "c": 10, "d": 10}) == {
        "a": 1.0,
        "b": 2.0,
        "c": 4.5,
        "d": 4.5,
    }


def test_request_above_total_puts_everyone_at_cap() -> None:
    assert allocate_shed(100, {"a": 2.5, "b": 8, "c": 0.75}) == {"a": 2.5, "b": 8.0, "c": 0.75}


def test_request_equal_to_total_puts_everyone_at_cap() -> None:
    assert allocate_shed(10.5, {"a": 2.5, "b": 8}) == {"a": 2.5, "b": 8.0}


def test_zero_caps_get_nothing_and_the_rest_carry_the_request() -> None:
    assert allocate_shed(10, {"a": 0, "b": 8, "c": 8}) == {"a": 0.0, "b": 5.0, "c": 5.0}
    assert allocate_shed(10, {"a": 0.0, "b": 0.0}) == {"a": 0.0, "b": 0.0}


def test_zero_request_gives_zero_to_everyone() -> None:
    assert allocate_shed(0, {"a": 3, "b": 4}) == {"a": 0.0, "b": 0.0}


def test_no_vens_no_shares() -> None:
    assert allocate_shed(10, {}) == {}


def test_leftover_watts_go_one_each_in_id_order() -> None:
    # 10 W over three equal VENs: 4 + 3 + 3, the extra watt to the first id.
    assert allocate_shed(0.010, {"c": 1, "a": 1, "b": 1}) == {
        "a": 0.004,
        "b": 0.003,
        "c": 0.003,
    }


def test_leftover_watt_goes_by_id_not_by_cap() -> None:
    # Both VENs are below their caps (level 5 W); the 11th watt goes to "a",
    # the first id, even though "b" has the smaller cap.
    assert allocate_watts(11, {"b": 100, "a": 9_000}) == {"a": 6, "b": 5}


def test_negative_availability_counts_as_none() -> None:
    # A VEN exporting solar reports negative availability: it has nothing to shed.
    assert allocate_shed(6, {"solar": -3.0, "b": 8}) == {"solar": 0.0, "b": 6.0}


@pytest.mark.parametrize("requested", [-1.0, -0.001, math.nan, math.inf, -math.inf, True, False])
def test_bad_request_is_invalid_input(requested: float) -> None:
    with pytest.raises(InvalidInput) as error:
        allocate_shed(requested, {"a": 5})
    assert error.value.field == "requestedReductionKw"


@pytest.mark.parametrize("available", [math.nan, math.inf, -math.inf, True])
def test_bad_availability_is_invalid_input(available: float) -> None:
    with pytest.raises(InvalidInput) as error:
        allocate_shed(5, {"ok": 3, "bad": available})
    assert error.value.field == "available[bad]"


def test_allocate_watts_refuses_a_negative_request() -> None:
    with pytest.raises(ValueError, match="non-negative"):
        allocate_watts(-1, {"a": 10})


def test_allocate_watts_is_exact_in_watts() -> None:
    assert allocate_watts(10_001, {"a": 2_000, "b": 8_000, "c": 8_000}) == {
        "a": 2_000,
        "b": 4_001,
        "c": 4_000,
    }


# --- properties -----------------------------------------------------------

ven_ids = st.text(alphabet="abcdefghij0123456789-", min_size=1, max_size=6)
availability_kw = st.one_of(
    st.just(0.0),
    st.floats(min_value=0.0, max_value=50.0, allow_nan=False, allow_infinity=False),
    st.integers(min_value=0, max_value=50).map(float),
)
fleets = st.dictionaries(ven_ids, availability_kw, max_size=25)
requests_kw = st.one_of(
    st.floats(min_value=0.0, max_value=1500.0, allow_nan=False, allow_infinity=False),
    st.integers(min_value=0, max_value=200).map(float),
)

PROPERTY = settings(deadline=None, max_examples=200)


def _watts(shares: dict[str, float]) -> dict[str, int]:
    return {ven_id: to_watts(kw) for ven_id, kw in shares.items()}


def _caps(fleet: dict[str, float]) -> dict[str, int]:
    return {ven_id: max(to_watts(kw), 0) for ven_id, kw in fleet.items()}


@PROPERTY
@given(requested=requests_kw, fleet=fleets)
def test_shares_sum_exactly_to_what_can_be_shed(requested: float, fleet: dict[str, float]) -> None:
    shares = _watts(allocate_shed(requested, fleet))
    assert set(shares) == set(fleet)
    assert sum(shares.values()) == min(to_watts(requested), sum(_caps(fleet).values()))


@PROPERTY
@given(requested=requests_kw, fleet=fleets)
def test_each_share_is_between_zero_and_availability(
    requested: float, fleet: dict[str, float]
) -> None:
    shares = _watts(allocate_shed(requested, fleet))
    caps = _caps(fleet)
    for ven_id, share in shares.items():
        assert 0 <= share <= caps[ven_id]


@PROPERTY
@given(requested=requests_kw, fleet=fleets, data=st.data())
def test_invariant_under_reordering(
    requested: float, fleet: dict[str, float], data: st.DataObject
) -> None:
    reordered = dict(data.draw(st.permutations(list(fleet.items()))))
    assert allocate_shed(requested, reordered) == allocate_shed(requested, fleet)


@PROPERTY
@given(low=requests_kw, extra=requests_kw, fleet=fleets)
def test_monotone_in_the_request(low: float, extra: float, fleet: dict[str, float]) -> None:
    before = _watts(allocate_shed(low, fleet))
    after = _watts(allocate_shed(low + extra, fleet))
    for ven_id in fleet:
        assert after[ven_id] >= before[ven_id]


@PROPERTY
@given(requested_w=st.integers(0, 20_000), caps=st.dictionaries(ven_ids, st.integers(0, 5_000)))
def test_monotone_watt_by_watt(requested_w: int, caps: dict[str, int]) -> None:
    # One watt more is the finest step: it must never take a watt from anyone.
    before = allocate_watts(requested_w, caps)
    after = allocate_watts(requested_w + 1, caps)
    assert all(after[v] >= before[v] for v in caps)
    assert sum(after.values()) - sum(before.values()) == (
        1 if requested_w < sum(caps.values()) else 0
    )


@PROPERTY
@given(requested=requests_kw, fleet=fleets)
def test_zero_availability_gets_zero(requested: float, fleet: dict[str, float]) -> None:
    shares = allocate_shed(requested, fleet)
    for ven_id, cap in _caps(fleet).items():
        if cap == 0:
            assert shares[ven_id] == 0.0


@PROPERTY
@given(requested=requests_kw, fleet=fleets)
def test_independent_of_the_order_vens_are_listed(
    requested: float, fleet: dict[str, float]
) -> None:
    reordered = dict(reversed(list(fleet.items())))
    assert allocate_shed(requested, fleet) == allocate_shed(requested, reordered)


@PROPERTY
@given(requested=requests_kw, fleet=fleets)
def test_max_min_fair(requested: float, fleet: dict[str, float]) -> None:
    """A VEN held below its cap gets at least as much as anyone else (the
    leftover-watt tie-break may give another VEN one watt more)."""
    shares = _watts(allocate_shed(requested, fleet))
    caps = _caps(fleet)
    for ven_id, share in shares.items():
        if share < caps[ven_id]:
            assert all(other <= share + 1 for other in shares.values())


@PROPERTY
@given(
    n=st.integers(1, 20),
    requested=st.floats(min_value=0.0, max_value=100.0, allow_nan=False),
    headroom=st.floats(min_value=0.0, max_value=10.0, allow_nan=False),
)
def test_equals_the_documents_equal_split_when_everyone_can_carry_it(
    n: int, requested: float, headroom: float
) -> None:
    fleet = {f"ven-{i:02d}": requested / n + 0.001 + headroom for i in range(n)}
    shares = _watts(allocate_shed(requested, fleet))
    equal_w = to_watts(requested) / n
    assert all(abs(share - equal_w) < 1 for share in shares.values())


def test_hundred_thousand_vens_sum_correctly_without_quadratic_blow_up() -> None:
    rng = random.Random(20251020)
    fleet = {
        f"ven-{i:06d}": 0.0 if i % 10 == 0 else round(rng.uniform(0.0, 15.0), 3)
        for i in range(100_000)
    }
    caps = _caps(fleet)
    total_w = sum(caps.values())
    requested = to_watts(total_w / 1000.0 * 0.6) / 1000.0

    started = time.perf_counter()
    shares = allocate_shed(requested, fleet)
    elapsed = time.perf_counter() - started

    watts = _watts(shares)
    assert len(watts) == 100_000
    assert sum(watts.values()) == to_watts(requested)
    assert all(0 <= watts[v] <= caps[v] for v in fleet)
    # Not a benchmark: a generous bound that only an O(n^2) algorithm would miss.
    assert elapsed < 5.0, f"allocation over 100,000 VENs took {elapsed:.2f} s"

    everything = _watts(allocate_shed(total_w / 1000.0 + 1.0, fleet))
    assert everything == caps


# --- targeted events -----------------------------------------------------------


def test_a_targeted_event_is_allocated_over_the_vens_it_targets_only() -> None:
    available = {"north-1": 8, "north-2": 8, "south-1": 8}
    # 10 kW over the two northern VENs: 5 each; the southern one is not asked.
    assert allocate_shed(10, available, {"north-1", "north-2"}) == {
        "north-1": 5.0,
        "north-2": 5.0,
    }
    # A request larger than the targeted VENs can shed stops at what they can:
    # the untargeted one never makes up the difference.
    assert allocate_shed(20, available, {"north-1"}) == {"north-1": 8.0}


def test_an_untargeted_event_is_allocated_over_the_whole_fleet() -> None:
    available = {"a": 8, "b": 8, "c": 8}
    assert allocate_shed(12, available, None) == allocate_shed(12, available)
    assert allocate_shed(12, available) == {"a": 4.0, "b": 4.0, "c": 4.0}


def test_targets_naming_no_available_ven_allocate_nothing() -> None:
    assert allocate_shed(10, {"a": 8}, set()) == {}
    assert allocate_shed(10, {"a": 8}, {"offline-ven"}) == {}


@given(
    st.floats(min_value=0, max_value=500),
    st.dictionaries(
        st.sampled_from([f"ven-{i}" for i in range(12)]),
        st.floats(min_value=0, max_value=50),
        max_size=12,
    ),
    st.sets(st.sampled_from([f"ven-{i}" for i in range(15)])),
)
def test_targeted_allocation_is_the_allocation_over_the_targeted_vens(
    requested: float, available: dict[str, float], targeted: set[str]
) -> None:
    shares = allocate_shed(requested, available, targeted)
    assert set(shares) <= targeted
    assert shares == allocate_shed(
        requested, {v: kw for v, kw in available.items() if v in targeted}
    )


# --- OpenADR devices beside the MQTT VENs -------------------------------------


def test_devices_share_by_the_same_water_filling_and_the_rest_is_left_to_the_mqtt_vens() -> None:
    from gridcore.allocation import allocate_with_devices

    # 12 kW over two MQTT VENs of 8 kW and a device declaring 2: the device is
    # capped at 2, the MQTT VENs carry the 10 left (5 each at activation)
    left, devices = allocate_with_devices(12, {"a": 8, "b": 8}, None, {"dev": 2})
    assert (left, devices) == (10.0, {"dev": 2.0})
    # a device that can carry more gets the fair level, as a VEN would
    left, devices = allocate_with_devices(9, {"a": 8, "b": 8}, None, {"dev": 20})
    assert (left, devices) == (6.0, {"dev": 3.0})
    # only the targeted MQTT VENs share with the devices: c is not targeted
    left, devices = allocate_with_devices(9, {"a": 8, "c": 8}, {"a"}, {"dev": 20})
    assert (left, devices) == (4.5, {"dev": 4.5})
    # a device named like a VEN is still a device (separate key spaces)
    left, devices = allocate_with_devices(4, {"a": 8}, None, {"a": 8})
    assert (left, devices) == (2.0, {"a": 2.0})
    # no MQTT VEN with shed now: the devices carry what they declare, the rest stays
    left, devices = allocate_with_devices(5, {}, None, {"d1": 1, "d2": 1.5})
    assert (left, devices) == (2.5, {"d1": 1.0, "d2": 1.5})


@given(
    st.integers(0, 50_000),
    st.dictionaries(st.sampled_from("abcdef"), st.integers(0, 20_000), max_size=6),
    st.dictionaries(st.sampled_from("uvwxyz"), st.integers(0, 20_000), max_size=6),
)
@settings(max_examples=200, deadline=None)
def test_devices_and_vens_shares_add_up_to_the_request_to_the_watt(
    requested_w: int, vens_w: dict[str, int], devices_w: dict[str, int]
) -> None:
    from gridcore.allocation import allocate_with_devices

    left, devices = allocate_with_devices(
        requested_w / 1000, {k: v / 1000 for k, v in vens_w.items()}, None,
        {k: v / 1000 for k, v in devices_w.items()},
    )  # fmt: skip
    assert to_watts(left) + sum(to_watts(kw) for kw in devices.values()) == requested_w
    assert all(to_watts(devices[d]) <= devices_w[d] for d in devices)
    # nothing is left to the MQTT VENs beyond what they cannot all carry now
    # while a device still has headroom
    if to_watts(left) > sum(vens_w.values()):
        assert all(to_watts(devices.get(d, 0)) == cap for d, cap in devices_w.items())
