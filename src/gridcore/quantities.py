"""Power quantities. kW floats travel on the wire; allocation and sums work in
whole watts so that shares add up exactly."""

from __future__ import annotations

import math

from gridcore.errors import InvalidInput

# Far beyond any grid; keeps watt arithmetic exact and refuses typos like 1e308.
MAX_KW = 1e9


def to_watts(kw: float) -> int:
    """Round kW to whole watts (half away from zero, never banker's rounding)."""
    return math.floor(kw * 1000.0 + 0.5) if kw >= 0 else -math.floor(-kw * 1000.0 + 0.5)


def to_kw(watts: int) -> float:
    return watts / 1000.0


def require_finite_kw(field: str, kw: float, *, positive: bool = False) -> float:
    """Reject what no meter can report: bools, NaN, infinities, negatives."""
    if isinstance(kw, bool) or not isinstance(kw, (int, float)):
        raise InvalidInput(field, f"must be a number of kW, got {type(kw).__name__}")
    if not math.isfinite(kw):
        raise InvalidInput(field, "must be a finite number of kW")
    if positive and kw <= 0:
        raise InvalidInput(field, "must be greater than 0 kW")
    if kw < 0:
        raise InvalidInput(field, "must not be negative")
    if kw > MAX_KW:
        raise InvalidInput(field, f"must be at most {MAX_KW:.0f} kW (1 TW)")
    return float(kw)
