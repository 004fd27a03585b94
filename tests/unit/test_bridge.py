"""The OpenADR bridge over the in-memory adapters (gridcore.bridge,
gridcore.bridging): a BL's OpenADR event becomes a gridcore DR event sent to
the VENs it targets, follows its updates and deletion; gridcore's own events
are served as OpenADR events; ACKs and OpenADR VENs' reports come back."""

from __future__ import annotations

from datetime import timedelta
from types import SimpleNamespace
from typing import Any

import pytest
from tests import openadr_schema
from tests.unit import test_dispatch
from tests.unit.test_dispatch import Fleet

from adapters.memory.openadr import InMemoryOpenAdrStore
from adapters.system import SequentialIds
from gridcore import CommandOp, services
from gridcore.bridge import (
    GRIDCORE_PROGRAM_ID,
    NotBridged,
    Shed,
    bridged_event_id,
    delivered_kw,
    mirror_id,
    read_shed,
    report_id,
)
from gridcore.bridging import OpenAdrBridge
from gridcore.errors import NotFound
from gridcore.events import EventStatus
from gridcore.fleet import update_ven
from gridcore.openadr import ROLE_SCOPES, Client, Kind, ObjectChange, Role
from gridcore.vtn import Filters, Vtn, stamp

fleet = test_dispatch.fleet
BL = Client("utility-bl", Role.BL, ROLE_SCOPES[Role.BL])
SHED = "DISPATCH_SETPOINT_RELATIVE"
schema_only = pytest.mark.skipif(not openadr_schema.available(), reason="no openadr3.yaml")


class BridgedVtn:
    """The VTN with the bridge on its changes, as the API wires them; ``seen``
    records every change published (what notifiers would get)."""

    def __init__(self, fleet: Fleet) -> None:
        self.store = InMemoryOpenAdrStore()
        self.seen: list[ObjectChange] = []
        self.vtn = Vtn(self.store, fleet.clock, SequentialIds())

        async def publish(changes: Any) -> None:
            await self.vtn.changes(changes)

        # the availability the dispatcher allocates on (its own fake queries)
        queries = fleet.dispatcher._queries
        offline_after = fleet.dispatcher.policy.offline_after

        async def available(now: Any) -> dict[str, float]:
            return await queries.available_shed(now, offline_after)

        self.bridge = OpenAdrBridge(
            fleet.uow, self.store, fleet.clock, publish=publish, available=available
        )

        async def changes(batch: Any) -> None:
            self.seen.extend(batch)
            await self.bridge.on_changes(batch)

        self.vtn.changes = changes

    async def program(self, **extra: Any) -> str:
        body = {"programName": f"dr-{len(self.seen)}", **extra}
        return str((await self.vtn.create(BL, Kind.PROGRAM, body))["id"])

    async def ven(self, name: str, *targets: str, client: str | None = None) -> dict[str, Any]:
        body = {
            "objectType": "BL_VEN_REQUEST",
            "venName": name,
            "clientID": client or name,
            "targets": list(targets),
        }
        return await self.vtn.create(BL, Kind.VEN, body)


@pytest.fixture
def vtn(fleet: Fleet) -> BridgedVtn:
    return BridgedVtn(fleet)


def _event(
    program_id: str, start: str, kw: float, *, targets: tuple[str, ...] = (), n: int = 1
) -> dict[str, Any]:
    return {
        "programID": program_id,
        "eventName": "shed",
        "payloadDescriptors": [
            {"objectType": "EVENT_PAYLOAD_DESCRIPTOR", "payloadType": SHED, "units": "KW"}
        ],
        "intervalPeriod": {"start": start, "duration": "PT30M"},
        "intervals": [{"id": i, "payloads": [{"type": SHED, "values": [kw]}]} for i in range(n)],
        **({"targets": list(targets)} if targets else {}),
    }


async def _homes(fleet: Fleet) -> None:
    """ven-1 and ven-2 granted ``north`` in gridcore; ven-3 and ven-4 not."""
    for n in range(1, 5):
        await fleet.report(f"ven-{n}", 8)
    await update_ven(fleet.uow, "ven-1", targets=["north"])
    await update_ven(fleet.uow, "ven-2", targets=["north"])


