"""Topic building, shared-subscription prefixing and routing."""

from __future__ import annotations

import pytest

from adapters.mqtt.topics import (
    ACK_FILTER,
    LOADS_FILTER,
    METERING,
    SHADOW_UPDATE_FILTER,
    MessageKind,
    Route,
    TopicRouter,
    ack_topic,
    classify_extra_topic,
    command_topic,
    match_levels,
    shadow_update_topic,
    shared,
    unshared,
)


def test_build() -> None:
    assert command_topic("ven-001") == "ven/cmd/ven-001"
    assert ack_topic("ven-001") == "ven/ack/ven-001"
    assert shadow_update_topic("v1") == "$aws/things/v1/shadow/update"
    for bad in ("", "a/b", "a+", "#"):
        with pytest.raises(ValueError, match="topic level"):
            command_topic(bad)


def test_shared_prefix() -> None:
    assert shared(METERING, "gridcore") == "$share/gridcore/volttron/metering"
    assert shared(METERING, None) == METERING
    assert unshared("$share/gridcore/ven/ack/+") == ACK_FILTER
    with pytest.raises(ValueError, match="share group"):
        shared(METERING, "a/b")


def test_match_levels() -> None:
    assert match_levels(ACK_FILTER, "ven/ack/ven-9") == ["ven-9"]
    assert match_levels(ACK_FILTER, "ven/ack/ven-9/x") is None
    assert match_levels(SHADOW_UPDATE_FILTER, "$aws/things/v/shadow/update") == ["v"]
    assert match_levels("+/ack/+", "$aws/ack/x") is None
    assert match_levels("ven/#", "ven/ack/x") == []
    assert match_levels(METERING, METERING) == []


def test_router() -> None:
    router = TopicRouter(
        [
            Route(shared(METERING, "g"), MessageKind.TELEMETRY),
            Route(shared(ACK_FILTER, "g"), MessageKind.ACK),
            Route(SHADOW_UPDATE_FILTER, MessageKind.SHADOW),
            Route(LOADS_FILTER, MessageKind.LOADS),
        ]
    )
    telemetry = router.route(METERING)
    assert telemetry is not None
    assert telemetry.kind is MessageKind.TELEMETRY
    assert telemetry.ven_id is None
    ack = router.route("ven/ack/v7")
    assert ack is not None
    assert (ack.kind, ack.ven_id) == (MessageKind.ACK, "v7")
    shadow = router.route("$aws/things/v7/shadow/update")
    assert shadow is not None
    assert shadow.kind is MessageKind.SHADOW
    assert router.route("ven/cmd/v7") is None


def test_classify_extra_topic() -> None:
    assert classify_extra_topic("ven/telemetry/+") is MessageKind.TELEMETRY
    assert classify_extra_topic("ven/ack/+") is MessageKind.ACK
    assert classify_extra_topic("$share/g/ven/loads/+") is MessageKind.LOADS
    assert classify_extra_topic("site/metering") is MessageKind.TELEMETRY
