"""CPU and memory of other processes from /proc, for the scale-out and soak
benchmarks: worker processes, the benchmark's Mosquitto and the PostgreSQL
backends serving one database (no psutil: /proc/<pid>/stat and /status)."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterable
from pathlib import Path

import psycopg

TICK = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    """User + system CPU of one process so far (0 once it is gone)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return 0.0
    fields = stat[stat.rindex(")") + 2 :].split()  # the command may hold spaces
    return (int(fields[11]) + int(fields[12])) / TICK  # utime, stime


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def machine_busy() -> tuple[float, float]:
    """(busy, total) CPU seconds of the whole machine so far, all cores: how
    much of the two cores anyone (this run or other users) was using."""
    values = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = values[3] + values[4]  # idle + iowait
    return (sum(values[:8]) - idle) / TICK, sum(values[:8]) / TICK


def backend_pids(dsn: str, database: str) -> set[int]:
    """PostgreSQL processes serving ``database`` (client backends and
    autovacuum workers), except the connection asking."""
    with psycopg.connect(dsn, autocommit=True) as conn:
        rows = conn.execute(
            "SELECT pid FROM pg_stat_activity WHERE datname = %s AND pid <> pg_backend_pid()",
            (database,),
        ).fetchall()
    return {int(pid) for (pid,) in rows}


class CpuMeter:
    """CPU used by a set of processes between :meth:`start` and :meth:`stop`;
    processes that appear meanwhile (a new pooled connection's backend)
    count from zero, which charges them their start-up as well."""

    def __init__(self) -> None:
        self.before: dict[int, float] = {}
        self.after: dict[int, float] = {}

    def start(self, pids: Iterable[int]) -> None:
        self.before = {pid: cpu_seconds(pid) for pid in pids}

    def stop(self, pids: Iterable[int]) -> float:
        self.after = {pid: cpu_seconds(pid) for pid in {*pids, *self.before}}
        # A process that ended meanwhile reads 0 now: its CPU since start is unknown (0).
        return sum(max(0.0, cpu - self.before.get(pid, 0.0)) for pid, cpu in self.after.items())


def stop_process(proc: subprocess.Popen[bytes], timeout: float = 30) -> None:
    proc.terminate()
    try:
        proc.wait(timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


SRC = Path(__file__).resolve().parents[1] / "src"


def start_worker(log: Path, database_url: str, port: int, **env: str) -> subprocess.Popen[bytes]:
    """A real ``gridcore worker`` process on the benchmark's broker and
    database, logging to ``log``; ``env`` adds settings (MQTT_SHARED_GROUP...)."""
    environ = {
        **os.environ,
        "PYTHONPATH": str(SRC),
        "DATABASE_URL": database_url,
        "MQTT_BROKER": "127.0.0.1",
        "MQTT_PORT": str(port),
        "GRIDCORE_LOG_LEVEL": "INFO",
        **env,
    }
    with log.open("ab") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "entrypoints.cli", "worker"],
            stdout=out, stderr=subprocess.STDOUT, env=environ,
        )  # fmt: skip


def wait_for_log(
    proc: subprocess.Popen[bytes], log: Path, needle: str, timeout: float = 60
) -> None:
    deadline = time.monotonic() + timeout
    while needle not in log.read_text(errors="replace"):
        if proc.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError(f"worker never logged {needle!r}:\n{log.read_text()[-3000:]}")
        time.sleep(0.05)
