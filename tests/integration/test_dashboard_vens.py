"""Issue 13, the VEN endpoints the original dashboard reads, on every store
(memory, SQLite, PostgreSQL): ``GET /api/vens/summary``, ``GET /api/vens``
with ``location``, ``createdAt``, ``lastSeen`` and the whole fleet, and the
VEN ping whose pong shows as the VEN's last round trip.

The shapes below are written down from the dashboard's own types
(``ecs-frontend/src/hooks/useApi.ts`` of siddharthshah87/grid-services).
"""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from typing import Any

import pytest
from tests.integration import test_api_endpoints as api
from tests.integration.test_api_endpoints import T0, Rig, metering

from adapters.mqtt.commands import command_payload
from adapters.mqtt.payloads import TelemetryWire, to_telemetry_sample
from gridcore.summary import MAX_FLEET_PAGE

rig = api.rig  # the fixture: the API over memory, SQLite and PostgreSQL

# interface VenSummaryItem: every field, and what JSON type the dashboard expects.
VEN_SUMMARY_ITEM = {
    "id": str,
    "name": str,
    "location": str,  # "lat, lon": null when gridcore knows no position
    "status": str,  # "online" | "offline" | "maintenance" | string
    "controllablePower": float,  # kW
    "currentPower": float,  # kW
    "address": str,  # null when gridcore knows no position
    "lastSeen": str,  # ISO 8601; null for a VEN never heard from
    "responseTime": float,  # ms; null until the VEN answered a command
}
NULLABLE_SUMMARY = {"location", "address", "lastSeen", "responseTime"}
# interface Ven (createdAt required, lastSeen and loads optional) and its parts.
VEN = {"id", "name", "status", "location", "metrics", "createdAt", "lastSeen", "loads"}
VEN_LOCATION = {"lat", "lon"}
VEN_METRICS = {"currentPowerKw", "shedAvailabilityKw", "activeEventId", "shedLoadIds"}
LOAD = {"id", "type", "capacityKw", "shedCapabilityKw", "currentPowerKw", "name"}


def _is_iso_utc(text: str) -> bool:
    return text.endswith("Z") and datetime.fromisoformat(text).tzinfo is not None


def _check_summary_item(item: dict[str, Any]) -> None:
    assert VEN_SUMMARY_ITEM.keys() <= item.keys()
    for key, kind in VEN_SUMMARY_ITEM.items():
        if item[key] is None:
            assert key in NULLABLE_SUMMARY, key
        elif kind is float:
            assert isinstance(item[key], int | float) and not isinstance(item[key], bool), key
        else:
            assert isinstance(item[key], kind), key
    if item["lastSeen"] is not None:
        assert _is_iso_utc(item["lastSeen"])


def _check_ven(ven: dict[str, Any]) -> None:
    assert ven.keys() >= VEN
    assert ven["location"] is None or ven["location"].keys() == VEN_LOCATION
    assert ven["metrics"].keys() >= VEN_METRICS
    assert all(load.keys() >= LOAD for load in ven["loads"])
    for key in ("createdAt", "lastSeen"):
        assert ven[key] is None or _is_iso_utc(ven[key])


async def _summary(rig: Rig) -> dict[str, dict[str, Any]]:
    answer = await rig.client.get("/api/vens/summary")
    assert answer.status_code == 200
    items = answer.json()
    assert isinstance(items, list)
    assert answer.headers["X-Total-Count"] == str(len(items))
    for item in items:
        _check_summary_item(item)
    return {item["id"]: item for item in items}


async def _vens(rig: Rig) -> dict[str, dict[str, Any]]:
    answer = await rig.client.get("/api/vens")
    assert answer.status_code == 200
    for ven in answer.json():
        _check_ven(ven)
    return {ven["id"]: ven for ven in answer.json()}


# --- GET /api/vens/summary --------------------------------------------------------


