"""Commands to VENs, their ACKs, and the ledger that pairs them.

Every command carries ``correlationId`` = ``{eventId}-{8 hex}`` (the DR event
flow document's ``evt-a1b2c3d4-abc12345``); commands outside an event use
``cmd-{8 hex}``. A VEN echoes it in its ACK. Old VENs may omit it: then the ACK
is matched by VEN + event id (+ op), and for a restore without event id by VEN
+ op, to the newest such command.

A command that is not ACKed before its deadline is re-sent with the SAME
correlationId, at most ``max_retries`` times; VENs must treat a repeat as
idempotent. After that it is timed out. An ACK that comes after the time-out is
still recorded (the VEN did act), flagged late.
"""

from __future__ import annotations

import enum
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Any

from gridcore.curtailment import CircuitCurtailment
from gridcore.errors import NotFound, RetriesExhausted

CORRELATION_ID = re.compile(r"^(evt-[0-9a-f]{8}|cmd)-[0-9a-f]{8}\Z")
DEFAULT_ACK_TIMEOUT = timedelta(seconds=30)
DEFAULT_MAX_RETRIES = 2

# ACK statuses that mean the VEN did what was asked. Anything else is a refusal.
POSITIVE_ACK_STATUSES = frozenset({"accepted", "success", "ok", "completed", "done", "pong"})


def new_correlation_id(event_id: str | None, hex8: str) -> str:
    prefix = event_id if event_id is not None else "cmd"
    correlation_id = f"{prefix}-{hex8}"
    if not CORRELATION_ID.match(correlation_id):
        raise ValueError(f"cannot build a correlationId from {event_id!r} and {hex8!r}")
    return correlation_id


def event_id_of(correlation_id: str) -> str | None:
    """The event a correlationId was minted for, if it follows gridcore's format."""
    if correlation_id.startswith("evt-") and CORRELATION_ID.match(correlation_id):
        return correlation_id[:12]
    return None


class CommandOp(enum.StrEnum):
    EVENT = "event"
    RESTORE = "restore"
    PING = "ping"
    SHED_LOAD = "shed_load"


class CommandState(enum.StrEnum):
    PENDING = "pending"  # in the outbox, not yet published
    SENT = "sent"  # published, waiting for the ACK
    ACKED = "acked"  # VEN accepted
    REJECTED = "rejected"  # VEN refused
    TIMED_OUT = "timed_out"  # no ACK after every retry
    CANCELLED = "cancelled"  # never sent: its event ended first

    @property
    def is_open(self) -> bool:
        return self in (CommandState.PENDING, CommandState.SENT)


@dataclass(frozen=True, slots=True)
class VenAck:
    """An acknowledgement from a VEN on ``ven/ack/{venId}``."""

    ven_id: str
    op: str
    status: str
    timestamp: datetime
    correlation_id: str | None = None
    event_id: str | None = None
    requested_shed_kw: float | None = None
    actual_shed_kw: float | None = None
    circuits_curtailed: tuple[CircuitCurtailment, ...] = ()
    raw_payload: Mapping[str, Any] = field(default_factory=dict)

    @property
    def accepted(self) -> bool:
        return self.status.strip().lower() in POSITIVE_ACK_STATUSES


@dataclass(frozen=True, slots=True)
class Command:
    """One command to one VEN, as the ledger tracks it."""

    correlation_id: str
    ven_id: str
    op: CommandOp
    created_at: datetime
    event_id: str | None = None
    shed_kw: float | None = None
    duration_sec: int | None = None
    load_id: str | None = None
    state: CommandState = CommandState.PENDING
    attempts: int = 0
    first_sent_at: datetime | None = None
    last_sent_at: datetime | None = None
    deadline: datetime | None = None
    acked_at: datetime | None = None
    ack_status: str | None = None
    delivered_kw: float | None = None
    late: bool = False
    # A re-allocation raises a VEN's target with a new command; the old one it
    # replaces is named here, so delivered kW is counted once per VEN.
    supersedes: str | None = None

    @property
    def response_time(self) -> timedelta | None:
        if self.acked_at is None or self.first_sent_at is None:
            return None
        return self.acked_at - self.first_sent_at

    def mark_sent(self, now: datetime, ack_timeout: timedelta) -> Command:
        """Published (first time or retry): count it and start the ACK clock."""
        return replace(
            self,
            state=CommandState.SENT,
            attempts=self.attempts + 1,
            first_sent_at=self.first_sent_at or now,
            last_sent_at=now,
            deadline=now + ack_timeout,
        )

    def unsent(self) -> Command:
        """Undo :meth:`mark_sent` after a publish that failed, so the relay
        sends it again instead of waiting for the ACK deadline."""
        attempts = max(self.attempts - 1, 0)
        return replace(
            self,
            state=CommandState.PENDING,
            attempts=attempts,
            first_sent_at=self.first_sent_at if attempts else None,
            deadline=None,
        )

    def cancel(self) -> Command:
        return replace(self, state=CommandState.CANCELLED)

    def is_overdue(self, now: datetime) -> bool:
        return (
            self.state is CommandState.SENT and self.deadline is not None and now >= self.deadline
        )

    def can_retry(self, max_retries: int) -> bool:
        return self.attempts <= max_retries

    def time_out(self) -> Command:
        return replace(self, state=CommandState.TIMED_OUT)

    def acknowledge(self, ack: VenAck, now: datetime) -> Command:
        delivered = ack.actual_shed_kw
        if delivered is None and ack.accepted and self.op is CommandOp.EVENT:
            delivered = sum(c.curtailed_kw for c in ack.circuits_curtailed) or None
        return replace(
            self,
            state=CommandState.ACKED if ack.accepted else CommandState.REJECTED,
            acked_at=now,
            ack_status=ack.status,
            delivered_kw=delivered if ack.accepted else 0.0,
            late=self.state is CommandState.TIMED_OUT,
        )


