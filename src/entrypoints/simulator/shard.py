"""The I/O of a group of simulated VENs sharing one broker connection.

One connection carries many VENs: it subscribes to each VEN's own
``ven/cmd/{venId}`` (exact filters cost a broker nothing per message, unlike
``ven/cmd/+``, which would also deliver commands meant for another
simulator's VENs) and routes each command by topic.

Telemetry is spread over the interval: each VEN reports at its own phase
offset, so a thousand VENs do not burst together every 5 seconds. A shard
that falls behind (a slow broker, a busy CPU) skips the cycles it missed
instead of sending stale samples in a burst.

ACKs are published in background tasks (bounded), so a QoS 1 round trip per
ACK does not hold up the next command when the backend dispatches to every
VEN at once; the VEN's state is already updated when the ACK is queued.
"""

from __future__ import annotations

import asyncio
import heapq
import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from entrypoints.simulator.ven import ACK_QOS, SimulatedVen
from gridcore.ports import BrokerMessage, Clock, MessageTransport

log = logging.getLogger("entrypoints.simulator")

COMMAND_QOS = 1
_MAX_INFLIGHT = 8  # ACK publishes in flight per connection: aiomqtt warns above 10 pending calls
_SUBSCRIBE_CONCURRENCY = 8  # likewise


@dataclass(slots=True)
class ShardStats:
    reports: int = 0
    commands: int = 0
    acks: int = 0
    publish_failures: int = 0


class VenShard:
    """``vens`` with their phase offsets (seconds into each interval)."""

    def __init__(
        self,
        transport: MessageTransport,
        vens: Sequence[tuple[SimulatedVen, float]],
        *,
        interval: float,
        clock: Clock,
    ) -> None:
        self._transport = transport
        self._vens = list(vens)
        self._by_topic = {topic: ven for ven, _ in vens for topic in ven.topics}
        self._interval = interval
        self._clock = clock
        self._inflight: set[asyncio.Task[None]] = set()
        self._slots = asyncio.Semaphore(_MAX_INFLIGHT)
        self._timers: dict[str, asyncio.TimerHandle] = {}
        self.stats = ShardStats()

    async def subscribe(self) -> None:
        """Subscribe every VEN's command and config topics (QoS 1), a bounded
        number at a time."""
        gate = asyncio.Semaphore(_SUBSCRIBE_CONCURRENCY)

        async def one(topic: str) -> None:
            async with gate:
                await self._transport.subscribe(topic, COMMAND_QOS)

        # gather, not a TaskGroup: a refused subscription surfaces as itself
        # (ConnectionError), which the command line reports, not as a group.
        await asyncio.gather(*(one(topic) for topic in self._by_topic))

    async def run(self) -> None:
        """Serve commands and send telemetry until cancelled."""
        try:
            async with asyncio.TaskGroup() as group:
                group.create_task(self._serve_commands())
                group.create_task(self._report_loop())
        finally:
            for handle in self._timers.values():
                handle.cancel()
            self._timers.clear()
            for task in list(self._inflight):
                task.cancel()
            if self._inflight:
                await asyncio.gather(*self._inflight, return_exceptions=True)

    async def _serve_commands(self) -> None:
        async for message in self._transport.messages():
            ven = self._by_topic.get(message.topic)
            if ven is None:
                continue
            self.stats.commands += 1
            try:
                acks = ven.handle(message.payload, self._clock.now())
            except Exception:  # one bad command must not stop a whole connection's VENs
                log.exception("%s: command %r failed", ven.ven_id, message.payload[:200])
                continue
            if acks:
                await self._in_background(acks)
            self._arm(ven)

    async def _report_loop(self) -> None:
        loop = asyncio.get_running_loop()
        start = loop.time()
        # (due time, position) per VEN; position breaks ties deterministically.
        due = [(start + phase, n) for n, (_, phase) in enumerate(self._vens)]
        heapq.heapify(due)
        while due:
            when, n = due[0]
            delay = when - loop.time()
            if delay > 0:
                await asyncio.sleep(delay)
            now_loop = loop.time()
            while due and due[0][0] <= now_loop:
                when, n = heapq.heappop(due)
                ven = self._vens[n][0]
                await self._publish(ven.report(self._clock.now()))
                self.stats.reports += 1
                self._arm(ven)
                missed = max(int((now_loop - when) // self._interval), 0)
                heapq.heappush(due, (when + (missed + 1) * self._interval, n))

    def _arm(self, ven: SimulatedVen) -> None:
        """Wake up when the VEN's next curtailment runs out, to restore it on time."""
        previous = self._timers.pop(ven.ven_id, None)
        if previous is not None:
            previous.cancel()
        expiry = ven.next_expiry()
        if expiry is None:
            return
        delay = max(expiry - self._clock.now().timestamp(), 0.0)
        loop = asyncio.get_running_loop()
        self._timers[ven.ven_id] = loop.call_later(delay, self._expire, ven)

    def _expire(self, ven: SimulatedVen) -> None:
        self._timers.pop(ven.ven_id, None)
        messages = ven.expire(self._clock.now())
        if messages:
            task = asyncio.get_running_loop().create_task(self._publish(messages))
            self._track(task)
        self._arm(ven)

    async def _in_background(self, messages: list[BrokerMessage]) -> None:
        await self._slots.acquire()

        async def send() -> None:
            try:
                await self._publish(messages)
            finally:
                self._slots.release()

        self._track(asyncio.get_running_loop().create_task(send()))

    def _track(self, task: asyncio.Task[None]) -> None:
        self._inflight.add(task)
        task.add_done_callback(self._inflight.discard)

    async def _publish(self, messages: Iterable[BrokerMessage]) -> None:
        for message in messages:
            try:
                await self._transport.publish(message.topic, message.payload, qos=message.qos)
            except (ConnectionError, OSError) as exc:
                # Telemetry is best effort; a lost ACK is re-asked by the backend.
                self.stats.publish_failures += 1
                if self.stats.publish_failures in (1, 10, 100) or not (
                    self.stats.publish_failures % 1000
                ):
                    log.warning(
                        "publish to %s failed (%s); %d failure(s) so far",
                        message.topic, exc, self.stats.publish_failures,
                    )  # fmt: skip
                continue
            if message.qos == ACK_QOS:
                self.stats.acks += 1
