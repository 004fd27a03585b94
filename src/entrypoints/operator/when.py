"""Times and durations as an operator types them: ``now``, ``+15m``, an ISO
time (UTC when it names no zone), and ``15m``, ``1h30m``, ``90s``."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

_PART = re.compile(r"(\d+(?:\.\d+)?)([smhd])")
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def parse_duration(text: str) -> timedelta:
    """``90s``, ``15m``, ``1h30m``, ``2d``: one or more numbers each with a
    unit (s, m, h, d). A bare number is refused: minutes or seconds?"""
    compact = text.strip().lower().replace(" ", "")
    parts = _PART.findall(compact)
    if not compact or "".join(n + u for n, u in parts) != compact:
        raise ValueError(f"{text!r} is not a duration: use e.g. 90s, 15m, 1h30m, 2h")
    seconds = sum(float(n) * _UNITS[u] for n, u in parts)
    if seconds <= 0:
        raise ValueError(f"{text!r}: a duration must be above 0")
    return timedelta(seconds=seconds)


def parse_time(text: str, now: datetime) -> datetime:
    """``now``, ``+<duration>`` (from now), or an ISO 8601 time; an ISO time
    without a zone is UTC (as the API reads it)."""
    stripped = text.strip()
    if stripped.lower() == "now":
        return now
    if stripped.startswith("+"):
        return now + parse_duration(stripped[1:])
    try:
        moment = datetime.fromisoformat(stripped.replace("Z", "+00:00").replace("z", "+00:00"))
    except ValueError:
        raise ValueError(
            f"{text!r} is not a time: use now, +15m (from now) or ISO 8601 "
            "(2026-12-03T17:00:00Z; without a zone, UTC)"
        ) from None
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def iso(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


def parse_api_time(text: str | None) -> datetime | None:
    if not text:
        return None
    moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment


def ago(text: str | None, now: datetime) -> str:
    """``12s ago``, ``5m ago``, ``3h ago``, ``2d ago``; ``never`` for none."""
    moment = parse_api_time(text)
    if moment is None:
        return "never"
    seconds = max(int((now - moment).total_seconds()), 0)
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{seconds // size}{unit} ago"
    return f"{seconds}s ago"


def short(text: str | None) -> str:
    """An API time as ``2026-12-03 17:00:00Z``."""
    moment = parse_api_time(text)
    return "-" if moment is None else moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%SZ")
