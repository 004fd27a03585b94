"""Contract of VenStatusStore and LoadSnapshotStore, the same for every backend:
memory, SQLite, PostgreSQL."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from storage_contract import BACKENDS, Backend, open_backend

from gridcore.errors import InvalidInput
from gridcore.reports import LoadSnapshot, VenStatusReport
from gridcore.telemetry import LoadSample, TelemetrySample
from gridcore.ven import Ven

T0 = datetime(2024, 10, 23, 16, 0, tzinfo=UTC)
S = timedelta(seconds=1)


@pytest.fixture(params=BACKENDS)
async def backend(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Backend]:
    async for opened in open_backend(request, tmp_path):
        yield opened


async def register(backend: Backend, ven_id: str, last_seen: datetime | None = None) -> None:
    async with backend.uow() as uow:
        await uow.vens.add(Ven(id=ven_id, name=ven_id, registered_at=T0 - S))
        await uow.commit()
    if last_seen is not None:
        await backend.store.append([TelemetrySample(ven_id, last_seen, used_power_kw=1.0)])


async def last_seen(backend: Backend, ven_id: str) -> datetime | None:
    async with backend.uow() as uow:
        ven = await uow.vens.get(ven_id)
    assert ven is not None
    seen: datetime | None = ven.last_seen_at
    return seen


def status(ven_id: str, at: datetime, value: str = "online", **details: object) -> VenStatusReport:
    return VenStatusReport(ven_id, value, at, details or None)


def snapshot(ven_id: str, at: datetime, power: float = 2.1) -> LoadSnapshot:
    return LoadSnapshot(
        ven_id,
        at,
        (
            LoadSample("circuit_1", "Main HVAC", "hvac", 5.0, power, 5.0, True, 2),
            LoadSample("ev1", None, "ev", None, 0.0, 7.2, False, None, False),
        ),
        {"circuit_1": {"loadId": "circuit_1", "currentPowerKw": power, "firmware": "x"}},
    )


# --- statuses ---------------------------------------------------------------------


async def test_statuses_are_stored_and_read_back_newest_first(backend: Backend) -> None:
    stored = await backend.statuses.record_statuses(
        [
            status("ven-001", T0, "online", reason="boot", uptime=3),
            status("ven-001", T0 + 5 * S, "degraded", circuits=["c1"]),
            status("ven-002", T0 + 2 * S, "online"),
        ]
    )
    assert stored == 3
    history = await backend.statuses.statuses("ven-001")
    assert [(r.status, r.timestamp) for r in history] == [("degraded", T0 + 5 * S),
                                                          ("online", T0)]  # fmt: skip
    assert history[1].details == {"reason": "boot", "uptime": 3}
    assert history[0].details == {"circuits": ["c1"]}
    assert await backend.statuses.statuses("ven-001", limit=1) == history[:1]
    assert await backend.statuses.statuses("nobody") == []


async def test_latest_status_per_ven(backend: Backend) -> None:
    await backend.statuses.record_statuses(
        [
            status("ven-001", T0 + 9 * S, "offline"),
            status("ven-001", T0, "online"),
            status("ven-002", T0, "online"),
        ]
    )
    await backend.statuses.record_statuses([status("ven-002", T0, "degraded")])  # same time: later
    latest = await backend.statuses.latest_statuses(["ven-001", "ven-002", "ven-003"])
    assert {k: (v.status, v.timestamp) for k, v in latest.items()} == {
        "ven-001": ("offline", T0 + 9 * S),
        "ven-002": ("degraded", T0),
    }
    assert await backend.statuses.latest_statuses([]) == {}


async def test_a_redelivered_status_is_stored_once(backend: Backend) -> None:
    report = status("ven-001", T0, "online", reason="boot")
    assert await backend.statuses.record_statuses([report, report]) == 1
    assert await backend.statuses.record_statuses([report]) == 0
    assert len(await backend.statuses.statuses("ven-001")) == 1


async def test_a_status_is_a_heartbeat_unless_it_says_the_ven_is_gone(backend: Backend) -> None:
    await register(backend, "ven-001", last_seen=T0)
    await register(backend, "ven-002", last_seen=T0)
    await backend.statuses.record_statuses(
        [status("ven-001", T0 + 30 * S), status("ven-001", T0 + 10 * S)]
    )
    await backend.statuses.record_statuses([status("ven-002", T0 + 30 * S, "offline")])
    assert await last_seen(backend, "ven-001") == T0 + 30 * S
    assert await last_seen(backend, "ven-002") == T0  # the broker's last will is not life
    await backend.statuses.record_statuses([status("ven-001", T0 + 20 * S)])  # late: no going back
    assert await last_seen(backend, "ven-001") == T0 + 30 * S


async def test_statuses_of_unknown_vens_are_kept_but_register_nothing(backend: Backend) -> None:
    assert await backend.statuses.record_statuses([status("stranger", T0)]) == 1
    async with backend.uow() as uow:
        assert await uow.vens.get("stranger") is None
    assert (await backend.statuses.latest_statuses(["stranger"]))["stranger"].status == "online"


def test_a_status_that_cannot_be_stored_is_refused_by_the_domain() -> None:
    with pytest.raises(InvalidInput):
        VenStatusReport("bad/id", "online", T0)
    with pytest.raises(InvalidInput):
        VenStatusReport("ven-001", "x" * 33, T0)
    with pytest.raises(InvalidInput):
        VenStatusReport("ven-001", "online", T0.replace(tzinfo=None))


# --- load snapshots ------------------------------------------------------------------


async def test_snapshots_are_stored_and_the_newest_read_back(backend: Backend) -> None:
    stored = await backend.snapshots.record_snapshots(
        [snapshot("ven-001", T0, 1.0), snapshot("ven-001", T0 + 30 * S, 2.5)]
    )
    assert stored == 4
    latest = await backend.snapshots.latest_snapshots(["ven-001", "ven-002"])
    assert list(latest) == ["ven-001"]
    snap = latest["ven-001"]
    assert snap.timestamp == T0 + 30 * S
    assert snap.loads == (
        LoadSample("circuit_1", "Main HVAC", "hvac", 5.0, 2.5, 5.0, True, 2),
        LoadSample("ev1", None, "ev", None, 0.0, 7.2, False, None, False),
    )
    assert snap.raw_loads == {
        "circuit_1": {"loadId": "circuit_1", "currentPowerKw": 2.5, "firmware": "x"}
    }


async def test_a_redelivered_snapshot_is_stored_once(backend: Backend) -> None:
    assert await backend.snapshots.record_snapshots([snapshot("ven-001", T0)] * 2) == 2
    assert await backend.snapshots.record_snapshots([snapshot("ven-001", T0, 9.9)]) == 0
    snap = (await backend.snapshots.latest_snapshots(["ven-001"]))["ven-001"]
    assert snap.loads[0].current_power_kw == 2.1  # the first copy stays


async def test_a_snapshot_is_a_heartbeat_but_not_current_load_state(backend: Backend) -> None:
    await register(backend, "ven-001", last_seen=T0)
    await backend.snapshots.record_snapshots([snapshot("ven-001", T0 + 30 * S, 4.0)])
    assert await last_seen(backend, "ven-001") == T0 + 30 * S
    await backend.snapshots.record_snapshots([snapshot("ven-001", T0 + 5 * S)])
    assert await last_seen(backend, "ven-001") == T0 + 30 * S
    assert await backend.queries.latest_loads("ven-001") == []  # telemetry had no loads


async def test_snapshots_of_unknown_vens_are_kept_but_register_nothing(backend: Backend) -> None:
    assert await backend.snapshots.record_snapshots([snapshot("stranger", T0)]) == 2
    async with backend.uow() as uow:
        assert await uow.vens.get("stranger") is None
    assert "stranger" in await backend.snapshots.latest_snapshots(["stranger"])


async def test_an_empty_snapshot_is_still_a_heartbeat(backend: Backend) -> None:
    await register(backend, "ven-001", last_seen=T0)
    assert await backend.snapshots.record_snapshots([LoadSnapshot("ven-001", T0 + S)]) == 0
    assert await last_seen(backend, "ven-001") == T0 + S


def test_a_snapshot_keeps_one_line_per_load() -> None:
    snap = LoadSnapshot("ven-001", T0, (LoadSample("a", current_power_kw=1.0),
                                        LoadSample("a", current_power_kw=2.0)))  # fmt: skip
    assert snap.loads == (LoadSample("a", current_power_kw=2.0),)
    with pytest.raises(InvalidInput):
        LoadSnapshot("ven-001", T0, (LoadSample(""),))
