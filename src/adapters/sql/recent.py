"""``Recent``: a fleet-wide aggregate, kept for a while.

The latest load rows of a fleet are ten per VEN: summing them for 10,000 VENs
reads 100,000 rows of the sample table (0.4-0.6 s on two cores shared with
ingest), and every other figure of ``/api/stats/network`` is a pass over
``ven_latest`` (10,000 small rows) a dashboard's every poll would repeat. A
VEN reports every 5 s, so the figures are already seconds old when read; an
API process keeps them (the whole of ``/api/stats/network``, and
``/api/stats/loads``) up to
``max_age`` seconds (GRIDCORE_API_STATS_MAX_AGE_SECONDS) and then, while one
request reads it again, answers the others with the one it has, so that no
more than one such read runs per process and few requests wait for it.
``max_age`` 0 (the default outside the API) reads it every time.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Generic, TypeVar

T = TypeVar("T")


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
        self._refreshing = False
        self._first = asyncio.Lock()

    async def get(self, read: Callable[[], Awaitable[T]] | None = None) -> T:
        """The held value, or a new one; ``read``: how to read it this time,
        if not as given at construction (a read that depends on its caller)."""
        read = read or self._read
        if self._max_age <= 0:
            return await read()
        held = self._value
        if held is not None and (self._refreshing or self._clock() - held[0] < self._max_age):
            return held[1]
        if held is None:
            async with self._first:  # nothing to answer yet: one read, shared
                if self._value is not None:
                    return self._value[1]
                return await self._refresh(read)
        return await self._refresh(read)

    async def _refresh(self, read: Callable[[], Awaitable[T]]) -> T:
        self._refreshing = True
        try:
            started = self._clock()
            value = await read()
            self._value = (started, value)
            return value
        finally:
            self._refreshing = False
