"""Command.credit: what an accepted ACK is credited, and the flag that says why
when it is not what the VEN reported (issue 11, item 3)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from gridcore.correlation import Command, CommandOp, VenAck, apply_ack
from gridcore.curtailment import CircuitCurtailment

T0 = datetime(2025, 10, 20, 15, 0, tzinfo=UTC)


def sent(shed_kw: float | None = 1.0, op: CommandOp = CommandOp.EVENT) -> Command:
    command = Command("evt-0000abcd-00000000", "v1", op, T0, "evt-0000abcd", shed_kw=shed_kw)
    return command.mark_sent(T0, timedelta(seconds=30))


def ack(kw: float | None, status: str = "accepted", *circuits: float) -> VenAck:
    curtailed = tuple(CircuitCurtailment(f"c{n}", kw) for n, kw in enumerate(circuits))
    return VenAck("v1", "event", status, T0, "evt-0000abcd-00000000", None, 1.0, kw, curtailed)


def test_more_than_asked_is_capped_and_flagged() -> None:
    match = apply_ack(sent(), ack(999999999.0), T0)
    assert match.command is not None and match.command.delivered_kw == 1.0
    assert match.flag == "capped: reported 999999999 kW, asked 1 kW"


def test_circuits_adding_up_to_more_than_asked_are_capped_and_flagged() -> None:
    match = apply_ack(sent(2.5), ack(None, "accepted", 2.0, 1.25), T0)
    assert match.command is not None and match.command.delivered_kw == 2.5
    assert match.flag == "capped: reported 3.25 kW, asked 2.5 kW"


def test_what_was_asked_or_less_is_credited_as_reported_without_a_flag() -> None:
    for kw in (1.0, 0.25, None):
        match = apply_ack(sent(), ack(kw), T0)
        assert match.flag is None
        assert match.command is not None and match.command.delivered_kw == kw


def test_a_refusal_is_credited_nothing_and_not_flagged() -> None:
    match = apply_ack(sent(), ack(50.0, "rejected"), T0)
    assert match.command is not None and match.command.delivered_kw == 0.0
    assert match.flag is None
