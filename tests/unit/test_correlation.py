"""Commands, ACKs and the ledger that pairs them by correlationId."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule

from gridcore import (
    AckOutcome,
    CircuitCurtailment,
    Command,
    CommandLedger,
    CommandOp,
    CommandState,
    NotFound,
    RetriesExhausted,
    VenAck,
    apply_ack,
    new_correlation_id,
)
from gridcore.correlation import CORRELATION_ID, event_command_id

T0 = datetime(2025, 10, 20, 15, 0, tzinfo=UTC)
TIMEOUT = timedelta(seconds=30)
EVENT = "evt-a1b2c3d4"
CID = "evt-a1b2c3d4-abc12345"


def command(
    correlation_id: str = CID,
    ven_id: str = "ven-1",
    op: CommandOp = CommandOp.EVENT,
    event_id: str | None = EVENT,
    created_at: datetime = T0,
) -> Command:
    return Command(
        correlation_id=correlation_id,
        ven_id=ven_id,
        op=op,
        created_at=created_at,
        event_id=event_id,
        shed_kw=5.0 if op is CommandOp.EVENT else None,
        duration_sec=3600 if op is CommandOp.EVENT else None,
    )


def ack(
    correlation_id: str | None = CID,
    ven_id: str = "ven-1",
    op: str = "event",
    status: str = "accepted",
    event_id: str | None = EVENT,
    actual_shed_kw: float | None = 5.0,
    circuits: tuple[CircuitCurtailment, ...] = (),
) -> VenAck:
    return VenAck(
        ven_id=ven_id,
        op=op,
        status=status,
        timestamp=T0,
        correlation_id=correlation_id,
        event_id=event_id,
        requested_shed_kw=5.0,
        actual_shed_kw=actual_shed_kw,
        circuits_curtailed=circuits,
    )


def ledger_with(*commands: Command, max_retries: int = 2) -> CommandLedger:
    ledger = CommandLedger(ack_timeout=TIMEOUT, max_retries=max_retries)
    for c in commands:
        ledger.record(c)
        ledger.sent(c.correlation_id, T0)
    return ledger


# --- ids ------------------------------------------------------------------------


def test_correlation_id_is_event_id_and_eight_hex() -> None:
    assert new_correlation_id(EVENT, "abc12345") == "evt-a1b2c3d4-abc12345"


def test_commands_outside_an_event_use_cmd_prefix() -> None:
    assert new_correlation_id(None, "0f0f0f0f") == "cmd-0f0f0f0f"


@pytest.mark.parametrize(
    ("event_id", "hex8"),
    [
        (EVENT, "ABC12345"),
        (EVENT, "abc1234"),
        (EVENT, "abc123456"),
        ("evt-a1b2c3", "abc12345"),
        ("event-a1b2c3d4", "abc12345"),
        (EVENT, "abc12345\n"),
        ("ven/1", "abc12345"),
    ],
)
def test_malformed_correlation_ids_are_refused(event_id: str, hex8: str) -> None:
    with pytest.raises(ValueError, match="correlationId"):
        new_correlation_id(event_id, hex8)


def test_correlation_id_pattern_is_anchored_at_both_ends() -> None:
    assert CORRELATION_ID.match(CID)
    assert not CORRELATION_ID.match(CID + "\n")
    assert not CORRELATION_ID.match("x" + CID)


# --- commands and ACKs ------------------------------------------------------------


def test_record_then_sent_starts_the_ack_clock() -> None:
    ledger = CommandLedger(ack_timeout=TIMEOUT)
    recorded = ledger.record(command())
    assert recorded.state is CommandState.PENDING
    assert recorded.attempts == 0
    assert ledger.overdue(T0 + timedelta(days=1)) == []  # never sent, never overdue

    sent = ledger.sent(CID, T0)
    assert sent.state is CommandState.SENT
    assert sent.attempts == 1
    assert (sent.first_sent_at, sent.last_sent_at, sent.deadline) == (T0, T0, T0 + TIMEOUT)
    assert ledger.get(CID) == sent
    assert CID in ledger
    assert len(ledger) == 1


def test_recording_the_same_correlation_id_twice_is_refused() -> None:
    ledger = ledger_with(command())
    with pytest.raises(ValueError, match="already in the ledger"):
        ledger.record(command(ven_id="ven-2"))
    assert ledger.get(CID).ven_id == "ven-1"


def test_unknown_command_is_not_found() -> None:
    ledger = CommandLedger()
    with pytest.raises(NotFound):
        ledger.get(CID)
    with pytest.raises(NotFound):
        ledger.sent(CID, T0)


def test_ack_matches_by_correlation_id_and_records_response_time() -> None:
    ledger = ledger_with(command())
    at = T0 + timedelta(seconds=2.5)
    result = ledger.match(ack(), at)
    assert result.outcome is AckOutcome.MATCHED
    assert result.changed
    answered = ledger.get(CID)
    assert result.command == answered
    assert answered.state is CommandState.ACKED
    assert answered.acked_at == at
    assert answered.ack_status == "accepted"
    assert answered.delivered_kw == 5.0
    assert answered.response_time == timedelta(seconds=2.5)
    assert not answered.late


def test_response_time_is_none_until_answered() -> None:
    assert ledger_with(command()).get(CID).response_time is None


def test_delivered_kw_falls_back_to_the_sum_of_curtailed_circuits() -> None:
    circuits = (
        CircuitCurtailment(id="ev1", curtailed_kw=3.0),
        CircuitCurtailment(id="heater1", curtailed_kw=2.0),
    )
    ledger = ledger_with(command())
    ledger.match(ack(actual_shed_kw=None, circuits=circuits), T0)
    assert ledger.get(CID).delivered_kw == 5.0


def test_fallback_match_by_ven_and_event_when_correlation_id_is_missing() -> None:
    other_event = command("evt-0000ffff-00000001", event_id="evt-0000ffff")
    mine = command()
    other_ven = command("evt-a1b2c3d4-00000002", ven_id="ven-2")
    ledger = ledger_with(other_event, mine, other_ven)
    result = ledger.match(ack(correlation_id=None), T0 + timedelta(seconds=1))
    assert result.outcome is AckOutcome.MATCHED
    assert result.command is not None
    assert result.command.correlation_id == CID
    assert ledger.get(CID).state is CommandState.ACKED
    assert ledger.get(other_event.correlation_id).state is CommandState.SENT
    assert ledger.get(other_ven.correlation_id).state is CommandState.SENT


def test_fallback_for_a_restore_ack_without_event_id_takes_the_newest_restore() -> None:
    old = command("evt-0000ffff-00000001", op=CommandOp.RESTORE, event_id="evt-0000ffff")
    new = command(
        "evt-a1b2c3d4-00000002",
        op=CommandOp.RESTORE,
        created_at=T0 + timedelta(minutes=5),
    )
    event_cmd = command(created_at=T0 + timedelta(minutes=10))
    ledger = ledger_with(old, new, event_cmd)
    result = ledger.match(
        ack(correlation_id=None, op="restore", event_id=None, actual_shed_kw=None),
        T0 + timedelta(minutes=6),
    )
    assert result.outcome is AckOutcome.MATCHED
    assert result.command is not None
    assert result.command.correlation_id == new.correlation_id
    assert result.command.event_id == EVENT  # the ledger knows which event it was
    assert ledger.get(old.correlation_id).state is CommandState.SENT
    assert ledger.get(event_cmd.correlation_id).state is CommandState.SENT


def test_fallback_never_answers_a_command_still_in_the_outbox() -> None:
    """A VEN restoring by itself at its duration's end ACKs without a
    correlationId while its restore command is queued: the queued command is
    no answer's target (it would be marked answered and never sent)."""
    sent = command("evt-a1b2c3d4-00000001", op=CommandOp.RESTORE)
    ledger = ledger_with(sent)
    queued = command(
        "evt-a1b2c3d4-00000002", op=CommandOp.RESTORE, created_at=T0 + timedelta(minutes=1)
    )
    ledger.record(queued)
    result = ledger.match(
        ack(correlation_id=None, op="restore", actual_shed_kw=None), T0 + timedelta(minutes=1)
    )
    assert result.command is not None
    assert result.command.correlation_id == sent.correlation_id  # the newest one on the wire
    assert ledger.get(queued.correlation_id).state is CommandState.PENDING
    only_queued = CommandLedger(ack_timeout=TIMEOUT, max_retries=2)
    only_queued.record(queued)
    alone = only_queued.match(ack(correlation_id=None, op="restore", actual_shed_kw=None), T0)
    assert alone.outcome is AckOutcome.UNMATCHED
    assert only_queued.get(queued.correlation_id).state is CommandState.PENDING


