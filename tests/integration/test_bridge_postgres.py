"""The OpenADR bridge's races on PostgreSQL (gridcore.bridging): two
processes (each its own engine, as two API workers or the API and a worker)
handling the same OpenADR event at once make one gridcore event, never two,
and a PUT racing a DELETE always ends cancelled."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from adapters.system import ManualClock
from entrypoints.container import Storage, sql_storage
from gridcore.bridge import bridged_event_id, share_kw, share_parent
from gridcore.bridging import OpenAdrBridge
from gridcore.events import EventStatus
from gridcore.openadr import Kind, ObjectQuery, index_of
from gridcore.vtn import stamp

T0 = datetime(2030, 3, 1, 12, 0, tzinfo=UTC)
SHED = "DISPATCH_SETPOINT_RELATIVE"
ROUNDS = 20


@pytest.fixture
async def two(migrated_postgres_url: str) -> AsyncIterator[tuple[Storage, Storage]]:
    a, b = sql_storage(migrated_postgres_url, 10.0), sql_storage(migrated_postgres_url, 10.0)
    yield a, b
    await a.close()
    await b.close()


def _bridge(storage: Storage, clock: ManualClock) -> OpenAdrBridge:
    assert storage.openadr is not None
    return OpenAdrBridge(storage.uow_factory, storage.openadr, clock)


async def _stored_event(storage: Storage, n: int, start: datetime, kw: float) -> dict[str, Any]:
    """An OpenADR event as the VTN stores it (the bridge reads what is stored)."""
    assert storage.openadr is not None
    if await storage.openadr.get(Kind.PROGRAM, "program-race") is None:
        program = {"id": "program-race", "objectType": "PROGRAM", "programName": "race",
                   "createdDateTime": stamp(T0), "modificationDateTime": stamp(T0)}  # fmt: skip
        await storage.openadr.add(Kind.PROGRAM, program, index_of(Kind.PROGRAM, program))
    event = {
        "id": f"event-race-{n:04d}",
        "objectType": "EVENT",
        "createdDateTime": stamp(T0),
        "modificationDateTime": stamp(T0),
        "programID": "program-race",
        "intervalPeriod": {"start": stamp(start), "duration": "PT1H"},
        "intervals": [{"id": 0, "payloads": [{"type": SHED, "values": [kw]}]}],
    }
    await storage.openadr.add(Kind.EVENT, event, index_of(Kind.EVENT, event))
    return event


async def test_one_openadr_event_makes_one_gridcore_event_whoever_gets_there_first(
    two: tuple[Storage, Storage],
) -> None:
    clock = ManualClock(T0)
    a, b = two
    for n in range(ROUNDS):
        event = await _stored_event(a, n, T0 + timedelta(hours=1), 5)
        made = await asyncio.gather(
            _bridge(a, clock).follow(event), _bridge(b, clock).follow(event)
        )
        assert {e.id for e in made if e is not None} == {bridged_event_id(event["id"])}
    async with a.uow_factory() as uow:
        page = await uow.events.page(limit=1000)
    assert page.total_count == ROUNDS
    # and one bridge report each, whichever process wrote it
    assert a.openadr is not None
    reports = await a.openadr.search(Kind.REPORT, ObjectQuery(), 0, 1000)
    assert len(reports) == ROUNDS


async def test_an_update_racing_a_delete_always_ends_cancelled(
    two: tuple[Storage, Storage],
) -> None:
    clock = ManualClock(T0)
    a, b = two
    for n in range(ROUNDS):
        event = await _stored_event(a, 100 + n, T0 + timedelta(hours=1), 5)
        await _bridge(a, clock).follow(event)
        moved = {**event, "intervalPeriod": {"start": stamp(T0 + timedelta(hours=3)),
                                             "duration": "PT1H"}}  # fmt: skip
        racers = [_bridge(a, clock).follow(moved), _bridge(b, clock).withdraw(event)]
        if n % 2:
            racers.reverse()
        await asyncio.gather(*racers)
        async with a.uow_factory() as uow:
            stored = await uow.events.get(bridged_event_id(event["id"]))
        assert stored is not None and stored.status is EventStatus.CANCELLED


async def test_two_processes_following_one_event_write_one_share_per_device(
    two: tuple[Storage, Storage],
) -> None:
    """A device's share event is written by whichever process bridges the
    event: racing, they write it once (its id derives from the event's and the
    device's), with the same kW, and the gridcore event asks the rest."""
    clock = ManualClock(T0)
    a, b = two
    assert a.openadr is not None
    stamps = {"createdDateTime": stamp(T0), "modificationDateTime": stamp(T0)}
    ven = {"id": "ven-device-1", "objectType": "VEN", "venName": "device-1",
           "clientID": "device-1", **stamps}  # fmt: skip
    await a.openadr.add(Kind.VEN, ven, index_of(Kind.VEN, ven))
    resource = {"id": "resource-device-1", "objectType": "RESOURCE", "resourceName": "hvac",
                "venID": ven["id"], "clientID": "device-1", **stamps,
                "attributes": [{"type": "MAX_POWER_CONSUMPTION", "values": [2]}]}  # fmt: skip
    await a.openadr.add(Kind.RESOURCE, resource, index_of(Kind.RESOURCE, resource))

    def bridge(storage: Storage) -> OpenAdrBridge:
        assert storage.openadr is not None

        async def available(now: datetime) -> dict[str, float]:
            return await storage.telemetry_queries.available_shed(now, timedelta(minutes=1))

        return OpenAdrBridge(storage.uow_factory, storage.openadr, clock, available=available)

    for n in range(ROUNDS):
        event = await _stored_event(a, n, T0 + timedelta(hours=1), 5)
        made = await asyncio.gather(bridge(a).follow(event), bridge(b).follow(event))
        # no MQTT VEN has shed: the device carries what it declares, the rest stays
        assert {e.requested_reduction_kw for e in made if e is not None} == {3.0}
    events = await a.openadr.search(Kind.EVENT, ObjectQuery(program_id="program-race"), 0, 1000)
    shares = [e for e in events if share_parent(e) is not None]
    assert len(shares) == ROUNDS
    assert {share_kw(e) for e in shares} == {2.0}
    assert {share_parent(e) for e in shares} == {f"event-race-{n:04d}" for n in range(ROUNDS)}
