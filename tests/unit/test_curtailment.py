"""The VEN-side curtailment plan of the DR event flow document."""

from __future__ import annotations

import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gridcore import SHED_ORDER, Circuit, CircuitCurtailment, LoadType, classify_load
from gridcore import plan_curtailment as plan
from gridcore.quantities import to_watts


def home() -> list[Circuit]:
    """A panel like the documents' example home, listed out of shed order."""
    return [
        Circuit(id="lights1", name="Lighting", current_kw=0.6, breaker_amps=15),
        Circuit(id="hvac1", name="Main HVAC", current_kw=4.0, breaker_amps=40),
        Circuit(id="outlets1", name="General Outlets", current_kw=1.0, breaker_amps=20),
        Circuit(id="heater1", name="Water Heater", current_kw=3.2, breaker_amps=30),
        Circuit(id="fridge1", name="Refrigerator", current_kw=0.2, breaker_amps=15),
        Circuit(id="range1", name="Kitchen Range", current_kw=2.0, breaker_amps=40),
        Circuit(id="ev1", name="EV Charger", current_kw=8.5, breaker_amps=50),
        Circuit(id="pool1", name="Pool Pump", current_kw=1.5, breaker_amps=20),
        Circuit(id="medical", name="Oxygen outlet", current_kw=0.5, critical=True),
    ]


def shed_of(result: tuple[CircuitCurtailment, ...]) -> list[tuple[str, float]]:
    return [(line.id, line.curtailed_kw) for line in result]


# --- examples ---------------------------------------------------------------


def test_documents_example_sheds_ev_charger_then_water_heater_fully() -> None:
    result = plan(home(), 11.7)
    assert result.circuits == (
        CircuitCurtailment(
            id="ev1",
            name="EV Charger",
            breaker_amps=50,
            original_kw=8.5,
            curtailed_kw=8.5,
            final_kw=0.0,
            critical=False,
        ),
        CircuitCurtailment(
            id="heater1",
            name="Water Heater",
            breaker_amps=30,
            original_kw=3.2,
            curtailed_kw=3.2,
            final_kw=0.0,
            critical=False,
        ),
    )
    assert result.curtailed_kw == 11.7
    assert result.target_met
    assert result.shortfall_kw == 0.0


def test_stops_as_soon_as_the_target_is_met() -> None:
    assert shed_of(plan(home(), 8.5).circuits) == [("ev1", 8.5)]


def test_last_circuit_is_shed_partially() -> None:
    result = plan(home(), 10.0)
    assert shed_of(result.circuits) == [("ev1", 8.5), ("heater1", 1.5)]
    heater = result.circuits[1]
    assert (heater.original_kw, heater.final_kw) == (3.2, 1.7)


def test_documents_five_kw_share_is_taken_from_the_ev_charger_alone() -> None:
    result = plan(home(), 5.0)
    assert shed_of(result.circuits) == [("ev1", 5.0)]
    assert result.circuits[0].final_kw == 3.5


def test_full_shed_follows_the_priority_list_with_its_fractions() -> None:
    circuits = [*home(), Circuit(id="dryer1", name="Clothes Dryer", current_kw=5.0)]
    result = plan(circuits, 100.0)
    assert shed_of(result.circuits) == [
        ("ev1", 8.5),
        ("heater1", 3.2),
        ("dryer1", 5.0),
        ("range1", 1.6),  # 80 % of 2.0
        ("outlets1", 0.7),  # 70 % of 1.0
        ("lights1", 0.3),  # 50 % of 0.6
    ]
    assert result.curtailed_kw == 19.3
    assert not result.target_met
    assert result.shortfall_kw == 80.7


def test_hvac_refrigerator_and_critical_flagged_circuits_are_never_shed() -> None:
    result = plan(home(), 1000.0)
    shed_ids = {line.id for line in result.circuits}
    assert shed_ids.isdisjoint({"hvac1", "fridge1", "medical"})
    assert all(line.critical is False for line in result.circuits)


def test_a_critical_flag_protects_even_a_sheddable_type() -> None:
    circuits = [
        Circuit(id="ev1", name="EV Charger", current_kw=7.0, critical=True),
        Circuit(id="heater1", name="Water Heater", current_kw=3.0),
    ]
    assert shed_of(plan(circuits, 5.0).circuits) == [("heater1", 3.0)]


