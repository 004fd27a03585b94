"""The maintenance loops inside `gridcore worker`, each at start and then at
its interval:

- retention, every ``GRIDCORE_RETENTION_INTERVAL_SECONDS``: the coming days
  are made ready and what is past retention goes (gridcore.retention,
  adapters.sql.partitions);
- the fleet's history roll-ups, every ``GRIDCORE_ROLLUP_INTERVAL_SECONDS``:
  the closed intervals and days are rolled up (gridcore.history,
  adapters.sql.rollups).

Every worker runs them; storage lets one at a time do the work. A failure is
one log line and the next pass tries again: rows never wait on it (a day not
made yet is caught by the catch-all partition; a bucket not rolled up yet is
read from the VENs' rows)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable

from adapters.sql.schema import failure_cause
from gridcore.ports import Clock, HistoryRollup, StorageRetention
from gridcore.retention import RetentionPolicy

log = logging.getLogger("gridcore.worker.retention")


async def run_retention(
    retention: StorageRetention,
    policy: RetentionPolicy,
    clock: Clock,
    stop: asyncio.Event,
    *,
    interval: float,
) -> None:
    """Apply ``policy`` every ``interval`` seconds until ``stop``; never ends the worker."""
    log.info(
        "retention: raw rows %d days, ACKs %s, a pass every %.0fs",
        policy.raw_days,
        f"{policy.ack_days} days" if policy.ack_days else "kept",
        interval,
    )
    await _every(lambda: retention.enforce(policy, clock.now()), "retention", stop, interval)


async def run_rollup(
    rollup: HistoryRollup, clock: Clock, stop: asyncio.Event, *, interval: float
) -> None:
    """Roll up the fleet's closed history every ``interval`` seconds until ``stop``."""
    log.info("fleet history roll-ups: a pass every %.0fs", interval)
    await _every(lambda: rollup.roll_up(clock.now()), "roll-up", stop, interval)


async def _every(
    step: Callable[[], Awaitable[object]], what: str, stop: asyncio.Event, interval: float
) -> None:
    while not stop.is_set():
        try:
            await step()
        except Exception as exc:
            cause = failure_cause(exc)
            if cause is None:
                log.exception("%s pass failed; next pass in %.0fs", what, interval)
            else:
                log.warning("%s pass failed (%s); next pass in %.0fs", what, cause, interval)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), timeout=interval)
