"""Issue 14 through the API on every store (memory, SQLite, PostgreSQL): an
event's performance measured from stored telemetry against a baseline, with
numbers known by construction.

Two VENs report every 5 minutes for 16 days: ven-001 draws 6 kW, ven-002
4 kW. A one-hour event (Wednesday 2024-07-10 15:00 UTC) is accepted by
ven-001, which drops to 2 kW (4 kW shed, 4 kWh), then draws 7 kW for the
half hour after the end (rebound: 0.5 kWh, peak 1 kW); ven-002 refuses and
keeps drawing 4 kW (nothing shed).
"""

from __future__ import annotations

import csv
import io
from collections.abc import Collection
from datetime import UTC, date, datetime, timedelta

import pytest
from tests.integration import test_api_endpoints as api
from tests.integration.test_api_endpoints import Rig
from tests.integration.test_dashboard_events import sent_to

from entrypoints.api.performance import EventPerformanceOut
from entrypoints.cli import main, performance_table
from gridcore.baselines import fallback_chain
from gridcore.measurement import VenMeterData, measure_ven
from gridcore.telemetry import LoadSample, TelemetrySample
from gridcore.verification import Programme, measure_event_performance, measure_finished_events

rig = api.rig  # the fixture: the API over memory, SQLite and PostgreSQL

START = datetime(2024, 7, 10, 15, 0, tzinfo=UTC)
END = START + timedelta(hours=1)
STEP = timedelta(minutes=5)


def used_kw(ven_id: str, at: datetime) -> float:
    if ven_id == "ven-002":
        return 4.0
    if START <= at < END:
        return 2.0
    if END <= at < END + timedelta(minutes=30):
        return 7.0
    return 6.0


async def report(
    rig: Rig, since: datetime, until: datetime, missing: Collection[date] = frozenset()
) -> None:
    """Both VENs' telemetry every 5 minutes; ven-002 sends none on ``missing`` days."""
    samples = []
    at = since
    while at < until:
        samples += [
            TelemetrySample(ven, at, used_power_kw=used_kw(ven, at), shed_power_kw=0.0)
            for ven in ("ven-001", "ven-002")
            if ven == "ven-001" or at.date() not in missing
        ]
        at += STEP
    for first in range(0, len(samples), 2000):
        await rig.storage.telemetry_store.append(samples[first : first + 2000])


async def run_event(rig: Rig, missing: Collection[date] = frozenset()) -> str:
    await report(rig, START - timedelta(days=16), START, missing)
    # Online at the start, each with an HVAC circuit that can shed 6 kW.
    just_before = START - timedelta(seconds=10)
    await rig.storage.telemetry_store.append(
        [
            TelemetrySample(
                ven,
                just_before,
                used_power_kw=used_kw(ven, just_before),
                shed_power_kw=0.0,
                loads=(
                    LoadSample(
                        "hvac",
                        name="HVAC",
                        type="hvac",
                        capacity_kw=8.0,
                        current_power_kw=6.0,
                        shed_capability_kw=6.0,
                        enabled=True,
                    ),
                ),
            )
            for ven in ("ven-001", "ven-002")
        ]
    )
    rig.clock.set(START - timedelta(seconds=5))
    body = {
        "startTime": START.isoformat(),
        "endTime": END.isoformat(),
        "requestedReductionKw": 10.0,
    }
    event_id: str = (await rig.client.post("/api/events", json=body)).json()["id"]
    rig.clock.set(START)
    await rig.dispatcher.run_once()
    await rig.ack(
        "ven-001", {"op": "event", "status": "accepted", "correlationId": sent_to(rig, "ven-001")}
    )
    await rig.ack(
        "ven-002", {"op": "event", "status": "busy", "correlationId": sent_to(rig, "ven-002")}
    )
    return event_id


