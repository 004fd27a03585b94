"""Clocks and id generators: the wall clock and the OS's randomness for
production, and controllable versions for tests and simulations."""

from __future__ import annotations

import secrets
from datetime import UTC, datetime, timedelta


class SystemClock:
    def now(self) -> datetime:
        return datetime.now(UTC)


class ManualClock:
    """A clock that moves only when told to."""

    def __init__(self, start: datetime) -> None:
        if start.tzinfo is None:
            raise ValueError("ManualClock needs a timezone-aware start")
        self._now = start.astimezone(UTC)

    def now(self) -> datetime:
        return self._now

    def advance(self, by: timedelta) -> datetime:
        if by < timedelta(0):
            raise ValueError("a clock never goes backwards")
        self._now += by
        return self._now

    def set(self, at: datetime) -> None:
        if at < self._now:
            raise ValueError("a clock never goes backwards")
        self._now = at


class RandomIds:
    def hex8(self) -> str:
        return secrets.token_hex(4)


class SequentialIds:
    """Predictable ids (00000001, 00000002, ...) for tests and reproducible runs."""

    def __init__(self, start: int = 1) -> None:
        self._next = start

    def hex8(self) -> str:
        value = self._next
        self._next += 1
        return f"{value:08x}"