async def test_summary_is_the_fleet_not_a_ven_called_summary(rig: Rig) -> None:
    assert await _summary(rig) == {}  # was 404 "VEN 'summary' not found"
    await rig.ingest(metering("ven-001", T0))
    created = await rig.client.post(
        "/api/vens", json={"name": "Main Street", "location": {"lat": 37.42, "lon": -122.08}}
    )
    registered = created.json()["id"]
    summary = await _summary(rig)
    assert sorted(summary) == sorted(["ven-001", registered])
    assert summary["ven-001"] == {
        "id": "ven-001",
        "name": "ven-001",
        "location": None,  # registered from telemetry: no position is known
        "status": "online",
        "controllablePower": 5.0,  # circuit_1's shed capability
        "currentPower": 8.2,  # the panel's usedPowerKw
        "address": None,
        "lastSeen": "2024-10-23T16:13:20Z",
        "responseTime": None,  # never answered a command
        "createdAt": "2024-10-23T16:13:20Z",
    }
    assert summary[registered]["location"] == "37.420, -122.080"
    assert summary[registered]["address"] == "Lat 37.420 / Lon -122.080"
    assert summary[registered]["status"] == "offline"
    assert summary[registered]["lastSeen"] is None
    assert summary[registered]["currentPower"] == 0.0


async def _fleet_of_every_kind(rig: Rig) -> None:
    """VENs whose figures take every branch of the rules: a panel reading or
    not, critical and switched-off loads, configuration overriding a report,
    a configured load no longer reported, a VEN never heard from."""
    circuits = [
        {"id": "c1", "name": "EV", "currentKw": 7.2, "enabled": True, "critical": False},
        {"id": "c2", "name": "Fridge", "currentKw": 0.3, "enabled": True, "critical": True},
        {"id": "c3", "name": "Dryer", "currentKw": 0.0, "enabled": False, "critical": False},
        {"id": "c4", "name": "Range", "currentKw": 1.25, "enabled": True, "critical": False},
    ]
    loads = [
        {"loadId": "c1", "shedCapabilityKw": 7.2, "currentPowerKw": 7.2},
        {"loadId": "c2", "shedCapabilityKw": 0.3, "currentPowerKw": 0.3},
        {"loadId": "c3", "shedCapabilityKw": 4.0, "currentPowerKw": 0.0},
        {"loadId": "c4", "shedCapabilityKw": 1.0, "currentPowerKw": 1.25},
    ]
    panel = {**metering("ven-panel", T0), "circuits": circuits, "loads": loads}
    circuits_only = {k: v for k, v in panel.items() if k != "usedPowerKw"}
    await rig.ingest(panel, {**circuits_only, "venId": "ven-circuits"})
    # Configuration wins over the report: c4 made critical on ven-panel.
    patched = await rig.client.patch("/api/vens/ven-panel/loads/c4", json={"critical": True})
    assert patched.status_code == 200
    # ven-gone configures c1, then stops reporting it: configured, not reported.
    await rig.ingest({**metering("ven-gone", T0), "circuits": circuits[:1], "loads": loads[:1]})
    await rig.client.patch("/api/vens/ven-gone/loads/c1", json={"shedCapabilityKw": 2.5})
    later = T0 + timedelta(seconds=5)
    await rig.ingest({**metering("ven-gone", later), "circuits": circuits[3:], "loads": loads[3:]})
    await rig.client.post("/api/vens", json={"id": "ven-silent", "name": "Never heard"})


async def test_summary_agrees_with_the_ven_list(rig: Rig) -> None:
    """The SQL summary is the domain rule's twin: each figure equals what the
    VEN list (gridcore.summary, gridcore.ven) shows for the same VEN."""
    await _fleet_of_every_kind(rig)
    summary, vens = await _summary(rig), await _vens(rig)
    assert list(summary) == list(vens) == sorted(vens)  # id order, the same fleet
    for ven_id, ven in vens.items():
        item = summary[ven_id]
        assert item["controllablePower"] == ven["metrics"]["shedAvailabilityKw"], ven_id
        assert item["currentPower"] == round(ven["metrics"]["currentPowerKw"], 3), ven_id
        for key in ("id", "name", "status", "lastSeen", "createdAt"):
            assert item[key] == ven[key], (ven_id, key)
        assert item["responseTime"] == ven["responseTimeMs"], ven_id
    # And the rules themselves, by hand:
    assert summary["ven-panel"]["controllablePower"] == 7.2  # not c2 (critical), c3 (off), c4
    assert summary["ven-panel"]["currentPower"] == 8.2
    assert summary["ven-circuits"]["currentPower"] == 8.75  # no panel reading: the loads' sum
    assert summary["ven-circuits"]["controllablePower"] == 8.2  # c1 + c4
    assert summary["ven-gone"]["controllablePower"] == 3.5  # c4 reported + c1 configured
    assert summary["ven-silent"]["controllablePower"] == 0.0


