"""What the consumer holds between receiving a message and storing it: the
telemetry batcher and the queue of other writes (ACKs, shadows, statuses,
dead letters), each retried through a database outage.

Contract, for both:

- Nothing received is dropped because the database is down: writes are held
  in memory and retried with capped exponential backoff, and the log says
  what is held and when it is retried.
- Memory is bounded: when ``max_held`` is reached, ``wait_for_room`` blocks
  the receive loop, which stops reading; further messages then wait in the
  transport and the broker (a persistent QoS 1 session keeps them there).
- A write that keeps failing while the database is demonstrably up (a
  dead-letter write succeeds) is poison, not an outage: it is dead-lettered
  with the error as its reason so that it cannot block everything behind it.
  A failed batch (:class:`HeldBatches`) is bisected at once, without backoff:
  one bad item among n is found in about log2(n) writes, and the rest goes on
  at full batch size (docs/decisions.md, "Poison search").
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import deque
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

from adapters.metrics import INGEST_LAG, WRITE_BATCH_SIZE, WRITE_DURATION, WRITE_FAILURES
from gridcore.ports import Clock, TelemetryStore, UnitOfWorkFactory
from gridcore.services import ingest_telemetry, record_dead_letter
from gridcore.telemetry import DeadLetter, TelemetrySample

log = logging.getLogger("adapters.mqtt.consumer")

T = TypeVar("T")

# After this many consecutive failures of the same single item, probe whether the
# database is up by dead-lettering it.
POISON_AFTER = 3
# A batch item found bad by bisection is written alone this many times before it
# is dead-lettered (the search already saw every batch holding it fail).
CONFIRM_ALONE = 2


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    initial_delay: float = 0.2
    max_delay: float = 10.0

    def delay(self, failures: int) -> float:
        return float(min(self.max_delay, self.initial_delay * 2 ** max(failures - 1, 0)))


@dataclass
class WriteStats:
    stored: int = 0
    duplicates: int = 0
    refused: int = 0
    failures: int = 0
    poisoned: int = 0
    dead_letters_written: int = 0
    counts: dict[str, int] = field(default_factory=dict)  # written, by what
    poisoned_by: dict[str, int] = field(default_factory=dict)  # dead-lettered, by what


def metric_kind(what: str) -> str:
    """A buffer's ``what`` as a metric label (``load snapshot`` -> ``load_snapshot``)."""
    return what.replace(" ", "_")


def count_failure(stats: WriteStats, what: str) -> None:
    """One failed write attempt, in the worker's stats and its metrics."""
    stats.failures += 1
    WRITE_FAILURES.labels(metric_kind(what)).inc()


def count_poisoned(stats: WriteStats, what: str) -> None:
    """One item dead-lettered because it fails alone."""
    stats.poisoned += 1
    stats.poisoned_by[what] = stats.poisoned_by.get(what, 0) + 1


def observe_write(what: str, count: int, seconds: float) -> None:
    """One successful write of ``count`` items: its size and time (per batch, not per item)."""
    kind = metric_kind(what)
    WRITE_BATCH_SIZE.labels(kind).observe(count)
    WRITE_DURATION.labels(kind).observe(seconds)


