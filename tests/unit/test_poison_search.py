"""One sample the store refuses is bisected out of its batch in O(log n) writes,
dead-lettered on its topic, and the rest written at full batch size at once
(issue 11, item 2: it used to stall ingestion ~200 s with backoff); a real
outage still holds everything and loses nothing."""

from __future__ import annotations

import asyncio
import math
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta

from adapters.memory.repositories import InMemoryUnitOfWork, InMemoryUnitOfWorkFactory
from adapters.memory.telemetry import InMemoryTelemetry, InMemoryTelemetryStore
from adapters.mqtt.buffering import RetryPolicy, TelemetryBatcher
from adapters.system import ManualClock
from gridcore.ports import AppendResult
from gridcore.telemetry import TelemetrySample

T0 = datetime(2025, 10, 20, 15, 0, tzinfo=UTC)
TIMEOUT = 5.0


class RefusingStore:
    """The memory store, refusing (raising, as a failed COPY does) every batch
    that holds a sample of ``refused``; and the whole database while ``down``.
    ``writes`` records the size of every write tried."""

    def __init__(self, uow: OutageUow) -> None:
        self.inner = InMemoryTelemetryStore(uow.state, InMemoryTelemetry())
        self.refused: set[float] = set()
        self.writes: list[int] = []
        self.uow = uow
        self.transient = 0  # the next writes that fail whatever they hold

    async def append(
        self, samples: Sequence[TelemetrySample], *, auto_register: bool = True
    ) -> AppendResult:
        self.writes.append(len(samples))
        if self.uow.down:
            raise ConnectionError("database is down")
        if self.transient:
            self.transient -= 1
            raise ConnectionError("connection reset")
        if any(s.used_power_kw in self.refused for s in samples):
            raise ValueError("value too long for type character varying(255)")
        return await self.inner.append(samples, auto_register=auto_register)


class OutageUow(InMemoryUnitOfWorkFactory):
    down = False

    def __call__(self) -> InMemoryUnitOfWork:
        if self.down:
            raise ConnectionError("database is down")
        return super().__call__()


def samples(count: int) -> list[TelemetrySample]:
    return [
        TelemetrySample("v1", T0 + timedelta(seconds=n), used_power_kw=float(n), raw_payload="{}")
        for n in range(count)
    ]


def batcher(store: RefusingStore, max_batch: int) -> TelemetryBatcher:
    return TelemetryBatcher(
        store, store.uow, ManualClock(T0), batch_size=max_batch, max_batch=max_batch,
        max_held=10 * max_batch, retry=RetryPolicy(initial_delay=0.01, max_delay=0.01),
    )  # fmt: skip


async def write_all(held: TelemetryBatcher, items: list[TelemetrySample]) -> None:
    for sample in items:
        held.add(sample, f"ven/telemetry/{sample.ven_id}")
    runner = asyncio.create_task(held.run())
    await asyncio.wait_for(held.flushed(), TIMEOUT)
    held.close()
    await asyncio.wait_for(runner, TIMEOUT)


async def test_one_refused_sample_costs_log_n_writes_then_full_batches() -> None:
    uow = OutageUow()
    store = RefusingStore(uow)
    n = 5000
    store.refused = {3217.0}
    await write_all(batcher(store, max_batch=n), samples(3 * n))

    assert len(store.inner._telemetry.samples) == 3 * n - 1
    (letter,) = uow.state.dead_letters
    assert letter.topic == "ven/telemetry/v1"
    assert letter.reason == (
        "store refused the sample: ValueError: value too long for type character varying(255)"
    )
    # The failed batch, its bisection (about log2 n writes, ending with the bad
    # sample alone twice), then full batches again at once: the 3,217 samples
    # before it were written during the search, the 11,782 after it take two
    # full batches and the rest.
    first, *search, after_1, after_2, rest = store.writes
    assert first == n and search[-2:] == [1, 1]
    assert len(search) <= math.ceil(math.log2(n)) + 2
    assert [after_1, after_2, rest] == [n, n, 3 * n - 3217 - 1 - 2 * n]


async def test_a_bad_sample_first_or_last_is_found_the_same_way() -> None:
    for bad in (0.0, 1023.0):
        uow = OutageUow()
        store = RefusingStore(uow)
        store.refused = {bad}
        await write_all(batcher(store, max_batch=1024), samples(1024))
        assert len(uow.state.dead_letters) == 1
        assert len(store.writes) <= 1 + 10 + 2


async def test_a_failed_batch_without_a_bad_sample_is_written_and_nothing_dead_lettered() -> None:
    uow = OutageUow()
    store = RefusingStore(uow)
    store.transient = 1  # a blip: the first write fails, nothing is wrong with it
    await write_all(batcher(store, max_batch=64), samples(64))
    assert len(store.inner._telemetry.samples) == 64
    assert uow.state.dead_letters == []


async def test_a_sample_failing_alone_once_is_not_dead_lettered() -> None:
    uow = OutageUow()
    store = RefusingStore(uow)
    store.transient = 7  # 64, 32, 16, 8, 4, 2, 1 fail: then the first sample alone succeeds
    await write_all(batcher(store, max_batch=64), samples(64))
    assert len(store.inner._telemetry.samples) == 64
    assert uow.state.dead_letters == []


async def test_an_outage_holds_everything_and_loses_nothing() -> None:
    uow = OutageUow()
    uow.down = True
    store = RefusingStore(uow)
    held = batcher(store, max_batch=100)
    for sample in samples(250):
        held.add(sample, "volttron/metering")
    runner = asyncio.create_task(held.run())
    await asyncio.sleep(0.1)
    assert held.held == 250 and uow.state.dead_letters == []
    tried = len(store.writes)
    await asyncio.sleep(0.1)
    # Held and retried with backoff, one sample at a time: not bisected again.
    assert set(store.writes[tried:]) == {1}
    uow.down = False
    await asyncio.wait_for(held.flushed(), TIMEOUT)
    held.close()
    await asyncio.wait_for(runner, TIMEOUT)
    assert len(store.inner._telemetry.samples) == 250
    assert uow.state.dead_letters == []
    assert held.stats.poisoned == 0