def test_types_outside_the_list_and_disabled_or_idle_circuits_are_not_shed() -> None:
    circuits = [
        Circuit(id="pool1", name="Pool Pump", current_kw=2.0),
        Circuit(id="mystery", name="Workshop", current_kw=2.0),
        Circuit(id="ev-off", name="EV Charger", current_kw=7.0, enabled=False),
        Circuit(id="ev-idle", name="EV Charger", current_kw=0.0),
        Circuit(id="ev-nan", name="EV Charger", current_kw=math.nan),
        Circuit(id="solar", type="ev", current_kw=-3.0),
    ]
    result = plan(circuits, 5.0)
    assert result.circuits == ()
    assert result.shortfall_kw == 5.0


def test_equal_rank_circuits_are_shed_in_id_order() -> None:
    circuits = [
        Circuit(id="ev-b", type="ev", current_kw=4.0),
        Circuit(id="ev-a", type="ev", current_kw=4.0),
    ]
    assert shed_of(plan(circuits, 6.0).circuits) == [("ev-a", 4.0), ("ev-b", 2.0)]


def test_zero_target_sheds_nothing() -> None:
    result = plan(home(), 0.0)
    assert result.circuits == ()
    assert result.target_met


@pytest.mark.parametrize("target", [-0.1, math.nan, math.inf, True])
def test_bad_target_is_refused(target: float) -> None:
    with pytest.raises(ValueError, match="target_kw"):
        plan(home(), target)


def test_sheddable_kw_is_the_types_fraction_of_the_draw() -> None:
    assert Circuit(id="r", name="Kitchen Range", current_kw=2.5).sheddable_kw == 2.0
    assert Circuit(id="o", name="General Outlets", current_kw=1.0).sheddable_kw == 0.7
    assert Circuit(id="l", name="Lighting", current_kw=0.9).sheddable_kw == 0.45
    assert Circuit(id="h", name="Main HVAC", current_kw=4.0).sheddable_kw == 0.0


def test_shed_order_matches_the_document() -> None:
    assert SHED_ORDER == (
        (LoadType.EV_CHARGER, 1.0),
        (LoadType.WATER_HEATER, 1.0),
        (LoadType.DRYER, 1.0),
        (LoadType.RANGE, 0.8),
        (LoadType.OUTLETS, 0.7),
        (LoadType.LIGHTING, 0.5),
    )


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("Main HVAC", LoadType.HVAC),
        ("EV Charger", LoadType.EV_CHARGER),
        ("Water Heater", LoadType.WATER_HEATER),
        ("Kitchen Range", LoadType.RANGE),
        ("Lighting", LoadType.LIGHTING),
        ("General Outlets", LoadType.OUTLETS),
        ("Pool Pump", LoadType.POOL_PUMP),
        ("Refrigerator", LoadType.REFRIGERATOR),
        ("Clothes Dryer", LoadType.DRYER),
        ("Heat pump water heater", LoadType.WATER_HEATER),
        ("Garage EV", LoadType.EV_CHARGER),
        ("Pool Light", LoadType.LIGHTING),
        ("Garage Door", LoadType.OTHER),
        ("", LoadType.OTHER),
    ],
)
def test_classify_load_by_name(name: str, expected: LoadType) -> None:
    assert classify_load(None, name) == expected


@pytest.mark.parametrize(
    ("load_type", "expected"),
    [
        ("ev", LoadType.EV_CHARGER),
        ("EV", LoadType.EV_CHARGER),
        ("water heater", LoadType.WATER_HEATER),
        ("Water-Heater", LoadType.WATER_HEATER),
        ("hvac", LoadType.HVAC),
        ("lights", LoadType.LIGHTING),
    ],
)
def test_classify_load_by_reported_type(load_type: str, expected: LoadType) -> None:
    assert classify_load(load_type) == expected


def test_a_known_reported_type_wins_over_the_name() -> None:
    assert classify_load("hvac", "EV Charger") == LoadType.HVAC


def test_an_unknown_reported_type_falls_back_to_the_name() -> None:
    assert classify_load("circuit", "EV Charger") == LoadType.EV_CHARGER
    assert classify_load(None, None) == LoadType.OTHER


# --- properties -----------------------------------------------------------

# (reported type, rank in the shed order or None when never shed, fraction)
KINDS: list[tuple[str, int | None, float]] = [
    ("ev", 0, 1.0),
    ("water_heater", 1, 1.0),
    ("dryer", 2, 1.0),
    ("range", 3, 0.8),
    ("outlets", 4, 0.7),
    ("lighting", 5, 0.5),
    ("hvac", None, 0.0),
    ("refrigerator", None, 0.0),
    ("pool_pump", None, 0.0),
    ("solar", None, 0.0),
]
KIND = {name: (rank, fraction) for name, rank, fraction in KINDS}

