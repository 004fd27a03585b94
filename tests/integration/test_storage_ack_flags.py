"""An ACK that reports more kW than its command asked is credited what was
asked, stored as reported, and flagged with why (issue 11, item 3), on every
ACK store: memory, SQLite, PostgreSQL (``ven_acks.flag``, migration 0004)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from storage_contract import BACKENDS, Backend, open_backend

from adapters.system import ManualClock
from gridcore.correlation import Command, CommandOp, CommandState, VenAck
from gridcore.events import DrEvent, EventStatus
from gridcore.services import record_acks

T0 = datetime(2025, 10, 20, 15, 0, tzinfo=UTC)
EVENT = "evt-0000abcd"


@pytest.fixture(params=BACKENDS)
async def backend(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Backend]:
    async for opened in open_backend(request, tmp_path):
        yield opened


def command(ven: str, n: int) -> Command:
    sent = Command(f"{EVENT}-{n:08x}", ven, CommandOp.EVENT, T0, EVENT, shed_kw=1.0)
    return sent.mark_sent(T0, timedelta(seconds=30))


async def test_an_ack_over_what_was_asked_is_capped_flagged_and_kept(backend: Backend) -> None:
    event = DrEvent(EVENT, T0, T0 + timedelta(hours=1), 2.0, EventStatus.ACTIVE)
    async with backend.uow() as uow:
        await uow.events.add(event)
        await uow.commands.add_many([command("ven-a", 0), command("ven-b", 1)])
        await uow.commit()

    def ack(ven: str, n: int, kw: float) -> VenAck:
        return VenAck(ven, "event", "accepted", T0, f"{EVENT}-{n:08x}", EVENT, 1.0, kw)

    clock = ManualClock(T0 + timedelta(seconds=2))
    await record_acks(backend.uow, clock, [ack("ven-a", 0, 999999999.0), ack("ven-b", 1, 0.5)])

    async with backend.uow() as uow:
        stored = {a.ven_id: a for a in (await uow.acks.for_event(EVENT)).items}
        credited = {c.ven_id: c for c in await uow.commands.for_event(EVENT)}
        total = (await uow.events.get(EVENT)).actual_reduction_kw  # type: ignore[union-attr]
    assert stored["ven-a"].actual_shed_kw == 999999999.0  # the raw report
    assert stored["ven-a"].flag == "capped: reported 999999999 kW, asked 1 kW"
    assert stored["ven-b"].flag is None
    assert credited["ven-a"].state is CommandState.ACKED
    assert (credited["ven-a"].delivered_kw, credited["ven-b"].delivered_kw) == (1.0, 0.5)
    assert total == 1.5
