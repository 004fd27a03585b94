"""Creating the async engine for PostgreSQL (psycopg 3) or SQLite (aiosqlite)."""

from __future__ import annotations

import json
import math
import re
from typing import Any

from sqlalchemy import event
from sqlalchemy.engine import Connection, make_url
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine
from sqlalchemy.pool import StaticPool

DEFAULT_TIMEOUT = 30.0  # seconds, the documents' DB_TIMEOUT default
# Execution option read by the SQLite "begin" hook: writers take the write lock
# up front (BEGIN IMMEDIATE), so two writers queue on busy_timeout instead of
# failing with "database is locked" when both try to upgrade a read lock.
SQLITE_BEGIN = "gridcore_sqlite_begin"


def _finite(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_finite(v) for v in value]
    return value


# A NUL as json.dumps writes it: "\u0000" after an even run of backslashes (an
# odd run is escaped backslashes followed by the text "u0000", which stays).
_NUL_ESCAPE = re.compile(r"(?<!\\)((?:\\\\)*)\\u0000")


def json_dumps(value: Any) -> str:
    """JSON for document columns. NaN and infinities (which Python's json reads
    but JSON does not have) become null, and NUL characters (which jsonb
    cannot hold) are dropped, rather than failing the write."""
    try:
        text = json.dumps(value, allow_nan=False, separators=(",", ":"), default=str)
    except ValueError:
        text = json.dumps(_finite(value), allow_nan=False, separators=(",", ":"), default=str)
    return _NUL_ESCAPE.sub(r"\1", text) if "\\u0000" in text else text


def create_engine(
    url: str,
    *,
    timeout: float = DEFAULT_TIMEOUT,
    echo: bool = False,
    pool_size: int = 10,
    max_overflow: int = 10,
    statement_timeout: float | None = None,
    application_name: str | None = None,
) -> AsyncEngine:
    """An engine for ``postgresql+psycopg://...`` or ``sqlite+aiosqlite:///...``.

    ``timeout`` (``DB_TIMEOUT``) bounds connecting on PostgreSQL and waiting for
    the write lock on SQLite, and waiting for a free connection of the pool.
    SQLite connections enforce foreign keys and use WAL, so readers never block
    the writer.

    On PostgreSQL, ``pool_size`` + ``max_overflow`` bound the connections (and
    so the server's backends) this process may hold, and ``statement_timeout``
    (seconds) makes the server cancel any statement running longer: the API
    sets both so that readers cannot take the CPU or the connections ingest
    needs (a cancelled statement raises ``QueryCanceled``). ``application_name``
    names its backends in ``pg_stat_activity`` (whose CPU is whose).
    """
    parsed = make_url(url)
    backend = parsed.get_backend_name()
    if backend == "postgresql":
        if parsed.get_driver_name() != "psycopg":
            parsed = parsed.set(drivername="postgresql+psycopg")
        return create_async_engine(
            parsed,
            echo=echo,
            json_serializer=json_dumps,
            pool_size=pool_size,
            max_overflow=max_overflow,
            pool_timeout=timeout,
            pool_pre_ping=True,
            pool_recycle=1800,
            connect_args={
                "connect_timeout": max(1, math.ceil(timeout)),
                **_server_options(statement_timeout),
                **({"application_name": application_name} if application_name else {}),
            },
        )
    if backend == "sqlite":
        if parsed.get_driver_name() != "aiosqlite":
            parsed = parsed.set(drivername="sqlite+aiosqlite")
        in_memory = parsed.database in (None, "", ":memory:")
        engine = create_async_engine(
            parsed,
            echo=echo,
            json_serializer=json_dumps,
            connect_args={"timeout": timeout, "check_same_thread": False},
            # One shared connection, or every connection would see its own empty database.
            **({"poolclass": StaticPool} if in_memory else {}),
        )
        _configure_sqlite(engine, timeout, wal=not in_memory)
        return engine
    raise ValueError(f"unsupported database URL {parsed.render_as_string(hide_password=True)!r}")


def _server_options(statement_timeout: float | None) -> dict[str, str]:
    """libpq ``options`` setting the session's statement_timeout (milliseconds)."""
    if statement_timeout is None or statement_timeout <= 0:
        return {}
    return {"options": f"-c statement_timeout={max(1, round(statement_timeout * 1000))}"}


def _configure_sqlite(engine: AsyncEngine, timeout: float, *, wal: bool) -> None:
    @event.listens_for(engine.sync_engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # Take transaction control from the driver so that BEGIN is ours (below).
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute(f"PRAGMA busy_timeout={int(timeout * 1000)}")
        if wal:
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.close()

    @event.listens_for(engine.sync_engine, "begin")
    def _on_begin(conn: Connection) -> None:
        mode = conn.get_execution_options().get(SQLITE_BEGIN, "DEFERRED")
        conn.exec_driver_sql(f"BEGIN {mode}")
