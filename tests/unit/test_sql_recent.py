"""``Recent``: the fleet's load aggregates kept for at most ``max_age``."""

from __future__ import annotations

import asyncio

import pytest

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


async def test_a_value_is_answered_until_max_age_then_read_again_in_the_background() -> None:
    clock, reads = Clock(), 0

    async def read() -> int:
        nonlocal reads
        reads += 1
        return reads

    recent = Recent(read, 5.0, clock=clock)
    assert await recent.get() == 1
    clock.now = 4.9
    assert await recent.get() == 1 and reads == 1
    clock.now = 5.0
    assert await recent.get() == 1  # answered at once; a read has begun
    await asyncio.sleep(0)
    assert reads == 2 and await recent.get() == 2


async def test_while_a_read_runs_in_the_background_every_caller_gets_the_held_value() -> None:
    clock, release, reads = Clock(), asyncio.Event(), 0

    async def read() -> int:
        nonlocal reads
        reads += 1
        if reads > 1:
            await release.wait()
        return reads

    recent = Recent(read, 5.0, clock=clock)
    assert await recent.get() == 1
    clock.now = 7.0
    assert [await recent.get() for _ in range(3)] == [1, 1, 1]  # no wait, one more read
    await asyncio.sleep(0)
    assert reads == 2
    release.set()
    await asyncio.sleep(0)
    await asyncio.sleep(0)
    assert reads == 2 and await recent.get() == 2


async def test_past_twice_max_age_callers_wait_for_a_read_and_see_it_fail() -> None:
    clock, failing, reads = Clock(), False, 0

    async def read() -> int:
        nonlocal reads
        reads += 1
        if failing:
            raise ConnectionError("the database is gone")
        return reads

    recent = Recent(read, 5.0, clock=clock)
    assert await recent.get() == 1
    failing = True
    clock.now = 6.0
    assert await recent.get() == 1  # the background read fails unseen
    await asyncio.sleep(0)
    clock.now = 10.0  # twice max_age: no more answering from what is held
    with pytest.raises(ConnectionError):
        await recent.get()
    failing = False
    assert await asyncio.gather(*(recent.get() for _ in range(3))) == [4, 4, 4]


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
