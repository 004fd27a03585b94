"""Status reports and load snapshots between receipt and storage: held, written
in batches, retried through a database outage, under the contract of
:mod:`adapters.mqtt.buffering` (whose :class:`HeldBatches` does the work): an
item the store keeps refusing while the database is up is dead-lettered with
the topic and raw bytes it came in."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from typing import TypeVar

from adapters.mqtt.buffering import HeldBatches, RetryPolicy, WriteStats
from gridcore.ports import Clock, UnitOfWorkFactory

T = TypeVar("T")


class ReportBatcher(HeldBatches[tuple[T, str, bytes]]):
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
        super().__init__(
            uow_factory, clock, batch_size=batch_size, max_delay=max_delay,
            max_held=max_held, retry=retry, stats=stats,
        )  # fmt: skip
        self.what = what
        self._write_items = write

    def add(self, item: T, topic: str, payload: bytes) -> None:
        self._hold((item, topic, payload))

    async def _write(self, batch: list[tuple[T, str, bytes]]) -> None:
        await self._write_items([item for item, _, _ in batch])
        self.stats.counts[self.what] = self.stats.counts.get(self.what, 0) + len(batch)

    def _letter(self, held: tuple[T, str, bytes], exc: Exception) -> tuple[str, bytes, str]:
        _, topic, payload = held
        return topic, payload, f"{self.what} write failed: {type(exc).__name__}: {exc}"
