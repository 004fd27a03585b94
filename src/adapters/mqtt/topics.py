"""Topic names of the MQTT contract (seed document 004), building and parsing.

A subscription filter with one ``+`` level names the VEN at that level
(``ven/ack/+`` -> ``ven/ack/{venId}``); a filter without ``+`` carries no VEN
in its topics (``volttron/metering``: the VEN is in the payload).
"""

from __future__ import annotations

import enum
from collections.abc import Iterable
from dataclasses import dataclass

METERING = "volttron/metering"
ACK_FILTER = "ven/ack/+"
SHADOW_UPDATE_FILTER = "$aws/things/+/shadow/update"
LOADS_FILTER = "ven/loads/+"
TELEMETRY_FILTER = "ven/telemetry/+"
ALERTS_FILTER = "ven/alerts/+"  # 004's future topics, gridcore's payloads (docs/mqtt-commands.md)
SHARE_PREFIX = "$share/"


class MessageKind(enum.StrEnum):
    TELEMETRY = "telemetry"
    ACK = "ack"
    SHADOW = "shadow"
    LOADS = "loads"
    STATUS = "status"
    ALERT = "alert"


def _ven_level(ven_id: str) -> str:
    if not ven_id or "/" in ven_id or "+" in ven_id or "#" in ven_id or "\x00" in ven_id:
        raise ValueError(f"{ven_id!r} cannot be used as a topic level")
    return ven_id


def command_topic(ven_id: str) -> str:
    return f"ven/cmd/{_ven_level(ven_id)}"


def config_topic(ven_id: str) -> str:
    return f"ven/config/{_ven_level(ven_id)}"


def alerts_topic(ven_id: str) -> str:
    return f"ven/alerts/{_ven_level(ven_id)}"


def ack_topic(ven_id: str) -> str:
    return f"ven/ack/{_ven_level(ven_id)}"


def shadow_update_topic(ven_id: str) -> str:
    return f"$aws/things/{_ven_level(ven_id)}/shadow/update"


def loads_topic(ven_id: str) -> str:
    return f"ven/loads/{_ven_level(ven_id)}"


def shared(topic_filter: str, group: str | None) -> str:
    """``$share/<group>/<filter>`` (MQTT 5 shared subscription) when a group
    is given, else the filter unchanged."""
    if not group:
        return topic_filter
    if "/" in group or "+" in group or "#" in group:
        raise ValueError(f"share group {group!r} must be one level without wildcards")
    return f"{SHARE_PREFIX}{group}/{topic_filter}"


def unshared(topic_filter: str) -> str:
    """The filter proper of a possibly shared subscription."""
    if topic_filter.startswith(SHARE_PREFIX):
        return topic_filter[len(SHARE_PREFIX) :].partition("/")[2]
    return topic_filter


def match_levels(topic_filter: str, topic: str) -> list[str] | None:
    """The levels matched by ``+`` wildcards (in order) if ``topic`` matches
    ``topic_filter``, else None. ``#`` contributes nothing. Wildcard-led
    filters do not match ``$`` topics (MQTT 4.7.2)."""
    f_levels = unshared(topic_filter).split("/")
    t_levels = topic.split("/")
    if t_levels[0].startswith("$") and f_levels[0] in ("+", "#"):
        return None
    captured: list[str] = []
    for i, level in enumerate(f_levels):
        if level == "#":
            return captured
        if i >= len(t_levels):
            return None
        if level == "+":
            captured.append(t_levels[i])
        elif level != t_levels[i]:
            return None
    return captured if len(f_levels) == len(t_levels) else None


@dataclass(frozen=True, slots=True)
class Route:
    topic_filter: str
    kind: MessageKind


@dataclass(frozen=True, slots=True)
class Routed:
    kind: MessageKind
    ven_id: str | None  # the VEN named by the topic, if the topic names one


class TopicRouter:
    """Which handler a topic goes to. Exact topics are found with one dict
    lookup (the metering hot path); wildcard routes are tried in order."""

    def __init__(self, routes: Iterable[Route]) -> None:
        self._exact: dict[str, Routed] = {}  # one answer shared by every message
        self._wild: list[Route] = []
        for route in routes:
            proper = unshared(route.topic_filter)
            if "+" in proper or "#" in proper:
                self._wild.append(Route(proper, route.kind))
            else:
                self._exact.setdefault(proper, Routed(route.kind, None))

    def route(self, topic: str) -> Routed | None:
        routed = self._exact.get(topic)
        if routed is not None:
            return routed
        for route in self._wild:
            captured = match_levels(route.topic_filter, topic)
            if captured is not None:
                return Routed(route.kind, captured[0] if captured else None)
        return None


def classify_extra_topic(topic_filter: str) -> MessageKind:
    """The kind of an extra topic from ``MQTT_TOPICS``: by the documents'
    patterns, telemetry otherwise (the old backend treated extras as metering)."""
    proper = unshared(topic_filter)
    for pattern, kind in (
        (ACK_FILTER, MessageKind.ACK),
        (SHADOW_UPDATE_FILTER, MessageKind.SHADOW),
        (LOADS_FILTER, MessageKind.LOADS),
        (ALERTS_FILTER, MessageKind.ALERT),
    ):
        probe = pattern.replace("+", "x")
        if match_levels(proper, probe) is not None or proper == pattern:
            return kind
    return MessageKind.TELEMETRY
