"""The dispatcher against a stateful model, shared by the in-memory
(``tests/unit/test_dispatch_state_machine.py``) and the PostgreSQL
(``tests/integration/test_dispatch_state_machine_postgres.py``) runs.

:class:`DispatchMachine` drives only the public use cases (``Dispatcher.run_once``,
``services.create_event``, ``services.stop_event``, ``services.record_acks``)
under a manual clock, for a fixed fleet whose shed availability never changes,
with a publisher that records what it sends and can be told to fail. Rules
create (possibly overlapping) events, advance the clock past ACK deadlines and
event ends, run dispatcher passes, stop events, and play VENs that ACK a
command (accepted or rejected), ACK it again, ACK without correlationId, or
whose ACK is lost. After every step the store is read back through a unit of
work and held to these invariants:

1. an event's actualReductionKw is, to the watt, the sum over VENs of the
   delivered kW of the VEN's newest ACKED event command of that event (a
   rejected re-allocation leaves what the VEN delivered before); no ACK counts
   twice;
2. an ACKED/REJECTED command never changes again and is never re-published
   after its ACK was recorded; record_acks answers 'matched' or 'late' at most
   once per correlationId;
3. at most one restore per (event, VEN); once an event is completed or stopped,
   exactly the VENs that were sent one of its event commands have a restore;
4. no VEN owes more than it can shed across active events;
5. correlationIds are unique and ``{eventId}-{8 hex}`` for an event's commands.

A backend subclass provides the unit-of-work factory and the event loop.
"""

from __future__ import annotations

import asyncio
import re
from collections import Counter
from collections.abc import Coroutine, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, TypeVar

from hypothesis import Phase
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule
from tests.unit.test_dispatch import POLICY, T0, RecordingPublisher

from adapters.system import ManualClock, SequentialIds
from gridcore import (
    AckMatch,
    AckOutcome,
    Command,
    CommandOp,
    CommandState,
    DrEvent,
    EventStatus,
    VenAck,
    services,
)
from gridcore.dispatch import Dispatcher
from gridcore.ports import UnitOfWorkFactory
from gridcore.quantities import to_kw, to_watts

T = TypeVar("T")

# The fleet: every VEN always online, always able to shed exactly this much.
FLEET: dict[str, float] = {"ven-1": 2.0, "ven-2": 3.5, "ven-3": 6.0}
MAX_EVENTS = 8
EVENT_CORRELATION_ID = re.compile(r"^evt-[0-9a-f]{8}-[0-9a-f]{8}$")
ANSWERED = (CommandState.ACKED, CommandState.REJECTED)
# Hypothesis's explain phase re-runs a failing example under a tracer: for a
# machine of dozens of steps it takes minutes, after a shrink of under one.
PHASES = [phase for phase in Phase if phase is not Phase.explain]


@dataclass
class FlakyPublisher(RecordingPublisher):
    """A RecordingPublisher whose next ``fail_next`` publishes fail."""

    fail_next: int = 0
    failures: int = 0

    async def publish(self, command: Command) -> None:
        if self.fail_next > 0:
            self.fail_next -= 1
            self.failures += 1
            raise ConnectionError("broker dropped the publish")
        await super().publish(command)


@dataclass(frozen=True)
class FixedShed:
    """The TelemetryQueries the dispatcher reads: a fleet that is always online
    and can always shed the same kW, and never reports (the only queries a
    dispatcher makes)."""

    kw: Mapping[str, float] = field(default_factory=lambda: dict(FLEET))

    async def available_shed(self, now: datetime, offline_after: timedelta) -> dict[str, float]:
        return dict(self.kw)

    async def not_shedding(
        self, event_id: str, *, acked_before: datetime, since: datetime, limit: int = 1000
    ) -> list[str]:
        """No telemetry: no VEN is ever seen not shedding (no re-assertion)."""
        return []


def expected_w(command: Command) -> int:
    """What a VEN still owes an event, given its newest event command there."""
    if command.state.is_open:
        return to_watts(command.shed_kw or 0.0)
    if command.state is CommandState.ACKED:
        delivered = command.delivered_kw
        return to_watts(delivered if delivered is not None else command.shed_kw or 0.0)
    return 0


def newest(commands: Sequence[Command]) -> Command | None:
    return max(commands, key=lambda c: (c.created_at, c.correlation_id), default=None)


