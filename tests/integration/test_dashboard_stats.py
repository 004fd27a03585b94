"""``GET /api/stats/network`` as the original dashboard reads it, on every
storage backend (memory, SQLite, PostgreSQL).

The shape is written down from the dashboard's own type, ``BackendNetworkStats``
in ``ecs-frontend/src/hooks/useApi.ts`` of siddharthshah87/grid-services:

    venCount, controllablePowerKw, potentialLoadReductionKw, householdUsageKw: number
    onlineVens?, currentLoadReductionKw?, networkEfficiency?, averageHousePower?,
    totalHousePowerToday?: number

and what its cards do with them (``Dashboard.tsx``, ``PowerMetrics.tsx``):
``currentLoadReductionKw`` is "Active Reduction" in kW (and its share of
``controllablePowerKw``), ``networkEfficiency`` is shown as "N% efficiency",
``totalHousePowerToday`` as "N.N kWh Today Total". Each optional field is read
with ``?? 0``, so null (no value yet) shows as 0.
"""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta
from typing import Any

from tests.integration.test_api_endpoints import Rig, metering, rig

from gridcore.energy import Reading, closed_energy, energy_today

__all__ = ["rig"]  # the storage-parametrised fixture of test_api_endpoints

REQUIRED = {"venCount", "controllablePowerKw", "potentialLoadReductionKw", "householdUsageKw"}
OPTIONAL = {
    "onlineVens",
    "currentLoadReductionKw",
    "networkEfficiency",
    "averageHousePower",
    "totalHousePowerToday",
}
# Null until there is something to say (read as 0 by the dashboard's `?? 0`).
NULLABLE = {"averageHousePower", "networkEfficiency"}

MIDNIGHT = datetime(2024, 7, 11, tzinfo=UTC)
HOLD = timedelta(seconds=60)  # VEN_OFFLINE_AFTER_SECONDS, the rig's default


def is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


async def network(rig: Rig) -> dict[str, Any]:
    answer = await rig.client.get("/api/stats/network")
    assert answer.status_code == 200
    stats: dict[str, Any] = answer.json()
    return stats


def assert_dashboard_shape(stats: dict[str, Any]) -> None:
    assert stats.keys() >= REQUIRED | OPTIONAL  # every field the dashboard reads is there
    for name in REQUIRED | OPTIONAL - NULLABLE:
        assert is_number(stats[name]), name
    for name in NULLABLE:
        assert stats[name] is None or is_number(stats[name]), name


async def ingest_power(rig: Rig, ven_id: str, points: list[tuple[datetime, float]]) -> None:
    await rig.ingest(*(metering(ven_id, at, usedPowerKw=kw) for at, kw in points))


def every(start: datetime, seconds: int, count: int) -> list[datetime]:
    return [start + timedelta(seconds=seconds * i) for i in range(count)]


async def test_every_field_the_dashboard_reads_is_a_number(rig: Rig) -> None:
    empty = await network(rig)
    assert_dashboard_shape(empty)
    assert empty["networkEfficiency"] is None and empty["averageHousePower"] is None
    assert empty["currentLoadReductionKw"] == 0 and empty["totalHousePowerToday"] == 0

    await rig.ingest(metering("ven-001", MIDNIGHT), metering("ven-002", MIDNIGHT))
    assert_dashboard_shape(await network(rig))


async def test_current_load_reduction_is_what_current_readings_shed(rig: Rig) -> None:
    # 004's sample sheds 4.8 kW; the second VEN reports 1.2 kW shed.
    await rig.ingest(metering("ven-001", MIDNIGHT), metering("ven-002", MIDNIGHT, shedPowerKw=1.2))
    assert (await network(rig))["currentLoadReductionKw"] == 6.0
    # ven-002 keeps reporting; ven-001 goes silent: its last reading says nothing about now.
    rig.clock.set(MIDNIGHT + timedelta(seconds=50))
    await rig.ingest(metering("ven-002", MIDNIGHT + timedelta(seconds=50), shedPowerKw=0.5))
    rig.clock.set(MIDNIGHT + timedelta(seconds=61))
    stats = await network(rig)
    assert stats["currentLoadReductionKw"] == 0.5
    assert stats["venCount"] == 2 and stats["onlineVens"] == 1


async def test_total_today_is_the_energy_used_not_a_sum_of_readings(rig: Rig) -> None:
    """6 kW for an hour is 6 kWh, however often the VEN reports it (the original
    added up the kW of its samples: 121 readings of 6 kW made 726)."""
    stamps = every(MIDNIGHT, 30, 121)  # 00:00:00 .. 01:00:00, in four batches
    for start in range(0, len(stamps), 40):
        await ingest_power(rig, "ven-001", [(at, 6.0) for at in stamps[start : start + 40]])
    # The newest reading holds until now (the rig's clock is 10 s past it) ...
    assert rig.clock.now() == MIDNIGHT + timedelta(hours=1, seconds=10)
    assert (await network(rig))["totalHousePowerToday"] == round(6.0 + 6.0 * 10 / 3600, 3)
    rig.clock.set(MIDNIGHT + timedelta(hours=1, seconds=30))
    assert (await network(rig))["totalHousePowerToday"] == 6.05
    # ... but no longer than VEN_OFFLINE_AFTER_SECONDS: then nobody knows.
    rig.clock.set(MIDNIGHT + timedelta(hours=2))
    assert (await network(rig))["totalHousePowerToday"] == 6.1


