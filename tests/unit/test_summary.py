"""The fleet overview's rules (gridcore.summary) and the VEN ping use case,
over the in-memory adapters."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from adapters.memory.repositories import InMemoryUnitOfWorkFactory
from adapters.system import ManualClock, SequentialIds
from gridcore import services
from gridcore.correlation import Command, CommandOp, CommandState, VenAck, apply_ack
from gridcore.errors import NotFound
from gridcore.fleet import ping_ven
from gridcore.summary import current_power_kw, newest_answered, summarize
from gridcore.telemetry import TelemetrySample
from gridcore.ven import Load, Location, Ven

T0 = datetime(2025, 10, 20, 15, 0, tzinfo=UTC)
TIMEOUT = timedelta(seconds=30)


def _answered(cid: str, ven_id: str, sent: datetime, acked: datetime) -> Command:
    command = Command(cid, ven_id, CommandOp.PING, sent).mark_sent(sent, TIMEOUT)
    ack = VenAck(ven_id, "ping", "pong", acked, correlation_id=cid)
    result = apply_ack(command, ack, acked).command
    assert result is not None
    return result


def test_newest_answered_is_the_last_ack_to_arrive_whatever_its_op() -> None:
    early = _answered("cmd-00000001", "ven-1", T0, T0 + timedelta(seconds=5))
    # Sent earlier, answered later: it is the newest answer.
    late = _answered("cmd-00000000", "ven-1", T0 - timedelta(seconds=1), T0 + timedelta(seconds=9))
    unanswered = Command("cmd-00000002", "ven-1", CommandOp.EVENT, T0 + timedelta(seconds=20))
    other = _answered("cmd-00000003", "ven-2", T0, T0 + timedelta(milliseconds=40))
    newest = newest_answered([early, late, unanswered.mark_sent(T0, TIMEOUT), other])
    assert newest == {"ven-1": late, "ven-2": other}
    assert newest["ven-1"].response_time == timedelta(seconds=10)


def test_an_arrival_tie_goes_to_the_greater_correlation_id() -> None:
    a = _answered("cmd-0000000a", "ven-1", T0, T0 + timedelta(seconds=1))
    b = _answered("cmd-0000000b", "ven-1", T0, T0 + timedelta(seconds=1))
    assert newest_answered([b, a])["ven-1"] is b
    assert newest_answered([a, b])["ven-1"] is b


def test_a_refusal_is_an_answer_too() -> None:
    command = Command("cmd-00000001", "ven-1", CommandOp.EVENT, T0).mark_sent(T0, TIMEOUT)
    ack = VenAck("ven-1", "event", "rejected", T0, correlation_id="cmd-00000001")
    refused = apply_ack(command, ack, T0 + timedelta(milliseconds=80)).command
    assert refused is not None and refused.state is CommandState.REJECTED
    assert newest_answered([refused])["ven-1"].response_time == timedelta(milliseconds=80)


def test_current_power_is_the_panel_else_the_loads() -> None:
    loads = [Load("a", current_power_kw=1.2345), Load("b", current_power_kw=2.0)]
    panel = TelemetrySample("ven-1", T0, used_power_kw=8.2)
    silent_panel = TelemetrySample("ven-1", T0)
    assert current_power_kw(panel, loads) == 8.2
    assert current_power_kw(silent_panel, loads) == 3.235  # to the watt
    assert current_power_kw(None, []) == 0.0


def test_summarize_counts_configured_loads_the_ven_stopped_reporting() -> None:
    configured = (Load("gone", shed_capability_kw=2.5), Load("a", shed_capability_kw=9.0))
    ven = Ven(
        "ven-1",
        "Home",
        location=Location(37.42, -122.08),
        registered_at=T0,
        last_seen_at=T0 + timedelta(seconds=5),
        loads=configured,
    )
    reported = [
        Load("a", shed_capability_kw=1.0, current_power_kw=1.0),  # the report wins over config
        Load("fridge", shed_capability_kw=0.4, critical=True),
        Load("off", shed_capability_kw=3.0, enabled=False),
    ]
    answered = _answered("cmd-00000001", "ven-1", T0, T0 + timedelta(milliseconds=120))
    line = summarize(ven, reported, None, answered)
    assert line.shed_availability_kw == 3.5  # a (as reported) + gone (configured)
    assert line.current_power_kw == 1.0
    assert line.round_trip == timedelta(milliseconds=120)
    assert line.location == Location(37.42, -122.08)
    assert line.connectivity(T0 + timedelta(seconds=30), timedelta(seconds=60)).value == "online"
    assert summarize(ven, [], None, None).round_trip is None


async def test_ping_is_queued_in_the_outbox() -> None:
    uow = InMemoryUnitOfWorkFactory()
    clock, ids = ManualClock(T0), SequentialIds()
    await services.register_ven(uow, clock, ven_id="ven-1", name="Home")
    command = await ping_ven(uow, clock, ids, ven_id="ven-1")
    assert command.op is CommandOp.PING and command.state is CommandState.PENDING
    assert command.correlation_id.startswith("cmd-") and command.event_id is None
    async with uow() as u:
        assert await u.commands.pending() == [command]
    with pytest.raises(NotFound):
        await ping_ven(uow, clock, ids, ven_id="ven-2")
