"""The dispatcher's loop inside `gridcore worker`: one pass every quarter
second (so an event that starts now is dispatched well within 1 s), at once
again while there is work, and a slower retry while the store is down."""

from __future__ import annotations

import asyncio
import contextlib
import logging

from entrypoints.container import Storage, dispatch_policy
from entrypoints.settings import Settings
from gridcore.dispatch import Dispatcher
from gridcore.ports import Clock, CommandPublisher

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
    log.info("dispatcher started (pass every %.2fs)", interval)
    try:
        while not stop.is_set():
            try:
                report = await dispatcher.run_once()
            except Exception:
                log.exception("dispatch pass failed; retrying in %.1fs", backoff)
                await _sleep(stop, backoff)
                backoff = min(backoff * 2, ERROR_BACKOFF_MAX)
                continue
            backoff = interval
            if report.idle:
                await _sleep(stop, interval)
    finally:
        await dispatcher.release()
        log.info("dispatcher stopped")


async def _sleep(stop: asyncio.Event, seconds: float) -> None:
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(stop.wait(), timeout=seconds)


def build_dispatcher(
    storage: Storage,
    publisher: CommandPublisher,
    settings: Settings,
    clock: Clock,
) -> Dispatcher:
    """The dispatcher a worker runs, over the container's storage."""
    return Dispatcher(
        storage.uow_factory,
        storage.telemetry_queries,
        publisher,
        clock,
        dispatch_policy(settings),
        storage.new_lease(),
    )
