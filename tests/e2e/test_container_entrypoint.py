"""The image's entrypoint (deploy/docker-entrypoint.sh) as the containers run it,
without a container daemon: two `serve` containers starting at once against an
empty PostgreSQL database each migrate first (taking turns) and then serve
/health/ready."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
from tests.e2e.processes import free_port, wait_for

ROOT = Path(__file__).resolve().parents[2]
ENTRYPOINT = ROOT / "deploy" / "docker-entrypoint.sh"

pytestmark = [pytest.mark.postgres, pytest.mark.slow]


def test_two_containers_starting_together_migrate_once_and_serve(
    postgres_url: str, tmp_path: Path
) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("GRIDCORE_", "DB_", "MQTT"))}
    env |= {
        # the image puts gridcore's venv first on PATH
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}",
        "DATABASE_URL": postgres_url,
        "GRIDCORE_API_TOKENS": "probe:read:entrypoint-read-token-0123456789",
    }
    ports = [free_port(), free_port()]
    logs = [tmp_path / f"serve-{n}.log" for n in range(2)]
    procs = [
        subprocess.Popen(
            [str(ENTRYPOINT), "serve", "--host", "127.0.0.1", "--port", str(port)],
            env=env,
            stdout=log.open("wb"),
            stderr=subprocess.STDOUT,
        )
        for port, log in zip(ports, logs, strict=True)
    ]
    try:

        def ready(n: int) -> bool:
            assert procs[n].poll() is None, logs[n].read_text()
            return httpx.get(f"http://127.0.0.1:{ports[n]}/health/ready").status_code == 200

        for n in range(2):
            wait_for(lambda n=n: ready(n), 60, f"serve {n} to be ready")
        said = [log.read_text() for log in logs]
        assert sum("migrated PostgreSQL" in text for text in said) == 1, said
        assert sum("is up to date" in text for text in said) == 1, said
    finally:
        for proc in procs:
            proc.terminate()
        for proc in procs:
            proc.wait(timeout=20)
