"""History read from the 5-minute intervals answers what the raw samples
answer (gridcore.history), on every backend; reads only raw samples can
answer are refused past raw retention, never answered with missing buckets."""

from __future__ import annotations

import dataclasses
import random
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import delete
from storage_contract import BACKENDS, Backend, open_backend

from adapters.sql.tables import (
    ven_days,
    ven_interval_events,
    ven_intervals,
    ven_load_samples,
    ven_telemetry,
)
from gridcore.errors import InvalidInput
from gridcore.history import HistorySource, rollup_horizon
from gridcore.telemetry import HistoryPoint, LoadSample, TelemetrySample

T0 = datetime(2024, 7, 10, 15, 1, 7, tzinfo=UTC)  # on no bucket's edge
MINUTE = timedelta(minutes=1)
DAY = timedelta(days=1)


@pytest.fixture(params=BACKENDS)
async def backend(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Backend]:
    async for opened in open_backend(request, tmp_path):
        yield opened


def fleet(seed: int, span: timedelta, step_s: int) -> list[TelemetrySample]:
    """Three VENs sampled at irregular steps over ``span``: readings missing
    now and then, a VEN silent for a while, two events with their requested
    kW (one VEN reporting a requested kW without an event id)."""
    rng = random.Random(seed)
    samples = []
    for v, ven in enumerate(("ven-a", "ven-b", "ven-c")):
        at = T0 + timedelta(seconds=rng.randrange(step_s))
        while at < T0 + span:
            quiet = ven == "ven-c" and T0 + 2 * step_s * MINUTE / 60 < at < T0 + span / 3
            if not quiet:
                offset = (at - T0) / span
                event = "evt-0000000a" if 0.4 < offset < 0.5 else None
                if ven == "ven-b" and 0.45 < offset < 0.7:
                    event = "evt-0000000b"
                requested = (
                    1.5 + v if event else (0.25 if ven == "ven-a" and offset > 0.9 else None)
                )
                samples.append(
                    TelemetrySample(
                        ven,
                        at,
                        used_power_kw=None if rng.random() < 0.08 else round(rng.uniform(-1, 9), 3),
                        shed_power_kw=None if rng.random() < 0.3 else round(rng.uniform(0, 3), 3),
                        requested_reduction_kw=requested,
                        event_id=event,
                        loads=(LoadSample("ev1", current_power_kw=1.0 + v, enabled=True),),
                    )
                )
            at += timedelta(seconds=rng.randrange(1, 2 * step_s))
    rng.shuffle(samples)  # batches in any order, late samples into written intervals
    return samples


def same(a: list[HistoryPoint], b: list[HistoryPoint]) -> None:
    """Same buckets and events; kW equal but for the last rounding digit (sums
    taken in another order may round the other way)."""
    assert [(p.timestamp, p.event_id) for p in a] == [(p.timestamp, p.event_id) for p in b]
    for p, q in zip(a, b, strict=True):
        assert p.used_power_kw == pytest.approx(q.used_power_kw, abs=1.01e-3)
        assert p.shed_power_kw == pytest.approx(q.shed_power_kw, abs=1.01e-3)
        if p.requested_reduction_kw is None or q.requested_reduction_kw is None:
            assert p.requested_reduction_kw is q.requested_reduction_kw is None
        else:
            assert p.requested_reduction_kw == pytest.approx(q.requested_reduction_kw, abs=1.01e-3)


async def append(backend: Backend, samples: list[TelemetrySample]) -> None:
    for start in range(0, len(samples), 400):
        await backend.store.append(samples[start : start + 400])


@pytest.mark.parametrize("seed", [1, 2, 3])
async def test_intervals_answer_what_the_raw_samples_answer(backend: Backend, seed: int) -> None:
    span = timedelta(hours=6)
    await append(backend, fleet(seed, span, step_s=40))
    start, end = T0 - timedelta(minutes=7), T0 + span + MINUTE
    for width in (5 * MINUTE, 15 * MINUTE, 60 * MINUTE, 150 * MINUTE):
        for ven_id in (None, "ven-a", "ven-c"):
            args: dict[str, Any] = {"start": start, "end": end, "width": width, "ven_id": ven_id}
            chosen = await backend.queries.history(**args)
            raw = await backend.queries.history(**args, source=HistorySource.RAW)
            same(chosen, await backend.queries.history(**args, source=HistorySource.INTERVALS))
            same(chosen, raw)
            if ven_id != "ven-c":  # (silent for a while)
                assert len(raw) >= (end - start) / width - 1  # data in (almost) every bucket
            assert any(p.event_id for p in raw) and any(p.event_id is None for p in raw)


