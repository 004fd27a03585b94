"""How VENs took part in an event: per VEN, per event, per curtailed circuit."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

from hypothesis import given
from hypothesis import strategies as st

from gridcore import CircuitCurtailment, Command, CommandOp, CommandState, DrEvent, EventStatus
from gridcore.correlation import delivered_w
from gridcore.participation import (
    Around,
    ResponseStats,
    participation,
    reduction_instant,
    response_stats,
    with_readings,
)
from gridcore.quantities import to_watts
from gridcore.telemetry import LoadSample, TelemetrySample

T0 = datetime(2025, 10, 20, 15, 0, tzinfo=UTC)
EVENT = "evt-a1b2c3d4"


def command(
    n: int,
    ven_id: str,
    state: CommandState,
    *,
    shed_kw: float = 5.0,
    delivered_kw: float | None = None,
    round_trip: timedelta | None = None,
    op: CommandOp = CommandOp.EVENT,
) -> Command:
    sent = T0 + timedelta(minutes=n)
    answered = state in (CommandState.ACKED, CommandState.REJECTED)
    if answered and round_trip is None:
        round_trip = timedelta(seconds=1)
    return Command(
        correlation_id=f"{EVENT}-{n:08x}",
        ven_id=ven_id,
        op=op,
        created_at=sent,
        event_id=EVENT,
        shed_kw=shed_kw if op is CommandOp.EVENT else None,
        state=state,
        attempts=0 if state in (CommandState.PENDING, CommandState.CANCELLED) else 1,
        first_sent_at=None if state is CommandState.PENDING else sent,
        acked_at=sent + round_trip if answered and round_trip is not None else None,
        ack_status={CommandState.ACKED: "accepted", CommandState.REJECTED: "busy"}.get(state),
        delivered_kw=delivered_kw
        if state is CommandState.ACKED
        else 0.0
        if state is CommandState.REJECTED
        else None,
    )


# --- per VEN ---------------------------------------------------------------------


def test_each_ven_shows_its_answer_and_what_it_delivers() -> None:
    shown = participation(
        [
            command(0, "ven-a", CommandState.ACKED, delivered_kw=4.2),
            command(1, "ven-b", CommandState.REJECTED),
            command(2, "ven-c", CommandState.SENT),
            command(3, "ven-d", CommandState.TIMED_OUT),
            command(4, "ven-e", CommandState.PENDING),
            command(5, "ven-f", CommandState.CANCELLED),
        ]
    )
    assert {v: (p.status, p.shed_kw) for v, p in shown.items()} == {
        "ven-a": ("accepted", 4.2),
        "ven-b": ("rejected", 0.0),  # it said no: nothing delivered, and that is known
        "ven-c": ("sent", None),  # no answer yet: unknown, not 0
        "ven-d": ("timed_out", None),
        "ven-e": ("pending", None),
        "ven-f": ("cancelled", None),
    }


def test_a_refused_top_up_leaves_what_the_ven_accepted_before() -> None:
    shown = participation(
        [
            command(0, "ven-a", CommandState.ACKED, delivered_kw=3.0),
            command(1, "ven-a", CommandState.REJECTED, shed_kw=6.0),
        ]
    )
    assert shown["ven-a"].status == "rejected" and shown["ven-a"].shed_kw == 3.0


def test_an_accepted_answer_without_a_figure_delivers_what_was_asked() -> None:
    shown = participation([command(0, "ven-a", CommandState.ACKED, shed_kw=2.5)])
    assert shown["ven-a"].shed_kw == 2.5  # the ledger's rule for actualReductionKw


STATES = st.sampled_from(list(CommandState))


@given(
    st.lists(
        st.tuples(
            st.sampled_from(["ven-a", "ven-b", "ven-c"]),
            STATES,
            st.floats(0, 50).map(lambda kw: round(kw, 3)),
        ),
        max_size=12,
    )
)
def test_what_the_vens_deliver_adds_up_to_the_event_s_actual_reduction(
    history: list[tuple[str, CommandState, float]],
) -> None:
    commands = [
        command(n, ven, state, shed_kw=kw, delivered_kw=kw / 2)
        for n, (ven, state, kw) in enumerate(history)
    ]
    shown = participation(commands)
    total = sum(to_watts(p.shed_kw) for p in shown.values() if p.shed_kw is not None)
    assert total == delivered_w(commands)


# --- per event -------------------------------------------------------------------


def test_response_stats_count_accepting_vens_and_average_measured_round_trips() -> None:
    stats = response_stats(
        [
            command(0, "ven-a", CommandState.ACKED, round_trip=timedelta(milliseconds=120)),
            command(1, "ven-a", CommandState.ACKED, round_trip=timedelta(milliseconds=80)),
            command(2, "ven-b", CommandState.REJECTED, round_trip=timedelta(milliseconds=400)),
            command(3, "ven-c", CommandState.SENT),
            command(4, "ven-a", CommandState.ACKED, op=CommandOp.RESTORE),  # not the event's
        ]
    )
    assert stats == ResponseStats(vens_responding=1, avg_response_ms=200.0)


def test_no_answer_yet_is_no_response_time_not_zero() -> None:
    assert response_stats([command(0, "ven-a", CommandState.SENT)]) == ResponseStats(0, None)
    assert response_stats([]) == ResponseStats(0, None)


def event(status: EventStatus, ended_at: datetime | None = None) -> DrEvent:
    return DrEvent(
        id=EVENT,
        start_time=T0,
        end_time=T0 + timedelta(hours=1),
        requested_reduction_kw=10.0,
        status=status,
        ended_at=ended_at,
    )


def test_an_event_shows_its_reduction_now_while_it_runs_and_when_it_ended_after() -> None:
    running = T0 + timedelta(minutes=10)
    assert reduction_instant(event(EventStatus.ACTIVE), running) == running
    assert reduction_instant(event(EventStatus.SCHEDULED), T0 - timedelta(days=1)) == T0 - (
        timedelta(days=1)
    )
    stopped = T0 + timedelta(minutes=20)
    later = T0 + timedelta(days=2)
    assert reduction_instant(event(EventStatus.STOPPED, stopped), later) == stopped
    # Not yet completed by the dispatcher: its end time.
    assert reduction_instant(event(EventStatus.ACTIVE), later) == T0 + timedelta(hours=1)


# --- per curtailed circuit -------------------------------------------------------


def sample(at: datetime, *loads: LoadSample) -> TelemetrySample:
    return TelemetrySample(ven_id="ven-a", timestamp=at, loads=loads)


BEFORE = sample(
    T0 - timedelta(seconds=3),
    LoadSample("ev1", name="EV Charger", current_power_kw=7.2, breaker_amps=40, critical=False),
)
AFTER = sample(T0 + timedelta(seconds=2), LoadSample("ev1", current_power_kw=1.2))


def test_a_short_ack_is_completed_from_the_telemetry_around_it() -> None:
    short = CircuitCurtailment(id="ev1", curtailed_kw=6.0)
    assert with_readings(short, Around(BEFORE, AFTER)) == CircuitCurtailment(
        id="ev1",
        curtailed_kw=6.0,
        name="EV Charger",
        breaker_amps=40,
        original_kw=7.2,
        final_kw=1.2,
        critical=False,
    )


def test_what_the_ack_says_wins_over_telemetry() -> None:
    # 002's long shape: id, curtailed, name, breaker, original, final, critical
    long = CircuitCurtailment("ev1", 6.0, "Garage EV", 50, 8.0, 2.0, True)
    assert with_readings(long, Around(BEFORE, AFTER)) == long


def test_what_no_report_says_stays_unknown() -> None:
    short = CircuitCurtailment(id="dryer", curtailed_kw=3.0, name="Dryer")
    assert with_readings(short, Around(BEFORE, AFTER)) == short  # the samples lack it
    assert with_readings(short, Around()) == short
    only_after = with_readings(replace(short, id="ev1"), Around(after=AFTER))
    assert only_after.original_kw is None and only_after.final_kw == 1.2
