"""How VENs took part in a DR event, as the dashboard shows it.

- Per VEN (the event page's table): the kW it delivers, which is its share of
  actualReductionKw, and its answer to its newest event command.
- Per event: how many VENs accepted it, the mean measured round trip of its
  answered commands (first send to ACK), and the reduction the VENs report at
  one instant (:func:`reduction_instant`). The SQL adapter computes the first
  two in the store; :func:`response_stats` is the rule it must agree with.
- Per curtailed circuit: what an ACK in the short shape (``{loadId, name,
  shedKw}``) leaves out, from what the VEN reported in its telemetry around
  the ACK (:func:`with_readings`). Nothing is estimated: what no report says
  stays None.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, TypeVar

from gridcore.correlation import (
    Command,
    CommandOp,
    CommandState,
    VenAck,
    delivered_per_ven,
    latest_per_ven,
)
from gridcore.curtailment import CircuitCurtailment
from gridcore.events import DrEvent
from gridcore.quantities import to_kw
from gridcore.telemetry import LoadSample, TelemetrySample

if TYPE_CHECKING:
    from gridcore.ports import TelemetryQueries, UnitOfWorkFactory

T = TypeVar("T")

# --- per VEN ---------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class VenParticipation:
    """``status``: ``accepted`` or ``rejected`` once the VEN answered its newest
    event command, else that command's state (``pending``, ``sent``,
    ``timed_out``, ``cancelled``). ``shed_kw``: what it delivers (its share of
    actualReductionKw); 0 when it refused, None while nothing is known."""

    status: str
    shed_kw: float | None


def answer(command: Command) -> str:
    if command.state is CommandState.ACKED:
        return "accepted"
    if command.state is CommandState.REJECTED:
        return "rejected"
    return command.state.value


def participation(commands: Iterable[Command]) -> dict[str, VenParticipation]:
    """Per VEN sent the event (``commands``: every command of one event)."""
    commands = list(commands)
    delivered = delivered_per_ven(commands)
    found: dict[str, VenParticipation] = {}
    for ven_id, latest in latest_per_ven(commands).items():
        if ven_id in delivered:
            # A refused top-up leaves what it accepted before standing.
            shed: float | None = to_kw(delivered[ven_id])
        elif latest.state is CommandState.REJECTED:
            shed = 0.0
        else:
            shed = None  # no answer (yet): whether it sheds is not known
        found[ven_id] = VenParticipation(answer(latest), shed)
    return found


# --- per event -------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ResponseStats:
    """``vens_responding``: VENs that accepted an event command of the event.
    ``avg_response_ms``: mean over its answered event commands (accepted or
    refused, late ones too) of first send to ACK; None before any answer."""

    vens_responding: int
    avg_response_ms: float | None


def response_stats(commands: Iterable[Command]) -> ResponseStats:
    accepted: set[str] = set()
    total_ms = 0.0
    answered = 0
    for command in commands:
        if command.op is not CommandOp.EVENT:
            continue
        if command.state is CommandState.ACKED:
            accepted.add(command.ven_id)
        round_trip = command.response_time
        if round_trip is not None:
            total_ms += round_trip / timedelta(milliseconds=1)
            answered += 1
    return ResponseStats(len(accepted), total_ms / answered if answered else None)


@dataclass(frozen=True, slots=True)
class EventMetrics:
    """The original backend's event metrics, computed from what is stored:
    ``current_reduction_kw`` is what the VENs report shedding for the event at
    :func:`reduction_instant` (kW, see
    :meth:`gridcore.ports.TelemetryQueries.reported_reduction`)."""

    current_reduction_kw: float
    vens_responding: int
    avg_response_ms: float | None


def reduction_instant(event: DrEvent, now: datetime) -> datetime:
    """The instant whose reduction an event shows: now while it runs (or has
    not started), else the moment it ended (stopped, completed, cancelled)."""
    return min(now, event.ended_at or event.end_time)


def event_metrics_from(stats: ResponseStats, current_reduction_kw: float) -> EventMetrics:
    return EventMetrics(current_reduction_kw, stats.vens_responding, stats.avg_response_ms)


async def event_metrics(
    uow_factory: UnitOfWorkFactory,
    queries: TelemetryQueries,
    event: DrEvent,
    now: datetime,
    heard_within: timedelta,
) -> EventMetrics:
    """Both halves aggregated in the store: the ledger's answers and the
    telemetry's reduction (``heard_within``: a report older than this, at the
    instant shown, is no longer current; the VEN offline window)."""
    async with uow_factory() as uow:
        stats = await uow.commands.response_stats(event.id)
    at = reduction_instant(event, now)
    return event_metrics_from(stats, await queries.reported_reduction(event.id, at, heard_within))


# --- per curtailed circuit -------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Around:
    """A VEN's telemetry on either side of an instant: its newest sample
    stamped before it and its oldest stamped at or after it, each only if
    close enough to describe that instant (None otherwise)."""

    before: TelemetrySample | None = None
    after: TelemetrySample | None = None


def _line(sample: TelemetrySample | None, load_id: str) -> LoadSample | None:
    if sample is None:
        return None
    return next((line for line in sample.loads if line.load_id == load_id), None)


_UNREPORTED = LoadSample(load_id="")  # a circuit a sample does not list: nothing known


def _known(*values: T | None) -> T | None:
    return next((v for v in values if v is not None), None)


def with_readings(circuit: CircuitCurtailment, around: Around) -> CircuitCurtailment:
    """The circuit with what its ACK left out taken from the VEN's telemetry:
    ``original_kw`` is the circuit's power in the sample before the ACK,
    ``final_kw`` in the sample after it; name, breaker and critical from
    either. What the ACK says wins; what no report says stays None."""
    before = _line(around.before, circuit.id) or _UNREPORTED
    after = _line(around.after, circuit.id) or _UNREPORTED
    return replace(
        circuit,
        name=_known(circuit.name, before.name, after.name),
        breaker_amps=_known(circuit.breaker_amps, before.breaker_amps, after.breaker_amps),
        critical=_known(circuit.critical, before.critical, after.critical),
        original_kw=_known(circuit.original_kw, before.current_power_kw),
        final_kw=_known(circuit.final_kw, after.current_power_kw),
    )


def circuits_with_readings(
    ack: VenAck, arounds: Mapping[datetime, Around]
) -> tuple[CircuitCurtailment, ...]:
    around = arounds.get(ack.timestamp, Around())
    return tuple(with_readings(c, around) for c in ack.circuits_curtailed)
