"""The dispatcher held to the invariants of tests/dispatch_machine.py, on the
in-memory adapters (the PostgreSQL run is in tests/integration)."""

from __future__ import annotations

import asyncio

import pytest
from hypothesis import settings
from tests.dispatch_machine import PHASES, DispatchMachine

from adapters.memory.repositories import InMemoryUnitOfWorkFactory
from gridcore.ports import UnitOfWorkFactory

pytestmark = pytest.mark.slow  # 100 runs of 50 steps: seconds


class InMemoryDispatch(DispatchMachine):
    def open_store(self) -> tuple[asyncio.AbstractEventLoop, UnitOfWorkFactory]:
        return asyncio.new_event_loop(), InMemoryUnitOfWorkFactory()

    def close_store(self) -> None:
        self.loop.close()


InMemoryDispatch.TestCase.settings = settings(
    max_examples=100, stateful_step_count=50, deadline=None, phases=PHASES
)
TestInMemoryDispatch = InMemoryDispatch.TestCase
