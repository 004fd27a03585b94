"""``Recent``: the fleet's load aggregates kept for at most ``max_age``."""

from __future__ import annotations

import asyncio

from adapters.sql.recent import Recent


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


async def test_zero_max_age_reads_every_time() -> None:
    reads = 0

    async def read() -> int:
        nonlocal reads
        reads += 1
        return reads

    recent = Recent(read, 0)
    assert [await recent.get() for _ in range(3)] == [1, 2, 3]


async def test_a_value_is_answered_until_max_age_then_read_again() -> None:
    clock, reads = Clock(), 0

    async def read() -> int:
        nonlocal reads
        reads += 1
        return reads

    recent = Recent(read, 5.0, clock=clock)
    assert await recent.get() == 1
    clock.now = 4.9
    assert await recent.get() == 1
    clock.now = 5.0
    assert await recent.get() == 2


async def test_while_one_caller_reads_again_the_others_get_the_held_value() -> None:
    clock, release, reads = Clock(), asyncio.Event(), 0

    async def read() -> int:
        nonlocal reads
        reads += 1
        if reads > 1:
            await release.wait()
        return reads

    recent = Recent(read, 5.0, clock=clock)
    assert await recent.get() == 1
    clock.now = 10.0
    refreshing = asyncio.create_task(recent.get())
    await asyncio.sleep(0)
    assert [await recent.get() for _ in range(3)] == [1, 1, 1]  # no wait, no second read
    release.set()
    assert await refreshing == 2
    assert reads == 2 and await recent.get() == 2


async def test_the_first_value_is_read_once_for_concurrent_callers() -> None:
    reads = 0

    async def read() -> int:
        nonlocal reads
        reads += 1
        await asyncio.sleep(0.01)
        return 42

    recent = Recent(read, 5.0)
    assert await asyncio.gather(*(recent.get() for _ in range(10))) == [42] * 10
    assert reads == 1
