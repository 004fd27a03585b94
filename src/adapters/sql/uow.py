"""``SqlUnitOfWork``: one database transaction over the repositories."""

from __future__ import annotations

from types import TracebackType
from typing import Self

from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from adapters.sql.audit import SqlAuditLog
from adapters.sql.engine import SQLITE_BEGIN
from adapters.sql.repositories import (
    SqlAckRepository,
    SqlCommandRepository,
    SqlDeadLetterRepository,
    SqlEventRepository,
    SqlVenRepository,
)


class SqlUnitOfWork:
    """``async with uow: ...; await uow.commit()``.

    Entering takes a connection from the pool; the transaction starts with the
    first statement. Nothing is kept unless ``commit`` is called: leaving the
    block rolls back whatever is uncommitted and returns the connection. After
    ``commit`` or ``rollback`` the unit of work can be used again (a new
    transaction starts). On SQLite the transaction takes the write lock up
    front, so concurrent units of work queue instead of failing.
    """

    vens: SqlVenRepository
    events: SqlEventRepository
    commands: SqlCommandRepository
    acks: SqlAckRepository
    dead_letters: SqlDeadLetterRepository
    audit: SqlAuditLog

    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine
        self._conn: AsyncConnection | None = None

    async def __aenter__(self) -> Self:
        conn = await self._engine.connect()
        await conn.execution_options(**{SQLITE_BEGIN: "IMMEDIATE"})
        self._conn = conn
        self.vens = SqlVenRepository(conn)
        self.events = SqlEventRepository(conn)
        self.commands = SqlCommandRepository(conn)
        self.acks = SqlAckRepository(conn)
        self.dead_letters = SqlDeadLetterRepository(conn)
        self.audit = SqlAuditLog(conn)
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        conn, self._conn = self._conn, None
        if conn is None:
            return
        try:
            if conn.in_transaction():
                await conn.rollback()
        finally:
            await conn.close()

    def _connection(self) -> AsyncConnection:
        if self._conn is None:
            raise RuntimeError("use the unit of work inside 'async with'")
        return self._conn

    async def commit(self) -> None:
        await self._connection().commit()

    async def rollback(self) -> None:
        await self._connection().rollback()


class SqlUnitOfWorkFactory:
    """Makes a fresh :class:`SqlUnitOfWork` per use case call."""

    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine

    def __call__(self) -> SqlUnitOfWork:
        return SqlUnitOfWork(self.engine)
