"""Simulated VENs answering commands over the in-memory broker, as the DR
event flow document (002) and the MQTT topics document (004) describe."""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections import defaultdict
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest

from adapters.memory.broker import InMemoryBroker, InMemoryTransport
from adapters.mqtt.payloads import AckWire, to_ven_ack
from entrypoints.settings import Settings
from entrypoints.simulator import Behaviour, Fleet, FleetConfig, run_simulator
from entrypoints.simulator.fleet import assign_behaviours
from gridcore.ports import BrokerMessage, MessageTransport

WAIT = 3.0  # seconds: generous, so a busy CI machine does not flake


class Rig:
    """A running fleet on an in-memory broker and an observer of its output."""

    def __init__(self, broker: InMemoryBroker, fleet: Fleet, observer: InMemoryTransport) -> None:
        self.broker = broker
        self.fleet = fleet
        self.observer = observer
        self.transports: list[InMemoryTransport] = []
        self.acks: defaultdict[str, asyncio.Queue[BrokerMessage]] = defaultdict(asyncio.Queue)
        self.telemetry: defaultdict[str, asyncio.Queue[tuple[float, dict[str, Any]]]] = defaultdict(
            asyncio.Queue
        )

    async def pump(self) -> None:
        async for message in self.observer.messages():
            if message.topic.startswith("ven/ack/"):
                self.acks[message.topic.removeprefix("ven/ack/")].put_nowait(message)
            else:
                body = json.loads(message.payload)
                self.telemetry[body["venId"]].put_nowait((time.monotonic(), body))

    async def send(self, ven_id: str, **body: Any) -> None:
        await self.observer.publish(f"ven/cmd/{ven_id}", json.dumps(body).encode(), qos=1)

    async def ack(self, ven_id: str) -> dict[str, Any]:
        return json.loads((await self.raw_ack(ven_id)).payload)  # type: ignore[no-any-return]

    async def raw_ack(self, ven_id: str) -> BrokerMessage:
        return await asyncio.wait_for(self.acks[ven_id].get(), WAIT)

    async def no_ack(self, ven_id: str, within: float = 0.4) -> None:
        await asyncio.sleep(within)
        assert self.acks[ven_id].empty()

    async def sample(self, ven_id: str, where: Callable[[dict[str, Any]], bool]) -> dict[str, Any]:
        """The next telemetry of ``ven_id`` that satisfies ``where``."""
        async with asyncio.timeout(WAIT):
            while True:
                _, body = await self.telemetry[ven_id].get()
                if where(body):
                    return body


RigFactory = Callable[..., Awaitable[Rig]]


@pytest.fixture
async def make_rig() -> AsyncIterator[RigFactory]:
    tasks: list[asyncio.Task[None]] = []

    async def make(**options: Any) -> Rig:
        broker = InMemoryBroker()
        observer = broker.connect("observer")
        await observer.subscribe("ven/ack/+", qos=1)
        await observer.subscribe("volttron/metering")
        opened: list[InMemoryTransport] = []

        async def connect(n: int) -> MessageTransport:
            opened.append(broker.connect(f"sim-{n}"))
            return opened[-1]

        config = FleetConfig(**{"count": 2, "interval": 0.05, "seed": 1, **options})
        rig = Rig(broker, Fleet(config, connect), observer)
        rig.transports = opened
        ready = asyncio.Event()
        tasks.append(asyncio.create_task(rig.fleet.run(ready)))
        tasks.append(asyncio.create_task(rig.pump()))
        await asyncio.wait_for(ready.wait(), WAIT)
        return rig

    yield make
    for task in tasks:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


def feasible_target(rig: Rig, ven_id: str) -> float:
    """Half of what the VEN could shed right now: comfortably feasible."""
    readings = rig.fleet.vens[ven_id].readings(time.time())
    return round(0.5 * sum(r.shed_capability_kw for r in readings), 3)


def event(cid: str, shed_kw: float, duration: float = 60, event_id: str = "evt-0a0b0c0d") -> Any:
    return {
        "op": "event", "correlationId": cid, "venId": "x", "event_id": event_id,
        "shed_kw": shed_kw, "duration_sec": duration,
        "data": {"event_id": event_id, "requestedReductionKw": shed_kw, "duration_s": duration},
    }  # fmt: skip


# --- event ---------------------------------------------------------------------


