"""5-minute intervals kept up at ingest (gridcore.intervals), the same on every
backend: what a store keeps equals the domain's roll-up of every sample it
stored, whatever the batches, the order of arrival and the duplicates."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import insert
from storage_contract import BACKENDS, Backend, open_backend

from adapters.sql.engine import create_engine
from adapters.sql.migrate import downgrade, migrate
from adapters.sql.queries import SqlTelemetryQueries
from adapters.sql.tables import ven_telemetry, vens
from gridcore.errors import InvalidInput
from gridcore.intervals import IntervalReading, MeterSeries, roll_up
from gridcore.telemetry import TelemetrySample

T0 = datetime(2024, 7, 10, 15, 0, tzinfo=UTC)
SECOND = timedelta(seconds=1)
HOUR = timedelta(hours=1)


@pytest.fixture(params=BACKENDS)
async def backend(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Backend]:
    async for opened in open_backend(request, tmp_path):
        yield opened


def sample(
    ven_id: str, at: datetime, used: float | None, shed: float | None = None
) -> TelemetrySample:
    baseline = None if used is None else used + 1.5
    return TelemetrySample(
        ven_id, at, used_power_kw=used, shed_power_kw=shed, baseline_power_kw=baseline
    )


def expected(samples: list[TelemetrySample]) -> dict[str, list[IntervalReading]]:
    by_ven: dict[str, list[tuple[datetime, float | None, float | None, float | None]]] = {}
    for s in samples:
        by_ven.setdefault(s.ven_id, []).append(
            (s.timestamp, s.used_power_kw, s.shed_power_kw, s.baseline_power_kw)
        )
    return {
        ven_id: [IntervalReading.of(start, t) for start, t in sorted(roll_up(rows).items())]
        for ven_id, rows in by_ven.items()
    }


def approx(found: dict[str, list[IntervalReading]]) -> dict[str, list[tuple[object, ...]]]:
    # Sums in another order differ in the last bits: compare to 1e-9 kW.
    return {
        ven_id: [
            (
                r.start,
                r.samples,
                *(
                    None if v is None else pytest.approx(v, abs=1e-9)
                    for v in (
                        r.used_kw,
                        r.used_min_kw,
                        r.used_max_kw,
                        r.shed_kw,
                        r.reported_baseline_kw,
                    )
                ),
            )
            for r in readings
        ]
        for ven_id, readings in found.items()
    }


async def test_intervals_are_the_roll_up_of_every_sample_stored(backend: Backend) -> None:
    # Two VENs, every 7 s for 20 minutes, in batches that cut across intervals;
    # some samples without usedPowerKw; a VEN's buffer arriving late, after
    # newer samples, into intervals already written; and duplicates.
    samples = [
        sample(
            ven,
            T0 + n * 7 * SECOND,
            None if n % 13 == 0 else 3.0 + (n % 5) * 0.25,
            0.5 * (n % 3) if n % 2 else None,
        )
        for n in range(180)
        for ven in ("ven-a", "ven-b")
    ]
    late = [s for s in samples if s.ven_id == "ven-b" and s.timestamp < T0 + 6 * 60 * SECOND]
    on_time = [s for s in samples if s not in late]
    for start in range(0, len(on_time), 45):
        await backend.store.append(on_time[start : start + 45])
    await backend.store.append(late)  # the buffer, after newer samples
    again = await backend.store.append(late[:10] + on_time[:10])
    assert again.duplicates == 20

    found = await backend.queries.intervals(["ven-a", "ven-b", "nobody"], T0, T0 + HOUR)
    assert approx(found) == approx(expected(samples))
    assert sorted(found) == ["ven-a", "ven-b"]
    assert [r.start.minute for r in found["ven-a"]] == [0, 5, 10, 15, 20]
    first = found["ven-a"][0]
    assert first.samples == 43  # 0..294 s every 7 s
    assert first.used_min_kw == 3.0 and first.used_max_kw == 4.0


async def test_a_read_is_half_open_and_bounded(backend: Backend) -> None:
    await backend.store.append(
        [sample("ven-a", T0 + k * 5 * 60 * SECOND, float(k)) for k in range(4)]
    )
    found = await backend.queries.intervals(["ven-a"], T0 + 5 * 60 * SECOND, T0 + 15 * 60 * SECOND)
    assert [(r.start, r.used_kw) for r in found["ven-a"]] == [
        (T0 + 5 * 60 * SECOND, 1.0),
        (T0 + 10 * 60 * SECOND, 2.0),
    ]
    assert await backend.queries.intervals([], T0, T0 + HOUR) == {}
    with pytest.raises(InvalidInput, match="end"):
        await backend.queries.intervals(["ven-a"], T0, T0)
    with pytest.raises(InvalidInput, match="62 days"):
        await backend.queries.intervals(["ven-a"], T0, T0 + timedelta(days=63))


async def test_concurrent_batches_of_one_interval_lose_nothing(backend: Backend) -> None:
    # Eight writers at once into the same two VENs' same interval: on
    # PostgreSQL eight transactions in parallel, each adding to the same rows.
    batches = [
        [sample(ven, T0 + (writer * 30 + k) * SECOND, 1.0 + writer) for k in range(30)]
        for writer in range(8)
        for ven in ("ven-a", "ven-b")
    ]
    # Registered first, from a sample in the interval before.
    await backend.store.append([sample(v, T0 - SECOND, 1.0) for v in ("ven-a", "ven-b")])
    await asyncio.gather(*(backend.store.append(b) for b in batches))
    found = await backend.queries.intervals(["ven-a", "ven-b"], T0, T0 + HOUR)
    for ven in ("ven-a", "ven-b"):
        assert [r.samples for r in found[ven]] == [240]
        assert found[ven][0].used_kw == pytest.approx(30 * sum(range(1, 9)) / 240)
        assert (found[ven][0].used_min_kw, found[ven][0].used_max_kw) == (1.0, 8.0)


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite+aiosqlite:///{tmp_path / 'gridcore.db'}"
    return str(request.getfixturevalue("postgres_url"))


async def test_the_upgrade_rolls_up_the_telemetry_already_stored(url: str) -> None:
    await migrate(url, revision="0006", log=lambda _: None)
    samples = [
        sample("ven-a", T0 + n * 13 * SECOND + n * 1000 * timedelta(microseconds=1), 2.0 + n % 4)
        for n in range(60)
    ] + [sample("ven-a", T0 + 2 * HOUR, None)]
    engine = create_engine(url)
    try:
        async with engine.begin() as conn:
            await conn.execute(insert(vens), [{"id": "ven-a", "name": "A", "enabled": True}])
            await conn.execute(
                insert(ven_telemetry),
                [
                    {
                        "ven_id": s.ven_id,
                        "timestamp": s.timestamp,
                        "used_power_kw": s.used_power_kw,
                        "shed_power_kw": s.shed_power_kw,
                        "baseline_power_kw": s.baseline_power_kw,
                    }
                    for s in samples
                ],
            )
        await migrate(url, log=lambda _: None)
        found = await SqlTelemetryQueries(engine).intervals(["ven-a"], T0, T0 + 3 * HOUR)
        assert approx(found) == approx(expected(samples))
        await downgrade(url, "0006")  # and back: the table goes
    finally:
        await engine.dispose()


async def test_a_read_can_keep_to_spans(backend: Backend) -> None:
    # An interval every 5 minutes for a day; read 01:00-02:00 and 13:00-13:10.
    await backend.store.append(
        [sample("ven-a", T0 + k * 5 * 60 * SECOND, float(k)) for k in range(288)]
    )
    spans = [(T0 + HOUR, T0 + 2 * HOUR), (T0 + 13 * HOUR, T0 + 13 * HOUR + 10 * 60 * SECOND)]
    found = await backend.queries.intervals(["ven-a"], T0, T0 + 24 * HOUR, spans=spans)
    assert [r.used_kw for r in found["ven-a"]] == [*(float(k) for k in range(12, 24)), 156.0, 157.0]
    many = [(T0 + k * SECOND, T0 + (k + 1) * SECOND) for k in range(101)]
    with pytest.raises(InvalidInput, match="spans"):
        await backend.queries.intervals(["ven-a"], T0, T0 + HOUR, spans=many)


async def test_measurement_reads_the_same_intervals_as_columns(backend: Backend) -> None:
    # Two VENs, one with a hole, the other reporting its own baseline; a VEN
    # without intervals is absent. The columns are the intervals' means.
    samples = [
        sample("ven-a", T0 + k * 5 * 60 * SECOND, float(k)) for k in range(24) if k not in (3, 4)
    ]
    samples += [
        TelemetrySample(
            "ven-b",
            T0 + k * 5 * 60 * SECOND + s * SECOND,
            used_power_kw=2.0 + s,
            baseline_power_kw=5.0,
        )
        for k in range(24)
        for s in (0, 60)
    ]
    await backend.store.append(samples)
    spans = [(T0, T0 + HOUR), (T0 + HOUR + 30 * 60 * SECOND, T0 + 2 * HOUR)]
    series = await backend.queries.meter_series(["ven-a", "ven-b", "nobody"], spans)
    read = await backend.queries.intervals(["ven-a", "ven-b"], T0, T0 + 2 * HOUR, spans=spans)
    assert sorted(series) == ["ven-a", "ven-b"]
    for ven_id, readings in read.items():
        expected = MeterSeries.of(readings)
        found = series[ven_id]
        assert found.starts == expected.starts == [r.start for r in readings]
        assert found.samples == expected.samples
        assert found.used_kw == pytest.approx(expected.used_kw)
        assert found.reported_baseline_kw == pytest.approx(expected.reported_baseline_kw)
    assert series["ven-a"].used_kw[:3] == [0.0, 1.0, 2.0] and len(series["ven-a"]) == 16
    assert series["ven-b"].samples[0] == 2 and series["ven-b"].used_kw[0] == pytest.approx(32.0)
    assert series["ven-b"].reported_baseline_at(T0) == 5.0
    with pytest.raises(InvalidInput, match="spans"):
        await backend.queries.meter_series(["ven-a"], [])
    with pytest.raises(InvalidInput, match="62 days"):
        await backend.queries.meter_series(["ven-a"], [(T0, T0 + timedelta(days=63))])
