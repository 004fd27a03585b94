"""SQL repositories for the storage ports of :mod:`gridcore.ports`.

Each works on the unit of work's connection and never commits. Writes that can
collide with a unique key run in a SAVEPOINT, so that the port's ``ValueError``
leaves the surrounding transaction usable (PostgreSQL aborts a transaction on
any error otherwise).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from datetime import datetime, timedelta
from operator import attrgetter
from typing import Any, cast

import psycopg
from psycopg.types.json import Jsonb
from sqlalchemy import (
    Boolean,
    Column,
    ColumnElement,
    Float,
    Integer,
    Select,
    String,
    Text,
    and_,
    any_,
    bindparam,
    case,
    delete,
    extract,
    func,
    or_,
    select,
    union,
    update,
)
from sqlalchemy.dialects.postgresql import ARRAY as PG_ARRAY
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection

from adapters.sql import mapping
from adapters.sql.engine import json_dumps
from adapters.sql.tables import commands, dead_letters, events, ven_acks, ven_loads, vens
from adapters.sql.targets import is_one_of, shares_one
from adapters.sql.types import UtcDateTime
from gridcore.correlation import Command, CommandOp, CommandState, VenAck
from gridcore.errors import IllegalTransition
from gridcore.events import DrEvent, EventStatus
from gridcore.participation import ResponseStats
from gridcore.telemetry import MAX_PAGE_SIZE, DeadLetter, Page, page_bounds
from gridcore.ven import Load, Ven

MAX_LIMIT = MAX_PAGE_SIZE  # no list query returns more rows than this, whatever is asked
bounded = page_bounds


async def page_of(
    conn: AsyncConnection, query: Select[Any], offset: int, limit: int
) -> tuple[int, list[Any]]:
    """Total count of ``query`` and one bounded slice of it."""
    offset, limit = bounded(offset, limit)
    total = (await conn.execute(select(func.count()).select_from(query.subquery()))).scalar_one()
    rows = (await conn.execute(query.offset(offset).limit(limit))).mappings().all()
    return int(total), list(rows)


class SqlVenRepository:
    def __init__(self, conn: AsyncConnection) -> None:
        self._conn = conn

    async def _loads(self, ven_ids: Sequence[str]) -> dict[str, tuple[Load, ...]]:
        by_ven: dict[str, list[Load]] = defaultdict(list)
        if ven_ids:
            rows = await self._conn.execute(
                select(ven_loads)
                .where(ven_loads.c.ven_id.in_(ven_ids))
                .order_by(ven_loads.c.ven_id, ven_loads.c.load_id)
            )
            for row in rows.mappings():
                by_ven[row["ven_id"]].append(mapping.load_from(row))
        return {ven_id: tuple(loads) for ven_id, loads in by_ven.items()}

    async def get(self, ven_id: str) -> Ven | None:
        row = (await self._conn.execute(select(vens).where(vens.c.id == ven_id))).mappings().first()
        if row is None:
            return None
        return mapping.ven_from(row, (await self._loads([ven_id])).get(ven_id, ()))

    async def add(self, ven: Ven) -> None:
        try:
            async with self._conn.begin_nested():
                await self._conn.execute(vens.insert().values(mapping.ven_row(ven)))
        except IntegrityError:
            raise ValueError(f"VEN {ven.id!r} is already registered") from None
        if ven.loads:
            await self._conn.execute(
                ven_loads.insert(), [mapping.load_row(ven.id, load) for load in ven.loads]
            )

    async def update(self, ven: Ven) -> None:
        row = mapping.ven_row(ven)
        result = await self._conn.execute(
            update(vens)
            .where(vens.c.id == ven.id)
            .values(
                name=row["name"],
                lat=row["lat"],
                lon=row["lon"],
                enabled=row["enabled"],
                targets=row["targets"],
            )
        )
        if result.rowcount == 0:
            raise ValueError(f"VEN {ven.id!r} is not registered")

    async def remove(self, ven_id: str) -> bool:
        # Configured loads go with the VEN (ON DELETE CASCADE); history stays.
        result = await self._conn.execute(delete(vens).where(vens.c.id == ven_id))
        return bool(result.rowcount)

    async def page(self, offset: int = 0, limit: int = 100) -> Page[Ven]:
        total, rows = await page_of(self._conn, select(vens).order_by(vens.c.id), offset, limit)
        loads = await self._loads([row["id"] for row in rows])
        return Page(total, tuple(mapping.ven_from(r, loads.get(r["id"], ())) for r in rows))

    async def save_load(self, ven_id: str, load: Load) -> None:
        if await self._conn.scalar(select(vens.c.id).where(vens.c.id == ven_id)) is None:
            raise ValueError(f"VEN {ven_id!r} is not registered")
        insert = pg_insert if self._conn.dialect.name == "postgresql" else sqlite_insert
        row = mapping.load_row(ven_id, load)
        stmt = insert(ven_loads).values(row)
        await self._conn.execute(
            stmt.on_conflict_do_update(
                index_elements=[ven_loads.c.ven_id, ven_loads.c.load_id],
                set_={k: stmt.excluded[k] for k in row if k not in ("ven_id", "load_id")},
            )
        )

    async def targeted(self, targets: Sequence[str]) -> set[str]:
        if not targets:
            return {row[0] for row in await self._conn.execute(select(vens.c.id))}
        wanted = list(targets)
        dialect = self._conn.dialect.name
        # gridcore.targeting.granted: the VEN's id, its targets, its loads'
        # targets; a SELECT each, so that each is read through its own index
        # (with an OR, PostgreSQL scans every VEN).
        by_id = select(vens.c.id).where(is_one_of(vens.c.id, wanted, dialect))
        own = select(vens.c.id).where(shares_one(vens.c.targets, wanted, dialect))
        by_load = select(ven_loads.c.ven_id).where(shares_one(ven_loads.c.targets, wanted, dialect))
        return {row[0] for row in await self._conn.execute(union(by_id, own, by_load))}

    async def online_ids(self, now: datetime, offline_after: timedelta) -> list[str]:
        rows = await self._conn.execute(
            select(vens.c.id)
            .where(vens.c.enabled.is_(True), vens.c.last_seen_at >= now - offline_after)
            .order_by(vens.c.id)
        )
        return [row[0] for row in rows]

    async def names(self, ven_ids: Sequence[str]) -> dict[str, str]:
        ids = sorted(set(ven_ids))
        found: dict[str, str] = {}
        for start in range(0, len(ids), 500):  # under every driver's parameter limit
            query = select(vens.c.id, vens.c.name).where(vens.c.id.in_(ids[start : start + 500]))
            found.update((row[0], row[1]) for row in await self._conn.execute(query))
        return found


class SqlEventRepository:
    def __init__(self, conn: AsyncConnection) -> None:
        self._conn = conn

    async def add(self, event: DrEvent) -> None:
        try:
            async with self._conn.begin_nested():
                await self._conn.execute(events.insert().values(mapping.event_row(event)))
        except IntegrityError:
            raise ValueError(f"event {event.id} already exists") from None

    async def get(self, event_id: str) -> DrEvent | None:
        query = select(events).where(events.c.event_id == event_id)
        row = (await self._conn.execute(query)).mappings().first()
        return None if row is None else mapping.event_from(row)

    async def lock(self, event_ids: Sequence[str]) -> dict[str, DrEvent]:
        ids = sorted(set(event_ids))
        if not ids:
            return {}
        # FOR UPDATE in id order (the lock is taken as rows come out of the sort):
        # two transactions locking overlapping sets queue instead of deadlocking.
        # SQLite ignores it: its transactions already hold the database's write lock.
        query = (
            select(events)
            .where(events.c.event_id.in_(ids))
            .order_by(events.c.event_id)
            .with_for_update()
        )
        return {e.id: e for e in await self._list(query)}

    async def save_status(self, event: DrEvent, previous: EventStatus) -> None:
        result = await self._conn.execute(
            update(events)
            .where(events.c.event_id == event.id, events.c.status == previous.value)
            .values(
                status=event.status.value, activated_at=event.activated_at, ended_at=event.ended_at
            )
        )
        if result.rowcount == 0:
            stored = await self.get(event.id)
            if stored is None:
                raise ValueError(f"event {event.id} does not exist")
            raise IllegalTransition(event.id, stored.status.value, event.status.value)

    async def reschedule(self, event: DrEvent) -> None:
        row = mapping.event_row(event)
        result = await self._conn.execute(
            update(events)
            .where(events.c.event_id == event.id, events.c.status == EventStatus.SCHEDULED.value)
            .values(
                {k: row[k] for k in ("start_time", "end_time", "requested_reduction_kw", "targets")}
            )
        )
        if result.rowcount == 0:
            stored = await self.get(event.id)
            if stored is None:
                raise ValueError(f"event {event.id} does not exist")
            raise IllegalTransition(event.id, stored.status.value, "rescheduled")

    async def add_actual_reduction(self, event_id: str, delta_kw: float) -> None:
        # One UPDATE computing from the stored value: concurrent ACK handlers
        # cannot lose each other's deltas (no read-modify-write in Python).
        total = events.c.actual_reduction_kw + delta_kw
        result = await self._conn.execute(
            update(events)
            .where(events.c.event_id == event_id)
            .values(actual_reduction_kw=case((total < 0.0, 0.0), else_=total))
        )
        if result.rowcount == 0:
            raise ValueError(f"event {event_id} does not exist")

    async def page(
        self,
        *,
        status: EventStatus | None = None,
        start: datetime | None = None,
        end: datetime | None = None,
        offset: int = 0,
        limit: int = 100,
    ) -> Page[DrEvent]:
        conditions: list[ColumnElement[bool]] = []
        if status is not None:
            conditions.append(events.c.status == status.value)
        if start is not None:
            conditions.append(events.c.end_time > start)
        if end is not None:
            conditions.append(events.c.start_time < end)
        query = (
            select(events)
            .where(and_(True, *conditions))
            .order_by(events.c.start_time.desc(), events.c.event_id.desc())
        )
        total, rows = await page_of(self._conn, query, offset, limit)
        return Page(total, tuple(mapping.event_from(r) for r in rows))

    async def overlapping(
        self, *, start: datetime | None, end: datetime | None, after: DrEvent | None, limit: int
    ) -> list[DrEvent]:
        e = events.c
        query = select(events)
        if start is not None:
            query = query.where(e.end_time > start)
        if end is not None:
            query = query.where(e.start_time < end)
        if after is not None:
            query = query.where(
                or_(
                    e.start_time < after.start_time,
                    and_(e.start_time == after.start_time, e.event_id < after.id),
                )
            )
        return await self._list(
            query.order_by(e.start_time.desc(), e.event_id.desc()).limit(bounded(0, limit)[1])
        )

    async def _list(self, query: Select[Any]) -> list[DrEvent]:
        return [mapping.event_from(r) for r in (await self._conn.execute(query)).mappings()]

    async def due(self, now: datetime, limit: int = 100) -> list[DrEvent]:
        return await self._list(
            select(events)
            .where(events.c.status == EventStatus.SCHEDULED.value, events.c.start_time <= now)
            .order_by(events.c.start_time, events.c.event_id)
            .limit(bounded(0, limit)[1])
        )

    async def over(self, now: datetime, limit: int = 100) -> list[DrEvent]:
        return await self._list(
            select(events)
            .where(events.c.status == EventStatus.ACTIVE.value, events.c.end_time <= now)
            .order_by(events.c.end_time, events.c.event_id)
            .limit(bounded(0, limit)[1])
        )

    async def active(self) -> list[DrEvent]:
        return await self._list(
            select(events)
            .where(events.c.status == EventStatus.ACTIVE.value)
            .order_by(events.c.start_time, events.c.event_id)
            .limit(MAX_LIMIT)
        )


# pg_advisory_xact_lock key that serializes shed allocation ("gridallo" in ASCII);
# not the dispatch lease's key (lease.py), which a worker holds for hours.
ALLOCATION_LOCK_KEY = 0x67726964616C6C6F

# The dispatcher works in batches larger than an API page: one 10,000-VEN
# event is relayed in one pass. Still bounded.
MAX_DISPATCH_BATCH = 20_000


def _dispatch_batch(limit: int) -> int:
    return min(max(limit, 1), MAX_DISPATCH_BATCH)


# PostgreSQL: the ledger's bulk writes go through binary COPY (psycopg formats
# rows in C), not an executemany of 10,000 parameter sets: a 10,000-VEN event
# is written, marked sent, or has its ACKs recorded in tens of milliseconds.
def _pg_type(column: Column[Any]) -> str:
    known: list[tuple[type[Any], str]] = [
        (UtcDateTime, "timestamptz"), (String, "text"), (Boolean, "bool"),
        (Integer, "int4"), (Float, "float8"),
    ]  # fmt: skip
    for python_type, pg_type in known:
        if isinstance(column.type, python_type):
            return pg_type
    raise TypeError(f"no COPY type for {column.name}: {column.type!r}")  # pragma: no cover


_COMMAND_COLUMNS = [c.name for c in commands.columns]
_COMMAND_TYPES = [_pg_type(c) for c in commands.columns]
# ven_acks without its generated id and created_at.
_ACK_DOCUMENTS = ("circuits_curtailed", "raw_payload")
_ACK_COLUMNS = [c.name for c in ven_acks.columns if c.name not in ("id", "created_at")]
_ACK_TYPES = ["jsonb" if n in _ACK_DOCUMENTS else _pg_type(ven_acks.c[n]) for n in _ACK_COLUMNS]
# One UPDATE of any number of commands: each column's new values as one array
# parameter, joined to the table by correlationId (no temporary table to
# create, fill and empty: one round trip, one statement). The arrays are sent
# in binary (%b), which psycopg dumps in C; as text it quotes every element
# in Python, slower for 10,000 commands than the UPDATE itself.
_PG_UPDATE_FROM_ARRAYS = (
    "UPDATE commands AS c SET "
    + ", ".join(f"{n} = v.{n}" for n in _COMMAND_COLUMNS if n != "correlation_id")
    + " FROM unnest("
    + ", ".join(f"%b::{t}[]" for t in _COMMAND_TYPES)
    + f") AS v({', '.join(_COMMAND_COLUMNS)}) WHERE c.correlation_id = v.correlation_id"
)


# A command's COPY row straight from its attributes (one C call), not through
# a dict per command: 100,000 commands of a fleet-sized event are written,
# and marked sent, in batches of these.
_COMMAND_VALUES = attrgetter(*_COMMAND_COLUMNS)
_COMMAND_ENUMS = [_COMMAND_COLUMNS.index("op"), _COMMAND_COLUMNS.index("state")]
_COMMAND_STAMPS = [
    n for n, column in enumerate(commands.columns) if isinstance(column.type, UtcDateTime)
]


def _command_tuples(commands_: Sequence[Command]) -> list[list[Any]]:
    rows = []
    for c in commands_:
        row = list(_COMMAND_VALUES(c))
        for n in _COMMAND_ENUMS:
            row[n] = row[n].value
        for n in _COMMAND_STAMPS:
            stamp = row[n]
            if stamp is not None and stamp.utcoffset() is None:
                raise ValueError(f"naive datetime {stamp!r}: timestamps must be timezone-aware")
        rows.append(row)
    return rows


async def _pg_copy_commands(conn: AsyncConnection, table: str, rows: list[list[Any]]) -> None:
    await _pg_copy(conn, table, _COMMAND_COLUMNS, _COMMAND_TYPES, rows)


async def _pg_copy(
    conn: AsyncConnection,
    table: str,
    columns: Sequence[str],
    types: Sequence[str],
    rows: Sequence[Sequence[Any]],
) -> None:
    """Binary COPY of ``rows`` on the unit of work's connection (same transaction)."""
    if not conn.in_transaction():
        # Begin as SQLAlchemy's autobegin would, or the unit of work's commit,
        # seeing no transaction, would do nothing and the pool roll the COPY back.
        await conn.begin()
    raw = await conn.get_raw_connection()
    pg = cast(psycopg.AsyncConnection[Any], raw.driver_connection)
    async with pg.cursor() as cur:
        statement = f"COPY {table} ({', '.join(columns)}) FROM STDIN (FORMAT BINARY)"
        async with cur.copy(statement) as copy:
            copy.set_types(list(types))
            format_row = copy.formatter.write_row
            for row in rows:
                if data := format_row(row):
                    await copy.write(data)


