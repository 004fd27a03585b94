"""Measurement end to end (issue 14): three VENs' 22 days of telemetry through
Mosquitto into a real `gridcore worker` on PostgreSQL, an event during which
they shed known amounts, and `gridcore report` keeping what the meter shows.

The VENs are this test's own MQTT clients, so every sample's time and value is
known: each draws a steady load (4, 5, 6 kW) every day, one sample per
5-minute interval, and sheds 1, 2, 3 kW while in the event. The event started
in the interval before the current one (its first samples are published
stamped in the past, as a VEN sending its buffer does) and is stopped now: the
event window is then covered by samples all taken while shedding, so the
10-in-10 baseline is exactly the steady load, and each VEN's shed energy is
exactly its drop over the event's length.
"""

from __future__ import annotations

import asyncio
import contextlib
import csv
import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import aiomqtt
import pytest
from sqlalchemy import text
from test_dispatch_processes import (  # the fixtures and helpers of the dispatch tests
    Backend,
    Fleet,
    Processes,
    backend,
    fleet,
    gridcore_command,
    processes,
    start_worker,
    wait_until,
)

from adapters.system import RandomIds
from gridcore.intervals import interval_start
from gridcore.services import create_event, stop_event

pytestmark = [pytest.mark.mosquitto, pytest.mark.postgres]
__all__ = ["backend", "fleet", "processes"]  # fixtures, imported for pytest

HISTORY_DAYS = 22  # enough weekdays (and weekend days) for 10-in-10 whatever today is
STEADY = {1: 4.0, 2: 5.0, 3: 6.0}
DROP = {1: 1.0, 2: 2.0, 3: 3.0}
ENV = {
    "GRIDCORE_BASELINE_METHOD": "10-in-10",
    "GRIDCORE_REBOUND_MINUTES": "0",  # final as soon as the event is over
    "VEN_OFFLINE_AFTER_SECONDS": "3600",  # the history's last samples keep them online
}


def metering(ven_id: str, at: datetime, used: float, event_id: str | None, shed: float) -> bytes:
    return json.dumps(
        {
            "venId": ven_id,
            "timestamp": int(at.timestamp()),
            "usedPowerKw": used,
            "shedPowerKw": shed,
            "eventId": event_id,
            "loads": [
                {
                    "id": "hvac",
                    "name": "HVAC",
                    "type": "hvac",
                    "capacityKw": used + shed,
                    "currentPowerKw": used,
                    "shedCapabilityKw": 3.0,
                    "enabled": event_id is None,
                }
            ],
        }
    ).encode()


@contextlib.asynccontextmanager
async def mqtt(fleet: Fleet, name: str) -> AsyncIterator[aiomqtt.Client]:
    async with aiomqtt.Client(fleet.host, fleet.port, identifier=f"{fleet.prefix}-{name}") as c:
        yield c


async def answer_commands(fleet: Fleet, ready: asyncio.Event) -> None:
    """The VENs' side of the command topics: accept every command."""
    async with mqtt(fleet, "vens") as client:
        await client.subscribe("ven/cmd/#", qos=1)
        ready.set()
        async for message in client.messages:
            ven_id = str(message.topic).removeprefix("ven/cmd/")
            if not ven_id.startswith(fleet.prefix + "-"):
                continue  # another test's VEN
            assert isinstance(message.payload, bytes)
            command: dict[str, Any] = json.loads(message.payload)
            ack = {
                "op": command["op"],
                "status": "accepted",
                "correlationId": command["correlationId"],
                "venId": ven_id,
            }
            await client.publish(f"ven/ack/{ven_id}", json.dumps(ack), qos=1)


async def publish(fleet: Fleet, samples: list[bytes]) -> None:
    async with mqtt(fleet, "meter") as client:
        for payload in samples:
            await client.publish(fleet.metering_topic, payload, qos=1)


async def stored_samples(backend: Backend, prefix: str) -> int:
    async with backend.engine.connect() as conn:
        found = await conn.scalar(
            text("SELECT count(*) FROM ven_telemetry WHERE ven_id LIKE :p"), {"p": f"{prefix}-%"}
        )
    return int(found or 0)


