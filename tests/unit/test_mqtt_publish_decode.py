"""The transport reads PUBLISH packets itself (``_publish_fields``): the same
topic, payload, QoS and message id as paho's own decoder, MQTT 5 properties
skipped whatever they hold, and every packet it does not take (QoS 2, or one
paho refuses) left to paho."""

from __future__ import annotations

import struct

import pytest
from paho.mqtt._packet import decode_publish
from paho.mqtt.enums import MQTTProtocolVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from adapters.mqtt.transport import _publish_fields


def publish(topic: bytes, payload: bytes, qos: int, mid: int, props: bytes | None) -> bytes:
    """A PUBLISH packet's bytes after the fixed header; ``props`` None: MQTT 3.1.1."""
    body = struct.pack("!H", len(topic)) + topic
    if qos:
        body += struct.pack("!H", mid)
    if props is not None:
        body += props
    return body + payload


def properties(**values: object) -> bytes:
    props = Properties(PacketTypes.PUBLISH)  # type: ignore[no-untyped-call]
    for name, value in values.items():
        setattr(props, name, value)
    packed: bytes = props.pack()  # type: ignore[no-untyped-call]
    return packed


PAYLOAD = b'{"venId": "ven-1", "timestamp": 1720623600}'
CASES = [
    ("v5 QoS 1, no properties", 1, properties()),
    ("v5 QoS 0, no properties", 0, properties()),
    ("v5 QoS 1, properties", 1, properties(MessageExpiryInterval=60, ContentType="json")),
    ("v5 QoS 1, user properties", 1, properties(UserProperty=[("k", "v" * 200)] * 3)),
    ("v3.1.1 QoS 1", 1, None),
    ("v3.1.1 QoS 0", 0, None),
]


@pytest.mark.parametrize(("case", "qos", "props"), CASES, ids=[c[0] for c in CASES])
@pytest.mark.parametrize("payload", [PAYLOAD, b"", bytes(range(256)) * 40])
def test_fields_are_paho_s(case: str, qos: int, props: bytes | None, payload: bytes) -> None:
    topic = "volttron/metering/ünicode"
    header = 0x30 | (qos << 1) | 0x01  # retained
    data = publish(topic.encode(), payload, qos, 517, props)
    protocol = MQTTProtocolVersion.MQTTv311 if props is None else MQTTProtocolVersion.MQTTv5
    theirs = decode_publish(header, data, protocol)
    assert _publish_fields(header, data, props is not None) == (
        theirs.topic.decode(),
        theirs.payload,
        theirs.qos,
        theirs.mid,
    )


LEFT_TO_PAHO = [
    ("QoS 2", 0x34, publish(b"t", b"x", 2, 1, b"\x00")),
    ("empty topic", 0x32, publish(b"", b"x", 1, 1, b"\x00")),
    ("topic not UTF-8", 0x32, publish(b"\xff\xfe", b"x", 1, 1, b"\x00")),
    ("topic longer than the packet", 0x32, struct.pack("!H", 50) + b"short"),
    ("no message id", 0x32, struct.pack("!H", 1) + b"t"),
    ("properties longer than the packet", 0x32, publish(b"t", b"", 1, 1, b"\x05\x01")),
    ("properties' length never ends", 0x32, publish(b"t", b"", 1, 1, b"\xff\xff\xff\xff\x01")),
    ("nothing", 0x30, b""),
]


@pytest.mark.parametrize(("case", "header", "data"), LEFT_TO_PAHO, ids=[c[0] for c in LEFT_TO_PAHO])
def test_packets_it_does_not_take_go_to_paho(case: str, header: int, data: bytes) -> None:
    assert _publish_fields(header, data, True) is None
