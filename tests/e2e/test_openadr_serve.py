"""The OpenADR VTN in `gridcore serve` over a real socket, two API processes
sharing a migrated SQLite file: a BL and a VEN get tokens (form body and HTTP
Basic), BL grants the VEN a target and creates a program with a targeted
event and one for another group, the VEN enrols its resource, reads exactly
its events and posts a report, and BL reads the report. Tokens issued by one
process are accepted by the other (both derive the key from the same
configuration). Every answer is checked against openadr3.yaml."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import pytest
from tests import openadr_schema
from tests.e2e.test_api_serve import _env, _serving

pytestmark = pytest.mark.skipif(not openadr_schema.available(), reason="openadr3.yaml not found")

BL_SECRET = "bl-secret-e2e-0123456789"
VEN_SECRET = "ven-secret-e2e-0123456789"
CLIENTS = f"bl:utility:{BL_SECRET},ven:ven-0999:{VEN_SECRET},ven:ven-other:{VEN_SECRET}x"


def _checked(response: httpx.Response, base: str, status: int) -> Any:
    assert response.status_code == status, response.text
    path = response.request.url.path.removeprefix("/openadr3")
    openadr_schema.check(path, response.request.method, status, response.json())
    return response.json()


def test_bl_and_ven_over_http_across_two_api_processes(tmp_path: Path) -> None:
    env = _env(
        tmp_path,
        GRIDCORE_API_TOKENS="control:control-token-e2e-0123456789",
        GRIDCORE_OPENADR_CLIENTS=CLIENTS,
    )
    with _serving(tmp_path, "--workers", "2", env=env) as (base, _):
        vtn = f"{base}/openadr3"
        token_url = _checked(httpx.get(f"{vtn}/auth/server"), base, 200)["tokenURL"]
        assert token_url == f"{vtn}/auth/token"
        bl_token = _checked(
            httpx.post(
                token_url,
                data={
                    "grant_type": "client_credentials",
                    "client_id": "utility",
                    "client_secret": BL_SECRET,
                },
            ),
            base,
            200,
        )["access_token"]
        ven_token = _checked(
            httpx.post(
                token_url, data={"grant_type": "client_credentials"}, auth=("ven-0999", VEN_SECRET)
            ),
            base,
            200,
        )["access_token"]
        # a fresh connection for each request: the two processes share them out
        bl = {"Authorization": f"Bearer {bl_token}"}
        ven = {"Authorization": f"Bearer {ven_token}"}

        ven_object = _checked(
            httpx.post(
                f"{vtn}/vens",
                headers=bl,
                json={
                    "objectType": "BL_VEN_REQUEST",
                    "venName": "VENID_0999",
                    "clientID": "ven-0999",
                    "targets": ["group1"],
                },
            ),
            base,
            201,
        )
        program = _checked(
            httpx.post(f"{vtn}/programs", headers=bl, json={"programName": "PROGRAM_0999"}),
            base,
            201,
        )
        interval = {
            "id": 0,
            "intervalPeriod": {"start": "2026-12-03T18:00:00Z", "duration": "PT1H"},
            "payloads": [{"type": "IMPORT_CAPACITY_LIMIT", "values": [3.5]}],
        }
        mine = _checked(
            httpx.post(
                f"{vtn}/events",
                headers=bl,
                json={
                    "programID": program["id"],
                    "eventName": "mine",
                    "targets": ["group1"],
                    "intervals": [interval],
                },
            ),
            base,
            201,
        )
        _checked(
            httpx.post(
                f"{vtn}/events",
                headers=bl,
                json={
                    "programID": program["id"],
                    "eventName": "theirs",
                    "targets": ["group2"],
                    "intervals": [interval],
                },
            ),
            base,
            201,
        )
        _checked(
            httpx.post(
                f"{vtn}/resources",
                headers=ven,
                json={
                    "objectType": "VEN_RESOURCE_REQUEST",
                    "resourceName": "battery",
                    "venID": ven_object["id"],
                },
            ),
            base,
            201,
        )
        for _ in range(4):  # whichever process answers
            events = _checked(httpx.get(f"{vtn}/events", headers=ven), base, 200)
            assert [e["id"] for e in events] == [mine["id"]]
        report = _checked(
            httpx.post(
                f"{vtn}/reports",
                headers=ven,
                json={
                    "eventID": mine["id"],
                    "clientName": "VENID_0999",
                    "resources": [
                        {
                            "resourceName": "battery",
                            "intervals": [
                                {"id": 0, "payloads": [{"type": "USAGE", "values": [1.25]}]}
                            ],
                        }
                    ],
                },
            ),
            base,
            201,
        )
        read_back = _checked(
            httpx.get(f"{vtn}/reports", headers=bl, params={"eventID": mine["id"]}), base, 200
        )
        assert read_back == [report]
        assert read_back[0]["clientID"] == "ven-0999"
