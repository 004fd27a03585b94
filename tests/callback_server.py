"""A real HTTP server for webhook callbacks, in a thread of the test: it
records every POST and answers by path:

- ``/ok/...``: 200;
- ``/flaky/N/...``: 503 for the first N calls to that path, then 200;
- ``/refuse/...``: 401;
- ``/slow/...``: answers 200 only after ``SLOW_SECONDS`` (a hung callback).
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

SLOW_SECONDS = 10.0


@dataclass(frozen=True)
class Call:
    path: str
    authorization: str | None
    content_type: str | None
    body: Any
    at: float


class CallbackServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.calls: list[Call] = []
        self.lock = threading.Lock()
        self.stop_slow = threading.Event()

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"

    def to(self, path: str) -> list[Call]:
        with self.lock:
            return [c for c in self.calls if c.path == path]

    def wait_for(self, path: str, count: int, timeout: float = 10.0) -> list[Call]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if len(found := self.to(path)) >= count:
                return found
            time.sleep(0.02)
        return self.to(path)


class _Handler(BaseHTTPRequestHandler):
    server: CallbackServer

    def do_POST(self) -> None:
        raw = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        call = Call(
            self.path,
            self.headers.get("Authorization"),
            self.headers.get("Content-Type"),
            json.loads(raw),
            time.monotonic(),
        )
        with self.server.lock:
            self.server.calls.append(call)
            seen = sum(1 for c in self.server.calls if c.path == self.path)
        parts = self.path.strip("/").split("/")
        status = 200
        if parts[0] == "flaky" and seen <= int(parts[1]):
            status = 503
        elif parts[0] == "refuse":
            status = 401
        elif parts[0] == "slow":
            self.server.stop_slow.wait(SLOW_SECONDS)
        self.send_response(status)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, format: str, *args: Any) -> None:
        return None


@contextmanager
def callback_server() -> Iterator[CallbackServer]:
    server = CallbackServer()
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.stop_slow.set()
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)
