"""PerformanceStore, the same on memory, SQLite and PostgreSQL: a report comes
back as it was kept, a second save of the same event and method replaces the
first whole, and concurrent savers of one report never mix their rows."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from adapters.memory.performance import InMemoryPerformanceStore
from adapters.sql.engine import create_engine
from adapters.sql.performance import SqlPerformanceStore
from adapters.sql.tables import events
from gridcore.baselines import EventWindow
from gridcore.measurement import FleetMeasurement, FleetPoint, Rebound
from gridcore.ports import PerformanceStore
from gridcore.verification import PerformanceReport, VenPerformanceLine

START = datetime(2024, 7, 10, 15, 0, tzinfo=UTC)


@pytest.fixture(params=["memory", "sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
async def store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[PerformanceStore]:
    if request.param == "memory":
        yield InMemoryPerformanceStore()
        return
    engine = create_engine(str(request.getfixturevalue(f"migrated_{request.param}_url")))
    async with engine.begin() as conn:  # the events the reports belong to
        await conn.execute(
            events.insert(),
            [
                {
                    "event_id": f"evt-{n}",
                    "status": "completed",
                    "start_time": START,
                    "end_time": START + timedelta(hours=1),
                    "requested_reduction_kw": 10.0,
                    "actual_reduction_kw": 0.0,
                }
                for n in range(3)
            ],
        )
    try:
        yield SqlPerformanceStore(engine)
    finally:
        await engine.dispose()


def line(ven_id: str, shed: float | None, **changes: object) -> VenPerformanceLine:
    base = VenPerformanceLine(
        ven_id=ven_id,
        baseline_method="10-in-10",
        fell_back=("high-4-of-5: only 3 eligible days of 5",),
        shed_kwh=shed,
        avg_shed_kw=shed,
        allocated_kw=5.0,
        performance_ratio=None if shed is None else shed / 5.0,
        claimed_kw=5.0,
        claimed_avg_shed_kw=None,
        coverage=1.0,
        intervals_expected=12,
        intervals_present=12,
        samples_expected=144.0,
        samples_present=143,
        offline_intervals=0,
        baseline_days=10,
        rebound_kwh=0.5,
        rebound_peak_kw=1.0000000000000002,
    )
    return replace(base, **changes)  # type: ignore[arg-type]


def report(
    event_id: str,
    vens: int,
    shed: float,
    computed: datetime = START,
    after: timedelta = timedelta(hours=1),
) -> PerformanceReport:
    window = EventWindow(START, START + timedelta(hours=1), after)
    series = tuple(
        FleetPoint(START + k * timedelta(minutes=5), 1 / 12, 0.0, 10.0, 10.0 - shed, shed, vens)
        for k in range(12)
    )
    fleet = FleetMeasurement(
        series=series,
        elapsed_hours=1.0,
        shed_kwh=shed * vens,
        avg_shed_kw=shed * vens,
        requested_kw=10.0,
        performance_ratio=shed * vens / 10.0,
        claimed_kw=None,
        claimed_avg_shed_kw=0.1 + 0.2,  # a float that is not what it prints as
        vens=vens,
        vens_offline=0,
        vens_without_baseline=1,
        intervals_expected=12 * vens,
        intervals_present=12 * vens,
        samples_expected=None,
        samples_present=1000,
        rebound=Rebound(0.5, 1.0, 12, 12),
    )
    return PerformanceReport(
        event_id=event_id,
        method="10-in-10",
        computed_at=computed,
        measured_until=window.baseline_end,
        window=window,
        fleet=fleet,
        vens=tuple(
            line(f"ven-{n:04d}", None if n == 0 else shed, fell_back=() if n % 2 else ("x: y",))
            for n in range(vens)
        ),
    )


async def test_a_report_comes_back_as_it_was_kept(store: PerformanceStore) -> None:
    kept = report("evt-0", vens=3, shed=2.5, after=timedelta(minutes=90))
    await store.save(kept)
    assert await store.get("evt-0", "10-in-10") == kept  # its rebound span too
    assert not kept.live
    assert await store.get("evt-0", "high-4-of-5") is None
    assert await store.get("evt-9", "10-in-10") is None
    assert await store.kept(["evt-0", "evt-1", "evt-9"], "10-in-10") == {"evt-0"}


async def test_saving_again_replaces_the_report_whole(store: PerformanceStore) -> None:
    await store.save(report("evt-0", vens=5, shed=2.0))
    newer = report("evt-0", vens=2, shed=3.0, computed=START + timedelta(hours=3))
    await store.save(newer)
    assert await store.get("evt-0", "10-in-10") == newer  # 2 VEN lines, not 5


async def test_concurrent_savers_of_one_report_never_mix(store: PerformanceStore) -> None:
    # Four savers at once (on PostgreSQL four transactions): one of them wins
    # whole, with its own VEN lines only.
    candidates = [report("evt-1", vens=40 + n, shed=1.0 + n) for n in range(4)]
    await asyncio.gather(*(store.save(r) for r in candidates))
    assert await store.get("evt-1", "10-in-10") in candidates
