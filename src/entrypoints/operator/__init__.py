"""The operator's command line: ``gridcore vens``, ``events``, ``ping``,
``audit`` (clients of the REST API at GRIDCORE_URL) and ``listen`` (the
broker's traffic, with the worker's broker settings). Registered on the
``gridcore`` parser by :func:`add_commands`."""

from __future__ import annotations

import argparse
from collections.abc import Callable

from entrypoints.cli import _bounded
from gridcore.summary import MAX_FLEET_PAGE

Command = Callable[[str, str, str], argparse.ArgumentParser]

ACCESS = """
The API: GRIDCORE_URL (http://127.0.0.1:8000). The token: GRIDCORE_TOKEN,
else the first line of --token-file or GRIDCORE_TOKEN_FILE (none: an API
without access control). Reads need a read token, changes a control token.
Human output by default; --json prints the API's JSON, for scripts. A
refusal or an unreachable API is one line on stderr and exit code 1."""

VENS = (
    """\
Every VEN: status, when it was last heard, the power it uses and the shed it
has available now, and its last command round trip. Read a page at a time
(progress on stderr for a large fleet)."""
    + ACCESS
)

EVENTS = (
    """\
DR events: list, show (per-VEN progress), create, stop, cancel."""
    + ACCESS
)

CREATE = (
    """\
Create a DR event: --kw to shed from --start to --end (or for --duration).
Times: now, +15m (from now), or ISO 8601 (2026-12-03T17:00:00Z; without a
zone, UTC). Durations: 90s, 15m, 1h30m. --target (repeatable) limits it to
the VENs granted one of them. --wait follows it until every VEN it was sent
to answered (progress on stderr), then prints it as `events show` does."""
    + ACCESS
)

PING = (
    """\
Ping a VEN through the API (the worker sends it on ven/cmd/{venId}) and wait
for its pong: prints the round trip the worker measured, from the command's
send to the ACK, and the time from this request."""
    + ACCESS
)

AUDIT = (
    """\
The audit trail: who (the token's name) did what and when, newest first.
--since/--until take the times of `events create`; --since 2h means the
last two hours."""
    + ACCESS
)

LISTEN = """\
Tail the broker: telemetry, ACKs, commands, loads, shadow updates, alerts
and configuration, one readable line a message (time, kind, VEN, its key
fields: power, shed, status, correlationId). A payload that is not JSON is
printed marked UNREADABLE; listening goes on. --json prints each message as
a JSON line ({"at", "topic", "kind", "venId", "payload"}).

Topics: MQTT_TOPIC_METERING (volttron/metering), ven/telemetry/+,
ven/ack/+, ven/cmd/+, ven/loads/+, $aws/things/+/shadow/update,
ven/alerts/+, ven/config/+ (and MQTT_TOPIC_STATUS when set). --topic
(repeatable) listens to the filters given instead; `--topic default` adds
the default set back. --ven ID shows one VEN (the broker is asked for its
topics only, where the topic names it).

The broker: the worker's settings (MQTT_BROKER or IOT_ENDPOINT, MQTT_PORT,
MQTT_USERNAME/MQTT_PASSWORD, MQTT_CA_CERT, MQTT_CLIENT_CERT/KEY), under a
client id of its own (--client-id, else gridcore-listen-<random>) in a clean
session. Ctrl-C stops it."""

_limit = _bounded(int, lambda v: 1 <= v <= 1000, "a whole number from 1 to 1000")
_timeout = _bounded(float, lambda v: 0 < v <= 3600, "a number of seconds, above 0, at most 3600")


def _client_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--json", action="store_true", help="print JSON, for scripts")
    parser.add_argument(
        "--token-file",
        metavar="PATH",
        help="read the API token from PATH (first line); default GRIDCORE_TOKEN, "
        "else GRIDCORE_TOKEN_FILE",
    )