def _sent(fleet: Fleet, event_id: str, op: CommandOp = CommandOp.EVENT) -> dict[str, float]:
    return {
        c.ven_id: c.shed_kw or 0.0
        for c in fleet.publisher.sent
        if c.op is op and c.event_id == event_id
    }


# --- the mapping ------------------------------------------------------------------


def test_a_constant_relative_setpoint_is_a_shed_and_anything_else_is_not(fleet: Fleet) -> None:
    now = fleet.clock.now()
    start = stamp(now + timedelta(hours=1))
    shed = read_shed(_event("p", start, 12, targets=("north",), n=2), None, now)
    assert shed == Shed(now + timedelta(hours=1), now + timedelta(hours=2), 12.0, ("north",))
    watts = _event("p", start, 1500)
    watts["payloadDescriptors"][0]["units"] = "W"
    assert isinstance(kw := read_shed(watts, None, now), Shed) and kw.kw == 1.5
    ramp = _event("p", start, 12, n=2)
    ramp["intervals"][1]["payloads"][0]["values"] = [6]
    price = _event("p", start, 1)
    price["intervals"][0]["payloads"][0]["type"] = "PRICE"
    price["payloadDescriptors"] = []
    energy = _event("p", start, 1)
    energy["payloadDescriptors"][0]["units"] = "KWH"
    for event, why in ((ramp, "one level"), (price, "no DISPATCH"), (energy, "units")):
        result = read_shed(event, None, now)
        assert isinstance(result, NotBridged) and why in result.reason
    # a start of 0001-01-01 is "now"; untargeted events take the program's targets
    at_once = read_shed(_event("p", "0001-01-01T00:00:00Z", 3), {"targets": ["south"]}, now)
    assert at_once == Shed(now, now + timedelta(minutes=30), 3.0, ("south",))


def test_a_ven_report_delivers_the_fall_in_consumption_of_its_newest_intervals() -> None:
    def resource(*values: float) -> dict[str, Any]:
        intervals = [{"id": i, "payloads": [{"type": "DELTA_USAGE", "values": [v]}]}
                     for i, v in enumerate(values)]  # fmt: skip
        return {"resourceName": "r", "intervals": intervals}

    assert delivered_kw({"resources": [resource(-1, -2.5), resource(-1), resource(3)]}) == 3.5
    assert delivered_kw({"resources": [{"resourceName": "r", "intervals": [
        {"id": 0, "payloads": [{"type": "DELTA_USAGE", "values": ["x"]}]}]}]}) == 0  # fmt: skip


# --- OpenADR -> gridcore ------------------------------------------------------------


async def test_a_group_event_reaches_that_group_and_the_openadr_vens_granted_it(
    fleet: Fleet, vtn: BridgedVtn
) -> None:
    await _homes(fleet)
    await vtn.ven("ven-3", "north")  # an OpenADR ven object: the gridcore VEN ven-3
    await vtn.ven("ven-9", "south")
    by_resource = await vtn.ven("ven-7")  # granted north through its resource
    resource = {"objectType": "BL_RESOURCE_REQUEST", "resourceName": "battery",
                "venID": by_resource["id"], "clientID": "ven-7", "targets": ["north"]}  # fmt: skip
    await vtn.vtn.create(BL, Kind.RESOURCE, resource)
    by_id = await vtn.ven("ven-8")  # targeted by its OpenADR id
    program = await vtn.program()
    now = fleet.clock.now()
    created = await vtn.vtn.create(
        BL, Kind.EVENT, _event(program, stamp(now), 9, targets=("north", by_id["id"]))
    )
    event_id = bridged_event_id(created["id"])
    event = await fleet.get_event(event_id)
    assert event is not None
    assert event.targets == ("north", by_id["id"], "ven-3", "ven-7", "ven-8")
    await fleet.dispatcher.run_once()
    assert _sent(fleet, event_id) == {"ven-1": 3.0, "ven-2": 3.0, "ven-3": 3.0}


