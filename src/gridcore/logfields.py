"""The ids a log line is about, as structured fields (``extra=``) under the
payloads' names: with GRIDCORE_LOG_FORMAT=json each becomes a field of the
line's object, so a log query finds an event's or a VEN's lines without
parsing messages. Text logs show the message only, as before."""

from __future__ import annotations


def log_ids(
    event_id: str | None = None, correlation_id: str | None = None, ven_id: str | None = None
) -> dict[str, str]:
    """``extra=`` for a log call: each id given (None: left out)."""
    fields: dict[str, str] = {}
    if event_id:
        fields["eventId"] = event_id
    if correlation_id:
        fields["correlationId"] = correlation_id
    if ven_id:
        fields["venId"] = ven_id
    return fields
