"""The domain is plain Python: importing it pulls in nothing but the standard
library, so another tool can use it without a database, broker or web stack.

Each check runs in a fresh interpreter: this test process has already imported
pytest, hypothesis and whatever other tests loaded."""

from __future__ import annotations

import json
import pkgutil
import subprocess
import sys
import textwrap

import pytest

import gridcore

SUBMODULES = sorted(f"gridcore.{m.name}" for m in pkgutil.iter_modules(gridcore.__path__))

# Runs in the child: import the given modules, report what got imported that
# was not loaded before (the interpreter's own start-up, .pth hooks included).
PROBE = textwrap.dedent(
    """
    import importlib, json, sys
    before = set(sys.modules)
    for name in sys.argv[1:]:
        importlib.import_module(name)
    new = sorted(set(sys.modules) - before)
    print(json.dumps(new))
    """
)


def imported_by(*modules: str) -> list[str]:
    done = subprocess.run(
        [sys.executable, "-c", PROBE, *modules],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.strip().splitlines()[-1])


def foreign(modules: list[str]) -> list[str]:
    """Modules neither from the standard library nor from gridcore."""
    return [
        name
        for name in modules
        if (top := name.partition(".")[0]) != "gridcore" and top not in sys.stdlib_module_names
    ]


def test_the_domain_modules_are_the_expected_ones() -> None:
    # A guard for the test itself: a renamed or missing module would make the
    # purity checks below vacuous.
    assert {
        "gridcore.allocation",
        "gridcore.correlation",
        "gridcore.curtailment",
        "gridcore.errors",
        "gridcore.events",
        "gridcore.quantities",
        "gridcore.telemetry",
        "gridcore.ven",
    } <= set(SUBMODULES)


def test_importing_gridcore_and_all_its_modules_loads_only_the_standard_library() -> None:
    new = imported_by("gridcore", *SUBMODULES)
    assert set(SUBMODULES) <= set(new)
    assert foreign(new) == []


@pytest.mark.parametrize("module", SUBMODULES)
def test_each_domain_module_alone_loads_only_the_standard_library(module: str) -> None:
    new = imported_by(module)
    assert module in new
    assert foreign(new) == []


def test_the_probe_would_see_a_foreign_import() -> None:
    # pytest is installed but not in the standard library: it must be reported.
    assert "pytest" in foreign(imported_by("pytest"))


def test_every_public_name_resolves() -> None:
    assert len(gridcore.__all__) == len(set(gridcore.__all__))
    missing = [name for name in gridcore.__all__ if not hasattr(gridcore, name)]
    assert missing == []
    for name in gridcore.__all__:
        assert getattr(gridcore, name) is not None