async def test_an_event_gridcore_does_not_understand_stays_openadr_only_and_says_why(
    fleet: Fleet, vtn: BridgedVtn
) -> None:
    program = await vtn.program()
    price = _event(program, stamp(fleet.clock.now()), 5)
    price["intervals"][0]["payloads"][0]["type"] = "PRICE"
    ramp = _event(program, stamp(fleet.clock.now()), 5, n=2)
    ramp["intervals"][1]["payloads"][0]["values"] = [9]
    for body in (price, ramp):
        created = await vtn.vtn.create(BL, Kind.EVENT, body)
        assert await fleet.get_event(bridged_event_id(created["id"])) is None
    # not a shed: none of gridcore's business, no report; a shed it cannot follow: why not
    assert await vtn.vtn.search(BL, Kind.REPORT, Filters(), 0, 50) == [
        await vtn.vtn.get(BL, Kind.REPORT, report_id(created["id"]))
    ]
    report = await vtn.vtn.get(BL, Kind.REPORT, report_id(created["id"]))
    assert report["reportName"] == (
        "gridcore: not dispatched: DISPATCH_SETPOINT_RELATIVE changes between intervals; "
        "gridcore sheds one level"
    )
    assert report["resources"] == []
    # an update that makes a dispatched event unreadable ends its gridcore event
    created = await vtn.vtn.create(BL, Kind.EVENT, _event(program, stamp(fleet.clock.now()), 5))
    await vtn.vtn.update(BL, Kind.EVENT, created["id"], price)
    event = await fleet.get_event(bridged_event_id(created["id"]))
    assert event is not None and event.status is EventStatus.CANCELLED
    report = await vtn.vtn.get(BL, Kind.REPORT, report_id(created["id"]))
    assert report["reportName"].startswith("gridcore: not dispatched: no DISPATCH_SETPOINT")


async def test_the_gridcore_event_follows_updates_and_deletion(
    fleet: Fleet, vtn: BridgedVtn
) -> None:
    await _homes(fleet)
    program = await vtn.program()
    later = fleet.clock.now() + timedelta(hours=2)
    created = await vtn.vtn.create(BL, Kind.EVENT, _event(program, stamp(later), 4))
    event_id = bridged_event_id(created["id"])
    moved = later + timedelta(hours=1)
    await vtn.vtn.update(BL, Kind.EVENT, created["id"], _event(program, stamp(moved), 6))
    event = await fleet.get_event(event_id)
    assert event is not None and event.start_time == moved and event.requested_reduction_kw == 6
    assert event.status is EventStatus.SCHEDULED
    await vtn.vtn.delete(BL, Kind.EVENT, created["id"])
    event = await fleet.get_event(event_id)
    assert event is not None and event.status is EventStatus.CANCELLED
    # an event deleted once it runs is stopped, and its VENs are restored
    now = fleet.clock.now()
    running = await vtn.vtn.create(BL, Kind.EVENT, _event(program, stamp(now), 4))
    running_id = bridged_event_id(running["id"])
    await fleet.dispatcher.run_once()
    assert len(_sent(fleet, running_id)) == 4
    await vtn.vtn.delete(BL, Kind.PROGRAM, program)  # deletes its events with it
    event = await fleet.get_event(running_id)
    assert event is not None and event.status is EventStatus.STOPPED
    await fleet.dispatcher.run_once()
    restored = {c.ven_id for c in fleet.publisher.sent if c.op is CommandOp.RESTORE}
    assert restored == {"ven-1", "ven-2", "ven-3", "ven-4"}
    # each change to a gridcore event is in its audit trail, as the BL's
    async with fleet.uow() as tx:
        trail = (await tx.audit.page(limit=1000)).items
    done = [
        (e.event_id, e.action.value) for e in reversed(trail) if e.actor == "openadr:utility-bl"
    ]
    assert done == [
        (event_id, "event.created"),
        (event_id, "event.rescheduled"),
        (event_id, "event.cancelled"),
        (running_id, "event.created"),
        (running_id, "event.stopped"),
    ]
    assert len(done) == len(trail)
    rescheduled = next(e for e in trail if e.action.value == "event.rescheduled")
    assert rescheduled.details["requestedReductionKw"] == 6
    assert rescheduled.details["startTime"] == moved.isoformat()


