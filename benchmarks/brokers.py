"""A Mosquitto of a benchmark's own: unlimited queues (stock Mosquitto drops
past 1,000 queued messages per client), on a free loopback port."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
from pathlib import Path


def start_mosquitto(directory: Path) -> tuple[subprocess.Popen[bytes], int]:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = int(s.getsockname()[1])
    config = directory / "mosquitto.conf"
    config.write_text(
        f"user {os.environ.get('USER') or 'root'}\nlistener {port} 127.0.0.1\n"
        "allow_anonymous true\nmax_queued_messages 0\nmax_inflight_messages 0\n"
    )
    exe = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
    proc = subprocess.Popen([exe, "-c", str(config)], stderr=subprocess.DEVNULL)
    for _ in range(100):
        try:
            socket.create_connection(("127.0.0.1", port), 0.2).close()
            return proc, port
        except OSError:
            time.sleep(0.05)
    proc.kill()
    raise RuntimeError("mosquitto did not start")
