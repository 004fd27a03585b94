"""004's future topics through real processes (`gridcore migrate`, `serve`,
`worker` and `ven`) on PostgreSQL and Mosquitto, driven over HTTP:

- a load PATCH reaches the simulated VEN on ``ven/config/{venId}``, which
  applies it and ACKs; the API shows the push confirmed, and the VEN's
  telemetry then reports the load as configured;
- the simulator's telemetry goes two samples to a message (``--batch 2``)
  and is stored sample by sample;
- an alert published on ``ven/alerts/{venId}`` is listed for the VEN and the fleet.
"""

from __future__ import annotations

import json
import time
import uuid
from pathlib import Path

import httpx
import paho.mqtt.client as paho
import pytest
from processes import Processes, free_port, logs_on_failure, wait_for

TOKEN = "control-token-for-topics"

pytestmark = [pytest.mark.postgres, pytest.mark.mosquitto, pytest.mark.slow]


def _publish(host: str, port: int, topic: str, payload: dict[str, object]) -> None:
    client = paho.Client(paho.CallbackAPIVersion.VERSION2, client_id=f"alerting-{uuid.uuid4().hex}")
    client.connect(host, port)
    client.loop_start()
    try:
        client.publish(topic, json.dumps(payload), qos=1).wait_for_publish(10)
    finally:
        client.loop_stop()
        client.disconnect()


def test_a_load_patch_reaches_the_ven_and_is_confirmed(
    postgres_url: str, mosquitto_address: tuple[str, int], tmp_path: Path
) -> None:
    host, port = mosquitto_address
    api_port = free_port()
    prefix = f"cfg{uuid.uuid4().hex[:6]}"
    ven_id = f"{prefix}-1"
    env = {
        "DATABASE_URL": postgres_url,
        "MQTT_BROKER": host,
        "MQTT_PORT": str(port),
        "MQTT_TOPIC_METERING": f"{prefix}/metering",  # no other test's VENs
        "GRIDCORE_API_TOKENS": f"control:{TOKEN}",
        "ACK_TIMEOUT_SECONDS": "5",
    }
    with Processes(tmp_path, env) as procs, logs_on_failure(procs, "serve", "worker", "ven"):
        migrated = procs.run("migrate")
        assert migrated.returncode == 0, migrated.stderr
        procs.start("serve", "serve", "--port", str(api_port))
        worker_port = free_port()
        procs.start("worker", "worker", GRIDCORE_WORKER_HTTP_PORT=str(worker_port))
        procs.start(
            "ven", "ven", "--count", "1", "--prefix", prefix, "--interval", "0.5", "--batch", "2"
        )
        api = httpx.Client(
            base_url=f"http://127.0.0.1:{api_port}",
            headers={"Authorization": f"Bearer {TOKEN}"},
            timeout=10,
        )

        def loads() -> list[dict[str, object]] | None:
            answer = api.get(f"/api/vens/{ven_id}/loads")
            return answer.json() if answer.status_code == 200 and answer.json() else None

        reported = wait_for(loads, 30, "the VEN's loads, from batched telemetry")
        target = next(ld for ld in reported if not ld["critical"] and ld["enabled"])
        load_id = str(target["id"])
        assert api.get(f"/api/vens/{ven_id}/config").json()["state"] == "none"

        patched = api.patch(
            f"/api/vens/{ven_id}/loads/{load_id}", json={"enabled": False, "priority": 1}
        )
        assert patched.status_code == 200, patched.text
        started = time.monotonic()

        def confirmed() -> dict[str, object] | None:
            config = api.get(f"/api/vens/{ven_id}/config").json()
            return config if config["state"] == "confirmed" else None

        config = wait_for(confirmed, 15, "the VEN to confirm the pushed configuration")
        assert time.monotonic() - started < 10  # published at once, not on a retry
        assert config["attempts"] == 1 and config["ackStatus"] == "applied"
        assert config["loads"][0]["desired"] == {
            "loadId": load_id, "enabled": False, "priority": 1, "critical": None,
            "shedCapabilityKw": None,
        }  # fmt: skip

        def in_sync() -> dict[str, object] | None:
            config = api.get(f"/api/vens/{ven_id}/config").json()
            return config if config["inSync"] else None

        config = wait_for(in_sync, 10, "the VEN's telemetry to report the configuration")
        assert config["loads"][0]["reported"]["enabled"] is False
        assert config["loads"][0]["reported"]["priority"] == 1
        load = api.get(f"/api/vens/{ven_id}/loads/{load_id}").json()
        assert load["currentPowerKw"] == 0.0  # switched off

        shadow = api.get(f"/api/vens/{ven_id}/shadow").json()
        assert shadow["state"]["desired"]["config"]["correlationId"] == config["correlationId"]

        # Batched telemetry is stored sample by sample: two a message, each its own row.
        page = api.get(f"/api/vens/{ven_id}/telemetry", params={"limit": 10}).json()
        stamps = [t["timestamp"] for t in page["telemetry"]]
        assert page["totalCount"] >= 4 and len(set(stamps)) == len(stamps)

        alert = {
            "venId": ven_id, "timestamp": int(time.time()), "severity": "critical",
            "code": "overcurrent", "loadId": load_id, "message": "breaker at 104 %",
        }  # fmt: skip

        def critical_alerts_counted() -> float:
            scrape = httpx.get(f"http://127.0.0.1:{worker_port}/metrics", timeout=5).text
            line = 'gridcore_ven_alerts_total{severity="critical"} '
            found = [float(ln[len(line) :]) for ln in scrape.splitlines() if ln.startswith(line)]
            return found[0] if found else 0.0

        counted = critical_alerts_counted()  # the simulator may have raised some already
        _publish(host, port, f"ven/alerts/{ven_id}", alert)

        def listed() -> list[dict[str, object]] | None:
            found = api.get(f"/api/vens/{ven_id}/alerts").json()
            return [a for a in found if a["message"] == alert["message"]] or None

        (stored,) = wait_for(listed, 10, "the alert in the VEN's list")
        assert (stored["severity"], stored["loadId"]) == ("critical", load_id)
        fleet = api.get("/api/alerts", params={"venId": ven_id, "severity": "critical"})
        assert alert["message"] in [a["message"] for a in fleet.json()]
        assert int(fleet.headers["X-Total-Count"]) == len(fleet.json())
        assert critical_alerts_counted() >= counted + 1