async def test_the_same_openadr_event_makes_one_gridcore_event(
    fleet: Fleet, vtn: BridgedVtn
) -> None:
    program = await vtn.program()
    created = await vtn.vtn.create(
        BL, Kind.EVENT, _event(program, stamp(fleet.clock.now() + timedelta(hours=1)), 4)
    )
    again = await vtn.bridge.follow(created)  # a retried hook: the id is the key
    assert again is not None and again.id == bridged_event_id(created["id"])
    async with fleet.uow() as tx:
        page = await tx.events.page()
    assert [e.id for e in page.items] == [again.id]


@schema_only
async def test_acks_and_measured_shed_come_back_as_the_report_bl_reads(
    fleet: Fleet, vtn: BridgedVtn
) -> None:
    await _homes(fleet)
    program = await vtn.program(
        reportDescriptors=[
            {"payloadType": "DELTA_USAGE", "units": "KW"},
            {"payloadType": "OPERATING_STATE"},
            {"payloadType": "DELTA_USAGE", "aggregate": True},
            {"payloadType": "STORAGE_CHARGE_LEVEL"},  # not one the bridge fills: left out
        ]
    )
    now = fleet.clock.now()
    created = await vtn.vtn.create(
        BL, Kind.EVENT, _event(program, stamp(now), 6, targets=("north",))
    )
    event_id = bridged_event_id(created["id"])
    await fleet.dispatcher.run_once()
    commands = {c.ven_id: c for c in await fleet.commands(event_id)}
    await fleet.ack(commands["ven-1"], kw=3)
    await fleet.ack(commands["ven-2"], status="rejected", kw=0)
    assert await vtn.bridge.refresh_reports() == 1
    report = await vtn.vtn.get(BL, Kind.REPORT, report_id(created["id"]))
    openadr_schema.check(f"/reports/{report['id']}", "get", 200, report)
    by_name = {r["resourceName"]: r["intervals"][0]["payloads"] for r in report["resources"]}
    assert by_name == {
        "ven-1": [
            {"type": "DELTA_USAGE", "values": [-3.0]},
            {"type": "OPERATING_STATE", "values": ["RUNNING_CURTAILED"]},
        ],
        "ven-2": [
            {"type": "DELTA_USAGE", "values": [0.0]},
            {"type": "OPERATING_STATE", "values": ["RUNNING_OPTED_OUT"]},
        ],
        "AGGREGATED_REPORT": [{"type": "DELTA_USAGE", "values": [-3.0]}],
    }
    # unchanged: not rewritten, nothing published again
    published = len(vtn.seen)
    await vtn.bridge.refresh_reports()
    assert len(vtn.seen) == published


