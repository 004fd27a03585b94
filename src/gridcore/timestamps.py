"""Timestamps from outside: aware UTC, inside a window, or refused.

A timestamp with an offset at the edge of the calendar (``9999-12-31T23:59:59-23:59``,
``0001-01-01T00:00:00+01:00``) parses, and then overflows when converted to UTC:
``OverflowError``, which no caller expects from a bad value. Every timestamp
that arrives over MQTT or HTTP goes through :func:`to_utc`, which refuses it
with a ``ValueError`` saying what is accepted instead.
"""

from __future__ import annotations

from datetime import UTC, datetime

# What a VEN may report: the documents' 2000..2100.
REPORTED_EARLIEST = datetime(2000, 1, 1, tzinfo=UTC)
REPORTED_LATEST = datetime(2100, 1, 1, tzinfo=UTC)


def to_utc(value: datetime, earliest: datetime, latest: datetime) -> datetime:
    """``value`` in UTC (a naive value is read as UTC), if it falls in
    [``earliest``, ``latest``); else ``ValueError``."""
    try:
        utc = value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
    except OverflowError:
        utc = None
    if utc is None or not earliest <= utc < latest:
        raise ValueError(
            f"{value.isoformat()} is outside {earliest.isoformat()} .. {latest.isoformat()}"
        )
    return utc


def heard_at(reported: datetime, received_at: datetime | None) -> datetime:
    """When a message shows its VEN alive: the time it reports, but never later
    than when it arrived. A VEN clock running ahead (inside the accepted skew)
    must not keep the VEN online after it stops, nor pin its current state."""
    if received_at is None or reported <= received_at:
        return reported
    return received_at
