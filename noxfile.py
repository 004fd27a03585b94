"""Developer tasks. `nox` runs the tests; `nox -s lint typecheck` the checks."""

from __future__ import annotations

import os

import nox

nox.options.sessions = ["tests"]
nox.options.reuse_existing_virtualenvs = True

PYPROJECT = nox.project.load_toml("pyproject.toml")


def _install(session: nox.Session, *groups: str) -> None:
    session.install("-e", ".")
    for group in groups:
        session.install(*nox.project.dependency_groups(PYPROJECT, group))


@nox.session
def tests(session: nox.Session) -> None:
    """Unit, integration and end-to-end tests (PostgreSQL and Mosquitto tests
    skip when those are down, unless GRIDCORE_REQUIRE_SERVICES=1)."""
    _install(session, "test")
    session.run("pytest", *(session.posargs or ["tests"]))


@nox.session
def lint(session: nox.Session) -> None:
    """ruff (style, bugs) and import-linter (dependencies point inwards)."""
    _install(session, "lint")
    session.run("ruff", "check", "src", "tests", "benchmarks", "noxfile.py")
    session.run("ruff", "format", "--check", "src", "tests", "benchmarks", "noxfile.py")
    session.run("lint-imports")


@nox.session
def typecheck(session: nox.Session) -> None:
    """mypy --strict on src."""
    _install(session, "typing")
    session.run("mypy")


@nox.session(default=False)
def bench(session: nox.Session) -> None:
    """Benchmarks (need PostgreSQL and Mosquitto); numbers go to docs/benchmarks.md."""
    _install(session, "bench")
    benches = sorted(p for p in os.listdir("benchmarks") if p.startswith("bench_"))
    for name in session.posargs or benches:
        session.run("python", f"benchmarks/{name}")


@nox.session(default=False)
def demo(session: nox.Session) -> None:
    """The whole system in one process: SQLite, in-memory broker, simulated VENs."""
    _install(session)
    session.run("gridcore", "demo", *session.posargs)
