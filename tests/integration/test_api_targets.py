"""Targeting through gridcore's own API (gridcore.targeting), on every storage
backend (memory, SQLite, PostgreSQL): VENs and loads are granted targets,
``POST /api/events`` takes optional targets, and a targeted event is
allocated and sent to the VENs it targets only; without targets, the whole
fleet, as the documents' events are. Then the same over the in-memory
broker: the commands on ``ven/cmd/+`` go to the group's VENs only."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Callable
from datetime import timedelta
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from tests.integration import test_api_endpoints
from tests.integration.test_api_endpoints import T0, Rig, metering

from adapters.memory.broker import InMemoryBroker
from adapters.mqtt.commands import TransportCommandPublisher
from adapters.system import ManualClock, SequentialIds
from entrypoints.container import Storage, container_for
from entrypoints.settings import Settings
from gridcore.correlation import CommandOp
from gridcore.dispatch import Dispatcher

# The API over every storage backend, with a recording publisher and a manual clock.
rig = test_api_endpoints.rig

FLEET = ("ven-001", "ven-002", "ven-003", "ven-004")


def event_body(rig_clock: ManualClock, kw: float, **extra: Any) -> dict[str, Any]:
    now = rig_clock.now()
    return {
        "startTime": now.isoformat(),
        "endTime": (now + timedelta(hours=1)).isoformat(),
        "requestedReductionKw": kw,
        **extra,
    }


async def fleet_of_four(client: httpx.AsyncClient, ingest: Callable[..., Any]) -> None:
    """Four VENs online, each able to shed 5 kW (the metering example);
    ven-001 and ven-002 in group ``north``, ven-003 on ``feeder-7`` through
    its circuit_3's target, ven-004 granted nothing."""
    await ingest(*(metering(v, T0) for v in FLEET))
    for ven_id in ("ven-001", "ven-002"):
        answer = await client.patch(f"/api/vens/{ven_id}", json={"targets": ["north"]})
        assert answer.status_code == 200 and answer.json()["targets"] == ["north"]
    load = await client.patch("/api/vens/ven-003/loads/circuit_3", json={"targets": ["feeder-7"]})
    assert load.status_code == 200 and load.json()["targets"] == ["feeder-7"]


def event_commands(rig: Rig, event_id: str) -> dict[str, float]:
    return {
        c.ven_id: c.shed_kw or 0.0
        for c in rig.published.sent
        if c.op is CommandOp.EVENT and c.event_id == event_id
    }


async def test_a_group_event_is_allocated_and_sent_to_that_group_only(rig: Rig) -> None:
    await fleet_of_four(rig.client, rig.ingest)
    created = await rig.client.post(
        "/api/events", json=event_body(rig.clock, 4.0, targets=["north"])
    )
    assert created.status_code == 201, created.text
    event = created.json()
    assert event["targets"] == ["north"]
    await rig.dispatcher.run_once()
    assert event_commands(rig, event["id"]) == {"ven-001": 2.0, "ven-002": 2.0}
    for command in [c for c in rig.published.sent if c.event_id == event["id"]]:
        await rig.ack(
            command.ven_id,
            {
                "op": "event",
                "status": "accepted",
                "correlationId": command.correlation_id,
                "event_id": event["id"],
                "actual_shed_kw": command.shed_kw,
                "ts": int(rig.clock.now().timestamp()),
            },
        )
    detail = (await rig.client.get(f"/api/events/{event['id']}")).json()
    assert detail["targets"] == ["north"] and detail["actualReductionKw"] == 4.0
    assert sorted(v["venId"] for v in detail["vens"]) == ["ven-001", "ven-002"]
    listed = (await rig.client.get("/api/events")).json()
    assert [e["targets"] for e in listed] == [["north"]]


async def test_load_and_id_targets_reach_their_vens_and_no_targets_the_fleet(rig: Rig) -> None:
    await fleet_of_four(rig.client, rig.ingest)
    by_load = await rig.client.post(
        "/api/events", json=event_body(rig.clock, 4.0, targets=["feeder-7", "ven-004"])
    )
    await rig.dispatcher.run_once()
    assert event_commands(rig, by_load.json()["id"]) == {"ven-003": 2.0, "ven-004": 2.0}
    rig.clock.set(rig.clock.now() + timedelta(hours=2))
    await rig.ingest(*(metering(v, rig.clock.now()) for v in FLEET))
    await rig.dispatcher.run_once()  # the first one ends
    whole = await rig.client.post("/api/events", json=event_body(rig.clock, 8.0))
    assert whole.status_code == 201 and whole.json()["targets"] == []
    await rig.dispatcher.run_once()
    assert event_commands(rig, whole.json()["id"]) == {v: 2.0 for v in FLEET}


async def test_targets_matching_no_ven_are_refused_with_422(rig: Rig) -> None:
    await fleet_of_four(rig.client, rig.ingest)
    answer = await rig.client.post(
        "/api/events", json=event_body(rig.clock, 4.0, targets=["nroth"])
    )
    assert answer.status_code == 422
    assert "targets match no VEN" in answer.json()["message"]
    assert answer.json()["detail"][0]["loc"] == ["targets"]
    assert (await rig.client.get("/api/events")).json() == []


