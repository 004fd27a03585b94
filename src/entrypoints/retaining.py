"""The retention loop inside `gridcore worker`: at start and then every
``GRIDCORE_RETENTION_INTERVAL_SECONDS``, the coming days are made ready and
what is past retention goes (gridcore.retention, adapters.sql.partitions). Every
worker runs it; storage lets one at a time do the work. A failure is one log
line and the next pass tries again: rows never wait on it (a day not made yet
is caught by the catch-all partition)."""

from __future__ import annotations

import asyncio
import contextlib
import logging

from adapters.sql.schema import failure_cause
from gridcore.ports import Clock, StorageRetention
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
    while not stop.is_set():
        try:
            await retention.enforce(policy, clock.now())
        except Exception as exc:
            cause = failure_cause(exc)
            if cause is None:
                log.exception("retention pass failed; next pass in %.0fs", interval)
            else:
                log.warning("retention pass failed (%s); next pass in %.0fs", cause, interval)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), timeout=interval)
