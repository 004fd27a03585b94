"""The readers of both documents keep working: bare paths (/vens, /events,
/stats/...) and trailing slashes (the flow document's ``POST /api/events/``)
reach the same routes without a redirect; timestamps in any offset, or none
(read as UTC), come back in UTC with Z; CORS answers configured origins."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable

import httpx
import pytest
from fastapi import FastAPI

from entrypoints.settings import Settings

EVENT = {"startTime": "2030-07-10T15:00:00Z", "endTime": "2030-07-10T17:00:00Z"}


@pytest.fixture
async def client(api_app: Callable[..., FastAPI]) -> AsyncIterator[httpx.AsyncClient]:
    app = api_app(
        Settings(
            database_url="memory://",
            gridcore_auth="disabled",
            gridcore_cors_origins="https://dashboard.example",
        )
    )
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://gridcore") as c:
        yield c


@pytest.mark.parametrize("path", ["/api/events/", "/events", "/events/"])
async def test_post_without_api_prefix_or_with_trailing_slash(
    client: httpx.AsyncClient, path: str
) -> None:
    response = await client.post(path, json={**EVENT, "requestedReductionKw": 8.0})
    assert response.status_code == 201  # created, not redirected
    assert (await client.get(f"/api/events/{response.json()['id']}")).status_code == 200


@pytest.mark.parametrize("path", ["/stats/network", "/stats/loads", "/vens", "/api/vens/"])
async def test_bare_reads(client: httpx.AsyncClient, path: str) -> None:
    assert (await client.get(path)).status_code == 200


async def test_unknown_paths_stay_404(client: httpx.AsyncClient) -> None:
    assert (await client.get("/nothing")).status_code == 404
    assert (await client.get("/vensx")).status_code == 404


async def test_timestamps_in_any_offset_come_back_in_utc_with_z(
    client: httpx.AsyncClient,
) -> None:
    body = {
        "startTime": "2030-07-10T17:00:00+02:00",
        "endTime": "2030-07-10T17:00:00",  # naive: UTC
        "requestedReductionKw": 1,
    }
    event = (await client.post("/api/events", json=body)).json()
    assert event["startTime"] == "2030-07-10T15:00:00Z"
    assert event["endTime"] == "2030-07-10T17:00:00Z"


async def test_cors_for_configured_origins(client: httpx.AsyncClient) -> None:
    preflight = await client.options(
        "/api/events",
        headers={
            "Origin": "https://dashboard.example",
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "Authorization, Content-Type",
        },
    )
    assert preflight.headers["access-control-allow-origin"] == "https://dashboard.example"
    other = await client.get("/api/vens", headers={"Origin": "https://evil.example"})
    assert "access-control-allow-origin" not in other.headers
