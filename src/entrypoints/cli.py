"""`gridcore`: the command line. Each subcommand builds what it needs from the
environment (and a `.env` file) with the documents' variable names.

Every mistake in the configuration or the options ends the command at once
with one line naming the setting and what it may be, and exit code 2; each
process then logs which storage and which broker it uses."""

from __future__ import annotations

import argparse
import asyncio
import csv
import getpass
import logging
import math
import os
import sys
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn

from entrypoints import logs
from entrypoints.settings import (
    ConfigurationError,
    Settings,
    load_settings,
    log_format,
    log_level,
)

if TYPE_CHECKING:
    from gridcore.audit import Actor
    from gridcore.ven import Location

log = logging.getLogger("gridcore")


class UsageError(Exception):
    """A problem the user can fix; printed without a traceback, exit code 2."""


class Failure(Exception):
    """A problem outside the configuration (a database that never came up);
    printed without a traceback, exit code 1."""


def _settings() -> Settings:
    try:
        settings, warnings = load_settings()
    except ConfigurationError as exc:
        raise UsageError(str(exc)) from None
    for warning in warnings:
        log.warning("%s", warning)
    return settings


def _check_broker(settings: Settings) -> None:
    """The broker settings as the MQTT client will use them (certificate and
    key together, files that load), checked before anything starts."""
    from adapters.mqtt.transport import tls_context
    from entrypoints.worker import mqtt_connection

    if settings.mqtt_host is None:
        return
    try:
        connection = mqtt_connection(settings)
        if connection.tls:
            tls_context(connection)
    except ValueError as exc:
        raise UsageError(str(exc)) from None


def _starting(command: str, settings: Settings, *, client_id: str | None = None) -> None:
    """The process's first line: what it stores in and talks to, so that a
    wrong environment shows at once instead of as missing data later."""
    from entrypoints.container import describe_broker, describe_storage

    uses = []
    if command in ("migrate", "serve", "locate"):
        uses.append(f"storage {describe_storage(settings)}")
    if command == "ven":
        uses.append(f"broker {describe_broker(settings, client_id)}")
    log.info("%s starting: %s", command, "; ".join(uses))


def _run(coro_factory: Callable[[], object]) -> None:
    try:
        asyncio.run(coro_factory())  # type: ignore[arg-type]
    except KeyboardInterrupt:
        log.info("interrupted; stopped")


# --- subcommands ---------------------------------------------------------------


def cmd_migrate(args: argparse.Namespace) -> None:
    from adapters.sql.migrate import DatabaseMisconfigured, DatabaseUnavailable, migrate

    settings = _settings()
    url = settings.resolved_database_url
    if url.startswith("memory://"):
        print("DATABASE_URL=memory:// keeps nothing on disk: there is nothing to migrate")
        return
    _starting("migrate", settings)
    try:
        _run(
            lambda: migrate(
                url,
                retries=args.retries,
                wait_seconds=args.wait,
                connect_timeout=settings.db_timeout,
                log=lambda line: print(line, flush=True),
            )
        )
    except DatabaseMisconfigured as exc:
        raise UsageError(str(exc)) from None
    except DatabaseUnavailable as exc:
        raise Failure(str(exc)) from None


def _check_access(settings: Settings, args: argparse.Namespace, *, demo: bool = False) -> None:
    """Refuse (no token, a malformed one, no access control on every
    interface) before the start line. The server checks again when it starts
    and logs what it finds, so this early check keeps quiet."""
    from entrypoints.api import server
    from entrypoints.api.auth import AccessRefused

    server.log.disabled = True
    try:
        server.check_access(settings, args.host, open_access=args.insecure_open_access, demo=demo)
    except (AccessRefused, ValueError, OSError) as exc:
        raise UsageError(str(exc)) from None
    finally:
        server.log.disabled = False


