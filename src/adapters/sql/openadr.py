"""The OpenADR VTN's objects in SQL (:class:`gridcore.ports.OpenAdrStore`):
the ``oadr_*`` tables of :mod:`adapters.sql.tables`.

Unique names and the references of events (to programs) and resources (to
vens) are checked first, for a message that says which, and are also the
database's constraints, which decide between two writers racing: the loser's
``IntegrityError`` becomes the same :class:`~gridcore.errors.Conflict`."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import Table, delete, exists, false, insert, or_, select, true, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine
from sqlalchemy.sql.elements import ColumnElement

from adapters.sql.engine import SQLITE_BEGIN
from adapters.sql.tables import (
    oadr_events,
    oadr_programs,
    oadr_reports,
    oadr_resources,
    oadr_subscriptions,
    oadr_targets,
    oadr_vens,
)
from gridcore.errors import Conflict
from gridcore.openadr import Document, Kind, ObjectChange, ObjectIndex, ObjectQuery

TABLES: dict[Kind, Table] = {
    Kind.PROGRAM: oadr_programs,
    Kind.EVENT: oadr_events,
    Kind.REPORT: oadr_reports,
    Kind.SUBSCRIPTION: oadr_subscriptions,
    Kind.VEN: oadr_vens,
    Kind.RESOURCE: oadr_resources,
}
# A child's column naming its parent; the child kind of each parent.
_PARENT = {Kind.EVENT: ("program_id", Kind.PROGRAM), Kind.RESOURCE: ("ven_id", Kind.VEN)}
_CHILD = {Kind.PROGRAM: Kind.EVENT, Kind.VEN: Kind.RESOURCE}
_NAMED = {Kind.PROGRAM: "programName", Kind.VEN: "venName", Kind.RESOURCE: "resourceName"}
_EQUAL = ("program_id", "event_id", "ven_id", "client_id", "client_name", "name")


def _values(table: Table, document: Document, index: ObjectIndex) -> dict[str, Any]:
    values: dict[str, Any] = {"id": document["id"], "document": document}
    for column in table.columns:
        name = column.name
        if name in values or name == "seq":
            continue
        if name == "targeted":
            values[name] = bool(index.targets)
        elif name == "object_types":
            values[name] = "," + ",".join(index.object_types) + ","
        else:
            values[name] = getattr(index, name)
    return values


class SqlOpenAdrStore:
    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine

    async def _check(
        self, conn: AsyncConnection, kind: Kind, object_id: str, index: ObjectIndex
    ) -> None:
        table = TABLES[kind]
        if kind in _PARENT:
            column, parent = _PARENT[kind]
            parent_id = getattr(index, column)
            found = await conn.scalar(
                select(TABLES[parent].c.id).where(TABLES[parent].c.id == parent_id)
            )
            if found is None:
                raise Conflict(f"{parent.value.lower()} {parent_id!r} does not exist")
        if kind in _NAMED:
            same = select(table.c.id).where(table.c.name == index.name, table.c.id != object_id)
            if kind is Kind.RESOURCE:
                same = same.where(table.c.ven_id == index.ven_id)
            if await conn.scalar(same) is not None:
                raise Conflict(f"{_NAMED[kind]} {index.name!r} is taken")

    async def _write(
        self, kind: Kind, document: Document, index: ObjectIndex, *, new: bool
    ) -> bool:
        table = TABLES[kind]
        object_id = document["id"]
        values = _values(table, document, index)
        async with self._engine.connect() as conn:
            await conn.execution_options(**{SQLITE_BEGIN: "IMMEDIATE"})
            async with conn.begin():
                await self._check(conn, kind, object_id, index)
                try:
                    if new:
                        await conn.execute(insert(table).values(**values))
                    else:
                        done = await conn.execute(
                            update(table).where(table.c.id == object_id).values(**values)
                        )
                        if done.rowcount == 0:
                            return False
                except IntegrityError as exc:
                    raise Conflict(
                        f"{kind.value.lower()} {object_id!r} conflicts with a stored object "
                        "(a name taken, or what it refers to removed, meanwhile)"
                    ) from exc
                await self._set_targets(conn, kind, [object_id], index.targets)
        return True

    @staticmethod
    async def _set_targets(
        conn: AsyncConnection, kind: Kind, object_ids: Sequence[str], targets: Sequence[str]
    ) -> None:
        t = oadr_targets.c
        await conn.execute(
            delete(oadr_targets).where(t.kind == kind.value, t.object_id.in_(list(object_ids)))
        )
        if targets:
            rows = [{"kind": kind.value, "object_id": object_ids[0], "target": x} for x in targets]
            await conn.execute(insert(oadr_targets), rows)

    async def add(self, kind: Kind, document: Document, index: ObjectIndex) -> None:
        await self._write(kind, document, index, new=True)

    async def get(self, kind: Kind, object_id: str) -> Document | None:
        table = TABLES[kind]
        async with self._engine.connect() as conn:
            found: Document | None = await conn.scalar(
                select(table.c.document).where(table.c.id == object_id)
            )
        return found

    async def replace(self, kind: Kind, document: Document, index: ObjectIndex) -> bool:
        return await self._write(kind, document, index, new=False)

    async def remove(self, kind: Kind, object_id: str) -> list[ObjectChange]:
        table = TABLES[kind]
        async with self._engine.connect() as conn:
            await conn.execution_options(**{SQLITE_BEGIN: "IMMEDIATE"})
            async with conn.begin():
                document = await conn.scalar(
                    select(table.c.document).where(table.c.id == object_id)
                )
                if document is None:
                    return []
                removed = [ObjectChange("DELETE", kind, document)]
                child = _CHILD.get(kind)
                if child is not None:
                    # the database removes them (ON DELETE CASCADE); they are read first
                    # so that their removal is announced like any other
                    column = TABLES[child].c[_PARENT[child][0]]
                    rows = await conn.execute(
                        select(TABLES[child].c.id, TABLES[child].c.document).where(
                            column == object_id
                        )
                    )
                    children = list(rows)
                    removed += [ObjectChange("DELETE", child, d) for _, d in children]
                    if children:
                        await self._set_targets(conn, child, [i for i, _ in children], ())
                await conn.execute(delete(table).where(table.c.id == object_id))
                await self._set_targets(conn, kind, [object_id], ())
        return removed

    async def search(
        self, kind: Kind, query: ObjectQuery, skip: int = 0, limit: int | None = None
    ) -> list[Document]:
        table = TABLES[kind]
        conditions = _conditions(kind, table, query)
        if conditions is None:
            return []
        statement = select(table.c.document).where(*conditions).order_by(table.c.seq)
        if skip:
            statement = statement.offset(skip)
        if limit is not None:
            statement = statement.limit(limit)
        async with self._engine.connect() as conn:
            return list(await conn.scalars(statement))


def _conditions(kind: Kind, table: Table, query: ObjectQuery) -> list[ColumnElement[bool]] | None:
    """The query as SQL conditions; None when it cannot match (a filter on a
    field this kind does not have, as :meth:`ObjectQuery.matches` says)."""
    conditions: list[ColumnElement[bool]] = []
    for name in _EQUAL:
        want = getattr(query, name)
        if want is None:
            continue
        if name not in table.c:
            return None
        conditions.append(table.c[name] == want)
    if query.object_types is not None:
        if "object_types" not in table.c:
            return None
        column = table.c.object_types
        conditions.append(
            or_(false(), *(column.contains(f",{t},", autoescape=True) for t in query.object_types))
        )
    if query.targets_any is not None:
        t = oadr_targets.c
        carries: ColumnElement[bool] = (
            exists().where(
                t.kind == kind.value, t.object_id == table.c.id, t.target.in_(query.targets_any)
            )
            if query.targets_any
            else false()
        )
        if query.or_untargeted:
            untargeted = table.c.targeted == false() if "targeted" in table.c else true()
            carries = or_(carries, untargeted)
        conditions.append(carries)
    if query.active_at is not None and "ends_at" in table.c:
        conditions.append(or_(table.c.ends_at.is_(None), table.c.ends_at > query.active_at))
    return conditions
