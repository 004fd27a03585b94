"""The fleet split into shards (``gridcore ven --processes N``): every VEN in
exactly one shard, each as the whole fleet would have built it."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from entrypoints.simulator.fleet import Fleet, FleetConfig, Shard, build_vens


async def _never(n: int) -> object:  # Fleet needs a connector; these tests never connect
    raise AssertionError("no connection expected")


@settings(max_examples=60, deadline=None)
@given(count=st.integers(1, 400), shards=st.integers(1, 16), start=st.integers(0, 5))
def test_each_ven_position_is_in_exactly_one_shard(count: int, shards: int, start: int) -> None:
    seen: list[int] = []
    for index in range(shards):
        seen += Shard(index, shards).positions(count)
    assert sorted(seen) == list(range(count))
    sizes = [len(Shard(index, shards).positions(count)) for index in range(shards)]
    assert max(sizes) - min(sizes) <= 1


def test_shards_build_the_fleets_vens_with_the_same_behaviours() -> None:
    config = FleetConfig(
        count=23, prefix="shard", seed=5, reject_fraction=0.3, silent_fraction=0.2, start_index=3
    )
    whole = {v.ven_id: v for v in build_vens(config)}
    parts = [build_vens(config, Shard(index, 4)) for index in range(4)]
    ids = [v.ven_id for part in parts for v in part]
    assert len(ids) == len(set(ids)) == 23
    assert set(ids) == set(whole) == {f"shard-{n}" for n in range(3, 26)}
    for part in parts:
        for ven in part:
            assert ven.behaviour is whole[ven.ven_id].behaviour
            assert ven.panel == whole[ven.ven_id].panel


def test_a_fleet_of_one_shard_holds_only_that_shards_vens() -> None:
    config = FleetConfig(count=10, prefix="f", vens_per_connection=2)
    fleet = Fleet(config, _never, shard=Shard(1, 3))  # type: ignore[arg-type]
    assert list(fleet.vens) == ["f-2", "f-5", "f-8"]
    assert fleet.connections == 2


@pytest.mark.parametrize(("index", "of"), [(0, 0), (-1, 2), (2, 2)])
def test_a_shard_outside_the_split_is_refused(index: int, of: int) -> None:
    with pytest.raises(ValueError, match="shard"):
        Shard(index, of)
