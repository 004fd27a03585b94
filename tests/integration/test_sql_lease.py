"""Dispatch leases: one holder at a time, and a dead holder's lease is freed."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import time
from pathlib import Path

import pytest

from adapters.sql.engine import create_engine
from adapters.sql.lease import FileLockLease, PostgresAdvisoryLease


async def test_file_lease_has_one_holder_at_a_time(tmp_path: Path) -> None:
    path = str(tmp_path / "gridcore.db.dispatch-lock")
    first, second = FileLockLease(path), FileLockLease(path)
    assert await first.hold()
    assert await first.hold()  # holding it is idempotent
    assert not await second.hold()
    await first.release()
    assert await second.hold()
    assert not await first.hold()
    await second.release()


def test_file_lease_of_a_killed_process_is_taken_over(tmp_path: Path) -> None:
    path = str(tmp_path / "gridcore.db.dispatch-lock")
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import asyncio, sys, time\n"
            "from adapters.sql.lease import FileLockLease\n"
            f"assert asyncio.run(FileLockLease({path!r}).hold())\n"
            "print('held', flush=True)\n"
            "time.sleep(60)\n",
        ],
        stdout=subprocess.PIPE,
    )
    try:
        assert holder.stdout is not None
        assert holder.stdout.readline().strip() == b"held"
        lease = FileLockLease(path)
        assert not asyncio.run(lease.hold())
        holder.kill()
        holder.wait(10)
        deadline = time.monotonic() + 5
        while not asyncio.run(lease.hold()):
            assert time.monotonic() < deadline, "the dead holder's lock was not freed"
            time.sleep(0.05)
        asyncio.run(lease.release())
    finally:
        holder.kill()


@pytest.mark.postgres
async def test_postgres_lease_has_one_holder_and_frees_on_release(postgres_url: str) -> None:
    engine = create_engine(postgres_url)
    try:
        first = PostgresAdvisoryLease(engine, key=4242)
        second = PostgresAdvisoryLease(engine, key=4242)
        assert await first.hold()
        assert await first.hold()
        assert not await second.hold()
        await first.release()
        assert await second.hold()
        await second.release()
    finally:
        await engine.dispose()
