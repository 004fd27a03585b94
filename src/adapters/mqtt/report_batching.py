"""Status reports and load snapshots between receipt and storage: held, written
in batches, retried through a database outage.

The contract of :mod:`adapters.mqtt.buffering` holds here too: nothing is
dropped while the database is down (writes are retried with capped backoff),
memory is bounded (``wait_for_room`` pauses the receive loop), and an item the
store keeps refusing while the database is up is dead-lettered with its topic,
raw bytes and the error, so it cannot block what comes after it. Batches are
halved after repeated failures to isolate such an item.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import deque
from collections.abc import Awaitable, Callable, Sequence
from typing import Generic, TypeVar

from adapters.mqtt.buffering import POISON_AFTER, RetryPolicy, WriteStats, write_dead_letter
from gridcore.ports import Clock, UnitOfWorkFactory
from gridcore.telemetry import DeadLetter

log = logging.getLogger("adapters.mqtt.consumer")

T = TypeVar("T")


class ReportBatcher(Generic[T]):
    """Holds items with the message each came in; ``write`` stores a batch in
    one transaction (what it returns is not used)."""

    def __init__(
        self,
        what: str,
        write: Callable[[Sequence[T]], Awaitable[object]],
        uow_factory: UnitOfWorkFactory,
        clock: Clock,
        *,
        batch_size: int = 500,
        max_delay: float = 0.05,
        max_held: int = 10_000,
        retry: RetryPolicy | None = None,
        stats: WriteStats | None = None,
    ) -> None:
        self.what = what
        self._write = write
        self._uow_factory = uow_factory
        self._clock = clock
        self.batch_size = batch_size
        self.max_delay = max_delay
        self.max_held = max_held
        self.retry = retry or RetryPolicy()
        self.stats = stats or WriteStats()
        self._held: deque[tuple[T, str, bytes]] = deque()
        self._first_at = 0.0
        self._wake = asyncio.Event()
        self._room = asyncio.Event()
        self._room.set()
        self._idle = asyncio.Event()
        self._idle.set()
        self._closing = False

    @property
    def held(self) -> int:
        return len(self._held)

    def add(self, item: T, topic: str, payload: bytes) -> None:
        if not self._held:
            self._first_at = asyncio.get_running_loop().time()
        self._held.append((item, topic, payload))
        self._idle.clear()
        if len(self._held) >= self.batch_size or len(self._held) == 1:
            self._wake.set()
        if len(self._held) >= self.max_held and self._room.is_set():
            log.warning("%s buffer full (%d held): pausing receive", self.what, self.held)
            self._room.clear()

    async def wait_for_room(self) -> None:
        if not self._room.is_set():
            await self._room.wait()

    async def flushed(self) -> None:
        await self._idle.wait()

    def close(self) -> None:
        self._closing = True
        self._wake.set()

    async def run(self) -> None:
        loop = asyncio.get_running_loop()
        limit = self.batch_size
        failures = 0
        while True:
            if not self._held:
                self._idle.set()
                if self._closing:
                    return
                self._wake.clear()
                await self._wake.wait()
                continue
            if failures == 0 and not self._closing and len(self._held) < self.batch_size:
                remaining = self._first_at + self.max_delay - loop.time()
                if remaining > 0:
                    self._wake.clear()
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(self._wake.wait(), remaining)
                    continue
            count = min(limit, len(self._held))
            batch = [self._held[i] for i in range(count)]
            try:
                await self._write([item for item, _, _ in batch])
            except Exception as exc:  # the database, whatever its driver raises
                failures += 1
                self.stats.failures += 1
                if count == 1 and failures >= POISON_AFTER and await self._poison(batch[0], exc):
                    self._take(1)
                    failures = 0
                    continue
                if failures >= 2:
                    limit = max(1, count // 2)
                delay = self.retry.delay(failures)
                log.warning(
                    "%s write failed (%s: %s); holding %d, retry %d in %.1fs",
                    self.what, type(exc).__name__, exc, self.held, failures, delay,
                )  # fmt: skip
                await asyncio.sleep(delay)
                continue
            if failures:
                log.info("%s write recovered after %d failure(s)", self.what, failures)
            failures = 0
            limit = self.batch_size
            self._take(count)
            self.stats.counts[self.what] = self.stats.counts.get(self.what, 0) + count

    def _take(self, count: int) -> None:
        for _ in range(count):
            self._held.popleft()
        if self._held:
            self._first_at = asyncio.get_running_loop().time()
        if len(self._held) < self.max_held and not self._room.is_set():
            log.info("%s buffer has room again (%d held): resuming receive", self.what, self.held)
            self._room.set()

    async def _poison(self, held: tuple[T, str, bytes], exc: Exception) -> bool:
        _, topic, payload = held
        reason = f"{self.what} write failed: {type(exc).__name__}: {exc}"[:1000]
        try:
            await write_dead_letter(self._uow_factory, DeadLetter(topic, payload, reason,
                                                                  self._clock.now()))  # fmt: skip
        except Exception:
            return False  # the database is down, not the item bad: keep holding it
        self.stats.poisoned += 1
        self.stats.dead_letters_written += 1
        log.error("%s on %s dead-lettered after repeated failures: %s", self.what, topic, reason)
        return True
