"""Log lines an operator reads: a restore ACK names the event its command
belongs to (restore ACKs carry no event id), and the MQTT connect line never
shows an empty client id."""

from __future__ import annotations

import logging
from datetime import timedelta

import pytest
from tests.unit.test_services import _event, _send_event_command, clock, uow

from adapters.memory.repositories import InMemoryUnitOfWorkFactory
from adapters.mqtt.transport import AiomqttTransport, MqttConnection
from adapters.system import ManualClock, SequentialIds
from gridcore import CommandOp, VenAck, services

__all__ = ["clock", "uow"]  # fixtures


async def test_a_restore_ack_is_logged_with_its_event(
    uow: InMemoryUnitOfWorkFactory, clock: ManualClock, caplog: pytest.LogCaptureFixture
) -> None:
    event = await _event(uow, clock, SequentialIds())
    await _send_event_command(uow, event.id, "ven-1", clock, "0000aaaa")
    async with uow() as tx:
        await tx.events.save_status(event.activate(clock.now()), event.status)
        await tx.commit()
    await services.stop_event(uow, clock, event.id)
    async with uow() as tx:
        (restore,) = [c for c in await tx.commands.for_event(event.id) if c.op is CommandOp.RESTORE]
        await tx.commands.update_many([restore.mark_sent(clock.now(), timedelta(seconds=30))])
        await tx.commit()
    ack = VenAck(ven_id="ven-1", op="restore", status="success", timestamp=clock.now())
    with caplog.at_level(logging.DEBUG, logger="gridcore"):
        await services.record_ack(uow, clock, ack)
    (line,) = [r.getMessage() for r in caplog.records if r.getMessage().startswith("ACK ")]
    assert (
        line == f"ACK matched from ven-1 for {restore.correlation_id} (event {event.id}): success"
    )


@pytest.mark.mosquitto
async def test_the_connect_line_names_a_broker_chosen_id(
    mosquitto_address: tuple[str, int], caplog: pytest.LogCaptureFixture
) -> None:
    host, port = mosquitto_address
    with caplog.at_level(logging.INFO, logger="adapters.mqtt.transport"):
        transport = await AiomqttTransport.connect(MqttConnection(host=host, port=port))
        await transport.close()
    (line,) = [r.getMessage() for r in caplog.records if r.getMessage().startswith("connected")]
    assert line == f"connected to {host}:{port} with an id the broker picks"