async def test_an_event_is_acked_with_the_circuits_curtailed(make_rig: RigFactory) -> None:
    rig = await make_rig()
    target = feasible_target(rig, "ven-1")
    await rig.send("ven-1", **event("evt-0a0b0c0d-00000001", target))
    raw = await rig.raw_ack("ven-1")
    assert raw.qos == 1
    ack = json.loads(raw.payload)
    assert list(ack) == [
        "op", "status", "event_id", "correlationId", "requested_shed_kw", "actual_shed_kw",
        "circuits_curtailed", "ts",
    ]  # fmt: skip
    assert ack["op"] == "event" and ack["status"] == "accepted"
    assert ack["event_id"] == "evt-0a0b0c0d"
    assert ack["correlationId"] == "evt-0a0b0c0d-00000001"
    assert ack["requested_shed_kw"] == target
    assert ack["actual_shed_kw"] == pytest.approx(target, abs=0.002)
    critical = {c.id for c in rig.fleet.vens["ven-1"].panel.circuits if c.critical}
    assert ack["circuits_curtailed"]
    for line in ack["circuits_curtailed"]:
        assert set(line) == {
            "id", "name", "breaker_amps", "original_kw", "curtailed_kw", "final_kw", "critical",
        }  # fmt: skip
        assert line["critical"] is False and line["id"] not in critical
        assert line["final_kw"] == pytest.approx(line["original_kw"] - line["curtailed_kw"])
    domain = to_ven_ack(AckWire.model_validate_json(raw.payload), "ven-1", raw.payload.decode(),
                        rig.fleet._clock.now())  # fmt: skip
    assert domain.accepted and domain.actual_shed_kw == ack["actual_shed_kw"]
    # The other VEN was not asked and does nothing.
    await rig.no_ack("ven-2", within=0.1)


async def test_an_infeasible_event_sheds_what_it_can(make_rig: RigFactory) -> None:
    rig = await make_rig()
    await rig.send("ven-1", **event("evt-0a0b0c0d-00000002", 500.0))
    ack = await rig.ack("ven-1")
    assert ack["status"] == "accepted" and 0 < ack["actual_shed_kw"] < 500.0


async def test_telemetry_during_an_event_carries_it_and_a_fixed_baseline(
    make_rig: RigFactory,
) -> None:
    rig = await make_rig()
    target = feasible_target(rig, "ven-1")
    await rig.send("ven-1", **event("evt-0a0b0c0d-00000003", target))
    await rig.ack("ven-1")
    during = [await rig.sample("ven-1", lambda b: "eventId" in b) for _ in range(5)]
    # A re-allocation (new correlationId, same event) re-plans but keeps the baseline.
    await rig.send("ven-1", **event("evt-0a0b0c0d-00000004", round(target / 2, 3)))
    replanned = await rig.ack("ven-1")
    assert replanned["requested_shed_kw"] == round(target / 2, 3)
    assert replanned["actual_shed_kw"] == pytest.approx(target / 2, abs=0.002)
    during += [
        await rig.sample("ven-1", lambda b: b.get("requestedReductionKw") == round(target / 2, 3))
        for _ in range(5)
    ]
    baselines = {body["baselinePowerKw"] for body in during}
    assert len(baselines) == 1
    for body in during:
        assert body["eventId"] == "evt-0a0b0c0d"
        expected = max(body["baselinePowerKw"] - body["usedPowerKw"], 0)
        assert body["shedPowerKw"] == pytest.approx(expected, abs=0.0011)
    assert rig.fleet.vens["ven-1"].state.baseline_kw == baselines.pop()


# --- restore, ping, load shed ----------------------------------------------------------


async def test_restore_lifts_everything_and_acks_success(make_rig: RigFactory) -> None:
    rig = await make_rig()
    await rig.send("ven-1", **event("evt-0a0b0c0d-00000005", 100.0))
    await rig.ack("ven-1")
    await rig.send("ven-1", op="restore", correlationId="cmd-00000006")
    ack = await rig.ack("ven-1")
    assert ack == {"op": "restore", "status": "success", "ts": ack["ts"],
                   "correlationId": "cmd-00000006"}  # fmt: skip
    body = await rig.sample("ven-1", lambda b: "eventId" not in b)
    assert body["shedPowerKw"] == 0 and all(c["enabled"] for c in body["circuits"])
    assert not rig.fleet.vens["ven-1"].state.active


async def test_ping_is_answered_with_pong(make_rig: RigFactory) -> None:
    rig = await make_rig()
    await rig.send("ven-2", op="ping", correlationId="xyz-789")
    ack = await rig.ack("ven-2")
    assert (ack["op"], ack["status"], ack["correlationId"]) == ("ping", "pong", "xyz-789")
    assert isinstance(ack["ts"], int)


