"""Reconciliation on every store (memory, SQLite, PostgreSQL): the store's
``not_shedding`` (one query for a whole event) agrees with its domain twin
:func:`gridcore.reconcile.not_shedding`, and the dispatcher re-asserts a
rebooted VEN's command, drops its kW from the event, and counts it again
when it answers."""

from __future__ import annotations

import random
from collections.abc import AsyncIterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from storage_contract import BACKENDS, Backend, open_backend

from adapters.system import ManualClock, SequentialIds
from gridcore import services
from gridcore.correlation import Command, CommandOp, CommandState, VenAck
from gridcore.dispatch import Dispatcher, DispatchPolicy
from gridcore.events import DrEvent, EventStatus
from gridcore.reconcile import not_shedding
from gridcore.telemetry import LoadSample, TelemetrySample

T0 = datetime(2025, 10, 20, 15, 0, tzinfo=UTC)
EVENT = "evt-0000abcd"
OTHER = "evt-0000ffff"
SINCE = T0 + timedelta(seconds=60)
ACKED_BEFORE = SINCE
NOW = T0 + timedelta(seconds=120)


@pytest.fixture(params=BACKENDS)
async def backend(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Backend]:
    async for opened in open_backend(request, tmp_path):
        yield opened


def accepted(ven: str, n: int, at: datetime, event_id: str = EVENT, ok: bool = True) -> Command:
    sent = Command(f"{event_id}-{n:08x}", ven, CommandOp.EVENT, T0, event_id, shed_kw=2.0)
    return replace(
        sent.mark_sent(T0, timedelta(seconds=30)),
        state=CommandState.ACKED if ok else CommandState.REJECTED,
        acked_at=at,
        ack_status="accepted" if ok else "rejected",
        delivered_kw=2.0 if ok else 0.0,
    )


def at(ven: str, seconds: float, event_id: str | None, shed: float | None) -> TelemetrySample:
    return TelemetrySample(
        ven_id=ven,
        timestamp=T0 + timedelta(seconds=seconds),
        event_id=event_id,
        shed_power_kw=shed,
        used_power_kw=1.0,
    )


async def store_events(backend: Backend, commands: list[Command]) -> None:
    async with backend.uow() as uow:
        for event_id in (EVENT, OTHER):
            await uow.events.add(
                DrEvent(event_id, T0, T0 + timedelta(hours=1), 10.0, EventStatus.ACTIVE)
            )
        await uow.commands.add_many(commands)
        await uow.commit()


async def test_not_shedding_by_example(backend: Backend) -> None:
    early = T0 + timedelta(seconds=10)
    commands = [
        accepted("ven-a", 0, early),  # quiet all along: yes
        accepted("ven-b", 1, early),  # one sample in the window sheds for the event
        accepted("ven-c", 2, early),  # silent since the window opened: not judged
        accepted("ven-d", 3, SINCE + timedelta(seconds=1)),  # accepted too recently
        accepted("ven-e", 4, early, ok=False),  # refused: nothing to re-assert
        accepted("ven-f", 5, early),  # another event, no shed: yes
        accepted("ven-g", 6, early),  # no event but a shed
        accepted("ven-h", 7, early),  # quiet, then back in the event now
        accepted("ven-i", 8, early),  # reports neither field: yes
        accepted("ven-k", 0, early, event_id=OTHER),  # another event's VEN
    ]
    await store_events(backend, commands)
    samples = [
        *(at("ven-a", s, None, 0.0) for s in (30, 65, 90, 115)),
        *(at("ven-b", s, None, 0.0) for s in (65, 115)),
        at("ven-b", 90, EVENT, 2.0),
        at("ven-c", 30, None, 0.0),
        *(at("ven-d", s, None, 0.0) for s in (65, 115)),
        *(at("ven-e", s, None, 0.0) for s in (65, 115)),
        *(at("ven-f", s, OTHER, 0.0) for s in (65, 115)),
        *(at("ven-g", s, None, 0.4) for s in (65, 115)),
        at("ven-h", 65, None, 0.0),
        at("ven-h", 115, EVENT, 2.0),
        *(at("ven-i", s, None, None) for s in (65, 115)),
        *(at("ven-j", s, None, 0.0) for s in (65, 115)),  # no command at all
        *(at("ven-k", s, None, 0.0) for s in (65, 115)),
    ]
    await backend.store.append(samples)
    found = await backend.queries.not_shedding(EVENT, acked_before=ACKED_BEFORE, since=SINCE)
    assert found == ["ven-a", "ven-f", "ven-i"]
    assert await backend.queries.not_shedding(
        EVENT, acked_before=ACKED_BEFORE, since=SINCE, limit=2
    ) == ["ven-a", "ven-f"]
    assert await backend.queries.not_shedding(OTHER, acked_before=ACKED_BEFORE, since=SINCE) == [
        "ven-k"
    ]


