"""``Recent``: a fleet-wide aggregate, kept for a while.

The latest load rows of a fleet are ten per VEN: summing them for 10,000 VENs
reads 100,000 rows of the sample table (0.4-0.6 s on two cores shared with
ingest), and every other figure of ``/api/stats/network`` is a pass over
``ven_latest`` (10,000 small rows) a dashboard's every poll would repeat. A
VEN reports every 5 s, so the figures are already seconds old when read; an
API process keeps them (the whole of ``/api/stats/network``, and
``/api/stats/loads``) up to
``max_age`` seconds (GRIDCORE_API_STATS_MAX_AGE_SECONDS) and then reads it
again in the background while answering with the one it has (``get``), so
that no more than one such read runs per process and no request waits for it
once the first value is in.
``max_age`` 0 (the default outside the API) reads it every time.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Any, Generic, TypeVar

T = TypeVar("T")


def _retrieve(task: asyncio.Task[Any]) -> None:
    # A refresh nobody waited for failed: the next caller past twice the age
    # reads (and sees the error) itself.
    if not task.cancelled():
        task.exception()


class Recent(Generic[T]):
    def __init__(
        self,
        read: Callable[[], Awaitable[T]],
        max_age: float,
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._read = read
        self._max_age = max_age
        self._clock = clock
        self._value: tuple[float, T] | None = None
        self._task: asyncio.Task[T] | None = None

    async def get(self, read: Callable[[], Awaitable[T]] | None = None) -> T:
        """The held value, or a new one; ``read``: how to read it this time,
        if not as given at construction (a read that depends on its caller).

        Younger than ``max_age``: the held value. Up to twice that: the held
        value too, and a read begins in the background (no caller waits for
        it: a refresh of the fleet's figures took seconds on a loaded
        machine, and every caller that waited showed in the p99). Older, or
        nothing held yet: callers wait for one shared read, so that a read
        that keeps failing (the database gone) is seen, not hidden."""
        read = read or self._read
        if self._max_age <= 0:
            return await read()
        held = self._value
        age = self._clock() - held[0] if held is not None else None
        if held is not None and age is not None and age < 2 * self._max_age:
            if age >= self._max_age and self._task is None:
                self._start(read).add_done_callback(_retrieve)
            return held[1]
        task = self._task or self._start(read)
        return await asyncio.shield(task)  # a caller that leaves does not cancel it

    def _start(self, read: Callable[[], Awaitable[T]]) -> asyncio.Task[T]:
        self._task = asyncio.ensure_future(self._refresh(read))
        return self._task

    async def _refresh(self, read: Callable[[], Awaitable[T]]) -> T:
        try:
            started = self._clock()
            value = await read()
            self._value = (started, value)
            return value
        finally:
            self._task = None
