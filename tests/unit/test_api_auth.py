"""Access control: read scope for GET, control scope for writes, 401 without
a valid token, 403 with the wrong scope; the docs pages need a read token too
(bearer, or the browser's Basic password); /health is open; serve refuses to
start with no token unless auth is disabled."""

from __future__ import annotations

import base64
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI

from entrypoints.api import auth
from entrypoints.api.app import create_app
from entrypoints.api.auth import AuthNotConfigured, Scope, TokenChecker, parse_tokens
from entrypoints.api.server import check_access
from entrypoints.settings import Settings

READ = "read-token-0123456789"
CONTROL = "control-token-0123456789"
EVENT = {
    "startTime": "2030-07-10T15:00:00Z",
    "endTime": "2030-07-10T17:00:00Z",
    "requestedReductionKw": 5,
}


def settings(**values: str) -> Settings:
    return Settings(database_url="memory://", **values)  # type: ignore[arg-type]


@pytest.fixture
async def client(api_app: Callable[..., FastAPI]) -> AsyncIterator[httpx.AsyncClient]:
    app = api_app(settings(gridcore_api_tokens=f"read:{READ}, control:{CONTROL}"))
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://gridcore") as c:
        yield c


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def test_reads_need_a_token_with_read_or_control_scope(client: httpx.AsyncClient) -> None:
    missing = await client.get("/api/stats/network")
    assert missing.status_code == 401 and missing.headers["WWW-Authenticate"] == "Bearer"
    assert (
        await client.get("/api/vens", headers=bearer("wrong-token-0123456789"))
    ).status_code == 401
    assert (await client.get("/api/vens", headers={"Authorization": READ})).status_code == 401
    assert (await client.get("/api/vens", headers=bearer(READ))).status_code == 200
    assert (await client.get("/api/vens", headers=bearer(CONTROL))).status_code == 200
    # The bare paths of the documents are the same routes, with the same checks.
    assert (await client.get("/vens")).status_code == 401


async def test_writes_need_control_scope(client: httpx.AsyncClient) -> None:
    assert (await client.post("/api/events", json=EVENT)).status_code == 401
    refused = await client.post("/api/events", json=EVENT, headers=bearer(READ))
    assert refused.status_code == 403
    assert (await client.get("/api/events", headers=bearer(READ))).json() == []
    created = await client.post("/api/events", json=EVENT, headers=bearer(CONTROL))
    assert created.status_code == 201


async def test_health_needs_no_token(client: httpx.AsyncClient) -> None:
    assert (await client.get("/health")).json()["status"] == "ok"
    assert (await client.get("/health/ready")).status_code == 200


DOCS = ["/openapi.json", "/docs", "/docs/", "/redoc", "/docs/oauth2-redirect"]


def basic(user: str, password: str) -> dict[str, str]:
    pair = base64.b64encode(f"{user}:{password}".encode()).decode()
    return {"Authorization": f"Basic {pair}"}


@pytest.mark.parametrize("path", DOCS)
async def test_docs_need_a_read_token(client: httpx.AsyncClient, path: str) -> None:
    missing = await client.get(path)
    assert missing.status_code == 401
    # A browser asks for it by itself: any user name, the token as the password.
    assert missing.headers["WWW-Authenticate"].startswith('Basic realm="gridcore API"')
    assert "password" in missing.json()["detail"]
    for headers, status in [
        (basic("me", "wrong-token-0123456789"), 401),
        (bearer(READ), 200),
        (basic("", READ), 200),
        (basic("operator", CONTROL), 200),
    ]:
        assert (await client.get(path, headers=headers)).status_code == status


async def test_the_api_takes_no_basic_credentials(client: httpx.AsyncClient) -> None:
    """A browser re-sends Basic credentials on any site's request: only the
    read-only docs take them, never /api."""
    refused = await client.get("/api/vens", headers=basic("me", READ))
    assert refused.status_code == 401 and refused.headers["WWW-Authenticate"] == "Bearer"


@pytest.mark.parametrize(
    "header",
    [None, "", "Basic", "Basic !!!not-base64", "Basic " + base64.b64encode(b"\xff:x").decode()],
)
def test_unusable_basic_credentials_present_no_token(header: str | None) -> None:
    assert auth.presented_token(header, basic=True) is None
    assert auth.presented_token("Basic " + base64.b64encode(b"u:tok").decode()) is None
    assert auth.presented_token("bearer  tok ", basic=True) == "tok"


async def test_disabled_auth_lets_everything_through() -> None:
    app = create_app(settings(gridcore_auth="disabled"))
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://gridcore") as c:
        assert (await c.post("/api/events", json=EVENT)).status_code == 201
        for path in DOCS:
            assert (await c.get(path)).status_code == 200


