"""The relay at fleet scale on PostgreSQL: an event's commands go out in
growing batches, each marked sent while the one before is published, and
still every VEN gets its command exactly once, also when the broker refuses
part of a batch and when two dispatchers relay at once."""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import pytest
from tests.dispatch_machine import FixedShed

from adapters.sql.engine import create_engine
from adapters.sql.uow import SqlUnitOfWorkFactory
from adapters.system import ManualClock, SequentialIds
from gridcore import services
from gridcore.correlation import Command, CommandState
from gridcore.dispatch import FIRST_RELAY_BATCH, Dispatcher, DispatchPolicy

pytestmark = pytest.mark.postgres

T0 = datetime(2026, 1, 5, 17, 0, tzinfo=UTC)
VENS = 3 * FIRST_RELAY_BATCH + 345  # a first batch, a full doubled one and a short one
FLEET = {f"ven-{n:05d}": 2.0 for n in range(VENS)}


@dataclass
class SlowPublisher:
    """Yields at every publish (so marking the next batch really overlaps),
    keeps what it sent, and refuses the ``refuse`` correlationIds once each."""

    sent: list[Command] = field(default_factory=list)
    refuse: set[str] = field(default_factory=set)

    async def publish(self, command: Command) -> None:
        await asyncio.sleep(0)
        if command.correlation_id in self.refuse:
            self.refuse.discard(command.correlation_id)
            raise ConnectionError("broker dropped the publish")
        self.sent.append(command)


@pytest.fixture
async def uow(migrated_postgres_url: str) -> AsyncIterator[SqlUnitOfWorkFactory]:
    engine = create_engine(migrated_postgres_url)
    try:
        yield SqlUnitOfWorkFactory(engine)
    finally:
        await engine.dispose()


async def _event(uow: SqlUnitOfWorkFactory, clock: ManualClock) -> str:
    event = await services.create_event(
        uow, clock, SequentialIds(), start_time=T0, end_time=T0 + timedelta(hours=1),
        requested_reduction_kw=float(VENS),
    )  # fmt: skip
    return event.id


def _dispatcher(
    uow: SqlUnitOfWorkFactory, publisher: SlowPublisher, clock: ManualClock
) -> Dispatcher:
    policy = DispatchPolicy(batch_size=FIRST_RELAY_BATCH * 2, max_in_flight=50)
    return Dispatcher(uow, FixedShed(FLEET), publisher, clock, policy)


async def test_every_ven_gets_its_command_once_in_batches(uow: SqlUnitOfWorkFactory) -> None:
    clock = ManualClock(T0)
    event_id = await _event(uow, clock)
    publisher = SlowPublisher()
    report = await _dispatcher(uow, publisher, clock).run_once()
    assert report.activated == [event_id]
    assert report.published == VENS and report.failed == 0
    assert Counter(c.ven_id for c in publisher.sent) == Counter(dict.fromkeys(FLEET, 1))
    async with uow() as tx:
        stored = await tx.commands.for_event(event_id)
    assert len(stored) == VENS
    assert {c.state for c in stored} == {CommandState.SENT}
    assert {c.attempts for c in stored} == {1}


async def test_a_refused_publish_is_sent_again_and_nothing_twice(
    uow: SqlUnitOfWorkFactory,
) -> None:
    clock = ManualClock(T0)
    event_id = await _event(uow, clock)
    publisher = SlowPublisher()
    dispatcher = _dispatcher(uow, publisher, clock)
    await dispatcher.activate_due()
    async with uow() as tx:
        ids = sorted(c.correlation_id for c in await tx.commands.for_event(event_id))
    # One refused in the first batch, one in the second: the relay stops
    # after the batch it was marking, the rest waits for the next pass.
    publisher.refuse = {ids[3], ids[FIRST_RELAY_BATCH + 7]}
    first = await dispatcher.run_once()
    assert first.failed >= 1
    for _ in range(10):
        report = await dispatcher.run_once()
        if report.idle:
            break
    assert Counter(c.ven_id for c in publisher.sent) == Counter(dict.fromkeys(FLEET, 1))
    async with uow() as tx:
        stored = await tx.commands.for_event(event_id)
    assert {c.state for c in stored} == {CommandState.SENT}


async def test_two_dispatchers_relaying_at_once_send_each_command_once(
    uow: SqlUnitOfWorkFactory,
) -> None:
    clock = ManualClock(T0)
    event_id = await _event(uow, clock)
    publisher = SlowPublisher()
    one, two = _dispatcher(uow, publisher, clock), _dispatcher(uow, publisher, clock)
    await one.activate_due()
    reports = await asyncio.gather(one.run_once(), two.run_once())
    assert sum(r.published for r in reports) == VENS
    assert Counter(c.ven_id for c in publisher.sent) == Counter(dict.fromkeys(FLEET, 1))
    async with uow() as tx:
        assert len(await tx.commands.for_event(event_id)) == VENS
