"""The simulator's days: working days and weekends shaped differently, the
same seed the same history, and ``--backfill-days`` writing past telemetry
(aligned, in the past, never twice) that the live VENs then continue - into
the in-memory store as the demo does, or over a broker as ``gridcore ven``."""

from __future__ import annotations

import asyncio
import contextlib
import json
import statistics
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from adapters.memory.broker import InMemoryBroker
from adapters.mqtt.payloads import TelemetryWire
from entrypoints.container import memory_storage
from entrypoints.settings import Settings
from entrypoints.simulator import FleetConfig, SimulatedVen, run_simulator
from entrypoints.simulator.backfill import (
    Window,
    backfill_broker,
    backfill_store,
    history_panels,
    history_payload,
    history_sample,
)
from entrypoints.simulator.panel import generate_panel
from entrypoints.simulator.profiles import PROFILES, is_weekend, local_day
from gridcore.baselines import EventWindow, XOfY
from gridcore.intervals import INTERVAL
from gridcore.ven import LoadType

MONDAY = datetime(2025, 7, 7, tzinfo=UTC)  # midnight UTC
SATURDAY = MONDAY + timedelta(days=5)
HOUR = 3600.0


def fleet_kw(day: datetime, hour: float, vens: int = 100, seed: int = 11) -> float:
    return sum(
        sum(generate_panel(seed, n).read(day.timestamp() + hour * HOUR).values())
        for n in range(1, vens + 1)
    )


def mean_over(days: list[datetime], hours: list[float]) -> float:
    return statistics.mean(fleet_kw(day, hour, vens=60) for day in days for hour in hours)


# --- the shape of a day -----------------------------------------------------------


def test_weekends_are_told_from_working_days_in_local_time() -> None:
    monday = local_day(MONDAY.timestamp(), 0)
    assert [is_weekend(monday + k) for k in range(7)] == [False] * 5 + [True] * 2
    # 23:30 UTC on Friday is already Saturday two hours east
    friday_night = MONDAY.timestamp() + 4 * 86_400 + 23.5 * HOUR
    assert not is_weekend(local_day(friday_night, 0))
    assert is_weekend(local_day(friday_night, 2 * HOUR))


def test_a_weekend_morning_starts_later_and_its_day_is_busier() -> None:
    heater = PROFILES[LoadType.WATER_HEATER]
    weekday_peak = max(range(4, 12), key=lambda h: heater.level(h))
    weekend_peak = max(range(4, 12), key=lambda h: heater.level(h, weekend=True))
    assert weekend_peak > weekday_peak
    for kind in (LoadType.LIGHTING, LoadType.OUTLETS, LoadType.DRYER, LoadType.RANGE):
        profile = PROFILES[kind]
        assert sum(profile.level(h, True) for h in range(10, 17)) > sum(
            profile.level(h) for h in range(10, 17)
        ), kind
    ev = PROFILES[LoadType.EV_CHARGER]
    assert ev.level(1.0, weekend=True) < ev.level(1.0)


def test_the_fleet_draws_a_weekday_and_a_weekend_shape() -> None:
    weekdays = [MONDAY + timedelta(days=k) for k in range(5)]
    weekend = [SATURDAY, SATURDAY + timedelta(days=1)]
    early, midday = [6.5, 7.0, 7.5], [12.0, 13.0, 14.0]
    # mornings come later at the weekend, days at home draw more
    assert mean_over(weekdays, early) > 1.1 * mean_over(weekend, early)
    assert mean_over(weekend, midday) > 1.1 * mean_over(weekdays, midday)
    # every day: evening peak above the night's low
    for day in (MONDAY, SATURDAY):
        assert fleet_kw(day, 19.0) > 1.5 * fleet_kw(day, 3.5)


def test_days_differ_from_each_other_but_not_wildly() -> None:
    days = [MONDAY + timedelta(days=k) for k in (0, 1, 2, 3, 7, 8)]
    totals = [statistics.mean(fleet_kw(day, h, vens=40) for h in range(0, 24, 2)) for day in days]
    assert len({round(t, 3) for t in totals}) == len(totals)
    assert max(totals) < 1.35 * min(totals)


# --- seeds ----------------------------------------------------------------------


def test_the_same_seed_gives_the_same_history_and_another_seed_another() -> None:
    window = Window.of(MONDAY, days=1)

    def history(seed: int) -> list[float | None]:
        panels = history_panels(FleetConfig(count=3, seed=seed, utc_offset_s=0))
        return [
            history_sample(ven_id, panel, t).used_power_kw
            for t in window.times()[::12]
            for ven_id, panel in panels
        ]

    assert history(5) == history(5)
    assert history(5) != history(6)


