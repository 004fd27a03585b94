"""A fleet split over processes (``gridcore ven --processes N``).

One Python process serves a few thousand VENs at the documents' 5 s cadence
(building each report costs about a millisecond of CPU); 100,000 VENs need
more cores, a longer interval, or both. Each process simulates one
:class:`~entrypoints.simulator.fleet.Shard` of the fleet over its own
connections: the same VENs, behaviours and phases as in one process.

This process starts the shards (``spawn``: nothing of this process's event
loop or sockets is inherited), sets ``ready`` once every shard's VENs listen
to their commands, and watches them: if one shard ends, the others are
stopped and the run ends with an error, so a fleet never runs half of its
VENs unnoticed. Cancelling it stops every shard (SIGTERM; Ctrl-C in a
terminal reaches them itself), so each closes its connections and logs its
totals.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import multiprocessing
import signal
import time
from multiprocessing.connection import Connection
from multiprocessing.process import BaseProcess

from entrypoints.settings import Settings
from entrypoints.simulator.fleet import FleetConfig, Shard, run_fleet

log = logging.getLogger("entrypoints.simulator")

_POLL = 0.2  # seconds between looks at the shards
_STOP_WAIT = 15.0  # seconds a shard gets to close its connections


def _shard_main(
    settings: Settings, config: FleetConfig, shard: Shard, level: int, ready: Connection
) -> None:
    """A shard process: the same log format as ``gridcore``, then its VENs."""
    from entrypoints.simulator.run import connector

    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    flag = asyncio.Event()

    async def main() -> None:
        current = asyncio.current_task()
        assert current is not None
        asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, current.cancel)

        async def tell_ready() -> None:
            await flag.wait()
            ready.send(shard.index)

        told = asyncio.create_task(tell_ready())
        try:
            connect = connector(settings, config.prefix)
            await run_fleet(config, connect, ready=flag, shard=shard)
        finally:
            told.cancel()

    with contextlib.suppress(KeyboardInterrupt, asyncio.CancelledError):
        asyncio.run(main())


async def run_shards(
    settings: Settings,
    config: FleetConfig,
    processes: int,
    *,
    ready: asyncio.Event | None = None,
) -> None:
    """Simulate ``config``'s fleet in ``processes`` shard processes until
    cancelled; raises ``RuntimeError`` when a shard ends by itself (its log
    says why: a broker it cannot reach, a refused subscription)."""
    context = multiprocessing.get_context("spawn")
    level = logging.getLogger().getEffectiveLevel()
    children: list[BaseProcess] = []
    pipes: list[Connection] = []
    try:
        for index in range(processes):
            ours, theirs = context.Pipe(duplex=False)
            child = context.Process(
                target=_shard_main,
                args=(settings, config, Shard(index, processes), level, theirs),
                name=f"ven-shard-{index + 1}",
                daemon=True,  # never outlives this process
            )
            child.start()
            theirs.close()
            children.append(child)
            pipes.append(ours)
        log.info("simulator: %d VEN(s) in %d shard process(es)", config.count, processes)
        waiting = set(range(processes))
        while True:
            for index in list(waiting):
                if pipes[index].poll():
                    pipes[index].recv()
                    waiting.discard(index)
                    if not waiting:
                        log.info("simulator: every shard's VENs listen to their commands")
                        if ready is not None:
                            ready.set()
            ended = [c for c in children if not c.is_alive()]
            if ended:
                raise RuntimeError(
                    f"simulator shard {ended[0].name} ended (exit code {ended[0].exitcode}); "
                    "the other shards were stopped"
                )
            await asyncio.sleep(_POLL)
    finally:
        await asyncio.shield(_stop(children))
        for pipe in pipes:
            pipe.close()


def _join_all(children: list[BaseProcess], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    for child in children:
        child.join(max(deadline - time.monotonic(), 0.0))


async def _stop(children: list[BaseProcess]) -> None:
    """Stop the shards still running, then kill any that does not stop."""
    for child in children:
        if child.is_alive():
            child.terminate()  # SIGTERM: the shard cancels itself
    await asyncio.to_thread(_join_all, children, _STOP_WAIT)
    for child in children:
        if child.is_alive():
            log.warning("simulator shard %s did not stop; killing it", child.name)
            child.kill()
        child.join(1.0)