async def test_the_kept_performance_is_what_the_meters_showed(
    fleet: Fleet, backend: Backend, processes: Processes, tmp_path: Path
) -> None:
    vens = {n: f"{fleet.prefix}-{n}" for n in STEADY}
    worker = start_worker(processes, "worker", **ENV)
    now = datetime.now(UTC)
    start = interval_start(now) - timedelta(minutes=5)  # the event began in the last interval
    history = [
        metering(ven_id, at, STEADY[n], None, 0.0)
        for n, ven_id in vens.items()
        for k in range(HISTORY_DAYS * 288, 0, -1)
        if (at := start - k * timedelta(minutes=5) + timedelta(seconds=150))
    ]
    ready = asyncio.Event()
    answering = asyncio.create_task(answer_commands(fleet, ready))
    try:
        await asyncio.wait_for(ready.wait(), 15)
        await wait_until("the worker to subscribe", lambda: "consuming" in worker.log(), processes)
        # In bursts a stock Mosquitto queues for a subscriber (1,000 messages:
        # README "Broker limits"), each once the previous one is stored.
        for first in range(0, len(history), 900):
            chunk = history[first : first + 900]
            await publish(fleet, chunk)
            await stored(backend, fleet.prefix, first + len(chunk), processes)
        event = await create_event(
            backend.uow,
            backend.clock,
            RandomIds(),
            start_time=start,  # past: the dispatcher activates it at once
            end_time=start + timedelta(hours=1),
            requested_reduction_kw=6.0,
        )
        await wait_until(
            "every VEN to accept",
            lambda: _has(backend.acked(event.id), set(vens.values())),
            processes,
        )
        # In the event since its start: every 30 s, shedding (the first ones late).
        published = datetime.now(UTC)
        shedding = [
            metering(ven_id, at, STEADY[n] - DROP[n], event.id, DROP[n])
            for n, ven_id in vens.items()
            for k in range(int((published - start).total_seconds() // 30) + 1)
            if (at := start + timedelta(seconds=30 * k + 5)) < published
        ]
        await publish(fleet, shedding)
        await stored(backend, fleet.prefix, len(history) + len(shedding), processes)
        stopped = await stop_event(backend.uow, backend.clock, event.id)
        assert stopped.ended_at is not None
        hours = (stopped.ended_at - start).total_seconds() / 3600

        report = tmp_path / "report.csv"
        done = await asyncio.to_thread(_run_report, processes, event.id, report, fleet.database_url)
        assert done.returncode == 0, done.stderr
        assert f"event {event.id}" in done.stdout and "final" in done.stdout
        rows = {r["venId"]: r for r in csv.DictReader(report.open())}
        for n, ven_id in vens.items():
            assert rows[ven_id]["method"] == "10-in-10"
            assert float(rows[ven_id]["shedKwh"]) == pytest.approx(
                DROP[n] * hours, rel=1e-5
            )  # CSV: 6 significant digits
            assert float(rows[ven_id]["avgShedKw"]) == pytest.approx(
                DROP[n], rel=1e-5
            )  # CSV: 6 significant digits
            assert int(rows[ven_id]["baselineDays"]) >= 5
        assert float(rows["FLEET"]["shedKwh"]) == pytest.approx(
            6.0 * hours, rel=1e-5
        )  # CSV: 6 significant digits
        assert float(rows["FLEET"]["performanceRatio"]) == pytest.approx(
            1.0, rel=1e-5
        )  # CSV: 6 significant digits
        async with backend.engine.connect() as conn:  # kept, as settlement reads it
            kept = await conn.scalar(
                text(
                    "SELECT count(*) FROM event_ven_performance "
                    "WHERE event_id = :e AND method = '10-in-10'"
                ),
                {"e": event.id},
            )
        assert kept == 3
    finally:
        answering.cancel()
        with contextlib.suppress(asyncio.CancelledError, aiomqtt.MqttError):
            await answering


def _run_report(processes: Processes, event_id: str, path: Path, url: str) -> Any:
    import subprocess

    env = {**processes.base_env, **ENV, "DATABASE_URL": url}
    args = [*gridcore_command(), "report", event_id, "--method", "10-in-10", "--csv", str(path)]
    return subprocess.run(args, env=env, capture_output=True, text=True, timeout=120)


async def stored(backend: Backend, prefix: str, count: int, processes: Processes) -> None:
    async def all_there() -> bool:
        return await stored_samples(backend, prefix) == count

    await wait_until(f"{count} samples to be stored", all_there, processes)


async def _has(found: Any, expected: set[str]) -> bool:
    return bool(await found >= expected)