# --- the backfill window ----------------------------------------------------------------


def test_backfill_times_are_aligned_past_and_never_repeated() -> None:
    now = datetime(2025, 7, 10, 18, 7, 31, tzinfo=UTC)
    window = Window.of(now, days=10)
    times = list(window.times())
    # ten whole days before today, and today up to the interval under way
    assert len(times) == 10 * 288 + 18 * 12 + 1 == window.count(1)  # 18:00 too
    assert len(set(times)) == len(times) and times == sorted(times)
    assert all(t % 300 == 0 for t in times)
    assert times[-1] + 300 <= now.timestamp()  # ends before the interval live telemetry starts in
    assert times[-1] == datetime(2025, 7, 10, 18, 0, tzinfo=UTC).timestamp()
    assert times[0] == datetime(2025, 6, 30, 0, 0, tzinfo=UTC).timestamp()
    # days are the homes' local days: two hours east of UTC they start at 22:00 UTC
    assert Window.of(now, 10, utc_offset_s=2 * HOUR).start == times[0] - 2 * HOUR
    assert Window.of(now, 0).count(1) == 0
    # already stored up to 17:00: only what follows
    since = datetime(2025, 7, 10, 17, 0, 4, tzinfo=UTC)
    assert list(window.times(since)) == [since.timestamp() - 4 + 300 * k for k in range(1, 13)]


def test_a_backfill_sample_is_what_the_live_ven_reports_then() -> None:
    """History and live telemetry are one function of time (the battery aside,
    whose charge depends on the reads before)."""
    config = FleetConfig(count=20, seed=3, utc_offset_s=0)
    panels = [(v, p) for v, p in history_panels(config) if p.battery is None]
    assert len(panels) > 5
    for ven_id, panel in panels:
        n = int(ven_id.removeprefix("ven-"))
        live = SimulatedVen(ven_id, generate_panel(config.seed, n, 0))
        for hour in (3, 8, 13, 19):
            at = MONDAY + timedelta(hours=hour)
            sample = history_sample(ven_id, panel, int(at.timestamp()))
            reported = json.loads(live.report(at)[0].payload)
            assert sample.used_power_kw == reported["usedPowerKw"]
            assert sample.panel_max_kw == reported["panelMaxKw"]
            assert sample.shed_power_kw == 0.0 and sample.baseline_power_kw == sample.used_power_kw
    payload = history_payload(*panels[0], int(MONDAY.timestamp()))
    assert TelemetryWire.model_validate_json(json.dumps(payload)).timestamp == MONDAY


# --- into the store, as the demo does -----------------------------------------------


async def test_a_demo_backfill_fills_the_intervals_of_every_day() -> None:
    storage = memory_storage()
    config = FleetConfig(count=4, seed=1, utc_offset_s=0)
    now = datetime(2025, 7, 10, 18, 2, tzinfo=UTC)
    lines: list[str] = []
    result = await backfill_store(
        storage.telemetry_store, config, now=now, days=10, batch=3000, progress=lines.append
    )
    assert result.samples == 4 * (10 * 288 + 216) and result.duplicates == 0
    assert "12,384 samples of 10 day(s)" in result.summary(10)
    start, end = datetime(2025, 6, 30, tzinfo=UTC), now
    found = await storage.telemetry_queries.intervals(
        [config.ven_id(n) for n in range(1, 5)], start, end
    )
    assert sorted(found) == ["ven-1", "ven-2", "ven-3", "ven-4"]
    for readings in found.values():
        assert len(readings) == 10 * 288 + 216
        assert all(r.samples == 1 and r.used_kw is not None for r in readings)
        days = {r.start.date() for r in readings}
        assert len(days) == 11
        for day in days:
            per_day = [r for r in readings if r.start.date() == day]
            assert len(per_day) == (216 if day == now.date() else 288)
    # run again a little later: only the gap is written, nothing twice
    newest = await storage.telemetry_queries.latest_panels(["ven-1", "ven-2", "ven-3", "ven-4"])
    later = await backfill_store(
        storage.telemetry_store, config, now=now + timedelta(minutes=12), days=10,
        since={ven_id: panel.timestamp for ven_id, panel in newest.items()},
    )  # fmt: skip
    assert (later.samples, later.duplicates) == (4 * 2, 0)


