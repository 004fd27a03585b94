"""The fleet overview: one line per VEN, as the dashboard's VEN list shows it,
and the rules behind each figure.

The SQL adapter computes the same lines for a whole fleet in one query (10,000
VENs in one answer); the functions here are the rule it must agree with, and
what the in-memory adapter and the VEN detail use (a contract test compares
the summary with the VEN list on every store).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from gridcore.correlation import Command
from gridcore.quantities import to_kw, to_watts
from gridcore.telemetry import LatestPanel, TelemetrySample
from gridcore.ven import (
    Connectivity,
    Load,
    Location,
    Ven,
    available_shed_kw,
    connectivity,
    merged_loads,
)

# The dashboard's lists (VEN list, map, summary) read the whole fleet in one
# request and never page: they answer up to this many VENs at once (the
# total is in X-Total-Count; a larger fleet pages on with offset).
MAX_FLEET_PAGE = 10_000


@dataclass(frozen=True, slots=True)
class VenSummary:
    """One VEN in the fleet overview. ``round_trip`` is the VEN's last
    measured response time (None until it answered a command)."""

    id: str
    name: str
    location: Location | None
    registered_at: datetime | None
    last_seen_at: datetime | None
    current_power_kw: float
    shed_availability_kw: float
    round_trip: timedelta | None

    def connectivity(self, now: datetime, offline_after: timedelta) -> Connectivity:
        return connectivity(self.last_seen_at, now, offline_after)


@dataclass(frozen=True, slots=True)
class VenState:
    """What a VEN's page shows beside its registry row: its loads' latest
    samples merged with their configuration (in id order), its newest panel
    reading, and ``round_trip``, the response time of the command it
    answered last (None until it answered one)."""

    loads: tuple[Load, ...] = ()
    panel: LatestPanel | None = None
    round_trip: timedelta | None = None


def current_power_kw(
    latest: LatestPanel | TelemetrySample | None, reported: Sequence[Load]
) -> float:
    """The panel's newest reading, else the sum of what its loads report (a
    VEN that reports circuits only); 0 for a VEN never heard from."""
    if latest is not None and latest.used_power_kw is not None:
        return latest.used_power_kw
    return to_kw(sum(to_watts(load.current_power_kw) for load in reported))


def newest_answered(commands: Iterable[Command]) -> dict[str, Command]:
    """Per VEN, the command whose ACK arrived last, whatever its op: its round
    trip (first send to ACK, :attr:`Command.response_time`) is the VEN's last
    measured response time, which a ping refreshes on demand. Ties on the
    arrival time go to the greater correlationId."""
    newest: dict[str, Command] = {}
    for command in commands:
        if command.acked_at is None:
            continue
        held = newest.get(command.ven_id)
        if held is None or _answered_order(command) > _answered_order(held):
            newest[command.ven_id] = command
    return newest


def _answered_order(command: Command) -> tuple[datetime, str]:
    assert command.acked_at is not None
    return (command.acked_at, command.correlation_id)


def summarize(
    ven: Ven,
    reported: Sequence[Load],
    latest: TelemetrySample | None,
    answered: Command | None,
) -> VenSummary:
    """``reported``: the VEN's latest loads merged with their configuration;
    ``answered``: the command it answered last (:func:`newest_answered`)."""
    return summary_of(
        ven,
        current_power_kw=current_power_kw(latest, reported),
        shed_availability_kw=round(available_shed_kw(merged_loads(ven, reported)), 3),
        round_trip=answered.response_time if answered is not None else None,
    )


def summary_of(
    ven: Ven, *, current_power_kw: float, shed_availability_kw: float, round_trip: timedelta | None
) -> VenSummary:
    """The VEN's line with figures computed elsewhere (by :func:`summarize`, or
    by a store that computes the same in its query)."""
    return VenSummary(
        ven.id,
        ven.name,
        ven.location,
        ven.registered_at,
        ven.last_seen_at,
        current_power_kw,
        shed_availability_kw,
        round_trip,
    )