def test_ack_without_correlation_id_and_no_candidate_is_unmatched() -> None:
    ledger = ledger_with(command())
    result = ledger.match(ack(correlation_id=None, ven_id="ven-9"), T0)
    assert result.outcome is AckOutcome.UNMATCHED
    assert result.command is None
    assert ledger.get(CID).state is CommandState.SENT


def test_ack_from_another_ven_echoing_a_correlation_id_is_unmatched() -> None:
    ledger = ledger_with(command())
    before = ledger.get(CID)
    result = ledger.match(ack(ven_id="ven-2"), T0)
    assert result.outcome is AckOutcome.UNMATCHED
    assert not result.changed
    assert ledger.get(CID) == before


def test_ack_with_an_unknown_correlation_id_is_unmatched() -> None:
    ledger = ledger_with(command())
    result = ledger.match(ack(correlation_id="evt-a1b2c3d4-99999999"), T0)
    assert result.outcome is AckOutcome.UNMATCHED


def test_duplicate_ack_is_duplicate_and_changes_nothing() -> None:
    ledger = ledger_with(command())
    ledger.match(ack(), T0 + timedelta(seconds=1))
    answered = ledger.get(CID)
    again = ledger.match(ack(status="rejected", actual_shed_kw=0.0), T0 + timedelta(seconds=9))
    assert again.outcome is AckOutcome.DUPLICATE
    assert not again.changed
    assert again.command == answered
    assert ledger.get(CID) == answered