@pytest.mark.slow  # 8 s: ten days of a fleet's history
async def test_a_ten_in_ten_baseline_from_the_backfill_predicts_the_live_load() -> None:
    """What measurement will do on the demo's first event: 10 days of history,
    a 10-in-10 baseline, the live VENs' load in the event hour beside it."""
    storage = memory_storage()
    config = FleetConfig(count=12, seed=1, utc_offset_s=0)
    event_start = datetime(2025, 7, 10, 17, 0, tzinfo=UTC)  # a Thursday
    window = EventWindow(event_start, event_start + timedelta(hours=1))
    await backfill_store(storage.telemetry_store, config, now=event_start, days=10)
    # the live VENs report through the event hour and the hour after it
    live = [SimulatedVen(config.ven_id(n), generate_panel(config.seed, n, 0)) for n in range(1, 13)]
    samples = []
    at = event_start - timedelta(hours=3)  # the hours before: the day-of adjustment's
    while at < window.baseline_end:
        for ven in live:
            body = json.loads(ven.report(at)[0].payload)
            samples.append((body["venId"], at, body["usedPowerKw"]))
        at += timedelta(seconds=30)
    by_interval: dict[datetime, list[float]] = {}
    for _, at, kw in samples:
        if at >= event_start:
            by_interval.setdefault(at - (at - event_start) % INTERVAL, []).append(kw)
    found = await storage.telemetry_queries.intervals(
        [v.ven_id for v in live], event_start - timedelta(days=11), event_start
    )
    baseline_kw = 0.0
    for ven in live:
        day_samples = [(at, kw) for v, at, kw in samples if v == ven.ven_id]
        readings = _intervals(found[ven.ven_id], day_samples)
        baseline = XOfY(10, 10).compute(readings, window, tz=UTC)
        assert baseline.available, baseline.shortfall
        assert len(baseline.days_used) == 8  # the business days among the ten
        event_points = [p.kw for p in baseline.points if p.start < window.end]
        baseline_kw += statistics.mean(kw for kw in event_points if kw is not None)
    metered_kw = statistics.mean(  # fleet kW: the mean VEN's x VENs, over the event
        statistics.mean(kws) * len(live) for start, kws in by_interval.items() if start < window.end
    )
    assert abs(baseline_kw - metered_kw) < 0.25 * metered_kw


def _intervals(history: list[Any], live: list[tuple[datetime, float]]) -> list[Any]:
    """The history's intervals and the live samples rolled up, as the store would."""
    from gridcore.intervals import IntervalReading, roll_up

    totals = roll_up((at, kw, 0.0, kw) for at, kw in live)
    return [*history, *(IntervalReading.of(start, t) for start, t in sorted(totals.items()))]


# --- over a broker, as `gridcore ven --backfill-days` ---------------------------------


async def test_a_broker_backfill_publishes_past_telemetry_on_the_telemetry_topics() -> None:
    broker = InMemoryBroker()
    worker = broker.connect("worker")
    await worker.subscribe("volttron/metering")
    await worker.subscribe("ven/telemetry/+")
    config = FleetConfig(count=2, seed=1, utc_offset_s=0)
    now = datetime.now(UTC)
    lines: list[str] = []
    result = await backfill_broker(
        broker.connect("sim"), config, now=now, days=0.25, rate=50_000, progress=lines.append
    )
    per_ven = Window.of(now, 0.25).count(1)
    assert result.samples == 2 * per_ven
    stamps: dict[str, list[float]] = {}
    async with asyncio.timeout(3):
        async for message in worker.messages():
            body = TelemetryWire.model_validate_json(message.payload)
            if message.topic == "volttron/metering":
                stamps.setdefault(body.ven_id, []).append(body.timestamp.timestamp())
            else:
                assert message.topic == f"ven/telemetry/{body.ven_id}"
            if sum(map(len, stamps.values())) == 2 * per_ven:
                break
    for times in stamps.values():
        assert times == sorted(set(times)) and len(times) == per_ven
        assert all(t % 300 == 0 and t < now.timestamp() for t in times)


async def test_run_simulator_backfills_while_the_live_vens_report() -> None:
    broker = InMemoryBroker()
    worker = broker.connect("worker")
    await worker.subscribe("volttron/metering")
    now = datetime.now(UTC).timestamp()
    expected = 2 * Window.of(datetime.now(UTC), 0.1).count(1)
    task = asyncio.create_task(
        run_simulator(Settings(_env_file=None), 2, interval=0.05, broker=broker, utc_offset_s=0,  # type: ignore[call-arg]
                      backfill_days=0.1, backfill_rate=50_000)
    )  # fmt: skip
    past = live = 0
    try:
        async with asyncio.timeout(5):
            async for message in worker.messages():
                if json.loads(message.payload)["timestamp"] < now - 60:
                    past += 1
                else:
                    live += 1
                if past >= expected and live >= 2:
                    break
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
    assert past >= expected and live >= 2
