"""Is the database there, and is its schema the one this code was written for?

``gridcore migrate`` brings a database to the newest revision of the
migrations shipped in this package (the *head*); ``serve`` and ``worker`` do
not migrate, they check: the ``alembic_version`` row against the head. A
database never migrated, or migrated by an older or a newer gridcore, is a
:class:`DatabaseProblem` saying what to do, and so is a database that does
not answer, with the driver's reason (never the URL or a password).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
from dataclasses import dataclass

from alembic.script import ScriptDirectory
from sqlalchemy.exc import DBAPIError, DisconnectionError, SQLAlchemyError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from sqlalchemy.ext.asyncio import AsyncEngine

from adapters.sql.migrate import _reason, alembic_config, current_revision, describe
from adapters.sql.uow import SqlUnitOfWorkFactory

log = logging.getLogger("adapters.sql.schema")

MIGRATE = "run `gridcore migrate`"


@dataclass(frozen=True)
class DatabaseProblem:
    """Why the database cannot serve this code, in one line: ``status`` is what
    readiness shows ("unreachable: Connection refused", "not migrated: run
    `gridcore migrate`"); ``detail`` is the sentence for an API client."""

    status: str
    unreachable: bool = False

    @property
    def detail(self) -> str:
        return f"database {self.status}"


class SchemaMismatch(RuntimeError):
    """The database answers, but its schema is not this code's head."""


@functools.cache
def _revisions() -> tuple[str | None, frozenset[str]]:
    """This code's head and every revision it knows (the scripts do not change
    while the process runs)."""
    scripts = ScriptDirectory.from_config(alembic_config())
    return scripts.get_current_head(), frozenset(s.revision for s in scripts.walk_revisions())


def schema_problem(current: str | None) -> DatabaseProblem | None:
    """What is wrong with a database at revision ``current`` (None: never
    migrated), or None when it is at this code's head."""
    head, known = _revisions()
    if current == head:
        return None
    if current is None:
        return DatabaseProblem(f"not migrated: {MIGRATE}")
    if current in known:
        return DatabaseProblem(
            f"outdated (revision {current}, this gridcore needs {head}): {MIGRATE}"
        )
    return DatabaseProblem(
        f"newer than this gridcore (revision {current}, it knows up to {head}): "
        "run the gridcore that migrated it; `gridcore migrate` cannot go back"
    )


def _down(exc: BaseException) -> DatabaseProblem:
    return DatabaseProblem(f"unreachable: {_reason(exc)}", unreachable=True)


def unreachable(exc: BaseException) -> DatabaseProblem | None:
    """A failure to reach the database at all (refused, timed out, no such
    database or role: the driver failed before any statement; a connection
    lost; the pool's own timeout, every connection busy), or None."""
    if isinstance(exc, DBAPIError):
        return _down(exc) if exc.statement is None or exc.connection_invalidated else None
    if isinstance(exc, PoolTimeout | DisconnectionError | OSError):
        return _down(exc)
    return None


def failure_cause(exc: BaseException) -> str | None:
    """One line for a failure the database is answerable for (unreachable, or
    a statement it refused: ``relation "vens" does not exist``), or None for
    any other exception, which deserves its traceback."""
    problem = unreachable(exc)
    if problem is not None:
        return problem.detail
    if isinstance(exc, DBAPIError):
        return f"database error: {_reason(exc)}"
    return None


class DatabaseCheck:
    """Reachability and schema version of one engine. Each distinct problem is
    logged once, until the database is found fine again."""

    def __init__(self, engine: AsyncEngine, *, timeout: float = 2.0) -> None:
        self._engine = engine
        self._timeout = timeout
        self.where = describe(str(engine.url))
        self._logged: set[str] = set()

    @classmethod
    def of(cls, uow_factory: object, *, timeout: float = 2.0) -> DatabaseCheck | None:
        """The check for a SQL storage's engine; None for other storage (the
        in-memory one has no schema to check)."""
        if isinstance(uow_factory, SqlUnitOfWorkFactory):
            return cls(uow_factory.engine, timeout=timeout)
        return None

    async def problem(self) -> DatabaseProblem | None:
        """Connect and read the schema version (within the timeout: a probe
        must answer before its caller gives up): the problem, or None."""
        try:
            async with asyncio.timeout(self._timeout):
                async with self._engine.connect() as conn:
                    current = await conn.run_sync(current_revision)
        except TimeoutError:
            return DatabaseProblem(f"unreachable: no answer within {self._timeout:g}s", True)
        except (SQLAlchemyError, OSError) as exc:
            # Reading the version failed (no permission on alembic_version...).
            return unreachable(exc) or DatabaseProblem(f"unusable: {_reason(exc)}")
        return schema_problem(current)

    async def explain(self, exc: BaseException) -> DatabaseProblem | None:
        """Whether the database is why ``exc`` happened: unreachable, or a
        statement failed on a schema that is not this code's (``no such table``)."""
        return unreachable(exc) or await self.problem()

    async def wait_until_ready(self, stop: asyncio.Event, *, first_wait: float = 0.5) -> bool:
        """Wait while the database does not answer (one line per retry, the
        cause and the next retry), then check its schema: True when it is
        this code's, False when ``stop`` was set meanwhile; a schema that is
        not this code's raises :class:`SchemaMismatch` (nothing could be
        written into it)."""
        wait = first_wait
        while not stop.is_set():
            problem = await self.problem()
            if problem is None:
                return True
            if not problem.unreachable:
                raise SchemaMismatch(f"database {self.where} {problem.status}")
            log.warning("database %s %s; retrying in %.1fs", self.where, problem.status, wait)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), wait)
            wait = min(wait * 2, 30.0)
        return False

    def report(self, problem: DatabaseProblem | None, *, then: str = "") -> None:
        """Log ``problem`` the first time it is seen (one line, ending with
        ``then``); None (the database is fine) says so once after problems,
        and re-arms them."""
        if problem is None:
            if self._logged:
                self._logged.clear()
                log.info("database %s answers, schema up to date", self.where)
            return
        if problem.status not in self._logged:
            self._logged.add(problem.status)
            log.warning("database %s %s%s", self.where, problem.status, then)
