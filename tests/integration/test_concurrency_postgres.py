"""The dispatch and ACK paths under concurrent transactions on real PostgreSQL
(READ COMMITTED, as production runs it: several workers beside the API).

Two kinds of test:
- forced interleavings: one use case is paused right before its first write
  (after everything it read), the other runs meanwhile, then the first goes on.
  Each is a race that lost or double-counted kilowatts before the event lock
  (docs/decisions.md): the second use case now waits for the first's lock
  instead of writing from a stale read;
- a randomised run: ACK batches with duplicates, stops, completions and two
  dispatchers (no lease) at once from several connections, then the
  invariants.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
from collections import Counter, defaultdict
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from types import TracebackType
from typing import Any, TypeVar

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine
from tests.dispatch_machine import FixedShed
from tests.unit.test_dispatch import RecordingPublisher

from adapters.sql.engine import create_engine
from adapters.sql.uow import SqlUnitOfWork, SqlUnitOfWorkFactory
from adapters.system import ManualClock, SequentialIds
from gridcore import services
from gridcore.correlation import AckMatch, AckOutcome, Command, CommandOp, CommandState, VenAck
from gridcore.dispatch import Dispatcher, DispatchPolicy, DispatchReport
from gridcore.errors import IllegalTransition
from gridcore.events import DrEvent, EventStatus

pytestmark = pytest.mark.postgres

T0 = datetime(2026, 1, 5, 17, 0, tzinfo=UTC)
POLICY = DispatchPolicy(ack_timeout=timedelta(seconds=30), max_retries=2)
T = TypeVar("T")


# --- a unit of work that stops before its first write ------------------------------


class Gate:
    """Holds the first write of the units of work it is given to until released."""

    def __init__(self) -> None:
        self.reached = asyncio.Event()
        self.release = asyncio.Event()
        self._armed = True

    async def pass_(self) -> None:
        if self._armed:
            self._armed = False
            self.reached.set()
            await self.release.wait()


# Every method of the storage ports that writes.
_WRITES = frozenset(
    {"add", "add_many", "update", "update_many", "remove", "save_load", "save_status"}
    | {"add_actual_reduction"}
)


class _GatedRepository:
    def __init__(self, inner: Any, gate: Gate) -> None:
        self._inner = inner
        self._gate = gate

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self._inner, name)
        if name not in _WRITES:
            return attr

        async def gated(*args: Any, **kwargs: Any) -> Any:
            await self._gate.pass_()
            return await attr(*args, **kwargs)

        return gated


class GatedUnitOfWork:
    """A real SqlUnitOfWork whose repositories wait at the gate before writing."""

    def __init__(self, engine: AsyncEngine, gate: Gate) -> None:
        self._inner = SqlUnitOfWork(engine)
        self._gate = gate

    async def __aenter__(self) -> GatedUnitOfWork:
        await self._inner.__aenter__()
        for name in ("vens", "events", "commands", "acks", "dead_letters"):
            setattr(self, name, _GatedRepository(getattr(self._inner, name), self._gate))
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self._inner.__aexit__(exc_type, exc, tb)

    async def commit(self) -> None:
        await self._inner.commit()

    async def rollback(self) -> None:
        await self._inner.rollback()


# --- the fleet ---------------------------------------------------------------------


class YieldingPublisher(RecordingPublisher):
    async def publish(self, command: Command) -> None:
        await asyncio.sleep(0)  # a real publish yields to the loop
        await super().publish(command)


@dataclass
class Fleet:
    engine: AsyncEngine
    uow: SqlUnitOfWorkFactory
    clock: ManualClock
    ids: SequentialIds
    available: FixedShed
    publisher: RecordingPublisher = field(default_factory=YieldingPublisher)

    def dispatcher(self, uow: Any = None) -> Dispatcher:
        return Dispatcher(uow or self.uow, self.available, self.publisher, self.clock, POLICY)

    def gated(self, gate: Gate) -> Callable[[], GatedUnitOfWork]:
        return lambda: GatedUnitOfWork(self.engine, gate)

    async def event(self, kw: float, minutes: float = 10) -> DrEvent:
        now = self.clock.now()
        return await services.create_event(
            self.uow,
            self.clock,
            self.ids,
            start_time=now,
            end_time=now + timedelta(minutes=minutes),
            requested_reduction_kw=kw,
        )

    async def get(self, event_id: str) -> DrEvent:
        async with self.uow() as uow:
            event = await uow.events.get(event_id)
        assert event is not None
        return event

    async def commands(self, event_id: str | None = None) -> list[Command]:
        async with self.uow() as uow:
            if event_id is not None:
                return await uow.commands.for_event(event_id)
            return await uow.commands.for_events(
                [e.id for e in (await uow.events.page(limit=1000)).items]
            )

    async def lock_waiters(self) -> int:
        async with self.engine.connect() as conn:
            query = text(
                "SELECT count(*) FROM pg_stat_activity"
                " WHERE datname = current_database() AND wait_event_type = 'Lock'"
            )
            return int(await conn.scalar(query) or 0)


@pytest.fixture
async def fleet(migrated_postgres_url: str) -> AsyncIterator[Fleet]:
    engine = create_engine(migrated_postgres_url)
    try:
        yield Fleet(
            engine,
            SqlUnitOfWorkFactory(engine),
            ManualClock(T0),
            SequentialIds(),
            FixedShed({"ven-1": 10.0, "ven-2": 10.0}),
        )
    finally:
        await engine.dispose()


def ack_of(command: Command, kw: float | None = None, status: str = "accepted") -> VenAck:
    return VenAck(
        ven_id=command.ven_id,
        op=command.op.value,
        status=status,
        timestamp=T0,
        correlation_id=command.correlation_id,
        event_id=command.event_id,
        actual_shed_kw=command.shed_kw if kw is None else kw,
    )


async def interleave(
    fleet: Fleet,
    first: Callable[[Any], Awaitable[Any]],
    second: Callable[[Any], Awaitable[Any]],
) -> tuple[Any, Any]:
    """Run ``first`` up to its first write; run ``second`` until it finishes or
    waits for a lock ``first`` holds; then let ``first`` write and commit. Each
    result is the value returned or the exception raised."""
    gate = Gate()
    a = asyncio.create_task(first(fleet.gated(gate)))
    await asyncio.wait_for(gate.reached.wait(), 10)
    b = asyncio.create_task(second(fleet.uow))
    for _ in range(500):
        if b.done() or await fleet.lock_waiters():
            break
        await asyncio.sleep(0.01)
    else:
        pytest.fail("the second transaction neither finished nor waited for a lock")
    gate.release.set()
    done = await asyncio.gather(a, b, return_exceptions=True)
    return done[0], done[1]


async def sent_event(fleet: Fleet, kw: float = 10.0) -> tuple[DrEvent, dict[str, Command]]:
    """An active event whose commands were published: one per VEN."""
    event = await fleet.event(kw)
    await fleet.dispatcher().run_once()
    commands = {c.ven_id: c for c in fleet.publisher.sent if c.event_id == event.id}
    assert set(commands) == {"ven-1", "ven-2"}
    return event, commands


def restores_per_ven(commands: list[Command]) -> Counter[str]:
    return Counter(c.ven_id for c in commands if c.op is CommandOp.RESTORE)


# --- 1. a lifecycle write never erases delivered kW ----------------------------------


@pytest.mark.parametrize("end", ["stop", "completion"])
async def test_an_ack_landing_while_the_event_ends_is_kept(fleet: Fleet, end: str) -> None:
    event, commands = await sent_event(fleet)
    if end == "completion":
        fleet.clock.advance(timedelta(minutes=10))

    async def ending(uow: Any) -> Any:
        if end == "stop":
            return await services.stop_event(uow, fleet.clock, event.id)
        return await fleet.dispatcher(uow).finish_over()

    async def acking(uow: Any) -> list[AckMatch]:
        return await services.record_acks(uow, fleet.clock, [ack_of(commands["ven-1"])])

    ended, acked = await interleave(fleet, ending, acking)
    assert not isinstance(ended, Exception), ended
    # The end went first (it held the lock): the ACK is late, and still counted.
    assert [m.outcome for m in acked] == [AckOutcome.LATE]
    stored = await fleet.get(event.id)
    assert stored.status is (EventStatus.STOPPED if end == "stop" else EventStatus.COMPLETED)
    assert stored.actual_reduction_kw == 5.0  # was 0.0: the whole-row write erased it
    assert restores_per_ven(await fleet.commands(event.id)) == {"ven-1": 1, "ven-2": 1}


# --- 2. the same ACK in two transactions counts once ------------------------------


async def test_the_same_ack_in_two_transactions_counts_once(fleet: Fleet) -> None:
    event, commands = await sent_event(fleet)
    ack = ack_of(commands["ven-1"], kw=4.0)

    async def acking(uow: Any) -> list[AckMatch]:
        return await services.record_acks(uow, fleet.clock, [ack])

    first, second = await interleave(fleet, acking, acking)
    assert sorted(m.outcome for m in [*first, *second]) == [
        AckOutcome.DUPLICATE,
        AckOutcome.MATCHED,
    ]
    assert (await fleet.get(event.id)).actual_reduction_kw == 4.0  # was 8.0


async def test_a_burst_of_redelivered_acks_counts_each_once(fleet: Fleet) -> None:
    """No forced interleaving: the same ACKs in eight batches at once."""
    event, commands = await sent_event(fleet)
    acks = [ack_of(commands["ven-1"], kw=4.0), ack_of(commands["ven-2"], kw=3.5)]
    results = await asyncio.gather(
        *(services.record_acks(fleet.uow, fleet.clock, acks) for _ in range(8))
    )
    outcomes = Counter(m.outcome for batch in results for m in batch)
    assert outcomes == {AckOutcome.MATCHED: 2, AckOutcome.DUPLICATE: 14}
    assert (await fleet.get(event.id)).actual_reduction_kw == 7.5


# --- 3. a retry never reopens an answered command ---------------------------------


async def test_an_ack_during_the_retry_pass_is_kept_and_counted_once(fleet: Fleet) -> None:
    event, commands = await sent_event(fleet)
    fleet.clock.advance(POLICY.ack_timeout)
    report = DispatchReport()

    async def retrying(uow: Any) -> None:
        await fleet.dispatcher(uow).handle_overdue(report)

    async def acking(uow: Any) -> list[AckMatch]:
        return await services.record_acks(uow, fleet.clock, [ack_of(commands["ven-1"])])

    _, acked = await interleave(fleet, retrying, acking)
    assert [m.outcome for m in acked] == [AckOutcome.MATCHED]
    # The retry was decided first (under the lock), so it went out; the VEN
    # answers it again, idempotently, and that answer is a duplicate.
    resent = [
        c for c in fleet.publisher.sent if c.correlation_id == acked[0].command.correlation_id
    ]
    assert [c.attempts for c in resent] == [1, 2]
    again = await services.record_acks(fleet.uow, fleet.clock, [ack_of(commands["ven-1"])])
    assert [m.outcome for m in again] == [AckOutcome.DUPLICATE]
    (ven1,) = [c for c in await fleet.commands(event.id) if c.ven_id == "ven-1"]
    assert ven1.state is CommandState.ACKED  # was SENT: the retry overwrote the ACK
    assert (await fleet.get(event.id)).actual_reduction_kw == 5.0


async def test_a_retry_pass_waiting_for_an_ack_does_not_resend_it(fleet: Fleet) -> None:
    event, commands = await sent_event(fleet)
    fleet.clock.advance(POLICY.ack_timeout)
    report = DispatchReport()

    async def acking(uow: Any) -> list[AckMatch]:
        return await services.record_acks(uow, fleet.clock, [ack_of(commands["ven-1"])])

    async def retrying(uow: Any) -> None:
        await fleet.dispatcher(uow).handle_overdue(report)

    await interleave(fleet, acking, retrying)
    assert report.retried == 1  # ven-2 only: ven-1 answered while the pass waited
    assert [c.ven_id for c in fleet.publisher.sent[2:]] == ["ven-2"]
    (ven1,) = [c for c in await fleet.commands(event.id) if c.ven_id == "ven-1"]
    assert ven1.state is CommandState.ACKED and ven1.attempts == 1


# --- 4. a stop racing the completion restores once --------------------------------


@pytest.mark.parametrize("first_in", ["stop", "completion"])
async def test_a_stop_racing_the_completion_queues_one_restore_per_ven(
    fleet: Fleet, first_in: str
) -> None:
    event, _ = await sent_event(fleet)
    fleet.clock.advance(timedelta(minutes=10))

    async def stopping(uow: Any) -> DrEvent:
        return await services.stop_event(uow, fleet.clock, event.id)

    async def completing(uow: Any) -> list[str]:
        return await fleet.dispatcher(uow).finish_over()

    order = (stopping, completing) if first_in == "stop" else (completing, stopping)
    first, second = await interleave(fleet, *order)
    assert not isinstance(first, Exception), first
    # The loser sees the winner's result: a 409 for the stop, nothing to do for the pass.
    assert isinstance(second, IllegalTransition) or second == []
    assert restores_per_ven(await fleet.commands(event.id)) == {"ven-1": 1, "ven-2": 1}


async def test_a_reallocation_racing_a_stop_sends_nothing_more(fleet: Fleet) -> None:
    event, commands = await sent_event(fleet)
    await services.record_acks(
        fleet.uow,
        fleet.clock,
        [ack_of(commands["ven-1"]), ack_of(commands["ven-2"], status="rejected", kw=0)],
    )

    async def stopping(uow: Any) -> DrEvent:
        return await services.stop_event(uow, fleet.clock, event.id)

    async def reallocating(uow: Any) -> int:
        return await fleet.dispatcher(uow).rebalance()

    stopped, created = await interleave(fleet, stopping, reallocating)
    assert stopped.status is EventStatus.STOPPED and created == 0
    ops = Counter(c.op for c in await fleet.commands(event.id))
    assert ops == {CommandOp.EVENT: 2, CommandOp.RESTORE: 2}  # no top-up for ven-1


# --- the randomised run -------------------------------------------------------------


@dataclass
class VenModel:
    """VENs as the test plays them: each command gets one answer, repeated as is
    for every publish of it (idempotent), sometimes twice, sometimes lost."""

    rng: random.Random
    answers: dict[str, VenAck] = field(default_factory=dict)
    outcomes: dict[str, list[AckOutcome]] = field(default_factory=lambda: defaultdict(list))

    def answer(self, command: Command) -> VenAck | None:
        if command.correlation_id not in self.answers:
            roll = self.rng.random()
            if roll < 0.1:
                return None  # lost this time; the retry asks again
            if command.op is CommandOp.EVENT and roll < 0.25:
                self.answers[command.correlation_id] = ack_of(command, kw=0, status="rejected")
            else:
                kw = round(self.rng.uniform(0, command.shed_kw or 0), 3)
                self.answers[command.correlation_id] = ack_of(command, kw=kw)
        return self.answers[command.correlation_id]

    def batches(self, published: list[Command], count: int) -> list[list[VenAck]]:
        acks = [a for c in published if (a := self.answer(c)) is not None]
        acks += self.rng.sample(acks, len(acks) // 3)  # redelivered
        self.rng.shuffle(acks)
        return [acks[i::count] for i in range(count)] if acks else []


async def check_invariants(fleet: Fleet, vens: VenModel) -> None:
    async with fleet.uow() as uow:
        events = (await uow.events.page(limit=1000)).items
        commands = await uow.commands.for_events([e.id for e in events])
    by_event: dict[str, list[Command]] = defaultdict(list)
    for c in commands:
        by_event[c.event_id or ""].append(c)
    owed: Counter[str] = Counter()
    for event in events:
        mine = sorted(by_event[event.id], key=lambda c: (c.created_at, c.correlation_id))
        newest_accepted: dict[str, Command] = {}
        latest: dict[str, Command] = {}
        for c in mine:
            if c.op is CommandOp.EVENT:
                latest[c.ven_id] = c
                if c.state is CommandState.ACKED:
                    newest_accepted[c.ven_id] = c
        expected = sum(c.delivered_kw or 0 for c in newest_accepted.values())
        assert event.actual_reduction_kw == pytest.approx(expected, abs=0.002), event.id
        assert max(restores_per_ven(mine).values(), default=0) <= 1, event.id
        if event.status is EventStatus.ACTIVE:
            for ven_id, c in latest.items():
                if c.state.is_open:
                    owed[ven_id] += c.shed_kw or 0
                elif c.state is CommandState.ACKED:
                    owed[ven_id] += c.delivered_kw or 0
    for ven_id, kw in owed.items():
        assert kw <= fleet.available.kw[ven_id] + 0.002, (ven_id, kw)
    for cid, outcomes in vens.outcomes.items():
        # Answered once: a command is never reopened, so never matched twice.
        assert sum(o in (AckOutcome.MATCHED, AckOutcome.LATE) for o in outcomes) <= 1, cid


@pytest.mark.slow
@pytest.mark.parametrize("seed", [1, 2, 3])
async def test_randomised_acks_stops_completions_and_passes_keep_every_invariant(
    fleet: Fleet, seed: int
) -> None:
    rng = random.Random(seed)
    fleet.available = FixedShed({f"ven-{n:02}": rng.choice([2.0, 3.0, 5.0]) for n in range(12)})
    vens = VenModel(rng)
    dispatchers = [fleet.dispatcher(), fleet.dispatcher()]  # two workers, no lease
    events: list[DrEvent] = []
    answered_up_to = 0

    async def acks(batch: list[VenAck]) -> None:
        for ack, match in zip(
            batch, await services.record_acks(fleet.uow, fleet.clock, batch), strict=True
        ):
            if ack.correlation_id is not None:
                vens.outcomes[ack.correlation_id].append(match.outcome)

    async def stop(event: DrEvent) -> None:
        with contextlib.suppress(IllegalTransition):  # already over: the API's 409
            await services.stop_event(fleet.uow, fleet.clock, event.id)

    for round_ in range(30):
        if round_ % 8 == 0:
            events.append(await fleet.event(rng.uniform(5, 40), minutes=rng.choice([2, 4, 6])))
        published = fleet.publisher.sent[answered_up_to:]
        answered_up_to = len(fleet.publisher.sent)
        work: list[Awaitable[Any]] = [d.run_once() for d in dispatchers]
        work += [acks(b) for b in vens.batches(published, rng.randint(1, 4))]
        if rng.random() < 0.1:
            work.append(stop(rng.choice(events)))
        await asyncio.gather(*work)
        await check_invariants(fleet, vens)
        fleet.clock.advance(timedelta(seconds=rng.choice([5, 10, 20])))
    fleet.clock.advance(timedelta(minutes=10))
    for _ in range(3):
        await asyncio.gather(*(d.run_once() for d in dispatchers))
        published = fleet.publisher.sent[answered_up_to:]
        answered_up_to = len(fleet.publisher.sent)
        await asyncio.gather(*(acks(b) for b in vens.batches(published, 2)))
    await check_invariants(fleet, vens)
    stored = await fleet.commands()
    assert {e.status for e in [await fleet.get(e.id) for e in events]} <= {
        EventStatus.COMPLETED,
        EventStatus.STOPPED,
    }
    sent_to = {(c.event_id, c.ven_id) for c in stored if c.op is CommandOp.EVENT and c.attempts}
    restored = {(c.event_id, c.ven_id) for c in stored if c.op is CommandOp.RESTORE}
    assert sent_to == restored  # every VEN reached is restored, exactly once
    assert sum(o is AckOutcome.DUPLICATE for v in vens.outcomes.values() for o in v) > 0
