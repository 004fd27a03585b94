"""The simulated VEN's panel: daily variation, determinism by seed, solar,
battery bounds, and payloads the backend's own wire models accept."""

from __future__ import annotations

import json
from datetime import UTC, datetime

from hypothesis import given
from hypothesis import strategies as st

from adapters.mqtt.payloads import (
    LoadSnapshotWire,
    ShadowUpdateWire,
    TelemetryWire,
    merge_loads,
)
from entrypoints.simulator import SimulatedVen
from entrypoints.simulator.panel import Battery, Panel, generate_panel
from entrypoints.simulator.profiles import PROFILES
from gridcore.ven import LoadType

DAY = datetime(2025, 7, 10, tzinfo=UTC).timestamp()  # midnight UTC


def at(hour: float) -> float:
    return DAY + hour * 3600


def total_kw(panel: Panel, epoch: float) -> float:
    return sum(panel.read(epoch).values())


def panel_with(load_type: LoadType, seed: int = 0) -> Panel:
    for n in range(1, 500):
        panel = generate_panel(seed, n)
        if any(c.type is load_type for c in panel.circuits):
            return panel
    raise AssertionError(f"no panel with {load_type} in 500 VENs")


# --- shape of a home ----------------------------------------------------------


def test_a_panel_is_240_v_of_a_standard_size_with_critical_hvac_and_fridge() -> None:
    for n in range(1, 50):
        panel = generate_panel(7, n)
        assert panel.voltage == 240
        assert panel.amperage in (100, 150, 200)
        assert panel.max_kw == panel.amperage * 240 / 1000
        kinds = {c.type: c for c in panel.circuits}
        assert kinds[LoadType.HVAC].critical and kinds[LoadType.REFRIGERATOR].critical
        for kind in (LoadType.WATER_HEATER, LoadType.DRYER, LoadType.RANGE, LoadType.LIGHTING):
            assert not kinds[kind].critical
        assert len({c.id for c in panel.circuits}) == len(panel.circuits)


def test_a_fleet_mixes_panel_sizes_and_optional_equipment() -> None:
    panels = [generate_panel(3, n) for n in range(1, 201)]
    assert {p.amperage for p in panels} == {100, 150, 200}
    for kind in (LoadType.EV_CHARGER, LoadType.SOLAR, LoadType.BATTERY):
        having = sum(any(c.type is kind for c in p.circuits) for p in panels)
        assert 0 < having < len(panels), kind


# --- over the day ---------------------------------------------------------------


def test_the_fleet_draws_more_in_the_evening_than_before_dawn() -> None:
    panels = [generate_panel(11, n) for n in range(1, 101)]
    night = sum(total_kw(p, at(3.5)) for p in panels)
    evening = sum(total_kw(p, at(19.0)) for p in panels)
    assert evening > 1.5 * night


def test_lighting_follows_its_daily_profile() -> None:
    panel = generate_panel(5, 1)
    lighting = next(c for c in panel.circuits if c.type is LoadType.LIGHTING)
    draws = {hour: panel.read(at(hour))[lighting.id] for hour in (3.0, 12.0, 20.5)}
    assert draws[20.5] > draws[12.0] and draws[20.5] > draws[3.0]


def test_power_varies_between_samples_but_stays_within_ratings() -> None:
    panel = generate_panel(2, 4)
    samples = [panel.read(at(18.0) + 5 * k) for k in range(60)]
    totals = {round(sum(s.values()), 3) for s in samples}
    assert len(totals) > 10  # noisy, not a constant
    for sample in samples:
        for spec in panel.circuits:
            if spec.type not in (LoadType.SOLAR, LoadType.BATTERY):
                assert 0.0 <= sample[spec.id] <= spec.rated_kw * 1.05


