"""An HTTP client for gridcore's ``/openadr3`` that checks every answer
against openadr3.yaml (tests.openadr_schema) before the test sees it."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any, cast

import httpx
from tests import openadr_schema

from entrypoints.api.app import create_app
from entrypoints.container import container_for
from entrypoints.openadr.notifier import Notifier
from entrypoints.settings import Settings

BASE = "/openadr3"
BL_SECRET = "bl-secret-0123456789"
VEN_SECRETS = {"ven-a": "ven-a-secret-0123456789", "ven-b": "ven-b-secret-0123456789"}
CLIENTS = ",".join([f"bl:bl-client:{BL_SECRET}", *(f"ven:{c}:{s}" for c, s in VEN_SECRETS.items())])


def settings(**overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "database_url": "memory://",
        "gridcore_api_tokens": "control:control-token-0123456789",
        "gridcore_openadr_clients": CLIENTS,
        **overrides,
    }
    return Settings(**values)


class Checked:
    """``await vtn.get("/programs", token)``: the answer, checked."""

    def __init__(self, http: httpx.AsyncClient, notifier: Notifier | None = None) -> None:
        self.http = http
        self.answers = 0
        self.notifier = notifier  # the VTN's (entrypoints.openadr.notifier)

    async def request(
        self,
        method: str,
        path: str,
        token: str | None = None,
        *,
        check: bool = True,
        **kwargs: Any,
    ) -> httpx.Response:
        headers = dict(kwargs.pop("headers", {}))
        if token is not None:
            headers["Authorization"] = f"Bearer {token}"
        response = await self.http.request(method, BASE + path, headers=headers, **kwargs)
        assert response.status_code < 500, response.text
        if check:
            assert response.headers["content-type"].startswith("application/json")
            openadr_schema.check(path.split("?")[0], method, response.status_code, response.json())
            self.answers += 1
        return response

    async def get(self, path: str, token: str | None = None, **kw: Any) -> httpx.Response:
        return await self.request("GET", path, token, **kw)

    async def post(self, path: str, token: str | None = None, **kw: Any) -> httpx.Response:
        return await self.request("POST", path, token, **kw)

    async def put(self, path: str, token: str | None = None, **kw: Any) -> httpx.Response:
        return await self.request("PUT", path, token, **kw)

    async def delete(self, path: str, token: str | None = None, **kw: Any) -> httpx.Response:
        return await self.request("DELETE", path, token, **kw)

    async def token(self, client_id: str, secret: str) -> str:
        answer = await self.post(
            "/auth/token",
            data={
                "grant_type": "client_credentials",
                "client_id": client_id,
                "client_secret": secret,
            },
        )
        assert answer.status_code == 200, answer.text
        token: str = answer.json()["access_token"]
        return token


@asynccontextmanager
async def vtn_client(config: Settings | None = None, **overrides: Any) -> AsyncIterator[Checked]:
    config = config or settings()
    container = container_for(config, **overrides)
    app = create_app(config, container)
    notifier = vtn_notifier(app)
    transport = httpx.ASGITransport(app=app)
    try:
        async with httpx.AsyncClient(transport=transport, base_url="https://vtn.test") as http:
            yield Checked(http, notifier)
    finally:
        await notifier.close()  # the ASGI transport runs no lifespan
        await container.storage().close()


def vtn_notifier(app: Any) -> Notifier:
    """The notifier of the VTN mounted in gridcore's app."""
    for route in app.routes:
        if getattr(route, "path", None) == BASE:
            return cast(Notifier, route.app.state.notifier)
    raise LookupError("no VTN mounted")
