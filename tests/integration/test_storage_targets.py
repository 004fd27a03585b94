"""Contract of targets in storage (gridcore.targeting), the same on every
backend (memory, SQLite, PostgreSQL): VENs', loads' and events' targets
round-trip, and ``VenRepository.targeted`` finds exactly the VENs
``gridcore.targeting.is_targeted`` finds among their granted targets."""

from __future__ import annotations

import random
from collections.abc import AsyncIterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from storage_contract import BACKENDS, Backend, open_backend

from gridcore.events import DrEvent
from gridcore.targeting import is_targeted
from gridcore.telemetry import LoadSample, TelemetrySample
from gridcore.ven import Load, Ven

T0 = datetime(2025, 10, 20, 15, 0, tzinfo=UTC)
# Full length, and characters a careless encoding would break (quotes, a
# comma, braces: the text[] literal's own syntax, non-ASCII).
ODD = ("x" * 128, 'say "hi"', "a,b", "{braces}", "Zürich-Süd", "groupe été")


@pytest.fixture(params=BACKENDS)
async def backend(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Backend]:
    async for opened in open_backend(request, tmp_path):
        yield opened


async def _add(backend: Backend, *vens: Ven) -> None:
    async with backend.uow() as uow:
        for ven in vens:
            await uow.vens.add(ven)
        await uow.commit()


async def test_ven_load_and_event_targets_round_trip(backend: Backend) -> None:
    load = Load(id="ev1", type="ev", shed_capability_kw=7.2, targets=("feeder-7", *ODD))
    ven = Ven(id="ven-1", name="Home", registered_at=T0, loads=(load,), targets=("north", *ODD))
    event = DrEvent(
        id="evt-00000001",
        start_time=T0,
        end_time=T0 + timedelta(hours=1),
        requested_reduction_kw=5.0,
        targets=("north", *ODD),
    )
    untargeted = replace(event, id="evt-00000002", targets=())
    await _add(backend, ven, Ven(id="ven-2", name="Plain"))
    async with backend.uow() as uow:
        await uow.events.add(event)
        await uow.events.add(untargeted)
        await uow.commit()
    async with backend.uow() as uow:
        stored = await uow.vens.get("ven-1")
        plain = await uow.vens.get("ven-2")
        assert stored is not None and plain is not None
        assert stored.targets == ("north", *ODD) and plain.targets == ()
        assert stored.loads[0].targets == ("feeder-7", *ODD)
        assert (await uow.events.get(event.id)) == event
        assert (await uow.events.get(untargeted.id)) == untargeted
        locked = await uow.events.lock([event.id])
        assert locked[event.id].targets == event.targets
        listed = {e.id: e.targets for e in (await uow.events.page()).items}
        assert listed == {event.id: event.targets, untargeted.id: ()}
        paged = await uow.vens.page()
        assert [v.targets for v in paged.items] == [stored.targets, ()]


async def test_update_replaces_and_clears_targets(backend: Backend) -> None:
    await _add(backend, Ven(id="ven-1", name="Home", targets=("north",)))
    async with backend.uow() as uow:
        ven = await uow.vens.get("ven-1")
        assert ven is not None
        await uow.vens.update(replace(ven, targets=("south", "feeder-2")))
        await uow.commit()
    async with backend.uow() as uow:
        ven = await uow.vens.get("ven-1")
        assert ven is not None and ven.targets == ("south", "feeder-2")
        await uow.vens.update(replace(ven, targets=()))
        await uow.vens.save_load("ven-1", Load(id="ev1", targets=("feeder-9",)))
        await uow.commit()
    async with backend.uow() as uow:
        ven = await uow.vens.get("ven-1")
        assert ven is not None and ven.targets == ()
        assert ven.loads[0].targets == ("feeder-9",)
        await uow.vens.save_load("ven-1", replace(ven.loads[0], targets=()))
        await uow.commit()
    async with backend.uow() as uow:
        ven = await uow.vens.get("ven-1")
        assert ven is not None and ven.loads[0].targets == ()
        assert await uow.vens.targeted(["feeder-9"]) == set()


async def test_targeted_is_the_domain_rule_over_a_fleet(backend: Backend) -> None:
    """A random fleet of VENs with and without targets, on themselves and on
    their loads; for many target lists, the store answers what
    ``is_targeted`` over each VEN's granted targets answers."""
    rng = random.Random(17)
    pool = ["north", "south", "feeder-1", "feeder-2", "postal-94110", "ven-03", *ODD]
    vens = []
    for n in range(40):
        loads = tuple(
            Load(id=f"load{k}", targets=tuple(rng.sample(pool, rng.choice([0, 0, 1, 2]))))
            for k in range(rng.choice([0, 1, 2]))
        )
        targets = tuple(rng.sample(pool, rng.choice([0, 0, 1, 3])))
        vens.append(Ven(id=f"ven-{n:02d}", name=f"Home {n}", loads=loads, targets=targets))
    await _add(backend, *vens)
    asked = [[t] for t in pool] + [rng.sample(pool, 3) for _ in range(10)]
    asked += [["nobody"], ["ven-07"], ["ven-07", "south"], []]
    async with backend.uow() as uow:
        for targets in asked:
            expected = {v.id for v in vens if is_targeted(targets, v.granted_targets())}
            assert await uow.vens.targeted(targets) == expected, targets


async def test_a_removed_ven_is_targeted_no_more(backend: Backend) -> None:
    await _add(
        backend,
        Ven(id="ven-1", name="a", loads=(Load(id="ev1", targets=("feeder-1",)),)),
        Ven(id="ven-2", name="b", targets=("feeder-1",)),
    )
    async with backend.uow() as uow:
        assert await uow.vens.remove("ven-1")
        await uow.commit()
    async with backend.uow() as uow:
        assert await uow.vens.targeted(["feeder-1"]) == {"ven-2"}


async def test_telemetry_keeps_configured_load_targets_and_grants_none(backend: Backend) -> None:
    """A VEN registered by its telemetry has no targets; a load's reported
    state carries the targets configured for it, whatever the VEN reports."""
    sample = TelemetrySample(
        ven_id="ven-1",
        timestamp=T0,
        loads=(
            LoadSample(load_id="ev1", type="ev", shed_capability_kw=7.0),
            LoadSample(load_id="dryer", type="dryer", shed_capability_kw=3.0),
        ),
    )
    await backend.store.append([sample])
    async with backend.uow() as uow:
        ven = await uow.vens.get("ven-1")
        assert ven is not None and ven.targets == ()
        await uow.vens.update(replace(ven, targets=("north",)))
        await uow.vens.save_load("ven-1", Load(id="ev1", type="ev", targets=("feeder-7",)))
        await uow.commit()
    later = replace(sample, timestamp=T0 + timedelta(seconds=5))
    await backend.store.append([later])
    async with backend.uow() as uow:
        ven = await uow.vens.get("ven-1")
        assert ven is not None and ven.targets == ("north",)
        assert await uow.vens.targeted(["feeder-7"]) == {"ven-1"}
    loads = {load.id: load for load in await backend.queries.latest_loads("ven-1")}
    assert loads["ev1"].targets == ("feeder-7",) and loads["dryer"].targets == ()
    many = await backend.queries.latest_loads_many(["ven-1"])
    assert [load.targets for load in many["ven-1"]] == [(), ("feeder-7",)]
