"""`gridcore`: the command line. Each subcommand builds what it needs from the
environment (and a `.env` file) with the documents' variable names."""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

from pydantic import ValidationError

from entrypoints.settings import Settings

log = logging.getLogger("gridcore")


class UsageError(Exception):
    """A problem the user can fix; printed without a traceback."""


def _settings() -> Settings:
    try:
        return Settings()
    except ValidationError as exc:
        lines = []
        for error in exc.errors():
            name = ".".join(str(p) for p in error["loc"]).upper() or "settings"
            lines.append(f"  {name}: {error['msg']}")
        raise UsageError("invalid configuration:\n" + "\n".join(lines)) from None


def _run(coro_factory: Callable[[], object]) -> None:
    try:
        asyncio.run(coro_factory())  # type: ignore[arg-type]
    except KeyboardInterrupt:
        log.info("interrupted; stopped")


# --- subcommands ---------------------------------------------------------------


def cmd_migrate(args: argparse.Namespace) -> None:
    from adapters.sql.migrate import migrate

    settings = _settings()
    url = settings.resolved_database_url
    if url.startswith("memory://"):
        print("DATABASE_URL=memory:// keeps nothing on disk: there is nothing to migrate")
        return
    _run(
        lambda: migrate(
            url,
            retries=args.retries,
            wait_seconds=args.wait,
            connect_timeout=settings.db_timeout,
            log=lambda line: print(line, flush=True),
        )
    )


def cmd_serve(args: argparse.Namespace) -> None:
    from entrypoints.api.auth import AccessRefused
    from entrypoints.api.server import serve

    try:
        serve(_settings(), host=args.host, port=args.port, open_access=args.insecure_open_access)
    except AccessRefused as exc:
        raise UsageError(str(exc)) from None


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
    _run(lambda: run_worker(settings))


def cmd_ven(args: argparse.Namespace) -> None:
    from entrypoints.simulator import run_simulator

    settings = _settings()
    _run(
        lambda: run_simulator(
            settings,
            count=args.count,
            prefix=args.prefix,
            seed=args.seed,
            interval=args.interval,
            reject_fraction=args.reject_fraction,
            silent_fraction=args.silent_fraction,
        )
    )


def cmd_openapi(args: argparse.Namespace) -> None:
    from entrypoints.api.openapi import write_openapi

    path = write_openapi(Path(args.output))
    print(f"wrote {path}")


def cmd_demo(args: argparse.Namespace) -> None:
    from entrypoints.api.auth import AccessRefused
    from entrypoints.demo import run_demo

    try:
        _run(
            lambda: run_demo(
                host=args.host,
                port=args.port,
                vens=args.vens,
                database=args.db,
                open_access=args.insecure_open_access,
            )
        )
    except AccessRefused as exc:
        raise UsageError(str(exc)) from None


# --- parser ------------------------------------------------------------------


def _fraction(text: str) -> float:
    value = float(text)
    if not 0.0 <= value <= 1.0:
        raise argparse.ArgumentTypeError("must be between 0 and 1")
    return value


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError("must be at least 1")
    return value


def _open_access_flag(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--insecure-open-access",
        action="store_true",
        help="with access control off, listen on a --host other than loopback anyway: anyone "
        "who reaches it can read and control the fleet (or GRIDCORE_ALLOW_OPEN_ACCESS=true)",
    )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="gridcore",
        description="Control core of a demand-response programme. Configuration comes from "
        "the environment (DB_*, DATABASE_URL, MQTT_*, ...) or a .env file.",
    )
    parser.add_argument(
        "--log-level",
        default=os.environ.get("GRIDCORE_LOG_LEVEL", "INFO"),
        choices=["DEBUG", "INFO", "WARNING", "ERROR"],
        help="log verbosity (default INFO, or GRIDCORE_LOG_LEVEL)",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("migrate", help="create or upgrade the database schema (Alembic)")
    p.add_argument("--retries", type=_positive_int, default=30, help="connection attempts (30)")
    p.add_argument("--wait", type=float, default=2.0, help="seconds between attempts (2)")
    p.set_defaults(func=cmd_migrate)

    p = sub.add_parser("serve", help="run the REST API (uvicorn)")
    p.add_argument("--host", default="127.0.0.1", help="address to bind (127.0.0.1)")
    p.add_argument("--port", type=int, default=8000, help="port (8000)")
    _open_access_flag(p)
    p.set_defaults(func=cmd_serve)

    p = sub.add_parser("worker", help="run the MQTT consumer and the event dispatcher")
    p.set_defaults(func=cmd_worker)

    p = sub.add_parser("ven", help="simulate VENs against the configured broker")
    p.add_argument("--count", type=_positive_int, default=10, help="number of VENs (10)")
    p.add_argument("--prefix", default="ven", help="VEN ids are {prefix}-{n} (ven)")
    p.add_argument("--seed", type=int, default=1, help="random seed, for reproducible runs (1)")
    p.add_argument("--interval", type=float, default=5.0, help="telemetry every N seconds (5)")
    p.add_argument(
        "--reject-fraction",
        type=_fraction,
        default=0.0,
        help="share of VENs that reject events (0)",
    )
    p.add_argument(
        "--silent-fraction", type=_fraction, default=0.0, help="share of VENs that never ACK (0)"
    )
    p.set_defaults(func=cmd_ven)

    p = sub.add_parser("openapi", help="write the OpenAPI document")
    p.add_argument("--output", default="docs/backend-api.yaml", help="(docs/backend-api.yaml)")
    p.set_defaults(func=cmd_openapi)

    p = sub.add_parser("demo", help="everything in one process: SQLite, in-memory broker, VENs")
    p.add_argument("--host", default="127.0.0.1", help="address to bind (127.0.0.1)")
    p.add_argument("--port", type=int, default=8000, help="port (8000)")
    p.add_argument("--vens", type=_positive_int, default=50, help="simulated VENs (50)")
    p.add_argument("--db", default="gridcore-demo.db", help="SQLite file (gridcore-demo.db)")
    _open_access_flag(p)
    p.set_defaults(func=cmd_demo)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=args.log_level,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    if args.log_level != "DEBUG":
        # Alembic narrates every plugin it loads; our migrate says what matters.
        logging.getLogger("alembic").setLevel(logging.WARNING)
    try:
        args.func(args)
    except UsageError as exc:
        print(f"gridcore: {exc}", file=sys.stderr)
        return 2
    except Exception as exc:  # the last line of defence: say what failed, not a traceback
        if args.log_level == "DEBUG":
            raise
        print(f"gridcore {args.command}: {type(exc).__name__}: {exc}", file=sys.stderr)
        print("(run with --log-level DEBUG for the traceback)", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
