"""The console's access (issue 15): sign-in with an API token sets an HttpOnly,
SameSite cookie that holds no token; the API takes the cookie for reads, and
for writes only with the page's CSRF token and a control session; pages
redirect to the sign-in when there is no session; ``next`` never leads off the
site; changing the tokens or the clock's passing ends a session; with access
control off there is nothing to sign in to. In memory, through the ASGI app:
the browser tests (tests/e2e/test_console_browser.py) drive the pages."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Callable
from urllib.parse import quote

import httpx
import pytest
from fastapi import FastAPI
from tests.unit.test_api_auth import CONTROL, EVENT, READ, settings

from entrypoints.api.auth import Scope, TokenChecker, parse_tokens
from entrypoints.api.sessions import COOKIE, LIFETIME_S, SessionKeeper

TOKENS = f"read:{READ}, control:{CONTROL}"


@pytest.fixture
def app(api_app: Callable[..., FastAPI]) -> FastAPI:
    return api_app(settings(gridcore_api_tokens=TOKENS))


@pytest.fixture
async def client(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://gridcore") as c:
        yield c


async def sign_in(client: httpx.AsyncClient, token: str, then: str = "/") -> httpx.Response:
    return await client.post(
        "/console/sign-in",
        content=f"token={quote(token)}&next={quote(then)}",
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )


def csrf_of(page: httpx.Response) -> str:
    found = re.search(r'<meta name="csrf-token" content="([^"]*)">', page.text)
    assert found is not None
    return found.group(1)


async def test_pages_send_a_stranger_to_the_sign_in(client: httpx.AsyncClient) -> None:
    for path in ("/", "/console/events", "/console/events/evt-1", "/console/vens/ven-1"):
        response = await client.get(path)
        assert response.status_code == 303
        assert response.headers["location"] == f"/console/sign-in?next={quote(path)}"
    form = await client.get("/console/sign-in")
    assert form.status_code == 200
    assert '<label for="token">API token</label>' in form.text
    # The assets are not secret: the sign-in page needs its stylesheet.
    assert (await client.get("/console/static/console.css")).status_code == 200


async def test_a_token_signs_in_with_a_cookie_that_holds_no_token(
    client: httpx.AsyncClient,
) -> None:
    response = await sign_in(client, CONTROL, "/console/events")
    assert response.status_code == 303 and response.headers["location"] == "/console/events"
    cookie = response.headers["set-cookie"]
    assert cookie.startswith(f"{COOKIE}=")
    assert "HttpOnly" in cookie and "SameSite=lax" in cookie and "Path=/" in cookie
    assert f"Max-Age={LIFETIME_S}" in cookie
    assert CONTROL not in cookie and READ not in cookie
    page = await client.get("/console/events")
    assert page.status_code == 200
    assert 'id="event-form"' in page.text  # control: the form to create an event
    assert csrf_of(page)


async def test_a_wrong_or_missing_token_is_told_next_to_the_field(
    client: httpx.AsyncClient,
) -> None:
    wrong = await sign_in(client, "not-a-token-0123456789")
    assert wrong.status_code == 401 and "set-cookie" not in wrong.headers
    assert 'id="token-error"' in wrong.text and "not valid" in wrong.text
    assert 'aria-invalid="true"' in wrong.text
    empty = await sign_in(client, "")
    assert empty.status_code == 422 and "Enter an API token" in empty.text
    huge = await client.post("/console/sign-in", content="token=" + "x" * 10_000)
    assert huge.status_code == 413
    assert (await client.get("/")).status_code == 303


@pytest.mark.parametrize(
    "then", ["https://evil.example/", "//evil.example/x", "/\\evil.example", "javascript:x"]
)
async def test_after_signing_in_the_browser_stays_on_the_site(
    client: httpx.AsyncClient, then: str
) -> None:
    response = await sign_in(client, READ, then)
    assert response.status_code == 303 and response.headers["location"] == "/"


async def test_the_api_takes_the_cookie_for_reads(client: httpx.AsyncClient) -> None:
    await sign_in(client, READ)
    assert (await client.get("/api/stats/network")).status_code == 200
    assert (await client.get("/api/events")).json() == []
    client.cookies.clear()
    assert (await client.get("/api/stats/network")).status_code == 401


async def test_a_write_with_the_cookie_needs_the_pages_csrf_token(
    client: httpx.AsyncClient,
) -> None:
    await sign_in(client, CONTROL)
    csrf = csrf_of(await client.get("/console/events"))
    # What another site can make a browser send: the cookie, no CSRF header.
    assert (await client.post("/api/events", json=EVENT)).status_code == 401
    forged = await client.post("/api/events", json=EVENT, headers={"X-CSRF-Token": "guess"})
    assert forged.status_code == 401
    made = await client.post("/api/events", json=EVENT, headers={"X-CSRF-Token": csrf})
    assert made.status_code == 201
    event_id = made.json()["id"]
    cancelled = await client.delete(f"/api/events/{event_id}", headers={"X-CSRF-Token": csrf})
    assert cancelled.status_code == 200 and cancelled.json()["status"] == "cancelled"


async def test_a_read_session_sees_no_controls_and_cannot_act(client: httpx.AsyncClient) -> None:
    await sign_in(client, READ)
    page = await client.get("/console/events")
    assert 'id="event-form"' not in page.text and "(view only)" in page.text
    assert 'data-can-control="false"' in page.text
    refused = await client.post("/api/events", json=EVENT, headers={"X-CSRF-Token": csrf_of(page)})
    assert refused.status_code == 403 and "control" in refused.json()["detail"]
    ven = await client.get("/console/vens/ven-1")
    assert 'id="ping"' not in ven.text


async def test_a_bearer_token_is_still_judged_by_itself(client: httpx.AsyncClient) -> None:
    # A control session does not lift a read token sent with it.
    await sign_in(client, CONTROL)
    csrf = csrf_of(await client.get("/"))
    refused = await client.post(
        "/api/events",
        json=EVENT,
        headers={"Authorization": f"Bearer {READ}", "X-CSRF-Token": csrf},
    )
    assert refused.status_code == 403


async def test_signing_out_needs_the_csrf_token_and_ends_the_session(
    client: httpx.AsyncClient,
) -> None:
    await sign_in(client, READ)
    csrf = csrf_of(await client.get("/"))
    form = {"Content-Type": "application/x-www-form-urlencoded"}
    forged = await client.post("/console/sign-out", content="csrf=nope", headers=form)
    assert forged.status_code == 403
    assert (await client.get("/")).status_code == 200
    out = await client.post("/console/sign-out", content=f"csrf={quote(csrf)}", headers=form)
    assert out.status_code == 303 and out.headers["location"] == "/console/sign-in"
    assert f'{COOKIE}=""' in out.headers["set-cookie"] and "Max-Age=0" in out.headers["set-cookie"]


def test_sessions_end_with_their_time_and_with_a_change_of_tokens() -> None:
    now = [1_000_000.0]
    checker = TokenChecker(parse_tokens(TOKENS))
    keeper = SessionKeeper(checker, clock=lambda: now[0])
    opened = keeper.open(CONTROL)
    assert opened is not None
    cookie, session = opened
    assert session.scope is Scope.CONTROL and keeper.read(cookie) == session
    assert keeper.scope_for("GET", cookie, None) is Scope.CONTROL
    assert keeper.scope_for("POST", cookie, None) is None
    assert keeper.scope_for("POST", cookie, session.csrf) is Scope.CONTROL
    # A cookie is only as good as its signature: another scope written in is refused.
    payload, _, signature = cookie.partition(".")
    assert keeper.read(payload.swapcase() + "." + signature) is None
    assert keeper.read(cookie + "x") is None and keeper.read("") is None
    # Another keeper over the same tokens (another API process) agrees.
    assert SessionKeeper(TokenChecker(parse_tokens(TOKENS)), clock=lambda: now[0]).read(cookie)
    # Rotated tokens: every session ends.
    rotated = TokenChecker(parse_tokens(f"read:{READ}, control:another-token-0123456789"))
    assert SessionKeeper(rotated, clock=lambda: now[0]).read(cookie) is None
    now[0] += LIFETIME_S
    assert keeper.read(cookie) is None
    assert keeper.open("wrong-token-0123456789") is None


async def test_with_access_control_off_there_is_nothing_to_sign_in_to(
    api_app: Callable[..., FastAPI],
) -> None:
    app = api_app(settings(gridcore_auth="disabled"))
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://gridcore") as client:
        page = await client.get("/")
        assert page.status_code == 200 and "Access control is off" in page.text
        assert 'data-can-control="true"' in page.text
        assert (await client.get("/console/sign-in")).status_code == 303