draw_kw = st.one_of(
    st.just(0.0),
    st.floats(min_value=0.0, max_value=20.0, allow_nan=False),
    st.floats(min_value=-5.0, max_value=0.0, allow_nan=False),
)


@st.composite
def panels(draw: st.DrawFn) -> list[Circuit]:
    ids = draw(st.lists(st.text("abcdef0123", min_size=1, max_size=4), unique=True, max_size=12))
    return [
        Circuit(
            id=circuit_id,
            type=draw(st.sampled_from([name for name, _, _ in KINDS])),
            current_kw=draw(draw_kw),
            critical=draw(st.booleans()),
            enabled=draw(st.booleans()),
        )
        for circuit_id in ids
    ]


targets = st.floats(min_value=0.0, max_value=80.0, allow_nan=False)
PROPERTY = settings(deadline=None, max_examples=200)


def rank_of(circuit: Circuit) -> int | None:
    """The reference rank, from the table above, not from the module under test."""
    assert circuit.type is not None
    rank, _ = KIND[circuit.type]
    return None if circuit.critical else rank


def share_w(circuit: Circuit) -> int:
    """Most a circuit may give, in watts: its type's fraction of its draw."""
    assert circuit.type is not None
    rank, fraction = KIND[circuit.type]
    if rank is None or circuit.critical or not circuit.enabled or circuit.current_kw <= 0:
        return 0
    return to_watts(circuit.current_kw * fraction)


@PROPERTY
@given(circuits=panels(), target=targets)
def test_never_sheds_a_critical_circuit(circuits: list[Circuit], target: float) -> None:
    by_id = {c.id: c for c in circuits}
    for line in plan(circuits, target).circuits:
        circuit = by_id[line.id]
        assert not circuit.critical
        assert circuit.type not in ("hvac", "refrigerator")
        assert line.critical is False


@PROPERTY
@given(circuits=panels(), target=targets)
def test_priority_order_is_respected(circuits: list[Circuit], target: float) -> None:
    """A circuit is shed only when every circuit before it in the shed order
    (higher priority, or equal priority and a smaller id) gave its full share."""
    result = plan(circuits, target)
    shed = {line.id: to_watts(line.curtailed_kw) for line in result.circuits}
    sheddable = sorted(
        (c for c in circuits if rank_of(c) is not None and share_w(c) > 0),
        key=lambda c: (rank_of(c), c.id),
    )
    assert [line.id for line in result.circuits] == [c.id for c in sheddable][: len(shed)]
    for position, circuit in enumerate(sheddable):
        if circuit.id in shed:
            for earlier in sheddable[:position]:
                assert shed[earlier.id] == share_w(earlier)


@PROPERTY
@given(circuits=panels(), target=targets)
def test_each_circuit_gives_at_most_its_share_and_final_is_original_minus_curtailed(
    circuits: list[Circuit], target: float
) -> None:
    by_id = {c.id: c for c in circuits}
    for line in plan(circuits, target).circuits:
        circuit = by_id[line.id]
        curtailed = to_watts(line.curtailed_kw)
        assert 0 < curtailed <= share_w(circuit)
        assert line.original_kw is not None
        assert line.final_kw is not None
        assert to_watts(line.original_kw) == to_watts(circuit.current_kw)
        assert to_watts(line.final_kw) == to_watts(line.original_kw) - curtailed
        assert line.final_kw >= 0.0


@PROPERTY
@given(circuits=panels(), target=targets)
def test_target_met_when_possible_and_never_exceeded(
    circuits: list[Circuit], target: float
) -> None:
    result = plan(circuits, target)
    curtailed = sum(to_watts(line.curtailed_kw) for line in result.circuits)
    available = sum(share_w(c) for c in circuits)
    assert curtailed <= to_watts(target)
    assert to_watts(result.curtailed_kw) == curtailed
    if available >= to_watts(target):
        assert curtailed == to_watts(target)
        assert result.target_met
        assert result.shortfall_kw == 0.0
    else:
        # Short of the target: everything sheddable was shed.
        assert curtailed == available
        assert not result.target_met
        assert to_watts(result.shortfall_kw) == to_watts(target) - available


@PROPERTY
@given(circuits=panels(), target=targets)
def test_plan_does_not_depend_on_the_order_circuits_are_listed(
    circuits: list[Circuit], target: float
) -> None:
    assert plan(list(reversed(circuits)), target) == plan(circuits, target)