async def test_summary_pages_like_the_other_lists(rig: Rig) -> None:
    await _fleet_of_every_kind(rig)
    page = await rig.client.get("/api/vens/summary?limit=2&offset=1")
    assert [item["id"] for item in page.json()] == ["ven-gone", "ven-panel"]
    assert page.headers["X-Total-Count"] == "4"
    too_many = await rig.client.get(f"/api/vens/summary?limit={MAX_FLEET_PAGE + 1}")
    assert too_many.status_code == 422


# --- GET /api/vens -------------------------------------------------------------------


async def test_ven_list_has_created_at_last_seen_and_only_known_positions(rig: Rig) -> None:
    await rig.ingest(metering("ven-001", T0))
    await rig.client.post(
        "/api/vens",
        json={"id": "ven-002", "name": "Placed", "location": {"lat": 51.5, "lon": -0.12}},
    )
    vens = await _vens(rig)
    assert vens["ven-001"]["location"] is None  # never made up
    assert vens["ven-001"]["createdAt"] == "2024-10-23T16:13:20Z"  # its first sample
    assert vens["ven-001"]["lastSeen"] == "2024-10-23T16:13:20Z"
    assert vens["ven-002"]["location"] == {"lat": 51.5, "lon": -0.12}
    assert vens["ven-002"]["createdAt"] == rig.clock.now().strftime("%Y-%m-%dT%H:%M:%SZ")
    assert vens["ven-002"]["lastSeen"] is None
    # A position set later (the remedy for the map) shows everywhere.
    await rig.client.patch("/api/vens/ven-001", json={"location": {"lat": 37.42, "lon": -122.08}})
    assert (await _vens(rig))["ven-001"]["location"] == {"lat": 37.42, "lon": -122.08}
    assert (await _summary(rig))["ven-001"]["location"] == "37.420, -122.080"


async def test_ven_list_answers_the_whole_fleet_by_default(rig: Rig) -> None:
    """The dashboard asks ``GET /api/vens`` without a limit and draws them all;
    past 1,000 the list is read in slices, still one answer."""
    at = T0
    raw = [metering(f"ven-{n:04d}", at, circuits=[], loads=[]) for n in range(1_001)]
    texts = [json.dumps(payload) for payload in raw]
    samples = [to_telemetry_sample(TelemetryWire.model_validate_json(t), t) for t in texts]
    await rig.storage.telemetry_store.append(samples)
    rig.clock.set(at + timedelta(seconds=10))
    answer = await rig.client.get("/api/vens")
    assert answer.headers["X-Total-Count"] == "1001"
    ids = [ven["id"] for ven in answer.json()]
    assert ids == [f"ven-{n:04d}" for n in range(1_001)]
    assert all(ven["status"] == "online" for ven in answer.json())
    page = await rig.client.get("/api/vens?limit=2&offset=999")
    assert [ven["id"] for ven in page.json()] == ["ven-0999", "ven-1000"]
    assert len((await rig.client.get("/api/vens/summary")).json()) == 1_001
    too_many = await rig.client.get(f"/api/vens?limit={MAX_FLEET_PAGE + 1}")
    assert too_many.status_code == 422


