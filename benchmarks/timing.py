"""Timing shared by the benchmarks: median and p95 of repeated runs."""

from __future__ import annotations

import statistics
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import Any


def median_p95(times_ms: Sequence[float]) -> tuple[float, float]:
    """Median and p95 (the value 95 % of runs stay at or under) of ``times_ms``."""
    ordered = sorted(times_ms)
    return statistics.median(ordered), ordered[max(0, int(len(ordered) * 0.95) - 1)]


async def timed(run: Callable[[], Awaitable[Any]], repeat: int) -> tuple[float, float]:
    """Median and p95 in ms of ``repeat`` awaits of ``run()``, after one warm-up."""
    await run()  # warm-up: connections, plans, caches
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        await run()
        times.append((time.perf_counter() - started) * 1000)
    return median_p95(times)