def test_tokens_from_a_file_and_the_variable(tmp_path: Path) -> None:
    path = tmp_path / "tokens"
    path.write_text(f"# operators\ncontrol:{CONTROL}\n\nread:{READ}\n", encoding="utf-8")
    checker = TokenChecker.from_settings(
        settings(gridcore_api_tokens_file=str(path), gridcore_api_tokens=f"read:{'r' * 20}")
    )
    assert checker.scope_of(CONTROL) is Scope.CONTROL
    assert checker.scope_of(READ) is Scope.READ
    assert checker.scope_of("r" * 20) is Scope.READ
    assert checker.scope_of(READ[:-1]) is None


@pytest.mark.parametrize(
    "text", ["admin:0123456789abcdef", "0123456789abcdef", "read:short", "control:"]
)
def test_malformed_tokens_are_refused(text: str) -> None:
    with pytest.raises(ValueError, match="entry 1"):
        parse_tokens(text)


def test_tokens_are_compared_in_constant_time(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every configured token is compared with hmac.compare_digest, even after
    a match, so timing does not tell which (or whether an early) one matched."""
    calls: list[tuple[bytes, bytes]] = []

    def compare(a: bytes, b: bytes) -> bool:
        calls.append((a, b))
        return a == b

    monkeypatch.setattr(auth.hmac, "compare_digest", compare)
    checker = TokenChecker(parse_tokens(f"control:{CONTROL},read:{READ},read:{'x' * 16}"))
    assert checker.scope_of(CONTROL) is Scope.CONTROL
    assert len(calls) == 3
    assert all(len(a) == len(b) for a, b in calls)  # digests: no length leak
    assert CONTROL not in repr(parse_tokens(f"control:{CONTROL}"))


def test_serve_refuses_to_start_without_tokens() -> None:
    with pytest.raises(AuthNotConfigured, match="GRIDCORE_API_TOKENS"):
        check_access(settings(), "127.0.0.1")
    assert not check_access(settings(gridcore_auth="disabled"), "127.0.0.1").enabled
    assert check_access(settings(gridcore_api_tokens=f"read:{READ}"), "0.0.0.0").configured


# --- refused before the body is read (issue 11) -----------------------------------


class Body:
    """A streamed request body of ``chunks`` x 64 KiB that counts what was read."""

    def __init__(self, chunks: int) -> None:
        self.chunks = chunks
        self.read = 0

    async def __aiter__(self) -> AsyncIterator[bytes]:
        for _ in range(self.chunks):
            self.read += 1
            yield b"x" * 65536


async def test_a_request_without_a_token_is_refused_before_its_body_is_read(
    client: httpx.AsyncClient,
) -> None:
    body = Body(1600)  # 100 MB
    refused = await client.post("/api/events", content=body)
    assert refused.status_code == 401
    assert body.read <= 1


async def test_a_body_over_the_limit_is_413_declared_or_streamed() -> None:
    app = create_app(
        settings(gridcore_api_tokens=f"control:{CONTROL}", gridcore_max_body_bytes="100000")
    )
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://gridcore") as c:
        declared = await c.post("/api/events", content=b"{" * 200_000, headers=bearer(CONTROL))
        assert declared.status_code == 413
        assert "GRIDCORE_MAX_BODY_BYTES" in declared.json()["detail"]
        streamed = Body(1600)
        chunked = await c.post("/api/events", content=streamed, headers=bearer(CONTROL))
        assert chunked.status_code == 413 and streamed.read <= 3
        # Under the limit, the request goes through as before.
        assert (await c.post("/api/events", json=EVENT, headers=bearer(CONTROL))).status_code == 201


# --- GRIDCORE_ANONYMOUS_READ: the original dashboard sends no token (issue 13) ------

DASHBOARD = "https://dashboard.example"
# What the dashboard and the VEN simulator's page GET (ecs-frontend/src/hooks/useApi.ts,
# its pages and components); 404 here means the request was let through.
DASHBOARD_READS = [
    "/api/stats/network",
    "/api/stats/loads",
    "/api/stats/network/history",
    "/api/vens",
    "/api/vens/ven-1",
    "/api/vens/ven-1/events",
    "/api/vens/ven-1/history",
    "/api/vens/ven-1/circuits/history?load_id=c1",
    "/api/vens/ven-1/loads",
    "/api/vens/ven-1/loads/c1",
    "/api/vens/ven-1/loads/c1/history",
    "/api/events",
    "/api/events/current",
    "/api/events/history",
    "/api/events/evt-00000001",
    "/stats/network",  # the design document's bare path: the same route
]
# Still behind a token: raw payloads, shadows, ACK audit, the API's description.
CLOSED = [
    "/api/vens/ven-1/telemetry",
    "/api/vens/ven-1/shadow",
    "/api/vens/ven-1/acks",
    "/api/events/evt-00000001/acks",
    "/api/events/evt-00000001/circuits",
    "/openapi.json",
    "/docs",
]


@pytest.fixture
async def anonymous(api_app: Callable[..., FastAPI]) -> AsyncIterator[httpx.AsyncClient]:
    app = api_app(
        settings(
            gridcore_api_tokens=f"read:{READ},control:{CONTROL}",
            gridcore_anonymous_read="true",
            gridcore_cors_origins=DASHBOARD,
        )
    )
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://gridcore") as c:
        yield c


@pytest.mark.parametrize("path", DASHBOARD_READS)
async def test_anonymous_read_lets_the_dashboards_reads_through(
    anonymous: httpx.AsyncClient, path: str
) -> None:
    answer = await anonymous.get(path, headers={"Accept": "application/json"})
    assert answer.status_code in (200, 404), answer.text
    assert answer.status_code == 200 or "not found" in answer.json()["detail"]


@pytest.mark.parametrize("path", CLOSED)
async def test_anonymous_read_leaves_the_rest_closed(
    anonymous: httpx.AsyncClient, path: str
) -> None:
    assert (await anonymous.get(path)).status_code == 401
    assert (await anonymous.get(path, headers=bearer(READ))).status_code != 401


async def test_anonymous_read_never_writes(anonymous: httpx.AsyncClient) -> None:
    assert (await anonymous.post("/api/events", json=EVENT)).status_code == 401
    assert (await anonymous.post("/api/events/evt-00000001/stop")).status_code == 401
    assert (await anonymous.delete("/api/events/evt-00000001")).status_code == 401
    assert (await anonymous.patch("/api/vens/ven-1", json={"name": "x"})).status_code == 401
    assert (await anonymous.post("/api/vens/ven-1/ping")).status_code == 401
    # Tokens work as before; a presented token is judged, even on an open path.
    assert (
        await anonymous.post("/api/events", json=EVENT, headers=bearer(READ))
    ).status_code == 403
    created = await anonymous.post("/api/events", json=EVENT, headers=bearer(CONTROL))
    assert created.status_code == 201
    wrong = await anonymous.get("/api/stats/network", headers=bearer("wrong-token-0123456789"))
    assert wrong.status_code == 401


async def test_the_dashboards_browser_requests_pass_cors(anonymous: httpx.AsyncClient) -> None:
    """Its GETs send only ``Accept: application/json`` (no preflight); its POST
    and PATCH send ``Content-Type: application/json`` (preflighted), its DELETE
    no header (preflighted for the method)."""
    origin = {"Origin": DASHBOARD}
    read = await anonymous.get("/api/vens", headers={**origin, "Accept": "application/json"})
    assert read.status_code == 200
    assert read.headers["access-control-allow-origin"] == DASHBOARD
    assert "x-total-count" in read.headers["access-control-expose-headers"].lower()
    for method, requested in [("POST", "content-type"), ("PATCH", "content-type"), ("DELETE", "")]:
        preflight = await anonymous.options(
            "/api/events",
            headers={
                **origin,
                "Access-Control-Request-Method": method,
                **({"Access-Control-Request-Headers": requested} if requested else {}),
            },
        )
        assert preflight.status_code == 200, (method, preflight.text)
        assert preflight.headers["access-control-allow-origin"] == DASHBOARD
        assert method in preflight.headers["access-control-allow-methods"]
    # A refused write still carries CORS headers, so the page can read why.
    refused = await anonymous.post("/api/events", json=EVENT, headers=origin)
    assert refused.status_code == 401
    assert refused.headers["access-control-allow-origin"] == DASHBOARD


def test_serve_says_when_anonymous_reads_are_on(caplog: pytest.LogCaptureFixture) -> None:
    checker = check_access(
        settings(gridcore_api_tokens=f"read:{READ}", gridcore_anonymous_read="true"), "0.0.0.0"
    )
    assert checker.anonymous_read
    assert "GRIDCORE_ANONYMOUS_READ=true" in caplog.text
    # It opens reads, not the API: tokens are still required to start.
    with pytest.raises(AuthNotConfigured):
        check_access(settings(gridcore_anonymous_read="true"), "0.0.0.0")


@pytest.mark.parametrize(
    ("method", "path", "readable"),
    [
        ("GET", "/api/vens/ven-1", True),
        ("HEAD", "/api/vens/ven-1/events", True),
        ("GET", "/api/vens/ven-1/telemetry", False),
        ("GET", "/api/vens//events", False),
        ("GET", "/api/vens/ven-1/events/extra", False),
        ("POST", "/api/vens", False),
        ("OPTIONS", "/api/vens", False),
        ("GET", "/api", False),
    ],
)
def test_anonymously_readable_paths(method: str, path: str, readable: bool) -> None:
    assert auth.anonymously_readable(method, path) is readable
