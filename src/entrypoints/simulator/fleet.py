"""A fleet of simulated VENs: who they are, how they behave, and how they share
broker connections.

VEN ids are ``{prefix}-{n}`` for n from ``start_index``. Each VEN's panel
follows from (seed, n) and which VENs reject or stay silent from the seed, so
a run is reproducible. VENs are dealt round robin over connections of at most
``vens_per_connection`` VENs, and their telemetry phases are spread evenly
over the interval across the whole fleet.

A large fleet is split into shards (``gridcore ven --processes N``): shard k
of N simulates the VENs at positions k, k+N, k+2N.. of the fleet, with the
same behaviours and phases as in one process, so the fleet is the same VENs
reporting at the same moments however it is split; each shard is a process
of its own, with its own connections.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from adapters.mqtt.payloads import MAX_BATCH_SAMPLES
from adapters.mqtt.topics import METERING
from adapters.system import SystemClock
from entrypoints.simulator.panel import generate_panel
from entrypoints.simulator.shard import ShardStats, VenShard
from entrypoints.simulator.ven import Behaviour, SimulatedVen
from gridcore.ports import Clock, MessageTransport
from gridcore.ven import validate_ven_id

log = logging.getLogger("entrypoints.simulator")

# Opens connection number n (0-based) of the fleet.
Connect = Callable[[int], Awaitable[MessageTransport]]


@dataclass(frozen=True, slots=True)
class FleetConfig:
    count: int
    prefix: str = "ven"
    seed: int = 0
    interval: float = 5.0
    reject_fraction: float = 0.0
    silent_fraction: float = 0.0
    start_index: int = 1
    vens_per_connection: int = 500
    metering_topic: str = METERING
    utc_offset_s: float = 0.0
    batch: int = 1  # metering samples a message (004's "batching")

    def __post_init__(self) -> None:
        if self.count < 1:
            raise ValueError("count must be at least 1")
        if not self.interval > 0:
            raise ValueError("interval must be a positive number of seconds")
        for name in ("reject_fraction", "silent_fraction"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ValueError(f"{name} must be between 0 and 1")
        if self.reject_fraction + self.silent_fraction > 1.0:
            raise ValueError("reject_fraction + silent_fraction must not exceed 1")
        if not 1 <= self.batch <= MAX_BATCH_SAMPLES:
            raise ValueError(f"batch must be 1-{MAX_BATCH_SAMPLES} samples a message")
        if self.vens_per_connection < 1:
            raise ValueError("vens_per_connection must be at least 1")
        if self.start_index < 0:
            raise ValueError("start_index must not be negative")
        last = self.ven_id(self.start_index + self.count - 1)
        try:
            validate_ven_id(last)
        except ValueError as exc:
            message = f"prefix {self.prefix!r} makes invalid VEN ids ({last}): {exc}"
            raise ValueError(message) from None

    def ven_id(self, n: int) -> str:
        return f"{self.prefix}-{n}"

    @property
    def connections(self) -> int:
        return -(-self.count // self.vens_per_connection)


def assign_behaviours(config: FleetConfig) -> list[Behaviour]:
    """Exactly round(fraction x count) rejecting and silent VENs, picked by the seed."""
    rejecting = round(config.reject_fraction * config.count)
    silent = min(round(config.silent_fraction * config.count), config.count - rejecting)
    picked = random.Random(f"behaviour:{config.seed}").sample(
        range(config.count), rejecting + silent
    )
    behaviours = [Behaviour.COOPERATIVE] * config.count
    for k, position in enumerate(picked):
        behaviours[position] = Behaviour.REJECTING if k < rejecting else Behaviour.SILENT
    return behaviours


@dataclass(frozen=True, slots=True)
class Shard:
    """Shard ``index`` of ``of``: the fleet's positions ``index``, ``index + of``, .."""

    index: int = 0
    of: int = 1

    def __post_init__(self) -> None:
        if self.of < 1:
            raise ValueError("the number of shards must be at least 1")
        if not 0 <= self.index < self.of:
            raise ValueError(f"shard {self.index} does not exist in {self.of} shard(s)")

    def positions(self, count: int) -> range:
        """The fleet positions (0-based) this shard simulates: every position
        belongs to exactly one shard, and the shards' sizes differ by one at most."""
        return range(self.index, count, self.of)


