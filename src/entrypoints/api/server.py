"""``gridcore serve``: the API under uvicorn."""

from __future__ import annotations

import ipaddress
import logging

import uvicorn

from entrypoints.api.app import create_app
from entrypoints.api.auth import AuthNotConfigured, TokenChecker
from entrypoints.settings import Settings

log = logging.getLogger("entrypoints.api.server")


def _loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def check_access(settings: Settings, host: str) -> TokenChecker:
    """Refuse to serve a control API that anyone could drive: with auth on,
    at least one token must be configured (malformed ones are refused too)."""
    checker = TokenChecker.from_settings(settings)
    if checker.enabled and not checker.configured:
        raise AuthNotConfigured(
            "no API token configured: set GRIDCORE_API_TOKENS (e.g. 'control:<secret>,"
            "read:<secret>') or GRIDCORE_API_TOKENS_FILE, or GRIDCORE_AUTH=disabled "
            "on a trusted machine"
        )
    if not checker.enabled:
        level = logging.WARNING if not _loopback(host) else logging.INFO
        log.log(level, "API access control is DISABLED (GRIDCORE_AUTH=disabled) on %s", host)
    return checker


def serve(settings: Settings, host: str = "127.0.0.1", port: int = 8000) -> None:
    check_access(settings, host)
    app = create_app(settings)
    # uvicorn's own logging config would replace the CLI's; keep the CLI's.
    uvicorn.run(app, host=host, port=port, log_config=None, access_log=True)
