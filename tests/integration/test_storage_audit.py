"""The audit trail's contract (gridcore.ports.AuditLog), the same on every
backend: memory, SQLite, PostgreSQL; and that the use cases write an entry in
the transaction of the change it records, and only then."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from storage_contract import BACKENDS, Backend, open_backend

from gridcore import fleet, services
from gridcore.audit import Actor, AuditAction, AuditEntry, AuditQuery
from gridcore.errors import IllegalTransition, InvalidInput
from gridcore.ven import Location

T0 = datetime(2025, 10, 20, 15, 0, tzinfo=UTC)


@pytest.fixture(params=BACKENDS)
async def backend(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Backend]:
    async for opened in open_backend(request, tmp_path):
        yield opened


class FixedClock:
    def __init__(self, now: datetime) -> None:
        self.at = now

    def now(self) -> datetime:
        return self.at


class CountingIds:
    def __init__(self) -> None:
        self.n = 0

    def hex8(self) -> str:
        self.n += 1
        return f"{self.n:08x}"


def entry(minutes: int, actor: str = "alice", **kw: object) -> AuditEntry:
    return AuditEntry(
        at=T0 + timedelta(minutes=minutes),
        actor=actor,
        action=kw.pop("action", AuditAction.EVENT_CREATED),  # type: ignore[arg-type]
        **kw,  # type: ignore[arg-type]
    )


async def test_entries_are_kept_on_commit_only_and_read_newest_first(backend: Backend) -> None:
    async with backend.uow() as uow:
        await uow.audit.add(entry(0, event_id="evt-00000001", details={"kw": 1.5, "t": ["a"]}))
        await uow.audit.add(entry(2, "bob", action=AuditAction.EVENT_STOPPED, event_id="evt-1"))
        await uow.commit()
    async with backend.uow() as uow:
        await uow.audit.add(entry(5))  # never committed
    async with backend.uow() as uow:
        await uow.audit.add(entry(1, ven_id="ven-1", action=AuditAction.COMMAND_SENT))
        await uow.commit()
        page = await uow.audit.page()
    assert page.total_count == 3
    assert [e.at for e in page.items] == [T0 + timedelta(minutes=m) for m in (2, 1, 0)]
    ids = [e.id for e in page.items]
    assert all(isinstance(i, int) for i in ids) and len(set(ids)) == 3
    oldest = page.items[-1]
    assert oldest.actor == "alice" and oldest.action is AuditAction.EVENT_CREATED
    assert oldest.event_id == "evt-00000001" and oldest.ven_id is None
    assert oldest.details == {"kw": 1.5, "t": ["a"]}


async def test_filters_and_paging(backend: Backend) -> None:
    async with backend.uow() as uow:
        for minute in range(6):
            await uow.audit.add(
                entry(
                    minute,
                    "alice" if minute % 2 else "bob",
                    ven_id=f"ven-{minute % 3}",
                    action=AuditAction.COMMAND_SENT if minute < 3 else AuditAction.LOAD_CHANGED,
                )
            )
        await uow.commit()
        by_alice = await uow.audit.page(AuditQuery(actor="alice"))
        assert [e.at.minute for e in by_alice.items] == [5, 3, 1]
        combined = await uow.audit.page(AuditQuery(action=AuditAction.LOAD_CHANGED, ven_id="ven-0"))
        assert [e.at.minute for e in combined.items] == [3]
        window = AuditQuery(since=T0 + timedelta(minutes=1), until=T0 + timedelta(minutes=4))
        assert [e.at.minute for e in (await uow.audit.page(window)).items] == [3, 2, 1]
        second = await uow.audit.page(offset=2, limit=2)
        assert second.total_count == 6
        assert [e.at.minute for e in second.items] == [3, 2]
        assert (await uow.audit.page(AuditQuery(event_id="evt-nothing"))).total_count == 0


async def test_use_cases_record_who_did_what_in_their_transaction(backend: Backend) -> None:
    clock, ids = FixedClock(T0), CountingIds()
    alice = Actor("alice", T0)
    ven = await services.register_ven(
        backend.uow, clock, ven_id="ven-1", name="One", targets=["feeder-7"], actor=alice
    )
    event = await services.create_event(
        backend.uow,
        clock,
        ids,
        start_time=T0 + timedelta(hours=1),
        end_time=T0 + timedelta(hours=2),
        requested_reduction_kw=4.0,
        targets=["feeder-7"],
        actor=alice,
    )
    # Refused changes leave no entry: the entry and the change are one transaction.
    with pytest.raises(InvalidInput):
        await services.create_event(
            backend.uow,
            clock,
            ids,
            start_time=T0,
            end_time=T0 + timedelta(hours=1),
            requested_reduction_kw=1.0,
            targets=["nowhere"],
            actor=alice,
        )
    with pytest.raises(IllegalTransition):
        await services.stop_event(backend.uow, clock, event.id, actor=alice)  # not active
    bob = Actor("bob", T0 + timedelta(seconds=1))
    await fleet.update_ven(backend.uow, ven.id, name="Renamed", location=None, actor=bob)
    await fleet.locate_vens(backend.uow, {ven.id: Location(1.0, 2.0)}, actor=bob)
    await fleet.ping_ven(backend.uow, clock, ids, ven_id=ven.id, actor=bob)
    await services.cancel_event(backend.uow, clock, event.id, actor=bob)
    await services.create_event(  # without an actor (the worker, a bridge): no entry
        backend.uow,
        clock,
        ids,
        start_time=T0 + timedelta(hours=1),
        end_time=T0 + timedelta(hours=2),
        requested_reduction_kw=1.0,
    )
    async with backend.uow() as uow:
        page = await uow.audit.page(limit=100)
    assert [(e.actor, e.action) for e in reversed(page.items)] == [
        ("alice", AuditAction.VEN_REGISTERED),
        ("alice", AuditAction.EVENT_CREATED),
        ("bob", AuditAction.VEN_CHANGED),
        ("bob", AuditAction.VENS_LOCATED),
        ("bob", AuditAction.COMMAND_SENT),
        ("bob", AuditAction.EVENT_CANCELLED),
    ]
    created, changed, ping = page.items[4], page.items[3], page.items[1]
    assert created.event_id == event.id
    assert created.details["requestedReductionKw"] == 4.0
    assert created.details["targets"] == ["feeder-7"]
    assert changed.ven_id == "ven-1"
    assert changed.details == {"name": "Renamed", "location": None}
    assert ping.details["op"] == "ping" and ping.details["correlationId"].startswith("cmd-")