def cmd_serve(args: argparse.Namespace) -> None:
    from entrypoints.api.server import serve

    settings = _settings()
    _check_access(settings, args)
    _starting("serve", settings)
    serve(
        settings,
        host=args.host,
        port=args.port,
        open_access=args.insecure_open_access,
        workers=args.workers,
    )


def cmd_worker(args: argparse.Namespace) -> None:
    from entrypoints.worker import run_worker

    settings = _settings()
    if settings.mqtt_host is None:
        # An in-memory broker only makes sense inside one process (the demo).
        raise UsageError(
            "no broker configured: set MQTT_BROKER (Mosquitto, EMQX...) or IOT_ENDPOINT "
            "(AWS IoT Core, with MQTT_CA_CERT, MQTT_CLIENT_CERT, MQTT_CLIENT_KEY); "
            "`gridcore demo` runs everything in one process without one"
        )
    _check_broker(settings)
    if args.http_port is not None:
        settings = settings.model_copy(update={"gridcore_worker_http_port": args.http_port})
    _run(lambda: run_worker(settings))  # which logs its storage and broker first


def cmd_ven(args: argparse.Namespace) -> None:
    from entrypoints.simulator import run_simulator

    settings = _settings()
    if settings.mqtt_host is None:
        raise UsageError(
            "the VEN simulator needs a broker: set MQTT_BROKER (or IOT_ENDPOINT), "
            "or run `gridcore demo` for the in-process broker"
        )
    _check_broker(settings)
    _starting("ven", settings, client_id=f"{args.prefix}-sim-<n>-<random> (one a connection)")
    _run(
        lambda: run_simulator(
            settings,
            count=args.count,
            prefix=args.prefix,
            seed=args.seed,
            interval=args.interval,
            reject_fraction=args.reject_fraction,
            silent_fraction=args.silent_fraction,
            backfill_days=args.backfill_days,
            backfill_rate=args.backfill_rate,
            processes=args.processes,
            batch=args.batch,
        )
    )


def cmd_openapi(args: argparse.Namespace) -> None:
    from entrypoints.api.openapi import openapi_yaml, write_openapi

    if args.output is None:
        sys.stdout.write(openapi_yaml())
        return
    path = write_openapi(Path(args.output))
    print(f"wrote {path}", file=sys.stderr)


def read_positions(lines: Iterable[str], source: str) -> dict[str, Location]:
    """``venId,lat,lon`` rows (a header line naming them is skipped; blank
    lines and lines starting with # too). Every mistake is reported with its
    line, all at once: nothing is set while any row is wrong."""
    from gridcore.errors import InvalidInput
    from gridcore.ven import Location

    positions: dict[str, Location] = {}
    problems: list[str] = []
    for number, row in enumerate(csv.reader(lines), start=1):
        if not row or not "".join(row).strip() or row[0].lstrip().startswith("#"):
            continue
        cells = [cell.strip() for cell in row]
        if number == 1 and cells[0].lower() in ("venid", "ven_id", "id"):
            continue
        try:
            if len(cells) != 3:
                raise ValueError(f"expected venId,lat,lon, got {len(cells)} columns")
            ven_id, lat, lon = cells
            location = Location(_coordinate(lat, "lat"), _coordinate(lon, "lon"))
            if positions.get(ven_id, location) != location:
                raise ValueError(f"{ven_id} is given two different positions")
            positions[ven_id] = location
        except (ValueError, InvalidInput) as exc:
            problems.append(f"{source}:{number}: {exc}")
    if problems:
        shown = problems[:10] + (
            [f"... and {len(problems) - 10} more"] if len(problems) > 10 else []
        )
        raise UsageError("\n".join([*shown, "nothing was changed"]))
    return positions


