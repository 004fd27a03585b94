"""Staggered restores on every store (memory, SQLite, PostgreSQL): the outbox
(``CommandRepository.pending``) returns a command only once its not-before has
come, oldest first, whatever waits in front of it; the dispatcher does not
send a restore early and sends it when due (``commands.not_before``,
migration 0009)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import text
from storage_contract import BACKENDS, Backend, open_backend

from adapters.system import ManualClock, SequentialIds
from gridcore import services
from gridcore.correlation import Command, CommandOp, VenAck
from gridcore.dispatch import Dispatcher, DispatchPolicy
from gridcore.events import DrEvent, EventStatus
from gridcore.rebound import restore_offset
from gridcore.telemetry import LoadSample, TelemetrySample

T0 = datetime(2025, 10, 20, 15, 0, tzinfo=UTC)
EVENT = "evt-0000abcd"
SPREAD = timedelta(minutes=5)


@pytest.fixture(params=BACKENDS)
async def backend(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Backend]:
    async for opened in open_backend(request, tmp_path):
        yield opened


def restore(n: int, created: int, not_before: int | None) -> Command:
    return Command(
        f"{EVENT}-{n:08x}",
        f"ven-{n}",
        CommandOp.RESTORE,
        T0 + timedelta(seconds=created),
        EVENT,
        not_before=None if not_before is None else T0 + timedelta(seconds=not_before),
    )


async def test_the_outbox_holds_back_what_is_not_due(backend: Backend) -> None:
    waiting = [restore(n, 0, 600 + n) for n in range(10, 40)]  # in front, not due
    due = [restore(1, 1, 30), restore(2, 2, None), restore(3, 3, 60), restore(4, 0, 60)]
    async with backend.uow() as uow:
        await uow.events.add(DrEvent(EVENT, T0, T0 + timedelta(hours=1), 5.0, EventStatus.ACTIVE))
        await uow.commands.add_many([*waiting, *due])
        await uow.commit()
    async with backend.uow() as uow:
        now = T0 + timedelta(seconds=60)
        found = await uow.commands.pending(now=now)
        assert found == [due[3], due[0], due[1], due[2]]  # created_at, then correlationId
        assert await uow.commands.pending(2, now=now) == [due[3], due[0]]
        assert await uow.commands.pending(now=T0 + timedelta(seconds=59)) == [due[0], due[1]]
        assert len(await uow.commands.pending()) == 34  # without now: the whole outbox
        assert (await uow.commands.get(due[0].correlation_id)) == due[0]  # stored as is
        later = await uow.commands.pending(now=T0 + timedelta(seconds=615))
        assert [c.ven_id for c in later] == [
            "ven-4",
            *(f"ven-{n}" for n in range(10, 16)),
            "ven-1",
            "ven-2",
            "ven-3",
        ]


async def test_the_outbox_reads_only_what_is_due_on_postgres(backend: Backend) -> None:
    """5,000 restores waiting: both outbox queries are index ranges that
    never walk over the waiting ones."""
    if backend.name != "postgres":
        pytest.skip("PostgreSQL's plan")
    async with backend.uow() as uow:
        await uow.events.add(DrEvent(EVENT, T0, T0 + timedelta(hours=1), 5.0, EventStatus.ACTIVE))
        await uow.commands.add_many([restore(n, 0, 3600) for n in range(10, 5010)])
        await uow.commands.add_many([restore(n, 5, 1) for n in range(1, 6)])
        await uow.commit()
    engine = backend.queries._engine
    plans = []
    async with engine.connect() as conn:
        await conn.execute(text("ANALYZE commands"))
        for condition in ("not_before IS NULL", "not_before <= :now"):
            query = (
                f"EXPLAIN SELECT * FROM commands WHERE state = 'pending' AND {condition}"
                " ORDER BY created_at, correlation_id LIMIT 10000"
            )
            rows = await conn.execute(text(query), {"now": T0 + timedelta(seconds=60)})
            plans.append("\n".join(r[0] for r in rows))
    at_once, due = plans
    # Each through the index of its own commands (migration 0016): the ones
    # due at once hold no waiting restore; the waiting ones, a range of not_before.
    assert "ix_commands_state_created_at_correlation_id" in at_once, at_once
    assert "ix_commands_state_not_before_created_at" in due, due
    assert "not_before" in due.split("Index Cond", 1)[1].split("\n", 1)[0], due


async def test_an_events_outbox_is_read_a_batch_at_a_time_on_postgres(backend: Backend) -> None:
    """Every command of an event shares its created_at: the relay's first N
    due at once come straight off the index in (created_at, correlationId)
    order (migration 0016), without reading and sorting every pending command
    for each batch."""
    if backend.name != "postgres":
        pytest.skip("PostgreSQL's plan")
    commands = [replace(restore(n, 0, None), op=CommandOp.EVENT) for n in range(3000)]
    async with backend.uow() as uow:
        await uow.events.add(DrEvent(EVENT, T0, T0 + timedelta(hours=1), 5.0, EventStatus.ACTIVE))
        await uow.commands.add_many(commands)
        await uow.commit()
    async with backend.uow() as uow:
        first = await uow.commands.pending(500, now=T0)
    assert first == sorted(commands, key=lambda c: c.correlation_id)[:500]
    async with backend.queries._engine.connect() as conn:
        await conn.execute(text("ANALYZE commands"))
        # At 3,000 rows a scan of the table is cheaper; at 100,000 it is not.
        await conn.execute(text("SET enable_seqscan = off"))
        await conn.execute(text("SET enable_bitmapscan = off"))
        rows = await conn.execute(
            text(
                "EXPLAIN ANALYZE SELECT * FROM commands WHERE state = 'pending'"
                " AND not_before IS NULL ORDER BY created_at, correlation_id LIMIT 500"
            )
        )
        plan = "\n".join(r[0] for r in rows)
    assert "ix_commands_state_created_at_correlation_id" in plan, plan
    assert "Sort" not in plan, plan
    assert "rows=500 " in plan.split("Index Scan", 1)[1], plan  # stopped at the limit


async def test_the_dispatcher_sends_a_restore_when_due_and_not_before(backend: Backend) -> None:
    clock = ManualClock(T0)
    sent: list[Command] = []

    class Publisher:
        async def publish(self, command: Command) -> None:
            sent.append(command)

    policy = replace(DispatchPolicy(), restore_spread=SPREAD)
    dispatcher = Dispatcher(backend.uow, backend.queries, Publisher(), clock, policy)
    load = LoadSample(load_id="ev1", type="ev", current_power_kw=4.0, shed_capability_kw=4.0)
    vens = ["ven-1", "ven-2", "ven-3"]
    await backend.store.append([TelemetrySample(v, T0, loads=(load,)) for v in vens])
    event = await services.create_event(
        backend.uow,
        clock,
        SequentialIds(),
        start_time=T0,
        end_time=T0 + timedelta(minutes=10),
        requested_reduction_kw=6.0,
    )
    await dispatcher.run_once()
    acks = [
        VenAck(c.ven_id, "event", "accepted", T0, c.correlation_id, c.event_id, c.shed_kw, 2.0)
        for c in sent
    ]
    await services.record_acks(backend.uow, clock, acks)
    end = T0 + timedelta(minutes=10)
    clock.advance(timedelta(minutes=10))
    assert (await dispatcher.run_once()).finished == [event.id]
    due = {v: end + restore_offset(event.id, v, SPREAD) for v in vens}
    for ven in sorted(vens, key=due.__getitem__):
        clock.advance(due[ven] - clock.now() - timedelta(milliseconds=1))
        await dispatcher.run_once()
        assert ven not in {c.ven_id for c in sent if c.op is CommandOp.RESTORE}
        clock.advance(timedelta(milliseconds=1))
        await dispatcher.run_once()
        assert (sent[-1].ven_id, sent[-1].op) == (ven, CommandOp.RESTORE)
        # The ACK deadline counts from the actual send.
        async with backend.uow() as uow:
            (restore,) = [
                c
                for c in await uow.commands.for_event(event.id, [ven])
                if c.op is CommandOp.RESTORE
            ]
        assert (restore.first_sent_at, restore.deadline) == (
            due[ven],
            due[ven] + policy.ack_timeout,
        )