def test_rejected_ack_is_rejected_with_nothing_delivered() -> None:
    ledger = ledger_with(command())
    result = ledger.match(ack(status="rejected", actual_shed_kw=4.0), T0)
    assert result.outcome is AckOutcome.MATCHED
    rejected = ledger.get(CID)
    assert rejected.state is CommandState.REJECTED
    assert rejected.delivered_kw == 0.0
    assert rejected.ack_status == "rejected"


@pytest.mark.parametrize("status", ["accepted", "Success", " ok ", "completed", "done", "pong"])
def test_positive_ack_statuses(status: str) -> None:
    assert ack(status=status).accepted


@pytest.mark.parametrize("status", ["rejected", "error", "failed", ""])
def test_anything_else_is_a_refusal(status: str) -> None:
    assert not ack(status=status).accepted


def test_apply_ack_without_command_is_unmatched() -> None:
    assert apply_ack(None, ack(), T0).outcome is AckOutcome.UNMATCHED


# --- deadlines and retries --------------------------------------------------------


def test_overdue_at_and_after_the_deadline_only() -> None:
    ledger = ledger_with(command())
    assert ledger.overdue(T0 + TIMEOUT - timedelta(microseconds=1)) == []
    assert [c.correlation_id for c in ledger.overdue(T0 + TIMEOUT)] == [CID]
    ledger.match(ack(), T0 + TIMEOUT + timedelta(seconds=1))
    assert ledger.overdue(T0 + timedelta(hours=1)) == []


def test_overdue_is_sorted_by_deadline() -> None:
    ledger = CommandLedger(ack_timeout=TIMEOUT)
    for i, offset in enumerate([20, 0, 10]):
        cid = f"{EVENT}-0000000{i}"
        ledger.record(command(cid, ven_id=f"ven-{i}"))
        ledger.sent(cid, T0 + timedelta(seconds=offset))
    overdue = ledger.overdue(T0 + timedelta(minutes=5))
    assert [c.ven_id for c in overdue] == ["ven-1", "ven-2", "ven-0"]


