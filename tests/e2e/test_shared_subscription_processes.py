"""Two real `gridcore worker` processes on one MQTT 5 shared subscription
(``MQTT_SHARED_GROUP``), each with a persistent session of its own
(``MQTT_CLIENT_ID``), storing into one PostgreSQL database through the
machine's Mosquitto: scale-in and back out while telemetry keeps coming.

1. both members take a share of the stream;
2. one is stopped (SIGTERM: a scale-in, or the first half of a rolling
   restart) while the publisher goes on: the survivor stores everything
   published meanwhile, at once. Mosquitto 2 routes a shared subscription's
   messages to a member's session whether or not it is connected, so a member
   that left without unsubscribing would hold back half the stream (up to
   ``max_queued_messages``, then dropped) until it returned;
3. it comes back under the same client id and takes a share again.

Throughout, every message is stored once (rows = published, distinct
(ven_id, timestamp)) and received by exactly one member: the workers'
totals, logged when each stops, add up to what was published.
"""

from __future__ import annotations

import asyncio
import json
import re
import signal
import time

import aiomqtt
import pytest
import test_dispatch_processes as dispatch_e2e
from sqlalchemy import text
from test_dispatch_processes import Backend, Fleet, Processes, start_worker, wait_until

pytestmark = [pytest.mark.mosquitto, pytest.mark.postgres]

fleet = dispatch_e2e.fleet
backend = dispatch_e2e.backend
processes = dispatch_e2e.processes

PHASE = 600  # messages published in each of the three phases
RATE = 400.0  # messages/s: a steady stream, not a burst the broker queues
VENS = 50
BASE = int(time.time()) - 3600  # message timestamps: each its own second, in the past
TOTALS = re.compile(r"worker stopped; received \d+ \((.*?)\); stored \d+, duplicates (\d+)")


async def publish(fleet: Fleet, first: int, count: int) -> None:
    """``count`` telemetry messages numbered from ``first``, message ``i``
    dated ``BASE + i`` seconds, at ``RATE`` at QoS 1."""
    async with aiomqtt.Client(fleet.host, fleet.port, identifier=f"{fleet.prefix}-pub") as client:
        started = time.monotonic()
        for i in range(first, first + count):
            body = {
                "venId": f"{fleet.prefix}-{i % VENS}",
                "timestamp": BASE + i,
                "usedPowerKw": 1.0 + i % 7,
            }
            await client.publish(fleet.metering_topic, json.dumps(body).encode(), qos=1)
            if (delay := started + (i - first + 1) / RATE - time.monotonic()) > 0:
                await asyncio.sleep(delay)


async def stored(backend: Backend, fleet: Fleet) -> tuple[int, int]:
    """(rows, distinct (ven_id, timestamp)) of this test's VENs."""
    async with backend.engine.connect() as conn:
        row = (
            await conn.execute(
                text(
                    "SELECT count(*), count(DISTINCT (ven_id, timestamp)) FROM ven_telemetry"
                    " WHERE ven_id LIKE :prefix"
                ),
                {"prefix": f"{fleet.prefix}-%"},
            )
        ).one()
    return int(row[0]), int(row[1])


def telemetry_received(log: str) -> list[tuple[int, int]]:
    """(telemetry received, duplicates) for each life of a worker, from the
    totals it logs when it stops."""
    lives = []
    for kinds, duplicates in TOTALS.findall(log):
        counts = dict(k.split(" ") for k in kinds.split(", ") if " " in k)
        lives.append((int(counts.get("telemetry", 0)), int(duplicates)))
    return lives


async def test_a_member_leaving_and_returning_loses_and_duplicates_nothing(
    fleet: Fleet, backend: Backend, processes: Processes
) -> None:
    env = {
        "MQTT_SHARED_GROUP": f"{fleet.prefix}-workers",
        "EVENT_COMMAND_ENABLED": "false",  # ingest only: the dispatch tests cover the lease
    }
    stays = start_worker(processes, "stays", MQTT_CLIENT_ID=f"{fleet.prefix}-stays", **env)
    leaves = start_worker(processes, "leaves", MQTT_CLIENT_ID=f"{fleet.prefix}-leaves", **env)

    def subscribed(worker: dispatch_e2e.Process, lives: int = 1) -> bool:
        """Subscribed in its ``lives``-th life (a returning worker logs to the same file)."""
        return worker.log().count("consuming ") >= lives

    await wait_until(
        "both workers to subscribe", lambda: subscribed(stays) and subscribed(leaves), processes
    )

    async def all_stored(count: int) -> bool:
        return (await stored(backend, fleet))[0] >= count

    await publish(fleet, 0, PHASE)
    await wait_until("the first phase stored", lambda: all_stored(PHASE), processes)

    leaves.kill(signal.SIGTERM)
    await publish(fleet, PHASE, PHASE)
    # Stored by the survivor alone: nothing waits in the stopped member's session.
    await wait_until("the second phase stored", lambda: all_stored(2 * PHASE), processes)

    returned = start_worker(processes, "leaves", MQTT_CLIENT_ID=f"{fleet.prefix}-leaves", **env)
    await wait_until("the member to rejoin", lambda: subscribed(returned, 2), processes)
    await publish(fleet, 2 * PHASE, PHASE)
    await wait_until("the third phase stored", lambda: all_stored(3 * PHASE), processes)
    await asyncio.sleep(0.5)  # a copy delivered twice would be stored (or counted) by now

    stays.kill(signal.SIGTERM)
    returned.kill(signal.SIGTERM)
    stays_lives, leaves_lives = telemetry_received(stays.log()), telemetry_received(returned.log())
    summary = f"stays {stays_lives}, leaves {leaves_lives}\n{processes.logs()}"
    assert len(stays_lives) == 1 and len(leaves_lives) == 2, summary
    assert await stored(backend, fleet) == (3 * PHASE, 3 * PHASE), summary
    # Each message received by exactly one member, none found already stored.
    lives = stays_lives + leaves_lives
    assert sum(n for n, _ in lives) == 3 * PHASE, summary
    assert sum(d for _, d in lives) == 0, summary
    # Both took a share before the one left, and again after it returned.
    assert stays_lives[0][0] > 0 and leaves_lives[0][0] > 0, summary
    assert leaves_lives[1][0] > 0, summary
