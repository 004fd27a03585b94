"""Commands the backend sends on ``ven/cmd/{venId}`` (and configuration pushes
on ``ven/config/{venId}``), shaped exactly as the
documents show them (see docs/mqtt-commands.md), and the publisher that sends
them at QoS 1 over any :class:`gridcore.ports.MessageTransport`.

Key order follows the DR event flow document so that a payload compares
byte for byte with its example; JSON is compact (no spaces).
"""

from __future__ import annotations

import json
import logging
from typing import Any

from adapters.mqtt.topics import command_topic, config_topic
from gridcore.correlation import Command, CommandOp
from gridcore.ports import MessageTransport

log = logging.getLogger("adapters.mqtt.commands")

COMMAND_QOS = 1


def command_payload(command: Command) -> dict[str, Any]:
    """The JSON object for ``command``. Raises ``ValueError`` when a field the
    VEN needs is missing (an event without kW or duration, a load shed
    without load id)."""
    body: dict[str, Any] = {"op": command.op.value, "correlationId": command.correlation_id}
    body["venId"] = command.ven_id
    if command.op is CommandOp.EVENT:
        if command.event_id is None or command.shed_kw is None or command.duration_sec is None:
            raise ValueError(
                f"event command {command.correlation_id} needs event_id, shed_kw and duration_sec"
            )
        body["event_id"] = command.event_id
        body["shed_kw"] = float(command.shed_kw)
        body["duration_sec"] = int(command.duration_sec)
        body["data"] = {
            "event_id": command.event_id,
            "requestedReductionKw": float(command.shed_kw),
            "duration_s": int(command.duration_sec),
        }
    elif command.op is CommandOp.SHED_LOAD:
        if command.load_id is None or command.shed_kw is None:
            raise ValueError(
                f"shed_load command {command.correlation_id} needs load_id and shed_kw"
            )
        body["load_id"] = command.load_id
        body["shed_kw"] = float(command.shed_kw)
        if command.duration_sec is not None:
            body["duration_sec"] = int(command.duration_sec)
        if command.event_id is not None:
            body["event_id"] = command.event_id
    elif command.op is CommandOp.CONFIG:
        # ven/config/{venId} (gridcore.venconfig): the VEN's whole desired
        # load configuration; ``timestamp`` (004: every message has one) is
        # when it was queued, so a re-delivery is byte for byte the same.
        body["timestamp"] = int(command.created_at.timestamp())
        body["loads"] = json.loads(command.config) if command.config else []
    elif command.op is CommandOp.RESTORE and command.event_id is not None:
        # Not in the document's example; lets a VEN restore only what this event
        # shed. VENs that ignore unknown fields are unaffected.
        body["event_id"] = command.event_id
    return body


def encode_command(command: Command) -> bytes:
    return json.dumps(command_payload(command), separators=(",", ":")).encode()


class TransportCommandPublisher:
    """``CommandPublisher`` over any ``MessageTransport`` (aiomqtt or the
    in-memory broker): QoS 1 to ``ven/cmd/{venId}``, configuration pushes to
    ``ven/config/{venId}``. ``publish`` returns once the broker has the
    message and raises if it could not be handed over; the caller (the outbox
    relay) keeps the command pending and retries."""

    def __init__(self, transport: MessageTransport) -> None:
        self._transport = transport

    async def publish(self, command: Command) -> None:
        if command.op is CommandOp.CONFIG:
            topic = config_topic(command.ven_id)
        else:
            topic = command_topic(command.ven_id)
        await self._transport.publish(topic, encode_command(command), qos=COMMAND_QOS)
        log.debug("published %s %s to %s", command.op.value, command.correlation_id, topic)


# The design names adapters technology + role; over aiomqtt this is the same class.
AiomqttCommandPublisher = TransportCommandPublisher
