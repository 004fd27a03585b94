"""The dispatcher's loop inside `gridcore worker`: one pass every quarter
second (so an event that starts now is dispatched well within 1 s), at once
again while there is work, and a slower retry while the store is down, one
line each (the cause and when the next pass is)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time

from adapters.metrics import (
    COMMANDS_PUBLISH_FAILED,
    COMMANDS_REALLOCATED,
    COMMANDS_REASSERTED,
    COMMANDS_RETRIED,
    COMMANDS_SENT,
    COMMANDS_TIMED_OUT,
    DISPATCH_PASS_DURATION,
    DISPATCH_PASS_FAILURES,
)
from adapters.sql.schema import failure_cause
from entrypoints.container import Storage, dispatch_policy
from entrypoints.settings import Settings
from gridcore.dispatch import Dispatcher, DispatchReport
from gridcore.ports import Clock, CommandPublisher, DispatchLease

log = logging.getLogger("gridcore.worker.dispatch")

PASS_INTERVAL = 0.25
ERROR_BACKOFF_MAX = 10.0


async def run_dispatcher(
    dispatcher: Dispatcher,
    stop: asyncio.Event,
    *,
    interval: float = PASS_INTERVAL,
) -> None:
    """Run passes until ``stop`` is set; an error in one pass is logged and the
    loop goes on (with back-off), never ending the worker."""
    backoff = interval
    failures: set[str] = set()  # kinds of failure logged since the last good pass
    log.info("dispatcher started (pass every %.2fs)", interval)
    try:
        while not stop.is_set():
            started = time.perf_counter()
            try:
                report = await dispatcher.run_once()
            except Exception as exc:
                DISPATCH_PASS_FAILURES.inc()
                _log_failure(exc, backoff, failures)
                await _sleep(stop, backoff)
                backoff = min(backoff * 2, ERROR_BACKOFF_MAX)
                continue
            DISPATCH_PASS_DURATION.observe(time.perf_counter() - started)
            _count(report)
            if failures:
                log.info("dispatch pass succeeded again")
                failures.clear()
            backoff = interval
            if report.idle:
                await _sleep(stop, interval)
    finally:
        await dispatcher.release()
        log.info("dispatcher stopped")


def _count(report: DispatchReport) -> None:
    """A pass's commands, into the metrics (once a pass, not once a command)."""
    for counter, n in (
        (COMMANDS_SENT, report.published),
        (COMMANDS_RETRIED, report.retried),
        (COMMANDS_TIMED_OUT, report.timed_out),
        (COMMANDS_REASSERTED, report.reasserted),
        (COMMANDS_REALLOCATED, report.reallocated),
        (COMMANDS_PUBLISH_FAILED, report.failed),
    ):
        if n:
            counter.inc(n)


def _log_failure(exc: Exception, backoff: float, seen: set[str]) -> None:
    """One line per failed pass: the cause and the next retry. The database
    being down or refusing a statement says all in its reason; any other
    failure is a bug, whose traceback is logged the first time it happens."""
    cause = failure_cause(exc)
    if cause is None:
        cause = f"{type(exc).__name__}: {exc}"
        if cause not in seen:
            seen.add(cause)
            log.exception("dispatch pass failed (%s); retrying in %.1fs", cause, backoff)
            return
    seen.add(cause)
    log.warning("dispatch pass failed (%s); retrying in %.1fs", cause, backoff)


async def _sleep(stop: asyncio.Event, seconds: float) -> None:
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(stop.wait(), timeout=seconds)


def build_dispatcher(
    storage: Storage,
    publisher: CommandPublisher,
    settings: Settings,
    clock: Clock,
    lease: DispatchLease | None = None,
) -> Dispatcher:
    """The dispatcher a worker runs, over the container's storage (and its
    lease unless one is given: the worker's, observed for /health/ready)."""
    return Dispatcher(
        storage.uow_factory,
        storage.telemetry_queries,
        publisher,
        clock,
        dispatch_policy(settings),
        lease or storage.new_lease(),
    )
