"""What the SQL telemetry store makes of load-line values a column cannot hold
(the inline fast path of ``_load_row`` must agree with ``_number``/``_text``)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from storage_contract import Backend, open_backend

from gridcore.telemetry import LoadSample, TelemetrySample

T0 = datetime(2024, 7, 10, 15, 0, tzinfo=UTC)


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
async def backend(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Backend]:
    async for opened in open_backend(request, tmp_path):
        yield opened


# Expected None: the sample is refused (with its reason), the rest of a batch goes on.
ODD: list[tuple[str, dict[str, Any], dict[str, Any] | None]] = [
    ("finite float", {"current_power_kw": 2.5}, {"current_power_kw": 2.5}),
    ("int kW", {"current_power_kw": 3}, {"current_power_kw": 3.0}),
    ("nan", {"current_power_kw": float("nan")}, {"current_power_kw": None}),
    ("inf", {"shed_capability_kw": float("inf")}, {"shed_capability_kw": None}),
    ("-inf", {"capacity_kw": float("-inf")}, {"capacity_kw": None}),
    ("bool kW", {"current_power_kw": True}, {"current_power_kw": None}),
    ("str kW", {"current_power_kw": "5.0"}, {"current_power_kw": None}),
    ("int flag", {"enabled": 1}, {"enabled": None}),
    ("bool priority", {"priority": True}, {"priority": None}),
    ("big priority", {"priority": -(2**31) - 1}, {"priority": None}),
    ("int32 priority", {"priority": 2**31 - 1}, {"priority": 2**31 - 1}),
    ("int32 min priority", {"priority": -(2**31)}, {"priority": -(2**31)}),
    ("long name", {"name": "n" * 256}, None),  # refused: it would fail the batch's COPY
    ("long type", {"type": "t" * 65}, None),
    ("nul text", {"name": "a\x00b", "type": "e\x00v"}, {"name": "ab", "type": "ev"}),
    ("non-str text", {"name": 42}, {"name": "42"}),
]


@pytest.mark.parametrize(("case", "given", "expected"), ODD, ids=[c[0] for c in ODD])
async def test_load_values_are_stored_or_nulled(
    backend: Backend, case: str, given: dict[str, Any], expected: dict[str, Any] | None
) -> None:
    line = LoadSample("c1", **given)
    result = await backend.store.append([TelemetrySample("ven-001", T0, loads=(line,))])
    if expected is None:
        assert result.stored == 0, case
        ((_, reason),) = result.refusals()
        assert "at most" in reason, case
        return
    assert result.stored == 1, case
    (sample,) = (await backend.queries.telemetry("ven-001")).items
    (stored,) = sample.loads
    for name, value in expected.items():
        assert getattr(stored, name) == value, (case, name)
