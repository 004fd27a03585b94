"""What the worker acknowledges to the broker, and when (issue 11 item 8):
ACKs and shadow updates only once committed or dead-lettered, so that a
crash before the commit leaves them with the broker for the persistent
session; telemetry as soon as it is held for its batch. The consumer's
connection gets a stable client id and a persistent session by default. A
worker whose consumer dies ends, saying why (the process exits 1)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from test_mqtt_consumer import Rig, metering

from adapters.sql.migrate import migrate
from entrypoints.settings import Settings
from entrypoints.worker import (
    WorkerFailedError,
    _failure,
    consumer_client_id,
    consumer_connection,
    run_worker,
)
from gridcore.ports import BrokerMessage

PING = b'{"op":"ping","status":"pong"}'


@pytest.fixture
async def rig() -> AsyncIterator[Rig]:
    r = Rig()
    await r.start()
    yield r
    await r.stop()


class Settled:
    def __init__(self) -> None:
        self.calls = 0

    def __call__(self) -> None:
        self.calls += 1


async def handled(rig: Rig, topic: str, payload: bytes) -> Settled:
    settled = Settled()
    await rig.consumer.handle(BrokerMessage(topic, payload, 1, settle=settled))
    return settled


async def test_an_ack_is_settled_only_after_its_commit(rig: Rig) -> None:
    rig.store.down = True  # the database is down: nothing commits
    settled = await handled(rig, "ven/ack/v1", PING)
    await asyncio.sleep(0.1)  # the write queue tries, and fails, meanwhile
    assert settled.calls == 0
    assert rig.uow.state.acks == []
    rig.store.down = False
    await asyncio.wait_for(rig.consumer.flushed(), 5)
    assert [a.ven_id for a in rig.uow.state.acks] == ["v1"]
    assert settled.calls == 1


async def test_a_refused_ack_is_settled_once_its_dead_letter_is_stored(rig: Rig) -> None:
    rig.store.down = True
    settled = await handled(rig, "ven/ack/v1", b"{not json")
    await asyncio.sleep(0.1)
    assert settled.calls == 0
    rig.store.down = False
    await asyncio.wait_for(rig.consumer.flushed(), 5)
    assert len(rig.uow.state.dead_letters) == 1
    assert settled.calls == 1


async def test_telemetry_is_settled_when_held_not_after_its_commit(rig: Rig) -> None:
    rig.store.down = True
    settled = await handled(rig, "volttron/metering", metering("v1", 1).encode())
    assert settled.calls == 1  # the broker's in-flight window never waits for a batch
    rig.store.down = False


def settings(**values: object) -> Settings:
    return Settings(_env_file=None, mqtt_broker="broker.example", **values)  # type: ignore[call-arg]


def test_the_consumer_has_a_stable_default_client_id_and_a_persistent_session() -> None:
    first, again = consumer_connection(settings()), consumer_connection(settings())
    assert first.client_id is not None and first.client_id.startswith("gridcore-worker-")
    assert first.client_id == again.client_id  # the same session after a restart
    assert first.persistent
    # A worker whose subscriptions changed starts a session of its own.
    other = consumer_client_id(settings(mqtt_topic_metering="site/metering"))
    assert other != first.client_id


def test_an_explicit_client_id_wins_and_shared_group_members_get_no_default() -> None:
    assert consumer_client_id(settings(mqtt_client_id="worker-a")) == "worker-a"
    # Members of a group on one host would take one session from each other.
    assert consumer_client_id(settings(mqtt_shared_group="workers")) is None
    assert not consumer_connection(settings(mqtt_shared_group="workers")).persistent


def test_acks_and_shadow_updates_are_the_messages_settled_after_store() -> None:
    conn = consumer_connection(settings(mqtt_topic_responses="site/acks"))
    assert set(conn.settle_after_store) == {
        "ven/ack/+",
        "site/acks",
        "$aws/things/+/shadow/update",
    }
    assert "volttron/metering" not in conn.settle_after_store


async def test_the_worker_fails_when_its_consumer_dies_or_ends_on_its_own() -> None:
    async def boom() -> None:
        raise RuntimeError("loop broke")

    async def ends() -> None:
        return None

    async def waits() -> None:
        await asyncio.sleep(3600)

    died, dispatching = asyncio.create_task(boom()), asyncio.create_task(waits())
    ended = asyncio.create_task(ends())
    disabled_dispatcher = asyncio.create_task(ends())
    running = asyncio.create_task(waits())
    await asyncio.wait({died, ended, disabled_dispatcher})
    try:
        failure = _failure(died, dispatching, stopped=False)
        assert failure == "the MQTT consumer failed: RuntimeError: loop broke"
        assert _failure(ended, dispatching, stopped=False) == "the MQTT consumer ended unexpectedly"
        assert _failure(ended, dispatching, stopped=True) is None  # asked to stop
        assert _failure(running, disabled_dispatcher, stopped=False) is None
    finally:
        for task in (dispatching, running):
            task.cancel()


async def test_run_worker_raises_when_its_consumer_fails(tmp_path: Path) -> None:
    """The whole worker, in-process on SQLite and the in-memory broker: a
    consumer that cannot subscribe (a filter the broker refuses) ends the
    worker with the reason, instead of leaving the dispatcher running alone."""
    url = f"sqlite+aiosqlite:///{tmp_path / 'worker.db'}"
    await migrate(url, retries=1, log=lambda _: None)
    broken = Settings(  # type: ignore[call-arg]
        _env_file=None, database_url=url, mqtt_topics="a/#/b", gridcore_worker_http_port=0
    )
    with pytest.raises(WorkerFailedError, match="the MQTT consumer failed: ValueError"):
        await asyncio.wait_for(run_worker(broken), 10)
