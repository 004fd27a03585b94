"""/docs works on a machine without internet: the page names no other host,
and every file it loads (scripts, styles, icon, the OpenAPI document) is
served by the app, with the Basic credentials the browser already sent for
the page."""

from __future__ import annotations

import base64
import re
from collections.abc import AsyncIterator

import httpx
import pytest

from entrypoints.api.app import create_app
from entrypoints.settings import Settings

READ = "read-token-0123456789"
BROWSER = {"Authorization": "Basic " + base64.b64encode(f":{READ}".encode()).decode()}
# src="...", href="...", and Swagger UI's url: '...' (the OpenAPI document)
REFERENCE = re.compile(r"""(?:src|href)="([^"]+)"|\burl: '([^']+)'""")


@pytest.fixture
async def client() -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(Settings(database_url="memory://", gridcore_api_tokens=f"read:{READ}"))  # type: ignore[call-arg]
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://gridcore") as c:
        yield c


@pytest.mark.parametrize("page", ["/docs", "/redoc"])
async def test_the_docs_page_loads_nothing_from_another_host(
    client: httpx.AsyncClient, page: str
) -> None:
    html = (await client.get(page, headers=BROWSER)).raise_for_status().text
    assert not re.findall(r"(?:https?:)?//[\w.-]+", html), "the page names another host"
    references = [a or b for a, b in REFERENCE.findall(html)]
    assert {"/openapi.json", "/docs/assets/swagger-ui-bundle.js"} <= set(references)
    for url in references:
        answer = await client.get(url, headers=BROWSER)
        assert answer.status_code == 200, url
        assert answer.content, url


async def test_the_assets_are_behind_the_docs_token(client: httpx.AsyncClient) -> None:
    """They carry no data, but they sit under /docs, whose Basic credentials a
    browser sends again by itself; without any they get the docs' 401."""
    missing = await client.get("/docs/assets/swagger-ui-bundle.js")
    assert missing.status_code == 401
    assert missing.headers["WWW-Authenticate"].startswith("Basic")
