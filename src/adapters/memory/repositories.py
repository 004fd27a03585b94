"""In-memory unit of work and repositories.

A real adapter for fast tests and the zero-setup demo. Every repository reads
through an overlay of the current transaction's writes onto the shared state;
``commit`` applies the overlay, anything else discards it. The domain objects
are frozen, so sharing them between state and overlay is safe.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from types import TracebackType
from typing import Generic, Self, TypeVar

from gridcore import summary
from gridcore.audit import EVERY_ENTRY, AuditEntry, AuditQuery
from gridcore.correlation import Command, CommandOp, CommandState, VenAck, newest_command
from gridcore.errors import IllegalTransition
from gridcore.events import DrEvent, EventStatus
from gridcore.participation import ResponseStats, response_stats
from gridcore.targeting import granted, is_targeted
from gridcore.telemetry import DeadLetter, Page, page_bounds
from gridcore.ven import Connectivity, Load, Ven, connectivity

K = TypeVar("K")
V = TypeVar("V")


@dataclass
class InMemoryState:
    """Everything the in-memory adapters store, shared by all units of work."""

    vens: dict[str, Ven] = field(default_factory=dict)
    loads: dict[tuple[str, str], Load] = field(default_factory=dict)
    events: dict[str, DrEvent] = field(default_factory=dict)
    commands: dict[str, Command] = field(default_factory=dict)
    acks: list[VenAck] = field(default_factory=list)
    dead_letters: list[DeadLetter] = field(default_factory=list)
    audit: list[AuditEntry] = field(default_factory=list)  # each with its id, oldest first


class _Overlay(Generic[K, V]):
    """Writes of one transaction over a shared dict."""

    def __init__(self, base: dict[K, V]) -> None:
        self.base = base
        self.written: dict[K, V] = {}
        self.deleted: set[K] = set()

    def get(self, key: K) -> V | None:
        if key in self.deleted:
            return None
        if key in self.written:
            return self.written[key]
        return self.base.get(key)

    def put(self, key: K, value: V) -> None:
        self.deleted.discard(key)
        self.written[key] = value

    def delete(self, key: K) -> None:
        self.written.pop(key, None)
        self.deleted.add(key)

    def values(self) -> Iterator[V]:
        for key in self.base.keys() | self.written.keys():
            value = self.get(key)
            if value is not None:
                yield value

    def items(self) -> Iterator[tuple[K, V]]:
        for key in self.base.keys() | self.written.keys():
            value = self.get(key)
            if value is not None:
                yield key, value

    def apply(self) -> None:
        for key in self.deleted:
            self.base.pop(key, None)
        self.base.update(self.written)


def _page(items: Sequence[V], offset: int, limit: int) -> Page[V]:
    offset, limit = page_bounds(offset, limit)
    return Page(total_count=len(items), items=tuple(items[offset : offset + limit]))


class InMemoryVenRepository:
    def __init__(self, state: InMemoryState) -> None:
        self._vens = _Overlay(state.vens)
        self._loads = _Overlay(state.loads)

    def _with_loads(self, ven: Ven) -> Ven:
        loads = sorted(
            (load for (ven_id, _), load in self._loads.items() if ven_id == ven.id),
            key=lambda load: load.id,
        )
        return replace(ven, loads=tuple(loads))

    async def get(self, ven_id: str) -> Ven | None:
        ven = self._vens.get(ven_id)
        return None if ven is None else self._with_loads(ven)

    async def add(self, ven: Ven) -> None:
        if self._vens.get(ven.id) is not None:
            raise ValueError(f"VEN {ven.id!r} is already registered")
        self._vens.put(ven.id, replace(ven, loads=()))
        for load in ven.loads:
            self._loads.put((ven.id, load.id), load)

    async def update(self, ven: Ven) -> None:
        if self._vens.get(ven.id) is None:
            raise ValueError(f"VEN {ven.id!r} is not registered")
        self._vens.put(ven.id, replace(ven, loads=()))

    async def remove(self, ven_id: str) -> bool:
        if self._vens.get(ven_id) is None:
            return False
        self._vens.delete(ven_id)
        for key, _ in list(self._loads.items()):
            if key[0] == ven_id:
                self._loads.delete(key)
        return True

    async def page(self, offset: int = 0, limit: int = 100) -> Page[Ven]:
        vens = sorted(self._vens.values(), key=lambda v: v.id)
        page = _page(vens, offset, limit)
        return Page(page.total_count, tuple(self._with_loads(v) for v in page.items))

    async def save_load(self, ven_id: str, load: Load) -> None:
        if self._vens.get(ven_id) is None:
            raise ValueError(f"VEN {ven_id!r} is not registered")
        self._loads.put((ven_id, load.id), load)

    async def targeted(self, targets: Sequence[str]) -> set[str]:
        load_targets: dict[str, list[Iterable[str]]] = defaultdict(list)
        for (ven_id, _), load in self._loads.items():
            if load.targets:
                load_targets[ven_id].append(load.targets)
        return {
            v.id
            for v in self._vens.values()
            if is_targeted(targets, granted(v.id, v.targets, *load_targets.get(v.id, ())))
        }

    async def online_ids(self, now: datetime, offline_after: timedelta) -> list[str]:
        return sorted(
            v.id
            for v in self._vens.values()
            if v.enabled and connectivity(v.last_seen_at, now, offline_after) is Connectivity.ONLINE
        )

    async def names(self, ven_ids: Sequence[str]) -> dict[str, str]:
        found = ((ven_id, self._vens.get(ven_id)) for ven_id in ven_ids)
        return {ven_id: ven.name for ven_id, ven in found if ven is not None}

    def apply(self) -> None:
        self._vens.apply()
        self._loads.apply()


def _floor(kw: float, delta: float) -> float:
    return round(max(kw + delta, 0.0), 3)


def _overlaps(event: DrEvent, start: datetime | None, end: datetime | None) -> bool:
    return (start is None or event.end_time > start) and (end is None or event.start_time < end)


class InMemoryEventRepository:
    def __init__(self, state: InMemoryState) -> None:
        self._events = _Overlay(state.events)
        # Increments of actualReductionKw, applied to the then-current value at
        # commit, like SQL's `SET x = x + d`: concurrent ACK batches both count.
        self._deltas: dict[str, float] = {}

    async def add(self, event: DrEvent) -> None:
        if self._events.get(event.id) is not None:
            raise ValueError(f"event {event.id} already exists")
        self._events.put(event.id, event)

    async def get(self, event_id: str) -> DrEvent | None:
        event = self._events.get(event_id)
        if event is None or event_id not in self._deltas:
            return event
        return event.with_actual_reduction(
            _floor(event.actual_reduction_kw, self._deltas[event_id])
        )

    async def lock(self, event_ids: Sequence[str]) -> dict[str, DrEvent]:
        # One coroutine at a time, never suspended inside a use case: nothing to wait for.
        found = {event_id: await self.get(event_id) for event_id in sorted(set(event_ids))}
        return {event_id: e for event_id, e in found.items() if e is not None}

    async def reschedule(self, event: DrEvent) -> None:
        stored = self._events.get(event.id)
        if stored is None:
            raise ValueError(f"event {event.id} does not exist")
        if stored.status is not EventStatus.SCHEDULED:
            raise IllegalTransition(event.id, stored.status.value, "rescheduled")
        self._events.put(
            event.id,
            replace(
                stored,
                start_time=event.start_time,
                end_time=event.end_time,
                requested_reduction_kw=event.requested_reduction_kw,
                targets=event.targets,
            ),
        )

    async def save_status(self, event: DrEvent, previous: EventStatus) -> None:
        stored = self._events.get(event.id)
        if stored is None:
            raise ValueError(f"event {event.id} does not exist")
        if stored.status is not previous:
            raise IllegalTransition(event.id, stored.status.value, event.status.value)
        self._events.put(
            event.id,
            replace(
                stored,
                status=event.status,
                activated_at=event.activated_at,
                ended_at=event.ended_at,
            ),
        )

    async def add_actual_reduction(self, event_id: str, delta_kw: float) -> None:
        if self._events.get(event_id) is None:
            raise ValueError(f"event {event_id} does not exist")
        self._deltas[event_id] = self._deltas.get(event_id, 0.0) + delta_kw

    async def page(
        self,
        *,
        status: EventStatus | None = None,
        start: datetime | None = None,
        end: datetime | None = None,
        offset: int = 0,
        limit: int = 100,
    ) -> Page[DrEvent]:
        events = sorted(
            (
                e
                for e in self._events.values()
                if (status is None or e.status is status) and _overlaps(e, start, end)
            ),
            key=lambda e: (e.start_time, e.id),
            reverse=True,
        )
        return _page(events, offset, limit)

    async def overlapping(
        self, *, start: datetime | None, end: datetime | None, after: DrEvent | None, limit: int
    ) -> list[DrEvent]:
        events = sorted(
            (
                e
                for e in self._events.values()
                if _overlaps(e, start, end)
                and (after is None or (e.start_time, e.id) < (after.start_time, after.id))
            ),
            key=lambda e: (e.start_time, e.id),
            reverse=True,
        )
        return events[: page_bounds(0, limit)[1]]

    def _sorted(self, status: EventStatus) -> list[DrEvent]:
        return sorted(
            (e for e in self._events.values() if e.status is status),
            key=lambda e: (e.start_time, e.id),
        )

    async def due(self, now: datetime, limit: int = 100) -> list[DrEvent]:
        return [e for e in self._sorted(EventStatus.SCHEDULED) if e.start_time <= now][:limit]

    async def over(self, now: datetime, limit: int = 100) -> list[DrEvent]:
        active = self._sorted(EventStatus.ACTIVE)
        return sorted((e for e in active if e.end_time <= now), key=lambda e: (e.end_time, e.id))[
            :limit
        ]

    async def active(self) -> list[DrEvent]:
        return self._sorted(EventStatus.ACTIVE)

    def apply(self) -> None:
        self._events.apply()
        base = self._events.base
        for event_id, delta in self._deltas.items():
            event = base.get(event_id)
            if event is not None:
                base[event_id] = event.with_actual_reduction(
                    _floor(event.actual_reduction_kw, delta)
                )
        self._deltas = {}


class InMemoryCommandRepository:
    def __init__(self, state: InMemoryState, events: InMemoryEventRepository) -> None:
        self._commands = _Overlay(state.commands)
        self._events = events  # commands of an event must name one that exists

    async def add_many(self, commands: Sequence[Command]) -> None:
        seen: set[str] = set()
        for command in commands:
            cid = command.correlation_id
            if cid in seen or self._commands.get(cid) is not None:
                raise ValueError(f"correlationId {cid} is already in the ledger")
            if command.event_id is not None and await self._events.get(command.event_id) is None:
                raise ValueError(f"{cid}: event {command.event_id} does not exist")
            seen.add(cid)
        for command in commands:
            self._commands.put(command.correlation_id, command)

    async def get(self, correlation_id: str) -> Command | None:
        return self._commands.get(correlation_id)

    async def get_many(self, correlation_ids: Sequence[str]) -> dict[str, Command]:
        found = ((cid, self._commands.get(cid)) for cid in correlation_ids)
        return {cid: command for cid, command in found if command is not None}

    async def events_of(self, correlation_ids: Sequence[str]) -> dict[str, str | None]:
        return {cid: c.event_id for cid, c in (await self.get_many(correlation_ids)).items()}

    async def update_many(self, commands: Sequence[Command]) -> None:
        for command in commands:
            if self._commands.get(command.correlation_id) is None:
                raise ValueError(f"correlationId {command.correlation_id} is not in the ledger")
            self._commands.put(command.correlation_id, command)

    async def for_event(self, event_id: str, ven_ids: Sequence[str] | None = None) -> list[Command]:
        wanted = None if ven_ids is None else set(ven_ids)
        return sorted(
            (
                c
                for c in self._commands.values()
                if c.event_id == event_id and (wanted is None or c.ven_id in wanted)
            ),
            key=lambda c: (c.created_at, c.correlation_id),
        )

    async def for_events(self, event_ids: Sequence[str]) -> list[Command]:
        wanted = set(event_ids)
        return sorted(
            (c for c in self._commands.values() if c.event_id in wanted),
            key=lambda c: (c.created_at, c.correlation_id),
        )

    async def count_for_event(self, event_id: str) -> int:
        return sum(1 for c in self._commands.values() if c.event_id == event_id)

    async def has_open(self, event_id: str) -> bool:
        return any(
            c.event_id == event_id and c.op is CommandOp.EVENT and c.state.is_open
            for c in self._commands.values()
        )

    async def lock(self, correlation_ids: Sequence[str]) -> dict[str, Command]:
        return await self.get_many(sorted(set(correlation_ids)))

    async def lock_allocation(self) -> None:
        return None  # use cases never suspend inside a unit of work here

    async def pending(self, limit: int = 1000, now: datetime | None = None) -> list[Command]:
        return sorted(
            (
                c
                for c in self._commands.values()
                if c.state is CommandState.PENDING and (now is None or c.is_due(now))
            ),
            key=lambda c: (c.created_at, c.correlation_id),
        )[:limit]

    async def overdue(self, now: datetime, limit: int = 1000) -> list[Command]:
        return sorted(
            (c for c in self._commands.values() if c.is_overdue(now)),
            key=lambda c: (c.deadline or now, c.correlation_id),
        )[:limit]

    async def latest_for(
        self, ven_id: str, op: str, event_id: str | None, *, sent_only: bool = False
    ) -> Command | None:
        return newest_command(self._commands.values(), ven_id, op, event_id, sent_only=sent_only)

    async def response_stats(self, event_id: str) -> ResponseStats:
        return response_stats(c for c in self._commands.values() if c.event_id == event_id)

    async def newest_answered(self, ven_ids: Sequence[str]) -> dict[str, Command]:
        wanted = set(ven_ids)
        return summary.newest_answered(c for c in self._commands.values() if c.ven_id in wanted)

    def apply(self) -> None:
        self._commands.apply()


class InMemoryAckRepository:
    def __init__(self, state: InMemoryState) -> None:
        self._state = state
        self._added: list[VenAck] = []

    def _all(self) -> list[VenAck]:
        return [*self._state.acks, *self._added]

    async def add_many(self, acks: Sequence[VenAck]) -> None:
        self._added.extend(acks)

    async def for_event(self, event_id: str, offset: int = 0, limit: int = 100) -> Page[VenAck]:
        acks = sorted((a for a in self._all() if a.event_id == event_id), key=lambda a: a.timestamp)
        return _page(acks, offset, limit)

    async def for_ven(
        self,
        ven_id: str,
        *,
        start: datetime | None = None,
        end: datetime | None = None,
        offset: int = 0,
        limit: int = 100,
    ) -> Page[VenAck]:
        acks = sorted(
            (
                a
                for a in self._all()
                if a.ven_id == ven_id
                and (start is None or a.timestamp >= start)
                and (end is None or a.timestamp < end)
            ),
            key=lambda a: a.timestamp,
            reverse=True,
        )
        return _page(acks, offset, limit)

    def apply(self) -> None:
        self._state.acks.extend(self._added)
        self._added = []


class InMemoryDeadLetterRepository:
    def __init__(self, state: InMemoryState) -> None:
        self._state = state
        self._added: list[DeadLetter] = []

    async def add(self, letter: DeadLetter) -> None:
        self._added.append(letter)

    async def count(self) -> int:
        return len(self._state.dead_letters) + len(self._added)

    async def recent(self, limit: int = 100) -> list[DeadLetter]:
        letters = [*self._state.dead_letters, *self._added]
        return sorted(letters, key=lambda d: d.received_at, reverse=True)[:limit]

    def apply(self) -> None:
        self._state.dead_letters.extend(self._added)
        self._added = []


class InMemoryAuditLog:
    def __init__(self, state: InMemoryState) -> None:
        self._state = state
        self._added: list[AuditEntry] = []

    async def add(self, entry: AuditEntry) -> None:
        self._added.append(entry)

    async def page(
        self, query: AuditQuery = EVERY_ENTRY, *, offset: int = 0, limit: int = 100
    ) -> Page[AuditEntry]:
        offset, limit = page_bounds(offset, limit)
        kept = len(self._state.audit)
        mine = [replace(e, id=kept + n) for n, e in enumerate(self._added, start=1)]
        found = [e for e in [*self._state.audit, *mine] if query.matches(e)]
        found.sort(key=lambda e: (e.at, e.id or 0), reverse=True)
        return Page(len(found), tuple(found[offset : offset + limit]))

    def apply(self) -> None:
        kept = len(self._state.audit)
        self._state.audit.extend(
            replace(e, id=kept + n) for n, e in enumerate(self._added, start=1)
        )
        self._added = []


class InProcessLease:
    """Dispatch lease among workers of one process (the demo, tests): the first
    to ask holds it until it releases it."""

    def __init__(self) -> None:
        self._holder: object | None = None

    def for_worker(self) -> _WorkerLease:
        return _WorkerLease(self)


class _WorkerLease:
    def __init__(self, lease: InProcessLease) -> None:
        self._lease = lease

    async def hold(self) -> bool:
        if self._lease._holder is None:
            self._lease._holder = self
        return self._lease._holder is self

    async def release(self) -> None:
        if self._lease._holder is self:
            self._lease._holder = None


class InMemoryUnitOfWork:
    """``async with InMemoryUnitOfWork(state) as uow: ...; await uow.commit()``."""

    def __init__(self, state: InMemoryState) -> None:
        self._state = state
        self._begin()

    def _begin(self) -> None:
        self.vens = InMemoryVenRepository(self._state)
        self.events = InMemoryEventRepository(self._state)
        self.commands = InMemoryCommandRepository(self._state, self.events)
        self.acks = InMemoryAckRepository(self._state)
        self.dead_letters = InMemoryDeadLetterRepository(self._state)
        self.audit = InMemoryAuditLog(self._state)

    async def __aenter__(self) -> Self:
        self._begin()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.rollback()

    async def commit(self) -> None:
        # Applied in one synchronous step: no other coroutine sees half a commit.
        for repo in (
            self.vens,
            self.events,
            self.commands,
            self.acks,
            self.dead_letters,
            self.audit,
        ):
            repo.apply()
        self._begin()

    async def rollback(self) -> None:
        self._begin()


class InMemoryUnitOfWorkFactory:
    def __init__(self, state: InMemoryState | None = None) -> None:
        self.state = state or InMemoryState()

    def __call__(self) -> InMemoryUnitOfWork:
        return InMemoryUnitOfWork(self.state)
