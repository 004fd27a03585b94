"""The measurement settings: validated at start, one message each, and the
baseline method kept under its own name (reports are kept under it)."""

from __future__ import annotations

from datetime import date, timedelta

import pytest
from pydantic import ValidationError

from entrypoints.settings import Settings


def test_the_programme_from_settings() -> None:
    settings = Settings(
        gridcore_timezone=" America/Los_Angeles ",
        gridcore_baseline_method="Meter-Before-60",
        gridcore_holidays="2026-12-25, 2027-01-01",
        gridcore_rebound_minutes=0,
    )
    programme = settings.programme
    assert str(programme.tz) == "America/Los_Angeles"
    assert programme.method == "meter-before"  # its own name: "-60" is the default
    assert programme.holidays == {date(2026, 12, 25), date(2027, 1, 1)}
    assert programme.rebound == timedelta(0)
    assert Settings().programme.method == "high-4-of-5"


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("gridcore_timezone", "Mars/Olympus", "is not a time zone; use an IANA name"),
        ("gridcore_baseline_method", "best-guess", "unknown method 'best-guess'"),
        ("gridcore_holidays", "2026-12-25,christmas", "'christmas' is not a date"),
        ("gridcore_rebound_minutes", 361, "less than or equal to 360"),
    ],
)
def test_a_wrong_measurement_setting_says_what_is_allowed(
    field: str, value: object, message: str
) -> None:
    with pytest.raises(ValidationError, match=message):
        Settings(**{field: value})