async def test_days_of_history_from_the_intervals(backend: Backend) -> None:
    # Sparse samples over three days, daily points; a range that starts mid-day.
    await append(backend, fleet(7, 3 * DAY, step_s=900))
    # Whole days from the days, partial ones from their intervals.
    for start in (T0 - DAY, T0 + timedelta(hours=13, minutes=-1, seconds=-7)):
        for width, ven_id in ((DAY, None), (DAY, "ven-b"), (2 * DAY, None), (7 * DAY, "ven-a")):
            args: dict[str, Any] = {"start": start, "end": T0 + 4 * DAY, "width": width}
            raw = await backend.queries.history(**args, ven_id=ven_id, source=HistorySource.RAW)
            same(await backend.queries.history(**args, ven_id=ven_id), raw)
            days = 4 if start < T0 else 3
            assert len(raw) == days if width == DAY else raw  # (buckets aligned to the epoch)
    # Whole days only: read from the days alone.
    midnight = T0.replace(hour=0, minute=0, second=0)
    for ven_id in (None, "ven-c"):
        args = {"start": midnight, "end": midnight + 3 * DAY, "width": DAY, "ven_id": ven_id}
        raw = await backend.queries.history(**args, source=HistorySource.RAW)
        same(await backend.queries.history(**args), raw)
        assert len(raw) == 3


async def test_a_range_inside_an_interval_counts_it_whole(backend: Backend) -> None:
    # 15:00:30 and 15:04:30 in the 15:00 interval; a range from 15:02.
    at = T0 - timedelta(minutes=1, seconds=7)
    await backend.store.append(
        [TelemetrySample("ven-a", at + k * 4 * MINUTE, used_power_kw=2.0 + k) for k in range(2)]
    )
    args: dict[str, Any] = {"start": at + 90 * timedelta(seconds=1), "end": at + 5 * MINUTE}
    raw = await backend.queries.history(**args, width=MINUTE)
    assert [p.used_power_kw for p in raw] == [3.0]
    (whole,) = await backend.queries.history(**args, width=5 * MINUTE)
    assert whole.used_power_kw == 2.5


async def drop_raw_before(backend: Backend, before: datetime) -> None:
    """What retention does: the raw samples before ``before`` go, their
    intervals stay."""
    if backend.name == "memory":
        kept = backend.queries._telemetry.samples
        for key in [k for k in kept if k[1] < before]:
            del kept[key]
        return
    async with backend.queries._engine.begin() as conn:
        await conn.execute(delete(ven_load_samples).where(ven_load_samples.c.timestamp < before))
        await conn.execute(delete(ven_telemetry).where(ven_telemetry.c.timestamp < before))


async def test_history_past_raw_retention(backend: Backend) -> None:
    samples = fleet(5, 2 * DAY, step_s=120)
    await append(backend, samples)
    whole: dict[str, Any] = {"start": T0 - DAY, "end": T0 + 3 * DAY, "width": timedelta(hours=1)}
    before = await backend.queries.history(**whole, ven_id="ven-b")
    before_daily = await backend.queries.history(**{**whole, "width": DAY})
    raw_since = T0 + DAY
    await drop_raw_before(backend, raw_since)

    # Whole 5-minute multiples: the intervals still hold every bucket.
    after = await backend.queries.history(**whole, ven_id="ven-b", raw_since=raw_since)
    same(after, before)
    assert after[0].timestamp < raw_since

    daily = {**whole, "width": DAY}
    same(await backend.queries.history(**daily, raw_since=raw_since), before_daily)

    # Finer buckets, or one load, need the raw samples: refused before raw_since...
    fine: dict[str, Any] = {"start": T0, "end": T0 + 2 * DAY, "width": MINUTE}
    with pytest.raises(InvalidInput, match="granularity: raw samples are kept since"):
        await backend.queries.history(**fine, raw_since=raw_since)
    with pytest.raises(InvalidInput, match="start: per-load history"):
        await backend.queries.history(**whole, ven_id="ven-b", load_id="ev1", raw_since=raw_since)
    # ...and answered from it on, where the raw samples are.
    recent = await backend.queries.history(
        start=raw_since,
        end=T0 + 2 * DAY,
        width=timedelta(hours=1),
        ven_id="ven-b",
        load_id="ev1",
        raw_since=raw_since,
    )
    assert [p.used_power_kw for p in recent] == [2.0] * len(recent) and len(recent) == 24