def test_retry_keeps_the_correlation_id_and_bumps_attempts() -> None:
    ledger = ledger_with(command())
    at = T0 + TIMEOUT
    retried = ledger.retry(CID, at)
    assert retried.correlation_id == CID
    assert retried.attempts == 2
    assert retried.state is CommandState.SENT
    assert retried.first_sent_at == T0  # the response time counts from the first send
    assert (retried.last_sent_at, retried.deadline) == (at, at + TIMEOUT)
    assert len(ledger) == 1


@pytest.mark.parametrize("max_retries", [0, 1, 2, 5])
def test_retries_are_bounded(max_retries: int) -> None:
    ledger = ledger_with(command(), max_retries=max_retries)
    now = T0
    for _ in range(max_retries):
        now += TIMEOUT
        assert ledger.retry(CID, now).attempts <= 1 + max_retries
    assert ledger.get(CID).attempts == 1 + max_retries
    with pytest.raises(RetriesExhausted):
        ledger.retry(CID, now + TIMEOUT)
    timed_out = ledger.get(CID)
    assert timed_out.state is CommandState.TIMED_OUT
    assert timed_out.attempts == 1 + max_retries
    assert ledger.overdue(now + timedelta(days=1)) == []


def test_negative_max_retries_is_refused() -> None:
    with pytest.raises(ValueError, match="max_retries"):
        CommandLedger(max_retries=-1)


def test_late_ack_after_time_out_is_late_and_recorded() -> None:
    ledger = ledger_with(command(), max_retries=0)
    with pytest.raises(RetriesExhausted):
        ledger.retry(CID, T0 + TIMEOUT)
    at = T0 + timedelta(minutes=3)
    result = ledger.match(ack(), at)
    assert result.outcome is AckOutcome.LATE
    assert result.changed
    late = ledger.get(CID)
    assert late.state is CommandState.ACKED
    assert late.late
    assert late.delivered_kw == 5.0
    assert late.response_time == timedelta(minutes=3)
    assert ledger.match(ack(), at).outcome is AckOutcome.DUPLICATE


def test_a_retry_that_races_an_ack_does_not_reopen_the_command() -> None:
    ledger = ledger_with(command())
    stale = ledger.overdue(T0 + TIMEOUT)  # the dispatcher saw it overdue...
    ledger.match(ack(), T0 + TIMEOUT)  # ...then the ACK came in
    answered = ledger.get(CID)
    for c in stale:
        assert ledger.retry(c.correlation_id, T0 + TIMEOUT) == answered
    assert ledger.get(CID) == answered


def test_for_event_filters_by_event_and_ven() -> None:
    a = command("evt-a1b2c3d4-00000001", ven_id="ven-1")
    b = command("evt-a1b2c3d4-00000002", ven_id="ven-2")
    c = command("evt-0000ffff-00000003", ven_id="ven-1", event_id="evt-0000ffff")
    ledger = ledger_with(a, b, c)
    assert {x.correlation_id for x in ledger.for_event(EVENT)} == {
        a.correlation_id,
        b.correlation_id,
    }
    assert [x.correlation_id for x in ledger.for_event(EVENT, "ven-2")] == [b.correlation_id]
    assert len(ledger.commands()) == 3


def test_a_vens_report_is_credited_at_most_what_it_was_asked() -> None:
    ledger = ledger_with(command())  # asks 5.0 kW
    result = ledger.match(ack(actual_shed_kw=999_999_999.0), T0)
    assert result.outcome is AckOutcome.MATCHED
    assert ledger.get(CID).delivered_kw == 5.0


def test_an_ack_of_another_op_is_no_answer() -> None:
    restore = command(f"{EVENT}-00000001", op=CommandOp.RESTORE)
    ledger = ledger_with(restore)
    result = ledger.match(ack(restore.correlation_id, op="event"), T0)
    assert result.outcome is AckOutcome.UNMATCHED
    assert ledger.get(restore.correlation_id).state is CommandState.SENT
    assert ledger.match(ack(restore.correlation_id, op="restore"), T0).changed