def add_commands(
    sub: argparse._SubParsersAction,  # type: ignore[type-arg]
    command: Command,
) -> None:
    from entrypoints.operator import commands
    from entrypoints.operator.listen import cmd_listen

    p = command("vens", "the VENs: status, last seen, power, available shed", VENS)
    _client_options(p)
    p.add_argument("--search", help="only VENs whose id or name contains this (any case)")
    p.add_argument(
        "--page-size",
        type=_bounded(int, lambda v: 1 <= v <= MAX_FLEET_PAGE, f"1 to {MAX_FLEET_PAGE}"),
        default=commands.VEN_PAGE,
        help=f"VENs a request, 1 to {MAX_FLEET_PAGE} (1000)",
    )
    p.set_defaults(func=commands.cmd_vens)

    p = command("events", "DR events: list, show, create, stop, cancel", EVENTS)
    events = p.add_subparsers(dest="action", required=True, metavar="ACTION")

    def action(name: str, summary: str, description: str) -> argparse.ArgumentParser:
        parser = events.add_parser(
            name,
            help=summary,
            description=description,
            formatter_class=argparse.RawDescriptionHelpFormatter,
        )
        _client_options(parser)
        return parser

    p = action("list", "events, newest start first", EVENTS)
    p.add_argument("--status", choices=["scheduled", "active", "completed", "cancelled", "stopped"])
    p.add_argument("--limit", type=_limit, default=50, help="at most this many, 1 to 1000 (50)")
    p.set_defaults(func=commands.cmd_events_list)

    p = action("show", "an event and each VEN's progress", EVENTS)
    p.add_argument("event_id", metavar="EVENT_ID")
    p.set_defaults(func=commands.cmd_events_show)

    p = action("create", "create an event", CREATE)
    p.add_argument("--start", default="now", help="now, +15m or ISO 8601 (now)")
    p.add_argument("--end", help="+1h or ISO 8601")
    p.add_argument("--duration", help="instead of --end: 15m, 1h30m...")
    p.add_argument(
        "--kw",
        type=_bounded(float, lambda v: 0 < v <= 1e9, "kW above 0"),
        required=True,
        help="kW to shed",
    )
    p.add_argument("--target", action="append", metavar="TARGET", help="repeatable")
    _wait_options(p)
    p.set_defaults(func=commands.cmd_events_create)

    p = action("stop", "stop an active event (restores are sent)", EVENTS)
    p.add_argument("event_id", metavar="EVENT_ID")
    _wait_options(p, "until every VEN it reached answered its restore")
    p.set_defaults(func=commands.cmd_events_stop)

    p = action("cancel", "cancel a scheduled event", EVENTS)
    p.add_argument("event_id", metavar="EVENT_ID")
    p.set_defaults(func=commands.cmd_events_cancel)

    p = command("ping", "ping a VEN and print the round trip", PING)
    _client_options(p)
    p.add_argument("ven_id", metavar="VEN")
    p.add_argument("--timeout", type=_timeout, default=15.0, help="seconds to wait (15)")
    p.set_defaults(func=commands.cmd_ping)

    p = command("audit", "who did what, and when (the audit trail)", AUDIT)
    _client_options(p)
    p.add_argument("--actor", help="a token's name")
    p.add_argument("--action", help="event.created, event.stopped, command.sent, ...")
    p.add_argument("--ven", metavar="VEN")
    p.add_argument("--event", metavar="EVENT_ID")
    p.add_argument("--since", help="2h (ago), or a time")
    p.add_argument("--until", help="a time")
    p.add_argument("--limit", type=_limit, default=50, help="at most this many, 1 to 1000 (50)")
    p.set_defaults(func=commands.cmd_audit)

    p = command("listen", "tail telemetry, ACKs and commands on the broker", LISTEN)
    p.add_argument("--ven", metavar="ID", help="only this VEN's messages")
    p.add_argument(
        "--topic", action="append", metavar="FILTER", help="repeatable; 'default': the default set"
    )
    p.add_argument("--json", action="store_true", help="a JSON line a message")
    p.add_argument(
        "--client-id",
        help="the MQTT client id (default gridcore-listen-<random>); one the broker's policy "
        "allows, e.g. on AWS IoT Core. Never the worker's: it would take over its session",
    )
    p.set_defaults(func=cmd_listen)


def _wait_options(
    parser: argparse.ArgumentParser, what: str = "until every VEN it was sent to answered"
) -> None:
    parser.add_argument("--wait", action="store_true", help=f"follow it {what}")
    parser.add_argument(
        "--timeout", type=_timeout, default=60.0, help="seconds --wait waits at most (60)"
    )
