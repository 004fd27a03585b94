"""The parallel runs' one rule: every test that uses the broker runs in the one
scope that xdist gives a single worker at a time (tests/conftest.py)."""

from __future__ import annotations

import re
from pathlib import Path

from tests.conftest import broker_scope

TESTS = Path(__file__).resolve().parents[1]
USES_THE_BROKER = re.compile(r"mark\.mosquitto|mosquitto_address|MosquittoProcess")


def test_every_test_file_that_uses_the_broker_runs_in_turn() -> None:
    users = [
        path.relative_to(TESTS.parent).as_posix()
        for path in TESTS.rglob("test_*.py")
        if USES_THE_BROKER.search(path.read_text()) and path != Path(__file__).resolve()
    ]
    assert users, "the pattern finds the broker's tests"
    assert [u for u in users if broker_scope(f"{u}::test") != "broker"] == []


def test_the_other_tests_are_each_a_scope_of_their_own() -> None:
    assert broker_scope("tests/e2e/test_demo.py::test_x") == "broker"
    assert broker_scope("tests/unit/test_allocation.py::test_x[1]") == (
        "tests/unit/test_allocation.py::test_x[1]"
    )