class AckOutcome(enum.StrEnum):
    MATCHED = "matched"  # first ACK of an open command
    LATE = "late"  # first ACK, after the command had timed out
    DUPLICATE = "duplicate"  # the command was already answered; nothing changes
    UNMATCHED = "unmatched"  # no command of ours; stored for audit only


@dataclass(frozen=True, slots=True)
class AckMatch:
    outcome: AckOutcome
    command: Command | None  # the command after the ACK, None when unmatched

    @property
    def changed(self) -> bool:
        return self.outcome in (AckOutcome.MATCHED, AckOutcome.LATE)


def apply_ack(command: Command | None, ack: VenAck, now: datetime) -> AckMatch:
    """The one rule for what an ACK does to the command it matched."""
    if command is None:
        return AckMatch(AckOutcome.UNMATCHED, None)
    if command.state in (CommandState.ACKED, CommandState.REJECTED):
        return AckMatch(AckOutcome.DUPLICATE, command)
    outcome = AckOutcome.LATE if command.state is CommandState.TIMED_OUT else AckOutcome.MATCHED
    return AckMatch(outcome, command.acknowledge(ack, now))


def fallback_match(candidates: Iterable[Command], ack: VenAck) -> Command | None:
    """For an ACK without correlationId: the newest command to that VEN with the
    same op and (when the ACK names one) the same event."""
    best: Command | None = None
    for command in candidates:
        if command.ven_id != ack.ven_id or command.op.value != ack.op:
            continue
        if ack.event_id is not None and command.event_id != ack.event_id:
            continue
        if best is None or (command.created_at, command.correlation_id) > (
            best.created_at,
            best.correlation_id,
        ):
            best = command
    return best


class CommandLedger:
    """Commands sent, keyed by correlationId; an in-memory aggregate.

    The SQL adapter persists the same :class:`Command` records; the rules
    (:func:`apply_ack`, :meth:`Command.mark_sent`, retries) are shared.
    """

    def __init__(
        self,
        ack_timeout: timedelta = DEFAULT_ACK_TIMEOUT,
        max_retries: int = DEFAULT_MAX_RETRIES,
    ) -> None:
        if max_retries < 0:
            raise ValueError("max_retries must be >= 0")
        self.ack_timeout = ack_timeout
        self.max_retries = max_retries
        self._commands: dict[str, Command] = {}

    def __len__(self) -> int:
        return len(self._commands)

    def __contains__(self, correlation_id: object) -> bool:
        return correlation_id in self._commands

    def get(self, correlation_id: str) -> Command:
        try:
            return self._commands[correlation_id]
        except KeyError:
            raise NotFound("command", correlation_id) from None

    def commands(self) -> list[Command]:
        return list(self._commands.values())

    def for_event(self, event_id: str, ven_id: str | None = None) -> list[Command]:
        return [
            c
            for c in self._commands.values()
            if c.event_id == event_id and (ven_id is None or c.ven_id == ven_id)
        ]

    def record(self, command: Command) -> Command:
        """Add a new command (normally PENDING, then :meth:`sent`)."""
        if command.correlation_id in self._commands:
            raise ValueError(f"correlationId {command.correlation_id} is already in the ledger")
        self._commands[command.correlation_id] = command
        return command

    def sent(self, correlation_id: str, now: datetime) -> Command:
        command = self.get(correlation_id).mark_sent(now, self.ack_timeout)
        self._commands[correlation_id] = command
        return command

    def match(self, ack: VenAck, now: datetime) -> AckMatch:
        command: Command | None = None
        if ack.correlation_id is not None:
            command = self._commands.get(ack.correlation_id)
            if command is not None and command.ven_id != ack.ven_id:
                # Another VEN echoing someone else's correlationId is not an answer.
                command = None
        else:
            command = fallback_match(self._commands.values(), ack)
        result = apply_ack(command, ack, now)
        if result.changed and result.command is not None:
            self._commands[result.command.correlation_id] = result.command
        return result

    def overdue(self, now: datetime) -> list[Command]:
        return sorted(
            (c for c in self._commands.values() if c.is_overdue(now)),
            key=lambda c: (c.deadline, c.correlation_id),
        )

    def retry(self, correlation_id: str, now: datetime) -> Command:
        """Re-send an overdue command with the same correlationId.

        Raises :class:`RetriesExhausted` (and times the command out) when it has
        already been sent ``1 + max_retries`` times. A command answered in the
        meantime (the ACK raced the retry) is returned unchanged, not re-opened.
        """
        command = self.get(correlation_id)
        if command.state in (CommandState.ACKED, CommandState.REJECTED):
            return command
        if not command.can_retry(self.max_retries):
            self._commands[correlation_id] = command.time_out()
            raise RetriesExhausted(
                f"{correlation_id}: no ACK from {command.ven_id} after {command.attempts} sends"
            )
        return self.sent(correlation_id, now)
