"""Real gridcore processes for end-to-end tests: started with the console
script's module, logged to files, always killed at the end."""

from __future__ import annotations

import contextlib
import os
import re
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import paho.mqtt.client as paho


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def gridcore_argv(*args: str) -> list[str]:
    return [sys.executable, "-m", "entrypoints.cli", *args]


class Processes:
    """Start named processes; stop (SIGTERM, then SIGKILL) all of them at exit."""

    def __init__(self, logs: Path, env: dict[str, str]) -> None:
        self.logs = logs
        # A worker's HTTP listener is off unless the test asks for one (a port of
        # its own): two workers of a test would both want 8001.
        self.env = {"GRIDCORE_WORKER_HTTP_PORT": "0", **os.environ, **env}
        self.running: dict[str, subprocess.Popen[bytes]] = {}

    def start(self, name: str, *args: str, **env: str) -> subprocess.Popen[bytes]:
        log = (self.logs / f"{name}.log").open("ab")
        proc = subprocess.Popen(
            gridcore_argv(*args),
            stdout=log,
            stderr=subprocess.STDOUT,
            env={**self.env, **env},
        )
        self.running[name] = proc
        return proc

    def run(self, *args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            gridcore_argv(*args), env=self.env, capture_output=True, text=True, timeout=timeout
        )

    def log(self, name: str) -> str:
        path = self.logs / f"{name}.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def stop(self, name: str, sig: int = signal.SIGTERM, timeout: float = 15) -> int:
        proc = self.running.pop(name)
        with contextlib.suppress(ProcessLookupError):
            proc.send_signal(sig)
        try:
            return proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
            raise AssertionError(f"{name} did not stop within {timeout}s") from None

    def stop_all(self) -> None:
        for name in list(self.running):
            with contextlib.suppress(AssertionError):
                self.stop(name, timeout=10)
        forget_sessions(
            "".join(path.read_text(errors="replace") for path in self.logs.glob("*.log"))
        )

    def __enter__(self) -> Processes:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.stop_all()


def wait_for(check: Callable[[], Any], timeout: float, what: str, every: float = 0.2) -> Any:
    """Poll ``check`` until it returns something truthy; fail saying ``what``."""
    deadline = time.monotonic() + timeout
    last_error: Exception | None = None
    while time.monotonic() < deadline:
        try:
            result = check()
            if result:
                return result
        except Exception as exc:  # the service may not be up yet
            last_error = exc
        time.sleep(every)
    raise AssertionError(
        f"timed out after {timeout}s waiting for {what} (last error: {last_error})"
    )


@contextlib.contextmanager
def logs_on_failure(procs: Processes, *names: str) -> Iterator[None]:
    try:
        yield
    except BaseException:
        for name in names:
            print(f"----- {name} log -----\n{procs.log(name)[-6000:]}")
        raise


_CONNECTED = re.compile(r"connected to (\S+):(\d+) as (\S+)")


def forget_sessions(logs: str) -> None:
    """End the persistent sessions the processes that wrote ``logs`` left on
    their brokers (a worker has one by default): on the shared Mosquitto they
    would outlive the test, each queueing the ACKs of every later test."""
    for host, port, client_id in set(_CONNECTED.findall(logs)):
        client = paho.Client(paho.CallbackAPIVersion.VERSION2, client_id, clean_session=True)
        with contextlib.suppress(OSError):
            client.connect(host, int(port), keepalive=5)
            deadline = time.monotonic() + 2.0
            while not client.is_connected() and time.monotonic() < deadline:
                client.loop(0.05)
            client.disconnect()