async def test_a_load_shed_command_sheds_that_one_circuit(make_rig: RigFactory) -> None:
    rig = await make_rig()
    panel = rig.fleet.vens["ven-1"].panel
    lighting = next(c for c in panel.circuits if c.name == "Lighting")
    await rig.send("ven-1", op="shed_load", correlationId="cmd-00000007", venId="ven-1",
                   load_id=lighting.id, shed_kw=50.0)  # fmt: skip
    ack = await rig.ack("ven-1")
    assert (ack["op"], ack["status"], ack["load_id"]) == ("shed_load", "accepted", lighting.id)
    [line] = ack["circuits_curtailed"]
    assert line["id"] == lighting.id and line["final_kw"] == 0
    assert ack["actual_shed_kw"] == line["curtailed_kw"] > 0
    body = await rig.sample("ven-1", lambda b: b["shedPowerKw"] > 0)
    circuit = next(c for c in body["circuits"] if c["id"] == lighting.id)
    assert circuit["enabled"] is False and circuit["currentKw"] == 0


async def test_critical_and_unknown_loads_are_not_shed(make_rig: RigFactory) -> None:
    rig = await make_rig()
    hvac = rig.fleet.vens["ven-1"].panel.circuits[0]
    assert hvac.critical
    await rig.send("ven-1", op="shed_load", correlationId="c-1", load_id=hvac.id, shed_kw=1.0)
    await rig.send("ven-1", op="shed_load", correlationId="c-2", load_id="nope", shed_kw=1.0)
    for _ in range(2):
        ack = await rig.ack("ven-1")
        assert ack["status"] == "rejected" and ack["actual_shed_kw"] == 0
    assert not rig.fleet.vens["ven-1"].state.active


# --- idempotency and duration ------------------------------------------------------------


async def test_a_repeated_correlation_id_is_answered_again_without_applying_twice(
    make_rig: RigFactory,
) -> None:
    rig = await make_rig()
    command = event("evt-0a0b0c0d-00000008", feasible_target(rig, "ven-1"))
    await rig.send("ven-1", **command)
    first = (await rig.raw_ack("ven-1")).payload
    await rig.send("ven-1", op="restore", correlationId="cmd-00000009")
    await rig.ack("ven-1")
    await rig.send("ven-1", **command)  # the backend's retry, arriving late
    assert (await rig.raw_ack("ven-1")).payload == first
    assert not rig.fleet.vens["ven-1"].state.active  # not shed again


async def test_an_event_restores_itself_after_its_duration(make_rig: RigFactory) -> None:
    rig = await make_rig()
    await rig.send("ven-1", **event("evt-0a0b0c0d-0000000a", 100.0, duration=0.3))
    started = time.monotonic()
    assert (await rig.ack("ven-1"))["status"] == "accepted"
    ack = await rig.ack("ven-1")
    assert time.monotonic() - started >= 0.25
    assert ack["op"] == "restore" and ack["status"] == "success"
    assert ack["event_id"] == "evt-0a0b0c0d" and "correlationId" not in ack
    body = await rig.sample("ven-1", lambda b: True)
    assert "eventId" not in body and body["shedPowerKw"] == 0


async def test_bad_commands_are_survived(make_rig: RigFactory) -> None:
    rig = await make_rig()
    await rig.observer.publish("ven/cmd/ven-1", b"not json", qos=1)
    await rig.observer.publish("ven/cmd/ven-1", b"[1, 2]", qos=1)
    await rig.send("ven-1", op="event", correlationId="c-3", shed_kw=True)
    assert (await rig.ack("ven-1"))["status"] == "rejected"
    await rig.send("ven-1", op="dance", correlationId="c-4")
    assert (await rig.ack("ven-1"))["status"] == "rejected"
    await rig.send("ven-1", op="ping", correlationId="c-5")
    assert (await rig.ack("ven-1"))["correlationId"] == "c-5"


# --- rejecting and silent VENs -------------------------------------------------------------


def test_fractions_pick_exact_counts_deterministically_from_the_seed() -> None:
    config = FleetConfig(count=100, seed=4, reject_fraction=0.2, silent_fraction=0.1)
    behaviours = assign_behaviours(config)
    assert behaviours.count(Behaviour.REJECTING) == 20
    assert behaviours.count(Behaviour.SILENT) == 10
    assert assign_behaviours(config) == behaviours
    other = FleetConfig(count=100, seed=5, reject_fraction=0.2, silent_fraction=0.1)
    assert assign_behaviours(other) != behaviours


