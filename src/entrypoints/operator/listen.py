"""``gridcore listen``: what goes over the broker, one readable line a message
(the documents' monitoring scripts, ``ven_telemetry_listen.py`` and
``monitor_ven.py``, in one command).

It connects with the worker's broker settings (MQTT_BROKER or IOT_ENDPOINT,
MQTT_PORT, MQTT_USERNAME/PASSWORD, the TLS files) under a client id of its
own, in a clean session: a listener never takes over the worker's session
(MQTT_CLIENT_ID) nor leaves one behind. It only subscribes; it publishes
nothing and stores nothing.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import secrets
import sys
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

from adapters.mqtt.topics import ACK_FILTER, LOADS_FILTER, SHADOW_UPDATE_FILTER, TELEMETRY_FILTER
from entrypoints.cli import Failure, UsageError, _check_broker, _settings
from entrypoints.settings import Settings

COMMAND_FILTER = "ven/cmd/+"
# The documents' per-VEN topics the worker does not consume but an operator
# may want to see (document 004: alerts, configuration pushed to a VEN).
OTHER_FILTERS = ("ven/alerts/+", "ven/config/+")
DEFAULT = "default"  # --topic default: the default set, beside other --topic filters


def default_filters(settings: Settings) -> list[str]:
    filters = [
        settings.mqtt_topic_metering,
        TELEMETRY_FILTER,
        ACK_FILTER,
        COMMAND_FILTER,
        LOADS_FILTER,
        SHADOW_UPDATE_FILTER,
        *OTHER_FILTERS,
    ]
    if settings.mqtt_topic_status:
        filters.append(settings.mqtt_topic_status)
    return list(dict.fromkeys(filters))


def filters_for(settings: Settings, topics: list[str] | None, ven_id: str | None) -> list[str]:
    """The filters to subscribe to: ``--topic`` ones (``default`` standing for
    the default set) or the default set; with a VEN, a per-VEN filter's
    ``+`` becomes its id (the broker then sends only that VEN's messages)."""
    chosen: list[str] = []
    for topic in topics or [DEFAULT]:
        chosen += default_filters(settings) if topic == DEFAULT else [topic]
    if ven_id is not None:
        chosen = [_narrowed(f, ven_id) for f in chosen]
    return list(dict.fromkeys(chosen))


def _narrowed(topic_filter: str, ven_id: str) -> str:
    levels = topic_filter.split("/")
    if levels.count("+") != 1:
        return topic_filter
    return "/".join(ven_id if level == "+" else level for level in levels)


def kind_of(topic: str, settings: Settings) -> str:
    levels = topic.split("/")
    # The documents' two telemetry topics: the shared metering one and the
    # per-VEN one (a VEN may publish each sample on both: two lines).
    if topic == settings.mqtt_topic_metering:
        return "metering"
    if topic.startswith("ven/telemetry/"):
        return "telemetry"
    if topic == settings.mqtt_topic_status:
        return "status"
    if levels[0] == "$aws" and levels[-1] == "update":
        return "shadow"
    if levels[0] == "ven" and len(levels) == 3:
        return {"cmd": "command"}.get(levels[1], levels[1])
    return "message"


def _ven_of_topic(topic: str) -> str | None:
    levels = topic.split("/")
    if levels[0] == "ven" and len(levels) == 3:
        return levels[2]
    if levels[0] == "$aws" and len(levels) > 2:
        return levels[2]
    return None


def _num(value: Any, unit: str = "") -> str | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None if value is None else str(value)
    return f"{value:.2f}{unit}" if isinstance(value, float) else f"{value}{unit}"


def _first(payload: dict[str, Any], *names: str) -> Any:
    return next((payload[n] for n in names if payload.get(n) is not None), None)


# What a line shows per kind: (label, the payload's spellings, unit).
TELEMETRY = (
    ("power", ("usedPowerKw", "used_power_kw"), " kW"),
    ("shed", ("shedPowerKw", "shed_power_kw"), " kW"),
    ("asked", ("requestedReductionKw",), " kW"),
    ("event", ("eventId", "event_id"), ""),
)
FIELDS: dict[str, tuple[tuple[str, tuple[str, ...], str], ...]] = {
    "metering": TELEMETRY,
    "telemetry": TELEMETRY,
    "ack": (
        ("op", ("op",), ""),
        ("status", ("status",), ""),
        ("shed", ("actual_shed_kw", "actualShedKw"), " kW"),
        ("event", ("event_id", "eventId"), ""),
        ("correlationId", ("correlationId", "correlation_id"), ""),
    ),
    "command": (
        ("op", ("op",), ""),
        ("shed", ("shed_kw", "shedKw"), " kW"),
        ("for", ("duration_sec", "durationSec"), " s"),
        ("load", ("load_id", "loadId"), ""),
        ("event", ("event_id", "eventId"), ""),
        ("correlationId", ("correlationId", "correlation_id"), ""),
    ),
    "status": (("status", ("status",), ""),),
}


def describe(kind: str, payload: dict[str, Any]) -> str:
    """The message's key fields, ``name value`` apart by two spaces."""
    parts = []
    for label, names, unit in FIELDS.get(kind, ()):
        shown = _num(_first(payload, *names), unit)
        if shown is not None:
            parts.append(f"{label} {shown}")
    if kind in ("metering", "telemetry", "loads") and isinstance(payload.get("loads"), list):
        parts.append(f"{len(payload['loads'])} loads")
    state = payload.get("state")
    if kind == "shadow" and isinstance(state, dict) and isinstance(state.get("reported"), dict):
        payload = state["reported"]  # a shadow update: what the VEN reports
    if not parts:  # a kind without chosen fields: its first few plain values
        plain = [(k, v) for k, v in payload.items() if isinstance(v, str | int | float)]
        parts = [f"{k} {_num(v)}" for k, v in plain[:5]] or [f"keys {', '.join(list(payload)[:6])}"]
    return "  ".join(parts)


class Listener:
    """Turns each message into output lines (human or JSON), filtered by VEN."""

    def __init__(self, settings: Settings, ven_id: str | None, as_json: bool) -> None:
        self.settings = settings
        self.ven_id = ven_id
        self.as_json = as_json

    def lines(self, topic: str, payload: bytes, at: datetime) -> list[str]:
        kind = kind_of(topic, self.settings)
        topic_ven = _ven_of_topic(topic)
        try:
            parsed = json.loads(payload)
        except (ValueError, RecursionError):  # not JSON, not UTF-8, nested 100,000 deep
            return self._unreadable(topic, kind, topic_ven, payload, at)
        # A batch (a list of samples) is a line per sample.
        items = parsed if isinstance(parsed, list) else [parsed]
        out = []
        for item in items:
            if not isinstance(item, dict):
                out += self._unreadable(topic, kind, topic_ven, payload, at)
                break
            ven = topic_ven or _first(item, "venId", "ven_id")
            if self.ven_id is not None and ven not in (None, self.ven_id):
                continue
            if self.ven_id is not None and ven is None:
                continue
            if self.as_json:
                out.append(json.dumps({"at": _stamp(at), "topic": topic, "kind": kind,
                                       "venId": ven, "payload": item}))  # fmt: skip
            else:
                out.append(f"{_clock(at)}  {kind:<9}  {ven or '-':<16}  {describe(kind, item)}")
        return out

    def _unreadable(
        self, topic: str, kind: str, ven: str | None, payload: bytes, at: datetime
    ) -> list[str]:
        if self.ven_id is not None and ven != self.ven_id:
            return []
        text = payload[:200].decode("utf-8", "replace")
        if self.as_json:
            return [json.dumps({"at": _stamp(at), "topic": topic, "kind": kind, "venId": ven,
                                "unreadable": text})]  # fmt: skip
        return [f"{_clock(at)}  {kind:<9}  {ven or '-':<16}  UNREADABLE ({topic}): {text!r}"]


def _clock(at: datetime) -> str:
    return at.strftime("%H:%M:%S.%f")[:-3]


def _stamp(at: datetime) -> str:
    return at.isoformat().replace("+00:00", "Z")


async def listen(
    settings: Settings, filters: list[str], listener: Listener, client_id: str | None = None
) -> None:
    from adapters.mqtt.transport import AiomqttTransport
    from entrypoints.worker import mqtt_connection

    connection = replace(
        mqtt_connection(settings),
        client_id=client_id or f"gridcore-listen-{secrets.token_hex(4)}",
        persistent=False,
    )
    try:
        transport = await AiomqttTransport.connect(connection)
    except ConnectionError as exc:
        raise Failure(f"{exc}; check MQTT_BROKER/MQTT_PORT (or IOT_ENDPOINT)") from None
    try:
        for topic_filter in filters:
            try:
                await transport.subscribe(topic_filter, qos=0)
            except ConnectionError as exc:
                raise Failure(str(exc)) from None
        print(f"listening on {connection.host}:{connection.port}: {', '.join(filters)}",
              file=sys.stderr, flush=True)  # fmt: skip
        async for message in transport.messages():
            for line in listener.lines(message.topic, message.payload, datetime.now(UTC)):
                print(line, flush=True)
    finally:
        await transport.close()


def cmd_listen(args: argparse.Namespace) -> None:
    settings = _settings()
    if settings.mqtt_host is None:
        raise UsageError(
            "listen needs a broker: set MQTT_BROKER (or IOT_ENDPOINT) as the worker has"
        )
    _check_broker(settings)
    from entrypoints.worker import consumer_client_id

    if args.client_id is not None and args.client_id == consumer_client_id(settings):
        raise UsageError(
            f"--client-id {args.client_id} is the worker's: the broker would hand its "
            "session (and the messages queued for it) to this listener; choose another"
        )
    filters = filters_for(settings, args.topic, args.ven)
    try:
        listener = Listener(settings, args.ven, args.json)
        asyncio.run(listen(settings, filters, listener, args.client_id))
    except KeyboardInterrupt:
        pass
    except BrokenPipeError:  # `gridcore listen | head`
        sys.stderr.close()
