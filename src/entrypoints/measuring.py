"""The measurer's loop inside `gridcore worker`: every minute, each event whose
measured span (the event and the hour after it) is over is measured against
the programme's baseline and the result kept (gridcore.verification), so
settlement reads what the meter showed then. A failure is one log line and
the next pass tries again."""

from __future__ import annotations

import asyncio
import contextlib
import logging

from adapters.sql.schema import failure_cause
from entrypoints.container import Storage
from entrypoints.settings import Settings
from gridcore.bridging import OpenAdrBridge
from gridcore.ports import Clock
from gridcore.verification import measure_finished_events

log = logging.getLogger("gridcore.worker.measure")

PASS_INTERVAL = 60.0


async def run_measurer(
    storage: Storage,
    settings: Settings,
    clock: Clock,
    stop: asyncio.Event,
    *,
    interval: float = PASS_INTERVAL,
) -> None:
    """Measure finished events until ``stop`` is set; never ends the worker."""
    programme = settings.programme
    log.info(
        "measurer started (baseline %s, time zone %s, a pass every %.0fs)",
        programme.method,
        settings.gridcore_timezone,
        interval,
    )
    while not stop.is_set():
        try:
            await measure_finished_events(
                storage.uow_factory,
                storage.telemetry_queries,
                storage.performance,
                programme=programme,
                now=clock.now(),
            )
        except Exception as exc:
            cause = failure_cause(exc)
            if cause is None:
                log.exception("measuring finished events failed; next pass in %.0fs", interval)
            else:
                log.warning(
                    "measuring finished events failed (%s); next pass in %.0fs", cause, interval
                )
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), timeout=interval)
    log.info("measurer stopped")


async def run_bridge_reports(
    storage: Storage, settings: Settings, clock: Clock, stop: asyncio.Event
) -> None:
    """Rewrite the OpenADR bridge's reports (what the VENs acknowledged, what
    the meters verified) until ``stop`` is set; nothing without OpenADR storage."""
    if storage.openadr is None:
        return
    bridge = OpenAdrBridge(
        storage.uow_factory,
        storage.openadr,
        clock,
        performance=storage.performance,
        method=settings.programme.method,
    )
    interval = settings.gridcore_openadr_report_seconds
    while not stop.is_set():
        try:
            await bridge.refresh_reports()
        except Exception as exc:
            cause = failure_cause(exc)
            if cause is None:
                log.exception("OpenADR reports failed; next pass in %.0fs", interval)
            else:
                log.warning("OpenADR reports failed (%s); next pass in %.0fs", cause, interval)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), timeout=interval)
