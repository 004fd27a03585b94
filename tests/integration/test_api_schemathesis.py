"""Schemathesis over the app's own OpenAPI document: whatever it generates
(valid and invalid input, with and without a token), the API answers no 5xx
and nothing its schema does not declare. Runs over a migrated SQLite file
seeded with a VEN and an event, so lookups also hit stored rows.

Bounded: a few examples per operation (about a minute in all); CI may raise
GRIDCORE_SCHEMATHESIS_EXAMPLES for a deeper run.
"""

from __future__ import annotations

import asyncio
import os
import tempfile
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.checks import positive_data_acceptance

from adapters.sql.migrate import migrate
from entrypoints.api.app import create_app
from entrypoints.container import container_for
from entrypoints.settings import Settings
from gridcore import services
from gridcore.telemetry import LoadSample, TelemetrySample

CONTROL = "control-token-schemathesis-0123"
EXAMPLES = int(os.environ.get("GRIDCORE_SCHEMATHESIS_EXAMPLES", "15"))


async def _seed(url: str) -> None:
    await migrate(url, retries=1, log=lambda _: None)
    container = container_for(Settings(database_url=url, gridcore_auth="disabled"))
    storage = container.storage()
    now = datetime.now(UTC)
    try:
        await storage.telemetry_store.append(
            [
                TelemetrySample(
                    ven_id="ven-001",
                    timestamp=now - timedelta(seconds=5),
                    used_power_kw=8.2,
                    loads=(LoadSample("circuit_1", "EV", "ev", 7.0, 6.0, 6.0, True, 1),),
                )
            ]
        )
        await services.create_event(
            storage.uow_factory,
            container.clock(),
            container.ids(),
            start_time=now + timedelta(hours=1),
            end_time=now + timedelta(hours=2),
            requested_reduction_kw=5.0,
        )
    finally:
        await storage.close()


def _app_over_sqlite() -> object:
    # Module level (schemathesis collects at import): one file per test session.
    url = f"sqlite+aiosqlite:///{Path(tempfile.mkdtemp(prefix='gridcore-st-')) / 'api.db'}"
    asyncio.run(_seed(url))
    return create_app(Settings(database_url=url, gridcore_api_tokens=f"control:{CONTROL}"))


# The document itself needs a read token when access control is on.
schema = schemathesis.openapi.from_asgi(
    "/openapi.json", _app_over_sqlite(), headers={"Authorization": f"Bearer {CONTROL}"}
)


# Parametrized by the token (one, for now) so that each operation's item has a
# node id of its own, "test...[GET /api/vens][control]": without a pytest
# parametrization, schemathesis' items all share the function's node id under
# pytest 9, and pytest-xdist, which schedules by node id, ran one of them.
@pytest.mark.parametrize("token", [CONTROL], ids=["control"])
@schema.parametrize()
@settings(
    max_examples=EXAMPLES,
    deadline=None,
    suppress_health_check=list(HealthCheck),
    derandomize=True,
)
def test_api_never_fails_and_keeps_its_schema(case: schemathesis.Case, token: str) -> None:
    case.call_and_validate(
        headers={"Authorization": f"Bearer {token}"},
        # Rules across fields (start before end, at most 10,000 buckets, an
        # event ending in the future) cannot be said in OpenAPI, so schema-valid
        # input may rightly get a 422; every other check stays on.
        excluded_checks=[positive_data_acceptance],
    )
