"""The whole system as an operator runs it: `gridcore migrate`, `serve`,
`worker` and `ven --count 5` as separate processes on PostgreSQL and
Mosquitto, driven over HTTP."""

from __future__ import annotations

import signal
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
from processes import Processes, free_port, logs_on_failure, wait_for

TOKEN = "control-token-for-e2e"


@pytest.mark.postgres
@pytest.mark.mosquitto
def test_event_dispatched_acked_and_restored_end_to_end(
    postgres_url: str, mosquitto_address: tuple[str, int], tmp_path: Path
) -> None:
    host, port = mosquitto_address
    api_port = free_port()
    prefix = f"e2e{uuid.uuid4().hex[:6]}"
    env = {
        "DATABASE_URL": postgres_url,
        "MQTT_BROKER": host,
        "MQTT_PORT": str(port),
        # A metering topic of its own, so no other test's VENs join this fleet.
        "MQTT_TOPIC_METERING": f"{prefix}/metering",
        "GRIDCORE_API_TOKENS": f"control:{TOKEN}",
        "ACK_TIMEOUT_SECONDS": "5",
    }
    with Processes(tmp_path, env) as procs, logs_on_failure(procs, "serve", "worker", "ven"):
        migrated = procs.run("migrate")
        assert migrated.returncode == 0, migrated.stderr
        procs.start("serve", "serve", "--port", str(api_port))
        procs.start("worker", "worker")
        procs.start("ven", "ven", "--count", "5", "--prefix", prefix, "--interval", "1")
        api = httpx.Client(
            base_url=f"http://127.0.0.1:{api_port}",
            headers={"Authorization": f"Bearer {TOKEN}"},
            timeout=10,
        )

        def fleet_online() -> bool:
            stats = api.get("/api/stats/network").json()
            return bool(stats["onlineVens"] == 5 and stats["potentialLoadReductionKw"] > 0)

        wait_for(fleet_online, 30, "5 VENs online with shed available")

        now = datetime.now(UTC)
        created = api.post(
            "/api/events",
            json={
                "startTime": now.isoformat().replace("+00:00", "Z"),
                "endTime": (now + timedelta(seconds=12)).isoformat().replace("+00:00", "Z"),
                "requestedReductionKw": 3.0,
            },
        )
        assert created.status_code in (200, 201), created.text
        event_id = created.json()["id"]

        def all_acked() -> dict[str, object] | None:
            event = api.get(f"/api/events/{event_id}").json()
            states = [v["commandState"] for v in event["vens"]]
            return event if len(states) == 5 and set(states) == {"acked"} else None

        event = wait_for(all_acked, 10, "every VEN to ACK the event")
        assert event["status"] == "active"
        assert event["actualReductionKw"] > 0

        acks = api.get(f"/api/events/{event_id}/acks").json()
        assert acks["totalCount"] == 5
        assert all(a["status"] == "accepted" and a["circuitsCurtailed"] for a in acks["acks"])

        ven_id = f"{prefix}-1"

        def telemetry_with_event() -> bool:
            page = api.get(f"/api/vens/{ven_id}/telemetry", params={"limit": 5}).json()
            return any(t.get("eventId") == event_id for t in page["telemetry"])

        wait_for(telemetry_with_event, 10, "telemetry carrying the event id")

        def all_restored() -> dict[str, object] | None:
            event = api.get(f"/api/events/{event_id}").json()
            restored = [v["restoreState"] for v in event["vens"]]
            return event if event["status"] == "completed" and set(restored) == {"acked"} else None

        event = wait_for(all_restored, 30, "the event to complete and every VEN to restore")
        assert event["actualReductionKw"] > 0

        assert procs.stop("worker") == 0
        assert "worker stopped" in procs.log("worker")
        # uvicorn shuts down gracefully, then re-raises SIGTERM for its exit status.
        assert procs.stop("serve") in (0, -signal.SIGTERM)
        assert "Application shutdown complete" in procs.log("serve")
