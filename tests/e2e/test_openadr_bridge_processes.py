"""The OpenADR bridge end to end, with real processes on PostgreSQL and
Mosquitto: `gridcore serve` (the VTN), `gridcore worker` (dispatch, ACKs,
the bridge's reports) and simulated MQTT VENs (`gridcore ven`).

A BL, over HTTP, grants a group to two OpenADR ven objects (venName = the
gridcore VEN id) and creates a DISPATCH_SETPOINT_RELATIVE event targeted at
that group; a third VEN holds the group through gridcore's own targets and a
fourth holds nothing. Exactly the three get the event on ``ven/cmd``; their
ACKs come back as the OpenADR report the BL reads, one resource per VEN, as
the program's report descriptors ask. gridcore's own event (POST /api/events)
is served to the BL as an OpenADR event of gridcore's program.

A device (an OpenADR VEN client, no MQTT) whose resource declares what it
can shed is allocated its share beside two MQTT VENs, reads it as its own
share event, reports, and its report counts towards the event's delivered kW."""

from __future__ import annotations

import asyncio
from collections import Counter
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from tests import openadr_schema
from tests.e2e.test_api_serve import _free_port
from tests.e2e.test_dispatch_processes import (
    Backend,
    Fleet,
    Processes,
    backend,
    command_tap,
    fleet,
    fleet_online,
    processes,
    start_vens,
    start_worker,
    wait_until,
)

from gridcore.bridge import bridged_event_id
from gridcore.fleet import update_ven

pytestmark = [
    pytest.mark.mosquitto,
    pytest.mark.postgres,
    pytest.mark.skipif(not openadr_schema.available(), reason="openadr3.yaml not found"),
]
__all__ = ["backend", "fleet", "processes"]  # the fixtures this module uses

BL_SECRET = "bl-secret-bridge-0123456789"
CONTROL = "control-token-bridge-0123456789"
SHED = "DISPATCH_SETPOINT_RELATIVE"
DEVICE = "device-thermostat"  # an OpenADR VEN client: no MQTT, no gridcore VEN of its name
DEVICE_SECRET = "device-secret-bridge-0123456789"


def _checked(response: httpx.Response, status: int) -> Any:
    assert response.status_code == status, response.text
    path = response.request.url.path.removeprefix("/openadr3")
    openadr_schema.check(path, response.request.method, status, response.json())
    return response.json()


async def _serving(processes: Processes, port: int) -> None:
    processes.start(
        "serve",
        ["serve", "--port", str(port)],
        GRIDCORE_OPENADR_CLIENTS=f"bl:utility:{BL_SECRET},ven:{DEVICE}:{DEVICE_SECRET}",
        GRIDCORE_API_TOKENS=f"control:{CONTROL}",
    )

    async def up() -> bool:
        try:
            async with httpx.AsyncClient() as client:
                return (await client.get(f"http://127.0.0.1:{port}/health")).status_code == 200
        except httpx.HTTPError:
            return False

    await wait_until("gridcore serve to answer", up, processes, within=30)


