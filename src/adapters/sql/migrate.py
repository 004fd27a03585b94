"""Applying the Alembic migrations, waiting for the database to come up.

The migrations ship inside this package and the Alembic configuration is built
here, so ``gridcore migrate`` needs no alembic.ini. Like the documents' Docker
entrypoint, it retries while the database is still starting and says what it
is waiting for; what waiting will not fix (an unknown role or database, a host
that does not resolve) fails at once, saying what to check.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import text
from sqlalchemy.engine import Connection, make_url
from sqlalchemy.exc import DBAPIError, OperationalError

from adapters.sql.engine import DEFAULT_TIMEOUT, create_engine

MIGRATIONS = Path(__file__).with_name("migrations")
# The key of the PostgreSQL advisory lock that migrating holds: containers that
# all migrate at start (serve and worker in one compose file) take turns, and
# each after the first finds the database up to date instead of failing on a
# table the other just made. Any fixed 64-bit number that nothing else uses.
MIGRATION_LOCK = 0x67726964636F7265  # "gridcore"
log = logging.getLogger("adapters.sql.migrate")


class DatabaseUnavailable(RuntimeError):
    """The database did not accept connections within the retries."""


class DatabaseMisconfigured(DatabaseUnavailable):
    """The database refused in a way that waiting will not change."""


# What a database that is still starting (or a network still coming up)
# answers: worth waiting for. Anything else is the configuration's doing.
_PASSING = (
    "connection refused",
    "timeout",
    "timed out",
    "the database system is starting up",
    "the database system is shutting down",
    "the database system is in recovery mode",
)
# What to check, by what the driver said.
_ADVICE = (
    ("unable to open database file", "check that the SQLite file's directory exists"),
    ("role ", "check DB_USER (or the user in DATABASE_URL), or create that role"),
    ("database ", "check DB_NAME (or DATABASE_URL), or create it: {createdb}"),
    ("resolve", "check DB_HOST (or the host in DATABASE_URL)"),
    ("name or service not known", "check DB_HOST (or the host in DATABASE_URL)"),
    ("name resolution", "check DB_HOST (or the host in DATABASE_URL)"),
    ("password", "check DB_PASSWORD (or the password in DATABASE_URL)"),
    ("pg_hba.conf", "the server's pg_hba.conf does not let this user in from here"),
)


def lasting(reason: str, url: str | None = None) -> str | None:
    """What to do about a connection failure that waiting will not clear, or
    None when it may pass (refused, timed out: a server still starting)."""
    lowered = reason.lower()
    if any(passing in lowered for passing in _PASSING):
        return None
    advice = next(
        (advice for key, advice in _ADVICE if key in lowered),
        "check the database settings (DATABASE_URL or DB_*)",
    )
    createdb = "createdb -h HOST -p PORT -U USER NAME"
    if url is not None:
        parsed = make_url(url)
        createdb = (
            f"createdb -h {parsed.host or 'localhost'} -p {parsed.port or 5432} "
            f"-U {parsed.username or 'postgres'} {parsed.database}"
        )
    return advice.format(createdb=createdb)


def alembic_config(url: str | None = None) -> Config:
    """Alembic configuration in code (for ``command.*`` and for tests)."""
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    if url is not None:
        # ConfigParser interpolation: a literal % in a password must be doubled.
        config.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return config


def describe(url: str) -> str:
    """'PostgreSQL at host:port/db' or 'SQLite at path', without the password."""
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        return f"SQLite at {parsed.database or ':memory:'}"
    return f"PostgreSQL at {parsed.host or 'localhost'}:{parsed.port or 5432}/{parsed.database}"


def _reason(exc: BaseException) -> str:
    """The gist of the driver's message: 'Connection refused', 'database "x"
    does not exist', 'password authentication failed for user "y"'..."""
    cause = exc.orig if isinstance(exc, DBAPIError) and exc.orig is not None else exc
    lines = [line.strip() for line in str(cause).splitlines() if line.strip()]
    if not lines:
        return type(cause).__name__
    return lines[0].rsplit("failed: ", 1)[-1]


def _upgrade(connection: Connection, revision: str) -> None:
    config = alembic_config()
    config.attributes["connection"] = connection
    command.upgrade(config, revision)


def _downgrade(connection: Connection, revision: str) -> None:
    config = alembic_config()
    config.attributes["connection"] = connection
    command.downgrade(config, revision)


def head_revision() -> str | None:
    return ScriptDirectory.from_config(alembic_config()).get_current_head()


def current_revision(connection: Connection) -> str | None:
    return MigrationContext.configure(connection).get_current_revision()


async def migrate(
    url: str,
    *,
    revision: str = "head",
    retries: int = 30,
    wait_seconds: float = 2.0,
    connect_timeout: float = DEFAULT_TIMEOUT,
    log: Callable[[str], None] = log.info,
) -> None:
    """Bring the database at ``url`` to ``revision`` (default: the newest).

    Connects up to ``retries`` times, ``wait_seconds`` apart, logging each wait
    ("waiting for PostgreSQL at db:5432/gridcore (attempt 3/30): Connection
    refused"); raises :class:`DatabaseUnavailable` after the last, and
    :class:`DatabaseMisconfigured` at once for a failure that waiting will not
    clear (see :func:`lasting`). Migrating runs in one transaction: it applies
    completely or not at all.
    """
    engine = create_engine(url, timeout=connect_timeout)
    where = describe(url)
    retries = max(retries, 1)
    try:
        for attempt in range(1, retries + 1):
            try:
                async with engine.connect() as conn:
                    await conn.execute(text("SELECT 1"))
                break
            except (OperationalError, OSError) as exc:
                reason = _reason(exc).removeprefix("FATAL:").strip()
                advice = lasting(reason, url)
                if advice is not None:
                    raise DatabaseMisconfigured(
                        f"cannot use {where}: {reason}; {advice} (not retried: "
                        "waiting will not change this)"
                    ) from exc
                if attempt == retries:
                    raise DatabaseUnavailable(
                        f"gave up on {where} after {retries} attempts: {reason}"
                    ) from exc
                log(f"waiting for {where} (attempt {attempt}/{retries}): {reason}")
                await asyncio.sleep(wait_seconds)
        async with engine.connect() as conn:
            if conn.dialect.name == "postgresql":
                # Held to the end of the migration's transaction; the revision
                # below is read after it, so a second migrator sees the first's.
                await conn.execute(
                    text("SELECT pg_advisory_xact_lock(:key)"), {"key": MIGRATION_LOCK}
                )
            before = await conn.run_sync(current_revision)
            await conn.run_sync(_upgrade, revision)
            await conn.commit()
            after = await conn.run_sync(current_revision)
        if before == after:
            log(f"{where} is up to date (revision {after})")
        else:
            log(f"migrated {where} from {before or 'an empty database'} to {after}")
    finally:
        await engine.dispose()


async def downgrade(url: str, revision: str = "base") -> None:
    """Undo migrations down to ``revision`` (``base``: an empty schema)."""
    engine = create_engine(url)
    try:
        async with engine.connect() as conn:
            await conn.run_sync(_downgrade, revision)
            await conn.commit()
    finally:
        await engine.dispose()