async def test_the_circuit_dialog_gets_its_day_of_history(rig: Rig) -> None:
    """``CircuitDetailDialog`` asks for 5,000 snapshots of one circuit (the
    original allowed that many) and its ``CircuitSnapshot`` type has ``type``,
    ``capacityKw`` and ``priority``; the answer names the VEN and the circuit."""
    await rig.ingest(*(metering("ven-001", T0 + n * timedelta(seconds=5)) for n in range(3)))
    start = (T0 - timedelta(hours=24)).isoformat().replace("+00:00", "Z")
    path = "/api/vens/ven-001/circuits/history"
    answer = await rig.client.get(f"{path}?load_id=circuit_3&start={start}&limit=5000")
    assert answer.status_code == 200
    body = answer.json()
    assert (body["venId"], body["loadId"], body["totalCount"]) == ("ven-001", "circuit_3", 3)
    stamps = [s["timestamp"] for s in body["snapshots"]]
    assert stamps == sorted(stamps, reverse=True)  # newest first, as the document says
    for snapshot in body["snapshots"]:
        assert snapshot.keys() >= {"type", "capacityKw", "priority", "loadId", "name"}
        assert snapshot["loadId"] == "circuit_3" and snapshot["name"] == "Pool Pump"
    every = (await rig.client.get(f"{path}?limit=5000")).json()
    assert every["loadId"] is None and every["totalCount"] == len(every["snapshots"]) > 3
    too_many = await rig.client.get(f"{path}?limit=5001")
    assert too_many.status_code == 422 and "5000" in too_many.json()["message"]


# --- the VEN ping -------------------------------------------------------------------


async def _ping(rig: Rig, ven_id: str) -> dict[str, Any]:
    answer = await rig.client.post(f"/api/vens/{ven_id}/ping")
    assert answer.status_code == 202
    return answer.json()


async def test_ping_goes_through_the_outbox_and_its_pong_is_the_round_trip(rig: Rig) -> None:
    await rig.ingest(metering("ven-001", T0))
    queued = await _ping(rig, "ven-001")
    assert queued["op"] == "ping" and queued["state"] == "pending"
    assert queued["topic"] == "ven/cmd/ven-001"
    assert queued["correlationId"].startswith("cmd-")
    assert rig.published.sent == []  # the API never talks to the broker

    await rig.dispatcher.run_once()  # the worker's relay
    (sent,) = rig.published.sent
    assert command_payload(sent) == {
        "op": "ping",
        "correlationId": queued["correlationId"],
        "venId": "ven-001",
    }
    rig.clock.advance(timedelta(milliseconds=250))
    # The original VEN's answer (volttron-ven): status "success" and pong: true.
    pong = {"op": "ping", "status": "success", "pong": True, "correlationId": sent.correlation_id}
    await rig.ack("ven-001", {**pong, "ts": int(rig.clock.now().timestamp())})

    ven = (await rig.client.get("/api/vens/ven-001")).json()
    assert ven["responseTimeMs"] == 250.0
    assert (await _summary(rig))["ven-001"]["responseTime"] == 250.0
    acks = (await rig.client.get("/api/vens/ven-001/acks")).json()["acks"]
    assert [a["correlationId"] for a in acks] == [sent.correlation_id]


async def test_the_newest_answer_is_the_response_time(rig: Rig) -> None:
    await rig.ingest(metering("ven-001", T0))
    first, second = await _ping(rig, "ven-001"), await _ping(rig, "ven-001")
    await rig.dispatcher.run_once()
    rig.clock.advance(timedelta(milliseconds=900))
    await rig.ack(
        "ven-001", {"op": "ping", "status": "pong", "correlationId": second["correlationId"]}
    )
    rig.clock.advance(timedelta(milliseconds=300))  # the older ping, answered later
    await rig.ack(
        "ven-001", {"op": "ping", "status": "pong", "correlationId": first["correlationId"]}
    )
    assert (await rig.client.get("/api/vens/ven-001")).json()["responseTimeMs"] == 1200.0
    assert (await _summary(rig))["ven-001"]["responseTime"] == 1200.0


async def test_ping_of_an_unknown_ven_is_404(rig: Rig) -> None:
    assert (await rig.client.post("/api/vens/ven-nope/ping")).status_code == 404


@pytest.mark.parametrize("path", ["/api/vens/summary", "/vens/summary"])
async def test_summary_on_both_paths(rig: Rig, path: str) -> None:
    assert (await rig.client.get(path)).json() == []