@pytest.mark.parametrize("seed", [1, 2])
async def test_not_shedding_agrees_with_its_domain_twin(backend: Backend, seed: int) -> None:
    rng = random.Random(seed)
    vens = [f"ven-{n:02}" for n in range(40)]
    commands = [
        accepted(ven, n, T0 + timedelta(seconds=rng.choice([5, 59, 61])))
        for n, ven in enumerate(vens)
    ]
    await store_events(backend, commands)
    samples: dict[str, list[TelemetrySample]] = {}
    for ven in vens:
        stamps = sorted(rng.sample(range(0, 120, 5), rng.randint(0, 8)))
        samples[ven] = [
            at(
                ven,
                s + 0.5,
                rng.choice([None, None, EVENT, OTHER]),
                rng.choice([None, 0.0, 0.0, 1.5]),
            )
            for s in stamps
        ]
    await backend.store.append([s for ven in vens for s in samples[ven]])
    expected = [
        c.ven_id
        for c in commands
        if c.acked_at is not None
        and c.acked_at <= ACKED_BEFORE
        and not_shedding(
            samples[c.ven_id][-1] if samples[c.ven_id] else None, samples[c.ven_id], EVENT, SINCE
        )
    ]
    found = await backend.queries.not_shedding(EVENT, acked_before=ACKED_BEFORE, since=SINCE)
    assert found == sorted(expected)
    assert 0 < len(found) < len(vens)  # the example says something


async def test_the_dispatcher_reasserts_a_rebooted_ven(backend: Backend) -> None:
    clock = ManualClock(T0)
    policy = DispatchPolicy(reconcile_after=timedelta(seconds=60))
    sent: list[Command] = []

    class Publisher:
        async def publish(self, command: Command) -> None:
            sent.append(command)

    dispatcher = Dispatcher(backend.uow, backend.queries, Publisher(), clock, policy)

    async def report(ven: str, event_id: str | None) -> None:
        load = LoadSample(load_id="ev1", type="ev", current_power_kw=8.0, shed_capability_kw=8.0)
        shed = 5.0 if event_id else 0.0
        sample = TelemetrySample(
            ven, clock.now(), loads=(load,), event_id=event_id, shed_power_kw=shed
        )
        await backend.store.append([sample])

    async def actual(event_id: str) -> float:
        async with backend.uow() as uow:
            event = await uow.events.get(event_id)
        assert event is not None
        return event.actual_reduction_kw

    async def ack(command: Command) -> None:
        answer = VenAck(
            command.ven_id, "event", "accepted", clock.now(), command.correlation_id,
            command.event_id, command.shed_kw, command.shed_kw,
        )  # fmt: skip
        await services.record_acks(backend.uow, clock, [answer])

    for ven in ("ven-1", "ven-2"):
        await report(ven, None)
    event = await services.create_event(
        backend.uow,
        clock,
        SequentialIds(),
        start_time=T0,
        end_time=T0 + timedelta(hours=1),
        requested_reduction_kw=10.0,
    )
    await dispatcher.run_once()
    first = {c.ven_id: c for c in sent}
    for command in first.values():
        await ack(command)
    assert await actual(event.id) == 10.0
    for second in range(5, 135, 5):
        clock.advance(timedelta(seconds=5))
        await report("ven-1", None if second > 60 else event.id)
        await report("ven-2", event.id)
        await dispatcher.run_once()
    again = [c for c in sent[2:] if c.ven_id == "ven-1"]
    assert [(c.correlation_id, c.attempts) for c in again] == [(first["ven-1"].correlation_id, 2)]
    assert not [c for c in sent[2:] if c.ven_id == "ven-2"]
    assert await actual(event.id) == 5.0
    await ack(again[0])
    assert await actual(event.id) == 10.0