async def test_an_openadr_group_event_reaches_that_group_and_comes_back_as_a_report(
    fleet: Fleet, backend: Backend, processes: Processes
) -> None:
    vens = sorted(fleet.ven_ids(4))  # prefix-1 .. prefix-4
    group = f"{fleet.prefix}-north"
    start_worker(processes, "worker", GRIDCORE_OPENADR_REPORT_SECONDS="1")
    start_vens(processes, fleet, len(vens))
    port = _free_port()
    await _serving(processes, port)
    vtn = f"http://127.0.0.1:{port}/openadr3"
    async with command_tap(fleet) as tap, httpx.AsyncClient(timeout=10) as http:
        await fleet_online(processes, backend, set(vens))
        token = _checked(
            await http.post(
                f"{vtn}/auth/token",
                data={"grant_type": "client_credentials"},
                auth=("utility", BL_SECRET),
            ),
            200,
        )["access_token"]
        bl = {"Authorization": f"Bearer {token}"}
        ven_1, ven_2, ven_3, ven_4 = (f"{fleet.prefix}-{n}" for n in range(1, 5))
        for name in (ven_1, ven_2):  # OpenADR ven objects: the gridcore VENs of that id
            body = {"objectType": "BL_VEN_REQUEST", "venName": name, "clientID": name,
                    "targets": [group]}  # fmt: skip
            _checked(await http.post(f"{vtn}/vens", headers=bl, json=body), 201)
        await update_ven(backend.uow, ven_3, targets=[group])  # gridcore's own grant
        program = _checked(
            await http.post(
                f"{vtn}/programs",
                headers=bl,
                json={
                    "programName": f"{fleet.prefix}-dr",
                    "reportDescriptors": [
                        {"payloadType": "DELTA_USAGE", "units": "KW"},
                        {"payloadType": "OPERATING_STATE"},
                    ],
                },
            ),
            201,
        )
        start = datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
        event = _checked(
            await http.post(
                f"{vtn}/events",
                headers=bl,
                json={
                    "programID": program["id"],
                    "eventName": "north shed",
                    "targets": [group],
                    "payloadDescriptors": [
                        {
                            "objectType": "EVENT_PAYLOAD_DESCRIPTOR",
                            "payloadType": SHED,
                            "units": "KW",
                        }
                    ],
                    "intervalPeriod": {"start": start, "duration": "PT40S"},
                    "intervals": [{"id": 0, "payloads": [{"type": SHED, "values": [0.6]}]}],
                },
            ),
            201,
        )
        event_id = bridged_event_id(event["id"])
        await wait_until(
            "the event on ven/cmd for the group",
            lambda: set(tap.per_ven("event", event_id)) == {ven_1, ven_2, ven_3},
            processes,
        )
        await asyncio.sleep(1.5)  # room for a stray command to the VEN outside the group
        assert tap.per_ven("event", event_id) == Counter({ven_1: 1, ven_2: 1, ven_3: 1})
        assert ven_4 not in {r.ven_id for r in tap.received}

        async def reported() -> bool:
            found = _checked(
                await http.get(f"{vtn}/reports", headers=bl, params={"eventID": event["id"]}),
                200,
            )
            return (
                bool(found)
                and {r["resourceName"] for r in found[0]["resources"]} == {ven_1, ven_2, ven_3}
                and all(
                    r["intervals"][0]["payloads"][1]["values"] == ["RUNNING_CURTAILED"]
                    for r in found[0]["resources"]
                )
            )

        await wait_until("the bridge's report with every ACK", reported, processes, within=20)
        (report,) = _checked(
            await http.get(f"{vtn}/reports", headers=bl, params={"eventID": event["id"]}), 200
        )
        assert report["clientName"] == "gridcore"
        assert [d["payloadType"] for d in report["payloadDescriptors"]] == [
            "DELTA_USAGE",
            "OPERATING_STATE",
        ]
        shed = {
            r["resourceName"]: r["intervals"][0]["payloads"][0]["values"][0]
            for r in report["resources"]
        }
        assert all(value < 0 for value in shed.values()), shed  # each VEN's fall in kW
        event_kw = await _delivered(backend, event_id)
        assert sum(-v for v in shed.values()) == pytest.approx(event_kw, abs=1e-6)

        # gridcore's own event, served to the BL as an OpenADR event
        later = datetime.now(UTC) + timedelta(hours=1)
        own = await http.post(
            f"http://127.0.0.1:{port}/api/events",
            headers={"Authorization": f"Bearer {CONTROL}"},
            json={
                "startTime": later.isoformat(),
                "endTime": (later + timedelta(hours=1)).isoformat(),
                "requestedReductionKw": 1.5,
                "targets": [group],
            },
        )
        assert own.status_code == 201, own.text
        mirrored = _checked(
            await http.get(f"{vtn}/events", headers=bl, params={"programID": "program-gridcore"}),
            200,
        )
        assert [(e["eventName"], e["targets"]) for e in mirrored] == [(own.json()["id"], [group])]


async def _token(http: httpx.AsyncClient, vtn: str, client: str, secret: str) -> dict[str, str]:
    answer = await http.post(
        f"{vtn}/auth/token", data={"grant_type": "client_credentials"}, auth=(client, secret)
    )
    return {"Authorization": f"Bearer {_checked(answer, 200)['access_token']}"}


