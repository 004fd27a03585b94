"""`gridcore serve` as a real process over a real socket: it refuses to start
without a token, or with access control off on every interface, serves with a
token, and a control token drives an event from POST to GET against a migrated
SQLite file."""

from __future__ import annotations

import contextlib
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
    with _serving(tmp_path) as (base, _):
        yield base


@contextlib.contextmanager
def _serving(
    tmp_path: Path, *args: str, env: dict[str, str] | None = None
) -> Iterator[tuple[str, subprocess.Popen[bytes]]]:
    """``gridcore serve`` (migrated first) with ``args``, once /health answers."""
    if env is None:
        env = _env(tmp_path, GRIDCORE_API_TOKENS=f"control:{CONTROL},read:{READ}")
    subprocess.run([GRIDCORE, "migrate", "--retries", "1"], env=env, check=True, timeout=60)
    port = _free_port()
    process = subprocess.Popen([GRIDCORE, "serve", "--port", str(port), *args], env=env)
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
        yield base, process
    finally:
        process.terminate()
        process.wait(timeout=20)


def _children(pid: int) -> list[int]:
    """The processes whose parent is ``pid`` and that multiprocessing spawned."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            cmdline = (entry / "cmdline").read_bytes()
        except OSError:
            continue
        parent = int(stat.rsplit(")", 1)[1].split()[1])
        if parent == pid and b"spawn_main" in cmdline:
            found.append(int(entry.name))
    return found


def test_serve_with_workers_runs_that_many_processes_sharing_sessions(tmp_path: Path) -> None:
    with _serving(tmp_path, "--workers", "2") as (base, process):
        deadline = time.monotonic() + 30
        while len(_children(process.pid)) < 2 and time.monotonic() < deadline:
            time.sleep(0.2)
        assert len(_children(process.pid)) == 2
        signed_in = httpx.post(
            f"{base}/console/sign-in", data={"token": READ, "next": "/"}, timeout=10
        )
        assert signed_in.status_code == 303
        cookies = dict(signed_in.cookies)
        assert cookies
        start = datetime.now(UTC) + timedelta(hours=1)
        body = {
            "startTime": start.isoformat(),
            "endTime": (start + timedelta(hours=1)).isoformat(),
            "requestedReductionKw": 3.0,
        }
        control = {"Authorization": f"Bearer {CONTROL}"}
        created = httpx.post(f"{base}/api/events", json=body, headers=control, timeout=10)
        assert created.status_code == 201
        # A fresh connection each time: the kernel hands them to either
        # process; the session one process signed reads through both.
        for _ in range(20):
            with httpx.Client(base_url=base, cookies=cookies, timeout=10) as client:
                listed = client.get("/api/events")
                assert listed.status_code == 200
                assert [e["id"] for e in listed.json()] == [created.json()["id"]]


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


def _raw_request(base: str, head: str, body_chunk: bytes) -> int:
    """Send ``head`` and the first chunk of a body it announces as far larger;
    return the answer's status code. The rest of the body is never sent: an
    answer at all means the server did not wait to read it."""
    host, port = base.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=10) as sock:
        sock.sendall(head.encode() + body_chunk)
        answer = sock.recv(4096).decode(errors="replace")
    return int(answer.split(" ", 2)[1])


def test_a_huge_body_is_refused_before_it_is_read(server: str) -> None:
    """Issue 11 item 5: a 100 MB POST without a token got its 401 after 8 s,
    the server growing by 600 MB and /health stalling for everyone."""
    huge = 100 * 1024 * 1024
    post = (
        "POST /api/events/ HTTP/1.1\r\nHost: test\r\nContent-Type: application/json\r\n"
        f"Content-Length: {huge}\r\n{{auth}}\r\n"
    )
    assert _raw_request(server, post.format(auth=""), b"{" + b" " * 65536) == 401
    bearer = f"Authorization: Bearer {CONTROL}\r\n"
    # A token, and a body over GRIDCORE_MAX_BODY_BYTES.
    assert _raw_request(server, post.format(auth=bearer), b"{" + b" " * 65536) == 413
    assert httpx.get(f"{server}/health", timeout=5).status_code == 200


def test_extreme_timestamp_offsets_are_a_422_not_a_500(server: str) -> None:
    """Issue 11 item 4: converting these to UTC overflows."""
    read = {"Authorization": f"Bearer {READ}"}
    with httpx.Client(base_url=server, timeout=10, headers=read) as client:
        for path in ("/api/events/history", "/api/stats/network/history"):
            answer = client.get(path, params={"start": "9999-12-31T23:59:59-23:59"})
            assert answer.status_code == 422, (path, answer.text)
            assert "start" in answer.text
