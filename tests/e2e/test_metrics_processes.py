"""Metrics, health and logs of real processes: `gridcore serve --workers 2`,
`gridcore worker` and `gridcore ven` on PostgreSQL and Mosquitto, scraped
over HTTP during an event. Every count is compared with what really
happened: messages a subscriber of the test saw on the metering topic, rows
in the database, commands and ACKs in the ledger, requests the test made.

And the worker's readiness: not ready while its broker (a Mosquitto of the
test's own, stopped) or its database (refusing connections) is away, ready
again after.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import aiomqtt
import httpx
import psycopg
import pytest
import test_dispatch_processes as dispatch_e2e
from processes import free_port
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import text
from test_dispatch_processes import (
    Backend,
    Fleet,
    Processes,
    fleet_online,
    process_env,
    start_vens,
    start_worker,
    wait_until,
)
from tests.integration.mosquitto_process import MosquittoProcess

from conftest import PG_HOST, PG_PORT, PG_USER
from gridcore.correlation import CommandOp

pytestmark = [pytest.mark.mosquitto, pytest.mark.postgres, pytest.mark.slow]

READ = "r" * 32
CONTROL = "c" * 32
TOKENS = f"read:{READ},control:{CONTROL}"

# The dispatch tests' fixtures: a unique database and metering topic, the
# test's view of the database, the processes it starts (all killed at its end).
fleet = dispatch_e2e.fleet
backend = dispatch_e2e.backend
processes = dispatch_e2e.processes


# --- scraping ------------------------------------------------------------------------------


Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def scrape(url: str, token: str | None = None) -> Samples:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    response = httpx.get(url, headers=headers, timeout=10)
    response.raise_for_status()
    samples: Samples = {}
    for family in text_string_to_metric_families(response.text):
        for s in family.samples:
            samples[s.name, frozenset(s.labels.items())] = s.value
    return samples


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples.get((name, frozenset(labels.items())), 0.0)


def _admin() -> psycopg.Connection[tuple[object, ...]]:
    """A superuser connection to the server's maintenance database."""
    dsn = f"host={PG_HOST} port={PG_PORT} user={PG_USER} dbname=postgres"
    return psycopg.connect(dsn, autocommit=True)


async def aget(url: str, **kwargs: object) -> httpx.Response:
    """``httpx.get`` off the event loop (the test's subscribers run on it)."""
    return await asyncio.to_thread(httpx.get, url, **kwargs)  # type: ignore[arg-type]


def ready(base: str) -> tuple[int, dict[str, object]]:
    response = httpx.get(f"{base}/health/ready", timeout=5)
    return response.status_code, response.json()


# --- a subscriber counting the test's telemetry --------------------------------------------


@dataclass
class MeteringTap:
    topic: str
    seen: int = 0
    client: aiomqtt.Client | None = None
    subscribed: asyncio.Event = field(default_factory=asyncio.Event)


@contextlib.asynccontextmanager
async def metering_tap(fleet: Fleet) -> AsyncIterator[MeteringTap]:
    tap = MeteringTap(fleet.metering_topic)

    async def listen() -> None:
        async with aiomqtt.Client(fleet.host, fleet.port, identifier=f"{fleet.prefix}-m") as c:
            tap.client = c
            await c.subscribe(tap.topic, qos=1)
            tap.subscribed.set()
            async for _ in c.messages:
                tap.seen += 1

    task = asyncio.create_task(listen())
    try:
        await asyncio.wait_for(tap.subscribed.wait(), 15)
        yield tap
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError, aiomqtt.MqttError):
            await task


@contextlib.contextmanager
def serving(processes: Processes, port: int) -> Iterator[str]:
    """``gridcore serve --workers 2`` with tokens, once /health answers."""
    processes.start(
        "serve", ["serve", "--port", str(port), "--workers", "2"], GRIDCORE_API_TOKENS=TOKENS
    )
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while True:
        try:
            if httpx.get(f"{base}/health", timeout=1).status_code == 200:
                break
        except httpx.HTTPError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)
    yield base


# --- tests ------------------------------------------------------------------------------


