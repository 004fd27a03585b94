"""allocate_shed over a large fleet: median time of the pure domain function.

python benchmarks/bench_allocation.py [--vens 100000] [--repeat 7]
"""

from __future__ import annotations

import argparse
import random
import statistics
import time

import gridcore


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--vens", type=int, default=100_000)
    parser.add_argument("--repeat", type=int, default=7)
    args = parser.parse_args()
    rng = random.Random(1)
    available = {f"ven-{i}": rng.uniform(0.0, 20.0) for i in range(args.vens)}
    total = sum(available.values())
    print(f"allocate_shed over {args.vens:,} VENs ({total:,.0f} kW available)")
    for share in (0.01, 0.5, 0.99, 1.5):
        request = total * share
        times = []
        for _ in range(args.repeat):
            start = time.perf_counter()
            result = gridcore.allocate_shed(request, available)
            times.append(time.perf_counter() - start)
        median_ms = statistics.median(times) * 1000
        print(
            f"  request {share:>5.0%} of available: median {median_ms:6.1f} ms"
            f" (max {max(times) * 1000:.1f} ms), allocated {sum(result.values()):,.3f} kW"
        )


if __name__ == "__main__":
    main()