class HeldBatches(Generic[T]):
    """Holds items and writes them in batches of up to ``batch_size`` (more when
    a backlog built up, up to ``max_batch``), at the latest ``max_delay``
    seconds after the first item of a batch arrived, under the module's
    contract. Subclasses say how a batch is written (``_write``) and what a
    poison item's dead letter holds (``_letter``)."""

    what = "item"

    def __init__(
        self,
        uow_factory: UnitOfWorkFactory,
        clock: Clock,
        *,
        batch_size: int = 500,
        max_delay: float = 0.05,
        max_batch: int | None = None,
        max_held: int = 50_000,
        retry: RetryPolicy | None = None,
        stats: WriteStats | None = None,
    ) -> None:
        self._uow_factory = uow_factory
        self._clock = clock
        self.batch_size = batch_size
        self.max_delay = max_delay
        self.max_batch = max(max_batch or batch_size, batch_size)
        self.max_held = max_held
        self.retry = retry or RetryPolicy()
        self.stats = stats or WriteStats()
        self._held: deque[T] = deque()
        self._first_at = 0.0
        self._wake = asyncio.Event()
        self._room = asyncio.Event()
        self._room.set()
        self._closing = False
        self._idle = asyncio.Event()
        self._idle.set()

    async def _write(self, batch: list[T]) -> None:
        raise NotImplementedError

    def _letter(self, item: T, exc: Exception) -> tuple[str, bytes, str]:
        """(topic, raw bytes, reason) of the dead letter for a poison item."""
        raise NotImplementedError

    @property
    def held(self) -> int:
        return len(self._held)

    def _hold(self, item: T) -> None:
        """Hold an item for the next batch (never blocks; see ``wait_for_room``)."""
        if not self._held:
            self._first_at = asyncio.get_running_loop().time()
        self._held.append(item)
        self._idle.clear()
        if len(self._held) >= self.batch_size or len(self._held) == 1:
            self._wake.set()  # a full batch, or the first item starting the delay clock
        if len(self._held) >= self.max_held and self._room.is_set():
            log.warning("%s buffer full (%d held): pausing receive", self.what, self.held)
            self._room.clear()

    async def wait_for_room(self) -> None:
        if not self._room.is_set():
            await self._room.wait()

    async def flushed(self) -> None:
        """Wait until everything added so far is written (or dead-lettered)."""
        await self._idle.wait()

    def close(self) -> None:
        """Write what is held without waiting for the batch delay, then stop."""
        self._closing = True
        self._wake.set()

    async def run(self) -> None:
        loop = asyncio.get_running_loop()
        failures = 0  # consecutive rounds that failed, dead letter included: an outage
        suspect = 0  # >0: a write of the first `suspect` held items failed; search them
        alone = 0  # consecutive failures of the suspect written alone
        while True:
            if not self._held:
                self._idle.set()
                if self._closing:
                    return
                self._wake.clear()
                await self._wake.wait()
                continue
            if (
                failures == 0
                and suspect == 0
                and not self._closing
                and len(self._held) < self.batch_size
            ):
                remaining = self._first_at + self.max_delay - loop.time()
                if remaining > 0:
                    self._wake.clear()
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(self._wake.wait(), remaining)
                    continue  # full, closing or due: look again
            # A failed write is bisected at once: write the first half of what
            # is suspect; if it succeeds the bad item is in the other half (and
            # the database is up), else in this one. One bad item among n costs
            # about log2(n) writes, with no backoff: a write that fails because
            # of one item is no sign of an outage.
            count = min(self.max_batch, len(self._held)) if suspect == 0 else max(suspect // 2, 1)
            batch = [self._held[i] for i in range(count)]
            started = loop.time()
            try:
                await self._write(batch)
            except Exception as exc:  # the database, whatever its driver raises
                count_failure(self.stats, self.what)
                if count > 1:
                    if suspect == 0:
                        log.warning(
                            "%s write of %d failed (%s: %s); bisecting it for a bad item",
                            self.what, count, type(exc).__name__, exc,
                        )  # fmt: skip
                    suspect = count
                    continue
                suspect, alone = 1, alone + 1
                if alone < CONFIRM_ALONE:
                    continue  # once more: a blip is not a poison item
                if await self._poison(batch[0], exc):
                    self._take(1)
                    suspect = alone = failures = 0  # the rest goes at full batch size
                    continue
                # The dead letter failed too: the database is down. Hold
                # everything and retry the suspect alone until a write succeeds.
                failures += 1
                delay = self.retry.delay(failures)
                log.warning(
                    "%s write failed (%s: %s); holding %d, retry %d in %.1fs",
                    self.what, type(exc).__name__, exc, self.held, failures, delay,
                )  # fmt: skip
                await asyncio.sleep(delay)
                continue
            observe_write(self.what, count, loop.time() - started)
            if failures:
                log.info("%s write recovered after %d failure(s)", self.what, failures)
            failures = alone = 0
            suspect = suspect - count if suspect > count else 0
            self._take(count)

    def _take(self, count: int) -> None:
        for _ in range(count):
            self._held.popleft()
        if self._held:
            self._first_at = asyncio.get_running_loop().time()
        if len(self._held) < self.max_held and not self._room.is_set():
            log.info("%s buffer has room again (%d held): resuming receive", self.what, self.held)
            self._room.set()

    async def _poison(self, item: T, exc: Exception) -> bool:
        topic, payload, reason = self._letter(item, exc)
        try:
            await record_dead_letter(
                self._uow_factory, DeadLetter(topic, payload, reason[:1000], self._clock.now())
            )
        except Exception:
            return False  # the database is down, not the item bad: keep holding it
        count_poisoned(self.stats, self.what)
        self.stats.dead_letters_written += 1
        log.error("%s on %s dead-lettered: it fails alone: %s", self.what, topic, reason)
        return True


class TelemetryBatcher(HeldBatches[tuple[TelemetrySample, str]]):
    """Telemetry samples, each with the topic it came on, stored through the
    batched, idempotent store. A sample the store refuses (an unknown VEN
    under allow-list registration) is dead-lettered with the store's reason."""

    what = "telemetry"

    def __init__(
        self,
        store: TelemetryStore,
        uow_factory: UnitOfWorkFactory,
        clock: Clock,
        *,
        batch_size: int = 500,
        max_delay: float = 0.05,
        max_batch: int = 5000,
        max_held: int = 50_000,
        auto_register: bool = True,
        retry: RetryPolicy | None = None,
        stats: WriteStats | None = None,
    ) -> None:
        super().__init__(
            uow_factory, clock, batch_size=batch_size, max_delay=max_delay,
            max_batch=max_batch, max_held=max_held, retry=retry, stats=stats,
        )  # fmt: skip
        self._store = store
        self.auto_register = auto_register

    def add(self, sample: TelemetrySample, topic: str) -> None:
        self._hold((sample, topic))

    async def _write(self, batch: list[tuple[TelemetrySample, str]]) -> None:
        samples = [sample for sample, _ in batch]
        result = await ingest_telemetry(self._store, samples, auto_register=self.auto_register)
        # Refused samples are dead-lettered before the batch counts as written:
        # if that fails, the batch is retried, and the store skips what it has.
        if result.refused:
            topics = {id(sample): topic for sample, topic in batch}  # the store returns them
            for sample, reason in result.refusals():
                letter = DeadLetter(
                    topics.get(id(sample), self.what),
                    (sample.raw_payload or "").encode(),
                    f"refused: {reason}",
                    self._clock.now(),
                )
                await record_dead_letter(self._uow_factory, letter)
                self.stats.dead_letters_written += 1
        self.stats.stored += result.stored
        self.stats.duplicates += result.duplicates
        self.stats.refused += len(result.refused)
        # Lag to the commit, per sample but in bulk (metrics.BulkHistogram).
        now = self._clock.now().timestamp()
        INGEST_LAG.observe_many("message", [now - s.timestamp.timestamp() for s in samples])
        INGEST_LAG.observe_many(
            "receipt",
            [now - s.received_at.timestamp() for s in samples if s.received_at is not None],
        )

    def _letter(self, item: tuple[TelemetrySample, str], exc: Exception) -> tuple[str, bytes, str]:
        sample, topic = item
        reason = f"store refused the sample: {type(exc).__name__}: {exc}"
        return topic, (sample.raw_payload or "").encode(), reason


Job = Callable[[], Awaitable[None]]


@dataclass(frozen=True, slots=True)
class HeldWrite:
    """One write other than telemetry: what to run, and what to dead-letter
    if it turns out to be poison.

    A write with a ``batch`` job (ACKs) may be stored together with the
    writes of the same job queued right behind it, in one call (one
    transaction): ``batch`` gets their ``item``s in arrival order. ``run``
    stores the write alone; it is what a failing batch falls back to.
    ``settle`` (the message's, see ``BrokerMessage``) is called once the
    write is committed or the write dead-lettered."""

    what: str
    run: Job
    topic: str
    payload: bytes
    batch: BatchJob | None = None
    item: Any = None
    settle: Callable[[], None] | None = None

    def done(self) -> None:
        if self.settle is not None:
            self.settle()


BatchJob = Callable[[Sequence[Any]], Awaitable[None]]


class WriteQueue:
    """ACK, shadow, status and dead-letter writes, in arrival order, each
    retried until it succeeds (or is shown to be poison)."""

    def __init__(
        self,
        uow_factory: UnitOfWorkFactory,
        clock: Clock,
        *,
        max_held: int = 10_000,
        max_batch: int = 2_000,
        batch_delay: float = 0.02,
        retry: RetryPolicy | None = None,
        stats: WriteStats | None = None,
    ) -> None:
        self._uow_factory = uow_factory
        self._clock = clock
        self.retry = retry or RetryPolicy()
        self.stats = stats or WriteStats()
        self._queue: asyncio.Queue[HeldWrite | None] = asyncio.Queue(max_held)
        self.max_batch = max_batch
        self.batch_delay = batch_delay
        self._pending = 0
        self._idle = asyncio.Event()
        self._idle.set()

    @property
    def pending(self) -> int:
        """Writes held: queued, or being written."""
        return self._pending

    async def put(self, write: HeldWrite) -> None:
        """Hold a write; blocks while ``max_held`` writes are waiting."""
        self._pending += 1
        self._idle.clear()
        if self._queue.full():
            log.warning("write queue full (%d held): pausing receive", self._queue.qsize())
        await self._queue.put(write)

    async def flushed(self) -> None:
        await self._idle.wait()

    async def close(self) -> None:
        await self._queue.put(None)

    async def run(self) -> None:
        queue = self._queue
        after: list[HeldWrite | None] = []  # taken from the queue, not of the batch
        while (write := after.pop() if after else await queue.get()) is not None:
            group = [write]
            if write.batch is not None:
                # Batchable writes queued behind this one go with it, and those
                # arriving within ``batch_delay``: when a fleet ACKs an event at
                # once, one transaction stores hundreds (an ACK waits 20 ms at most).
                # Not when they await settling: the broker sends no more than its
                # in-flight window (20 on a stock Mosquitto) until this commits, so
                # waiting would gather nothing and only slow the fleet's ACKs down.
                self._gather(group, after)
                if (
                    len(group) < self.max_batch
                    and not after
                    and self.batch_delay > 0
                    and write.settle is None
                ):
                    await asyncio.sleep(self.batch_delay)
                    self._gather(group, after)
            if len(group) == 1:
                await self._write(write)
            else:
                await self._write_batch(group)
            self._pending -= len(group)
            if self._pending == 0:
                self._idle.set()

    def _gather(self, group: list[HeldWrite], after: list[HeldWrite | None]) -> None:
        """Move the queued writes of ``group``'s batch job into it, up to
        ``max_batch``; the first write of another kind goes to ``after``."""
        queue = self._queue
        while len(group) < self.max_batch and not queue.empty():
            following = queue.get_nowait()
            if following is None or following.batch != group[0].batch:
                after.append(following)
                return
            group.append(following)

    async def _write_batch(self, group: list[HeldWrite]) -> None:
        batch = group[0].batch
        assert batch is not None
        what = group[0].what
        loop = asyncio.get_running_loop()
        for failures in range(1, POISON_AFTER + 1):
            started = loop.time()
            try:
                await batch([w.item for w in group])
            except Exception as exc:
                count_failure(self.stats, what)
                delay = self.retry.delay(failures)
                log.warning(
                    "%s write of %d failed (%s: %s); holding %d writes, retry %d in %.1fs",
                    what, len(group), type(exc).__name__, exc,
                    self._queue.qsize() + len(group), failures, delay,
                )  # fmt: skip
                await asyncio.sleep(delay)
                continue
            observe_write(what, len(group), loop.time() - started)
            if failures > 1:
                log.info("%s write recovered after %d failure(s)", what, failures - 1)
            self.stats.counts[what] = self.stats.counts.get(what, 0) + len(group)
            for write in group:
                write.done()
            return
        # Still failing: one at a time, so that one poison write cannot hold the rest.
        for write in group:
            await self._write(write)

    async def _write(self, write: HeldWrite) -> None:
        failures = 0
        loop = asyncio.get_running_loop()
        while True:
            started = loop.time()
            try:
                await write.run()
            except Exception as exc:
                failures += 1
                count_failure(self.stats, write.what)
                if failures >= POISON_AFTER and await self._poison(write, exc):
                    write.done()
                    return
                delay = self.retry.delay(failures)
                log.warning(
                    "%s write failed (%s: %s); holding %d writes, retry %d in %.1fs",
                    write.what,
                    type(exc).__name__,
                    exc,
                    self._queue.qsize() + 1,
                    failures,
                    delay,
                )
                await asyncio.sleep(delay)
                continue
            observe_write(write.what, 1, loop.time() - started)
            if failures:
                log.info("%s write recovered after %d failure(s)", write.what, failures)
            self.stats.counts[write.what] = self.stats.counts.get(write.what, 0) + 1
            write.done()
            return

    async def _poison(self, write: HeldWrite, exc: Exception) -> bool:
        if write.what == "dead letter":
            return False  # nothing further to fall back to: keep retrying
        reason = f"{write.what} write failed: {type(exc).__name__}: {exc}"[:1000]
        letter = DeadLetter(write.topic, write.payload, reason, self._clock.now())
        try:
            await record_dead_letter(self._uow_factory, letter)
        except Exception:
            return False
        count_poisoned(self.stats, write.what)
        log.error(
            "%s on %s dead-lettered after repeated failures: %s", write.what, write.topic, reason
        )
        return True