async def test_the_counters_of_real_processes_match_what_happened(
    fleet: Fleet, backend: Backend, processes: Processes
) -> None:
    vens = fleet.ven_ids(3)
    worker_port = free_port()
    worker_base = f"http://127.0.0.1:{worker_port}"
    worker = start_worker(
        processes,
        "worker",
        GRIDCORE_WORKER_HTTP_PORT=str(worker_port),
        GRIDCORE_LOG_FORMAT="json",
        GRIDCORE_LOG_LEVEL="debug",  # each command's line (with its ids) is at DEBUG
    )
    await wait_until("the worker to subscribe", lambda: "consuming" in worker.log(), processes)
    with serving(processes, free_port()) as api:
        async with metering_tap(fleet) as tap:
            vens_process = start_vens(processes, fleet, len(vens))
            await fleet_online(processes, backend, vens)
            event = await backend.create_event(kw=0.3, seconds=120)

            async def all_acked() -> bool:
                return await backend.acked(event.id) == vens

            await wait_until("every VEN's ACK to be stored", all_acked, processes)
            assert tap.client is not None
            await tap.client.publish(tap.topic, b"{not json", qos=1)
            vens_process.kill(15)  # SIGTERM: the fleet goes quiet

            def worker_caught_up() -> bool:
                got = scrape(f"{worker_base}/metrics")
                return value(got, "gridcore_mqtt_messages_received_total", kind="telemetry") == (
                    tap.seen
                ) and not value(got, "gridcore_write_buffer_depth", kind="telemetry")

            await asyncio.sleep(0.5)  # the tap's last messages
            await wait_until("the worker to have what the tap saw", worker_caught_up, processes)
            worker_metrics = scrape(f"{worker_base}/metrics")

        # --- ingest: received, stored, dead-lettered, lag ---
        async with backend.engine.connect() as conn:
            rows = (await conn.execute(text("SELECT count(*) FROM ven_telemetry"))).scalar_one()
            letters = (await conn.execute(text("SELECT count(*) FROM dead_letters"))).scalar_one()
        telemetry = {"kind": "telemetry"}
        stored = value(worker_metrics, "gridcore_mqtt_messages_stored_total", **telemetry)
        duplicates = value(worker_metrics, "gridcore_telemetry_duplicates_total")
        assert stored == rows > 0
        assert stored + duplicates == tap.seen - 1  # all but the bad one
        dead = value(
            worker_metrics,
            "gridcore_mqtt_dead_letters_total",
            kind="telemetry",
            reason="unparseable",
        )
        assert dead == letters == 1
        lag_count = value(worker_metrics, "gridcore_ingest_lag_seconds_count", since="receipt")
        assert lag_count == tap.seen - 1
        batches = value(worker_metrics, "gridcore_ingest_batch_size_sum", **telemetry)
        assert batches == tap.seen - 1

        # --- dispatch: commands and ACKs against the ledger ---
        async with backend.uow() as uow:
            commands = [
                c for c in await uow.commands.for_event(event.id) if c.op is CommandOp.EVENT
            ]
        sent = [c for c in commands if c.attempts > 0]
        assert {c.ven_id for c in sent} == vens  # every VEN allocated a share
        assert value(worker_metrics, "gridcore_commands_sent_total") == len(sent)
        # more than one a VEN only if a shortfall was re-allocated
        reallocated = value(worker_metrics, "gridcore_commands_reallocated_total")
        assert len(sent) == len(vens) + reallocated
        assert value(worker_metrics, "gridcore_commands_retried_total") == sum(
            c.attempts - 1 for c in sent
        )
        answered = [c for c in commands if c.acked_at is not None]
        assert value(worker_metrics, "gridcore_acks_total", outcome="matched") == len(answered)
        round_trips = value(worker_metrics, "gridcore_ack_round_trip_seconds_count", op="event")
        assert round_trips == len(answered) >= len(vens)
        assert value(worker_metrics, "gridcore_dispatch_pass_duration_seconds_count") > 0
        assert value(worker_metrics, "gridcore_dispatch_lease_held") == 1
        assert value(worker_metrics, "gridcore_mqtt_connected") == 1
        for (name, labels), _ in worker_metrics.items():
            assert not any(v in vens for _, v in labels), f"{name} has a VEN id label"

        # --- the API: requests counted across both processes, the fleet's gauges ---
        headers = {"Authorization": f"Bearer {READ}"}
        before = scrape(f"{api}/metrics", READ)
        for _ in range(6):  # spread over the two processes by the kernel
            assert (await aget(f"{api}/api/vens", headers=headers, timeout=10)).status_code == 200
        assert (await aget(f"{api}/api/vens/{min(vens)}", timeout=10)).status_code == 401
        after = scrape(f"{api}/metrics", READ)
        listed = {"route": "/api/vens", "method": "GET", "status": "200"}
        requests = "gridcore_api_requests_total"
        assert value(after, requests, **listed) - value(before, requests, **listed) == 6
        refused = {"route": "(none)", "method": "GET", "status": "401"}
        assert value(after, requests, **refused) - value(before, requests, **refused) == 1
        scrapes = {"route": "/metrics", "method": "GET", "status": "200"}
        assert value(after, requests, **scrapes) - value(before, requests, **scrapes) == 1
        duration = "gridcore_api_request_duration_seconds_count"
        assert (
            value(after, duration, route="/api/vens", method="GET")
            - value(before, duration, route="/api/vens", method="GET")
            == 6
        )
        async with backend.uow() as uow:
            stored_event = await uow.events.get(event.id)
        assert stored_event is not None
        assert value(after, "gridcore_vens_online") == len(vens)
        assert value(after, "gridcore_events_active") == 1
        assert value(after, "gridcore_events_requested_kw") == pytest.approx(0.3)
        claimed = value(after, "gridcore_events_claimed_kw")
        assert claimed == pytest.approx(stored_event.actual_reduction_kw) and claimed > 0
        assert (await aget(f"{api}/metrics", timeout=10)).status_code == 401

    # --- the worker: ready, and its log one JSON object a line with the ids as fields ---
    status, body = ready(worker_base)
    assert status == 200
    assert body["broker"] == "ok" and body["database"] == "ok"
    assert body["dispatchLease"] == {"held": True}
    lines = [json.loads(line) for line in worker.log().splitlines() if line.startswith("{")]
    assert len(lines) == len(worker.log().splitlines())  # every line is an object
    active = [
        line for line in lines if line.get("eventId") == event.id and "active" in line["message"]
    ]
    assert len(active) == 1 and active[0]["level"] == "INFO"
    sends = [line for line in lines if line.get("correlationId", "").startswith(event.id)]
    assert {line["venId"] for line in sends} == vens
    assert {line["level"] for line in sends if line["message"].startswith("sent ")} == {"DEBUG"}
    (summary,) = [
        line
        for line in lines
        if line["message"].startswith(f"sent {len(vens)} event command(s) (event {event.id})")
    ]
    assert summary["level"] == "INFO" and summary["eventId"] == event.id