async def test_an_openadr_vens_report_counts_towards_delivered_kw(
    fleet: Fleet, vtn: BridgedVtn
) -> None:
    program = await vtn.program()
    device = await vtn.ven("thermostat-7", "north", client="device-7")
    created = await vtn.vtn.create(
        BL, Kind.EVENT, _event(program, stamp(fleet.clock.now()), 2, targets=("north",))
    )
    client = Client("device-7", Role.VEN, ROLE_SCOPES[Role.VEN])
    seen = await vtn.vtn.search(client, Kind.EVENT, Filters(), 0, 50)
    assert [e["id"] for e in seen] == [created["id"]]  # it reads the event meant for it

    async def report(kw: float, by: Client = client) -> None:
        body = {
            "eventID": created["id"],
            "clientName": device["venName"],
            "resources": [{"resourceName": "hvac", "intervals": [
                {"id": 0, "payloads": [{"type": "DELTA_USAGE", "values": [-kw]}]}]}],
        }  # fmt: skip
        await vtn.vtn.create(by, Kind.REPORT, body)

    await report(1.5)
    await report(2.0)  # its newest report stands: 2 kW, not 3.5
    event = await fleet.get_event(bridged_event_id(created["id"]))
    assert event is not None and event.actual_reduction_kw == pytest.approx(2.0)
    await report(50)  # more than the event asked (2 kW): capped at it
    event = await fleet.get_event(bridged_event_id(created["id"]))
    assert event is not None and event.actual_reduction_kw == pytest.approx(2.0)
    # another device's resource declares it can shed 1.25 kW (MAX_POWER_CONSUMPTION): the cap
    other = await vtn.ven("thermostat-8", "north", client="device-8")
    second = Client("device-8", Role.VEN, ROLE_SCOPES[Role.VEN])
    hvac = {"objectType": "VEN_RESOURCE_REQUEST", "resourceName": "hvac", "venID": other["id"],
            "attributes": [{"type": "MAX_POWER_CONSUMPTION", "values": [1.25]}]}  # fmt: skip
    await vtn.vtn.create(second, Kind.RESOURCE, hvac)
    await report(1.75, by=second)
    event = await fleet.get_event(bridged_event_id(created["id"]))
    assert event is not None and event.actual_reduction_kw == pytest.approx(2.0 + 1.25)


async def _device(vtn: BridgedVtn, name: str, kw: float | None, *targets: str) -> Client:
    """An OpenADR device: a ven object (no gridcore VEN of that name) whose
    resource declares ``kw`` (MAX_POWER_CONSUMPTION; None: nothing)."""
    ven = await vtn.ven(name, *targets, client=f"client-{name}")
    client = Client(f"client-{name}", Role.VEN, ROLE_SCOPES[Role.VEN])
    attributes = [] if kw is None else [{"type": "MAX_POWER_CONSUMPTION", "values": [kw]}]
    resource = {"objectType": "VEN_RESOURCE_REQUEST", "resourceName": "hvac", "venID": ven["id"],
                "attributes": attributes}  # fmt: skip
    await vtn.vtn.create(client, Kind.RESOURCE, resource)
    return client


async def _report(vtn: BridgedVtn, by: Client, event_id: str, kw: float) -> None:
    body = {
        "eventID": event_id,
        "clientName": by.client_id,
        "resources": [{"resourceName": "hvac", "intervals": [
            {"id": 0, "payloads": [{"type": "DELTA_USAGE", "values": [-kw]}]}]}],
    }  # fmt: skip
    await vtn.vtn.create(by, Kind.REPORT, body)


def _share_of(events: list[dict[str, Any]], parent: str) -> dict[str, Any]:
    [share] = [e for e in events if e.get("eventName") == f"gridcore share of {parent}"]
    return share


async def test_a_device_is_allocated_its_share_beside_the_mqtt_vens_and_reads_only_its_own(
    fleet: Fleet, vtn: BridgedVtn
) -> None:
    await _homes(fleet)  # ven-1 and ven-2 (8 kW each) in north
    device = await _device(vtn, "thermostat-9", 2.0, "north")
    other = await _device(vtn, "thermostat-10", 20.0, "north")
    silent = await _device(vtn, "thermostat-11", None, "north")  # declares nothing
    await _device(vtn, "thermostat-12", 5.0, "south")  # not targeted
    program = await vtn.program()
    created = await vtn.vtn.create(
        BL, Kind.EVENT, _event(program, stamp(fleet.clock.now()), 12, targets=("north",))
    )
    # water-filling over 8, 8, 2 and 20: 2 for thermostat-9, 10 / 3 each for the others
    event_id = bridged_event_id(created["id"])
    event = await fleet.get_event(event_id)
    assert event is not None and event.requested_reduction_kw == pytest.approx(12 - 2 - 3.334)
    await fleet.dispatcher.run_once()
    assert _sent(fleet, event_id) == {"ven-1": 3.333, "ven-2": 3.333}  # 6.666 kW left to them
    # each device reads the group's event and its own share, nobody else's
    mine = await vtn.vtn.search(device, Kind.EVENT, Filters(), 0, 50)
    assert len(mine) == 2
    share = _share_of(mine, created["id"])
    assert share["intervals"][0]["payloads"][0] == {"type": SHED, "values": [2.0]}
    theirs = _share_of(await vtn.vtn.search(other, Kind.EVENT, Filters(), 0, 50), created["id"])
    assert theirs["intervals"][0]["payloads"][0]["values"] == [3.334]
    assert [e["id"] for e in await vtn.vtn.search(silent, Kind.EVENT, Filters(), 0, 50)] == [
        created["id"]
    ]
    # its report on its share counts, at most the share; on the group's event, not again
    await _report(vtn, device, share["id"], 2.5)
    await _report(vtn, device, created["id"], 2.0)
    event = await fleet.get_event(event_id)
    assert event is not None and event.actual_reduction_kw == pytest.approx(2.0)
    await _report(vtn, other, theirs["id"], 3.0)
    event = await fleet.get_event(event_id)
    assert event is not None and event.actual_reduction_kw == pytest.approx(5.0)
    # the event deleted: the shares go with it
    await vtn.vtn.delete(BL, Kind.EVENT, created["id"])
    assert await vtn.vtn.search(device, Kind.EVENT, Filters(), 0, 50) == []


