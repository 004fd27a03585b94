"""DR events: validation, the lifecycle state machine and event ids."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime, timedelta, timezone

import pytest
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, rule

from gridcore import DrEvent, EventStatus, IllegalTransition, InvalidInput, new_event_id
from gridcore.events import EVENT_ID, MAX_EVENT_DURATION

START = datetime(2025, 10, 20, 15, 0, tzinfo=UTC)
END = datetime(2025, 10, 20, 16, 0, tzinfo=UTC)


def event(**changes: object) -> DrEvent:
    fields: dict[str, object] = {
        "id": "evt-a1b2c3d4",
        "start_time": START,
        "end_time": END,
        "requested_reduction_kw": 10.0,
    }
    fields.update(changes)
    return DrEvent(**fields)  # type: ignore[arg-type]


# --- lifecycle ----------------------------------------------------------------


def test_new_event_is_scheduled_with_nothing_delivered() -> None:
    e = event()
    assert e.status is EventStatus.SCHEDULED
    assert e.actual_reduction_kw == 0.0
    assert (e.activated_at, e.ended_at) == (None, None)


def test_scheduled_active_completed() -> None:
    active = event().activate(START)
    assert active.status is EventStatus.ACTIVE
    assert active.activated_at == START
    done = active.complete(END)
    assert done.status is EventStatus.COMPLETED
    assert (done.activated_at, done.ended_at) == (START, END)


def test_scheduled_cancelled() -> None:
    at = START - timedelta(minutes=5)
    cancelled = event().cancel(at)
    assert cancelled.status is EventStatus.CANCELLED
    assert cancelled.ended_at == at
    assert cancelled.activated_at is None


def test_active_stopped() -> None:
    at = START + timedelta(minutes=20)
    stopped = event().activate(START).stop(at)
    assert stopped.status is EventStatus.STOPPED
    assert stopped.ended_at == at


def test_transitions_return_new_events_and_leave_the_original_alone() -> None:
    scheduled = event()
    scheduled.activate(START)
    assert scheduled.status is EventStatus.SCHEDULED


ACTIONS: dict[str, Callable[[DrEvent, datetime], DrEvent]] = {
    "activate": DrEvent.activate,
    "complete": DrEvent.complete,
    "stop": DrEvent.stop,
    "cancel": DrEvent.cancel,
}
TARGET = {
    "activate": EventStatus.ACTIVE,
    "complete": EventStatus.COMPLETED,
    "stop": EventStatus.STOPPED,
    "cancel": EventStatus.CANCELLED,
}
# The lifecycle, written out independently of gridcore.events.TRANSITIONS.
LEGAL = {
    (EventStatus.SCHEDULED, "activate"),
    (EventStatus.SCHEDULED, "cancel"),
    (EventStatus.ACTIVE, "complete"),
    (EventStatus.ACTIVE, "stop"),
}
ILLEGAL = [
    (status, action)
    for status in EventStatus
    for action in ACTIONS
    if (status, action) not in LEGAL
]


@pytest.mark.parametrize(("status", "action"), ILLEGAL)
def test_every_illegal_transition_raises(status: EventStatus, action: str) -> None:
    e = replace(event(), status=status)
    with pytest.raises(IllegalTransition) as error:
        ACTIONS[action](e, START)
    assert error.value.event_id == "evt-a1b2c3d4"
    assert error.value.current == status.value
    assert error.value.target == TARGET[action].value


def test_illegal_transition_count() -> None:
    # 5 states x 4 actions, 4 of them legal.
    assert len(ILLEGAL) == 16


@pytest.mark.parametrize(
    ("status", "final"),
    [
        (EventStatus.SCHEDULED, False),
        (EventStatus.ACTIVE, False),
        (EventStatus.COMPLETED, True),
        (EventStatus.CANCELLED, True),
        (EventStatus.STOPPED, True),
    ],
)
def test_final_states(status: EventStatus, final: bool) -> None:
    assert status.is_final is final


def test_status_values_are_the_wire_strings() -> None:
    assert [s.value for s in EventStatus] == [
        "scheduled",
        "active",
        "completed",
        "cancelled",
        "stopped",
    ]


# --- time helpers ---------------------------------------------------------------


def test_is_due_only_for_a_scheduled_event_whose_start_has_come() -> None:
    e = event()
    assert not e.is_due(START - timedelta(seconds=1))
    assert e.is_due(START)
    assert not e.activate(START).is_due(START)


def test_is_over_only_for_an_active_event_whose_end_has_come() -> None:
    active = event().activate(START)
    assert not active.is_over(END - timedelta(seconds=1))
    assert active.is_over(END)
    assert not event().is_over(END)


def test_duration_and_remaining() -> None:
    e = event()
    assert e.duration == timedelta(hours=1)
    assert e.remaining(START - timedelta(hours=3)) == timedelta(hours=1)
    assert e.remaining(START + timedelta(minutes=15)) == timedelta(minutes=45)
    assert e.remaining(END + timedelta(hours=1)) == timedelta(0)


# --- validation -----------------------------------------------------------------


def test_end_must_be_after_start() -> None:
    with pytest.raises(InvalidInput) as error:
        event(end_time=START)
    assert error.value.field == "endTime"
    with pytest.raises(InvalidInput):
        event(start_time=END, end_time=START)


@pytest.mark.parametrize("field", ["start_time", "end_time"])
def test_naive_datetimes_are_rejected(field: str) -> None:
    naive = (START if field == "start_time" else END).replace(tzinfo=None)
    with pytest.raises(InvalidInput) as error:
        event(**{field: naive})
    assert error.value.field == {"start_time": "startTime", "end_time": "endTime"}[field]


def test_other_timezones_are_accepted_and_compared_as_instants() -> None:
    paris = timezone(timedelta(hours=2))
    e = event(start_time=datetime(2025, 10, 20, 17, 0, tzinfo=paris), end_time=END)
    assert e.duration == timedelta(hours=1)


@pytest.mark.parametrize("kw", [0.0, -1.0, math.nan, math.inf, -math.inf, True, "5"])
def test_requested_reduction_must_be_a_positive_finite_number(kw: object) -> None:
    with pytest.raises(InvalidInput) as error:
        event(requested_reduction_kw=kw)
    assert error.value.field == "requestedReductionKw"


def test_small_and_integer_requests_are_fine() -> None:
    assert event(requested_reduction_kw=0.001).requested_reduction_kw == 0.001
    assert event(requested_reduction_kw=5).requested_reduction_kw == 5


def test_event_may_last_at_most_the_maximum_duration() -> None:
    assert event(end_time=START + MAX_EVENT_DURATION).duration == MAX_EVENT_DURATION
    with pytest.raises(InvalidInput) as error:
        event(end_time=START + MAX_EVENT_DURATION + timedelta(seconds=1))
    assert error.value.field == "endTime"


@pytest.mark.parametrize("kw", [-0.5, math.nan, math.inf])
def test_actual_reduction_must_be_finite_and_not_negative(kw: float) -> None:
    with pytest.raises(InvalidInput) as error:
        event().with_actual_reduction(kw)
    assert error.value.field == "actualReductionKw"


def test_with_actual_reduction() -> None:
    assert event().with_actual_reduction(4.25).actual_reduction_kw == 4.25


# --- ids ------------------------------------------------------------------------


def test_new_event_id_is_evt_and_eight_hex() -> None:
    assert new_event_id("a1b2c3d4") == "evt-a1b2c3d4"


@pytest.mark.parametrize(
    "hex8", ["A1B2C3D4", "a1b2c3d", "a1b2c3d45", "g1b2c3d4", "", "a1b2-3d4", "a1b2c3d4\n"]
)
def test_new_event_id_refuses_anything_but_eight_lowercase_hex(hex8: str) -> None:
    with pytest.raises(ValueError, match="8 lowercase hex"):
        new_event_id(hex8)


def test_event_id_pattern_is_anchored_at_both_ends() -> None:
    assert EVENT_ID.match("evt-0123abcd")
    assert not EVENT_ID.match("evt-0123abcd\n")
    assert not EVENT_ID.match("evt-0123abcde")


# --- the lifecycle as a state machine --------------------------------------------

REFERENCE: dict[tuple[EventStatus, str], EventStatus] = {
    (EventStatus.SCHEDULED, "activate"): EventStatus.ACTIVE,
    (EventStatus.SCHEDULED, "cancel"): EventStatus.CANCELLED,
    (EventStatus.ACTIVE, "complete"): EventStatus.COMPLETED,
    (EventStatus.ACTIVE, "stop"): EventStatus.STOPPED,
}


class EventLifecycle(RuleBasedStateMachine):
    """Random sequences of activate / complete / stop / cancel against a
    reference model of the lifecycle."""

    @initialize(
        hex8=st.text("0123456789abcdef", min_size=8, max_size=8),
        kw=st.floats(min_value=0.001, max_value=1e6, allow_nan=False),
        minutes=st.integers(1, 7 * 24 * 60),
    )
    def create(self, hex8: str, kw: float, minutes: int) -> None:
        self.now = START - timedelta(hours=1)
        self.event = DrEvent(
            id=new_event_id(hex8),
            start_time=START,
            end_time=START + timedelta(minutes=minutes),
            requested_reduction_kw=kw,
        )
        self.model = EventStatus.SCHEDULED
        self.final: DrEvent | None = None

    def _apply(self, action: str, seconds: int) -> None:
        self.now += timedelta(seconds=seconds)
        before = self.event
        expected = REFERENCE.get((self.model, action))
        if expected is None:
            with pytest.raises(IllegalTransition):
                ACTIONS[action](self.event, self.now)
            return
        self.event = ACTIONS[action](self.event, self.now)
        self.model = expected
        # Everything but the lifecycle fields is carried over unchanged.
        assert (
            replace(
                self.event,
                status=before.status,
                activated_at=before.activated_at,
                ended_at=before.ended_at,
            )
            == before
        )
        if action == "activate":
            assert self.event.activated_at == self.now
        else:
            assert self.event.ended_at == self.now
        if self.model.is_final:
            self.final = self.event

    @rule(seconds=st.integers(0, 3600))
    def activate(self, seconds: int) -> None:
        self._apply("activate", seconds)

    @rule(seconds=st.integers(0, 3600))
    def complete(self, seconds: int) -> None:
        self._apply("complete", seconds)

    @rule(seconds=st.integers(0, 3600))
    def stop(self, seconds: int) -> None:
        self._apply("stop", seconds)

    @rule(seconds=st.integers(0, 3600))
    def cancel(self, seconds: int) -> None:
        self._apply("cancel", seconds)

    @invariant()
    def status_matches_the_model(self) -> None:
        assert self.event.status is self.model

    @invariant()
    def final_states_never_change(self) -> None:
        if self.final is not None:
            assert self.event == self.final
            assert self.event.status.is_final

    @invariant()
    def ended_only_when_final(self) -> None:
        assert (self.event.ended_at is not None) == self.event.status.is_final


EventLifecycle.TestCase.settings = settings(max_examples=150, stateful_step_count=12, deadline=None)
TestEventLifecycle = EventLifecycle.TestCase