def _coordinate(text: str, name: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise ValueError(f"{name} {text!r} is not a number") from None
    if not math.isfinite(value):
        raise ValueError(f"{name} must be a finite number of degrees")
    return value


def cmd_locate(args: argparse.Namespace) -> None:
    from entrypoints.container import container_for
    from gridcore.errors import InvalidInput
    from gridcore.fleet import locate_vens

    settings = _settings()
    source = "<stdin>" if args.file == "-" else args.file
    try:
        handle = sys.stdin if args.file == "-" else open(args.file, newline="")  # noqa: SIM115
    except OSError as exc:
        raise UsageError(f"cannot read {source}: {exc.strerror}") from None
    with handle:
        positions = read_positions(handle, source)
    if not positions:
        raise UsageError(f"{source} holds no venId,lat,lon rows")
    _starting("locate", settings)

    async def run() -> int:
        storage = container_for(settings).storage()
        try:
            return await locate_vens(storage.uow_factory, positions, actor=_local_actor())
        finally:
            await storage.close()

    try:
        count = asyncio.run(run())
    except InvalidInput as exc:
        raise UsageError(str(exc)) from None
    print(f"set the positions of {count} VENs")


def _local_actor() -> Actor:
    """Who runs a command that changes the database directly (not through the
    API, whose tokens name their holders): ``cli:<login name>``."""
    from adapters.system import SystemClock
    from gridcore.audit import Actor

    try:
        user = getpass.getuser()
    except (KeyError, OSError):  # no login name (a container's numeric uid)
        user = f"uid-{os.getuid()}"
    return Actor(f"cli:{user}", SystemClock().now())


def cmd_report(args: argparse.Namespace) -> None:
    from adapters.system import SystemClock
    from entrypoints.api.performance import event_performance_csv, event_performance_out
    from entrypoints.container import container_for
    from gridcore.errors import InvalidInput, NotFound
    from gridcore.verification import event_report

    settings = _settings()

    async def run() -> Any:
        storage = container_for(settings).storage()
        try:
            return await event_report(
                storage.uow_factory,
                storage.telemetry_queries,
                storage.performance,
                args.event_id,
                programme=settings.programme,
                now=SystemClock().now(),
                method=args.method,
                recompute=args.recompute,
            )
        finally:
            await storage.close()

    try:
        measured = asyncio.run(run())
    except (InvalidInput, NotFound) as exc:
        raise UsageError(str(exc)) from None
    body = event_performance_out(measured, settings.gridcore_timezone)
    if args.csv:
        Path(args.csv).write_text(event_performance_csv(body), encoding="utf-8")
        print(f"wrote {args.csv}", file=sys.stderr)
    print(performance_table(body))


def performance_table(body: Any) -> str:
    """The event's performance as a terminal table: a line per VEN, then the fleet."""

    def num(value: float | None, digits: int = 2) -> str:
        return "-" if value is None else f"{value:.{digits}f}"

    def pct(value: float | None) -> str:
        return "-" if value is None else f"{value:.0%}"

    state = "live, measured until" if body.live else "final, measured until"
    computed = f"; computed {body.computed_at:%Y-%m-%d %H:%M} UTC" if not body.live else ""
    lines = [
        f"event {body.event_id}  {body.start:%Y-%m-%d %H:%M} - {body.end:%Y-%m-%d %H:%M} UTC  "
        f"baseline {body.method}  ({state} {body.measured_until:%H:%M} UTC{computed})",
        "",
        f"{'VEN':<24} {'method':<14} {'alloc kW':>9} {'claim kW':>9} {'shed kWh':>9} "
        f"{'avg kW':>8} {'ratio':>6} {'covered':>8} {'rebound kWh':>12}",
    ]
    for v in body.vens:
        lines.append(
            f"{v.ven_id:<24} {v.method:<14} {num(v.allocated_kw):>9} {num(v.claimed_kw):>9} "
            f"{num(v.shed_kwh):>9} {num(v.avg_shed_kw):>8} {pct(v.performance_ratio):>6} "
            f"{pct(v.coverage):>8} {num(v.rebound.kwh if v.rebound else None):>12}"
        )
    f = body.fleet
    lines += [
        "",
        f"{'FLEET (' + str(f.vens) + ' VENs)':<24} {'':<14} {num(f.requested_kw):>9} "
        f"{num(f.claimed_kw):>9} {num(f.shed_kwh):>9} {num(f.avg_shed_kw):>8} "
        f"{pct(f.performance_ratio):>6} {'':>8} {num(f.rebound.kwh if f.rebound else None):>12}",
        f"offline during the event: {f.vens_offline}; without a baseline: "
        f"{f.vens_without_baseline}  (fleet alloc kW = the event's requested kW)",
    ]
    return "\n".join(lines)


def cmd_demo(args: argparse.Namespace) -> None:
    from pydantic import ValidationError

    from entrypoints.demo import demo_settings, run_demo
    from entrypoints.settings import error_lines

    try:  # the demo ignores storage and broker settings, not the others
        settings = demo_settings(args.db)
    except ValidationError as exc:
        raise UsageError("\n".join(error_lines(exc))) from None
    _check_access(settings, args, demo=True)
    log.info(
        "demo starting: storage SQLite at %s; broker the in-memory broker (inside this "
        "process); the DB_* and MQTT_* settings are ignored",
        args.db,
    )
    _run(
        lambda: run_demo(
            host=args.host,
            port=args.port,
            vens=args.vens,
            database=args.db,
            open_access=args.insecure_open_access,
            backfill_days=args.backfill_days,
        )
    )


# --- parser ------------------------------------------------------------------


class _Parser(argparse.ArgumentParser):
    """argparse, with a mistake told in one line (not the usage block first)."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: {message} (see {self.prog} --help)\n")


def _bounded(
    kind: Callable[[str], float], within: Callable[[float], bool], allowed: str
) -> Callable[[str], Any]:
    """An argparse type: ``kind`` of the text, refused unless ``within``."""

    def parse(text: str) -> float:
        try:
            value = kind(text)
        except ValueError:
            value = math.nan  # refused below, with the same words
        if not within(value):
            raise argparse.ArgumentTypeError(f"{text}: must be {allowed}")
        return value

    return parse


_port = _bounded(int, lambda v: 1 <= v <= 65535, "a whole number from 1 to 65535")
_http_port = _bounded(int, lambda v: 0 <= v <= 65535, "a whole number from 0 to 65535")
_workers = _bounded(int, lambda v: 1 <= v <= 64, "a whole number from 1 to 64")
_positive_int = _bounded(int, lambda v: v >= 1, "a whole number of at least 1")
_wait = _bounded(float, lambda v: v >= 0, "a number of seconds, 0 or more")
_interval = _bounded(float, lambda v: v > 0, "a number of seconds above 0")
_fraction = _bounded(float, lambda v: 0 <= v <= 1, "a number from 0 to 1")
_backfill_days = _bounded(float, lambda v: 0 <= v <= 60, "a number of days from 0 to 60")
_backfill_rate = _bounded(float, lambda v: 0 < v <= 100_000, "samples a second, above 0")
# MAX_BATCH_SAMPLES (adapters.mqtt.payloads): what the worker reads in one message.
_batch = _bounded(int, lambda v: 1 <= v <= 120, "a whole number of samples from 1 to 120")


def _level(text: str) -> str:
    try:
        return log_level(text, "--log-level")
    except ConfigurationError as exc:
        raise argparse.ArgumentTypeError(str(exc).partition(": ")[2]) from None


def _open_access_flag(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--insecure-open-access",
        action="store_true",
        help="with access control off, listen on a --host other than loopback anyway: anyone "
        "who reaches it can read and control the fleet (or GRIDCORE_ALLOW_OPEN_ACCESS=true)",
    )


SERVE = """\
Run the REST API (/api/..., /health, /docs) under uvicorn.

Access control: every /api request needs "Authorization: Bearer <token>".
Tokens have a scope: a read token may GET, a control token may also create,
stop and cancel events. Configure them as comma-separated name:scope:token
entries (the name is who acts in the audit trail, GET /api/audit),
  GRIDCORE_API_TOKENS="dashboard:read:<secret>,ops:control:<secret>"
or one a line in the file named by GRIDCORE_API_TOKENS_FILE (tokens of at
least 16 characters, e.g. `openssl rand -hex 16`; the older scope:token is
read too, with a name made from the token's hash). Without any token serve
refuses to start. /health answers without a token (for probes); /docs and
/openapi.json take a token as the browser's password. GRIDCORE_AUTH=disabled
turns the checks off, on a loopback --host only unless --insecure-open-access.

Storage: DATABASE_URL, or DB_HOST, DB_USER, DB_PASSWORD, DB_NAME (PostgreSQL);
with neither, the SQLite file ./gridcore.db. Run `gridcore migrate` first."""

WORKER = """\
Run the worker: the MQTT consumer and the event dispatcher, until SIGINT/SIGTERM.

The consumer subscribes to the VENs' telemetry (MQTT_TOPIC_METERING, or
ven/telemetry/+ with GRIDCORE_TELEMETRY_TOPICS), ACKs (ven/ack/+) and shadow
updates, and stores them. The dispatcher sends each DR event's commands to the
online VENs when it starts and the restore when it ends, and re-sends those
not acknowledged within ACK_TIMEOUT_SECONDS (ACK_MAX_RETRIES times). Run one
or more workers beside `gridcore serve`; one dispatches at a time.

Main settings: MQTT_BROKER and MQTT_PORT (or IOT_ENDPOINT), MQTT_CLIENT_ID (a
stable one is derived by default), MQTT_USERNAME/MQTT_PASSWORD, MQTT_CA_CERT,
MQTT_CLIENT_CERT, MQTT_CLIENT_KEY (TLS), MQTT_SHARED_GROUP (several workers
sharing the messages), EVENT_COMMAND_ENABLED, and the storage settings of
`gridcore serve --help`. It exits 1 when its consumer or dispatcher dies.

It answers /metrics (Prometheus), /health and /health/ready on
GRIDCORE_WORKER_HTTP_HOST:GRIDCORE_WORKER_HTTP_PORT (127.0.0.1:8001; see
docs/operations.md); GRIDCORE_LOG_FORMAT=json logs one JSON object a line."""

MIGRATE = """\
Create or upgrade the database schema (Alembic migrations shipped in the
package; no alembic.ini). Storage: DATABASE_URL, or DB_HOST, DB_USER,
DB_PASSWORD, DB_NAME (PostgreSQL), else the SQLite file ./gridcore.db.
A database that refuses connections or times out (still starting) is retried;
an unknown role, a missing database or a host that does not resolve fail at
once with the reason (exit 2)."""

VEN = """\
Simulate VENs (homes with a smart panel and circuits) against the broker of
MQTT_BROKER/MQTT_PORT: each sends telemetry, answers DR commands with ACKs and
sheds its circuits in priority order. For load and behaviour tests.

--backfill-days N first publishes N days of past telemetry (one sample per VEN
per 5 minutes, the same daily profiles as the live VENs, stamped in the past)
on the telemetry topics, at most --backfill-rate samples a second, while the
live VENs run: measurement then has baselines from the first event. The
worker must be running to store it.

A process builds a report in about a millisecond of CPU: one process serves a
few thousand VENs at the 5 s cadence. For a large fleet, --processes N splits
the VENs over N processes (each VEN in exactly one, with the same behaviour and
report times as in one process) and a longer --interval keeps the total
within the machine: 100,000 VENs every 60 s is 1,667 reports a second."""

OPENAPI = """\
Print the OpenAPI document (YAML) of the REST API, or write it to --output
(the repository's copy is docs/backend-api.yaml)."""

LOCATE = """\
Set where VENs are, from a CSV file of venId,lat,lon rows (degrees, WGS 84;
'-' reads standard input), in one transaction. No VEN reports its position,
so the dashboard's map has one only where someone set it; the map draws
nothing while any VEN has none. Every VEN must be registered; a wrong row or
an unknown VEN changes nothing.

  venId,lat,lon
  ven-001,37.4275,-122.1697"""

REPORT = """\
What an event shed, measured from the VENs' metered telemetry against a
baseline (GRIDCORE_BASELINE_METHOD, or --method), as a table: per VEN what it
was allocated, what its ACK claimed, what the meter shows, and the fleet.
Once the event and the hour after it are over, the result is kept and shown
as kept (the worker measures each event then); --recompute measures again.
--csv writes the same for settlement."""

DEMO = """\
Everything in one process, with no setup: a SQLite file, the in-memory broker,
the worker, the API on --host/--port without access control, and simulated
VENs. The DB_* and MQTT_* settings are ignored, so the demo never touches a
real fleet. Before it serves, it writes --backfill-days of history (one
sample per VEN per 5 minutes, from the VENs' daily profiles) for the time
its database has none, so the first event has a baseline."""


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="gridcore",
        description="Control core of a demand-response programme. Configuration comes from "
        "the environment (DB_*, DATABASE_URL, MQTT_*, GRIDCORE_*, ...) or a .env file.",
    )
    parser.add_argument(
        "--log-level",
        type=_level,
        default=None,
        metavar="LEVEL",
        help="debug, info, warning or error, any case (default: GRIDCORE_LOG_LEVEL, else info)",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def command(name: str, summary: str, description: str) -> argparse.ArgumentParser:
        return sub.add_parser(
            name,
            help=summary,
            description=description,
            formatter_class=argparse.RawDescriptionHelpFormatter,
        )

    p = command("migrate", "create or upgrade the database schema (Alembic)", MIGRATE)
    p.add_argument("--retries", type=_positive_int, default=30, help="connection attempts (30)")
    p.add_argument("--wait", type=_wait, default=2.0, help="seconds between attempts (2)")
    p.set_defaults(func=cmd_migrate)

    p = command("serve", "run the REST API (uvicorn); needs GRIDCORE_API_TOKENS", SERVE)
    p.add_argument("--host", default="127.0.0.1", help="address to bind (127.0.0.1)")
    p.add_argument("--port", type=_port, default=8000, help="port, 1-65535 (8000)")
    p.add_argument(
        "--workers",
        type=_workers,
        default=1,
        help="API processes on the one port, 1-64 (1); each holds its own "
        "GRIDCORE_API_DB_POOL_SIZE database connections",
    )
    _open_access_flag(p)
    p.set_defaults(func=cmd_serve)

    p = command("worker", "run the MQTT consumer and the event dispatcher", WORKER)
    p.add_argument(
        "--http-port",
        type=_http_port,
        default=None,
        metavar="PORT",
        help="port of /metrics, /health and /health/ready, 0 for none "
        "(default: GRIDCORE_WORKER_HTTP_PORT, else 8001)",
    )
    p.set_defaults(func=cmd_worker)

    p = command("ven", "simulate VENs against the configured broker", VEN)
    p.add_argument("--count", type=_positive_int, default=10, help="number of VENs (10)")
    p.add_argument("--prefix", default="ven", help="VEN ids are {prefix}-{n} (ven)")
    p.add_argument("--seed", type=int, default=1, help="random seed, for reproducible runs (1)")
    p.add_argument("--interval", type=_interval, default=5.0, help="telemetry every N seconds (5)")
    p.add_argument(
        "--reject-fraction",
        type=_fraction,
        default=0.0,
        help="share of VENs that reject events, 0-1 (0)",
    )
    p.add_argument(
        "--silent-fraction", type=_fraction, default=0.0, help="share of VENs that never ACK (0)"
    )
    p.add_argument(
        "--backfill-days",
        type=_backfill_days,
        default=0.0,
        metavar="N",
        help="publish N days of past telemetry first, 0-60 (0: none)",
    )
    p.add_argument(
        "--backfill-rate",
        type=_backfill_rate,
        default=1000.0,
        metavar="R",
        help="backfill samples a second, two messages each (1000)",
    )
    p.add_argument(
        "--processes",
        type=_positive_int,
        default=1,
        metavar="N",
        help="split the VENs over N processes, each with its own connections (1)",
    )
    p.add_argument(
        "--batch",
        type=_batch,
        default=1,
        metavar="N",
        help="send metering N samples to a message, 1-120 (1: one a message, as documented)",
    )
    p.set_defaults(func=cmd_ven)

    p = command("openapi", "print (or write) the OpenAPI document", OPENAPI)
    p.add_argument("--output", metavar="PATH", help="write it to PATH instead of stdout")
    p.set_defaults(func=cmd_openapi)

    p = command("locate", "set VEN positions from a CSV file (venId,lat,lon)", LOCATE)
    p.add_argument("file", metavar="FILE", help="the CSV file, or - for standard input")
    p.set_defaults(func=cmd_locate)

    p = command("report", "an event's measured shed against a baseline", REPORT)
    p.add_argument("event_id", metavar="EVENT_ID", help="the event's id (evt-...)")
    p.add_argument(
        "--method",
        help="baseline: high-X-of-Y, X-in-Y (10-in-10), meter-before[-MINUTES], ven-reported",
    )
    p.add_argument("--csv", metavar="FILE", help="also write the per-VEN table as CSV")
    p.add_argument(
        "--recompute",
        action="store_true",
        help="measure again, replacing the result kept for the method",
    )
    p.set_defaults(func=cmd_report)

    p = command("demo", "everything in one process: SQLite, in-memory broker, VENs", DEMO)
    p.add_argument("--host", default="127.0.0.1", help="address to bind (127.0.0.1)")
    p.add_argument("--port", type=_port, default=8000, help="port, 1-65535 (8000)")
    p.add_argument("--vens", type=_positive_int, default=50, help="simulated VENs (50)")
    p.add_argument("--db", default="gridcore-demo.db", help="SQLite file (gridcore-demo.db)")
    p.add_argument(
        "--backfill-days",
        type=_backfill_days,
        default=10.0,
        metavar="N",
        help="days of history to start with, 0-60 (10)",
    )
    _open_access_flag(p)
    p.set_defaults(func=cmd_demo)

    from entrypoints.operator import add_commands  # the operator's commands (API clients)

    add_commands(sub, command)
    return parser


def _fail(exc: Exception, code: int) -> int:
    for line in str(exc).splitlines():
        print(f"gridcore: {line}", file=sys.stderr)
    return code


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        level = args.log_level or log_level(os.environ.get("GRIDCORE_LOG_LEVEL") or "INFO")
        fmt = log_format(os.environ.get("GRIDCORE_LOG_FORMAT") or "text")
    except ConfigurationError as exc:
        return _fail(exc, 2)
    logs.configure(level, fmt)
    if level != "DEBUG":
        # Alembic narrates every plugin it loads; our migrate says what matters.
        logging.getLogger("alembic").setLevel(logging.WARNING)
    try:
        args.func(args)
    except UsageError as exc:
        return _fail(exc, 2)
    except Failure as exc:
        return _fail(exc, 1)
    except Exception as exc:  # the last line of defence: say what failed, not a traceback
        if level == "DEBUG":
            raise
        print(f"gridcore {args.command}: {type(exc).__name__}: {exc}", file=sys.stderr)
        print("(run with --log-level DEBUG for the traceback)", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    # `python -m entrypoints.cli`: run the module's imported copy, whose
    # UsageError and Failure are the ones the operator commands raise.
    from entrypoints.cli import main as imported_main

    raise SystemExit(imported_main())