@pytest.mark.parametrize(
    ("targets", "why"),
    [
        ([""], "at least 1 character"),
        (["x" * 129], "at most 128 characters"),
        ([7], "valid string"),
        ([None], "valid string"),
        ([" group1"], "surrounding whitespace"),
        (["group1\n"], "surrounding whitespace"),
        ("group1", "valid list"),
        (None, "valid list"),
        ([{"type": "GROUP", "values": ["group1"]}], "valid string"),
    ],
)
async def test_bad_targets_are_422_naming_the_field(rig: Rig, targets: Any, why: str) -> None:
    await rig.ingest(metering("ven-001", T0))
    body = {"targets": targets}
    answers = [
        await rig.client.post("/api/events", json=event_body(rig.clock, 1.0, **body)),
        await rig.client.post("/api/vens", json={"name": "Home", **body}),
        await rig.client.patch("/api/vens/ven-001", json=body),
        await rig.client.patch("/api/vens/ven-001/loads/circuit_3", json=body),
    ]
    for answer in answers:
        if targets is None and answer.request.method == "PATCH":
            # PATCH: null leaves the targets as they are (absent fields stay).
            assert answer.status_code == 200, answer.text
            continue
        assert answer.status_code == 422, answer.text
        assert "targets" in answer.json()["message"] and why in answer.json()["message"]
    assert (await rig.client.get("/api/events")).json() == []
    assert (await rig.client.get("/api/vens/ven-001")).json()["targets"] == []


async def test_ven_targets_are_granted_replaced_and_cleared(rig: Rig) -> None:
    created = await rig.client.post(
        "/api/vens",
        json={"id": "ven-123", "name": "Home", "targets": ["north", "postal-94110", "north"]},
    )
    assert created.status_code == 201
    assert created.json()["targets"] == ["north", "postal-94110"]  # repeats dropped
    assert (await rig.client.get("/api/vens/ven-123")).json()["targets"] == [
        "north",
        "postal-94110",
    ]
    renamed = await rig.client.patch("/api/vens/ven-123", json={"name": "Other"})
    assert renamed.json()["targets"] == ["north", "postal-94110"]  # absent: unchanged
    moved = await rig.client.patch("/api/vens/ven-123", json={"targets": ["south"]})
    assert moved.json()["targets"] == ["south"]
    cleared = await rig.client.patch("/api/vens/ven-123", json={"targets": []})
    assert cleared.json()["targets"] == []
    plain = await rig.client.post("/api/vens", json={"id": "ven-456", "name": "Plain"})
    assert plain.json()["targets"] == []
    listed = {v["id"]: v["targets"] for v in (await rig.client.get("/api/vens")).json()}
    assert listed == {"ven-123": [], "ven-456": []}


# --- over the in-memory broker -----------------------------------------------------


@pytest.fixture
async def broker_rig(
    api_app: Callable[..., FastAPI],
) -> AsyncIterator[tuple[Rig, InMemoryBroker]]:
    """The API and the dispatcher over the in-memory store, the dispatcher
    publishing through the MQTT command publisher onto the in-memory broker."""
    settings = Settings(database_url="memory://", gridcore_auth="disabled")
    clock = ManualClock(T0)
    container = container_for(settings, clock=clock, ids=SequentialIds())
    storage: Storage = container.storage()
    broker = InMemoryBroker()
    publisher = TransportCommandPublisher(broker.connect("gridcore"))
    dispatcher = Dispatcher(
        storage.uow_factory, storage.telemetry_queries, publisher, clock, container.policy()
    )
    transport = httpx.ASGITransport(app=api_app(settings, container))
    try:
        async with httpx.AsyncClient(transport=transport, base_url="http://gridcore") as client:
            rig = Rig(client, clock, storage, dispatcher, test_api_endpoints.RecordingPublisher())
            yield rig, broker
    finally:
        await storage.close()


async def test_a_group_event_reaches_the_groups_vens_on_the_broker(
    broker_rig: tuple[Rig, InMemoryBroker],
) -> None:
    rig, broker = broker_rig
    await fleet_of_four(rig.client, rig.ingest)
    watcher = broker.connect("watcher")  # sees every command to every VEN
    await watcher.subscribe("ven/cmd/+", qos=1)
    created = await rig.client.post(
        "/api/events", json=event_body(rig.clock, 4.0, targets=["north"])
    )
    report = await rig.dispatcher.run_once()
    assert report.published == 2
    seen: dict[str, dict[str, Any]] = {}
    stream = watcher.messages()
    for _ in range(2):
        message = await asyncio.wait_for(anext(stream), 2.0)
        seen[message.topic] = json.loads(message.payload)
    assert sorted(seen) == ["ven/cmd/ven-001", "ven/cmd/ven-002"]
    assert {body["event_id"] for body in seen.values()} == {created.json()["id"]}
    assert [body["shed_kw"] for body in seen.values()] == [2.0, 2.0]
    with pytest.raises(TimeoutError):  # nothing for ven-003 or ven-004
        await asyncio.wait_for(anext(stream), 0.2)
