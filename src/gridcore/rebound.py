"""Staggered restores (rebound mitigation, issue 14).

When thousands of homes restore at the same second their loads come back
together, and the rebound peak can exceed what the event shed. Restores can
be spread over a window: each VEN's restore waits an offset in ``[0, spread)``
after the event's end (or stop), as OpenADR's ``randomizeStart``. The offset
is a hash of (event id, VEN id), not a draw: a second worker, or the same one
after a restart, computes the same, and over many VENs the offsets fall
roughly uniformly over the window.
"""

from __future__ import annotations

import hashlib
from datetime import datetime, timedelta

MAX_RESTORE_SPREAD = timedelta(hours=1)


def restore_offset(event_id: str, ven_id: str, spread: timedelta) -> timedelta:
    """How long after the event's end ``ven_id``'s restore waits: in
    ``[0, spread)``, whole microseconds, the same for the same ids."""
    if spread <= timedelta(0):
        return timedelta(0)
    if spread > MAX_RESTORE_SPREAD:
        raise ValueError(f"a restore spread of {spread} is over {MAX_RESTORE_SPREAD}")
    digest = hashlib.sha256(f"{event_id}\x00{ven_id}".encode()).digest()
    fraction = int.from_bytes(digest[:8], "big") / 2**64  # in [0, 1)
    micros = int(spread / timedelta(microseconds=1) * fraction)
    return timedelta(microseconds=min(micros, spread // timedelta(microseconds=1) - 1))


def restore_not_before(
    event_id: str, ven_id: str, ended: datetime, spread: timedelta
) -> datetime | None:
    """When ``ven_id``'s restore may go out: ``ended`` (the event's end or
    stop) plus its offset; None (at once) when restores are not spread."""
    if spread <= timedelta(0):
        return None
    return ended + restore_offset(event_id, ven_id, spread)
