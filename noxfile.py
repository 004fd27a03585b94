"""Developer tasks. `nox` runs the tests; `nox -s lint typecheck` the checks."""

from __future__ import annotations

import os

import nox

nox.options.sessions = ["tests"]
nox.options.reuse_existing_virtualenvs = True

PYPROJECT = nox.project.load_toml("pyproject.toml")

# The lock file: every session installs these exact versions (`nox -s lock` rewrites it).
LOCK = "constraints.txt"
LOCK_HEADER = """\
# The lock file: the exact version of every package the nox sessions install (the
# project's dependencies, all its dependency groups, and nox itself), as a pip
# constraints file (`pip install -c constraints.txt ...`). CPython 3.11 on Linux.
# Do not edit by hand: after changing dependencies in pyproject.toml, regenerate it
# with `python3 -m nox -s lock` (a fresh venv, installed unconstrained, `pip freeze`).
"""


def _install(session: nox.Session, *groups: str) -> None:
    session.install("-c", LOCK, "-e", ".")
    for group in groups:
        session.install("-c", LOCK, *nox.project.dependency_groups(PYPROJECT, group))


# A pytest process on each core (pytest-xdist); the tests that share the broker's
# fixed topics run one after another on one of them (tests/conftest.py's scheduler).
PARALLEL = ("-n", "auto")


@nox.session
def tests(session: nox.Session) -> None:
    """Unit, integration and end-to-end tests (PostgreSQL and Mosquitto tests
    skip when those are down, unless GRIDCORE_REQUIRE_SERVICES=1)."""
    _install(session, "test")
    session.run("pytest", *PARALLEL, *(session.posargs or ["tests"]))


def _not_slow(session: nox.Session, *paths: str) -> None:
    _install(session, "test")
    session.run("pytest", *PARALLEL, "-m", "not slow", *(session.posargs or paths))


@nox.session(default=False)
def unit(session: nox.Session) -> None:
    """The edit-test loop: the unit tests not marked slow (no services needed)."""
    _not_slow(session, "tests/unit")


@nox.session(default=False)
def fast(session: nox.Session) -> None:
    """Every test not marked slow, unit and integration (`nox -s tests` runs
    them all, the end-to-end ones too)."""
    _not_slow(session, "tests")


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


@nox.session(default=False, reuse_venv=False)
def lock(session: nox.Session) -> None:
    """Rewrite constraints.txt: install the project, every dependency group and nox into
    a fresh venv without the lock, and freeze what got installed."""
    requirements: list[str] = []
    for group in PYPROJECT["dependency-groups"]:
        for requirement in nox.project.dependency_groups(PYPROJECT, group):
            if requirement not in requirements:
                requirements.append(requirement)
    session.install("-e", ".", *requirements, "nox")
    frozen = session.run(
        "python", "-m", "pip", "freeze", "--exclude-editable", silent=True, stderr=None
    )
    pins = [line for line in str(frozen).splitlines() if "==" in line]
    if not pins:  # e.g. under --install-only, where run() runs nothing
        session.error(f"pip freeze gave no pins; {LOCK} left as it was")
    with open(LOCK, "w") as lock_file:
        lock_file.write(LOCK_HEADER + "\n".join(pins) + "\n")
    session.log(f"{LOCK}: {len(pins)} packages pinned")
