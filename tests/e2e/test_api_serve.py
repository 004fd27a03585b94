"""`gridcore serve` as a real process over a real socket: it refuses to start
without a token, or with access control off on every interface, serves with a
token, and a control token drives an event from POST to GET against a migrated
SQLite file."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest

GRIDCORE = str(Path(sys.executable).with_name("gridcore"))
CONTROL = "control-token-e2e-0123456789"
READ = "read-token-e2e-0123456789"


def _env(tmp_path: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("GRIDCORE_", "DB_"))}
    env.pop("DATABASE_URL", None)
    return {**env, "DATABASE_URL": f"sqlite:///{tmp_path / 'api.db'}", **extra}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def server(tmp_path: Path) -> Iterator[str]:
    env = _env(tmp_path, GRIDCORE_API_TOKENS=f"control:{CONTROL},read:{READ}")
    subprocess.run([GRIDCORE, "migrate", "--retries", "1"], env=env, check=True, timeout=60)
    port = _free_port()
    process = subprocess.Popen([GRIDCORE, "serve", "--port", str(port)], env=env)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                if httpx.get(f"{base}/health", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                if time.monotonic() > deadline or process.poll() is not None:
                    raise
                time.sleep(0.2)
        yield base
    finally:
        process.terminate()
        process.wait(timeout=10)


def test_serve_refuses_to_start_without_a_token(tmp_path: Path) -> None:
    result = subprocess.run(
        [GRIDCORE, "serve", "--port", str(_free_port())],
        env=_env(tmp_path),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode != 0
    assert "GRIDCORE_API_TOKENS" in result.stderr


def test_serve_refuses_no_access_control_on_every_interface(tmp_path: Path) -> None:
    result = subprocess.run(
        [GRIDCORE, "serve", "--host", "0.0.0.0", "--port", str(_free_port())],
        env=_env(tmp_path, GRIDCORE_AUTH="disabled"),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode != 0
    assert result.stderr.count("\n") == 1, result.stderr  # one line, no traceback
    assert "GRIDCORE_AUTH=disabled and 0.0.0.0 is not a loopback address" in result.stderr
    assert "--insecure-open-access" in result.stderr


def test_serve_with_tokens_over_a_socket(server: str) -> None:
    start = datetime.now(UTC) + timedelta(hours=1)
    body = {
        "startTime": start.isoformat(),
        "endTime": (start + timedelta(hours=1)).isoformat(),
        "requestedReductionKw": 8.0,
        "status": "scheduled",
    }
    with httpx.Client(base_url=server, timeout=10) as client:
        assert client.get("/health/ready").json()["database"] == "ok"
        assert client.get("/api/events").status_code == 401
        read = {"Authorization": f"Bearer {READ}"}
        control = {"Authorization": f"Bearer {CONTROL}"}
        assert client.post("/api/events/", json=body, headers=read).status_code == 403
        created = client.post("/api/events/", json=body, headers=control)
        assert created.status_code == 201
        event = client.get(f"/api/events/{created.json()['id']}", headers=read).json()
        assert event["status"] == "scheduled" and event["vens"] == []
        assert client.get("/events", headers=read).json()[0]["id"] == event["id"]
        # The documentation needs the read token too; /health never does.
        assert client.get("/openapi.json").status_code == 401
        assert client.get("/docs", auth=("", READ)).status_code == 200
        assert "/api/events" in client.get("/openapi.json", headers=read).json()["paths"]