# --- the fleet's roll-ups (gridcore.history.fleet_plan) -------------------------


async def fleet_reads(backend: Backend, start: datetime, end: datetime) -> None:
    """The fleet's 5-minute and daily points, from the roll-ups where made,
    equal to those read per VEN from the intervals and from the raw samples."""
    for width in (5 * MINUTE, DAY):
        args: dict[str, Any] = {"start": start, "end": end, "width": width}
        chosen = await backend.queries.history(**args)
        assert chosen, "the data is in the range"
        same(chosen, await backend.queries.history(**args, source=HistorySource.INTERVALS))
        same(chosen, await backend.queries.history(**args, source=HistorySource.RAW))


async def forget_intervals(backend: Backend, lo: datetime, hi: datetime) -> None:
    """The VENs' intervals and days of [lo, hi) gone, the fleet's kept: what is
    read from the roll-ups still reads the same, what is read per VEN not."""
    if backend.name == "memory":
        t = backend.queries._telemetry
        for rows in (t.intervals, t.interval_events, t.days):
            for key in [k for k in rows if lo <= k[1] < hi]:
                del rows[key]
        return
    async with backend.queries._engine.begin() as conn:
        for table, column in ((ven_intervals, "start"), (ven_interval_events, "start"),
                              (ven_days, "day")):  # fmt: skip
            await conn.execute(delete(table).where(table.c[column] >= lo, table.c[column] < hi))


async def test_the_fleets_history_from_its_roll_ups_answers_what_the_vens_rows_answer(
    backend: Backend,
) -> None:
    span = 3 * DAY
    samples = fleet(11, span, step_s=300)
    late = [s for s in samples if s.timestamp > T0 + 2 * DAY]  # arrive after the roll-up
    await append(backend, [s for s in samples if s.timestamp <= T0 + 2 * DAY])
    start, end = T0 - timedelta(hours=3), T0 + span + MINUTE
    now = T0 + DAY + timedelta(hours=9)  # mid-data: a closed part and an open tail
    report = await backend.rollup.roll_up(now)
    assert report.rolled_through == rollup_horizon(now)
    assert report.intervals > 0 and report.days == 1  # T0's day closed, not the next
    await fleet_reads(backend, start, end)
    for day_start in (T0.replace(hour=0, minute=0, second=0), T0 - timedelta(minutes=7)):
        await fleet_reads(backend, day_start, day_start + DAY)

    # Telemetry later than the roll-up for buckets it made: read exact at once...
    await append(backend, late)
    replayed = [
        TelemetrySample(s.ven_id, s.timestamp - 2 * DAY + timedelta(seconds=1),
                        used_power_kw=7.5, event_id="evt-0000000c", requested_reduction_kw=2.0)
        for s in late[:40]
    ]  # fmt: skip
    await append(backend, replayed)
    await fleet_reads(backend, start, end)
    # ...and made again by the next pass.
    again = await backend.rollup.roll_up(T0 + span + timedelta(hours=1))
    assert again.restated > 0
    await fleet_reads(backend, start, end)
    assert await backend.rollup.roll_up(T0 + span + timedelta(hours=1)) in (
        None,
        dataclasses.replace(again, intervals=0, days=0, restated=0),
    )  # nothing left to do

    # The closed buckets come from the roll-ups: with the VENs' rows of a day
    # gone, the fleet's points of that day stay.
    day = T0.replace(hour=0, minute=0, second=0) + DAY
    before = await backend.queries.history(start=day, end=day + DAY, width=5 * MINUTE)
    daily = await backend.queries.history(start=start, end=end, width=DAY)
    await forget_intervals(backend, day, day + DAY)
    same(await backend.queries.history(start=day, end=day + DAY, width=5 * MINUTE), before)
    same(await backend.queries.history(start=start, end=end, width=DAY), daily)
    assert (
        await backend.queries.history(
            start=day, end=day + DAY, width=5 * MINUTE, source=HistorySource.INTERVALS
        )
        == []
    )


async def test_no_roll_up_yet_reads_the_vens_rows(backend: Backend) -> None:
    await append(backend, fleet(12, 6 * timedelta(hours=1), step_s=60))
    args: dict[str, Any] = {"start": T0, "end": T0 + DAY, "width": 5 * MINUTE}
    same(
        await backend.queries.history(**args),
        await backend.queries.history(**args, source=HistorySource.RAW),
    )
    with pytest.raises(InvalidInput, match="source: the fleet's roll-ups"):
        await backend.queries.history(**args, ven_id="ven-a", source=HistorySource.FLEET)