def event_commands_by_ven(commands: Sequence[Command]) -> dict[str, list[Command]]:
    by_ven: dict[str, list[Command]] = {}
    for c in commands:
        if c.op is CommandOp.EVENT:
            by_ven.setdefault(c.ven_id, []).append(c)
    return by_ven


Store = dict[str, tuple[DrEvent, list[Command]]]


class DispatchMachine(RuleBasedStateMachine):
    """See the module docstring. Subclasses implement :meth:`open_store`."""

    def __init__(self) -> None:
        super().__init__()
        self.loop, self.uow = self.open_store()
        self.clock = ManualClock(T0)
        self.ids = SequentialIds()
        self.publisher = FlakyPublisher()
        self.dispatcher = Dispatcher(self.uow, FixedShed(), self.publisher, self.clock, POLICY)
        self.event_ids: list[str] = []
        self.status: dict[str, EventStatus] = {}
        self.store: Store = {}  # as the last invariant check read it
        # correlationId -> (state, delivered kW) its first recorded ACK gave it
        self.answered: dict[str, tuple[CommandState, float | None]] = {}
        # correlationId -> len(publisher.sent) when its ACK was recorded
        self.answered_at: dict[str, int] = {}
        self.changes: Counter[str] = Counter()
        # correlationId -> its publish count when its ACK got lost (the VEN
        # answers again only once it is sent again)
        self.lost: dict[str, int] = {}

    # --- backend ---------------------------------------------------------------

    def open_store(self) -> tuple[asyncio.AbstractEventLoop, UnitOfWorkFactory]:
        """An event loop to run the use cases on (not an asyncio.Runner, whose
        run() re-installs a SIGINT handler at a cost that dominates a step),
        and an empty store."""
        raise NotImplementedError

    def close_store(self) -> None:
        """Called at the end of every example."""

    def teardown(self) -> None:
        self.close_store()

    def run(self, coro: Coroutine[Any, Any, T]) -> T:
        return self.loop.run_until_complete(coro)

    # --- reading the store -------------------------------------------------------

    async def _read(self) -> Store:
        store: Store = {}
        async with self.uow() as uow:
            for event_id in self.event_ids:
                event = await uow.events.get(event_id)
                assert event is not None, f"event {event_id} vanished"
                store[event_id] = (event, await uow.commands.for_event(event_id))
        return store

    def read(self) -> Store:
        return self.run(self._read())

    def command(self, correlation_id: str, event_id: str | None) -> Command:
        async def find() -> Command:
            async with self.uow() as uow:
                commands = await uow.commands.for_event(event_id or "")
            (found,) = [c for c in commands if c.correlation_id == correlation_id]
            return found

        return self.run(find())

    def owed_elsewhere_w(self, store: Store, ven_id: str, event_id: str | None) -> int:
        """What a VEN owes the active events other than ``event_id``."""
        total = 0
        for other, (event, commands) in store.items():
            if other == event_id or event.status is not EventStatus.ACTIVE:
                continue
            latest = newest(event_commands_by_ven(commands).get(ven_id, []))
            total += expected_w(latest) if latest is not None else 0
        return total

    # --- the model's view of what was published ---------------------------------

    def publishes(self) -> Counter[str]:
        return Counter(c.correlation_id for c in self.publisher.sent)

    def published(self) -> dict[str, Command]:
        return {c.correlation_id: c for c in self.publisher.sent}

    def unanswered(self) -> list[str]:
        """Published commands the VEN would answer now: no ACK recorded, and
        not waiting for a re-send after a lost ACK."""
        counts = self.publishes()
        return sorted(
            cid for cid in counts if cid not in self.answered and self.lost.get(cid) != counts[cid]
        )

    def open_unanswered(self) -> list[str]:
        published = self.published()
        open_now = {
            c.correlation_id
            for _, commands in self.store.values()
            for c in commands
            if c.state.is_open
        }
        return [cid for cid in self.unanswered() if cid in open_now and cid in published]

    # --- VENs ---------------------------------------------------------------------

    def draw_ack(self, data: st.DataObject, command: Command, correlation_id: str | None) -> VenAck:
        """The VEN's answer to ``command``: accepted with at most what it was
        asked to shed, or rejected. A VEN answering a command the dispatcher no
        longer waits for (timed out, cancelled, already answered) delivers at most
        what the other active events leave it."""
        now = self.clock.now()
        if command.op is CommandOp.RESTORE:
            status = data.draw(st.sampled_from(["success", "failed"]), label="restore status")
            return VenAck(command.ven_id, "restore", status, now, correlation_id=correlation_id)
        if not data.draw(st.booleans(), label="accepted"):
            return VenAck(
                command.ven_id,
                "event",
                "rejected",
                now,
                correlation_id=correlation_id,
                event_id=command.event_id,
                requested_shed_kw=command.shed_kw,
                actual_shed_kw=0.0,
            )
        cap = to_watts(command.shed_kw or 0.0)
        if not command.state.is_open:
            store = self.read()
            if store[command.event_id or ""][0].status is EventStatus.ACTIVE:
                headroom = to_watts(FLEET[command.ven_id]) - self.owed_elsewhere_w(
                    store, command.ven_id, command.event_id
                )
                cap = max(min(cap, headroom), 0)
        watts = data.draw(st.integers(0, cap), label="actual shed W")
        return VenAck(
            command.ven_id,
            "event",
            "accepted",
            now,
            correlation_id=correlation_id,
            event_id=command.event_id,
            requested_shed_kw=command.shed_kw,
            actual_shed_kw=to_kw(watts),
        )

    def record(self, acks: Sequence[VenAck]) -> list[AckMatch]:
        matches = self.run(services.record_acks(self.uow, self.clock, acks))
        assert len(matches) == len(acks)
        for ack, match in zip(acks, matches, strict=True):
            if match.outcome not in (AckOutcome.MATCHED, AckOutcome.LATE):
                continue
            command = match.command
            assert command is not None
            cid = command.correlation_id
            self.changes[cid] += 1
            assert self.changes[cid] == 1, f"invariant 2: {cid} answered {match.outcome} twice"
            assert command.state in ANSWERED
            if command.op is CommandOp.EVENT:
                delivered = ack.actual_shed_kw if ack.accepted else 0.0
                assert command.delivered_kw == delivered, (cid, command.delivered_kw, delivered)
            self.answered[cid] = (command.state, command.delivered_kw)
            self.answered_at[cid] = len(self.publisher.sent)
        return matches

    @staticmethod
    def outcome_for(command: Command) -> AckOutcome:
        if command.state in ANSWERED:
            return AckOutcome.DUPLICATE
        if command.state is CommandState.TIMED_OUT:
            return AckOutcome.LATE
        return AckOutcome.MATCHED

    # --- rules --------------------------------------------------------------------

    @precondition(lambda self: len(self.event_ids) < MAX_EVENTS)
    @rule(
        # Round requests besides arbitrary ones: they fill VENs exactly far more often.
        kw_w=st.one_of(
            st.sampled_from([1_000, 2_500, 4_000, 6_000, 8_000, 11_000]), st.integers(200, 12_000)
        ),
        start_in=st.sampled_from([0, 0, 0, -20, 10, 45]),
        minutes=st.integers(2, 20),
    )
    def create_event(self, kw_w: int, start_in: int, minutes: int) -> None:
        start = self.clock.now() + timedelta(seconds=start_in)
        event = self.run(
            services.create_event(
                self.uow,
                self.clock,
                self.ids,
                start_time=start,
                end_time=start + timedelta(minutes=minutes),
                requested_reduction_kw=to_kw(kw_w),
            )
        )
        self.event_ids.append(event.id)

    @rule(
        seconds=st.one_of(
            st.sampled_from([5, 10, 31]), st.integers(1, 45), st.sampled_from([90, 600])
        )
    )
    def advance_clock(self, seconds: int) -> None:
        self.clock.advance(timedelta(seconds=seconds))

    @rule(failures=st.sampled_from([0, 0, 0, 1, 2]), wait=st.sampled_from([0, 0, 1, 5, 31]))
    def dispatch(self, failures: int, wait: int) -> None:
        """A dispatcher pass ``wait`` seconds after the last step, whose first
        ``failures`` publishes fail."""
        self.clock.advance(timedelta(seconds=wait))
        self.publisher.fail_next = failures
        before = self.publisher.failures
        self.run(self.dispatcher.run_once())
        failed = self.publisher.failures - before
        self.publisher.fail_next = 0
        now = self.clock.now()
        for event_id, (event, commands) in self.read().items():
            assert not event.is_due(now), f"{event_id} due at {event.start_time}, still scheduled"
            assert not event.is_over(now), f"{event_id} over at {event.end_time}, still active"
            if not failed:
                pending = [c.correlation_id for c in commands if c.state is CommandState.PENDING]
                assert not pending, f"a pass with no failed publish left {pending} in the outbox"

    @precondition(lambda self: any(s is EventStatus.ACTIVE for s in self.status.values()))
    @rule(data=st.data())
    def stop_event(self, data: st.DataObject) -> None:
        active = sorted(e for e, s in self.status.items() if s is EventStatus.ACTIVE)
        event_id = data.draw(st.sampled_from(active), label="stop")
        self.run(services.stop_event(self.uow, self.clock, event_id))

    @precondition(lambda self: self.unanswered())
    @rule(data=st.data(), twice=st.booleans())
    def ack(self, data: st.DataObject, twice: bool) -> None:
        """A VEN answers a command it was sent (``twice``: the broker delivers
        that ACK twice in one batch)."""
        cid = data.draw(st.sampled_from(self.unanswered()), label="ack")
        command = self.command(cid, self.published()[cid].event_id)
        ack = self.draw_ack(data, command, cid)
        matches = self.record([ack, ack] if twice else [ack])
        expected = self.outcome_for(command)
        assert expected is not AckOutcome.DUPLICATE, f"{cid} answered without an ACK: {command}"
        assert matches[0].outcome is expected, (cid, command.state, matches[0].outcome)
        assert matches[-1].outcome is (AckOutcome.DUPLICATE if twice else expected)

    @precondition(lambda self: self.open_unanswered())
    @rule(data=st.data(), everyone=st.booleans())
    def ack_batch(self, data: st.DataObject, everyone: bool) -> None:
        """Several VENs answer open commands (``everyone``: every open command
        is answered), recorded as one batch, as the MQTT consumer batches them."""
        candidates = self.open_unanswered()
        cids = (
            candidates
            if everyone
            else data.draw(
                st.lists(st.sampled_from(candidates), min_size=1, max_size=4, unique=True),
                label="batch",
            )
        )
        published = self.published()
        commands = [self.command(cid, published[cid].event_id) for cid in cids]
        acks = [self.draw_ack(data, c, c.correlation_id) for c in commands]
        matches = self.record(acks)
        for command, match in zip(commands, matches, strict=True):
            assert command.state.is_open
            assert match.outcome is AckOutcome.MATCHED, (command, match)

    @precondition(lambda self: self.answered)
    @rule(data=st.data())
    def duplicate_ack(self, data: st.DataObject) -> None:
        """The same command answered again (a QoS 1 re-delivery, or a VEN that
        changed its mind): nothing changes."""
        cid = data.draw(st.sampled_from(sorted(self.answered)), label="duplicate")
        event_id = next(e for e in self.event_ids if cid.startswith(e + "-"))
        command = self.command(cid, event_id)
        (match,) = self.record([self.draw_ack(data, command, cid)])
        assert match.outcome is AckOutcome.DUPLICATE
        assert self.command(cid, event_id) == command

    @precondition(lambda self: self.publisher.sent)
    @rule(data=st.data())
    def legacy_ack(self, data: st.DataObject) -> None:
        """An old VEN answers without correlationId: matched by VEN + op (+ event
        id for an event command; a restore ACK carries none) to the newest such
        command already sent (one still in the outbox is nobody's answer)."""
        keys = sorted(
            {(c.ven_id, c.op.value, c.event_id or "") for c in self.publisher.sent},
        )
        ven_id, op, event_id = data.draw(st.sampled_from(keys), label="legacy ack")
        store = self.read()
        candidates = [
            c
            for eid, (_, commands) in store.items()
            if op == CommandOp.RESTORE.value or eid == event_id
            for c in commands
            if c.ven_id == ven_id and c.op.value == op and c.first_sent_at is not None
        ]
        target = newest(candidates)
        assert target is not None
        ack = self.draw_ack(data, target, None)
        (match,) = self.record([ack])
        assert match.command is not None
        assert match.command.correlation_id == target.correlation_id, (target, match)
        assert match.outcome is self.outcome_for(target), (target, match.outcome)

    @precondition(lambda self: self.unanswered())
    @rule(data=st.data())
    def lose_ack(self, data: st.DataObject) -> None:
        """The VEN acted and answered, but the ACK never arrives."""
        cid = data.draw(st.sampled_from(self.unanswered()), label="lost")
        self.lost[cid] = self.publishes()[cid]

    # --- invariants ---------------------------------------------------------------

    @invariant()
    def store_keeps_the_invariants(self) -> None:
        store = self.store = self.read()
        self.status = {event_id: event.status for event_id, (event, _) in store.items()}
        by_cid: dict[str, Command] = {}
        for _, commands in store.values():
            for c in commands:
                assert c.correlation_id not in by_cid, (
                    f"invariant 5: correlationId {c.correlation_id} stored twice"
                )
                by_cid[c.correlation_id] = c
        self.check_correlation_ids(store, by_cid)
        self.check_answers_are_final(by_cid)
        self.check_actual_reduction(store)
        self.check_restores(store)
        self.check_no_ven_owes_more_than_it_can_shed(store)

    def check_correlation_ids(self, store: Store, by_cid: dict[str, Command]) -> None:
        """5. ``{eventId}-{8 hex}``; one correlationId never names two commands."""
        for event_id, (_, commands) in store.items():
            for c in commands:
                assert EVENT_CORRELATION_ID.match(c.correlation_id), c.correlation_id
                assert c.correlation_id.startswith(event_id + "-"), (event_id, c.correlation_id)
        for sent in self.publisher.sent:
            stored = by_cid.get(sent.correlation_id)
            assert stored is not None, f"published {sent.correlation_id} is not in the ledger"
            assert (sent.ven_id, sent.op, sent.event_id, sent.shed_kw) == (
                stored.ven_id,
                stored.op,
                stored.event_id,
                stored.shed_kw,
            ), f"invariant 5: {sent.correlation_id} names two commands: {sent} / {stored}"

    def check_answers_are_final(self, by_cid: dict[str, Command]) -> None:
        """2. An answered command stays as its ACK left it and is never
        published again (record_acks' matched/late count is checked in
        :meth:`record`)."""
        for cid, (state, delivered) in self.answered.items():
            c = by_cid[cid]
            assert (c.state, c.delivered_kw) == (state, delivered), (
                f"invariant 2: {cid} was {state} ({delivered} kW), is now {c.state} "
                f"({c.delivered_kw} kW)"
            )
        for index, sent in enumerate(self.publisher.sent):
            at = self.answered_at.get(sent.correlation_id)
            assert at is None or index < at, (
                f"invariant 2: {sent.correlation_id} re-published after its ACK was recorded"
            )
        for cid, n in self.publishes().items():
            assert n <= 1 + POLICY.max_retries, f"{cid} published {n} times"

    def check_actual_reduction(self, store: Store) -> None:
        """1. actualReductionKw = delivered kW of each VEN's newest ACKED command."""
        for event_id, (event, commands) in store.items():
            delivered_w = 0
            for ven_commands in event_commands_by_ven(commands).values():
                last = newest([c for c in ven_commands if c.state is CommandState.ACKED])
                if last is not None:
                    delivered_w += to_watts(last.delivered_kw or 0.0)
            assert to_watts(event.actual_reduction_kw) == delivered_w, (
                f"invariant 1: {event_id} actualReductionKw={event.actual_reduction_kw}, "
                f"its VENs' newest ACKED commands delivered {to_kw(delivered_w)} kW: "
                f"{commands}"
            )

    def check_restores(self, store: Store) -> None:
        """3. One restore per VEN that was sent the event, once it ended; none before."""
        for event_id, (event, commands) in store.items():
            restores = Counter(c.ven_id for c in commands if c.op is CommandOp.RESTORE)
            doubled = sorted(v for v, n in restores.items() if n > 1)
            assert not doubled, f"invariant 3: {event_id} restores {doubled} more than once"
            if event.status in (EventStatus.COMPLETED, EventStatus.STOPPED):
                sent_to = {
                    c.ven_id
                    for c in self.publisher.sent
                    if c.op is CommandOp.EVENT and c.event_id == event_id
                }
                assert set(restores) == sent_to, (
                    f"invariant 3: {event.status} {event_id} was sent to {sorted(sent_to)}, "
                    f"restores go to {sorted(restores)}"
                )
            else:
                assert not restores, f"{event.status} {event_id} has restores"

    def check_no_ven_owes_more_than_it_can_shed(self, store: Store) -> None:
        """4. Over the active events, what each VEN's newest event command still
        expects of it is at most what it can shed (+1 W)."""
        for ven_id, kw in FLEET.items():
            owed = {
                event_id: expected_w(latest)
                for event_id, (event, commands) in store.items()
                if event.status is EventStatus.ACTIVE
                and (latest := newest(event_commands_by_ven(commands).get(ven_id, []))) is not None
            }
            assert sum(owed.values()) <= to_watts(kw) + 1, (
                f"invariant 4: {ven_id} can shed {kw} kW but owes "
                f"{to_kw(sum(owed.values()))} kW over active events "
                f"{ {e: to_kw(w) for e, w in owed.items()} }"
            )
