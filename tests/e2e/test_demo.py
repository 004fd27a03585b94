"""`gridcore demo` as a newcomer runs it: starts with no services, serves the
network with 50 VENs within 30 s, stops cleanly on Ctrl-C, keeps its data."""

from __future__ import annotations

import signal
from pathlib import Path

import httpx
from processes import Processes, free_port, logs_on_failure, wait_for


def test_demo_starts_serves_fifty_vens_and_stops_cleanly(tmp_path: Path) -> None:
    port = free_port()
    db = tmp_path / "demo.db"
    with Processes(tmp_path, {}) as procs, logs_on_failure(procs, "demo"):
        # Two days of history, not the default ten: test_readme_demo runs the
        # README's command with the default, and this test is about start, serve,
        # stop and restart (ten days cost it about 40 s).
        procs.start("demo", "demo", "--port", str(port), "--db", str(db), "--backfill-days", "2")

        def fifty_vens() -> bool:
            stats = httpx.get(f"http://127.0.0.1:{port}/api/stats/network", timeout=5).json()
            return bool(stats["venCount"] == 50 and stats["onlineVens"] == 50)

        wait_for(fifty_vens, 60, "the demo to serve 50 online VENs")
        # Its banner gives the console's address first; it serves without sign-in.
        banner = procs.log("demo").split("the console:", 1)[1]
        assert banner.split()[0] == f"http://127.0.0.1:{port}/"
        assert banner.index(f"http://127.0.0.1:{port}/") < banner.index("API at")
        page = httpx.get(f"http://127.0.0.1:{port}/", timeout=5)
        assert page.status_code == 200 and "<title>Fleet · gridcore</title>" in page.text
        assert procs.stop("demo", signal.SIGINT, timeout=20) == 0
        assert "stopped." in procs.log("demo")

        # Started again, it finds its data where it left it.
        procs.start("demo2", "demo", "--port", str(port), "--db", str(db), "--backfill-days", "2")
        wait_for(fifty_vens, 30, "the restarted demo")
        assert "is up to date" in procs.log("demo2")
        assert procs.stop("demo2", signal.SIGINT, timeout=20) == 0
