"""Contract tests of the event endpoints the original dashboard and VEN web
page read (issue 13), on every storage backend, with the shapes written down
from the clients' own types (``ecs-frontend/src/hooks/useApi.ts``: ``Event``,
``EventDetail``, ``VenEventAck``; the original backend's ``EventMetrics``).

Values are checked against what was stored: the ledger's commands and ACKs and
the VENs' telemetry, never against constants.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from tests.integration import test_api_endpoints
from tests.integration.test_api_endpoints import Rig, metering

from entrypoints.api.routers import events as events_router
from gridcore.events import DrEvent

# --- the clients' types ------------------------------------------------------------
# A value's Python types as JSON gives them; `None` in a tuple: the type is
# optional (`x?: T`) or nullable in gridcore's answer.

NUMBER = (int, float)
EVENT = {  # useApi.ts `Event`
    "id": str,
    "status": str,
    "startTime": str,
    "endTime": str,
    "requestedReductionKw": NUMBER,
    "actualReductionKw": NUMBER,
}
EVENT_METRICS = {  # the original backend's `EventMetrics`, read by `Event`'s optional fields
    "currentReductionKw": NUMBER,
    "vensResponding": int,
    "avgResponseMs": (int, type(None)),
}
EVENT_DETAIL_VEN = {  # useApi.ts `EventDetail.vens[]`
    "venId": str,
    "venName": (str, type(None)),
    "shedKw": (*NUMBER, type(None)),
    "status": str,
}
VEN_EVENT_ACK = {  # useApi.ts `VenEventAck`, as VenDetailPage and its dialog read it
    "eventId": (str, type(None)),
    "venId": str,
    "timestamp": str,
    "status": str,
    "circuitsCurtailed": list,
}
CIRCUIT_LONG = {  # `VenEventAck.circuitsCurtailed[]`; 002's shape
    "id": str,
    "name": str,  # the VEN page calls name.split(' ')
    "breaker_amps": (*NUMBER, type(None)),
    "original_kw": (*NUMBER, type(None)),
    "curtailed_kw": NUMBER,
    "final_kw": (*NUMBER, type(None)),
    "critical": (bool, type(None)),
}
CIRCUIT_SHORT = {"loadId": str, "name": str, "shedKw": NUMBER}  # 000's shape


def conforms(item: dict[str, Any], shape: dict[str, Any]) -> None:
    missing = shape.keys() - item.keys()
    assert not missing, f"missing {sorted(missing)} in {item}"
    for key, kind in shape.items():
        assert isinstance(item[key], kind), f"{key}={item[key]!r} is not {kind}"


# --- helpers ---------------------------------------------------------------------

# The API over every storage backend, with a recording publisher and a manual clock.
rig = test_api_endpoints.rig

T0 = datetime(2024, 10, 23, 16, 0, tzinfo=UTC)


async def start_event(rig: Rig, kw: float = 10.0) -> str:
    now = rig.clock.now()
    body = {
        "startTime": now.isoformat(),
        "endTime": (now + timedelta(hours=1)).isoformat(),
        "requestedReductionKw": kw,
    }
    event_id: str = (await rig.client.post("/api/events", json=body)).json()["id"]
    await rig.dispatcher.run_once()
    return event_id


def sent_to(rig: Rig, ven_id: str) -> str:
    return next(c.correlation_id for c in reversed(rig.published.sent) if c.ven_id == ven_id)


def ev_charger(kw: float, **changes: Any) -> dict[str, Any]:
    return {
        "id": "ev1",
        "name": "EV Charger",
        "breakerAmps": 40,
        "currentKw": kw,
        "critical": False,
        **changes,
    }


# --- GET /api/vens/{venId}/events --------------------------------------------------


async def test_ven_events_are_an_array_with_both_circuit_shapes_and_measured_readings(
    rig: Rig,
) -> None:
    await rig.ingest(metering("ven-001", T0, circuits=[ev_charger(7.2)], eventId=None))
    event_id = await start_event(rig, kw=5.0)
    acked_at = T0 + timedelta(seconds=12)
    rig.clock.set(acked_at)
    await rig.ack(
        "ven-001",
        {  # 004's short shape: no original or final kW
            "op": "event",
            "status": "accepted",
            "event_id": event_id,
            "correlationId": sent_to(rig, "ven-001"),
            "actual_shed_kw": 4.5,
            "circuits_curtailed": [{"loadId": "ev1", "name": "EV Charger", "shedKw": 4.5}],
            "ts": int(acked_at.timestamp()),
        },
    )
    after = T0 + timedelta(seconds=15)
    await rig.ingest(metering("ven-001", after, circuits=[ev_charger(2.7)], eventId=event_id))

    answer = await rig.client.get("/api/vens/ven-001/events")
    assert answer.status_code == 200 and answer.headers["X-Total-Count"] == "1"
    events = answer.json()
    assert isinstance(events, list)  # the clients call .map and .sort on it
    (item,) = events
    conforms(item, VEN_EVENT_ACK)
    assert item["eventId"] == event_id and item["venId"] == "ven-001"
    (circuit,) = item["circuitsCurtailed"]
    conforms(circuit, CIRCUIT_LONG)
    conforms(circuit, CIRCUIT_SHORT)
    assert circuit == {
        "loadId": "ev1",
        "id": "ev1",
        "name": "EV Charger",
        "shedKw": 4.5,
        "curtailed_kw": 4.5,
        "original_kw": 7.2,  # the VEN's sample before its ACK
        "final_kw": 2.7,  # its sample after it
        "breaker_amps": 40,
        "critical": False,
    }


async def test_what_the_ack_reports_wins_and_what_nobody_reported_stays_null(rig: Rig) -> None:
    await rig.ingest(metering("ven-001", T0, circuits=[ev_charger(7.2)], eventId=None))
    event_id = await start_event(rig, kw=5.0)
    long = {  # 002's long shape, with its own readings
        "id": "ev1",
        "name": "Garage EV",
        "breaker_amps": 50,
        "original_kw": 8.0,
        "curtailed_kw": 3.0,
        "final_kw": 5.0,
        "critical": False,
    }
    late = T0 + timedelta(minutes=30)  # no telemetry within the offline window of it
    rig.clock.set(late)
    await rig.ack(
        "ven-001",
        {
            "op": "event",
            "status": "accepted",
            "event_id": event_id,
            "correlationId": sent_to(rig, "ven-001"),
            "circuits_curtailed": [long, {"loadId": "dryer", "shedKw": 1.0}],
            "ts": int(late.timestamp()),
        },
    )
    (item,) = (await rig.client.get("/api/vens/ven-001/events")).json()
    reported, unknown = item["circuitsCurtailed"]
    assert {k: reported[k] for k in long} == long
    assert (reported["loadId"], reported["shedKw"]) == ("ev1", 3.0)
    assert unknown["original_kw"] is None and unknown["final_kw"] is None
    assert unknown["breaker_amps"] is None and unknown["critical"] is None
    assert unknown["name"] == "dryer"  # never named anywhere: its id, so the page can split it


async def test_ven_events_page_with_the_total_in_the_header(rig: Rig) -> None:
    await rig.ingest(metering("ven-001", T0, eventId=None))
    for n in range(3):
        rig.clock.set(T0 + timedelta(minutes=n + 1))
        await rig.ack("ven-001", {"op": "ping", "status": "success", "pong": True})
    page = await rig.client.get("/api/vens/ven-001/events?limit=2")
    assert page.headers["X-Total-Count"] == "3" and len(page.json()) == 2
    assert (await rig.client.get("/api/vens/nobody/events")).status_code == 404


# --- GET /api/events/{id}, /api/events/current, /api/events/{id}/metrics -------------


async def two_vens_answer(rig: Rig) -> str:
    """ven-001 accepts after 2 s (shedding 5 kW), ven-002 refuses after 0.5 s."""
    await rig.ingest(
        metering("ven-001", T0, eventId=None, shedPowerKw=0.0),
        metering("ven-002", T0, eventId=None, shedPowerKw=0.0),
    )
    async with rig.storage.uow_factory() as uow:
        ven = await uow.vens.get("ven-001")
        assert ven is not None
        await uow.vens.update(replace(ven, name="Main Street Facility"))
        await uow.commit()
    event_id = await start_event(rig)
    sent = rig.clock.now()
    rig.clock.set(sent + timedelta(milliseconds=500))
    await rig.ack(
        "ven-002",
        {"op": "event", "status": "busy", "correlationId": sent_to(rig, "ven-002")},
    )
    rig.clock.set(sent + timedelta(seconds=2))
    await rig.ack(
        "ven-001",
        {"op": "event", "status": "accepted", "correlationId": sent_to(rig, "ven-001")},
    )
    return event_id


async def test_event_detail_vens_carry_name_delivered_kw_and_answer(rig: Rig) -> None:
    event_id = await two_vens_answer(rig)
    detail = (await rig.client.get(f"/api/events/{event_id}")).json()
    conforms(detail, {**EVENT, **EVENT_METRICS, "vens": list})
    for ven in detail["vens"]:
        conforms(ven, EVENT_DETAIL_VEN)
        # The fields the documents show stay.
        assert {"correlationId", "allocatedKw", "commandState", "ackStatus", "deliveredKw"} <= (
            ven.keys()
        )
    by_id = {v["venId"]: v for v in detail["vens"]}
    assert by_id["ven-001"]["venName"] == "Main Street Facility"
    assert by_id["ven-002"]["venName"] == "ven-002"  # registered from its telemetry
    assert (by_id["ven-001"]["status"], by_id["ven-001"]["shedKw"]) == ("accepted", 5.0)
    assert (by_id["ven-002"]["status"], by_id["ven-002"]["shedKw"]) == ("rejected", 0.0)
    assert by_id["ven-002"]["ackStatus"] == "busy"  # what the VEN said, unchanged
    # The page's "Actual Shed" sums shedKw: it is the event's actualReductionKw.
    assert sum(v["shedKw"] for v in detail["vens"]) == detail["actualReductionKw"]


async def test_current_event_and_metrics_are_measured(rig: Rig) -> None:
    event_id = await two_vens_answer(rig)
    # ven-001 reports its shed every 5 s; ven-002 reports none.
    now = rig.clock.now()
    await rig.ingest(
        *(
            metering("ven-001", now - timedelta(seconds=5 * n), eventId=event_id, shedPowerKw=4.8)
            for n in range(12)
        ),
        metering("ven-002", now, eventId=None, shedPowerKw=0.0),
    )
    current = (await rig.client.get("/api/events/current")).json()
    conforms(current, {**EVENT, **EVENT_METRICS})
    expected = {
        # kW now: ven-001's newest report, not the sum of its 12 samples (57.6)
        "currentReductionKw": 4.8,
        "vensResponding": 1,  # accepted; ven-002 refused
        "avgResponseMs": 1250,  # (2,000 + 500) / 2, first send to ACK
    }
    assert {k: current[k] for k in expected} == expected
    metrics = (await rig.client.get(f"/api/events/{event_id}/metrics")).json()
    assert metrics == expected
    conforms(metrics, EVENT_METRICS)
    # The store's aggregation agrees with the ledger's rule (the detail computes
    # it from the commands).
    detail = (await rig.client.get(f"/api/events/{event_id}")).json()
    assert {k: detail[k] for k in expected} == expected

    # A VEN that stops naming the event stops counting; one silent past the
    # offline window too.
    rig.clock.set(now + timedelta(seconds=61))
    assert (await rig.client.get("/api/events/current")).json()["currentReductionKw"] == 0.0


async def test_an_ended_event_shows_the_reduction_when_it_ended(rig: Rig) -> None:
    event_id = await two_vens_answer(rig)
    now = rig.clock.now()
    await rig.ingest(metering("ven-001", now, eventId=event_id, shedPowerKw=4.8))
    assert (await rig.client.post(f"/api/events/{event_id}/stop")).status_code == 200
    # Afterwards the VEN reports no event and sheds nothing.
    later = now + timedelta(minutes=10)
    await rig.ingest(metering("ven-001", later, eventId=None, shedPowerKw=0.0))
    assert (await rig.client.get("/api/events/current")).json() is None
    metrics = (await rig.client.get(f"/api/events/{event_id}/metrics")).json()
    assert metrics["currentReductionKw"] == 4.8 and metrics["vensResponding"] == 1
    assert (await rig.client.get("/api/events/evt-0000abcd/metrics")).status_code == 404


async def test_before_any_answer_nothing_is_made_up(rig: Rig) -> None:
    await rig.ingest(metering("ven-001", T0, eventId=None))
    event_id = await start_event(rig, kw=5.0)
    metrics = (await rig.client.get(f"/api/events/{event_id}/metrics")).json()
    assert metrics == {"currentReductionKw": 0.0, "vensResponding": 0, "avgResponseMs": None}
    (ven,) = (await rig.client.get(f"/api/events/{event_id}")).json()["vens"]
    assert (ven["status"], ven["shedKw"]) == ("sent", None)


# --- GET /api/events/history ---------------------------------------------------------


async def store_events(rig: Rig, starts: list[datetime]) -> list[DrEvent]:
    stored = [
        DrEvent(
            id=f"evt-{n:08x}",
            start_time=start,
            end_time=start + timedelta(minutes=30),
            requested_reduction_kw=1.0 + n,
        )
        for n, start in enumerate(starts)
    ]
    async with rig.storage.uow_factory() as uow:
        for event in stored:
            await uow.events.add(event)
        await uow.commit()
    return stored


def newest_first(events: list[DrEvent]) -> list[str]:
    return [e.id for e in sorted(events, key=lambda e: (e.start_time, e.id), reverse=True)]


async def test_history_is_every_event_in_the_range_read_in_bounded_batches(
    rig: Rig, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(events_router, "HISTORY_BATCH", 3)
    # Ties on the start time: the batches must neither repeat nor skip one.
    starts = [T0 + timedelta(hours=n // 2) for n in range(8)]
    stored = await store_events(rig, starts)
    whole = await rig.client.get("/api/events/history")  # what the dashboard sends
    assert whole.status_code == 200 and whole.headers["X-Total-Count"] == "8"
    assert [e["id"] for e in whole.json()] == newest_first(stored)
    for item in whole.json():
        conforms(item, EVENT)

    ranged = await rig.client.get(
        "/api/events/history?start=2024-10-23T17:00:00Z&end=2024-10-23T19:00:00Z"
    )
    inside = [e for e in stored if e.end_time > starts[2] and e.start_time < starts[6]]
    assert [e["id"] for e in ranged.json()] == newest_first(inside)
    assert ranged.headers["X-Total-Count"] == str(len(inside))

    page = await rig.client.get("/api/events/history?limit=2&offset=1")
    assert [e["id"] for e in page.json()] == newest_first(stored)[1:3]
    assert page.headers["X-Total-Count"] == "8"
    empty = await rig.client.get("/api/events/history?start=2030-01-01T00:00:00Z")
    assert empty.json() == [] and empty.headers["X-Total-Count"] == "0"


async def test_history_is_no_longer_cut_at_a_page(rig: Rig) -> None:
    starts = [T0 + timedelta(minutes=n) for n in range(1005)]
    stored = await store_events(rig, starts)
    whole = await rig.client.get("/api/events/history")
    assert len(whole.json()) == 1005 and whole.headers["X-Total-Count"] == "1005"
    assert [e["id"] for e in whole.json()] == newest_first(stored)