@pytest.mark.parametrize(
    "options",
    [{"count": 0}, {"count": 1, "interval": 0}, {"count": 1, "reject_fraction": 1.5},
     {"count": 1, "reject_fraction": 0.6, "silent_fraction": 0.6}, {"count": 1, "prefix": "a/b"}],
)  # fmt: skip
def test_bad_options_are_refused(options: dict[str, Any]) -> None:
    with pytest.raises(ValueError):  # noqa: PT011 - each option has its own message
        FleetConfig(**options)


async def test_a_rejecting_ven_refuses_events_but_answers_pings(make_rig: RigFactory) -> None:
    rig = await make_rig(count=1, reject_fraction=1.0)
    await rig.send("ven-1", **event("evt-0a0b0c0d-0000000b", 2.0))
    ack = await rig.ack("ven-1")
    assert (ack["status"], ack["actual_shed_kw"], ack["circuits_curtailed"]) == (
        "rejected", 0.0, [],
    )  # fmt: skip
    assert ack["correlationId"] == "evt-0a0b0c0d-0000000b" and ack["requested_shed_kw"] == 2.0
    assert not rig.fleet.vens["ven-1"].state.active
    await rig.send("ven-1", op="ping", correlationId="c-6")
    assert (await rig.ack("ven-1"))["status"] == "pong"


async def test_a_silent_ven_never_acks_but_keeps_reporting(make_rig: RigFactory) -> None:
    rig = await make_rig(count=1, silent_fraction=1.0)
    await rig.send("ven-1", **event("evt-0a0b0c0d-0000000c", 2.0))
    await rig.send("ven-1", op="ping", correlationId="c-7")
    await rig.no_ack("ven-1")
    await rig.sample("ven-1", lambda b: "eventId" not in b)


# --- the fleet ---------------------------------------------------------------------------


async def test_telemetry_is_spread_over_the_interval(make_rig: RigFactory) -> None:
    rig = await make_rig(count=10, interval=0.5, vens_per_connection=4)
    assert len(rig.transports) == 3
    firsts = [(await asyncio.wait_for(rig.telemetry[f"ven-{n}"].get(), WAIT))[0]
              for n in range(1, 11)]  # fmt: skip
    assert max(firsts) - min(firsts) >= 0.25  # ideally 0.45: one VEN every 50 ms
    assert sorted(firsts) == firsts  # in VEN order, each at its own phase


async def test_cancelling_the_fleet_closes_its_connections() -> None:
    broker = InMemoryBroker()
    opened: list[InMemoryTransport] = []

    async def connect(n: int) -> MessageTransport:
        opened.append(broker.connect(f"sim-{n}"))
        return opened[-1]

    ready = asyncio.Event()
    fleet = Fleet(FleetConfig(count=5, interval=0.05, vens_per_connection=2), connect)
    task = asyncio.create_task(fleet.run(ready))
    await asyncio.wait_for(ready.wait(), WAIT)
    await asyncio.sleep(0.2)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await asyncio.wait_for(task, WAIT)
    assert len(opened) == 3 and all(t.closed for t in opened)
    assert fleet.stats.reports >= 5


# --- run_simulator: wiring from settings ------------------------------------------------------


def settings(**values: Any) -> Settings:
    return Settings(_env_file=None, **values)  # type: ignore[call-arg]


async def test_run_simulator_on_the_demo_broker_publishes_to_the_configured_metering_topic(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("MQTT_TOPIC_METERING", raising=False)
    broker = InMemoryBroker()
    worker = broker.connect("worker")
    await worker.subscribe("site-a/metering")
    ready = asyncio.Event()
    task = asyncio.create_task(
        run_simulator(settings(mqtt_topic_metering="site-a/metering"), 3, prefix="demo",
                      interval=0.05, broker=broker, utc_offset_s=0, ready=ready)
    )  # fmt: skip
    try:
        await asyncio.wait_for(ready.wait(), WAIT)
        seen: set[str] = set()
        async with asyncio.timeout(WAIT):
            async for message in worker.messages():
                seen.add(json.loads(message.payload)["venId"])
                if len(seen) == 3:
                    break
        assert seen == {"demo-1", "demo-2", "demo-3"}
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


async def test_run_simulator_says_which_setting_is_missing(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("MQTT_BROKER", "IOT_ENDPOINT"):
        monkeypatch.delenv(name, raising=False)
    with pytest.raises(ValueError, match="MQTT_BROKER"):
        await run_simulator(settings(), 1)
