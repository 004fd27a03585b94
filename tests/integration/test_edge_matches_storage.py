"""What the MQTT edge accepts, storage holds (issue 11, item 2), and a VEN clock
running ahead moves no state into the future (item 6), on every backend.

A payload with every text field at its limit of :mod:`gridcore.limits`
(counted in characters, multi-byte ones included) and integers at the ends of
32 bits validates and is stored; one character more is refused by the wire
model (``tests/unit/test_edge_validation.py``), so it can never reach a COPY
and fail its batch.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from storage_contract import BACKENDS, Backend, open_backend

from adapters.mqtt.payloads import (
    AckWire,
    LoadSnapshotWire,
    StatusWire,
    TelemetryWire,
    to_telemetry_sample,
    to_ven_ack,
)
from adapters.system import ManualClock
from gridcore import limits
from gridcore.reports import LoadSnapshot, VenStatusReport
from gridcore.services import record_acks
from gridcore.telemetry import TelemetrySample

T0 = datetime(2025, 10, 20, 15, 0, tzinfo=UTC)
VEN = "v" * limits.VEN_ID_LENGTH


@pytest.fixture(params=BACKENDS)
async def backend(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Backend]:
    async for opened in open_backend(request, tmp_path):
        yield opened


def longest(length: int, char: str = "é") -> str:
    return char * length  # characters, not bytes: varchar(n) counts characters


def load_line(n: int) -> dict[str, object]:
    return {
        "loadId": longest(limits.LOAD_ID_LENGTH - 1) + str(n),
        "name": longest(limits.NAME_LENGTH),
        "type": longest(limits.LOAD_TYPE_LENGTH),
        "priority": limits.INT32_MIN if n % 2 else limits.INT32_MAX,
        "currentPowerKw": limits.MAX_KW,
    }


async def test_a_payload_at_every_limit_is_stored(backend: Backend) -> None:
    received = T0 + timedelta(seconds=1)
    telemetry = json.dumps(
        {
            "venId": VEN,
            "timestamp": T0.isoformat(),
            "eventId": longest(limits.EVENT_ID_LENGTH),
            "usedPowerKw": -limits.MAX_KW,
            "circuits": [{"id": longest(limits.LOAD_ID_LENGTH), "name": "c" * 255}],
            "loads": [load_line(n) for n in range(3)],
        }
    )
    sample = to_telemetry_sample(TelemetryWire.model_validate_json(telemetry), telemetry, received)
    result = await backend.store.append([sample])
    assert (result.stored, result.refused) == (1, ())
    (stored,) = (await backend.queries.telemetry(VEN)).items
    assert len(stored.loads) == 4

    status = StatusWire.model_validate_json(
        json.dumps({"venId": VEN, "status": "s" * limits.VEN_STATUS_LENGTH, "details": {"é": [1]}})
    )
    report = VenStatusReport(VEN, status.status, T0, status.details, received)
    assert await backend.statuses.record_statuses([report]) == 1

    snapshot = json.dumps({"venId": VEN, "timestamp": T0.isoformat(), "loads": [load_line(1)]})
    snap = LoadSnapshotWire.model_validate_json(snapshot)
    raw = {line["loadId"]: line for line in json.loads(snapshot)["loads"]}
    assert (
        await backend.snapshots.record_snapshots(
            [LoadSnapshot(VEN, snap.timestamp, snap.load_samples(), raw, received)]
        )
        == 1
    )

    ack_text = json.dumps(
        {
            "op": "o" * limits.ACK_TEXT_LENGTH,
            "status": "s" * limits.ACK_TEXT_LENGTH,
            "correlationId": longest(limits.ACK_CORRELATION_ID_LENGTH),
            "eventId": longest(limits.EVENT_ID_LENGTH),
            "circuits_curtailed": [{"loadId": longest(limits.LOAD_ID_LENGTH), "shedKw": 1.0}],
            "extra": {"nested": ["é", 10**30]},
        }
    )
    ack = to_ven_ack(AckWire.model_validate_json(ack_text), VEN, ack_text, received)
    await record_acks(backend.uow, ManualClock(received), [ack])
    async with backend.uow() as uow:
        assert (await uow.acks.for_ven(VEN)).total_count == 1


async def test_a_clock_running_ahead_moves_no_state_into_the_future(backend: Backend) -> None:
    """Stamped 200 s ahead (inside the accepted skew): stored as stamped, but the
    heartbeat stops at the receive time, and the next sample to arrive replaces
    it as the VEN's current state although it is stamped earlier."""
    ven = "ven-ahead"

    def sample(stamp: datetime, received: datetime, used: float) -> TelemetrySample:
        return TelemetrySample(ven, stamp, used_power_kw=used, received_at=received)

    async def state() -> tuple[datetime | None, datetime, float | None]:
        async with backend.uow() as uow:
            found = await uow.vens.get(ven)
        latest = (await backend.queries.latest_panels([ven]))[ven]
        return found.last_seen_at if found else None, latest.timestamp, latest.used_power_kw

    await backend.store.append([sample(T0, T0, 1.0)])
    ahead = T0 + timedelta(seconds=200)
    await backend.store.append([sample(ahead, T0 + timedelta(seconds=5), 999.0)])
    assert await state() == (T0 + timedelta(seconds=5), ahead, 999.0)

    later = T0 + timedelta(seconds=10)
    await backend.store.append([sample(later, later, 2.0)])
    assert await state() == (later, later, 2.0)

    # Status reports and load snapshots are heartbeats too, held to the same rule.
    status_at = T0 + timedelta(seconds=15)
    await backend.statuses.record_statuses(
        [VenStatusReport(ven, "online", status_at + timedelta(seconds=250), None, status_at)]
    )
    assert (await state())[0] == status_at
    snapshot_at = T0 + timedelta(seconds=20)
    await backend.snapshots.record_snapshots(
        [LoadSnapshot(ven, snapshot_at + timedelta(seconds=250), (), {}, snapshot_at)]
    )
    assert (await state())[0] == snapshot_at