async def test_the_worker_is_not_ready_without_its_broker_or_its_database(
    migrated_postgres_url: str, topic_prefix: str, tmp_path: Path
) -> None:
    broker = MosquittoProcess(tmp_path)
    broker.start()
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    own = Fleet(
        "ready", f"{topic_prefix}/metering", migrated_postgres_url, "127.0.0.1", broker.port
    )
    database = migrated_postgres_url.rsplit("/", 1)[1]
    procs = Processes(tmp_path, process_env(own))
    try:
        worker = procs.start("worker", ["worker"], GRIDCORE_WORKER_HTTP_PORT=str(port))

        async def readiness(want: int, **check: str) -> bool:
            try:
                status, body = await asyncio.to_thread(ready, base)
            except httpx.HTTPError:
                return False
            return status == want and all(str(body[k]).startswith(v) for k, v in check.items())

        await wait_until("ready", lambda: readiness(200), procs, within=30)
        assert (await aget(f"{base}/health", timeout=5)).status_code == 200

        await asyncio.to_thread(broker.stop)
        await wait_until("not ready: broker", lambda: readiness(503, broker="disconnected"), procs)
        assert (await aget(f"{base}/health", timeout=5)).status_code == 200  # alive all the same
        await asyncio.to_thread(broker.start)
        await wait_until("ready again after the broker", lambda: readiness(200), procs, within=30)

        with _admin() as admin:
            admin.execute(f'ALTER DATABASE "{database}" ALLOW_CONNECTIONS false')
            admin.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s",
                (database,),
            )
        try:
            await wait_until(
                "not ready: database", lambda: readiness(503, database="unreachable"), procs
            )
        finally:
            with _admin() as admin:
                admin.execute(f'ALTER DATABASE "{database}" ALLOW_CONNECTIONS true')
        await wait_until("ready again after the database", lambda: readiness(200), procs)
        assert worker.running
    finally:
        procs.kill_all()
        broker.stop()