async def test_today_starts_at_midnight_utc_and_gaps_count_no_longer_than_online(
    rig: Rig,
) -> None:
    # 12 kW from 23:59:00 to 00:01:00: the minute after midnight is today's (0.2 kWh).
    before = every(MIDNIGHT - timedelta(minutes=1), 30, 2)
    await ingest_power(rig, "ven-001", [(at, 12.0) for at in before])
    await ingest_power(rig, "ven-001", [(at, 12.0) for at in every(MIDNIGHT, 30, 3)])
    rig.clock.set(MIDNIGHT + timedelta(minutes=1, seconds=10))
    await ingest_power(rig, "ven-001", [(MIDNIGHT + timedelta(seconds=15), 100.0)])
    # That one came late (after 00:01:00): its time was counted at 12 kW already.
    rig.clock.set(MIDNIGHT + timedelta(minutes=11))
    await ingest_power(rig, "ven-001", [(MIDNIGHT + timedelta(minutes=11), 12.0)])
    # Silent for ten minutes: 00:01:00 held for 60 s (VEN_OFFLINE_AFTER_SECONDS), 0.2 kWh;
    # then 00:11:00 holds until now, 10 s later.
    assert rig.clock.now() == MIDNIGHT + timedelta(minutes=11, seconds=10)
    ven_1 = 0.2 + 0.2 + 12.0 * 10 / 3600
    assert (await network(rig))["totalHousePowerToday"] == round(ven_1, 3)
    # A home exporting 6 kW (negative) from 00:00 to 00:10, held 60 s: 1.1 kWh off.
    await ingest_power(rig, "ven-002", [(at, -6.0) for at in every(MIDNIGHT, 30, 21)])
    assert (await network(rig))["totalHousePowerToday"] == round(ven_1 - 1.1, 3)


async def test_energy_matches_the_domain_rule_for_any_series(rig: Rig) -> None:
    """Irregular intervals (gaps past the hold included), changing power, across
    midnight, in batches of any size: what storage answers is gridcore.energy's."""
    draw = random.Random(13)
    at, series = MIDNIGHT - timedelta(minutes=10, seconds=3), []
    while at < MIDNIGHT + timedelta(hours=2):
        series.append((at, round(draw.uniform(-1.0, 9.0), 2)))
        at += timedelta(seconds=draw.choice([1, 5, 5, 5, 30, 59, 60, 61, 300]))
    position = 0
    while position < len(series):
        size = draw.randint(1, 60)
        batch = series[position : position + size]
        draw.shuffle(batch)  # a batch's order is the broker's, not time's
        await ingest_power(rig, "ven-001", batch)
        position += size
    # Late readings (older than the newest stored) are stored and change nothing.
    taken = {t for t, _ in series}
    late = [
        t + timedelta(seconds=2) for t, _ in series[:-5:40] if t + timedelta(seconds=2) not in taken
    ]
    assert late
    await ingest_power(rig, "ven-001", [(t, 99.0) for t in late])
    rig.clock.set(series[-1][0] + timedelta(seconds=42))
    readings = [Reading(t, kw) for t, kw in series]
    closed = closed_energy(None, readings, HOLD)
    now = rig.clock.now()
    expected = energy_today(closed, readings[-1:], now=now, max_hold=HOLD)
    assert closed[MIDNIGHT - timedelta(days=1)] != 0  # yesterday's part is not today's
    assert (await network(rig))["totalHousePowerToday"] == round(expected, 3)


async def test_network_efficiency_is_the_share_of_the_latest_event_delivered(
    rig: Rig,
) -> None:
    await rig.ingest(metering("ven-001", MIDNIGHT), metering("ven-002", MIDNIGHT))
    now = rig.clock.now()
    body = {
        "startTime": now.isoformat(),
        "endTime": (now + timedelta(hours=1)).isoformat(),
        "requestedReductionKw": 10.0,
    }
    event_id = (await rig.client.post("/api/events", json=body)).json()["id"]
    assert (await network(rig))["networkEfficiency"] is None  # scheduled, not dispatched
    await rig.dispatcher.run_once()
    assert (await network(rig))["networkEfficiency"] == 0.0  # asked, nothing delivered yet
    sent = {c.ven_id: c for c in rig.published.sent}  # 5 kW each (002's equal split)
    await rig.ack("ven-001", accepted(event_id, sent["ven-001"].correlation_id, 2.5))
    assert (await network(rig))["networkEfficiency"] == 25.0
    # More than asked is credited what was asked (issue 11): 2.5 + 5 of 10 kW.
    await rig.ack("ven-002", accepted(event_id, sent["ven-002"].correlation_id, 99.0))
    assert (await network(rig))["networkEfficiency"] == 75.0
    # Stopped, it is still the latest the network was asked for.
    await rig.client.post(f"/api/events/{event_id}/stop")
    assert (await network(rig))["networkEfficiency"] == 75.0


def accepted(event_id: str, correlation_id: str, kw: float) -> dict[str, Any]:
    return {
        "op": "event",
        "status": "accepted",
        "event_id": event_id,
        "correlationId": correlation_id,
        "actual_shed_kw": kw,
    }
