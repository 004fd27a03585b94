"""The audit trail through the API: each operator action the API takes is
recorded with the name of the token that asked (named ``name:scope:token``
entries, derived names for ``scope:token`` ones, ``anonymous`` with access
control off), and ``GET /api/audit`` lists them, filtered and paged."""

from __future__ import annotations

import hashlib
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from entrypoints.api.auth import TokenChecker, parse_tokens
from entrypoints.api.sessions import SessionKeeper
from entrypoints.settings import Settings
from gridcore.ven import Load, Ven

ALICE = "alice-token-0123456789"
LEGACY = "legacy-control-0123456789"
READER = "reader:token:with:colons"  # a token may hold ':'
TOKENS = f"alice:control:{ALICE}, control:{LEGACY}, auditor:read:{READER}"
LEGACY_NAME = "control-" + hashlib.sha256(LEGACY.encode()).hexdigest()[:8]


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def soon(minutes: int) -> str:
    return (datetime.now(UTC) + timedelta(minutes=minutes)).isoformat().replace("+00:00", "Z")


async def _client(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://gridcore") as c:
        yield c


@pytest.fixture
async def app(api_app: Callable[..., FastAPI]) -> FastAPI:
    return api_app(Settings(database_url="memory://", gridcore_api_tokens=TOKENS))  # type: ignore[call-arg]


@pytest.fixture
async def client(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    async for c in _client(app):
        yield c


async def _trail(client: httpx.AsyncClient, **params: Any) -> dict[str, Any]:
    answer = await client.get("/api/audit", params=params, headers=bearer(READER))
    assert answer.status_code == 200, answer.text
    body: dict[str, Any] = answer.json()
    return body


def test_token_names_explicit_derived_and_never_a_scope() -> None:
    checker = TokenChecker(parse_tokens(TOKENS))
    alice, legacy, reader = (checker.token_of(t) for t in (ALICE, LEGACY, READER))
    assert alice is not None and alice.name == "alice"
    assert legacy is not None and legacy.name == LEGACY_NAME  # stable: from the token
    assert reader is not None and reader.name == "auditor" and reader.scope.value == "read"
    # A first field that is a scope is the older form, whatever the token holds.
    (older,) = parse_tokens("read:control:0123456789abcdef")
    assert older.scope.value == "read" and older.name.startswith("read-")
    for wrong in ("bad name:read:0123456789abcdef", "alice:admin:0123456789abcdef"):
        with pytest.raises(ValueError, match="entry 1"):
            parse_tokens(wrong)


def test_a_console_session_carries_its_tokens_name() -> None:
    keeper = SessionKeeper(TokenChecker(parse_tokens(TOKENS)))
    opened = keeper.open(ALICE)
    assert opened is not None
    cookie, session = opened
    assert session.name == "alice"
    read = keeper.read(cookie)
    assert read is not None and read.name == "alice" and read.can_control


async def test_each_action_is_recorded_with_the_tokens_name(
    app: FastAPI, client: httpx.AsyncClient
) -> None:
    as_alice, as_legacy = bearer(ALICE), bearer(LEGACY)
    created = await client.post(
        "/api/vens", json={"id": "ven-a", "name": "A", "targets": ["north"]}, headers=as_alice
    )
    assert created.status_code == 201, created.text
    patched = await client.patch("/api/vens/ven-a", json={"name": "A2"}, headers=as_legacy)
    assert patched.status_code == 200, patched.text
    # A VEN with a configured load, for the load's configuration and a shed command.
    storage = app.state.container.storage()
    async with storage.uow_factory() as uow:
        load = Load(id="ev1", type="ev", shed_capability_kw=7.0)
        await uow.vens.add(
            Ven(id="ven-b", name="B", registered_at=datetime.now(UTC), loads=(load,))
        )
        await uow.commit()
    load_patch = await client.patch(
        "/api/vens/ven-b/loads/ev1", json={"priority": 3, "capacityKw": 9.5}, headers=as_alice
    )
    assert load_patch.status_code == 200, load_patch.text
    shed = await client.post("/api/vens/ven-b/loads/ev1/commands/shed", headers=as_alice)
    assert shed.status_code == 202, shed.text
    ping = await client.post("/api/vens/ven-a/ping", headers=as_legacy)
    assert ping.status_code == 202, ping.text
    event = await client.post(
        "/api/events",
        json={"startTime": soon(60), "endTime": soon(90), "requestedReductionKw": 2.5},
        headers=as_alice,
    )
    assert event.status_code == 201, event.text
    event_id = event.json()["id"]
    assert (await client.delete(f"/api/events/{event_id}", headers=as_alice)).status_code == 200
    assert (await client.delete("/api/vens/ven-a", headers=as_legacy)).status_code == 204
    # Refused: no entry.
    refused = await client.post(
        "/api/events",
        json={
            "startTime": soon(1),
            "endTime": soon(2),
            "requestedReductionKw": 1,
            "targets": ["x"],
        },
        headers=as_alice,
    )
    assert refused.status_code == 422
    assert (await client.post("/api/vens/ven-zz/ping", headers=as_alice)).status_code == 404

    trail = await _trail(client, limit=100)
    assert trail["totalCount"] == 8
    done = [(e["actor"], e["action"]) for e in reversed(trail["entries"])]
    assert done == [
        ("alice", "ven.registered"),
        (LEGACY_NAME, "ven.changed"),
        ("alice", "load.changed"),
        ("alice", "command.sent"),
        (LEGACY_NAME, "command.sent"),
        ("alice", "event.created"),
        ("alice", "event.cancelled"),
        (LEGACY_NAME, "ven.deregistered"),
    ]
    by_action = {e["action"]: e for e in trail["entries"]}
    assert by_action["load.changed"]["loadId"] == "ev1"
    assert by_action["load.changed"]["details"] == {"priority": 3, "capacityKw": 9.5}
    assert by_action["ven.changed"]["details"] == {"name": "A2"}
    assert by_action["event.created"]["eventId"] == event_id
    assert by_action["event.created"]["details"]["requestedReductionKw"] == 2.5
    sent = [e for e in trail["entries"] if e["action"] == "command.sent"]
    assert {e["details"]["op"] for e in sent} == {"ping", "shed_load"}
    assert all(e["details"]["correlationId"] for e in sent)

    # Filters, paging, bad input.
    mine = await _trail(client, actor="alice", limit=2)
    assert mine["totalCount"] == 5 and len(mine["entries"]) == 2
    assert mine["entries"][0]["action"] == "event.cancelled"
    rest = await _trail(client, actor="alice", limit=2, offset=4)
    assert [e["action"] for e in rest["entries"]] == ["ven.registered"]
    assert (await _trail(client, venId="ven-b"))["totalCount"] == 2
    assert (await _trail(client, eventId=event_id))["totalCount"] == 2
    assert (await _trail(client, action="command.sent"))["totalCount"] == 2
    assert (await _trail(client, since=soon(5)))["totalCount"] == 0
    assert (await _trail(client, until=soon(5)))["totalCount"] == 8
    for bad in (
        {"action": "nothing"},
        {"since": soon(5), "until": soon(1)},
        {"limit": 0},
        {"actor": "a\x00b"},
        {"venId": "ven/+"},
        {"eventId": "evt\x00"},
    ):
        answer = await client.get("/api/audit", params=bad, headers=bearer(READER))
        assert answer.status_code == 422, bad
    assert (await client.get("/api/audit")).status_code == 401


async def test_without_access_control_the_actor_is_anonymous(
    api_app: Callable[..., FastAPI],
) -> None:
    app = api_app(Settings(database_url="memory://", gridcore_auth="disabled"))  # type: ignore[call-arg]
    async for client in _client(app):
        event = await client.post(
            "/api/events",
            json={"startTime": soon(60), "endTime": soon(90), "requestedReductionKw": 1},
        )
        assert event.status_code == 201, event.text
        (entry,) = (await client.get("/api/audit")).json()["entries"]
        assert entry["actor"] == "anonymous" and entry["action"] == "event.created"
