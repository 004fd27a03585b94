"""``Coalescer``: concurrent identical reads share one query, and no caller
gets an answer from a read that began before it asked."""

from __future__ import annotations

import asyncio

import pytest

from entrypoints.api.coalesce import Coalescer


class Store:
    """A value that changes, and a read of it that takes until released."""

    def __init__(self) -> None:
        self.value = 0
        self.reads = 0
        self.release = asyncio.Event()

    async def read(self) -> int:
        self.reads += 1
        seen = self.value  # what the read sees when it begins
        await self.release.wait()
        return seen


async def test_callers_waiting_together_share_one_read() -> None:
    store, shared = Store(), Coalescer()
    calls = [asyncio.create_task(shared.read("k", store.read)) for _ in range(20)]
    await asyncio.sleep(0)
    store.release.set()
    assert await asyncio.gather(*calls) == [0] * 20
    assert store.reads == 1


async def test_a_caller_arriving_during_a_read_gets_the_next_one() -> None:
    store, shared = Store(), Coalescer()
    first = asyncio.create_task(shared.read("k", store.read))
    await asyncio.sleep(0.01)  # the first read has begun, with value 0
    store.value = 1  # a write the later callers must see
    later = [asyncio.create_task(shared.read("k", store.read)) for _ in range(5)]
    await asyncio.sleep(0.01)
    assert store.reads == 1  # they wait for it to end rather than start another
    store.release.set()
    assert await first == 0
    assert await asyncio.gather(*later) == [1] * 5  # one more read, begun after they asked
    assert store.reads == 2


async def test_different_keys_do_not_wait_for_each_other() -> None:
    store, shared = Store(), Coalescer()
    a = asyncio.create_task(shared.read("a", store.read))
    b = asyncio.create_task(shared.read("b", store.read))
    await asyncio.sleep(0.01)
    assert store.reads == 2
    store.release.set()
    assert await asyncio.gather(a, b) == [0, 0]


async def test_a_failed_read_fails_its_callers_and_the_next_read_runs() -> None:
    shared = Coalescer()

    async def broken() -> int:
        raise RuntimeError("database gone")

    async def fine() -> int:
        return 7

    with pytest.raises(RuntimeError, match="database gone"):
        await shared.read("k", broken)
    assert await shared.read("k", fine) == 7


async def test_a_caller_that_leaves_does_not_cancel_the_others_read() -> None:
    store, shared = Store(), Coalescer()
    leaving = asyncio.create_task(shared.read("k", store.read))
    staying = asyncio.create_task(shared.read("k", store.read))
    await asyncio.sleep(0)
    leaving.cancel()
    store.release.set()
    assert await staying == 0
