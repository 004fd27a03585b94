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
from gridcore.bridge import bridged_event_id
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
