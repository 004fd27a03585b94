"""Dispatch leases: at most one worker dispatches at a time.

On PostgreSQL a session-level advisory lock held on a connection of its own:
when the holder dies, PostgreSQL drops its session and the lock with it, and
another worker takes over on its next pass. On SQLite a file lock."""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os

from sqlalchemy import text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

log = logging.getLogger("gridcore.lease")

# Any constant shared by all gridcore workers of one database: "gridcore" in ASCII.
DISPATCH_LOCK_KEY = 0x67726964636F7265


class PostgresAdvisoryLease:
    def __init__(self, engine: AsyncEngine, key: int = DISPATCH_LOCK_KEY) -> None:
        self._engine = engine
        self._key = key
        self._conn: AsyncConnection | None = None

    async def hold(self) -> bool:
        if self._conn is not None:
            try:
                await self._conn.execute(text("SELECT 1"))
                return True
            except DBAPIError:
                log.warning("lost the dispatch lease connection; trying to take it again")
                await self._drop()
        conn = await self._engine.connect()
        try:
            # The session stays open, outside any transaction, while we hold the lock.
            await conn.execution_options(isolation_level="AUTOCOMMIT")
            got = await conn.scalar(text("SELECT pg_try_advisory_lock(:k)"), {"k": self._key})
        except BaseException:
            await conn.close()
            raise
        if not got:
            await conn.close()
            return False
        self._conn = conn
        log.info("this worker holds the dispatch lease")
        return True

    async def release(self) -> None:
        if self._conn is None:
            return
        with contextlib.suppress(DBAPIError):  # a dead session took the lock with it
            await self._conn.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": self._key})
        await self._drop()

    async def _drop(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            try:
                await conn.close()
            except DBAPIError:
                await conn.invalidate()


class FileLockLease:
    """The dispatch lease for SQLite: an exclusive ``flock`` on a file beside the
    database. SQLite's users are processes of one machine, and the kernel drops
    the lock when its holder dies, so a second worker takes over then."""

    def __init__(self, path: str) -> None:
        self._path = path
        self._fd: int | None = None

    async def hold(self) -> bool:
        if self._fd is not None:
            return True
        fd = os.open(self._path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            return False
        self._fd = fd
        log.info("this worker holds the dispatch lease (%s)", self._path)
        return True

    async def release(self) -> None:
        fd, self._fd = self._fd, None
        if fd is not None:
            fcntl.flock(fd, fcntl.LOCK_UN)
            os.close(fd)
