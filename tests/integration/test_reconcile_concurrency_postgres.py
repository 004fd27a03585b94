"""Reconciliation under concurrent transactions on real PostgreSQL (READ
COMMITTED): two dispatchers re-asserting the same rebooted VEN's command, and
that VEN's ACK, at once. In the style of test_concurrency_postgres.py: forced
interleavings (one stopped right before its first write while the other runs),
then a randomised run; each ends with the event's actualReductionKw equal to
what its commands deliver, and the command re-asserted once."""

from __future__ import annotations

import asyncio
import random
from collections.abc import AsyncIterator
from dataclasses import replace
from datetime import timedelta
from typing import Any

import pytest
from tests.integration.test_concurrency_postgres import (
    POLICY,
    T0,
    Fleet,
    ack_of,
    interleave,
)

from adapters.sql.engine import create_engine
from adapters.sql.queries import SqlTelemetryQueries
from adapters.sql.telemetry import SqlTelemetryStore
from adapters.sql.uow import SqlUnitOfWorkFactory
from adapters.system import ManualClock, SequentialIds
from gridcore import services
from gridcore.correlation import AckMatch, AckOutcome, Command, CommandState, delivered_w
from gridcore.dispatch import Dispatcher, DispatchReport
from gridcore.events import DrEvent
from gridcore.quantities import to_kw
from gridcore.telemetry import LoadSample, TelemetrySample

pytestmark = pytest.mark.postgres

AFTER = timedelta(seconds=60)


class ReconcilingFleet(Fleet):
    store: SqlTelemetryStore

    def dispatcher(self, uow: Any = None) -> Dispatcher:
        found = super().dispatcher(uow)
        found.policy = replace(POLICY, reconcile_after=AFTER)
        return found

    async def report(self, ven_id: str, event_id: str | None) -> None:
        load = LoadSample(load_id="ev1", type="ev", current_power_kw=8.0, shed_capability_kw=8.0)
        sample = TelemetrySample(
            ven_id,
            self.clock.now(),
            loads=(load,),
            event_id=event_id,
            shed_power_kw=5.0 if event_id else 0.0,
        )
        await self.store.append([sample])


@pytest.fixture
async def fleet(migrated_postgres_url: str) -> AsyncIterator[ReconcilingFleet]:
    engine = create_engine(migrated_postgres_url)
    try:
        found = ReconcilingFleet(
            engine,
            SqlUnitOfWorkFactory(engine),
            ManualClock(T0),
            SequentialIds(),
            SqlTelemetryQueries(engine),  # type: ignore[arg-type]
        )
        found.store = SqlTelemetryStore(engine)
        yield found
        await found.store.close()
    finally:
        await engine.dispose()


async def rebooted(fleet: ReconcilingFleet) -> tuple[DrEvent, dict[str, Command]]:
    """A 10 kW event both VENs accepted (5 kW each); then ven-1 reboots and
    reports no event and no shed for more than a minute."""
    for ven in ("ven-1", "ven-2"):
        await fleet.report(ven, None)
    event = await fleet.event(10.0, minutes=30)
    await fleet.dispatcher().run_once()
    commands = {c.ven_id: c for c in fleet.publisher.sent if c.event_id == event.id}
    await services.record_acks(fleet.uow, fleet.clock, [ack_of(c) for c in commands.values()])
    for _ in range(14):
        fleet.clock.advance(timedelta(seconds=5))
        await fleet.report("ven-1", None)
        await fleet.report("ven-2", event.id)
    assert (await fleet.get(event.id)).actual_reduction_kw == 10.0
    return event, commands


async def consistent(fleet: ReconcilingFleet, event: DrEvent) -> list[Command]:
    """The event's actualReductionKw is what its commands deliver, to the watt."""
    commands = await fleet.commands(event.id)
    assert (await fleet.get(event.id)).actual_reduction_kw == pytest.approx(
        to_kw(delivered_w(commands)), abs=0.0005
    )
    return commands


def ven1(commands: list[Command]) -> Command:
    (found,) = [c for c in commands if c.ven_id == "ven-1"]
    return found


