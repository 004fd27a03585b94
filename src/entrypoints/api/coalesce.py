"""``Coalescer``: concurrent requests for the same fleet-wide read share one query.

Twenty dashboards polling ``/api/stats/network`` used to run twenty copies of
the same aggregate over the fleet at once; on a machine where the API, the
worker and PostgreSQL share the cores, that queued every one of them behind
the others and took the CPU ingest needed (p99 4.7 s at 2,000 VENs).

A request never gets an answer older than itself: it joins a read that has
not started yet, or, when one is running (it began before the request came),
waits for it to end and shares the next one. So at most one read per key runs
at a time in a process, at most one more waits, and whoever waits gets what a
query started after they asked would have answered: read-your-writes holds
(no time-to-live cache, nothing to invalidate). Each API process has its own
(``serve --workers``): they share nothing and need not.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Hashable
from typing import Any, TypeVar

T = TypeVar("T")


def _retrieve(task: asyncio.Task[Any]) -> None:
    # Every waiter may have left (client gone): the failure is theirs, not a log line.
    if not task.cancelled():
        task.exception()


class Coalescer:
    def __init__(self) -> None:
        self._running: dict[Hashable, asyncio.Task[Any]] = {}
        self._next: dict[Hashable, asyncio.Task[Any]] = {}

    async def read(self, key: Hashable, read: Callable[[], Awaitable[T]]) -> T:
        """``read()``'s answer, started after this call, shared with the calls
        of the same ``key`` that wait for the same start."""
        task = self._next.get(key)
        if task is None:
            task = asyncio.ensure_future(self._after(key, self._running.get(key), read))
            task.add_done_callback(_retrieve)
            self._next[key] = task
        # A client that goes away does not cancel the others' read.
        result: T = await asyncio.shield(task)
        return result

    async def _after(
        self, key: Hashable, previous: asyncio.Task[Any] | None, read: Callable[[], Awaitable[T]]
    ) -> T:
        if previous is not None:
            await asyncio.wait([previous])  # its outcome is its own waiters'
        me = self._next.pop(key)  # from now on newcomers wait for the next read
        self._running[key] = me
        try:
            return await read()
        finally:
            if self._running.get(key) is me:
                del self._running[key]
