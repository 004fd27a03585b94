"""The rebound after an event, with restores all at once and staggered, on
the same simulated fleet (issue 14: "the rebound measurement shows the
difference on the same fleet").

Runs :func:`entrypoints.simulator.replay.replay_event` (``gridcore ven``'s
homes against gridcore's dispatcher and measurement, in virtual time) once
per restore spread and prints what the measurement reports for the fleet:
the shed during the event, the rebound (energy and peak above the
baseline) in the hour after it, and the fleet's kW above its baseline in
each 5-minute interval of that hour (the homes that restore at once catch
up together in the first ones). Every run has the same homes, the
same history and so the same baseline: the differences are the spread's.
Not a speed benchmark: the figures are the measurement's own.

Usage::

    python benchmarks/rebound_stagger.py [--vens 100] [--spreads 0 900 1800]
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
from datetime import timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from entrypoints.simulator.replay import ReplayedEvent, replay_event


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--vens", type=int, default=100)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--spreads", type=int, nargs="+", default=[0, 900, 1800])
    args = parser.parse_args()
    # Each VEN's own restore ACK at its duration's end is logged as matching
    # no command: a line per VEN per run here.
    logging.getLogger("gridcore").setLevel(logging.ERROR)
    print(
        f"{args.vens} VENs, a 2-hour event, {args.vens} kW requested,"
        f" {ReplayedEvent().method} baseline"
    )
    print(
        "restore spread | shed in the event | rebound energy, peak"
        " | each 5 minutes of the hour after the end: kW above the baseline"
    )
    for seconds in args.spreads:
        run = ReplayedEvent(
            vens=args.vens, seed=args.seed, restore_spread=timedelta(seconds=seconds)
        )
        fleet = asyncio.run(replay_event(run)).fleet
        rebound = fleet.rebound
        shed = f"{fleet.avg_shed_kw or 0:6.1f} kW avg"
        after = [p.metered_kw - p.baseline_kw for p in fleet.series if p.after_hours]
        print(
            f"{seconds / 60:10.0f} min | {shed} | "
            + (f"{rebound.kwh:6.1f} kWh, {rebound.peak_kw:6.1f} kW" if rebound else "-")
            + " | "
            + " ".join(f"{kw:6.1f}" for kw in after)
        )


if __name__ == "__main__":
    main()
