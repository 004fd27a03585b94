"""The operator command line's parts that need no server: times and
durations as typed, the listener's lines (a bad payload never stops it), the
filters it subscribes to, and the API client's refusals turned into what to do."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest

from entrypoints.cli import Failure, main
from entrypoints.operator import client
from entrypoints.operator.client import Api
from entrypoints.operator.listen import Listener, filters_for
from entrypoints.operator.when import parse_duration, parse_time
from entrypoints.settings import Settings

NOW = datetime(2026, 12, 3, 16, 0, tzinfo=UTC)
AT = datetime(2026, 12, 3, 16, 0, 5, 250_000, tzinfo=UTC)


def test_durations_and_times_as_an_operator_types_them() -> None:
    assert parse_duration("15m") == timedelta(minutes=15)
    assert parse_duration("1h30m") == timedelta(minutes=90)
    assert parse_duration("90s") == timedelta(seconds=90)
    for wrong in ("15", "m", "-5m", "0s", "1x", ""):
        with pytest.raises(ValueError, match="duration"):
            parse_duration(wrong)
    assert parse_time("now", NOW) == NOW
    assert parse_time("+15m", NOW) == NOW + timedelta(minutes=15)
    assert parse_time("2026-12-03T17:00:00Z", NOW) == datetime(2026, 12, 3, 17, tzinfo=UTC)
    assert parse_time("2026-12-03T17:00", NOW) == datetime(2026, 12, 3, 17, tzinfo=UTC)
    assert parse_time("2026-12-03T18:00+01:00", NOW) == datetime(2026, 12, 3, 17, tzinfo=UTC)
    with pytest.raises(ValueError, match="ISO 8601"):
        parse_time("tomorrow", NOW)


def settings(**values: object) -> Settings:
    return Settings(database_url="memory://", mqtt_broker="127.0.0.1", **values)  # type: ignore[arg-type]


def test_listen_lines_show_the_key_fields_and_survive_bad_payloads() -> None:
    listener = Listener(settings(), None, as_json=False)
    telemetry = {"venId": "ven-1", "usedPowerKw": 8.2, "shedPowerKw": 4.8, "eventId": "evt-1"}
    (line,) = listener.lines("volttron/metering", json.dumps(telemetry).encode(), AT)
    assert (
        line
        == "16:00:05.250  metering   ven-1             power 8.20 kW  shed 4.80 kW  event evt-1"
    )
    ack = {"op": "event", "status": "accepted", "correlationId": "evt-1-0", "actual_shed_kw": 2.0}
    (line,) = listener.lines("ven/ack/ven-2", json.dumps(ack).encode(), AT)
    assert "ack" in line and "ven-2" in line
    assert "status accepted" in line and "shed 2.00 kW" in line and "correlationId evt-1-0" in line
    command = {"op": "ping", "correlationId": "cmd-1", "venId": "ven-2"}
    (line,) = listener.lines("ven/cmd/ven-2", json.dumps(command).encode(), AT)
    assert "command" in line and "op ping" in line
    (line,) = listener.lines("ven/ack/ven-2", b"\xff{not json", AT)
    assert "UNREADABLE" in line and "ven-2" in line
    (line,) = listener.lines("ven/ack/ven-2", b"[1, 2]", AT)
    assert "UNREADABLE" in line
    for poison in (b"[" * 100_000, b"[" + b"1" * 5000 + b"]"):  # recursion; int digits
        (line,) = listener.lines("ven/ack/ven-2", poison, AT)
        assert "UNREADABLE" in line
    batch = [{"venId": "ven-1", "usedPowerKw": 1.0}, {"venId": "ven-3", "usedPowerKw": 2.0}]
    assert len(listener.lines("volttron/metering", json.dumps(batch).encode(), AT)) == 2


def test_listen_filters_by_ven_and_prints_json_lines() -> None:
    listener = Listener(settings(), "ven-1", as_json=True)
    other = json.dumps({"venId": "ven-9", "usedPowerKw": 1.0}).encode()
    assert listener.lines("volttron/metering", other, AT) == []
    assert listener.lines("ven/ack/ven-9", b"{}", AT) == []
    mine = {"venId": "ven-1", "usedPowerKw": 1.0, "extra": [1]}
    (line,) = listener.lines("volttron/metering", json.dumps(mine).encode(), AT)
    assert json.loads(line) == {
        "at": "2026-12-03T16:00:05.250000Z",
        "topic": "volttron/metering",
        "kind": "metering",
        "venId": "ven-1",
        "payload": mine,
    }
    (line,) = listener.lines("ven/ack/ven-1", b"oops", AT)
    assert json.loads(line)["unreadable"] == "oops"


def test_listen_subscribes_to_the_documents_topics_narrowed_to_a_ven() -> None:
    configured = settings(mqtt_topic_metering="site/metering")
    every = filters_for(configured, None, None)
    assert {"site/metering", "ven/ack/+", "ven/cmd/+", "ven/telemetry/+"} <= set(every)
    assert "volttron/metering" not in every
    narrowed = filters_for(configured, None, "ven-7")
    assert "ven/ack/ven-7" in narrowed and "$aws/things/ven-7/shadow/update" in narrowed
    assert "site/metering" in narrowed  # names no VEN: filtered by payload
    assert filters_for(configured, ["ven/ack/+"], None) == ["ven/ack/+"]
    assert set(filters_for(configured, ["default", "x/y"], None)) == {*every, "x/y"}


def _api(status: int, body: object) -> Api:
    def answer(request: httpx.Request) -> httpx.Response:
        return httpx.Response(status, json=body)

    return Api("http://api", "t", transport=httpx.MockTransport(answer))


@pytest.mark.parametrize(
    ("status", "body", "said"),
    [
        (401, {"detail": "the bearer token is not valid"}, "set GRIDCORE_TOKEN"),
        (403, {"detail": "this needs a token with control scope"}, "control scope"),
        (404, {"detail": "VEN 'x' not found"}, "VEN 'x' not found (`gridcore vens` lists"),
        (422, {"detail": [], "message": "body.endTime: is in the past"}, "is in the past"),
        (409, {"detail": "event evt-1 is completed"}, "refused (409)"),
        (503, {"detail": "database unavailable"}, "its log says more"),
    ],
)
def test_refusals_say_what_to_do(status: int, body: object, said: str) -> None:
    with pytest.raises(Failure) as raised, _api(status, body) as api:
        api.get("/api/vens/x")
    assert said in str(raised.value)


def test_an_unreachable_api_is_one_line_and_exit_1(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("GRIDCORE_URL", "http://127.0.0.1:9")
    monkeypatch.setenv("DATABASE_URL", "memory://")
    assert main(["events", "list"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("gridcore: cannot reach the API at http://127.0.0.1:9")
    assert "Traceback" not in err
    assert main(["events", "create", "--kw", "1", "--start", "now"]) == 2
    assert "--duration" in capsys.readouterr().err


def test_the_token_comes_from_the_environment_or_a_file(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    seen: list[str | None] = []

    def answer(request: httpx.Request) -> httpx.Response:
        seen.append(request.headers.get("authorization"))
        return httpx.Response(200, json=[], headers={"X-Total-Count": "0"})

    monkeypatch.setattr(client, "TRANSPORT", httpx.MockTransport(answer))
    monkeypatch.setenv("DATABASE_URL", "memory://")
    monkeypatch.setenv("GRIDCORE_TOKEN", "from-the-environment")
    (tmp_path / "token").write_text("\n  from-the-file  \n")
    assert main(["events", "list"]) == 0
    assert main(["events", "list", "--token-file", str(tmp_path / "token")]) == 0
    monkeypatch.delenv("GRIDCORE_TOKEN")
    monkeypatch.setenv("GRIDCORE_TOKEN_FILE", str(tmp_path / "token"))
    assert main(["events", "list"]) == 0
    assert seen == ["Bearer from-the-environment", "Bearer from-the-file", "Bearer from-the-file"]
    capsys.readouterr()
    assert main(["vens", "--token-file", str(tmp_path / "missing")]) == 2
    assert "cannot read the token file" in capsys.readouterr().err


def test_a_large_fleet_is_read_a_page_at_a_time_with_progress(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    fleet = [
        {"id": f"ven-{n}", "name": f"Home {n}", "status": "online" if n != 2 else "offline",
         "lastSeen": "2026-12-03T16:00:00Z", "currentPower": 2.0 * n,
         "controllablePower": 1.5, "responseTime": 40.0 if n == 1 else None}
        for n in range(1, 6)
    ]  # fmt: skip
    asked: list[tuple[str, str]] = []

    def answer(request: httpx.Request) -> httpx.Response:
        limit, offset = int(request.url.params["limit"]), int(request.url.params["offset"])
        asked.append((request.url.params["limit"], request.url.params["offset"]))
        page = fleet[offset : offset + limit]
        return httpx.Response(200, json=page, headers={"X-Total-Count": str(len(fleet))})

    monkeypatch.setattr(client, "TRANSPORT", httpx.MockTransport(answer))
    monkeypatch.setenv("DATABASE_URL", "memory://")
    assert main(["vens", "--page-size", "2"]) == 0
    out, err = capsys.readouterr()
    assert asked == [("2", "0"), ("2", "2"), ("2", "4")]
    assert err.splitlines() == ["read 2 of 5 VENs", "read 4 of 5 VENs", "read 5 of 5 VENs"]
    lines = out.splitlines()
    assert lines[0].split() == ["VEN", "NAME", "STATUS", "LAST", "SEEN", "POWER", "kW", "SHED",
                                "kW", "RTT", "ms"]  # fmt: skip
    assert lines[1].split()[:4] == ["ven-1", "Home", "1", "online"]
    assert lines[1].split()[-3:] == ["2.00", "1.50", "40"]
    assert lines[-1] == "5 VENs, 4 online; available shed 7.50 kW"
    with pytest.raises(SystemExit, match="2"):
        main(["vens", "--page-size", "0"])
    assert "--page-size: 0: must be 1 to 10000" in capsys.readouterr().err


def test_listen_never_takes_the_workers_client_id(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("DATABASE_URL", "memory://")
    monkeypatch.setenv("MQTT_BROKER", "127.0.0.1")
    monkeypatch.setenv("MQTT_CLIENT_ID", "gridcore-backend")
    assert main(["listen", "--client-id", "gridcore-backend"]) == 2
    assert "is the worker's" in capsys.readouterr().err