async def test_an_untargeted_event_allots_every_device_and_devices_alone_carry_it(
    fleet: Fleet, vtn: BridgedVtn
) -> None:
    device = await _device(vtn, "meter-1", 1.5)
    program = await vtn.program()
    created = await vtn.vtn.create(BL, Kind.EVENT, _event(program, stamp(fleet.clock.now()), 4))
    share = _share_of(await vtn.vtn.search(device, Kind.EVENT, Filters(), 0, 50), created["id"])
    assert share["intervals"][0]["payloads"][0]["values"] == [1.5]  # no MQTT VEN has shed now
    event = await fleet.get_event(bridged_event_id(created["id"]))
    assert event is not None and event.requested_reduction_kw == 2.5
    # MQTT VENs come online after: the untargeted event reaches them with what is left
    await fleet.report("ven-1", 8)
    await fleet.dispatcher.run_once()
    assert _sent(fleet, event.id) == {"ven-1": 2.5}
    # with a gridcore VEN online before the next event, the split is fair again
    second = await vtn.vtn.create(BL, Kind.EVENT, _event(program, stamp(fleet.clock.now()), 1))
    share = _share_of(await vtn.vtn.search(device, Kind.EVENT, Filters(), 0, 50), second["id"])
    assert share["intervals"][0]["payloads"][0]["values"] == [0.5]


async def test_when_the_devices_carry_it_all_no_mqtt_ven_is_asked(
    fleet: Fleet, vtn: BridgedVtn
) -> None:
    device = await _device(vtn, "meter-1", 1.5)
    program = await vtn.program()
    created = await vtn.vtn.create(BL, Kind.EVENT, _event(program, stamp(fleet.clock.now()), 1))
    share = _share_of(await vtn.vtn.search(device, Kind.EVENT, Filters(), 0, 50), created["id"])
    assert share["intervals"][0]["payloads"][0]["values"] == [1.0]
    await fleet.report("ven-1", 8)  # online after the split: not asked the device's kW again
    await fleet.dispatcher.run_once()
    assert _sent(fleet, bridged_event_id(created["id"])) == {}
    await _report(vtn, device, share["id"], 1.0)
    event = await fleet.get_event(bridged_event_id(created["id"]))
    assert event is not None and event.actual_reduction_kw == pytest.approx(1.0)


# --- gridcore -> OpenADR ------------------------------------------------------------


