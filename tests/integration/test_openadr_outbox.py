"""The notification outbox (docs/openadr3.md, "Notifications"): the port's
rules on memory, SQLite and PostgreSQL, and on PostgreSQL with real HTTP
callbacks, that a notification left by a stopped API process is delivered
by another and that two processes deliver each notification exactly once."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from tests import openadr_schema
from tests.callback_server import CallbackServer, callback_server
from tests.openadr_client import BL_SECRET, Checked, settings, vtn_client

from adapters.memory.outbox import InMemoryNotificationOutbox
from adapters.sql.engine import create_engine
from adapters.sql.outbox import SqlNotificationOutbox
from entrypoints.openadr.notifier import WebhookPolicy
from gridcore.notifications import Outgoing
from gridcore.ports import NotificationOutbox

T0 = datetime(2026, 12, 3, 12, 0, tzinfo=UTC)
LEASE = timedelta(seconds=60)


@pytest.fixture(
    params=[
        "memory",
        "sqlite",
        pytest.param("postgres", marks=pytest.mark.postgres),
    ]
)
async def outbox(request: pytest.FixtureRequest) -> AsyncIterator[NotificationOutbox]:
    if request.param == "memory":
        yield InMemoryNotificationOutbox()
        return
    fixture = "migrated_sqlite_url" if request.param == "sqlite" else "migrated_postgres_url"
    engine = create_engine(str(request.getfixturevalue(fixture)), timeout=10.0)
    try:
        yield SqlNotificationOutbox(engine)
    finally:
        await engine.dispose()


def _hook(url: str, body: str) -> Outgoing:
    return Outgoing("webhook", url, body.encode(), "tok", "sub-1")


async def test_a_lane_is_claimed_head_first_by_one_owner_and_a_dead_owners_lease_ends(
    outbox: NotificationOutbox,
) -> None:
    items = [_hook("http://a", "a1"), _hook("http://b", "b1"), _hook("http://a", "a2")]
    assert await outbox.put(items, T0, max_per_lane=10) == 0
    first = await outbox.claim("p1", T0, T0 + LEASE, limit=10)
    assert [c.item.body for c in first] == [b"a1", b"b1"]  # heads only: a2 waits for a1
    assert first[0].item == items[0]
    # another process gets nothing while the leases run, not even a lane's next row
    assert await outbox.claim("p2", T0, T0 + LEASE, limit=10) == []
    assert await outbox.finish(first[0].row_id, "p2", True, T0) is False  # not p2's
    assert await outbox.finish(first[0].row_id, "p1", True, T0) is True
    a2 = await outbox.claim("p2", T0, T0 + LEASE, limit=10, lane=("webhook", "http://a"))
    assert [c.item.body for c in a2] == [b"a2"]
    # p1 dies holding b1: once its lease has ended, p3 takes it over (and
    # a2, whose holder p2 has not finished it within its lease either)
    assert await outbox.claim("p3", T0 + LEASE / 2, T0 + LEASE, limit=10) == []
    later = T0 + LEASE + timedelta(seconds=1)
    taken = await outbox.claim("p3", later, later + LEASE, limit=10)
    assert [c.item.body for c in taken] == [b"b1", b"a2"]
    assert await outbox.finish(taken[0].row_id, "p1", True, later) is False  # too late, p1
    assert await outbox.pending() == 2


async def test_a_process_claims_only_the_channels_it_delivers(
    outbox: NotificationOutbox,
) -> None:
    mqtt = Outgoing("mqtt", "programs/create", b"m")
    await outbox.put([mqtt, _hook("http://a", "a1")], T0, 10)
    hooks_only = await outbox.claim("p1", T0, T0 + LEASE, 10, None, ("webhook",))
    assert [c.item.body for c in hooks_only] == [b"a1"]
    rest = await outbox.claim("p2", T0, T0 + LEASE, 10)
    assert [c.item for c in rest] == [mqtt]


async def test_release_gives_leases_back_prune_removes_finished_rows_and_lanes_are_bounded(
    outbox: NotificationOutbox,
) -> None:
    left_out = await outbox.put([_hook("http://a", f"a{n}") for n in range(5)], T0, 3)
    assert left_out == 2  # a lane holds at most 3 pending
    assert await outbox.put([_hook("http://b", "b1")], T0, 3) == 0
    claimed = await outbox.claim("p1", T0, T0 + LEASE, limit=10)
    assert await outbox.release("p1") == 2
    again = await outbox.claim("p2", T0, T0 + LEASE, limit=10)  # at once, not after the lease
    assert [c.row_id for c in again] == [c.row_id for c in claimed]
    await outbox.finish(again[0].row_id, "p2", True, T0)
    await outbox.finish(again[1].row_id, "p2", False, T0 + timedelta(hours=2))  # given up
    assert await outbox.prune(T0 + timedelta(hours=1)) == 1  # the one finished before
    assert await outbox.pending() == 2
    assert await outbox.prune(T0 + timedelta(hours=3)) == 1


# --- API processes on one PostgreSQL database, real HTTP callbacks -------------


@pytest.fixture
def receiver() -> Any:
    with callback_server() as server:
        yield server


async def _until(done: Callable[[], bool], within: float = 10.0) -> None:
    deadline = time.monotonic() + within
    while not done():
        assert time.monotonic() < deadline, "timed out"
        await asyncio.sleep(0.02)


async def _post(vtn: Checked, path: str, token: str, body: dict[str, Any]) -> dict[str, Any]:
    answer = await vtn.post(path, token, json=body)
    assert answer.status_code == 201, answer.text
    created: dict[str, Any] = answer.json()
    return created


async def _subscribe(vtn: Checked, token: str, url: str) -> None:
    operation = {"objects": ["PROGRAM"], "operations": ["CREATE"], "callbackUrl": url}
    await _post(
        vtn, "/subscriptions", token, {"clientName": "sub", "objectOperations": [operation]}
    )


@pytest.mark.postgres
@pytest.mark.skipif(not openadr_schema.available(), reason="openadr3.yaml not found")
async def test_a_notification_left_by_a_stopped_process_is_delivered_by_the_next(
    migrated_postgres_url: str, receiver: CallbackServer
) -> None:
    config = settings(database_url=migrated_postgres_url)
    async with vtn_client(config) as first:
        assert first.notifier is not None
        # the callback fails its first call; the retry would come in 60 s
        first.notifier.policy = WebhookPolicy(attempts=5, backoff=60.0, timeout=2.0)
        bl = await first.token("bl-client", BL_SECRET)
        await _subscribe(first, bl, f"{receiver.base}/flaky/1/x")
        await _post(first, "/programs", bl, {"programName": "Kept"})
        await _until(lambda: len(receiver.to("/flaky/1/x")) == 1)
        assert first.notifier.delivered == 0
    # the first process has stopped (its back-off cancelled): a second one,
    # started on the same database, delivers what the first left
    async with vtn_client(config) as second:
        assert second.notifier is not None
        second.notifier.start()  # what the API's lifespan does
        await _until(lambda: len(receiver.to("/flaky/1/x")) == 2)
        assert second.notifier.delivered == 1
        # the row is finished just after the callback answers: wait for it
        deadline = time.monotonic() + 10.0
        while await second.notifier.outbox.pending():
            assert time.monotonic() < deadline, "the delivered row stayed pending"
            await asyncio.sleep(0.02)
    calls = receiver.to("/flaky/1/x")
    assert calls[1].body == calls[0].body  # the same notification
    assert calls[1].body["object"]["programName"] == "Kept"
    openadr_schema.check_notification(calls[1].body)


@pytest.mark.postgres
@pytest.mark.skipif(not openadr_schema.available(), reason="openadr3.yaml not found")
async def test_two_processes_deliver_each_notification_exactly_once_in_order(
    migrated_postgres_url: str, receiver: CallbackServer
) -> None:
    config = settings(database_url=migrated_postgres_url)
    lanes = [f"/ok/lane{n}" for n in range(4)]
    async with vtn_client(config) as one, vtn_client(config) as two:
        assert one.notifier is not None and two.notifier is not None
        for vtn in (one, two):
            vtn.notifier.policy = WebhookPolicy(poll=0.01)  # both keep claiming
            vtn.notifier.start()
        tokens = [await v.token("bl-client", BL_SECRET) for v in (one, two)]
        for path in lanes:
            await _subscribe(one, tokens[0], receiver.base + path)
        names = [f"P{n}" for n in range(30)]
        for n, name in enumerate(names):  # the two processes take turns
            vtn = (one, two)[n % 2]
            await _post(vtn, "/programs", tokens[n % 2], {"programName": name})
        await _until(lambda: all(len(receiver.to(p)) >= len(names) for p in lanes))
        await asyncio.sleep(0.5)  # time for a duplicate to show
        counts = (one.notifier.delivered, two.notifier.delivered)
        assert await one.notifier.outbox.pending() == 0
    for path in lanes:
        got = [c.body["object"]["programName"] for c in receiver.to(path)]
        assert got == names  # each once, in the order of the changes
    assert sum(counts) == len(lanes) * len(names)
    assert min(counts) > 0, counts  # both processes delivered
