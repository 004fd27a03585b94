"""Targeting: OpenADR 3.1's string targets, for gridcore events and VTN privacy."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gridcore.errors import InvalidInput
from gridcore.targeting import (
    MAX_TARGET_LENGTH,
    granted,
    is_targeted,
    matches_query,
    readable,
    validate_targets,
)

GRANTED = granted("ven-1", ["group1", "areaX"], ["resource_0999"])


def test_a_ven_is_granted_its_id_its_targets_and_its_resources_targets() -> None:
    assert {"ven-1", "group1", "areaX", "resource_0999"} == GRANTED


def test_an_untargeted_event_is_for_every_ven() -> None:
    assert is_targeted((), GRANTED)
    assert is_targeted((), granted("other", []))


def test_a_targeted_event_is_for_the_vens_granted_one_of_its_targets() -> None:
    assert is_targeted(["group2", "areaX"], GRANTED)
    assert is_targeted(["ven-1"], GRANTED)
    assert not is_targeted(["group2"], GRANTED)
    assert not is_targeted(["group1"], granted("ven-2", ["group2"]))


def test_targets_keep_order_and_drop_repeats() -> None:
    assert validate_targets(["b", "a", "b"]) == ("b", "a")


@pytest.mark.parametrize(
    "bad", ["", " group1", "group1 ", "x" * (MAX_TARGET_LENGTH + 1), 7, None, {"type": "GROUP"}]
)
def test_bad_targets_are_refused_with_the_field(bad: object) -> None:
    with pytest.raises(InvalidInput) as err:
        validate_targets(["ok", bad], field="targets")
    assert err.value.field == "targets"


def test_a_ven_reads_only_targeted_objects_granted_to_it_and_sees_only_those_targets() -> None:
    assert readable(["group1", "secret-group"], GRANTED) == ("group1",)
    assert readable(["secret-group"], GRANTED) is None
    assert readable([], GRANTED) == ()


def test_a_ven_naming_targets_narrows_what_it_reads_and_sees() -> None:
    assert readable(["group1", "areaX"], GRANTED, ["areaX"]) == ("areaX",)
    assert readable(["group1"], GRANTED, ["areaX"]) is None
    # Asking for a target it was not granted grants nothing.
    assert readable(["group2"], GRANTED, ["group2"]) is None
    # A query's targets keep only objects carrying one of them.
    assert readable([], GRANTED, ["group1"]) is None
    assert readable([], GRANTED, []) == ()


def test_bl_target_filter() -> None:
    assert matches_query(["a"], None)
    assert matches_query([], [])
    assert matches_query(["a", "b"], ["b"])
    assert not matches_query([], ["b"])
    assert not matches_query(["a"], ["b"])


names = st.text(alphabet="abcxyz-1", min_size=1, max_size=4)


@given(st.lists(names, max_size=5), st.lists(names, max_size=5), st.lists(names, max_size=5))
def test_what_a_ven_reads_is_a_granted_subset_of_the_object_targets(
    obj: list[str], ven: list[str], asked: list[str]
) -> None:
    g = granted("v", ven)
    shown = readable(obj, g, asked or None)
    if shown is None:
        return
    assert set(shown) <= set(obj) and set(shown) <= g
    assert is_targeted(obj, g)
