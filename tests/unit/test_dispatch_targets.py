"""Targeted events over the in-memory adapters (gridcore.targeting): the
dispatcher allocates, sends and re-allocates only to the VENs an event
targets; an untargeted event keeps meaning the whole fleet."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta

import pytest
from tests.unit import test_dispatch
from tests.unit.test_dispatch import Fleet

from gridcore import CommandOp, InvalidInput, services
from gridcore.fleet import LoadChanges, configure_load, send_event_command, update_ven

# The in-memory dispatcher with a recording publisher and a manual clock.
fleet = test_dispatch.fleet


async def _grant(fleet: Fleet, ven_id: str, *targets: str) -> None:
    await update_ven(fleet.uow, ven_id, targets=list(targets))


async def _targeted_event(
    fleet: Fleet,
    kw: float,
    targets: list[str],
    *,
    require_match: bool = True,
) -> str:
    now = fleet.clock.now()
    event = await services.create_event(
        fleet.uow,
        fleet.clock,
        fleet.ids,
        start_time=now,
        end_time=now + timedelta(hours=1),
        requested_reduction_kw=kw,
        targets=targets,
        require_match=require_match,
    )
    return event.id


async def _four_homes(fleet: Fleet) -> None:
    """ven-1 and ven-2 in group ``north``; ven-3 on feeder-7 through its EV
    charger's target; ven-4 granted nothing. Each can shed 8 kW."""
    for n in range(1, 5):
        await fleet.report(f"ven-{n}", 8)
    await _grant(fleet, "ven-1", "north")
    await _grant(fleet, "ven-2", "north", "postal-94110")
    queries = fleet.dispatcher._queries
    await configure_load(fleet.uow, queries, "ven-3", "ev1", LoadChanges(targets=("feeder-7",)))


def _asked(fleet: Fleet, event_id: str) -> dict[str, float]:
    return {
        c.ven_id: c.shed_kw or 0.0
        for c in fleet.publisher.sent
        if c.op is CommandOp.EVENT and c.event_id == event_id
    }


async def test_a_group_event_is_sent_to_that_group_only(fleet: Fleet) -> None:
    await _four_homes(fleet)
    event_id = await _targeted_event(fleet, 10, ["north"])
    await fleet.dispatcher.run_once()
    assert _asked(fleet, event_id) == {"ven-1": 5.0, "ven-2": 5.0}
    event = await fleet.get_event(event_id)
    assert event is not None and event.targets == ("north",)


async def test_targets_reach_vens_by_id_and_by_their_loads_targets(fleet: Fleet) -> None:
    await _four_homes(fleet)
    event_id = await _targeted_event(fleet, 9, ["feeder-7", "ven-4"])
    await fleet.dispatcher.run_once()
    assert _asked(fleet, event_id) == {"ven-3": 4.5, "ven-4": 4.5}


async def test_an_untargeted_event_still_reaches_the_whole_fleet(fleet: Fleet) -> None:
    await _four_homes(fleet)
    event_id = await _targeted_event(fleet, 12, [])
    await fleet.dispatcher.run_once()
    assert _asked(fleet, event_id) == {f"ven-{n}": 3.0 for n in range(1, 5)}


async def test_a_shortfall_is_reallocated_within_the_targets(fleet: Fleet) -> None:
    await _four_homes(fleet)
    event_id = await _targeted_event(fleet, 10, ["north"])
    await fleet.dispatcher.run_once()
    first = {c.ven_id: c for c in fleet.publisher.sent if c.event_id == event_id}
    await fleet.ack(first["ven-1"], status="rejected", kw=0.0)
    await fleet.ack(first["ven-2"])
    fleet.clock.advance(timedelta(seconds=10))
    for n in range(1, 5):  # every VEN still online with 8 kW to shed
        await fleet.report(f"ven-{n}", 8)
    report = await fleet.dispatcher.run_once()
    assert report.reallocated == 1
    again = [c for c in fleet.publisher.sent if c.event_id == event_id][len(first) :]
    # ven-2 takes the whole 10 kW it can (8); ven-3 and ven-4 have headroom
    # but are not targeted, and ven-1 refused.
    assert [(c.ven_id, c.shed_kw) for c in again] == [("ven-2", 8.0)]


async def test_a_ven_granted_the_group_later_is_reached_by_the_next_event(fleet: Fleet) -> None:
    await _four_homes(fleet)
    await _grant(fleet, "ven-4", "north")
    event_id = await _targeted_event(fleet, 9, ["north"])
    await fleet.dispatcher.run_once()
    assert _asked(fleet, event_id) == {"ven-1": 3.0, "ven-2": 3.0, "ven-4": 3.0}


async def test_targets_matching_no_ven_are_refused_at_creation(fleet: Fleet) -> None:
    await _four_homes(fleet)
    with pytest.raises(InvalidInput, match="targets match no VEN") as err:
        await _targeted_event(fleet, 5, ["nroth"])
    assert err.value.field == "targets"
    async with fleet.uow() as tx:
        assert (await tx.events.page()).total_count == 0


async def test_an_event_allowed_to_match_nobody_activates_with_nothing_sent(fleet: Fleet) -> None:
    await _four_homes(fleet)
    event_id = await _targeted_event(fleet, 5, ["group-to-come"], require_match=False)
    report = await fleet.dispatcher.run_once()
    assert report.activated == [event_id] and _asked(fleet, event_id) == {}


async def test_a_manual_command_goes_only_to_a_ven_the_event_targets(fleet: Fleet) -> None:
    await _four_homes(fleet)
    event_id = await _targeted_event(fleet, 10, ["north"])
    await fleet.dispatcher.run_once()
    with pytest.raises(InvalidInput, match="does not target VEN 'ven-3'"):
        await send_event_command(
            fleet.uow, fleet.clock, fleet.ids, ven_id="ven-3", event_id=event_id, shed_kw=1.0
        )
    top_up = await send_event_command(
        fleet.uow, fleet.clock, fleet.ids, ven_id="ven-2", event_id=event_id, shed_kw=6.0
    )
    assert top_up.ven_id == "ven-2"


async def test_a_ven_never_grants_itself_targets(fleet: Fleet) -> None:
    """Telemetry registers a VEN without targets and never changes them."""
    await _four_homes(fleet)
    async with fleet.uow() as tx:
        before = await tx.vens.get("ven-1")
    await fleet.report("ven-1", 3)
    await fleet.report("ven-9", 3)  # registered by its telemetry
    async with fleet.uow() as tx:
        after, new = await tx.vens.get("ven-1"), await tx.vens.get("ven-9")
    assert before is not None and after is not None and new is not None
    assert after.targets == before.targets == ("north",) and new.targets == ()
    assert replace(after, last_seen_at=None) == replace(before, last_seen_at=None)
