"""The operator's command line against the real system: `gridcore serve`,
`worker` and `ven` as processes on PostgreSQL and Mosquitto, driven with
`gridcore vens`, `events create --wait`, `events show`, `ping`, `events stop
--wait`, `events cancel` and `audit`, while `gridcore listen --ven` prints
one VEN's telemetry, commands and ACKs (and survives a malformed payload)."""

from __future__ import annotations

import json
import re
import uuid
from pathlib import Path

import httpx
import paho.mqtt.publish as publish
import pytest
from processes import Processes, free_port, logs_on_failure, wait_for

TOKEN = "operator-token-for-e2e-0123"


@pytest.mark.postgres
@pytest.mark.mosquitto
def test_an_operator_runs_an_event_from_the_command_line(
    postgres_url: str, mosquitto_address: tuple[str, int], tmp_path: Path
) -> None:
    host, port = mosquitto_address
    api_port = free_port()
    prefix = f"ops{uuid.uuid4().hex[:6]}"
    mine = f"{prefix}-1"
    env = {
        "DATABASE_URL": postgres_url,
        "MQTT_BROKER": host,
        "MQTT_PORT": str(port),
        "MQTT_TOPIC_METERING": f"{prefix}/metering",  # no other test's VENs in this fleet
        "GRIDCORE_API_TOKENS": f"operator-ann:control:{TOKEN}",
        "GRIDCORE_URL": f"http://127.0.0.1:{api_port}",
        "GRIDCORE_TOKEN": TOKEN,
        "ACK_TIMEOUT_SECONDS": "5",
    }
    names = ("serve", "worker", "ven", "listen")
    with Processes(tmp_path, env) as procs, logs_on_failure(procs, *names):
        migrated = procs.run("migrate")
        assert migrated.returncode == 0, migrated.stderr
        procs.start("serve", "serve", "--port", str(api_port))
        procs.start("worker", "worker")
        procs.start("listen", "listen", "--ven", mine)
        wait_for(lambda: "listening on" in procs.log("listen"), 20, "listen to subscribe")
        procs.start("ven", "ven", "--count", "3", "--prefix", prefix, "--interval", "1")
        api = httpx.Client(
            base_url=env["GRIDCORE_URL"], headers={"Authorization": f"Bearer {TOKEN}"}, timeout=10
        )
        wait_for(
            lambda: api.get("/api/stats/network").json()["onlineVens"] == 3, 30, "3 VENs online"
        )

        vens = procs.run("vens")
        assert vens.returncode == 0, vens.stderr
        row = next(line for line in vens.stdout.splitlines() if line.startswith(mine + " "))
        assert "online" in row and "ago" in row
        assert "3 VENs, 3 online" in vens.stdout

        created = procs.run("events", "create", "--duration", "2m", "--kw", "3", "--wait", "--json")
        assert created.returncode == 0, created.stderr
        event = json.loads(created.stdout)
        assert {v["status"] for v in event["vens"]} == {"accepted"} and len(event["vens"]) == 3
        assert "3/3 VENs answered (3 accepted)" in created.stderr  # progress, on stderr

        shown = procs.run("events", "show", event["id"])
        assert shown.returncode == 0, shown.stderr
        assert event["id"] in shown.stdout and "3 of 3 VENs answered (3 accepted)" in shown.stdout

        # A malformed payload on the VEN's ACK topic: listen marks it and goes on.
        publish.single(f"ven/ack/{mine}", b"{broken", hostname=host, port=port)
        pinged = procs.run("ping", mine)
        assert pinged.returncode == 0, pinged.stderr
        assert re.search(rf"pong from {mine}: round trip \d+ ms", pinged.stdout), pinged.stdout

        stopped = procs.run("events", "stop", event["id"], "--wait")
        assert stopped.returncode == 0, stopped.stderr
        assert "stopped" in stopped.stdout and "acked" in stopped.stdout

        later = procs.run("events", "create", "--start", "+1h", "--duration", "15m", "--kw", "1",
                          "--json")  # fmt: skip
        assert later.returncode == 0, later.stderr
        later_id = json.loads(later.stdout)["id"]
        cancelled = procs.run("events", "cancel", later_id)
        assert cancelled.returncode == 0 and f"cancelled {later_id}" in cancelled.stdout
        audit = procs.run("audit", "--json")
        assert audit.returncode == 0, audit.stderr
        entries = json.loads(audit.stdout)["entries"]
        assert [(e["actor"], e["action"]) for e in reversed(entries)] == [
            ("operator-ann", "event.created"),
            ("operator-ann", "command.sent"),
            ("operator-ann", "event.stopped"),
            ("operator-ann", "event.created"),
            ("operator-ann", "event.cancelled"),
        ]

        (tmp_path / "bad").write_text("not-the-token-0123456789\n")
        refused = procs.run("vens", "--token-file", str(tmp_path / "bad"))
        assert refused.returncode == 1 and "GRIDCORE_TOKEN" in refused.stderr
        assert "Traceback" not in refused.stderr

        def heard() -> list[str]:
            lines = procs.log("listen").splitlines()
            wanted = [
                rf"metering\s+{mine}\s+power \d+\.\d+ kW",
                rf"command\s+{mine}\s+op event\s+shed \d+\.\d+ kW.*correlationId {event['id']}",
                rf"ack\s+{mine}\s+op event\s+status accepted.*correlationId {event['id']}",
                rf"ack\s+{mine}\s+UNREADABLE",
                rf"ack\s+{mine}\s+op ping\s+status pong",
                rf"command\s+{mine}\s+op restore",
            ]
            return lines if all(any(re.search(w, x) for x in lines) for w in wanted) else []

        lines = wait_for(heard, 10, "listen to print the VEN's telemetry, commands and ACKs")
        assert not any(f"{prefix}-2 " in line for line in lines)  # --ven: that VEN only
        assert procs.running["listen"].poll() is None  # still listening