@schema_only
async def test_gridcore_events_are_served_to_bl_and_to_the_vens_they_target(
    fleet: Fleet, vtn: BridgedVtn
) -> None:
    await vtn.ven("ven-1", "north", client="c1")
    await vtn.ven("ven-2", "south", client="c2")
    now = fleet.clock.now()
    event = await services.create_event(
        fleet.uow,
        fleet.clock,
        fleet.ids,
        start_time=now + timedelta(hours=1),
        end_time=now + timedelta(hours=2),
        requested_reduction_kw=7,
        targets=["north"],
        require_match=False,
    )
    await vtn.bridge.mirror(event)
    served = await vtn.vtn.get(BL, Kind.EVENT, mirror_id(event.id))
    openadr_schema.check(f"/events/{served['id']}", "get", 200, served)
    assert served["programID"] == GRIDCORE_PROGRAM_ID and served["targets"] == ["north"]
    assert served["intervals"][0]["payloads"] == [{"type": SHED, "values": [7.0]}]
    assert served["intervalPeriod"] == {"start": stamp(event.start_time), "duration": "PT3600S"}
    north = Client("c1", Role.VEN, ROLE_SCOPES[Role.VEN])
    south = Client("c2", Role.VEN, ROLE_SCOPES[Role.VEN])
    assert [e["id"] for e in await vtn.vtn.search(north, Kind.EVENT, Filters(), 0, 50)] == [
        served["id"]
    ]
    assert await vtn.vtn.search(south, Kind.EVENT, Filters(), 0, 50) == []
    # the bridge does not dispatch its own mirror a second time
    async with fleet.uow() as tx:
        assert len((await tx.events.page()).items) == 1
    cancelled = await services.cancel_event(fleet.uow, fleet.clock, event.id)
    await vtn.bridge.mirror(cancelled)
    with pytest.raises(NotFound):
        await vtn.vtn.get(BL, Kind.EVENT, mirror_id(event.id))
    operations = [(c.operation, c.kind) for c in vtn.seen if c.kind is Kind.EVENT]
    assert operations == [("CREATE", Kind.EVENT), ("DELETE", Kind.EVENT)]


class KeptMeasurement:
    """A PerformanceStore holding one kept measurement: VEN id -> verified kW."""

    def __init__(
        self, event_id: str, method: str, verified: dict[str, float | None], at: Any
    ) -> None:
        self.key = (event_id, method)
        self.lines = [SimpleNamespace(ven_id=v, avg_shed_kw=kw) for v, kw in verified.items()]
        self.computed_at = at

    async def get(self, event_id: str, method: str) -> Any:
        if (event_id, method) != self.key:
            return None
        return SimpleNamespace(vens=self.lines, computed_at=self.computed_at)


async def test_the_verified_shed_replaces_what_the_ack_claimed_once_measured(
    fleet: Fleet, vtn: BridgedVtn
) -> None:
    await _homes(fleet)
    program = await vtn.program()
    created = await vtn.vtn.create(
        BL, Kind.EVENT, _event(program, stamp(fleet.clock.now()), 6, targets=("north",))
    )
    event_id = bridged_event_id(created["id"])
    await fleet.dispatcher.run_once()
    for command in await fleet.commands(event_id):
        await fleet.ack(command, kw=3)
    await vtn.bridge.refresh_reports()  # a report of the ACKs, before the measurement
    await services.stop_event(fleet.uow, fleet.clock, event_id)
    fleet.clock.advance(timedelta(hours=1))
    verified = {"ven-1": 2.25, "ven-2": None}
    kept = KeptMeasurement(event_id, "meter-before", verified, fleet.clock.now())
    measured = OpenAdrBridge(
        fleet.uow, vtn.store, fleet.clock, performance=kept, method="meter-before"
    )
    fleet.clock.advance(timedelta(minutes=1))
    assert await measured.refresh_reports() == 1
    report = await vtn.vtn.get(BL, Kind.REPORT, report_id(created["id"]))
    delta = {r["resourceName"]: r["intervals"][0]["payloads"][0] for r in report["resources"]}
    # ven-1 verified by its meter; ven-2 not measured: its ACK's claim stands
    assert delta == {
        "ven-1": {"type": "DELTA_USAGE", "values": [-2.25]},
        "ven-2": {"type": "DELTA_USAGE", "values": [-3.0]},
    }
    # settled: ended, measured, reported after the measurement: not read again
    assert await measured.refresh_reports() == 0