def _among(
    conn: AsyncConnection, column: ColumnElement[str], values: Sequence[str]
) -> list[ColumnElement[bool]]:
    """Conditions that together select ``column`` among ``values``, one query
    each: on PostgreSQL one ``= ANY(array)`` (one parameter and one plan
    however many values: an ACK batch of 2,000 is one query, not four);
    elsewhere IN lists of 500, under every driver's parameter limit."""
    if not values:
        return []
    if conn.dialect.name == "postgresql":
        return [column == any_(bindparam(None, list(values), type_=PG_ARRAY(Text)))]
    return [column.in_(values[start : start + 500]) for start in range(0, len(values), 500)]


def answered_last(ven_id: ColumnElement[str], *columns: str) -> Select[Any]:
    """``columns`` of the command ``ven_id`` answered last (newest ACK arrival,
    ties to the greater correlationId: gridcore.summary.newest_answered), as a
    one-row select correlated to ``ven_id``; one probe of
    ``ix_commands_ven_id_acked_at``."""
    c = commands.alias("answered_by_ven")
    return (
        select(*(c.c[name] for name in columns))
        .where(c.c.ven_id == ven_id, c.c.acked_at.is_not(None))
        .order_by(c.c.acked_at.desc(), c.c.correlation_id.desc())
        .limit(1)
    )


