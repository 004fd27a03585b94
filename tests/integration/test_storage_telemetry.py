"""Contract of TelemetryStore and TelemetryQueries, the same for every backend:
memory, SQLite, PostgreSQL."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from storage_contract import BACKENDS, Backend, open_backend

from gridcore.telemetry import LoadSample, LoadTypeStats, TelemetrySample
from gridcore.ven import Load, Ven

T0 = datetime(2024, 7, 10, 15, 0, tzinfo=UTC)
MINUTE = timedelta(minutes=1)


@pytest.fixture(params=BACKENDS)
async def backend(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Backend]:
    async for opened in open_backend(request, tmp_path):
        yield opened


def sample(
    ven_id: str = "ven-001",
    at: datetime = T0,
    used: float = 8.0,
    shed: float = 0.0,
    event_id: str | None = None,
    loads: tuple[LoadSample, ...] | None = None,
) -> TelemetrySample:
    if loads is None:
        loads = (
            LoadSample("circuit_1", "Main HVAC", "hvac", 5.0, 2.0, 0.0, True, 2, True, 30.0, 8.75),
            LoadSample("ev1", "EV Charger", "ev", None, 6.0, 6.0, True, 1, False, 50.0, 25.0),
            LoadSample("heater1", "Water Heater", "water_heater", 4.5, 0.0, 3.2, False, 1),
        )
    raw = json.dumps({"venId": ven_id, "timestamp": int(at.timestamp()), "usedPowerKw": used})
    return TelemetrySample(
        ven_id=ven_id,
        timestamp=at,
        used_power_kw=used,
        shed_power_kw=shed,
        requested_reduction_kw=5.0 if event_id else None,
        event_id=event_id,
        baseline_power_kw=13.0,
        battery_soc=85.5,
        panel_amperage_rating=200.0,
        panel_voltage=240.0,
        panel_max_kw=48.0,
        current_amps=34.2,
        panel_utilization_percent=17.1,
        loads=loads,
        raw_payload=raw,
    )


async def test_append_is_idempotent_and_registers(backend: Backend) -> None:
    first = await backend.store.append([sample(), sample(at=T0 + MINUTE), sample()])
    again = await backend.store.append([sample(at=T0 + MINUTE), sample(at=T0 + 2 * MINUTE)])
    assert (first.stored, first.duplicates, first.refused) == (2, 1, ())
    assert (again.stored, again.duplicates) == (1, 1)
    page = await backend.queries.telemetry("ven-001")
    assert page.total_count == 3
    async with backend.uow() as uow:
        ven = await uow.vens.get("ven-001")
    assert ven is not None and ven.name == "ven-001"
    assert ven.last_seen_at == T0 + 2 * MINUTE


async def test_heartbeat_never_goes_back(backend: Backend) -> None:
    await backend.store.append([sample(at=T0 + MINUTE)])
    await backend.store.append([sample(at=T0)])  # late, out of order
    async with backend.uow() as uow:
        ven = await uow.vens.get("ven-001")
    assert ven is not None and ven.last_seen_at == T0 + MINUTE


async def test_allow_list_refuses_unknown_vens(backend: Backend) -> None:
    async with backend.uow() as uow:
        await uow.vens.add(Ven(id="known", name="Known"))
        await uow.commit()
    stranger = sample("stranger")
    result = await backend.store.append([sample("known"), stranger], auto_register=False)
    assert (result.stored, result.refused) == (1, (stranger,))
    async with backend.uow() as uow:
        assert await uow.vens.get("stranger") is None
    assert (await backend.queries.telemetry("stranger")).total_count == 0


async def test_samples_read_back_newest_first(backend: Backend) -> None:
    samples = [sample(at=T0 + n * MINUTE, used=float(n)) for n in range(5)]
    await backend.store.append(samples)
    page = await backend.queries.telemetry(
        "ven-001", start=T0 + MINUTE, end=T0 + 4 * MINUTE, limit=2
    )
    assert page.total_count == 3
    assert [s.timestamp for s in page.items] == [T0 + 3 * MINUTE, T0 + 2 * MINUTE]
    got = page.items[0]
    assert replace(got, loads=()) == replace(samples[3], loads=())
    assert sorted(got.loads, key=lambda ld: ld.load_id) == list(samples[3].loads)
    assert got.timestamp.utcoffset() == timedelta(0)


async def test_circuit_history(backend: Backend) -> None:
    await backend.store.append([sample(at=T0 + n * MINUTE) for n in range(3)])
    everything = await backend.queries.circuit_history("ven-001", limit=4)
    one = await backend.queries.circuit_history("ven-001", load_id="ev1", start=T0 + MINUTE)
    assert everything.total_count == 9
    assert [(s.timestamp, s.load_id) for s in everything.items] == [
        (T0 + 2 * MINUTE, "circuit_1"),
        (T0 + 2 * MINUTE, "ev1"),
        (T0 + 2 * MINUTE, "heater1"),
        (T0 + MINUTE, "circuit_1"),
    ]
    assert one.total_count == 2
    assert [
        (s.timestamp, s.name, s.current_power_kw, s.shed_capability_kw, s.enabled)
        for s in one.items
    ] == [
        (T0 + 2 * MINUTE, "EV Charger", 6.0, 6.0, True),
        (T0 + MINUTE, "EV Charger", 6.0, 6.0, True),
    ]


async def test_latest_state(backend: Backend) -> None:
    newer = (LoadSample("ev1", "EV Charger", "ev", None, 1.0, 7.0, True, 1, False, 50.0),)
    await backend.store.append(
        [sample("a", T0, used=8.0), sample("b", T0, used=4.0), sample("a", T0 - MINUTE, used=99.0)]
    )
    base = sample().loads
    await backend.store.append(
        [sample("b", T0 + MINUTE, used=6.0, loads=(base[0], *newer, base[2]))]
    )
    async with backend.uow() as uow:
        # Configuration wins over what the VEN reports: here the heater is critical.
        await uow.vens.save_load(
            "a", Load(id="heater1", type="water_heater", capacity_kw=5.0, critical=True)
        )
        await uow.commit()
    now = T0 + 90 * timedelta(seconds=1)
    stats = await backend.queries.network_stats(now, timedelta(seconds=60))
    assert (stats.ven_count, stats.online_vens) == (2, 1)
    assert stats.household_usage_kw == pytest.approx(14.0)
    assert stats.average_house_power == pytest.approx(7.0)
    # a: ev1 (6+6 = 12, no capacity) + heater1 is critical by configuration
    # b: ev1 (capacity 1+7 = 8) + heater1 4.5; potential: a ev1 6, b ev1 7
    assert stats.controllable_power_kw == pytest.approx(24.5)
    assert stats.potential_load_reduction_kw == pytest.approx(13.0)
    loads_a = await backend.queries.latest_loads("a")
    assert [ld.id for ld in loads_a] == ["circuit_1", "ev1", "heater1"]
    assert loads_a[2] == Load(
        id="heater1",
        type="water_heater",
        name="Water Heater",
        capacity_kw=5.0,
        shed_capability_kw=3.2,
        current_power_kw=0.0,
        priority=1,
        critical=True,
        enabled=False,
    )
    assert await backend.queries.latest_loads("nobody") == []
    many = await backend.queries.latest_loads_many(["a", "b", "nobody"])
    assert sorted(many) == ["a", "b"] and many["a"] == loads_a
    latest = await backend.queries.latest_panels(["a", "b", "nobody"])
    assert {k: s.used_power_kw for k, s in latest.items()} == {"a": 8.0, "b": 6.0}
    assert await backend.queries.available_shed(now, timedelta(seconds=60)) == {"b": 7.0}
    assert await backend.queries.load_type_stats() == [
        LoadTypeStats("ev", 20.0, 13.0, 7.0),
        LoadTypeStats("hvac", 10.0, 0.0, 4.0),
        LoadTypeStats("water_heater", 9.5, 6.4, 0.0),
    ]


async def test_history_averages_per_ven_and_sums_over_vens(backend: Backend) -> None:
    batch = []
    for n in range(12):  # one sample every 30 s for 6 minutes, two VENs
        at = T0 + n * timedelta(seconds=30)
        in_event = n >= 10
        batch.append(
            sample(
                "a",
                at,
                used=float(n),
                shed=2.0 if in_event else 0.0,
                event_id="evt-00000001" if in_event else None,
            )
        )
        batch.append(sample("b", at, used=10.0))
    await backend.store.append(batch)
    points = await backend.queries.history(
        start=T0 - timedelta(minutes=2, seconds=30),
        end=T0 + timedelta(hours=1),
        width=timedelta(minutes=5),
    )
    # Buckets are aligned to the epoch: 14:55, 15:00, 15:05.
    assert [p.timestamp for p in points] == [T0, T0 + 5 * MINUTE]
    assert points[0].used_power_kw == pytest.approx(4.5 + 10.0)  # a averages 0..9
    assert points[0].event_id is None and points[0].requested_reduction_kw is None
    assert points[1].used_power_kw == pytest.approx(10.5 + 10.0)
    assert points[1].shed_power_kw == pytest.approx(2.0)
    assert points[1].event_id == "evt-00000001"
    assert points[1].requested_reduction_kw == pytest.approx(5.0)
    one = await backend.queries.history(
        start=T0, end=T0 + 5 * MINUTE, width=timedelta(minutes=1), ven_id="a"
    )
    assert [(p.timestamp, p.used_power_kw) for p in one] == [
        (T0 + n * MINUTE, 2 * n + 0.5) for n in range(5)
    ]
    load = await backend.queries.history(
        start=T0,
        end=T0 + timedelta(hours=1),
        width=timedelta(hours=1),
        ven_id="b",
        load_id="heater1",
    )
    # Disabled (shed) heater: gives up its shed capability.
    assert [(p.used_power_kw, p.shed_power_kw) for p in load] == [(0.0, 3.2)]
    assert await backend.queries.history(start=T0, end=T0, width=MINUTE) == []


@pytest.mark.parametrize(
    "backend", ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)], indirect=True
)
async def test_bad_samples_are_refused_without_failing_the_batch(backend: Backend) -> None:
    bad_id = sample("no/slashes")
    naive = replace(sample("ven-naive"), timestamp=datetime(2024, 7, 10, 15, 0))
    long_load = sample("ven-long", loads=(LoadSample("x" * 300),))
    odd = replace(
        sample("ven-odd", loads=(LoadSample("c1", name="nul\x00name", priority=2**40),)),
        used_power_kw=float("nan"),
        raw_payload='{"text": "nul \x00 inside"}',
    )
    result = await backend.store.append([bad_id, naive, long_load, odd, sample()])
    assert result.stored == 2
    assert set(result.refused) == {bad_id, naive, long_load}
    (stored,) = (await backend.queries.telemetry("ven-odd")).items
    assert stored.used_power_kw is None
    assert stored.loads[0].name == "nulname" and stored.loads[0].priority is None
