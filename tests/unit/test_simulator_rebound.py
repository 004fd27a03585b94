"""Rebound: after a restore the loads that were held catch up - above the
load of the same home with no event, decaying back to it - deterministically,
and more after a longer hold."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

from entrypoints.simulator import SimulatedVen
from entrypoints.simulator.panel import generate_panel
from entrypoints.simulator.shedding import REBOUND_TAU_S, Rebound
from gridcore.ven import LoadType

START = datetime(2025, 7, 10, 18, 0, tzinfo=UTC)  # a Thursday evening
VENS = range(1, 21)


def used(ven: SimulatedVen, at: datetime) -> float:
    """usedPowerKw of the VEN's telemetry at ``at``."""
    metering = next(m for m in ven.report(at) if m.topic == "volttron/metering")
    return float(json.loads(metering.payload)["usedPowerKw"])


def event(shed_kw: float, duration_s: float) -> bytes:
    return json.dumps(
        {"op": "event", "correlationId": "evt-0a0b0c0d-00000001", "event_id": "evt-0a0b0c0d",
         "shed_kw": shed_kw, "duration_sec": duration_s}
    ).encode()  # fmt: skip


def twins(n: int) -> tuple[SimulatedVen, SimulatedVen]:
    return SimulatedVen(f"ven-{n}", generate_panel(1, n, 0)), SimulatedVen(
        f"ven-{n}", generate_panel(1, n, 0)
    )


def after_event(hold: timedelta, *, restore: bool) -> tuple[list[float], list[float]]:
    """The fleet's kW every 3 minutes for 90 minutes after an event of
    ``hold`` ends (by a restore command, or by running its time), beside the
    same fleet with no event; both read at the same instants throughout."""
    shed, plain = [0.0] * 30, [0.0] * 30
    end = START + hold
    for n in VENS:
        ven, twin = twins(n)
        ven.handle(event(8.0, 86_400 if restore else hold.total_seconds()), START)
        at = START
        while at < end:  # telemetry through the event, as live
            used(ven, at), used(twin, at)
            at += timedelta(minutes=1)
        if restore:
            ack = json.loads(ven.handle(b'{"op":"restore","correlationId":"r-1"}', end)[0].payload)
            assert ack["status"] == "success"
        for k in range(30):
            at = end + timedelta(minutes=3 * k)
            shed[k] += used(ven, at)
            plain[k] += used(twin, at)
    return shed, plain


def test_after_a_restore_the_load_rebounds_above_the_no_event_load_and_decays() -> None:
    shed, plain = after_event(timedelta(hours=1), restore=True)
    excess = [s - p for s, p in zip(shed, plain, strict=True)]
    assert excess[0] > 0.15 * plain[0]  # a clear rebound right after the restore
    assert all(e >= -1e-6 for e in excess)  # never below the home without an event
    assert excess[5] < excess[0] and excess[10] < excess[5]  # decaying
    assert abs(excess[-1]) < 0.02 * plain[-1]  # and gone after 90 minutes


def test_an_event_that_runs_its_time_rebounds_too() -> None:
    shed, plain = after_event(timedelta(minutes=45), restore=False)
    assert shed[0] - plain[0] > 0.1 * plain[0]


def test_a_longer_hold_rebounds_more_and_longer() -> None:
    short_shed, short_plain = after_event(timedelta(minutes=15), restore=True)
    long_shed, long_plain = after_event(timedelta(hours=2), restore=True)
    short_kwh = sum(s - p for s, p in zip(short_shed, short_plain, strict=True))
    long_kwh = sum(s - p for s, p in zip(long_shed, long_plain, strict=True))
    assert long_kwh > 2 * short_kwh > 0


def test_the_rebound_is_the_same_for_the_same_seed_and_instants() -> None:
    first = after_event(timedelta(minutes=30), restore=True)
    again = after_event(timedelta(minutes=30), restore=True)
    assert first == again


def test_only_deferrable_loads_rebound_within_their_rating_and_time() -> None:
    seen: set[LoadType] = set()
    for n in VENS:
        ven, _ = twins(n)
        ven.handle(event(20.0, 86_400), START)
        end = START + timedelta(hours=1)
        ven.handle(b'{"op":"restore","correlationId":"r-1"}', end)
        for circuit_id, rebound in ven.state.rebounds.items():
            spec = ven.panel.circuit(circuit_id)
            assert spec is not None
            seen.add(spec.type)
            assert REBOUND_TAU_S[0] <= rebound.tau_s <= REBOUND_TAU_S[1]
            assert rebound.start == end.timestamp()
        for reading in ven.readings(end.timestamp() + 1):
            assert reading.kw <= max(reading.spec.rated_kw, 0.0) * 1.05
    assert seen and seen <= {LoadType.WATER_HEATER, LoadType.EV_CHARGER, LoadType.DRYER}


def test_a_rebound_decays_exponentially_and_ends() -> None:
    rebound = Rebound(start=1000.0, peak_kw=4.0, tau_s=600.0)
    assert rebound.extra_kw(999.0) == 0.0
    assert rebound.extra_kw(1000.0) == 4.0
    assert abs(rebound.extra_kw(1600.0) - 4.0 / 2.718281828) < 1e-6
    assert abs(rebound.remaining_kwh(1000.0) - 4.0 * 600 / 3600) < 1e-9
    assert not rebound.over(1000.0 + 5 * 600) and rebound.over(1001.0 + 5 * 600)