class SqlCommandRepository:
    def __init__(self, conn: AsyncConnection) -> None:
        self._conn = conn

    async def _list(self, query: Select[Any]) -> list[Command]:
        return [mapping.command_from(r) for r in (await self._conn.execute(query)).mappings()]

    async def add_many(self, commands_: Sequence[Command]) -> None:
        if not commands_:
            return
        seen: set[str] = set()
        for command in commands_:
            if command.correlation_id in seen:
                raise ValueError(f"correlationId {command.correlation_id} is already in the ledger")
            seen.add(command.correlation_id)
        try:
            async with self._conn.begin_nested():
                if self._conn.dialect.name == "postgresql":
                    await _pg_copy_commands(self._conn, "commands", _command_tuples(commands_))
                else:
                    await self._conn.execute(
                        commands.insert(), [mapping.command_row(c) for c in commands_]
                    )
        except (IntegrityError, psycopg.IntegrityError) as exc:  # COPY raises psycopg's own
            known = await self.get_many([c.correlation_id for c in commands_])
            if known:
                taken = next(c.correlation_id for c in commands_ if c.correlation_id in known)
                raise ValueError(f"correlationId {taken} is already in the ledger") from None
            reason = exc.orig if isinstance(exc, IntegrityError) else exc
            raise ValueError(f"cannot add commands to the ledger: {reason}") from None

    async def get(self, correlation_id: str) -> Command | None:
        found = await self._list(
            select(commands).where(commands.c.correlation_id == correlation_id)
        )
        return found[0] if found else None

    async def get_many(self, correlation_ids: Sequence[str]) -> dict[str, Command]:
        found: dict[str, Command] = {}
        ids = list(dict.fromkeys(correlation_ids))
        for among in _among(self._conn, commands.c.correlation_id, ids):
            for command in await self._list(select(commands).where(among)):
                found[command.correlation_id] = command
        return found

    async def events_of(self, correlation_ids: Sequence[str]) -> dict[str, str | None]:
        found: dict[str, str | None] = {}
        c = commands.c
        for among in _among(self._conn, c.correlation_id, list(dict.fromkeys(correlation_ids))):
            rows = await self._conn.execute(select(c.correlation_id, c.event_id).where(among))
            found.update((cid, event_id) for cid, event_id in rows)
        return found

    async def update_many(self, commands_: Sequence[Command]) -> None:
        if not commands_:
            return
        latest = list({c.correlation_id: c for c in commands_}.values())  # the last one wins
        if self._conn.dialect.name == "postgresql":
            arrays = tuple(list(values) for values in zip(*_command_tuples(latest), strict=True))
            result = await self._conn.exec_driver_sql(_PG_UPDATE_FROM_ARRAYS, arrays)
            updated: int | None = result.rowcount
        else:
            dicts = [mapping.command_row(c) for c in latest]
            columns = [name for name in dicts[0] if name != "correlation_id"]
            statement = (
                update(commands)
                .where(commands.c.correlation_id == bindparam("b_correlation_id"))
                .values({name: bindparam(f"b_{name}") for name in columns})
            )
            params = [{f"b_{k}": v for k, v in row.items()} for row in dicts]
            result = await self._conn.execute(statement, params)
            updated = result.rowcount if self._conn.dialect.supports_sane_multi_rowcount else None
        if updated is not None and updated != len(latest):
            known = await self.get_many([c.correlation_id for c in latest])
            missing = next(c.correlation_id for c in latest if c.correlation_id not in known)
            raise ValueError(f"correlationId {missing} is not in the ledger")

    async def for_event(self, event_id: str, ven_ids: Sequence[str] | None = None) -> list[Command]:
        query = select(commands).where(commands.c.event_id == event_id)
        if ven_ids is None:
            return await self._list(
                query.order_by(commands.c.created_at, commands.c.correlation_id)
            )
        found: list[Command] = []
        for among in _among(self._conn, commands.c.ven_id, sorted(set(ven_ids))):
            found += await self._list(query.where(among))
        return sorted(found, key=lambda c: (c.created_at, c.correlation_id))

    async def for_events(self, event_ids: Sequence[str]) -> list[Command]:
        if not event_ids:
            return []
        return await self._list(
            select(commands)
            .where(commands.c.event_id.in_(sorted(set(event_ids))))
            .order_by(commands.c.created_at, commands.c.correlation_id)
        )

    async def count_for_event(self, event_id: str) -> int:
        query = select(func.count()).select_from(commands).where(commands.c.event_id == event_id)
        return int(await self._conn.scalar(query) or 0)

    async def has_open(self, event_id: str) -> bool:
        c = commands.c
        open_states = (CommandState.PENDING.value, CommandState.SENT.value)
        query = (
            select(c.correlation_id)
            .where(c.event_id == event_id, c.op == CommandOp.EVENT.value, c.state.in_(open_states))
            .limit(1)
        )
        return (await self._conn.scalar(query)) is not None

    async def lock(self, correlation_ids: Sequence[str]) -> dict[str, Command]:
        found: dict[str, Command] = {}
        # Chunks (if any) in order, each locking in order: the locks stay ordered.
        for among in _among(self._conn, commands.c.correlation_id, sorted(set(correlation_ids))):
            query = (
                select(commands).where(among).order_by(commands.c.correlation_id).with_for_update()
            )
            found.update((c.correlation_id, c) for c in await self._list(query))
        return found

    async def lock_allocation(self) -> None:
        # A transaction-scoped advisory lock: released at commit or rollback, so
        # a worker that dies mid-allocation cannot leave it held. SQLite's
        # transactions are serial already.
        if self._conn.dialect.name == "postgresql":
            await self._conn.execute(select(func.pg_advisory_xact_lock(ALLOCATION_LOCK_KEY)))

    async def pending(self, limit: int = 1000, now: datetime | None = None) -> list[Command]:
        c = commands.c
        outbox = select(commands).where(c.state == CommandState.PENDING.value)
        order = (c.created_at, c.correlation_id)
        if now is None:
            return await self._list(outbox.order_by(*order).limit(_dispatch_batch(limit)))
        # Two index ranges of (state, not_before, created_at), not one scan of
        # the outbox that would step over every restore still waiting; each
        # oldest first, so the first ``limit`` of both are the outbox's.
        at_once = await self._list(
            outbox.where(c.not_before.is_(None)).order_by(*order).limit(_dispatch_batch(limit))
        )
        due = await self._list(
            outbox.where(c.not_before <= now).order_by(*order).limit(_dispatch_batch(limit))
        )
        found = sorted([*at_once, *due], key=lambda x: (x.created_at, x.correlation_id))
        return found[: _dispatch_batch(limit)]

    async def overdue(self, now: datetime, limit: int = 1000) -> list[Command]:
        return await self._list(
            select(commands)
            .where(commands.c.state == CommandState.SENT.value, commands.c.deadline <= now)
            .order_by(commands.c.deadline, commands.c.correlation_id)
            .limit(_dispatch_batch(limit))
        )

    async def latest_for(
        self, ven_id: str, op: str, event_id: str | None, *, sent_only: bool = False
    ) -> Command | None:
        query = select(commands).where(commands.c.ven_id == ven_id, commands.c.op == op)
        if event_id is not None:
            query = query.where(commands.c.event_id == event_id)
        if sent_only:
            query = query.where(commands.c.first_sent_at.is_not(None))
        found = await self._list(
            query.order_by(commands.c.created_at.desc(), commands.c.correlation_id.desc()).limit(1)
        )
        return found[0] if found else None

    async def response_stats(self, event_id: str) -> ResponseStats:
        c = commands.c
        round_trip_ms: ColumnElement[Any]
        if self._conn.dialect.name == "postgresql":
            round_trip_ms = extract("epoch", c.acked_at - c.first_sent_at) * 1000.0
        else:  # SQLite keeps UTC text; julianday reads it to the millisecond
            round_trip_ms = (func.julianday(c.acked_at) - func.julianday(c.first_sent_at)) * (
                86_400_000.0
            )
        accepted = case((c.state == CommandState.ACKED.value, c.ven_id))
        row = (
            await self._conn.execute(
                select(func.count(func.distinct(accepted)), func.avg(round_trip_ms)).where(
                    c.event_id == event_id, c.op == CommandOp.EVENT.value
                )
            )
        ).one()
        return ResponseStats(int(row[0] or 0), None if row[1] is None else float(row[1]))

    async def newest_answered(self, ven_ids: Sequence[str]) -> dict[str, Command]:
        # Registered VENs only: the registry drives one index probe per VEN.
        wanted = sorted(set(ven_ids))[:MAX_LIMIT]
        if not wanted:
            return {}
        newest = select(answered_last(vens.c.id, "correlation_id").scalar_subquery()).where(
            vens.c.id.in_(wanted)
        )
        found = await self._list(select(commands).where(commands.c.correlation_id.in_(newest)))
        return {c.ven_id: c for c in found}


