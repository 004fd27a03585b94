"""Shadow stores: the boto3 ``iot-data`` adapter against moto, and the same
behaviour from the local (in-memory) store fed by shadow updates."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest

from adapters.memory.shadows import InMemoryShadowStore
from gridcore.ports import ShadowStore

moto = pytest.importorskip("moto", reason="moto is a test dependency")

AT = datetime(2024, 10, 23, 16, 13, 20, tzinfo=UTC)
REPORTED: dict[str, Any] = {
    "power_kw": 8.2,
    "shed_kw": 4.8,
    "circuits": [{"id": "circuit_1", "name": "Main HVAC", "enabled": True}],
    "active_event": {"event_id": "evt-123", "shed_kw": 5.0, "end_ts": 1729703600},
    "timestamp": 1729700000,
}


@pytest.fixture
def aws_store(monkeypatch: pytest.MonkeyPatch) -> Iterator[ShadowStore]:
    from adapters.aws.shadows import Boto3ShadowStore

    for name, value in {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
    }.items():
        monkeypatch.setenv(name, value)
    with moto.mock_aws():
        # moto, unlike the service, wants the thing registered before its shadow.
        import boto3

        registry = boto3.client("iot", region_name="us-east-1")
        for ven in ("ven-001", "ven-002"):
            registry.create_thing(thingName=ven)
        yield Boto3ShadowStore(region="us-east-1")


@pytest.fixture(params=["aws", "local"])
def store(request: pytest.FixtureRequest) -> ShadowStore:
    if request.param == "local":
        return InMemoryShadowStore()
    result: ShadowStore = request.getfixturevalue("aws_store")
    return result


async def test_no_shadow_is_none(store: ShadowStore) -> None:
    assert await store.get("ven-404") is None


async def test_update_then_get_and_merge(store: ShadowStore) -> None:
    await store.update("ven-001", {"state": {"reported": REPORTED}}, AT)
    await store.update(
        "ven-001", {"state": {"reported": {"shed_kw": 0.0, "active_event": None}}}, AT
    )
    document = await store.get("ven-001")
    assert document is not None
    reported = document["state"]["reported"]
    assert reported["power_kw"] == 8.2
    assert reported["shed_kw"] == 0.0
    assert "active_event" not in reported  # null deletes, as AWS IoT does
    assert reported["circuits"] == REPORTED["circuits"]
    assert await store.get("ven-002") is None


async def test_update_without_state_is_refused(store: ShadowStore) -> None:
    with pytest.raises(ValueError, match="state"):
        await store.update("ven-001", {"reported": {}}, AT)


async def test_a_desired_state_sits_beside_the_reported_one(store: ShadowStore) -> None:
    """A configuration push's mirror (entrypoints.api.routers.ven_topics):
    the VEN's reported state stays, and a newer push replaces the loads."""
    await store.update("ven-001", {"state": {"reported": REPORTED}}, AT)
    for n, loads in enumerate(([{"loadId": "c1", "enabled": False}], [{"loadId": "c2"}])):
        desired = {"config": {"correlationId": f"cmd-0000000{n}", "loads": loads}}
        await store.update("ven-001", {"state": {"desired": desired}}, AT)
    document = await store.get("ven-001")
    assert document is not None
    assert document["state"]["desired"]["config"] == {
        "correlationId": "cmd-00000001", "loads": [{"loadId": "c2"}],
    }  # fmt: skip
    assert document["state"]["reported"]["power_kw"] == 8.2


def test_an_api_with_shadow_store_aws_reads_aws() -> None:
    from adapters.aws.shadows import Boto3ShadowStore
    from entrypoints.container import build_storage
    from entrypoints.settings import Settings

    settings = Settings(database_url="memory://", shadow_store="aws", aws_region="us-east-1")
    assert isinstance(build_storage(settings, api=True).shadows, Boto3ShadowStore)
    assert isinstance(build_storage(settings).shadows, InMemoryShadowStore)  # a worker's