async def test_the_meter_shows_what_was_shed(rig: Rig) -> None:
    event_id = await run_event(rig)
    await report(rig, START, END + timedelta(hours=1))
    rig.clock.set(END + timedelta(hours=1, minutes=5))
    answer = await rig.client.get(f"/api/events/{event_id}/performance?method=10-in-10")
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert (body["method"], body["live"], body["timezone"]) == ("10-in-10", False, "UTC")
    vens = {v["venId"]: v for v in body["vens"]}
    one, two = vens["ven-001"], vens["ven-002"]
    assert one["method"] == "10-in-10" and one["fellBack"] == []
    assert one["shedKwh"] == pytest.approx(4.0) and one["avgShedKw"] == pytest.approx(4.0)
    assert one["quality"]["baselineDays"] == 10 and one["coverage"] == pytest.approx(1.0)
    assert one["quality"]["intervalsPresent"] == one["quality"]["intervalsExpected"] == 12
    assert one["rebound"]["kwh"] == pytest.approx(0.5)
    assert one["rebound"]["peakKw"] == pytest.approx(1.0)
    detail = (await rig.client.get(f"/api/events/{event_id}")).json()
    allocated = {v["venId"]: v["allocatedKw"] for v in detail["vens"]}
    assert one["allocatedKw"] == pytest.approx(allocated["ven-001"])
    assert one["performanceRatio"] == pytest.approx(4.0 / allocated["ven-001"])
    assert one["claimedKw"] == pytest.approx(allocated["ven-001"])  # the ACK claims it all
    assert two["shedKwh"] == pytest.approx(0.0) and two["claimedKw"] is None

    fleet = body["fleet"]
    assert fleet["shedKwh"] == pytest.approx(4.0)
    assert fleet["performanceRatio"] == pytest.approx(0.4)  # 4 kW of 10 asked
    assert (fleet["vens"], fleet["vensOffline"], fleet["vensWithoutBaseline"]) == (2, 0, 0)
    in_event = [
        p for p in fleet["series"] if START.isoformat()[:16] <= p["start"][:16] < "2024-07-10T16"
    ]
    assert [p["shedKw"] for p in in_event] == pytest.approx([4.0] * 12)
    assert all(p["baselineKw"] == pytest.approx(10.0) for p in in_event)

    # One VEN's series, and CSV for settlement.
    series = (await rig.client.get(f"/api/events/{event_id}/vens/ven-001/performance")).json()
    assert len(series["baseline"]["daysUsed"]) == 4  # high-4-of-5, the default
    assert series["baseline"]["method"] == "high-4-of-5"
    assert [p["meteredKw"] for p in series["series"][:12]] == pytest.approx([2.0] * 12)
    table = await rig.client.get(
        f"/api/events/{event_id}/performance?method=10-in-10",
        headers={"Accept": "text/csv"},
    )
    assert table.headers["content-type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(table.text)))
    assert [r["venId"] for r in rows] == ["ven-001", "ven-002", "FLEET"]
    assert float(rows[0]["shedKwh"]) == pytest.approx(4.0)
    assert float(rows[2]["performanceRatio"]) == pytest.approx(0.4)
    one_csv = await rig.client.get(f"/api/events/{event_id}/vens/ven-001/performance?format=csv")
    assert one_csv.text.splitlines()[0].startswith("start,eventHours,afterHours,baselineKw")

    # `gridcore report` prints the same as a table.
    table_text = performance_table(EventPerformanceOut.model_validate(body))
    lines = table_text.splitlines()
    assert lines[0].startswith(f"event {event_id}  2024-07-10 15:00 - 2024-07-10 16:00 UTC")
    assert "baseline 10-in-10  (final" in lines[0]
    ven_line = next(line for line in lines if line.startswith("ven-001"))
    assert ven_line.split()[1:] == [
        "10-in-10",
        f"{allocated['ven-001']:.2f}",
        f"{allocated['ven-001']:.2f}",
        "4.00",
        "4.00",
        f"{4.0 / allocated['ven-001']:.0%}",
        "100%",
        "0.50",
    ]
    assert next(line for line in lines if line.startswith("FLEET (2 VENs)")).split()[3:6] == [
        "10.00",
        f"{allocated['ven-001']:.2f}",
        "4.00",
    ]


async def test_a_ven_with_days_missing_is_read_further_back(rig: Rig) -> None:
    """Measurement first reads the days a baseline takes when each has data
    (for 10-in-10, the 10 weekdays before the event), then, for a VEN whose
    baseline had to look further, every day of the lookback. ven-002 sent
    nothing on 4 of those weekdays: its baseline takes the 7 weekdays it has
    in full in its 16 days, one older than the first read. Each VEN measures
    exactly as from every interval it has."""
    missing = {date(2024, 7, 9), date(2024, 7, 8), date(2024, 7, 5), date(2024, 7, 3)}
    event_id = await run_event(rig, missing)
    await report(rig, START, END + timedelta(hours=1))
    now = END + timedelta(hours=1, minutes=5)
    chain = fallback_chain("10-in-10")
    performance = await measure_event_performance(
        rig.storage.uow_factory,
        rig.storage.telemetry_queries,
        event_id,
        programme=Programme(method="10-in-10"),
        now=now,
    )
    measured = performance.measurement.vens
    two = measured["ven-002"].baseline
    assert (two.method, len(two.days_used)) == ("10-in-10", 7)
    assert min(two.days_used) == date(2024, 6, 25)  # read in the second pass
    assert len(measured["ven-001"].baseline.days_used) == 10
    window = performance.measurement.window
    everything = await rig.storage.telemetry_queries.intervals(
        ["ven-001", "ven-002"], START - timedelta(days=46), window.baseline_end
    )
    for ven_id, found in measured.items():
        data = VenMeterData(
            ven_id, everything[ven_id], allocated_kw=found.allocated_kw, claimed_kw=found.claimed_kw
        )
        assert measure_ven(data, window, tz=UTC, methods=chain) == found


async def test_while_the_event_runs_the_meter_before_baseline_shows_progress(rig: Rig) -> None:
    event_id = await run_event(rig)
    await report(rig, START, START + timedelta(minutes=30))
    rig.clock.set(START + timedelta(minutes=30))
    body = (await rig.client.get(f"/api/events/{event_id}/performance")).json()
    assert body["live"] is True and body["method"] == "meter-before"
    one = next(v for v in body["vens"] if v["venId"] == "ven-001")
    assert one["method"] == "meter-before"
    assert one["shedKwh"] == pytest.approx(2.0)  # half an hour at 4 kW
    assert one["avgShedKw"] == pytest.approx(4.0)


async def test_what_cannot_be_measured_is_a_clear_error(rig: Rig) -> None:
    missing = await rig.client.get("/api/events/evt-0000abcd/performance")
    assert missing.status_code == 404
    rig.clock.set(START - timedelta(hours=1))
    body = {"startTime": START.isoformat(), "endTime": END.isoformat(), "requestedReductionKw": 5}
    event_id = (await rig.client.post("/api/events", json=body)).json()["id"]
    early = await rig.client.get(f"/api/events/{event_id}/performance")
    assert early.status_code == 422 and "has not started" in early.json()["message"]
    bad = await rig.client.get(f"/api/events/{event_id}/performance?method=best-guess")
    assert bad.status_code == 422


def test_report_of_an_unknown_event_says_so(
    migrated_sqlite_url: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("DATABASE_URL", migrated_sqlite_url)
    assert main(["report", "evt-0000abcd", "--method", "10-in-10"]) == 2
    assert capsys.readouterr().err.strip() == "gridcore: event 'evt-0000abcd' not found"


async def test_a_finished_event_is_kept_as_measured_then(rig: Rig) -> None:
    """The worker's pass measures the event once its hour after is over and
    keeps it; late telemetry changes nothing kept until it is recomputed."""
    event_id = await run_event(rig)
    await report(rig, START, END + timedelta(hours=1))
    await rig.dispatcher.run_once()
    programme = Programme(method="10-in-10")
    store = rig.storage.performance
    for_worker = (rig.storage.uow_factory, rig.storage.telemetry_queries, store)

    rig.clock.set(END + timedelta(minutes=30))  # the event is over, its hour after is not
    await rig.dispatcher.run_once()
    assert (
        await measure_finished_events(*for_worker, programme=programme, now=rig.clock.now()) == []
    )
    measured_at = END + timedelta(hours=1, minutes=1)
    rig.clock.set(measured_at)
    assert await measure_finished_events(*for_worker, programme=programme, now=measured_at) == [
        event_id
    ]
    assert await measure_finished_events(*for_worker, programme=programme, now=measured_at) == []

    # A VEN's buffer arrives late: ven-002 drew nothing at a second sample in
    # each event interval, so its interval means halve (4 -> 2 kW).
    late = [
        TelemetrySample("ven-002", START + k * STEP + timedelta(seconds=30), used_power_kw=0.0)
        for k in range(12)
    ]
    await rig.storage.telemetry_store.append(late)
    rig.clock.set(measured_at + timedelta(hours=2))
    path = f"/api/events/{event_id}/performance?method=10-in-10"
    kept = (await rig.client.get(path)).json()
    assert kept["computedAt"] == measured_at.isoformat().replace("+00:00", "Z")
    assert kept["fleet"]["shedKwh"] == pytest.approx(4.0)
    again = (await rig.client.get(f"{path}&recompute=true")).json()
    assert again["computedAt"] > kept["computedAt"]
    assert again["fleet"]["shedKwh"] == pytest.approx(6.0)  # ven-002's late readings count now
    assert (await rig.client.get(path)).json() == again  # and are what is kept


async def test_the_event_page_shows_the_metered_shed_next_to_the_claim(rig: Rig) -> None:
    event_id = await run_event(rig)
    await report(rig, START, START + timedelta(minutes=20))
    rig.clock.set(START + timedelta(minutes=20))
    detail = (await rig.client.get(f"/api/events/{event_id}")).json()
    metered = detail["metered"]
    assert (metered["method"], metered["live"]) == ("meter-before", True)
    assert metered["shedKw"] == pytest.approx(4.0)  # ven-001's 4 kW, ven-002's 0
    assert metered["shedKwh"] == pytest.approx(4.0 / 3)  # 20 minutes of it
    assert metered["performanceRatio"] == pytest.approx(0.4)
    by_ven = {v["venId"]: v for v in detail["vens"]}
    assert by_ven["ven-001"]["meteredShedKw"] == pytest.approx(4.0)
    assert by_ven["ven-001"]["shedKw"] == by_ven["ven-001"]["allocatedKw"]  # the claim
    assert by_ven["ven-002"]["meteredShedKw"] == pytest.approx(0.0)

    # Over, with its hour after: nothing until the worker keeps the report,
    # then the kept report with the programme's method (high-4-of-5 here).
    await report(rig, START + timedelta(minutes=20), END + timedelta(hours=1))
    rig.clock.set(END + timedelta(hours=1, minutes=1))
    await rig.dispatcher.run_once()
    assert (await rig.client.get(f"/api/events/{event_id}")).json()["metered"] is None
    await measure_finished_events(
        rig.storage.uow_factory,
        rig.storage.telemetry_queries,
        rig.storage.performance,
        programme=Programme(),
        now=rig.clock.now(),
    )
    metered = (await rig.client.get(f"/api/events/{event_id}")).json()["metered"]
    assert (metered["method"], metered["live"]) == ("high-4-of-5", False)
    assert metered["shedKwh"] == pytest.approx(4.0)


async def test_a_method_is_kept_under_its_own_name(rig: Rig) -> None:
    event_id = await run_event(rig)
    await report(rig, START, END + timedelta(hours=1))
    rig.clock.set(END + timedelta(hours=1, minutes=5))
    first = await rig.client.get(f"/api/events/{event_id}/performance?method=meter-before-60")
    assert first.json()["method"] == "meter-before"
    rig.clock.set(END + timedelta(hours=3))
    again = await rig.client.get(f"/api/events/{event_id}/performance?method=meter-before-60")
    assert again.json()["computedAt"] == first.json()["computedAt"]  # found as kept