def build_vens(config: FleetConfig, shard: Shard | None = None) -> list[SimulatedVen]:
    """The fleet's VENs, or those of ``shard``: built as the whole fleet
    builds them (behaviours are dealt over the whole fleet)."""
    behaviours = assign_behaviours(config)
    positions = (shard or Shard()).positions(config.count)
    return [
        SimulatedVen(
            config.ven_id(config.start_index + position),
            generate_panel(config.seed, config.start_index + position, config.utc_offset_s),
            behaviours[position],
            metering_topic=config.metering_topic,
            whole_seconds=config.interval >= 1.0,
            batch=config.batch,
        )
        for position in positions
    ]


class Fleet:
    """The VENs of ``config`` (or of its ``shard``), served over connections
    opened with ``connect``."""

    def __init__(
        self,
        config: FleetConfig,
        connect: Connect,
        clock: Clock | None = None,
        shard: Shard | None = None,
    ) -> None:
        self.config = config
        self.shard = shard or Shard()
        self._connect = connect
        self._clock = clock or SystemClock()
        self.vens = {ven.ven_id: ven for ven in build_vens(config, self.shard)}
        self._shards: list[VenShard] = []

    @property
    def connections(self) -> int:
        return -(-len(self.vens) // self.config.vens_per_connection)

    @property
    def stats(self) -> ShardStats:
        total = ShardStats()
        for shard in self._shards:
            for name in ("reports", "commands", "acks", "publish_failures"):
                setattr(total, name, getattr(total, name) + getattr(shard.stats, name))
        return total

    async def run(self, ready: asyncio.Event | None = None) -> None:
        """Connect, subscribe, set ``ready``, then simulate until cancelled;
        connections are closed on the way out."""
        config = self.config
        vens = list(self.vens.values())
        positions = self.shard.positions(config.count)
        connections = self.connections
        transports: list[MessageTransport] = []
        try:
            for c in range(connections):
                # Connection numbers are unique over the shards (client ids).
                transports.append(await self._connect(c * self.shard.of + self.shard.index))
                members = [
                    (ven, (positions[k] / config.count) * config.interval)
                    for k, ven in enumerate(vens)
                    if k % connections == c
                ]
                self._shards.append(
                    VenShard(transports[c], members, interval=config.interval, clock=self._clock)
                )
            await asyncio.gather(*(shard.subscribe() for shard in self._shards))
            log.info(
                "simulating %d VEN(s) %s..%s%s on %d connection(s): %d rejecting, %d silent, "
                "telemetry every %.3g s",
                len(vens), config.ven_id(config.start_index),
                config.ven_id(config.start_index + config.count - 1),
                f" (shard {self.shard.index + 1} of {self.shard.of}: every "
                f"{self.shard.of}th from {vens[0].ven_id})" if self.shard.of > 1 else "",
                len(transports),
                sum(v.behaviour is Behaviour.REJECTING for v in vens),
                sum(v.behaviour is Behaviour.SILENT for v in vens), config.interval,
            )  # fmt: skip
            if ready is not None:
                ready.set()
            async with asyncio.TaskGroup() as group:
                for shard in self._shards:
                    group.create_task(shard.run())
        finally:
            stats = self.stats
            for transport in transports:
                with contextlib.suppress(Exception):  # already gone is fine when stopping
                    await transport.close()
            log.info(
                "simulator stopped: %d report(s), %d command(s), %d ACK(s), %d failed publish(es)",
                stats.reports, stats.commands, stats.acks, stats.publish_failures,
            )  # fmt: skip


async def run_fleet(
    config: FleetConfig,
    connect: Connect,
    *,
    clock: Clock | None = None,
    ready: asyncio.Event | None = None,
    shard: Shard | None = None,
) -> None:
    """Simulate ``config``'s VENs (those of ``shard``) until cancelled."""
    await Fleet(config, connect, clock, shard).run(ready)
