"""Commands to VENs, their ACKs, and the ledger that pairs them.

Every command carries ``correlationId`` = ``{eventId}-{8 hex}`` (the DR event
flow document's ``evt-a1b2c3d4-abc12345``), the hex being the command's
sequence number within its event; commands outside an event use
``cmd-{8 random hex}``. A VEN echoes it in its ACK. Old VENs may omit it: then the ACK
is matched by VEN + event id (+ op), and for a restore without event id by VEN
+ op, to the newest such command.

A command that is not ACKed before its deadline is re-sent with the SAME
correlationId, at most ``max_retries`` times; VENs must treat a repeat as
idempotent. After that, or when its event ends, it is timed out. An ACK that
comes after the time-out is still recorded (the VEN did act), flagged late.

An accepted command whose VEN is then seen not doing it (it rebooted:
:mod:`gridcore.reconcile`) is re-asserted: back in the outbox with the same
correlationId, its delivery withdrawn until the VEN answers again. Retries and
re-assertions share one budget: a command is sent at most ``1 + max_retries``
times in all.
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
from gridcore.quantities import to_watts
from gridcore.rebound import restore_not_before

CORRELATION_ID = re.compile(r"^(evt-[0-9a-f]{8}|cmd)-[0-9a-f]{8}\Z")
DEFAULT_ACK_TIMEOUT = timedelta(seconds=30)
DEFAULT_MAX_RETRIES = 2

# ACK statuses that mean the VEN did what was asked. Anything else is a refusal.
POSITIVE_ACK_STATUSES = frozenset(
    {"accepted", "success", "ok", "completed", "done", "pong", "applied"}
)


def new_correlation_id(event_id: str | None, hex8: str) -> str:
    prefix = event_id if event_id is not None else "cmd"
    correlation_id = f"{prefix}-{hex8}"
    if not CORRELATION_ID.match(correlation_id):
        raise ValueError(f"cannot build a correlationId from {event_id!r} and {hex8!r}")
    return correlation_id


def event_command_id(event_id: str, sequence: int) -> str:
    """The correlationId of an event's ``sequence``-th command (0-based): unique
    within the event by construction, where 32 random bits are not (a
    10,000-VEN event would collide about once in a hundred activations). Every
    command of an event is created under that event's lock, so the sequence is
    the number of commands the event already has."""
    if not 0 <= sequence <= 0xFFFFFFFF:
        raise ValueError(f"command sequence {sequence} does not fit in 8 hex digits")
    return new_correlation_id(event_id, f"{sequence:08x}")


class CommandOp(enum.StrEnum):
    EVENT = "event"
    RESTORE = "restore"
    PING = "ping"
    SHED_LOAD = "shed_load"
    CONFIG = "config"  # sent on ven/config/{venId} (gridcore.venconfig)


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
    # Why gridcore did not credit the ACK as reported (set when it is matched,
    # e.g. "capped: reported 999999999 kW, asked 1 kW"); the report stays as sent.
    flag: str | None = None

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
    # Not published before this (a staggered restore, gridcore.rebound); None: at once.
    not_before: datetime | None = None
    # A configuration push's loads, as compact JSON (gridcore.venconfig).
    config: str | None = None

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

    @property
    def withdrawn(self) -> bool:
        """Accepted, then put back in the outbox by :meth:`reassert` (its VEN's
        telemetry showed it was not doing it), and not accepted again since:
        the ACK it keeps (``acked_at``, ``ack_status``) no longer counts."""
        return self.acked_at is not None and self.state in (
            CommandState.PENDING,
            CommandState.SENT,
            CommandState.TIMED_OUT,
        )

    def reassert(self) -> Command:
        """An accepted command back in the outbox, same correlationId, because
        its VEN is not doing it (it rebooted): what it delivered is withdrawn
        until it answers again. Its first send becomes the re-assertion's, so
        the response time of that answer measures that round trip; the send is
        counted in ``attempts`` like any other."""
        return replace(
            self,
            state=CommandState.PENDING,
            first_sent_at=None,
            deadline=None,
            delivered_kw=None,
        )

    def is_due(self, now: datetime) -> bool:
        """Its time to be published has come (it may still not be in the outbox)."""
        return self.not_before is None or self.not_before <= now

    def is_overdue(self, now: datetime) -> bool:
        return (
            self.state is CommandState.SENT and self.deadline is not None and now >= self.deadline
        )

    def can_retry(self, max_retries: int) -> bool:
        return self.attempts <= max_retries

    def time_out(self) -> Command:
        return replace(self, state=CommandState.TIMED_OUT)

    def credit(self, ack: VenAck) -> tuple[float | None, str | None]:
        """The kW an accepted ``ack`` of this command delivers, and why that is
        not what the VEN reported (None: it is). A VEN is credited with at most
        what it was asked for (a report of 999999999 kW is a bug or a lie); its
        report stays in ven_acks as sent, flagged."""
        delivered = ack.actual_shed_kw
        if delivered is None and ack.accepted and self.op is CommandOp.EVENT:
            delivered = sum(c.curtailed_kw for c in ack.circuits_curtailed) or None
        if delivered is not None and self.shed_kw is not None and delivered > self.shed_kw:
            return (
                self.shed_kw,
                f"capped: reported {delivered:.15g} kW, asked {self.shed_kw:.15g} kW",
            )
        return delivered, None

    def acknowledge(self, ack: VenAck, now: datetime) -> Command:
        delivered, _ = self.credit(ack)
        return replace(
            self,
            state=CommandState.ACKED if ack.accepted else CommandState.REJECTED,
            acked_at=now,
            ack_status=ack.status,
            delivered_kw=delivered if ack.accepted else 0.0,
            late=self.state is CommandState.TIMED_OUT,
        )


_OPS = frozenset(op.value for op in CommandOp)


class AckOutcome(enum.StrEnum):
    MATCHED = "matched"  # first ACK of an open command
    LATE = "late"  # first ACK, after the command had timed out
    DUPLICATE = "duplicate"  # the command was already answered; nothing changes
    UNMATCHED = "unmatched"  # no command of ours; stored for audit only


@dataclass(frozen=True, slots=True)
class AckMatch:
    outcome: AckOutcome
    command: Command | None  # the command after the ACK, None when unmatched
    flag: str | None = None  # why the ACK was not credited as reported (Command.credit)

    @property
    def changed(self) -> bool:
        return self.outcome in (AckOutcome.MATCHED, AckOutcome.LATE)


def apply_ack(command: Command | None, ack: VenAck, now: datetime) -> AckMatch:
    """The one rule for what an ACK does to the command it matched."""
    if command is None:
        return AckMatch(AckOutcome.UNMATCHED, None)
    if ack.op != command.op.value and ack.op in _OPS:
        # An `event` ACK is no answer to a restore (and so on); stored for audit.
        return AckMatch(AckOutcome.UNMATCHED, None)
    if command.state in (CommandState.ACKED, CommandState.REJECTED):
        return AckMatch(AckOutcome.DUPLICATE, command)
    outcome = AckOutcome.LATE if command.state is CommandState.TIMED_OUT else AckOutcome.MATCHED
    flag = command.credit(ack)[1] if ack.accepted else None
    return AckMatch(outcome, command.acknowledge(ack, now), flag)


def newest_command(
    candidates: Iterable[Command],
    ven_id: str,
    op: str,
    event_id: str | None,
    *,
    sent_only: bool = False,
) -> Command | None:
    """The newest command of ``op`` to ``ven_id`` (of ``event_id`` when given):
    the ledger's order is (created_at, correlationId). ``sent_only`` skips
    commands never put on the wire."""
    best: Command | None = None
    for command in candidates:
        if command.ven_id != ven_id or command.op.value != op:
            continue
        if event_id is not None and command.event_id != event_id:
            continue
        if sent_only and command.first_sent_at is None:
            continue
        if best is None or _order(command) > _order(best):
            best = command
    return best


def fallback_match(candidates: Iterable[Command], ack: VenAck) -> Command | None:
    """For an ACK without correlationId: the newest command sent to that VEN
    with the same op and (when the ACK names one) the same event.

    Only a command already on the wire can be answered: a VEN restoring by
    itself at its duration's end ACKs with no correlationId in the same
    instant its restore command is queued, and matching that queued command
    would mark it answered and never send it (found by the e2e kill test)."""
    return newest_command(candidates, ack.ven_id, ack.op, ack.event_id, sent_only=True)


def _order(command: Command) -> tuple[datetime, str]:
    return (command.created_at, command.correlation_id)


def latest_per_ven(
    commands: Iterable[Command], op: CommandOp = CommandOp.EVENT
) -> dict[str, Command]:
    """Each VEN's newest command of ``op``: for event commands, the one a
    re-allocation left in force (it supersedes the older ones)."""
    latest: dict[str, Command] = {}
    for command in commands:
        if command.op is op:
            held = latest.get(command.ven_id)
            if held is None or _order(command) > _order(held):
                latest[command.ven_id] = command
    return latest


def _delivered(command: Command) -> int:
    kw = command.delivered_kw if command.delivered_kw is not None else command.shed_kw
    return to_watts(kw or 0.0)


def expected_per_ven(commands: Iterable[Command]) -> dict[str, int]:
    """Per VEN, the watts one event counts on it for: while its newest event
    command is unanswered, what that command asks; once answered, what its
    newest accepted command delivered (a refused top-up leaves the earlier
    delivery standing, as in :func:`delivered_w`); nothing if it never accepted."""
    commands = list(commands)
    delivered = delivered_per_ven(commands)
    expected: dict[str, int] = {}
    for ven_id, latest in latest_per_ven(commands).items():
        if latest.state.is_open:
            expected[ven_id] = to_watts(latest.shed_kw or 0.0)
        else:
            expected[ven_id] = delivered.get(ven_id, 0)
    return expected


def _newest_accepted(commands: Iterable[Command]) -> dict[str, Command]:
    return latest_per_ven(c for c in commands if c.state is CommandState.ACKED)


def delivered_per_ven(commands: Iterable[Command]) -> dict[str, int]:
    """Watts each VEN delivers for one event: what its newest accepted event
    command reports (a re-allocated VEN's newer ACK replaces its older one).
    VENs that never accepted are absent, and so are VENs whose newest event
    command was withdrawn (:attr:`Command.withdrawn`: the VEN was seen not
    doing it; nothing it accepted before counts until it answers again)."""
    commands = list(commands)
    withdrawn = {v for v, c in latest_per_ven(commands).items() if c.withdrawn}
    return {
        ven_id: _delivered(c)
        for ven_id, c in _newest_accepted(commands).items()
        if ven_id not in withdrawn
    }


def delivered_w(commands: Iterable[Command]) -> int:
    """actualReductionKw of one event, in watts: the sum over VENs of what each
    delivers (:func:`delivered_per_ven`); an ACK is never summed over time."""
    return sum(delivered_per_ven(commands).values())


def owed_w(commands: Iterable[Command]) -> dict[str, int]:
    """Watts each VEN is counted on for across the events of ``commands`` (pass
    the commands of every active event): overlapping events must not ask one
    home for the same kW twice. Activation and re-allocation both use it."""
    by_event: dict[str | None, list[Command]] = {}
    for command in commands:
        by_event.setdefault(command.event_id, []).append(command)
    owed: dict[str, int] = {}
    for event_commands in by_event.values():
        for ven_id, watts in expected_per_ven(event_commands).items():
            owed[ven_id] = owed.get(ven_id, 0) + watts
    return owed


class CommandLedger:
    """Commands keyed by correlationId: the aggregate through which every change
    to commands goes, in production as in the tests.

    A use case loads the commands it is about to change into a ledger, inside
    a transaction that holds their event's lock (see
    :meth:`gridcore.ports.EventRepository.lock`), lets the ledger apply the
    rules (:func:`apply_ack`, :meth:`Command.mark_sent`, bounded retries that
    never reopen an answered command), and writes back :meth:`changed` and
    :meth:`added`. Methods that speak for a whole event (:meth:`end_event`,
    :meth:`next_id`) need every command of that event loaded.
    """

    def __init__(
        self,
        commands: Iterable[Command] = (),
        *,
        ack_timeout: timedelta = DEFAULT_ACK_TIMEOUT,
        max_retries: int = DEFAULT_MAX_RETRIES,
    ) -> None:
        if max_retries < 0:
            raise ValueError("max_retries must be >= 0")
        self.ack_timeout = ack_timeout
        self.max_retries = max_retries
        self._commands: dict[str, Command] = {}
        self._added: list[str] = []
        self._changed: dict[str, None] = {}  # insertion-ordered set
        self._per_event: dict[str | None, int] = {}  # how many commands each event has
        for command in commands:
            if command.correlation_id in self._commands:
                raise ValueError(f"correlationId {command.correlation_id} loaded twice")
            self._hold(command)

    def _hold(self, command: Command) -> None:
        self._commands[command.correlation_id] = command
        self._per_event[command.event_id] = self._per_event.get(command.event_id, 0) + 1

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

    # --- what to write back ---------------------------------------------------

    def added(self) -> list[Command]:
        """Commands recorded into this ledger, in the order they were recorded."""
        return [self._commands[cid] for cid in self._added]

    def changed(self) -> list[Command]:
        """Loaded commands whose state this ledger changed."""
        added = set(self._added)
        return [self._commands[cid] for cid in self._changed if cid not in added]

    def _put(self, command: Command) -> Command:
        self._commands[command.correlation_id] = command
        self._changed[command.correlation_id] = None
        return command

    # --- the rules ----------------------------------------------------------------

    def next_id(self, event_id: str) -> str:
        """A correlationId for a new command of ``event_id`` (every command of
        the event loaded): unique within the event by construction."""
        return event_command_id(event_id, self._per_event.get(event_id, 0))

    def record(self, command: Command) -> Command:
        """Add a new command (normally PENDING, then :meth:`sent`)."""
        if command.correlation_id in self._commands:
            raise ValueError(f"correlationId {command.correlation_id} is already in the ledger")
        self._hold(command)
        self._added.append(command.correlation_id)
        return command

    def sent(self, correlation_id: str, now: datetime) -> Command:
        """Mark a command published. Only a command in the outbox whose time
        has come (:meth:`Command.is_due`) is: one that another pass sent, or
        that was answered, meanwhile is returned as is. Its ACK deadline
        counts from now, the actual send."""
        command = self.get(correlation_id)
        if command.state is not CommandState.PENDING or not command.is_due(now):
            return command
        return self._put(command.mark_sent(now, self.ack_timeout))

    def unsent(self, correlation_id: str, attempts: int) -> Command:
        """Put a command whose publish failed back in the outbox, unless it
        moved on since it was marked sent (answered, or sent again)."""
        command = self.get(correlation_id)
        if command.state is not CommandState.SENT or command.attempts != attempts:
            return command
        return self._put(command.unsent())

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
            self._put(result.command)
        return result

    def overdue(self, now: datetime) -> list[Command]:
        return sorted(
            (c for c in self._commands.values() if c.is_overdue(now)),
            key=lambda c: (c.deadline, c.correlation_id),
        )

    def retry(self, correlation_id: str, now: datetime) -> Command:
        """Re-send an overdue command with the same correlationId.

        Raises :class:`RetriesExhausted` (and times the command out) when it has
        already been sent ``1 + max_retries`` times. A command that is no longer
        overdue (the ACK raced the retry, or another pass retried it) is
        returned unchanged, never re-opened.
        """
        command = self.get(correlation_id)
        if not command.is_overdue(now):
            return command
        if not command.can_retry(self.max_retries):
            self._put(command.time_out())
            raise RetriesExhausted(
                f"{correlation_id}: no ACK from {command.ven_id} after {command.attempts} sends"
            )
        return self._put(command.mark_sent(now, self.ack_timeout))

    def reassert(self, correlation_id: str) -> Command:
        """Put an accepted command back in the outbox with the same
        correlationId (:meth:`Command.reassert`): its VEN was seen not doing it.

        Bounded like retries: a command is sent at most ``1 + max_retries``
        times in all, whether again for a missing ACK or re-asserted. One that
        has been raises :class:`RetriesExhausted` and stays as it is (accepted,
        still counted). A command not accepted (any more) is returned
        unchanged: the answer or re-assertion that raced this one stands.
        """
        command = self.get(correlation_id)
        if command.state is not CommandState.ACKED:
            return command
        if not command.can_retry(self.max_retries):
            raise RetriesExhausted(
                f"{correlation_id}: {command.ven_id} was sent it {command.attempts} times"
            )
        return self._put(command.reassert())

    def end_event(
        self,
        event_id: str,
        now: datetime,
        *,
        ended: datetime | None = None,
        restore_spread: timedelta = timedelta(0),
    ) -> list[Command]:
        """At an event's end or stop: cancel its event commands still in the
        outbox, and record one restore per VEN that was sent the event and has
        none yet (so a stop racing the completion cannot restore twice).
        With a ``restore_spread``, each restore waits its VEN's offset after
        ``ended`` (the event's end or stop, default ``now``;
        :func:`gridcore.rebound.restore_not_before`). Returns the restores."""
        commands = self.for_event(event_id)
        for c in commands:
            if c.op is CommandOp.EVENT and c.state.is_open:
                # Never sent: cancelled. Sent and unanswered: no more retries (a
                # re-send after the restore would start the VEN shedding again);
                # an ACK that still comes is recorded as late.
                self._put(c.cancel() if c.attempts == 0 else c.time_out())
        sent_to = {c.ven_id for c in commands if c.op is CommandOp.EVENT and c.attempts > 0}
        restored = {c.ven_id for c in commands if c.op is CommandOp.RESTORE}
        return [
            self.record(
                Command(
                    correlation_id=self.next_id(event_id),
                    ven_id=ven_id,
                    op=CommandOp.RESTORE,
                    created_at=now,
                    event_id=event_id,
                    not_before=restore_not_before(event_id, ven_id, ended or now, restore_spread),
                )
            )
            for ven_id in sorted(sent_to - restored)
        ]

    # --- what the event is owed ---------------------------------------------------

    def latest_per_ven(self, event_id: str) -> dict[str, Command]:
        return latest_per_ven(self.for_event(event_id))

    def delivered_w(self, event_id: str) -> int:
        return delivered_w(self.for_event(event_id))

    def expected_per_ven(self, event_id: str) -> dict[str, int]:
        return expected_per_ven(self.for_event(event_id))

    def owed_w(self) -> dict[str, int]:
        return owed_w(self._commands.values())
