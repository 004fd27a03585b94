"""``gridcore serve``: the API under uvicorn, in one process or several.

With ``--workers N`` uvicorn runs N processes on one listening socket, each
building its own app from the environment (:func:`app_from_environment`).
They share no memory and need not: a console session cookie is signed with a
key derived from the configured tokens (every process derives the same), the
database is the only state, each process's ``Coalescer`` only merges its own
concurrent reads, and each has its own bounded pool
(GRIDCORE_API_DB_POOL_SIZE connections). Nothing counts requests per client
in memory (no rate limit to split across processes).
"""

from __future__ import annotations

import ipaddress
import logging
import os
from typing import Any

import uvicorn
from fastapi import FastAPI

from entrypoints.api.app import create_app
from entrypoints.api.auth import AuthNotConfigured, OpenAccessRefused, TokenChecker
from entrypoints.api.metrics import multiprocess_dir
from entrypoints.logs import dict_config_formatter
from entrypoints.openadr.tokens import clients_from
from entrypoints.settings import ConfigurationError, Settings, load_settings, log_format

log = logging.getLogger("entrypoints.api.server")

OPT_IN = "--insecure-open-access (or GRIDCORE_ALLOW_OPEN_ACCESS=true)"


def _loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def open_access_refusal(host: str, *, opted_in: bool, demo: bool = False) -> str | None:
    """Why an API without access control may not listen on ``host`` (one line
    saying what to do), or None: only a loopback address is safe, unless the
    operator opted in explicitly. A host name other than localhost counts as
    reachable: what it resolves to is not ours to guess."""
    if opted_in or _loopback(host):
        return None
    what = "the demo has no access control" if demo else "GRIDCORE_AUTH=disabled"
    tokens = "" if demo else "set GRIDCORE_API_TOKENS and drop GRIDCORE_AUTH=disabled, or "
    return (
        f"{what} and {host} is not a loopback address: anyone who reaches it could read "
        f"and control the fleet; {tokens}bind --host 127.0.0.1, or accept that with {OPT_IN}"
    )


def check_access(
    settings: Settings, host: str, *, open_access: bool = False, demo: bool = False
) -> TokenChecker:
    """Refuse to serve a control API that anyone could drive: with auth on,
    at least one token must be configured (malformed ones are refused too);
    with auth off, only on loopback unless ``open_access`` (the CLI flag) or
    GRIDCORE_ALLOW_OPEN_ACCESS says otherwise."""
    checker = TokenChecker.from_settings(settings)
    clients_from(settings)  # a malformed OpenADR client entry: refused before the start line
    if checker.enabled and not checker.configured:
        raise AuthNotConfigured(
            "no API token configured: set GRIDCORE_API_TOKENS (e.g. 'ops:control:<secret>,"
            "dashboard:read:<secret>') or GRIDCORE_API_TOKENS_FILE, or GRIDCORE_AUTH=disabled "
            "on a trusted machine"
        )
    if not checker.enabled:
        opted_in = open_access or settings.gridcore_allow_open_access
        refused = open_access_refusal(host, opted_in=opted_in, demo=demo)
        if refused is not None:
            raise OpenAccessRefused(refused)
        if _loopback(host):
            log.info("API access control is disabled (GRIDCORE_AUTH=disabled) on %s", host)
        else:
            log.warning(
                "API access control is DISABLED on %s, opted in with %s: anyone who "
                "reaches it can read and control the fleet",
                host,
                OPT_IN,
            )
    elif checker.anonymous_read:
        log.warning(
            "GRIDCORE_ANONYMOUS_READ=true: requests without a token may read the dashboard's "
            "paths (fleet, telemetry history, events); writes still need a control token"
        )
    return checker


def app_from_environment() -> FastAPI:
    """The app of one ``serve --workers`` process: the settings read again from
    the environment the command started with (uvicorn's factory)."""
    settings, _ = load_settings()
    return create_app(settings)


def _log_format() -> str:
    """GRIDCORE_LOG_FORMAT, as the CLI checked it already."""
    try:
        return log_format(os.environ.get("GRIDCORE_LOG_FORMAT") or "text")
    except ConfigurationError:
        return "text"


def _log_config() -> dict[str, Any]:
    """The CLI's log format and level, for processes uvicorn starts (they do
    not inherit the parent's handlers)."""
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {"cli": dict_config_formatter(_log_format())},
        "handlers": {
            "stderr": {
                "class": "logging.StreamHandler",
                "formatter": "cli",
                "stream": "ext://sys.stderr",
            }
        },
        "root": {"level": logging.getLogger().getEffectiveLevel(), "handlers": ["stderr"]},
    }


def serve(
    settings: Settings,
    host: str = "127.0.0.1",
    port: int = 8000,
    *,
    open_access: bool = False,
    workers: int = 1,
) -> None:
    check_access(settings, host, open_access=open_access)
    if workers == 1:
        app = create_app(settings)
        # uvicorn's own logging config would replace the CLI's; keep the CLI's.
        uvicorn.run(app, host=host, port=port, log_config=None, access_log=True)
        return
    # Each process counts its requests into files there; a scrape adds them up.
    with multiprocess_dir():
        uvicorn.run(
            f"{__name__}:app_from_environment",
            factory=True,
            host=host,
            port=port,
            workers=workers,
            log_config=_log_config(),
            access_log=True,
        )