class SqlAckRepository:
    def __init__(self, conn: AsyncConnection) -> None:
        self._conn = conn

    async def add_many(self, acks: Sequence[VenAck]) -> None:
        if not acks:
            return
        rows = [mapping.ack_row(a) for a in acks]
        if self._conn.dialect.name != "postgresql":
            await self._conn.execute(ven_acks.insert(), rows)
            return
        # A fleet's ACKs for an event arrive together: binary COPY, as the ledger.
        for row in rows:
            stamp = row["timestamp"]
            if stamp.utcoffset() is None:
                raise ValueError(f"naive datetime {stamp!r}: timestamps must be timezone-aware")
            for name in _ACK_DOCUMENTS:
                row[name] = Jsonb(row[name], dumps=json_dumps)
        await _pg_copy(
            self._conn,
            "ven_acks",
            _ACK_COLUMNS,
            _ACK_TYPES,
            [tuple(row[name] for name in _ACK_COLUMNS) for row in rows],
        )

    async def for_event(self, event_id: str, offset: int = 0, limit: int = 100) -> Page[VenAck]:
        query = (
            select(ven_acks)
            .where(ven_acks.c.event_id == event_id)
            .order_by(ven_acks.c.timestamp, ven_acks.c.id)
        )
        total, rows = await page_of(self._conn, query, offset, limit)
        return Page(total, tuple(mapping.ack_from(r) for r in rows))

    async def for_ven(
        self,
        ven_id: str,
        *,
        start: datetime | None = None,
        end: datetime | None = None,
        offset: int = 0,
        limit: int = 100,
    ) -> Page[VenAck]:
        query = select(ven_acks).where(ven_acks.c.ven_id == ven_id)
        if start is not None:
            query = query.where(ven_acks.c.timestamp >= start)
        if end is not None:
            query = query.where(ven_acks.c.timestamp < end)
        query = query.order_by(ven_acks.c.timestamp.desc(), ven_acks.c.id.desc())
        total, rows = await page_of(self._conn, query, offset, limit)
        return Page(total, tuple(mapping.ack_from(r) for r in rows))


class SqlDeadLetterRepository:
    def __init__(self, conn: AsyncConnection) -> None:
        self._conn = conn

    async def add(self, letter: DeadLetter) -> None:
        await self._conn.execute(dead_letters.insert().values(mapping.dead_letter_row(letter)))

    async def count(self) -> int:
        return int(await self._conn.scalar(select(func.count()).select_from(dead_letters)) or 0)

    async def recent(self, limit: int = 100) -> list[DeadLetter]:
        rows = await self._conn.execute(
            select(dead_letters)
            .order_by(dead_letters.c.received_at.desc(), dead_letters.c.id.desc())
            .limit(bounded(0, limit)[1])
        )
        return [mapping.dead_letter_from(r) for r in rows.mappings()]


__all__ = [
    "MAX_LIMIT",
    "SqlAckRepository",
    "SqlCommandRepository",
    "SqlDeadLetterRepository",
    "SqlEventRepository",
    "SqlVenRepository",
]
