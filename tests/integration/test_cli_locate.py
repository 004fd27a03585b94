"""`gridcore locate FILE`: VEN positions from a deployment's records, so that
the dashboard's map (which needs one for every VEN) can draw the fleet. On
SQLite and PostgreSQL, through the command line's own entry point (plain
functions: the command runs its own event loop)."""

from __future__ import annotations

import asyncio
import getpass
from datetime import UTC, datetime
from pathlib import Path

import pytest

from adapters.sql.engine import create_engine
from adapters.sql.uow import SqlUnitOfWorkFactory
from entrypoints.cli import main
from gridcore import services
from gridcore.audit import AuditAction, AuditEntry
from gridcore.ports import Clock
from gridcore.ven import Location


class _Clock(Clock):
    def now(self) -> datetime:
        return datetime(2026, 12, 2, tzinfo=UTC)


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def url(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    url = str(request.getfixturevalue(f"migrated_{request.param}_url"))
    for name in ("DB_HOST", "DB_USER", "DB_NAME", "DB_PASSWORD", "DB_PORT"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("DATABASE_URL", url)
    asyncio.run(_register(url))
    return url


async def _register(url: str) -> None:
    engine = create_engine(url)
    try:
        uow = SqlUnitOfWorkFactory(engine)
        for n in (1, 2, 3):
            await services.register_ven(uow, _Clock(), ven_id=f"ven-{n}", name=f"Home {n}")
    finally:
        await engine.dispose()


def _positions(url: str) -> dict[str, Location | None]:
    return asyncio.run(_read_positions(url))


async def _read_positions(url: str) -> dict[str, Location | None]:
    engine = create_engine(url)
    try:
        async with SqlUnitOfWorkFactory(engine)() as uow:
            page = await uow.vens.page(limit=10)
        return {ven.id: ven.location for ven in page.items}
    finally:
        await engine.dispose()


def _run(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    code = main(argv)
    out, err = capsys.readouterr()
    return code, out, err


def test_positions_from_a_csv_file(
    url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    records = tmp_path / "positions.csv"
    records.write_text("venId,lat,lon\nven-1,37.4275,-122.1697\n\n# moved\nven-3, 51.5, -0.12\n")
    code, out, _ = _run(["locate", str(records)], capsys)
    assert (code, out) == (0, "set the positions of 2 VENs\n")
    assert _positions(url) == {
        "ven-1": Location(37.4275, -122.1697),
        "ven-2": None,
        "ven-3": Location(51.5, -0.12),
    }
    (entry,) = asyncio.run(_audit(url))  # who set them: the login running the command
    assert entry.action is AuditAction.VENS_LOCATED and entry.details == {"vens": 2}
    assert entry.actor == f"cli:{getpass.getuser()}"


async def _audit(url: str) -> tuple[AuditEntry, ...]:
    engine = create_engine(url)
    try:
        async with SqlUnitOfWorkFactory(engine)() as uow:
            return (await uow.audit.page()).items
    finally:
        await engine.dispose()


def test_every_wrong_row_is_named_and_nothing_is_set(
    url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    records = tmp_path / "positions.csv"
    records.write_text(
        "ven-1,37.4,-122.1\nven-2,north,-122.1\nven-3,91,0\nven-1,1,2\nven-2,1\nven-3,nan,0\n"
    )
    code, _, err = _run(["locate", str(records)], capsys)
    assert code == 2
    assert err.splitlines() == [
        f"gridcore: {records}:2: lat 'north' is not a number",
        f"gridcore: {records}:3: location.lat: must be between -90 and 90",
        f"gridcore: {records}:4: ven-1 is given two different positions",
        f"gridcore: {records}:5: expected venId,lat,lon, got 2 columns",
        f"gridcore: {records}:6: lat must be a finite number of degrees",
        "gridcore: nothing was changed",
    ]
    assert set((_positions(url)).values()) == {None}


def test_an_unknown_ven_changes_nothing(
    url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    records = tmp_path / "positions.csv"
    records.write_text("ven-1,37.4,-122.1\nven-9,1,2\n")
    code, _, err = _run(["locate", str(records)], capsys)
    assert code == 2
    assert err.strip() == "gridcore: venId: not registered: ven-9; nothing was changed"
    assert set((_positions(url)).values()) == {None}
    code, _, err = _run(["locate", str(tmp_path / "missing.csv")], capsys)
    assert code == 2 and "cannot read" in err and "missing.csv" in err
