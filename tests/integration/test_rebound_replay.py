"""Rebound, measured and mitigated (issue 14), on the same simulated fleet:
``gridcore ven``'s homes through one event against gridcore's dispatcher and
measurement in virtual time (entrypoints.simulator.replay), once with every
restore at the event's end and once with restores staggered. The loads that
were held catch up after the hold; restored at once, the whole fleet does
so in the same minutes. benchmarks/rebound_stagger.py prints the same for a
larger fleet (docs/measurement.md)."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta

from entrypoints.simulator.replay import ReplayedEvent, replay_event
from gridcore.measurement import FleetPoint

FLEET = ReplayedEvent(vens=12, seed=7, step=timedelta(seconds=60), history_days=14, kw_per_ven=2.0)


async def test_staggered_restores_spread_the_rebound_of_the_same_fleet() -> None:
    at_once = (await replay_event(FLEET)).fleet
    staggered = (await replay_event(replace(FLEET, restore_spread=timedelta(minutes=30)))).fleet
    # The same homes with the same history: the same baseline, and the same
    # event up to its end (the spread changes only what comes after).
    assert [p.baseline_kw for p in staggered.series] == [p.baseline_kw for p in at_once.series]
    during = [p for p in at_once.series if p.event_hours]
    assert len(during) == 24 and at_once.shed_kwh > 0
    assert [p.metered_kw for p in staggered.series[:24]] == [p.metered_kw for p in during]
    assert at_once.vens == staggered.vens == 12 and at_once.vens_without_baseline == 0
    assert at_once.rebound is not None and staggered.rebound is not None
    # Restored at once, the fleet comes back above its baseline in the first
    # five minutes (what it missed, catching up). Staggered, each home holds
    # its shed until its own restore (its command's duration runs that far:
    # the VEN would otherwise restore itself at the end), so those minutes
    # stay low and the rebound is spread over the window.
    first = slice(24, 27)  # the quarter hour after the end

    def above(series: tuple[FleetPoint, ...]) -> list[float]:
        return [p.metered_kw - p.baseline_kw for p in series[first]]

    assert all(p.after_hours for p in at_once.series[first])
    assert above(at_once.series)[0] > 0
    assert sum(above(staggered.series)) < sum(above(at_once.series)) - 0.5 * FLEET.vens
