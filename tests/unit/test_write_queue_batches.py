"""The consumer's write queue stores ACKs that arrive together in one batch
(one ``record_acks`` transaction), keeps arrival order with the other writes,
and falls back to one write at a time when a batch keeps failing."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from adapters.memory.repositories import InMemoryUnitOfWorkFactory
from adapters.mqtt.buffering import POISON_AFTER, HeldWrite, RetryPolicy, WriteQueue
from adapters.system import ManualClock

TIMEOUT = 5.0
T0 = datetime(2025, 10, 20, 15, 0, tzinfo=UTC)


class Journal:
    def __init__(self) -> None:
        self.calls: list[tuple[str, list[Any]]] = []
        self.poison: set[Any] = set()

    async def batch(self, items: Sequence[Any]) -> None:
        if self.poison & set(items):
            raise ValueError("poison in the batch")
        self.calls.append(("batch", list(items)))

    def write(self, kind: str, item: Any, batchable: bool = True) -> HeldWrite:
        async def run() -> None:
            if item in self.poison:
                raise ValueError("poison")
            self.calls.append((kind, [item]))

        return HeldWrite(kind, run, f"t/{item}", b"{}", self.batch if batchable else None, item)


async def drain(queue: WriteQueue, writes: list[HeldWrite]) -> None:
    for write in writes:
        await queue.put(write)  # queued before the writer runs: they arrive together
    runner = asyncio.create_task(queue.run())
    await asyncio.wait_for(queue.flushed(), TIMEOUT)
    await queue.close()
    await asyncio.wait_for(runner, TIMEOUT)


def queue(uow: InMemoryUnitOfWorkFactory | None = None) -> WriteQueue:
    return WriteQueue(
        uow or InMemoryUnitOfWorkFactory(), ManualClock(T0), max_batch=3,
        retry=RetryPolicy(initial_delay=0.001, max_delay=0.001),
    )  # fmt: skip


async def test_acks_arriving_together_are_one_batch_in_order() -> None:
    journal = Journal()
    q = queue()
    writes = [journal.write("ack", n) for n in range(5)]
    await drain(q, writes)
    assert journal.calls == [("batch", [0, 1, 2]), ("batch", [3, 4])]  # at most max_batch
    assert q.stats.counts == {"ack": 5}


async def test_other_writes_keep_their_place() -> None:
    journal = Journal()
    writes = [
        journal.write("ack", 1),
        journal.write("ack", 2),
        journal.write("shadow", "s", batchable=False),
        journal.write("ack", 3),
    ]
    await drain(queue(), writes)
    assert journal.calls == [("batch", [1, 2]), ("shadow", ["s"]), ("ack", [3])]


async def test_a_failing_batch_is_retried_then_written_one_by_one() -> None:
    journal = Journal()
    journal.poison = {2}
    uow = InMemoryUnitOfWorkFactory()
    q = queue(uow)
    await drain(q, [journal.write("ack", n) for n in range(3)])
    assert journal.calls == [("ack", [0]), ("ack", [1])]
    assert q.stats.failures == POISON_AFTER + POISON_AFTER  # the batch's, then the single's
    assert q.stats.poisoned == 1
    (letter,) = uow.state.dead_letters
    assert letter.topic == "t/2"
