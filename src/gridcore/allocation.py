"""Backend-side shed allocation: split an event's requested kW across VENs.

The documents split equally (10 kW over 2 VENs = 5 kW each). gridcore does
max-min fair water-filling: the equal split, capped by what each VEN can shed,
with the remainder poured onto VENs that still have headroom. Whenever every
VEN can carry its equal share, the two agree.

Arithmetic is in whole watts so that shares sum exactly: the sum of shares is
``min(requested, total available)`` to the watt. The watts that an integer
division leaves over go one each to the uncapped VENs first in id order, which
makes the result independent of input order and monotone in the request.

A targeted event (:mod:`gridcore.targeting`) is allocated over the VENs it
targets only: the others get nothing and are not sent a command. An untargeted
event is allocated over the whole fleet, as the documents' events are.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from collections.abc import Set as AbstractSet
from typing import TypeVar

from gridcore.errors import InvalidInput
from gridcore.quantities import to_kw, to_watts

V = TypeVar("V")


def among_targeted(available: Mapping[str, V], targeted: AbstractSet[str] | None) -> dict[str, V]:
    """What ``available`` holds for the VENs an event targets (``targeted``,
    the VEN ids it reaches); None: an untargeted event, every VEN."""
    if targeted is None:
        return dict(available)
    return {ven_id: v for ven_id, v in available.items() if ven_id in targeted}


def allocate_shed(
    requested_kw: float,
    available_kw: Mapping[str, float],
    targeted: AbstractSet[str] | None = None,
) -> dict[str, float]:
    """Shares in kW per VEN id. VENs with no availability get 0.0; with
    ``targeted`` (the VENs a targeted event reaches), only those VENs are
    allocated (and returned)."""
    available_kw = among_targeted(available_kw, targeted)
    if isinstance(requested_kw, bool) or not math.isfinite(requested_kw) or requested_kw < 0:
        raise InvalidInput("requestedReductionKw", "must be a finite, non-negative kW value")
    caps: dict[str, int] = {}
    for ven_id, kw in available_kw.items():
        if isinstance(kw, bool) or not math.isfinite(kw):
            raise InvalidInput(f"available[{ven_id}]", "must be a finite kW value")
        # A VEN reporting negative availability (e.g. exporting solar) has none to shed.
        caps[ven_id] = max(to_watts(kw), 0)
    shares = allocate_watts(to_watts(requested_kw), caps)
    return {ven_id: to_kw(w) for ven_id, w in shares.items()}


def allocate_watts(requested_w: int, caps_w: Mapping[str, int]) -> dict[str, int]:
    """Max-min fair split of ``requested_w`` under per-VEN caps, all in watts."""
    if requested_w < 0:
        raise ValueError("requested watts must be non-negative")
    total = sum(caps_w.values())
    if requested_w >= total:
        return dict(caps_w)

    # Ascending caps; ties by id so that the leftover watts go deterministically.
    order = sorted(caps_w, key=lambda v: (caps_w[v], v))
    remaining = requested_w
    n = len(order)
    level = 0
    first_uncapped = n
    for k, ven_id in enumerate(order):
        cap = caps_w[ven_id]
        uncapped = n - k
        if cap * uncapped > remaining:
            # Everyone from k on has more headroom than the fair level.
            level = remaining // uncapped
            first_uncapped = k
            break
        remaining -= cap

    shares: dict[str, int] = {}
    for ven_id in order[:first_uncapped]:
        shares[ven_id] = caps_w[ven_id]
    uncapped_ids = sorted(order[first_uncapped:])
    leftover = remaining - level * len(uncapped_ids)
    for i, ven_id in enumerate(uncapped_ids):
        shares[ven_id] = level + (1 if i < leftover else 0)
    return shares


# Devices (OpenADR VENs) share the key space of allocate_shed with gridcore's
# VEN ids; this prefix cannot start a VEN id, so the two never meet.
_DEVICE = "\x00device:"


def allocate_with_devices(
    requested_kw: float,
    available_kw: Mapping[str, float],
    targeted: AbstractSet[str] | None,
    devices_kw: Mapping[str, float],
) -> tuple[float, dict[str, float]]:
    """Split ``requested_kw`` over the MQTT VENs an event targets (their
    availability now) and the OpenADR devices it targets (the kW their
    resources declare), by the same max-min fair water-filling.

    Returns the kW left to the MQTT VENs (the dispatcher allocates it among
    them at activation, on their availability then) and each device's share.
    What nobody can carry now stays with the MQTT VENs, as an event's kW did
    before devices took part."""
    pool = dict(among_targeted(available_kw, targeted))
    pool.update({_DEVICE + d: kw for d, kw in devices_kw.items()})
    shares = allocate_shed(requested_kw, pool)
    devices = {k.removeprefix(_DEVICE): kw for k, kw in shares.items() if k.startswith(_DEVICE)}
    left = to_kw(to_watts(requested_kw) - sum(to_watts(kw) for kw in devices.values()))
    return left, devices
