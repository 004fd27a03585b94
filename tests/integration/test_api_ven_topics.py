"""004's future topics on the API, on every storage backend: a load PATCH
queues a configuration push (the outbox), the dispatcher publishes it on
``ven/config/{venId}``, the VEN's ACK confirms it and its telemetry shows it
applied; alerts are listed per VEN and for the fleet, with paging."""

from __future__ import annotations

import asyncio
import json
from datetime import timedelta

from tests.integration.test_api_endpoints import T0, Rig, metering, rig

from adapters.mqtt.commands import command_payload
from gridcore.alerts import Severity, VenAlert
from gridcore.correlation import CommandOp

__all__ = ["rig"]  # the fixture, on memory, SQLite and PostgreSQL


async def config(rig: Rig, ven_id: str = "ven-001") -> dict[str, object]:
    answer = await rig.client.get(f"/api/vens/{ven_id}/config")
    assert answer.status_code == 200, answer.text
    return answer.json()  # type: ignore[no-any-return]


async def test_a_load_patch_is_pushed_delivered_and_confirmed(rig: Rig) -> None:
    await rig.ingest(metering("ven-001", T0))
    assert (await config(rig))["state"] == "none"
    # Backend bookkeeping only (a name): nothing for the VEN to do, nothing pushed.
    named = await rig.client.patch("/api/vens/ven-001/loads/circuit_1", json={"name": "HVAC"})
    assert named.status_code == 200
    assert (await config(rig))["state"] == "none"

    patched = await rig.client.patch(
        "/api/vens/ven-001/loads/circuit_1", json={"enabled": False, "priority": 5}
    )
    assert patched.status_code == 200, patched.text
    pending = await config(rig)
    assert pending["state"] == "pending" and pending["attempts"] == 0
    desired = {"loadId": "circuit_1", "enabled": False, "priority": 5, "critical": None,
               "shedCapabilityKw": None}  # fmt: skip
    assert [ld["desired"] for ld in pending["loads"]] == [desired]  # type: ignore[index]
    # The VEN still reports circuit_1 on at priority 2.
    assert pending["inSync"] is False
    assert pending["loads"][0]["mismatched"] == ["enabled", "priority"]  # type: ignore[index]
    shadow = (await rig.client.get("/api/vens/ven-001/shadow")).json()
    assert shadow["state"]["desired"]["config"]["loads"] == [
        {"loadId": "circuit_1", "enabled": False, "priority": 5}
    ]

    await rig.dispatcher.run_once()
    (sent,) = [c for c in rig.published.sent if c.op is CommandOp.CONFIG]
    assert command_payload(sent) == {
        "op": "config", "correlationId": pending["correlationId"], "venId": "ven-001",
        "timestamp": int(rig.clock.now().timestamp()),
        "loads": [{"loadId": "circuit_1", "enabled": False, "priority": 5}],
    }  # fmt: skip
    assert (await config(rig))["state"] == "delivered"

    await rig.ack(
        "ven-001",
        {"op": "config", "status": "applied", "correlationId": sent.correlation_id},
    )
    confirmed = await config(rig)
    assert (confirmed["state"], confirmed["ackStatus"], confirmed["attempts"]) == (
        "confirmed", "applied", 1,
    )  # fmt: skip
    loads = metering("ven-001", T0 + timedelta(seconds=20))["loads"]
    loads = [{**ld, "enabled": False, "priority": 5} if ld["loadId"] == "circuit_1" else ld
             for ld in loads]  # fmt: skip
    await rig.ingest(metering("ven-001", T0 + timedelta(seconds=20), loads=loads))
    assert (await config(rig))["inSync"] is True


