"""Reconciliation: what VENs report against what they acknowledged (issue 14).

A VEN that accepted an event command and then rebooted has forgotten the
event: its telemetry says ``eventId`` null and ``shedPowerKw`` 0 while the
event still counts its ACK. The dispatcher notices that from telemetry and
sends it the same command again (same correlationId, :meth:`CommandLedger.reassert`);
what it delivered stops counting towards the event's actualReductionKw until
it answers again.

The rule on telemetry, :func:`not_shedding`, is also written in SQL for speed
(``adapters.sql.participation``); the contract tests hold the two to the same
answers.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime

from gridcore.correlation import Command, CommandLedger, CommandState
from gridcore.errors import RetriesExhausted
from gridcore.telemetry import TelemetrySample


def quiet(sample: TelemetrySample, event_id: str) -> bool:
    """The sample says its VEN is not shedding for ``event_id``: it names
    another event or none, and reports no shed (0, less, or nothing)."""
    return sample.event_id != event_id and (sample.shed_power_kw or 0.0) <= 0.0


def not_shedding(
    latest: TelemetrySample | None,
    samples: Iterable[TelemetrySample],
    event_id: str,
    since: datetime,
) -> bool:
    """A VEN's telemetry shows it is not shedding for ``event_id`` since
    ``since``: its current state (``latest``, its newest sample) is stamped
    after ``since`` and quiet, and so is every sample of ``samples`` stamped
    after ``since``. A VEN that reported nothing since is not judged (being
    offline is another matter)."""
    if latest is None or latest.timestamp <= since or not quiet(latest, event_id):
        return False
    return all(quiet(s, event_id) for s in samples if s.timestamp > since)


@dataclass(slots=True)
class Reassertion:
    """What one reconciliation of an event decided: the commands sent back to
    the outbox and those whose sends are used up (left as they are), both as
    they were when accepted, and the change in the event's delivered watts
    (never positive)."""

    reasserted: list[Command] = field(default_factory=list)
    exhausted: list[Command] = field(default_factory=list)
    delta_w: int = 0


def reassert_silent(
    ledger: CommandLedger, event_id: str, ven_ids: Sequence[str], acked_before: datetime
) -> Reassertion:
    """Under the event's lock, with every command of ``event_id`` to
    ``ven_ids`` loaded: re-assert each VEN's newest event command if it is
    (still) accepted, and was accepted at or before ``acked_before`` (the
    VEN had time to act on it). ``ven_ids`` are the VENs whose telemetry
    shows them not shedding (:func:`not_shedding`)."""
    before = ledger.delivered_w(event_id)
    result = Reassertion()
    latest = ledger.latest_per_ven(event_id)
    for ven_id in sorted(set(ven_ids)):
        command = latest.get(ven_id)
        if command is None or command.state is not CommandState.ACKED:
            continue
        if command.acked_at is None or command.acked_at > acked_before:
            continue  # answered again since the telemetry was read: give it time
        try:
            ledger.reassert(command.correlation_id)
        except RetriesExhausted:
            result.exhausted.append(command)
        else:
            result.reasserted.append(command)
    result.delta_w = ledger.delivered_w(event_id) - before
    return result