def test_cycling_loads_are_on_or_off_for_whole_slots() -> None:
    panel = panel_with(LoadType.EV_CHARGER)
    ev = next(c for c in panel.circuits if c.type is LoadType.EV_CHARGER)
    slot = PROFILES[LoadType.EV_CHARGER].slot_s
    start = at(20.0) - at(20.0) % slot
    states = {panel.read(start + 5 * k)[ev.id] > 0 for k in range(slot // 5)}
    assert len(states) == 1


# --- determinism ---------------------------------------------------------------


def test_the_same_seed_gives_the_same_panels_and_the_same_readings() -> None:
    first, second = generate_panel(42, 9), generate_panel(42, 9)
    assert first.circuits == second.circuits and first.amperage == second.amperage
    times = [at(h / 4) for h in range(96)]
    assert [first.read(t) for t in times] == [second.read(t) for t in times]


def test_another_seed_gives_other_panels() -> None:
    fleet_a = [generate_panel(1, n).circuits for n in range(1, 21)]
    fleet_b = [generate_panel(2, n).circuits for n in range(1, 21)]
    assert fleet_a != fleet_b


def test_readings_do_not_depend_on_what_else_was_read() -> None:
    """Noise is a function of time, not of call order (batteries aside)."""
    n = next(n for n in range(1, 50) if generate_panel(8, n).battery is None)
    panel = generate_panel(8, n)
    lone = generate_panel(8, n).read(at(13.0))
    for hour in (1.0, 7.0, 12.0):
        panel.read(at(hour))
    assert panel.read(at(13.0)) == lone


# --- solar and battery ------------------------------------------------------------


def test_solar_is_negative_power_by_day_and_zero_at_night() -> None:
    panel = panel_with(LoadType.SOLAR)
    solar = next(c for c in panel.circuits if c.type is LoadType.SOLAR)
    panel.hour_shift = 0.0
    assert panel.read(at(12.5))[solar.id] < 0
    assert panel.read(at(23.0))[solar.id] == 0
    assert panel.read(at(12.5))[solar.id] >= -solar.rated_kw


def test_battery_state_of_charge_stays_within_bounds_over_days() -> None:
    panel = panel_with(LoadType.BATTERY)
    assert panel.battery is not None
    socs = []
    for step in range(3 * 24 * 12):  # three days in 5-minute steps
        panel.read(at(0) + step * 300)
        socs.append(panel.battery.soc)
    assert all(0.0 <= soc <= 100.0 for soc in socs)
    assert max(socs) - min(socs) > 10  # it does charge and discharge


@given(
    soc=st.floats(0, 100),
    steps=st.lists(st.tuples(st.floats(-20, 20), st.floats(0, 7200)), max_size=30),
)
def test_a_battery_never_leaves_0_to_100_percent(
    soc: float, steps: list[tuple[float, float]]
) -> None:
    battery = Battery(capacity_kwh=13.5, max_kw=5.0, soc=soc)
    for wanted, dt in steps:
        kw = battery.step(wanted, dt)
        assert -5.0 <= kw <= 5.0
        assert 0.0 <= battery.soc <= 100.0


def test_a_full_battery_does_not_charge_and_an_empty_one_does_not_discharge() -> None:
    assert Battery(13.5, 5.0, soc=100.0).step(5.0, 300) == 0.0
    assert Battery(13.5, 5.0, soc=10.0).step(-5.0, 300) == 0.0
    assert Battery(13.5, 5.0, soc=100.0).step(5.0, 0) == 0.0


# --- what goes on the wire ------------------------------------------------------------


def test_telemetry_is_the_documents_payload_and_the_backend_parses_it() -> None:
    ven = SimulatedVen("ven-1", panel_with(LoadType.BATTERY))
    metering, per_ven, shadow, loads = ven.report(datetime.fromtimestamp(at(18), UTC))
    assert metering.topic == "volttron/metering" and per_ven.topic == "ven/telemetry/ven-1"
    assert metering.payload == per_ven.payload and metering.qos == 0
    body = json.loads(metering.payload)
    assert list(body) == [
        "venId", "timestamp", "usedPowerKw", "shedPowerKw", "baselinePowerKw", "batterySOC",
        "panelAmperageRating", "panelVoltage", "panelMaxKw", "currentAmps",
        "panelUtilizationPercent", "circuits", "loads",
    ]  # fmt: skip
    assert body["timestamp"] == int(at(18)) and body["shedPowerKw"] == 0.0
    assert body["baselinePowerKw"] == body["usedPowerKw"]
    assert 0 <= body["batterySOC"] <= 100
    assert body["currentAmps"] == round(abs(body["usedPowerKw"]) * 1000 / 240, 2)
    assert set(body["circuits"][0]) == {
        "id", "name", "breakerAmps", "currentKw", "currentAmps", "enabled", "critical",
    }  # fmt: skip
    assert set(body["loads"][0]) == {
        "loadId", "name", "type", "capacityKw", "currentPowerKw", "shedCapabilityKw",
        "enabled", "priority",
    }  # fmt: skip
    wire = TelemetryWire.model_validate_json(metering.payload)
    assert wire.ven_id == "ven-1" and wire.battery_soc == body["batterySOC"]
    merged = merge_loads(wire.circuits, wire.loads)
    assert [m.load_id for m in merged] == [c.id for c in ven.panel.circuits]
    assert all(m.shed_capability_kw == 0 for m in merged if m.critical)

    assert shadow.topic == "$aws/things/ven-1/shadow/update"
    reported = ShadowUpdateWire.model_validate_json(shadow.payload).state.reported
    assert reported is not None and reported["active_event"] is None
    assert reported["panel_amperage"] == ven.panel.amperage
    assert loads.topic == "ven/loads/ven-1"
    snapshot = LoadSnapshotWire.model_validate_json(loads.payload)
    assert snapshot.schema_version == "1.0" and len(snapshot.loads) == len(ven.panel.circuits)


def test_shadow_and_load_snapshots_go_out_every_sixth_cycle() -> None:
    ven = SimulatedVen("ven-2", generate_panel(0, 2))
    counts = [len(ven.report(datetime.fromtimestamp(at(9) + 5 * k, UTC))) for k in range(13)]
    assert counts == [4, 2, 2, 2, 2, 2, 4, 2, 2, 2, 2, 2, 4]


def test_a_home_without_battery_reports_a_null_soc() -> None:
    panel = next(p for n in range(1, 50) if (p := generate_panel(0, n)).battery is None)
    (metering, *_) = SimulatedVen("ven-3", panel).report(datetime.fromtimestamp(at(9), UTC))
    assert json.loads(metering.payload)["batterySOC"] is None
