"""Contract of the unit of work and its repositories (gridcore.ports), the same
for every backend: memory, SQLite, PostgreSQL."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest
from storage_contract import BACKENDS, Backend, open_backend

from gridcore.correlation import Command, CommandOp, CommandState, VenAck, newest_command
from gridcore.curtailment import CircuitCurtailment
from gridcore.errors import IllegalTransition
from gridcore.events import DrEvent, EventStatus
from gridcore.telemetry import DeadLetter
from gridcore.ven import Load, Location, Ven

T0 = datetime(2025, 10, 20, 15, 0, tzinfo=UTC)


@pytest.fixture(params=BACKENDS)
async def backend(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Backend]:
    async for opened in open_backend(request, tmp_path):
        yield opened


def ven(ven_id: str = "ven-001", **kw: object) -> Ven:
    base = Ven(
        id=ven_id,
        name="Main Street Facility",
        location=Location(37.42, -122.08),
        registered_at=T0,
        loads=(
            Load(id="circuit_1", type="hvac", name="Main HVAC", capacity_kw=5.0, critical=True),
            Load(id="ev1", type="ev", shed_capability_kw=7.2, priority=1, breaker_amps=50.0),
        ),
    )
    return replace(base, **kw)  # type: ignore[arg-type]


def event(n: int = 1, start: datetime = T0, hours: int = 1, **kw: object) -> DrEvent:
    base = DrEvent(
        id=f"evt-{n:08x}",
        start_time=start,
        end_time=start + timedelta(hours=hours),
        requested_reduction_kw=10.0,
        created_at=T0 - timedelta(minutes=5),
    )
    return replace(base, **kw)  # type: ignore[arg-type]


def command(cid: str, event_id: str | None = "evt-00000001", **kw: object) -> Command:
    base = Command(
        correlation_id=cid,
        ven_id="ven-001",
        op=CommandOp.EVENT if event_id else CommandOp.PING,
        created_at=T0,
        event_id=event_id,
        shed_kw=5.0 if event_id else None,
        duration_sec=3600 if event_id else None,
    )
    return replace(base, **kw)  # type: ignore[arg-type]


# --- unit of work ----------------------------------------------------------------


async def test_nothing_is_kept_without_commit(backend: Backend) -> None:
    async with backend.uow() as uow:
        await uow.vens.add(ven())
        assert await uow.vens.get("ven-001") is not None  # visible inside
    async with backend.uow() as uow:
        assert await uow.vens.get("ven-001") is None


async def test_an_exception_rolls_back(backend: Backend) -> None:
    async def fail_midway() -> None:
        async with backend.uow() as uow:
            await uow.events.add(event())
            raise RuntimeError("boom")

    with pytest.raises(RuntimeError):
        await fail_midway()
    async with backend.uow() as uow:
        assert await uow.events.get("evt-00000001") is None


async def test_commit_keeps_and_the_unit_stays_usable(backend: Backend) -> None:
    async with backend.uow() as uow:
        await uow.vens.add(ven())
        await uow.commit()
        await uow.vens.add(ven("ven-002"))
        await uow.rollback()
        await uow.vens.add(ven("ven-003"))
        await uow.commit()
    async with backend.uow() as uow:
        page = await uow.vens.page()
    assert [v.id for v in page.items] == ["ven-001", "ven-003"]


# --- VENs --------------------------------------------------------------------------


async def test_ven_round_trip(backend: Backend) -> None:
    async with backend.uow() as uow:
        await uow.vens.add(ven(last_seen_at=T0 + timedelta(seconds=5)))
        await uow.commit()
    async with backend.uow() as uow:
        got = await uow.vens.get("ven-001")
    assert got == ven(last_seen_at=T0 + timedelta(seconds=5))
    assert got is not None and got.registered_at is not None
    assert got.registered_at.tzinfo is not None and got.registered_at.utcoffset() == timedelta(0)


async def test_duplicate_ven_is_a_value_error_and_the_transaction_survives(
    backend: Backend,
) -> None:
    async with backend.uow() as uow:
        await uow.vens.add(ven())
        await uow.commit()
    async with backend.uow() as uow:
        with pytest.raises(ValueError, match="ven-001"):
            await uow.vens.add(ven(name="again"))
        await uow.vens.add(ven("ven-002"))
        await uow.commit()
    async with backend.uow() as uow:
        assert (await uow.vens.page()).total_count == 2
        first = await uow.vens.get("ven-001")
        assert first is not None and first.name == "Main Street Facility"


async def test_update_remove_and_loads(backend: Backend) -> None:
    async with backend.uow() as uow:
        await uow.vens.add(ven())
        await uow.commit()
    async with backend.uow() as uow:
        await uow.vens.update(ven(name="Renamed", location=None, enabled=False))
        await uow.vens.save_load("ven-001", Load(id="ev1", type="ev", shed_capability_kw=3.0))
        await uow.vens.save_load("ven-001", Load(id="dryer", type="dryer", critical=False))
        with pytest.raises(ValueError, match="ven-404"):
            await uow.vens.update(ven("ven-404"))
        with pytest.raises(ValueError, match="ven-404"):
            await uow.vens.save_load("ven-404", Load(id="x"))
        await uow.commit()
    async with backend.uow() as uow:
        got = await uow.vens.get("ven-001")
        assert got is not None
        assert (got.name, got.location, got.enabled) == ("Renamed", None, False)
        assert [load.id for load in got.loads] == ["circuit_1", "dryer", "ev1"]
        assert got.loads[2] == Load(id="ev1", type="ev", shed_capability_kw=3.0)
        assert await uow.vens.remove("ven-001") is True
        assert await uow.vens.remove("ven-001") is False
        await uow.commit()
    async with backend.uow() as uow:
        assert await uow.vens.get("ven-001") is None
        await uow.vens.add(ven(loads=()))  # its old loads went with it
        got = await uow.vens.get("ven-001")
        assert got is not None and got.loads == ()


async def test_ven_pages_in_id_order(backend: Backend) -> None:
    async with backend.uow() as uow:
        for n in (3, 1, 4, 5, 2):
            await uow.vens.add(ven(f"ven-{n:03d}"))
        await uow.commit()
    async with backend.uow() as uow:
        page = await uow.vens.page(offset=1, limit=2)
        empty = await uow.vens.page(offset=10, limit=2)
    assert page.total_count == 5
    assert [v.id for v in page.items] == ["ven-002", "ven-003"]
    assert page.items[0].loads == ven().loads
    assert (empty.total_count, empty.items) == (5, ())


async def test_online_ids(backend: Backend) -> None:
    now = T0 + timedelta(hours=1)
    async with backend.uow() as uow:
        await uow.vens.add(ven("fresh", last_seen_at=now - timedelta(seconds=60)))
        await uow.vens.add(ven("stale", last_seen_at=now - timedelta(seconds=61)))
        await uow.vens.add(ven("future", last_seen_at=now + timedelta(seconds=30)))
        await uow.vens.add(ven("disabled", last_seen_at=now, enabled=False))
        await uow.vens.add(ven("never"))
        await uow.commit()
    async with backend.uow() as uow:
        assert await uow.vens.online_ids(now, timedelta(seconds=60)) == ["fresh", "future"]


# --- events ------------------------------------------------------------------------


async def test_event_round_trip_lifecycle_and_delivered_kw(backend: Backend) -> None:
    async with backend.uow() as uow:
        await uow.events.add(event())
        with pytest.raises(ValueError, match="evt-00000001"):
            await uow.events.add(event())
        with pytest.raises(ValueError, match="evt-00000002"):
            await uow.events.save_status(event(2).activate(T0), EventStatus.SCHEDULED)
        await uow.commit()
    async with backend.uow() as uow:
        assert await uow.events.get("evt-00000001") == event()
        await uow.events.add_actual_reduction("evt-00000001", 4.8)
        await uow.commit()
    active = event().activate(T0)
    async with backend.uow() as uow:
        assert await uow.events.lock(["evt-00000404", "evt-00000001"]) == {
            "evt-00000001": event().with_actual_reduction(4.8)
        }
        # The lifecycle write leaves the delivered kW alone (an ACK owns it).
        await uow.events.save_status(active, EventStatus.SCHEDULED)
        await uow.commit()
    async with backend.uow() as uow:
        assert await uow.events.get("evt-00000001") == active.with_actual_reduction(4.8)
        assert await uow.events.get("evt-00000404") is None
        # Conditional on the status seen: someone else moved it first.
        with pytest.raises(IllegalTransition, match="is active; it cannot become cancelled"):
            await uow.events.save_status(event().cancel(T0), EventStatus.SCHEDULED)
        await uow.events.add_actual_reduction("evt-00000001", 1.2)
        await uow.events.add_actual_reduction("evt-00000001", -0.5)


async def test_event_queries(backend: Backend) -> None:
    e1 = event(1, start=T0)  # scheduled, due at T0
    e2 = event(2, start=T0 + timedelta(hours=2)).activate(T0)  # active, ends T0+3h
    e3 = event(3, start=T0 - timedelta(hours=2)).activate(T0)  # active, ended T0-1h
    e4 = event(4, start=T0 + timedelta(days=1)).cancel(T0)
    async with backend.uow() as uow:
        for e in (e1, e2, e3, e4):
            await uow.events.add(e)
        await uow.commit()
    async with backend.uow() as uow:
        everything = await uow.events.page()
        active = await uow.events.page(status=EventStatus.ACTIVE)
        window = await uow.events.page(start=T0, end=T0 + timedelta(hours=2, minutes=30))
        sliced = await uow.events.page(offset=1, limit=1)
        due = await uow.events.due(T0)
        over = await uow.events.over(T0 + timedelta(hours=3))
        running = await uow.events.active()
    assert [e.id for e in everything.items] == [e4.id, e2.id, e1.id, e3.id]
    assert [e.id for e in active.items] == [e2.id, e3.id]
    assert [e.id for e in window.items] == [e2.id, e1.id]
    assert (sliced.total_count, [e.id for e in sliced.items]) == (4, [e2.id])
    assert [e.id for e in due] == [e1.id]
    assert [e.id for e in over] == [e3.id, e2.id]
    assert [e.id for e in running] == [e3.id, e2.id]


# --- the dispatch ledger ---------------------------------------------------------


async def test_command_round_trip_and_duplicates(backend: Backend) -> None:
    sent = command("evt-00000001-aaaaaaaa").mark_sent(T0, timedelta(seconds=30))
    async with backend.uow() as uow:
        await uow.events.add(event())
        await uow.commands.add_many([sent, command("cmd-bbbbbbbb", None)])
        await uow.commit()
    async with backend.uow() as uow:
        assert await uow.commands.get("evt-00000001-aaaaaaaa") == sent
        assert await uow.commands.get("cmd-bbbbbbbb") == command("cmd-bbbbbbbb", None)
        assert await uow.commands.get("cmd-00000000") is None
        with pytest.raises(ValueError, match="evt-00000001-aaaaaaaa"):
            await uow.commands.add_many([command("evt-00000001-aaaaaaaa")])
        with pytest.raises(ValueError, match="cmd-cccccccc"):
            await uow.commands.add_many([command("cmd-cccccccc", None)] * 2)
        with pytest.raises(ValueError, match="cmd-dddddddd"):
            await uow.commands.update_many([command("cmd-dddddddd", None)])
        ack = VenAck(
            "ven-001",
            "event",
            "accepted",
            T0,
            "evt-00000001-aaaaaaaa",
            "evt-00000001",
            actual_shed_kw=4.8,
        )
        answered = sent.acknowledge(ack, T0 + timedelta(seconds=2))
        await uow.commands.update_many([answered])
        await uow.commit()
    async with backend.uow() as uow:
        assert await uow.commands.get("evt-00000001-aaaaaaaa") == answered
        assert await uow.commands.get("cmd-cccccccc") is None


async def test_ledger_queries(backend: Backend) -> None:
    c1 = command("evt-00000001-00000001", created_at=T0)
    c2 = command("evt-00000001-00000002", created_at=T0 + timedelta(seconds=1), ven_id="ven-002")
    c3 = command("evt-00000001-00000003", created_at=T0 - timedelta(seconds=1)).mark_sent(
        T0, timedelta(seconds=10)
    )
    c4 = command(
        "evt-00000002-00000004", event_id="evt-00000002", created_at=T0 - timedelta(seconds=2)
    ).mark_sent(T0, timedelta(seconds=5))
    c5 = replace(
        command("evt-00000001-00000005"),
        op=CommandOp.RESTORE,
        created_at=T0 + timedelta(seconds=9),
        state=CommandState.ACKED,
    )
    async with backend.uow() as uow:
        await uow.events.add(event(1))
        await uow.events.add(event(2))
        await uow.commands.add_many([c1, c2, c3, c4, c5])
        await uow.commit()
    async with backend.uow() as uow:
        assert [c.correlation_id for c in await uow.commands.for_event("evt-00000001")] == [
            c3.correlation_id,
            c1.correlation_id,
            c2.correlation_id,
            c5.correlation_id,
        ]
        assert await uow.commands.pending() == [c1, c2]
        assert await uow.commands.pending(limit=1) == [c1]
        assert await uow.commands.overdue(T0 + timedelta(seconds=7)) == [c4]
        assert await uow.commands.overdue(T0 + timedelta(seconds=10)) == [c4, c3]
        assert await uow.commands.latest_for("ven-001", "event", None) == c1
        assert await uow.commands.latest_for("ven-001", "event", "evt-00000002") == c4
        assert await uow.commands.latest_for("ven-001", "restore", None) == c5
        assert await uow.commands.latest_for("ven-001", "ping", None) is None
        # An ACK without correlationId answers only a command on the wire.
        assert await uow.commands.latest_for("ven-001", "event", None, sent_only=True) == c3
        assert await uow.commands.latest_for("ven-001", "restore", None, sent_only=True) is None
        # The SQL query is the domain's fallback rule, on the same commands.
        stored = [c1, c2, c3, c4, c5]
        for ven_id in ("ven-001", "ven-002"):
            for op in ("event", "restore", "ping"):
                for event_id in (None, "evt-00000001", "evt-00000002"):
                    assert await uow.commands.latest_for(ven_id, op, event_id) == newest_command(
                        stored, ven_id, op, event_id
                    )
                    sent = await uow.commands.latest_for(ven_id, op, event_id, sent_only=True)
                    assert sent == newest_command(stored, ven_id, op, event_id, sent_only=True)
        assert await uow.commands.for_event("evt-00000001", ["ven-002"]) == [
            c for c in await uow.commands.for_event("evt-00000001") if c.ven_id == "ven-002"
        ]
        assert await uow.commands.for_event("evt-00000001", []) == []
        assert await uow.commands.for_events(["evt-00000002", "evt-00000001"]) == sorted(
            [c1, c2, c3, c4, c5], key=lambda c: (c.created_at, c.correlation_id)
        )
        assert await uow.commands.count_for_event("evt-00000001") == 4
        assert await uow.commands.count_for_event("evt-00000404") == 0
        assert await uow.commands.lock([c4.correlation_id, "cmd-00000404"]) == {
            c4.correlation_id: c4
        }
        await uow.commands.lock_allocation()
        assert await uow.commands.get_many(
            [c1.correlation_id, "cmd-00000000", c4.correlation_id]
        ) == {
            c1.correlation_id: c1,
            c4.correlation_id: c4,
        }


# --- ACKs and dead letters ----------------------------------------------------------


def ack(n: int, **kw: object) -> VenAck:
    base = VenAck(
        ven_id="ven-001",
        op="event",
        status="accepted",
        timestamp=T0 + timedelta(seconds=n),
        correlation_id=f"evt-00000001-{n:08x}",
        event_id="evt-00000001",
        requested_shed_kw=5.0,
        actual_shed_kw=4.8,
        circuits_curtailed=(
            CircuitCurtailment("ev1", 3.5, "EV Charger", 50.0, 8.5, 5.0, False),
            CircuitCurtailment("circuit_5", 1.3, "Pool Pump"),
        ),
        raw_payload={"op": "event", "status": "accepted", "ts": 1698765432, "extra": [1, "a"]},
    )
    return replace(base, **kw)  # type: ignore[arg-type]


async def test_acks(backend: Backend) -> None:
    restore = ack(
        4,
        op="restore",
        status="success",
        event_id=None,
        circuits_curtailed=(),
        requested_shed_kw=None,
        actual_shed_kw=None,
        raw_payload={},
    )
    async with backend.uow() as uow:
        await uow.acks.add_many([ack(3), ack(1)])
        await uow.acks.add_many([ack(2, ven_id="ven-002"), restore])
        await uow.acks.add_many([])
        await uow.commit()
    async with backend.uow() as uow:
        by_event = await uow.acks.for_event("evt-00000001")
        by_ven = await uow.acks.for_ven("ven-001")
        ranged = await uow.acks.for_ven(
            "ven-001", start=T0 + timedelta(seconds=1), end=T0 + timedelta(seconds=4), limit=1
        )
    assert by_event.total_count == 3
    assert list(by_event.items) == [ack(1), ack(2, ven_id="ven-002"), ack(3)]
    assert list(by_ven.items) == [restore, ack(3), ack(1)]
    assert (ranged.total_count, list(ranged.items)) == (2, [ack(3)])


async def test_dead_letters(backend: Backend) -> None:
    letters = [
        DeadLetter("volttron/metering", b"\xff\xfe not json", "invalid JSON", T0),
        DeadLetter("ven/ack/x", b"{}", "missing op", T0 + timedelta(seconds=1)),
    ]
    async with backend.uow() as uow:
        for letter in letters:
            await uow.dead_letters.add(letter)
        await uow.commit()
    async with backend.uow() as uow:
        assert await uow.dead_letters.count() == 2
        assert await uow.dead_letters.recent() == letters[::-1]
        assert await uow.dead_letters.recent(limit=1) == [letters[1]]


async def test_non_utc_timestamps_come_back_as_the_same_instant_in_utc(
    backend: Backend,
) -> None:
    paris = timezone(timedelta(hours=2))
    local = DeadLetter("t", b"x", "r", datetime(2025, 10, 20, 17, 0, tzinfo=paris))
    async with backend.uow() as uow:
        await uow.dead_letters.add(local)
        await uow.commit()
    async with backend.uow() as uow:
        (got,) = await uow.dead_letters.recent()
    assert got.received_at == T0


async def test_has_open_sees_only_an_events_pending_or_sent_event_commands(
    backend: Backend,
) -> None:
    """The dispatcher's probe before it reads a whole event's ledger."""
    pending = command("evt-00000001-00000001")
    sent = command("evt-00000001-00000002", ven_id="ven-002").mark_sent(T0, timedelta(seconds=30))
    other = command("evt-00000002-00000001", event_id="evt-00000002")
    async with backend.uow() as uow:
        await uow.events.add(event())
        await uow.events.add(event(2))
        await uow.commands.add_many([pending, sent, other])
        await uow.commit()
    async with backend.uow() as uow:
        assert await uow.commands.has_open("evt-00000001")
        assert not await uow.commands.has_open("evt-00000003")  # no commands at all
        await uow.commands.update_many([pending.cancel()])
        assert await uow.commands.has_open("evt-00000001")  # the sent one
        ack = VenAck("ven-002", "event", "accepted", T0, sent.correlation_id, "evt-00000001")
        await uow.commands.update_many([sent.acknowledge(ack, T0)])
        assert not await uow.commands.has_open("evt-00000001")
        assert await uow.commands.has_open("evt-00000002")
        restore = command("evt-00000002-00000002", event_id="evt-00000002", op=CommandOp.RESTORE)
        await uow.commands.update_many([other.cancel()])
        await uow.commands.add_many([replace(restore, shed_kw=None, duration_sec=None)])
        assert not await uow.commands.has_open("evt-00000002")  # a restore is not asked for kW