def test_event_command_ids_count_the_event_s_commands() -> None:
    assert event_command_id(EVENT, 0) == f"{EVENT}-00000000"
    assert event_command_id(EVENT, 0xFFFFFFFF) == f"{EVENT}-ffffffff"
    with pytest.raises(ValueError, match="sequence"):
        event_command_id(EVENT, 1 << 32)
    ledger = ledger_with(command(event_command_id(EVENT, 0)), command(event_command_id(EVENT, 1)))
    assert ledger.next_id(EVENT) == f"{EVENT}-00000002"
    assert ledger.next_id("evt-0000ffff") == "evt-0000ffff-00000000"


def test_only_a_command_in_the_outbox_is_marked_sent() -> None:
    ledger = ledger_with(command())  # sent once at T0
    again = ledger.sent(CID, T0 + TIMEOUT)
    assert again.attempts == 1 and again.last_sent_at == T0  # another pass sent it first
    assert ledger.changed() == []


def test_a_failed_publish_goes_back_to_the_outbox_unless_the_command_moved_on() -> None:
    ledger = ledger_with(command(), command(f"{EVENT}-00000001", ven_id="ven-2"))
    ledger.match(ack(), T0)  # answered while its publish was failing
    assert ledger.unsent(CID, attempts=1).state is CommandState.ACKED
    assert ledger.unsent(f"{EVENT}-00000001", attempts=2).state is CommandState.SENT  # resent
    back = ledger.unsent(f"{EVENT}-00000001", attempts=1)
    assert (back.state, back.attempts) == (CommandState.PENDING, 0)


def test_ending_an_event_cancels_the_unsent_stops_retries_and_restores_each_ven_once() -> None:
    ledger = CommandLedger(ack_timeout=TIMEOUT)
    for n, ven_id in enumerate(["ven-1", "ven-2", "ven-3"]):
        ledger.record(command(event_command_id(EVENT, n), ven_id=ven_id))
    ledger.sent(event_command_id(EVENT, 0), T0)
    ledger.sent(event_command_id(EVENT, 1), T0)
    ledger.match(ack(event_command_id(EVENT, 1), ven_id="ven-2", status="rejected"), T0)
    loaded = CommandLedger(ledger.commands())  # as a later transaction reads them
    restores = loaded.end_event(EVENT, T0 + timedelta(minutes=5))
    assert [(r.ven_id, r.op, r.correlation_id) for r in restores] == [
        ("ven-1", CommandOp.RESTORE, f"{EVENT}-00000003"),
        ("ven-2", CommandOp.RESTORE, f"{EVENT}-00000004"),
    ]
    # ven-1 was sent and never answered: no more retries once restored.
    assert [(c.ven_id, c.state) for c in loaded.changed()] == [
        ("ven-1", CommandState.TIMED_OUT),
        ("ven-3", CommandState.CANCELLED),
    ]
    assert loaded.overdue(T0 + timedelta(days=1)) == []
    assert loaded.added() == restores
    assert CommandLedger(loaded.commands()).end_event(EVENT, T0 + timedelta(minutes=6)) == []


def answered(cid: str, ven_id: str, minute: int, state: CommandState, kw: float | None) -> Command:
    return Command(
        correlation_id=cid,
        ven_id=ven_id,
        op=CommandOp.EVENT,
        created_at=T0 + timedelta(minutes=minute),
        event_id=cid[:12],
        shed_kw=4.0,
        state=state,
        attempts=1,
        delivered_kw=kw,
    )