async def test_two_dispatchers_reassert_once(fleet: ReconcilingFleet) -> None:
    event, _ = await rebooted(fleet)

    async def reconciling(uow: Any) -> int:
        return int(await fleet.dispatcher(uow).reconcile())

    first, second = await interleave(fleet, reconciling, reconciling)
    # The second waited for the first's locks, then saw the command back in the
    # outbox: nothing more to do. The kW dropped once (5, not 0).
    assert (first, second) == (1, 0)
    assert (await fleet.get(event.id)).actual_reduction_kw == 5.0
    command = ven1(await consistent(fleet, event))
    assert command.state is CommandState.PENDING and command.attempts == 1


async def test_an_ack_landing_during_the_reassertion_counts_after_it(
    fleet: ReconcilingFleet,
) -> None:
    event, commands = await rebooted(fleet)

    async def reconciling(uow: Any) -> int:
        return int(await fleet.dispatcher(uow).reconcile())

    async def acking(uow: Any) -> list[AckMatch]:
        return await services.record_acks(uow, fleet.clock, [ack_of(commands["ven-1"])])

    reasserted, acked = await interleave(fleet, reconciling, acking)
    # The ACK waited for the event's lock and answered the re-asserted command.
    assert reasserted == 1 and [m.outcome for m in acked] == [AckOutcome.MATCHED]
    command = ven1(await consistent(fleet, event))
    assert command.state is CommandState.ACKED
    assert (await fleet.get(event.id)).actual_reduction_kw == 10.0
    # Answered: the relay does not send it again.
    before = len(fleet.publisher.sent)
    await fleet.dispatcher().relay(DispatchReport())
    assert len(fleet.publisher.sent) == before


async def test_a_reassertion_waiting_for_an_ack_decides_on_the_acked_command(
    fleet: ReconcilingFleet,
) -> None:
    event, commands = await rebooted(fleet)

    async def acking(uow: Any) -> list[AckMatch]:
        return await services.record_acks(uow, fleet.clock, [ack_of(commands["ven-1"])])

    async def reconciling(uow: Any) -> int:
        return int(await fleet.dispatcher(uow).reconcile())

    acked, reasserted = await interleave(fleet, acking, reconciling)
    # A redelivered old ACK: a duplicate, so the command is still the one
    # accepted a minute ago, and is re-asserted once.
    assert [m.outcome for m in acked] == [AckOutcome.DUPLICATE] and reasserted == 1
    assert ven1(await consistent(fleet, event)).state is CommandState.PENDING
    assert (await fleet.get(event.id)).actual_reduction_kw == 5.0


@pytest.mark.slow
@pytest.mark.parametrize("seed", [1, 2, 3])
async def test_randomised_dispatchers_and_acks_count_each_kw_once(
    fleet: ReconcilingFleet, seed: int
) -> None:
    """Two whole dispatchers (no lease) and ACK batches at once, while ven-1
    keeps rebooting: after every round the event's kW is what its commands
    deliver, and ven-1's command is sent at most 1 + max_retries times."""
    rng = random.Random(seed)
    event, commands = await rebooted(fleet)
    dispatchers = [fleet.dispatcher(), fleet.dispatcher()]
    for _ in range(12):
        published = [c for c in fleet.publisher.sent if c.ven_id == "ven-1"]
        acks = [ack_of(commands["ven-1"])] * rng.randint(0, 3) if published else []
        work: list[Any] = [d.run_once() for d in dispatchers]
        work += [services.record_acks(fleet.uow, fleet.clock, [a]) for a in acks]
        rng.shuffle(work)
        await asyncio.gather(*work)
        command = ven1(await consistent(fleet, event))
        assert command.attempts <= 1 + POLICY.max_retries
        fleet.clock.advance(timedelta(seconds=rng.choice([5, 20, 35])))
        await fleet.report("ven-1", None)
        await fleet.report("ven-2", event.id)
    sends = [
        c for c in fleet.publisher.sent if c.correlation_id == commands["ven-1"].correlation_id
    ]
    assert 1 < len(sends) <= 1 + POLICY.max_retries
    assert [c.attempts for c in sends] == list(range(1, len(sends) + 1))  # each send once
