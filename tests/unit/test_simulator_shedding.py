"""A simulated VEN's curtailment state: plans from gridcore, a baseline fixed
at the first curtailment, restores and expiries."""

from __future__ import annotations

from entrypoints.simulator.panel import CircuitSpec
from entrypoints.simulator.shedding import CircuitReading, ShedState
from gridcore.ven import LoadType

SPECS = (
    CircuitSpec("circuit_1", "Main HVAC", LoadType.HVAC, 30, 4.0, critical=True),
    CircuitSpec("circuit_2", "EV Charger", LoadType.EV_CHARGER, 40, 7.7),
    CircuitSpec("circuit_3", "Water Heater", LoadType.WATER_HEATER, 30, 4.5),
    CircuitSpec("circuit_4", "Lighting", LoadType.LIGHTING, 15, 1.0),
    CircuitSpec("circuit_5", "Solar PV", LoadType.SOLAR, 40, 5.0),
)
NATURAL = {
    "circuit_1": 3.0,
    "circuit_2": 7.0,
    "circuit_3": 4.0,
    "circuit_4": 0.8,
    "circuit_5": -2.0,
}


def used(state: ShedState, natural: dict[str, float] = NATURAL) -> float:
    return round(sum(r.kw for r in state.readings(SPECS, natural)), 3)


def start(state: ShedState, target: float, cid: str = "c1", **kw: object) -> list[str]:
    plan = state.start_event(
        state.readings(SPECS, NATURAL), target, event_id="evt-1", correlation_id=cid,
        now=1000.0, duration_s=kw.get("duration_s", 60.0),  # type: ignore[arg-type]
    )  # fmt: skip
    return [line.id for line in plan.circuits]


def test_an_event_sheds_in_priority_order_and_never_critical_loads() -> None:
    state = ShedState()
    assert start(state, 9.0) == ["circuit_2", "circuit_3"]
    readings = {r.spec.id: r for r in state.readings(SPECS, NATURAL)}
    assert readings["circuit_2"].kw == 0 and not readings["circuit_2"].enabled
    assert readings["circuit_3"].kw == 2.0 and readings["circuit_3"].enabled  # capped at 2 kW
    assert readings["circuit_1"].kw == 3.0 and readings["circuit_5"].kw == -2.0
    assert state.shed_kw(used(state)) == 9.0


def test_the_baseline_is_fixed_at_the_start_and_survives_a_re_plan() -> None:
    state = ShedState()
    start(state, 5.0)
    assert state.baseline_kw == 12.8
    hotter = dict(NATURAL, circuit_1=4.0)  # the household's draw moves during the event
    assert state.baseline_kw == 12.8 and state.shed_kw(used(state, hotter)) == 4.0
    start(state, 10.0, cid="c2")  # re-plan from the uncurtailed circuits, not on top
    assert state.baseline_kw == 12.8
    assert state.shed_kw(used(state)) == 10.0
    state.restore()
    assert state.shed_kw(used(state)) == 0.0
    assert state.baseline_kw is None  # last: mypy narrows the attribute for what follows


def test_a_re_plan_to_a_smaller_target_gives_back_what_is_no_longer_needed() -> None:
    state = ShedState()
    start(state, 10.0)
    start(state, 3.0, cid="c2")
    assert state.shed_kw(used(state)) == 3.0


def test_an_event_expires_after_its_duration() -> None:
    state = ShedState()
    start(state, 5.0, duration_s=30.0)
    assert state.next_expiry() == 1030.0
    assert state.expire(1029.0) is None and state.active
    ended = state.expire(1030.0)
    assert ended is not None and ended.event_id == "evt-1"
    assert state.next_expiry() is None and used(state) == 12.8
    assert not state.active


def test_a_late_restore_of_another_event_leaves_the_current_one_alone() -> None:
    state = ShedState()
    start(state, 5.0)
    state.restore("evt-0")
    assert state.event is not None and state.shed_kw(used(state)) == 5.0
    state.restore("evt-1")
    assert not state.active


def test_a_load_shed_holds_one_circuit_and_events_plan_around_it() -> None:
    state = ShedState()
    readings = state.readings(SPECS, NATURAL)
    line = state.shed_load(
        readings[1], None, all_readings=readings, event_id=None, now=0.0, duration_s=10.0
    )
    assert (line.original_kw, line.curtailed_kw, line.final_kw) == (7.0, 7.0, 0.0)
    assert state.shed_kw(used(state)) == 7.0
    assert start(state, 2.0) == ["circuit_3"]  # the EV charger is already off
    assert state.shed_kw(used(state)) == 9.0
    state.expire(10.0)  # the load shed ran out; the event goes on
    assert state.event is not None and state.shed_kw(used(state)) == 2.0


def test_a_partial_load_shed_caps_the_circuit() -> None:
    state = ShedState()
    readings = state.readings(SPECS, NATURAL)
    line = state.shed_load(
        readings[2], 1.5, all_readings=readings, event_id="evt-1", now=0.0, duration_s=None
    )
    assert (line.curtailed_kw, line.final_kw, line.critical) == (1.5, 2.5, False)
    capped = next(r for r in state.readings(SPECS, NATURAL) if r.spec.id == "circuit_3")
    assert capped == CircuitReading(SPECS[2], 2.5, 4.0, True)
    assert capped.shed_capability_kw == 4.0  # judged on the uncurtailed draw