def test_delivered_kw_is_each_ven_s_newest_accepted_answer_summed_once() -> None:
    ledger = CommandLedger(
        [
            answered(f"{EVENT}-00000000", "ven-1", 0, CommandState.ACKED, 3.0),
            answered(f"{EVENT}-00000001", "ven-1", 1, CommandState.ACKED, 3.5),  # re-allocated
            answered(f"{EVENT}-00000002", "ven-2", 0, CommandState.ACKED, 2.0),
            answered(f"{EVENT}-00000003", "ven-2", 1, CommandState.REJECTED, 0.0),  # refused more
            answered(f"{EVENT}-00000004", "ven-3", 0, CommandState.SENT, None),
            answered("evt-0000ffff-00000000", "ven-3", 0, CommandState.ACKED, 9.0),
        ]
    )
    assert ledger.delivered_w(EVENT) == 5_500  # 3.5 (newest of ven-1) + 2.0 (kept by ven-2)
    assert ledger.delivered_w("evt-0000ffff") == 9_000
    # What allocation counts on: the same deliveries, and the ask of what is unanswered.
    assert ledger.expected_per_ven(EVENT) == {"ven-1": 3_500, "ven-2": 2_000, "ven-3": 4_000}


def test_what_a_ven_owes_sums_its_newest_command_over_events() -> None:
    ledger = CommandLedger(
        [
            answered(f"{EVENT}-00000000", "ven-1", 0, CommandState.ACKED, 3.0),
            answered(f"{EVENT}-00000001", "ven-1", 1, CommandState.SENT, None),  # asks 4.0
            answered("evt-0000ffff-00000000", "ven-1", 0, CommandState.ACKED, 2.5),
            answered("evt-0000ffff-00000001", "ven-2", 0, CommandState.TIMED_OUT, None),
        ]
    )
    assert ledger.owed_w() == {"ven-1": 6_500, "ven-2": 0}


# --- the ledger as a state machine ------------------------------------------------

VENS = ["ven-1", "ven-2", "ven-3"]


