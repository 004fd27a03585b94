"""A fleet-sized batch logs a line per event, not one per command or ACK
(100,000 lines were most of a second of the worker's time); a small one still
logs each command and ACK with its correlationId."""

from __future__ import annotations

import logging
from datetime import timedelta

import pytest
from tests.unit.test_dispatch import Fleet, fleet

from gridcore import VenAck, services

__all__ = ["fleet"]  # fixture


def _lines(caplog: pytest.LogCaptureFixture, level: int, start: str) -> list[str]:
    return [
        r.getMessage()
        for r in caplog.records
        if r.levelno == level and r.getMessage().startswith(start)
    ]


async def test_a_large_batch_logs_one_line_per_event(
    fleet: Fleet, caplog: pytest.LogCaptureFixture
) -> None:
    vens = [f"ven-{n:03d}" for n in range(25)]
    for ven_id in vens:
        await fleet.report(ven_id, 2.0)
    event_id = await fleet.event(float(len(vens)))
    with caplog.at_level(logging.DEBUG, logger="gridcore"):
        await fleet.dispatcher.run_once()
        acks = [
            VenAck(
                ven_id=c.ven_id, op="event", status="accepted", timestamp=fleet.clock.now(),
                correlation_id=c.correlation_id, event_id=event_id, actual_shed_kw=c.shed_kw,
            )
            for c in fleet.publisher.sent
        ]  # fmt: skip
        await services.record_acks(fleet.uow, fleet.clock, acks)
    (sent,) = _lines(caplog, logging.INFO, "sent ")
    assert sent.startswith(f"sent {len(vens)} event command(s) (event {event_id}), 0 of them again")
    assert len(_lines(caplog, logging.DEBUG, "sent event ")) == len(vens)
    assert _lines(caplog, logging.INFO, f"{len(vens)} ACK") == [
        f"{len(vens)} ACK(s) matched (event {event_id}): accepted"
    ]
    assert len(_lines(caplog, logging.DEBUG, "ACK matched")) == len(vens)


async def test_a_small_batch_logs_a_summary_and_each_command_at_debug(
    fleet: Fleet, caplog: pytest.LogCaptureFixture
) -> None:
    """An event whose VENs are sent (and answer) a few at a time logs a line
    per pass at INFO, not one per VEN: 10,000 VENs must not be 20,000 lines."""
    for ven_id in ("ven-1", "ven-2"):
        await fleet.report(ven_id, 2.0)
    event_id = await fleet.event(4.0)
    with caplog.at_level(logging.DEBUG, logger="gridcore"):
        await fleet.dispatcher.run_once()
        for c in fleet.publisher.sent:
            ack = VenAck(
                ven_id=c.ven_id, op="event", status="accepted", timestamp=fleet.clock.now(),
                correlation_id=c.correlation_id, event_id=event_id, actual_shed_kw=c.shed_kw,
            )  # fmt: skip
            await services.record_acks(fleet.uow, fleet.clock, [ack])
    (sent,) = _lines(caplog, logging.INFO, "sent ")
    assert sent.startswith(f"sent 2 event command(s) (event {event_id}), 0 of them again")
    assert sorted(_lines(caplog, logging.DEBUG, "sent event ")) == sorted(
        f"sent event {c.correlation_id} to {c.ven_id} (attempt 1)" for c in fleet.publisher.sent
    )
    assert (
        _lines(caplog, logging.INFO, "1 ACK")
        == [f"1 ACK(s) matched (event {event_id}): accepted"] * 2
    )
    assert not _lines(caplog, logging.INFO, "ACK matched")
    assert len(_lines(caplog, logging.DEBUG, "ACK matched")) == 2


async def test_a_fleet_of_retries_logs_one_line_per_event(
    fleet: Fleet, caplog: pytest.LogCaptureFixture
) -> None:
    vens = [f"ven-{n:03d}" for n in range(21)]
    for ven_id in vens:
        await fleet.report(ven_id, 2.0)
    event_id = await fleet.event(float(len(vens)))
    await fleet.dispatcher.run_once()
    fleet.clock.advance(timedelta(seconds=31))
    for ven_id in vens:  # still online
        await fleet.report(ven_id, 2.0)
    with caplog.at_level(logging.INFO, logger="gridcore"):
        report = await fleet.dispatcher.run_once()
    assert report.retried == len(vens)
    assert _lines(caplog, logging.INFO, f"{len(vens)} command") == [
        f"{len(vens)} command(s) of event {event_id}: no ACK yet; sent again"
    ]
    assert not _lines(caplog, logging.INFO, "command ")
