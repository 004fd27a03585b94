"""The pure parts of the VTN: when an event has transpired (durations,
'now' starts, open intervals), the search filter, and bearer tokens."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from adapters.system import ManualClock
from entrypoints.openadr.tokens import InvalidToken, TokenService, parse_clients
from entrypoints.settings import Settings
from gridcore.openadr import (
    Kind,
    ObjectIndex,
    ObjectQuery,
    add_duration,
    event_end,
    index_of,
    parse_date_time,
)

T0 = datetime(2026, 1, 31, 12, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("duration", "expected"),
    [
        ("PT1H", T0 + timedelta(hours=1)),
        ("PT1.5S", T0 + timedelta(seconds=1.5)),
        ("P1W", T0 + timedelta(weeks=1)),
        ("P1DT2H30M", T0 + timedelta(days=1, hours=2, minutes=30)),
        ("P1M", datetime(2026, 2, 28, 12, 0, tzinfo=UTC)),  # no 31 February
        ("P1Y", datetime(2027, 1, 31, 12, 0, tzinfo=UTC)),
        ("-PT1H", T0 - timedelta(hours=1)),
        ("P9999Y", None),  # "may indicate infinity"
        ("P999Y", datetime(3025, 1, 31, 12, 0, tzinfo=UTC)),
        ("P99999999M", None),  # past the calendar (year 9999): as open
        ("PT99999999999999999999S", None),
    ],
)
def test_durations_are_calendar_aware_and_p9999y_is_open(
    duration: str, expected: datetime | None
) -> None:
    assert add_duration(T0, duration) == expected


@pytest.mark.parametrize("bad", ["1H", "PT", "P", "PT1H30", "P1H"])
def test_what_is_no_duration_is_refused(bad: str) -> None:
    with pytest.raises(ValueError, match="duration"):
        add_duration(T0, bad)


def test_date_times_are_rfc3339_with_an_offset() -> None:
    assert parse_date_time("2026-01-31T14:00:00+02:00") == T0
    assert parse_date_time("2026-01-31t12:00:00.000z") == T0
    for bad in ("2026-01-31T12:00:00", "2026-01-31 12:00:00Z", "yesterday"):
        with pytest.raises(ValueError, match="RFC 3339"):
            parse_date_time(bad)
    for bad in ("9999-12-31T23:00:00-05:00", "0001-01-01T00:00:00+01:00", "2026-02-30T00:00:00Z"):
        with pytest.raises(ValueError, match=r"calendar|day is out of range"):
            parse_date_time(bad)


def _interval(start: str | None = None, duration: str | None = None) -> dict[str, object]:
    period = {k: v for k, v in (("start", start), ("duration", duration)) if v is not None}
    return {"id": 0, "intervalPeriod": period, "payloads": []}


def test_an_event_ends_with_its_last_interval() -> None:
    event = {
        "programID": "p",
        "intervalPeriod": {"start": "2026-01-31T12:00:00Z", "duration": "PT1H"},
        "intervals": [_interval(), _interval(duration="PT2H"), _interval()],
    }
    assert event_end(event) == T0 + timedelta(hours=4)  # 1 h, then 2 h, then 1 h
    own = {"programID": "p", "intervals": [_interval("2026-01-31T12:00:00Z", "PT15M")]}
    assert event_end(own) == T0 + timedelta(minutes=15)
    looping = {**event, "duration": "P1D"}
    assert event_end(looping) == T0 + timedelta(days=1)
    whole = {
        "programID": "p",
        "intervalPeriod": {"start": "2026-01-31T12:00:00Z", "duration": "PT30M"},
    }
    assert event_end(whole) == T0 + timedelta(minutes=30)


@pytest.mark.parametrize(
    "event",
    [
        {"programID": "p"},
        {"programID": "p", "intervalPeriod": {"start": "0001-01-01T00:00:00Z", "duration": "PT1H"}},
        {
            "programID": "p",
            "intervalPeriod": {"start": "2026-01-31T12:00:00Z", "duration": "P9999Y"},
        },
        {"programID": "p", "intervals": [_interval(duration="PT1H")]},  # no start
        {
            "programID": "p",
            "intervalPeriod": {"start": "2026-01-31T12:00:00Z"},
            "intervals": [_interval()],
        },  # no duration
    ],
)
def test_an_event_not_known_to_end_never_transpires(event: dict[str, object]) -> None:
    assert event_end(event) is None
    index = index_of(Kind.EVENT, event)
    assert ObjectQuery(active_at=datetime(9000, 1, 1, tzinfo=UTC)).matches(index)


def test_the_query_filter_in_python() -> None:
    targeted = ObjectIndex(program_id="p", targets=("g1", "g2"))
    untargeted = ObjectIndex(program_id="p")
    g1 = frozenset({"g1"})
    assert ObjectQuery(targets_any=g1).matches(targeted)
    assert not ObjectQuery(targets_any=g1).matches(untargeted)
    assert ObjectQuery(targets_any=g1, or_untargeted=True).matches(untargeted)
    assert not ObjectQuery(targets_any=frozenset()).matches(targeted)  # nothing asked, nothing
    assert not ObjectQuery(program_id="q").matches(targeted)
    assert not ObjectQuery(client_id="c").matches(targeted)


def _service(clock: ManualClock, clients: str, key: str | None = None) -> TokenService:
    settings = Settings(
        database_url="memory://", gridcore_openadr_clients=clients, gridcore_openadr_token_key=key
    )
    return TokenService.from_settings(settings, clock)


CLIENTS = "bl:bl-1:bl-secret-0123456789,ven:ven-1:ven-secret-0123456789"


def test_tokens_carry_the_client_and_its_scopes_and_expire() -> None:
    clock = ManualClock(T0)
    service = _service(clock, CLIENTS)
    ven = service.authenticate("ven-1", "ven-secret-0123456789")
    assert ven is not None
    assert service.authenticate("ven-1", "bl-secret-0123456789") is None
    assert service.authenticate("bl-1", "ven-secret-0123456789") is None
    token = service.issue(ven).token
    assert service.verify(token) == ven
    # another process of the same configuration accepts it; another configuration does not
    assert _service(clock, CLIENTS).verify(token) == ven
    with pytest.raises(InvalidToken):
        _service(clock, CLIENTS.replace("ven-secret", "new-secret")).verify(token)
    header, claims, signature = token.split(".")
    with pytest.raises(InvalidToken):
        service.verify(f"{header}.{claims}x.{signature}")
    clock.advance(timedelta(seconds=3600))
    with pytest.raises(InvalidToken, match="expired"):
        service.verify(token)


def test_a_configured_key_signs_instead() -> None:
    clock = ManualClock(T0)
    key = "k" * 40
    ven = _service(clock, CLIENTS, key).authenticate("ven-1", "ven-secret-0123456789")
    assert ven is not None
    token = _service(clock, CLIENTS, key).issue(ven).token
    assert _service(clock, CLIENTS, key).verify(token) == ven
    with pytest.raises(InvalidToken):
        _service(clock, CLIENTS).verify(token)
    # removing a client revokes its tokens, even under a fixed key
    with pytest.raises(InvalidToken, match="no longer configured"):
        _service(clock, CLIENTS.split(",")[0], key).verify(token)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("admin:x:secret-0123456789abc", "expected"),
        ("ven:x", "expected"),
        ("ven:x:short", "shorter"),
        ("ven::secret-0123456789abc", "clientID"),
        ("ven:x:secret-0123456789abc,bl:x:secret-0123456789abd", "twice"),
    ],
)
def test_client_configuration_mistakes_are_named(text: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        parse_clients(text)


def test_serve_refuses_a_malformed_client_entry_before_it_starts() -> None:
    from entrypoints.api.server import check_access

    settings = Settings(
        database_url="memory://",
        gridcore_api_tokens="control:control-token-0123456789",
        gridcore_openadr_clients="ven:ven-1:short",
    )
    with pytest.raises(ValueError, match="GRIDCORE_OPENADR_CLIENTS entry 1: secret shorter"):
        check_access(settings, "127.0.0.1")