class LedgerMachine(RuleBasedStateMachine):
    """Commands sent, ACKed (or not), retried and timed out under a clock the
    rules advance; a plain dict is the reference model of each command's state."""

    @initialize(
        max_retries=st.integers(0, 3),
        timeout_s=st.integers(1, 60),
    )
    def setup(self, max_retries: int, timeout_s: int) -> None:
        self.max_retries = max_retries
        self.timeout = timedelta(seconds=timeout_s)
        self.ledger = CommandLedger(ack_timeout=self.timeout, max_retries=max_retries)
        self.now = T0
        self.serial = 0
        self.model: dict[str, CommandState] = {}
        self.answered: dict[str, Command] = {}
        self.ven_of: dict[str, str] = {}
        self.event_of: dict[str, str] = {}

    def _cids(self) -> list[str]:
        return sorted(self.model)

    @rule(ven_id=st.sampled_from(VENS))
    def send(self, ven_id: str) -> None:
        self.serial += 1
        event_id = f"evt-{self.serial:08x}"
        cid = event_command_id(event_id, 0)
        self.ledger.record(command(cid, ven_id=ven_id, event_id=event_id, created_at=self.now))
        sent = self.ledger.sent(cid, self.now)
        assert (sent.attempts, sent.deadline) == (1, self.now + self.timeout)
        self.model[cid] = CommandState.SENT
        self.ven_of[cid] = ven_id
        self.event_of[cid] = event_id

    def _expect_ack(self, cid: str, result_outcome: AckOutcome, accepted: bool) -> None:
        state = self.model[cid]
        if state in (CommandState.ACKED, CommandState.REJECTED):
            assert result_outcome is AckOutcome.DUPLICATE
            return
        expected = AckOutcome.LATE if state is CommandState.TIMED_OUT else AckOutcome.MATCHED
        assert result_outcome is expected
        self.model[cid] = CommandState.ACKED if accepted else CommandState.REJECTED
        answered = self.ledger.get(cid)
        assert answered.state is self.model[cid]
        assert answered.late is (expected is AckOutcome.LATE)
        assert answered.acked_at == self.now
        self.answered[cid] = answered

    @precondition(lambda self: self.model)
    @rule(data=st.data(), accepted=st.booleans())
    def ack(self, data: st.DataObject, accepted: bool) -> None:
        cid = data.draw(st.sampled_from(self._cids()))
        status = "accepted" if accepted else "rejected"
        result = self.ledger.match(
            ack(cid, ven_id=self.ven_of[cid], status=status, event_id=None), self.now
        )
        self._expect_ack(cid, result.outcome, accepted)

    @precondition(lambda self: self.model)
    @rule(data=st.data())
    def ack_without_correlation_id(self, data: st.DataObject) -> None:
        cid = data.draw(st.sampled_from(self._cids()))
        result = self.ledger.match(
            ack(None, ven_id=self.ven_of[cid], event_id=self.event_of[cid]), self.now
        )
        assert result.command is not None
        assert result.command.correlation_id == cid
        self._expect_ack(cid, result.outcome, True)

    @precondition(lambda self: self.answered)
    @rule(data=st.data())
    def duplicate_ack(self, data: st.DataObject) -> None:
        cid = data.draw(st.sampled_from(sorted(self.answered)))
        before = self.ledger.get(cid)
        result = self.ledger.match(ack(cid, ven_id=self.ven_of[cid], status="rejected"), self.now)
        assert result.outcome is AckOutcome.DUPLICATE
        assert self.ledger.get(cid) == before

    @precondition(lambda self: self.model)
    @rule(data=st.data())
    def foreign_ack(self, data: st.DataObject) -> None:
        cid = data.draw(st.sampled_from(self._cids()))
        before = self.ledger.get(cid)
        intruder = next(v for v in VENS if v != self.ven_of[cid])
        assert self.ledger.match(ack(cid, ven_id=intruder), self.now).outcome is (
            AckOutcome.UNMATCHED
        )
        assert self.ledger.get(cid) == before

    @rule(seconds=st.integers(0, 90))
    def advance_time(self, seconds: int) -> None:
        self.now += timedelta(seconds=seconds)

    @rule()
    def retry_overdue(self) -> None:
        for overdue in self.ledger.overdue(self.now):
            cid = overdue.correlation_id
            if overdue.attempts >= 1 + self.max_retries:
                with pytest.raises(RetriesExhausted):
                    self.ledger.retry(cid, self.now)
                self.model[cid] = CommandState.TIMED_OUT
                assert self.ledger.get(cid).state is CommandState.TIMED_OUT
            else:
                retried = self.ledger.retry(cid, self.now)
                assert retried.attempts == overdue.attempts + 1
                assert retried.deadline == self.now + self.timeout
                assert retried.first_sent_at == overdue.first_sent_at

    @precondition(lambda self: self.answered)
    @rule(data=st.data())
    def stale_retry(self, data: st.DataObject) -> None:
        """A retry decided before the ACK arrived must not reopen the command."""
        cid = data.draw(st.sampled_from(sorted(self.answered)))
        assert self.ledger.retry(cid, self.now) == self.answered[cid]

    @invariant()
    def states_match_the_model(self) -> None:
        for cid, state in self.model.items():
            assert self.ledger.get(cid).state is state

    @invariant()
    def attempts_never_exceed_one_plus_max_retries(self) -> None:
        for c in self.ledger.commands():
            assert 1 <= c.attempts <= 1 + self.max_retries

    @invariant()
    def answered_commands_never_change(self) -> None:
        for cid, answered in self.answered.items():
            assert self.ledger.get(cid) == answered

    @invariant()
    def correlation_ids_are_stable(self) -> None:
        assert len(self.ledger) == len(self.model)
        for cid in self.model:
            assert self.ledger.get(cid).correlation_id == cid
            assert self.event_of[cid] == self.ledger.get(cid).event_id

    @invariant()
    def overdue_is_exactly_the_sent_commands_past_deadline(self) -> None:
        overdue = self.ledger.overdue(self.now)
        for c in overdue:
            assert c.state is CommandState.SENT
            assert c.deadline is not None
            assert self.now >= c.deadline
        expected = {
            c.correlation_id
            for c in self.ledger.commands()
            if c.state is CommandState.SENT and c.deadline is not None and self.now >= c.deadline
        }
        assert {c.correlation_id for c in overdue} == expected


LedgerMachine.TestCase.settings = settings(max_examples=150, stateful_step_count=40, deadline=None)
TestLedgerMachine = LedgerMachine.TestCase
