"""No access control on an address other machines reach is refused at start
(issue 11 item 11, issue 12 item 7), for `serve` and for the demo, unless the
operator opts in with --insecure-open-access or GRIDCORE_ALLOW_OPEN_ACCESS,
and then it starts with a warning."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from entrypoints import cli
from entrypoints.api.auth import OpenAccessRefused
from entrypoints.api.server import check_access, open_access_refusal
from entrypoints.settings import Settings

REACHABLE = ["0.0.0.0", "::", "192.168.1.20", "10.0.0.5", "gridcore.example", ""]
LOOPBACK = ["127.0.0.1", "127.0.0.2", "::1", "localhost"]


@pytest.mark.parametrize("host", REACHABLE)
def test_no_access_control_on_a_reachable_address_is_refused(host: str) -> None:
    why = open_access_refusal(host, opted_in=False)
    assert why is not None and "\n" not in why
    for remedy in ("GRIDCORE_API_TOKENS", "--host 127.0.0.1", "--insecure-open-access"):
        assert remedy in why
    assert open_access_refusal(host, opted_in=True) is None


@pytest.mark.parametrize("host", LOOPBACK)
def test_loopback_needs_no_opt_in(host: str) -> None:
    assert open_access_refusal(host, opted_in=False) is None


def test_the_demo_is_not_told_to_set_tokens_it_does_not_use() -> None:
    why = open_access_refusal("0.0.0.0", opted_in=False, demo=True)
    assert why is not None and "GRIDCORE_API_TOKENS" not in why
    assert "the demo" in why and "--insecure-open-access" in why


def _settings(**values: object) -> Settings:
    return Settings(database_url="memory://", gridcore_auth="disabled", **values)  # type: ignore[arg-type]


def test_serve_opts_in_by_flag_or_setting_and_warns(caplog: pytest.LogCaptureFixture) -> None:
    with pytest.raises(OpenAccessRefused, match=r"0\.0\.0\.0 is not a loopback address"):
        check_access(_settings(), "0.0.0.0")
    with caplog.at_level(logging.WARNING):
        assert not check_access(_settings(), "0.0.0.0", open_access=True).enabled
        assert not check_access(_settings(gridcore_allow_open_access=True), "::").enabled
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 2 and all("DISABLED" in w for w in warnings)
    # Tokens make any address fine; loopback needs no opt-in and gets no warning.
    tokens = Settings(database_url="memory://", gridcore_api_tokens="read:" + "r" * 16)
    assert check_access(tokens, "0.0.0.0").enabled
    caplog.clear()
    check_access(_settings(), "127.0.0.1")
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]


@pytest.fixture
def clean_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """No .env and no GRIDCORE_* from the machine running the tests."""
    monkeypatch.chdir(tmp_path)
    for name in ("GRIDCORE_AUTH", "GRIDCORE_ALLOW_OPEN_ACCESS", "GRIDCORE_API_TOKENS"):
        monkeypatch.delenv(name, raising=False)
    return tmp_path


def test_serve_on_all_interfaces_without_auth_exits_with_one_line(
    clean_env: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("GRIDCORE_AUTH", "disabled")
    assert cli.main(["serve", "--host", "0.0.0.0"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("gridcore: GRIDCORE_AUTH=disabled and 0.0.0.0")
    assert err.count("\n") == 1 and "Traceback" not in err


def test_demo_on_all_interfaces_exits_with_one_line_before_any_work(
    clean_env: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    db = clean_env / "demo.db"
    assert cli.main(["demo", "--host", "0.0.0.0", "--db", str(db)]) == 2
    captured = capsys.readouterr()
    assert captured.err.startswith("gridcore: the demo has no access control and 0.0.0.0")
    assert captured.err.count("\n") == 1 and captured.out == ""
    assert not db.exists()