async def test_a_newer_push_supersedes_an_open_one_and_carries_both_changes(rig: Rig) -> None:
    await rig.ingest(metering("ven-001", T0))
    await rig.client.patch("/api/vens/ven-001/loads/circuit_1", json={"priority": 4})
    first = (await config(rig))["correlationId"]
    await rig.client.patch("/api/vens/ven-001/loads/circuit_3", json={"shedCapabilityKw": 1.5})
    second = await config(rig)
    assert second["correlationId"] != first and second["state"] == "pending"
    assert [ld["desired"] for ld in second["loads"]] == [  # type: ignore[union-attr]
        {"loadId": "circuit_1", "enabled": None, "priority": 4, "critical": None,
         "shedCapabilityKw": None},
        {"loadId": "circuit_3", "enabled": None, "priority": None, "critical": None,
         "shedCapabilityKw": 1.5},
    ]  # fmt: skip
    await rig.dispatcher.run_once()
    assert [c.correlation_id for c in rig.published.sent] == [second["correlationId"]]
    async with rig.storage.uow_factory() as uow:
        old = await uow.commands.get(str(first))
    assert old is not None and old.state.value == "cancelled"
    # By hand: the same configuration again, as a new push.
    again = await rig.client.post("/api/vens/ven-001/config")
    assert again.status_code == 202
    assert again.json()["state"] == "pending"
    assert again.json()["loads"] == second["loads"]
    assert (await rig.client.post("/api/vens/ven-404/config")).status_code == 404


async def test_nothing_to_push_by_hand_is_a_clear_422(rig: Rig) -> None:
    await rig.ingest(metering("ven-001", T0))
    answer = await rig.client.post("/api/vens/ven-001/config")
    assert answer.status_code == 422
    assert "nothing was ever configured" in answer.text
    assert (await rig.client.get("/api/vens/ven-404/config")).status_code == 404


async def test_alerts_are_listed_per_ven_and_for_the_fleet(rig: Rig) -> None:
    await rig.ingest(metering("ven-001", T0))
    store = rig.storage.alerts
    assert store is not None
    raised = [
        VenAlert("ven-001", T0 + timedelta(seconds=n), Severity.WARNING if n % 2 else
                 Severity.CRITICAL, "overcurrent", f"alert {n}", "circuit_1",
                 {"currentAmps": 30 + n}, T0)
        for n in range(5)
    ] + [VenAlert("ven-xyz", T0, Severity.INFO, "restart")]  # fmt: skip
    assert await store.record_alerts(raised) == 6
    assert await store.record_alerts(raised[:2]) == 0  # re-delivered: stored once

    page = await rig.client.get("/api/vens/ven-001/alerts", params={"limit": 2, "offset": 1})
    assert page.headers["X-Total-Count"] == "5"
    assert [a["message"] for a in page.json()] == ["alert 3", "alert 2"]  # newest first
    first = page.json()[0]
    assert first == {
        "venId": "ven-001", "timestamp": "2024-10-23T16:13:23Z", "severity": "warning",
        "code": "overcurrent", "message": "alert 3", "loadId": "circuit_1",
        "details": {"currentAmps": 33}, "receivedAt": "2024-10-23T16:13:20Z",
    }  # fmt: skip
    critical = await rig.client.get("/api/alerts", params={"severity": "critical"})
    assert critical.headers["X-Total-Count"] == "3"
    fleet = await rig.client.get("/api/alerts")
    assert fleet.headers["X-Total-Count"] == "6"  # unregistered VENs' alerts too
    since = await rig.client.get(
        "/api/alerts", params={"venId": "ven-001", "start": "2024-10-23T16:13:24Z"}
    )
    assert [a["message"] for a in since.json()] == ["alert 4"]
    assert (await rig.client.get("/api/alerts", params={"severity": "panic"})).status_code == 422
    assert (await rig.client.get("/api/vens/ven-xyz/alerts")).status_code == 404
    assert (
        json.loads((await rig.client.get("/api/vens/ven-001/alerts?limit=1")).text)[0]["message"]
        == "alert 4"
    )


async def test_concurrent_patches_lose_no_instruction(rig: Rig) -> None:
    """Each push lays its change over the newest one: two at once must not
    each start from the same one (pushes are serialised)."""
    await rig.ingest(metering("ven-001", T0))
    answers = await asyncio.gather(
        *(
            rig.client.patch(f"/api/vens/ven-001/loads/{load_id}", json={"priority": n})
            for n, load_id in enumerate(["circuit_1", "circuit_3"] * 3, start=1)
        )
    )
    assert {a.status_code for a in answers} == {200}
    newest = await config(rig)
    loads = newest["loads"]
    assert {ld["loadId"] for ld in loads} == {"circuit_1", "circuit_3"}  # type: ignore[union-attr]