async def test_a_device_enrolled_over_openadr_is_allocated_its_share_and_its_report_counts(
    fleet: Fleet, backend: Backend, processes: Processes
) -> None:
    """Two MQTT VENs and a device (an OpenADR VEN client whose resource
    declares 0.1 kW) in one group: the event's 0.5 kW is split over the three,
    the device reads its own share, reports it, and the report counts."""
    vens = sorted(fleet.ven_ids(2))
    group = f"{fleet.prefix}-north"
    start_worker(processes, "worker", GRIDCORE_OPENADR_REPORT_SECONDS="1")
    start_vens(processes, fleet, len(vens))
    port = _free_port()
    await _serving(processes, port)
    vtn = f"http://127.0.0.1:{port}/openadr3"
    async with command_tap(fleet) as tap, httpx.AsyncClient(timeout=10) as http:
        await fleet_online(processes, backend, set(vens))
        for ven_id in vens:
            await update_ven(backend.uow, ven_id, targets=[group])
        bl = await _token(http, vtn, "utility", BL_SECRET)
        device = await _token(http, vtn, DEVICE, DEVICE_SECRET)
        body = {"objectType": "BL_VEN_REQUEST", "venName": f"{fleet.prefix}-thermostat",
                "clientID": DEVICE, "targets": [group]}  # fmt: skip
        ven = _checked(await http.post(f"{vtn}/vens", headers=bl, json=body), 201)
        resource = {"objectType": "VEN_RESOURCE_REQUEST", "resourceName": "hvac",
                    "venID": ven["id"],
                    "attributes": [{"type": "MAX_POWER_CONSUMPTION", "values": [0.1]}]}  # fmt: skip
        _checked(await http.post(f"{vtn}/resources", headers=device, json=resource), 201)
        program = _checked(
            await http.post(f"{vtn}/programs", headers=bl, json={"programName": fleet.prefix}),
            201,
        )
        start = datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
        descriptor = {"objectType": "EVENT_PAYLOAD_DESCRIPTOR", "payloadType": SHED, "units": "KW"}
        event = _checked(
            await http.post(
                f"{vtn}/events",
                headers=bl,
                json={
                    "programID": program["id"],
                    "targets": [group],
                    "payloadDescriptors": [descriptor],
                    "intervalPeriod": {"start": start, "duration": "PT40S"},
                    "intervals": [{"id": 0, "payloads": [{"type": SHED, "values": [0.5]}]}],
                },
            ),
            201,
        )
        # the device reads the group's event and its own share: 0.1 kW, what it declares
        # (the simulated VENs can each shed more than the fair level, 0.5 / 3)
        seen = _checked(await http.get(f"{vtn}/events", headers=device), 200)
        (share,) = [e for e in seen if e["id"] != event["id"]]
        assert [e["id"] for e in seen if e["id"] == event["id"]] == [event["id"]]
        assert share["targets"] == [ven["id"]]
        assert share["intervals"][0]["payloads"][0] == {"type": SHED, "values": [0.1]}
        event_id = bridged_event_id(event["id"])
        await wait_until(
            "the MQTT VENs' part on ven/cmd",
            lambda: set(tap.per_ven("event", event_id)) == set(vens),
            processes,
        )
        async with backend.uow() as uow:
            dispatched = await uow.events.get(event_id)
            commands = await uow.commands.for_event(event_id)
        assert dispatched is not None  # the MQTT VENs are asked 0.5 less the device's share
        assert dispatched.requested_reduction_kw == pytest.approx(0.4)
        assert sum(c.shed_kw or 0.0 for c in commands) == pytest.approx(0.4)

        async def acked() -> bool:  # what the MQTT VENs delivered, settled
            found = _checked(
                await http.get(f"{vtn}/reports", headers=bl, params={"eventID": event["id"]}),
                200,
            )
            return (
                bool(found)
                and all(
                    r["intervals"][0]["payloads"][1]["values"] == ["RUNNING_CURTAILED"]
                    for r in found[0]["resources"]
                )
                and len(found[0]["resources"]) == len(vens)
            )

        await wait_until("the MQTT VENs' ACKs", acked, processes, within=20)
        before = await _delivered(backend, event_id)
        report = {"eventID": share["id"], "clientName": DEVICE, "resources": [
            {"resourceName": "hvac", "intervals": [
                {"id": 0, "payloads": [{"type": "DELTA_USAGE", "values": [-0.1]}]}]}]}  # fmt: skip
        _checked(await http.post(f"{vtn}/reports", headers=device, json=report), 201)
        assert await _delivered(backend, event_id) == pytest.approx(before + 0.1)


async def _delivered(backend: Backend, event_id: str) -> float:
    async with backend.uow() as uow:
        event = await uow.events.get(event_id)
    assert event is not None
    return event.actual_reduction_kw
