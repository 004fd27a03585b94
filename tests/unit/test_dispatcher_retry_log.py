"""The dispatcher's loop while a pass keeps failing: one log line per retry,
with the cause and the next retry, never a traceback for the database being
down; a bug's traceback once, then one line per repeat."""

from __future__ import annotations

import asyncio
import logging
from typing import cast

import psycopg
import pytest
from sqlalchemy.exc import OperationalError, ProgrammingError

from entrypoints.dispatching import run_dispatcher
from gridcore.dispatch import Dispatcher, DispatchReport

REFUSED = (
    'connection failed: connection to server at "127.0.0.1", port 1 failed: Connection refused\n'
    "\tIs the server running on that host and accepting TCP/IP connections?"
)


class FailingDispatcher:
    """Fails ``failures`` passes with what ``error`` makes, then stops the loop."""

    def __init__(self, error: type[Exception] | Exception, failures: int, stop: asyncio.Event):
        self.error = error
        self.left = failures
        self.stop = stop
        self.released = False

    async def run_once(self) -> DispatchReport:
        self.left -= 1
        if self.left == 0:
            self.stop.set()
        raise self.error

    async def release(self) -> None:
        self.released = True


async def _run(error: Exception, failures: int) -> FailingDispatcher:
    stop = asyncio.Event()
    dispatcher = FailingDispatcher(error, failures, stop)
    await run_dispatcher(cast(Dispatcher, dispatcher), stop, interval=0.001)
    assert dispatcher.released
    return dispatcher


def _failures(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [r for r in caplog.records if "dispatch pass failed" in r.getMessage()]


@pytest.mark.parametrize(
    ("error", "cause"),
    [
        (
            OperationalError(None, None, psycopg.OperationalError(REFUSED)),
            "database unreachable: Connection refused",
        ),
        (
            OperationalError(None, None, psycopg.OperationalError("connection timeout expired")),
            "database unreachable: connection timeout expired",
        ),
        (
            ProgrammingError(
                "SELECT 1 FROM events",
                {},
                psycopg.OperationalError('relation "events" does not exist'),
            ),
            'database error: relation "events" does not exist',
        ),
    ],
)
async def test_a_database_failure_is_one_line_per_retry(
    error: Exception, cause: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="gridcore.worker.dispatch")
    await _run(error, failures=4)
    records = _failures(caplog)
    assert [r.getMessage() for r in records] == [
        f"dispatch pass failed ({cause}); retrying in {delay:.1f}s"
        for delay in (0.001, 0.002, 0.004, 0.008)
    ]
    assert all(r.exc_info is None and r.levelno == logging.WARNING for r in records)
    assert all("\n" not in r.getMessage() for r in caplog.records)


async def test_a_bug_shows_its_traceback_once(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="gridcore.worker.dispatch")
    await _run(TypeError("boom"), failures=3)
    records = _failures(caplog)
    assert len(records) == 3
    assert all(r.getMessage().startswith("dispatch pass failed (TypeError: boom)") for r in records)
    assert [r.exc_info is not None for r in records] == [True, False, False]
