"""Soak: one real ``gridcore worker`` process at a steady ``--rate``
messages/s (QoS 0, as VENs publish telemetry) for ``--minutes``.

A fresh database (the fleet registered first) and a Mosquitto of its own;
the publisher is ``bench_mqtt_ingest``'s, in its own process, each message
stamped with its publish time. Every ``--sample`` seconds the harness
records the worker's RSS and CPU; every 0.1 s it reads the rows committed
since its last look (by id: one worker commits in id order), whose lag
(publish to visible in PostgreSQL) is the poll time minus the row's
timestamp: an upper bound, 0.1 s coarse. At the
end: RSS over time (start after warm-up, max, end, and the slope over the
second half: bounded or not), p50/p99/max lag per minute and overall, dead
letters, and rows stored vs sent; then bytes per row of the tables ingest
writes (``pg_total_relation_size``), for sizing (docs/scaling.md).

The reference is the offered load itself: stored/sent must be 1.0 and the
worker must keep up (the lag does not grow over the run).

Usage: ``python benchmarks/bench_soak.py [--minutes 30] [--rate 2000]``
Needs ``mosquitto`` on PATH and PostgreSQL (GRIDCORE_TEST_PG_* or 127.0.0.1:5432).
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing as mp
import statistics
import sys
import tempfile
import time
from pathlib import Path

import psycopg

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_mqtt_ingest import drop_database, fresh_database, publisher
from bench_scale_out import dsn, prepare
from brokers import start_mosquitto
from procstat import cpu_seconds, rss_mb, start_worker, stop_process, wait_for_log

POLL = 0.1


def quantile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * q))] if ordered else float("nan")


def slope_mb_per_min(points: list[tuple[float, float]]) -> float:
    """Least-squares slope of RSS (MB) over time (min)."""
    if len(points) < 2:
        return 0.0
    xs, ys = [t / 60 for t, _ in points], [m for _, m in points]
    mx, my = statistics.fmean(xs), statistics.fmean(ys)
    den = sum((x - mx) ** 2 for x in xs)
    return sum((x - mx) * (y - my) for x, y in zip(xs, ys, strict=True)) / den if den else 0.0


def soak(minutes: float, rate: float, sample: float, logs: Path, sizes: bool) -> bool:
    name, url = fresh_database()
    try:
        asyncio.run(prepare(url))
        with tempfile.TemporaryDirectory() as tmp:
            broker, port = start_mosquitto(Path(tmp))
            log = logs / "worker.log"
            worker = start_worker(log, url, port, MQTT_CLIENT_ID="soak-worker")
            try:
                wait_for_log(worker, log, "consuming ")
                ok = watch(name, worker.pid, port, minutes, rate, sample)
            finally:
                stop_process(worker)
                stop_process(broker)
            print(log.read_text(errors="replace").rsplit("\n", 2)[-2])  # the worker's totals
            if sizes:
                table_sizes(name)
            return ok
    finally:
        drop_database(name)


def watch(name: str, pid: int, port: int, minutes: float, rate: float, sample: float) -> bool:
    sent = int(rate * minutes * 60)
    pub = mp.get_context("spawn").Process(target=publisher, args=(port, sent, rate, 0, 0))
    started = time.monotonic()
    pub.start()
    cpu0 = cpu_seconds(pid)
    rss: list[tuple[float, float]] = []
    lags: list[tuple[float, float]] = []  # (seconds into the run, lag)
    seen = 0
    with psycopg.connect(dsn(name), autocommit=True) as conn:
        (last,) = conn.execute("SELECT coalesce(max(id), 0) FROM ven_telemetry").fetchone()  # type: ignore[misc]
    next_sample = started
    with psycopg.connect(dsn(name), autocommit=True) as conn:
        # Until the publisher is done, then until the rows stop coming (10 s).
        quiet_since = None
        while True:
            now = time.monotonic()
            if now >= next_sample:
                rss.append((now - started, rss_mb(pid)))
                next_sample += sample
                if len(rss) % max(1, int(60 / sample)) == 0:
                    recent = [lag for t, lag in lags if t > now - started - 60]
                    print(
                        f"{(now - started) / 60:5.1f} min: RSS {rss[-1][1]:.0f} MB, rows "
                        f"{seen}, lag p50 {1000 * quantile(recent, 0.5):.0f} ms p99 "
                        f"{1000 * quantile(recent, 0.99):.0f} ms (last minute)",
                        flush=True,
                    )
            # By id, a range of each day's primary key: one worker commits its
            # batches in id order. By timestamp (a BRIN index, whose newest
            # blocks are unsummarised) every poll read the whole day so far,
            # and by minute 5 the poll took half a core from the run it measures.
            rows = conn.execute(
                "SELECT id, timestamp FROM ven_telemetry WHERE id > %s ORDER BY id", (last,)
            ).fetchall()
            polled = time.time()
            if rows:
                at = time.monotonic() - started
                lags.extend((at, polled - ts.timestamp()) for _, ts in rows)
                seen += len(rows)
                last = rows[-1][0]
                quiet_since = None
            elif not pub.is_alive():
                quiet_since = quiet_since or time.monotonic()
                if seen >= sent or time.monotonic() - quiet_since > 10:
                    break
            time.sleep(POLL)
        elapsed = time.monotonic() - started
        cpu = cpu_seconds(pid) - cpu0
        (stored,) = conn.execute(
            "SELECT count(*) FROM ven_telemetry WHERE timestamp > '2025-01-01'"
        ).fetchone()  # type: ignore[misc]
        (dead,) = conn.execute("SELECT count(*) FROM dead_letters").fetchone()  # type: ignore[misc]
    pub.join(30)
    second_half = [(t, m) for t, m in rss if t >= elapsed / 2]
    warm = next((m for t, m in rss if t >= 30), rss[0][1])
    all_lags = [lag for _, lag in lags]
    print()
    print(f"sent {sent} at {rate:.0f} msg/s over {minutes} min; run {elapsed:.0f} s")
    print(f"stored {stored} ({stored / sent:.4f} of sent); seen by the lag poll {seen}")
    print(f"dead letters {dead}")
    p50, p99 = (1000 * quantile(all_lags, q) for q in (0.5, 0.99))
    print(
        f"lag (publish to visible, +{POLL:.1f} s poll): p50 {p50:.0f} ms, p99 {p99:.0f} ms, "
        f"max {1000 * max(all_lags):.0f} ms"
    )
    print(
        f"worker RSS: {rss[0][1]:.0f} MB at start, {warm:.0f} MB after 30 s, max "
        f"{max(m for _, m in rss):.0f} MB, end {rss[-1][1]:.0f} MB; slope over the second "
        f"half {slope_mb_per_min(second_half):+.2f} MB/min"
    )
    print(f"worker CPU {1e6 * cpu / max(stored, 1):.0f} µs per message stored")
    print("per minute: minute  RSS MB  lag p50 ms  lag p99 ms")
    for m in range(int(elapsed // 60) + 1):
        window = [lag for t, lag in lags if m * 60 <= t < (m + 1) * 60]
        mem = [mb for t, mb in rss if m * 60 <= t < (m + 1) * 60]
        if window and mem:
            print(
                f"{m:>18}  {max(mem):6.0f}  {1000 * quantile(window, 0.5):10.0f}  "
                f"{1000 * quantile(window, 0.99):10.0f}"
            )
    return stored == sent and dead == 0


SIZED = ("ven_telemetry", "ven_load_samples", "ven_intervals", "ven_latest")


def table_sizes(database: str) -> None:
    """Bytes per row of the tables ingest writes (heap, indexes and TOAST,
    every partition of a partitioned table), as the soak left them (dead row
    versions of updated rows included) and after VACUUM FULL (compacted)."""
    query = (  # a plain table has no partition tree; a partitioned one is all partitions
        "SELECT pg_total_relation_size(%(t)s::regclass) + coalesce((SELECT"
        " sum(pg_total_relation_size(relid)) FROM pg_partition_tree(%(t)s::regclass)"
        " WHERE relid <> %(t)s::regclass), 0)"
    )
    with psycopg.connect(dsn(database), autocommit=True) as conn:
        before = {t: conn.execute(query, {"t": t}).fetchone()[0] for t in SIZED}  # type: ignore[index]
        conn.execute(f"VACUUM FULL {', '.join(SIZED)}")
        print("table             rows  bytes/row as left  bytes/row after VACUUM FULL")
        for t in SIZED:
            (rows,) = conn.execute(f"SELECT count(*) FROM {t}").fetchone()  # type: ignore[misc]
            (after,) = conn.execute(query, {"t": t}).fetchone()  # type: ignore[misc]
            if rows:
                print(f"{t:<16} {rows:>8}  {before[t] / rows:17.0f}  {after / rows:27.0f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=30.0)
    parser.add_argument("--rate", type=float, default=2000.0)
    parser.add_argument("--sample", type=float, default=5.0, help="RSS sample every N s")
    parser.add_argument(
        "--no-sizes", action="store_true", help="skip measuring bytes per row at the end"
    )
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as logs:
        ok = soak(args.minutes, args.rate, args.sample, Path(logs), not args.no_sizes)
    if not ok:
        sys.exit("rows lost or dead-lettered")


if __name__ == "__main__":
    main()
