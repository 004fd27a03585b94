"""OpenADR notifications (docs/openadr3.md, "Notifications"): webhook
callbacks POSTed to a real HTTP server with the subscriber's bearer token,
retried with back-off, never holding up the request that changed the
object; only objects the subscriber may read (target hiding applied); MQTT
notifications on Mosquitto under the spec's topic names. Every notification
is checked against openadr3.yaml's ``notification`` schema."""

from __future__ import annotations

import asyncio
import itertools
import json
import time
from collections.abc import Callable
from typing import Any

import aiomqtt
import pytest
from tests import openadr_schema
from tests.callback_server import Call, CallbackServer, callback_server
from tests.openadr_client import BL_SECRET, VEN_SECRETS, Checked, settings, vtn_client

from entrypoints.openadr.notifier import WebhookPolicy

pytestmark = pytest.mark.skipif(not openadr_schema.available(), reason="openadr3.yaml not found")

ALL_OPERATIONS = ["CREATE", "UPDATE", "DELETE"]


@pytest.fixture
def receiver() -> Any:
    with callback_server() as server:
        yield server


@pytest.fixture(params=["memory", pytest.param("postgres", marks=pytest.mark.postgres)])
def database_url(request: pytest.FixtureRequest) -> str:
    if request.param == "memory":
        return "memory://"
    return str(request.getfixturevalue("migrated_postgres_url"))


async def _until(done: Callable[[], bool], within: float = 10.0) -> None:
    deadline = time.monotonic() + within
    while not done():
        assert time.monotonic() < deadline, "timed out"
        await asyncio.sleep(0.02)


async def _created(vtn: Checked, path: str, token: str, body: dict[str, Any]) -> dict[str, Any]:
    answer = await vtn.post(path, token, json=body)
    assert answer.status_code == 201, answer.text
    created: dict[str, Any] = answer.json()
    return created


async def _tokens(vtn: Checked) -> tuple[str, str, str]:
    return (
        await vtn.token("bl-client", BL_SECRET),
        await vtn.token("ven-a", VEN_SECRETS["ven-a"]),
        await vtn.token("ven-b", VEN_SECRETS["ven-b"]),
    )


async def _granted_vens(vtn: Checked, bl: str) -> dict[str, dict[str, Any]]:
    """VEN-A granted group1, VEN-B group2 (BL's requests)."""
    out = {}
    for client, group in (("ven-a", "group1"), ("ven-b", "group2")):
        out[client] = await _created(
            vtn,
            "/vens",
            bl,
            {
                "objectType": "BL_VEN_REQUEST",
                "venName": client.upper(),
                "clientID": client,
                "targets": [group],
            },
        )
    return out


async def _subscribe(
    vtn: Checked, token: str, url: str, objects: list[str], bearer: str | None = None
) -> dict[str, Any]:
    operation: dict[str, Any] = {
        "objects": objects,
        "operations": ALL_OPERATIONS,
        "callbackUrl": url,
    }
    if bearer is not None:
        operation["bearerToken"] = bearer
    return await _created(
        vtn, "/subscriptions", token, {"clientName": "sub", "objectOperations": [operation]}
    )


def _checked(calls: list[Call]) -> list[dict[str, Any]]:
    for call in calls:
        assert call.content_type == "application/json"
        openadr_schema.check_notification(call.body)
    return [c.body for c in calls]


def _seen(notifications: list[dict[str, Any]], kind: str) -> list[tuple[str, str, Any]]:
    return [
        (
            n["operation"],
            n["object"].get("eventName") or n["object"].get("venName"),
            n["object"].get("targets"),
        )
        for n in notifications
        if n["objectType"] == kind
    ]


async def test_each_subscriber_is_called_with_its_token_and_only_what_it_may_read(
    database_url: str, receiver: CallbackServer
) -> None:
    async with vtn_client(settings(database_url=database_url)) as vtn:
        bl, ven_a, ven_b = await _tokens(vtn)
        base = receiver.base
        await _subscribe(vtn, bl, f"{base}/ok/bl", ["PROGRAM", "EVENT", "VEN"], "bl-cb-token")
        await _subscribe(vtn, ven_a, f"{base}/ok/a", ["EVENT", "VEN"], "a-cb-token")
        await _subscribe(vtn, ven_b, f"{base}/ok/b", ["EVENT", "VEN"], "b-cb-token")
        vens = await _granted_vens(vtn, bl)
        program = await _created(vtn, "/programs", bl, {"programName": "Shed"})
        for name, targets in (("g1", ["group1", "secret-g3"]), ("g2", ["group2"]), ("all", None)):
            body: dict[str, Any] = {"programID": program["id"], "eventName": name}
            if targets:
                body["targets"] = targets
            await _created(vtn, "/events", bl, body)
        # An UPDATE and a DELETE reach the VEN the event is for, and no one else.
        g1 = (await vtn.get("/events?targets=group1", bl)).json()[0]
        replaced = await vtn.put(f"/events/{g1['id']}", bl, json={**g1, "priority": 1})
        assert replaced.status_code == 200
        assert (await vtn.delete(f"/programs/{program['id']}", bl)).status_code == 200
        assert vtn.notifier is not None
        await vtn.notifier.idle()

    to_bl = _checked(receiver.to("/ok/bl"))
    to_a = _checked(receiver.to("/ok/a"))
    to_b = _checked(receiver.to("/ok/b"))
    assert {c.authorization for c in receiver.to("/ok/bl")} == {"Bearer bl-cb-token"}
    assert {c.authorization for c in receiver.to("/ok/a")} == {"Bearer a-cb-token"}
    assert {c.authorization for c in receiver.to("/ok/b")} == {"Bearer b-cb-token"}
    # BL reads everything, targets whole.
    assert ("CREATE", "g1", ["group1", "secret-g3"]) in _seen(to_bl, "EVENT")
    assert [op for op, *_ in _seen(to_bl, "PROGRAM")] == ["CREATE", "DELETE"]
    # VEN-A: its event (only the target granted to it shown), the untargeted one,
    # and their deletion with the program; never VEN-B's event or ven.
    assert _seen(to_a, "EVENT") == [
        ("CREATE", "g1", ["group1"]),
        ("CREATE", "all", None),
        ("UPDATE", "g1", ["group1"]),
        ("DELETE", "g1", ["group1"]),
        ("DELETE", "all", None),
    ]
    assert _seen(to_a, "VEN") == [("CREATE", "VEN-A", ["group1"])]
    assert _seen(to_b, "EVENT") == [
        ("CREATE", "g2", ["group2"]),
        ("CREATE", "all", None),
        ("DELETE", "g2", ["group2"]),
        ("DELETE", "all", None),
    ]
    assert _seen(to_b, "VEN") == [("CREATE", "VEN-B", ["group2"])]
    assert vens["ven-a"]["id"] not in json.dumps(to_b)


async def test_a_subscription_filters_by_program_targets_and_operation(
    receiver: CallbackServer,
) -> None:
    async with vtn_client() as vtn:
        bl, ven_a, _ = await _tokens(vtn)
        await _granted_vens(vtn, bl)
        one = await _created(vtn, "/programs", bl, {"programName": "One"})
        two = await _created(vtn, "/programs", bl, {"programName": "Two"})
        operation = {
            "objects": ["EVENT"],
            "operations": ["UPDATE"],
            "callbackUrl": f"{receiver.base}/ok/u",
        }
        await _created(
            vtn,
            "/subscriptions",
            ven_a,
            {"clientName": "a", "programID": one["id"], "objectOperations": [operation]},
        )
        created = [
            await _created(
                vtn, "/events", bl, {"programID": p["id"], "eventName": p["programName"]}
            )
            for p in (one, two)
        ]
        for event in created:
            assert (
                await vtn.put(f"/events/{event['id']}", bl, json={**event, "priority": 2})
            ).status_code == 200
        assert vtn.notifier is not None
        await vtn.notifier.idle()
    assert _seen(_checked(receiver.to("/ok/u")), "EVENT") == [("UPDATE", "One", None)]


async def test_a_failing_callback_is_retried_with_back_off_and_a_refusal_is_not(
    receiver: CallbackServer,
) -> None:
    policy = WebhookPolicy(attempts=4, backoff=0.1, timeout=2.0)
    async with vtn_client() as vtn:
        assert vtn.notifier is not None
        vtn.notifier.policy = policy
        bl, _, _ = await _tokens(vtn)
        await _subscribe(vtn, bl, f"{receiver.base}/flaky/2/x", ["PROGRAM"], "t")
        await _subscribe(vtn, bl, f"{receiver.base}/refuse/x", ["PROGRAM"], "t")
        await _subscribe(vtn, bl, f"{receiver.base}/flaky/9/x", ["PROGRAM"], "t")
        await _created(vtn, "/programs", bl, {"programName": "P"})
        await vtn.notifier.idle()
        delivered, failed = vtn.notifier.delivered, vtn.notifier.failed
    flaky = receiver.to("/flaky/2/x")
    assert len(flaky) == 3  # two 503s, then delivered
    gaps = [b.at - a.at for a, b in itertools.pairwise(flaky)]
    assert gaps[0] >= 0.09 and gaps[1] >= 0.19  # 0.1 s, then doubled
    assert all(c.body == flaky[0].body for c in flaky)  # the same notification each time
    assert len(receiver.to("/refuse/x")) == 1  # 401: the callback refuses, no retry
    assert len(receiver.to("/flaky/9/x")) == 4  # every attempt failed: given up
    assert (delivered, failed) == (1, 2)


async def test_a_dead_or_hung_callback_delays_neither_the_request_nor_other_callbacks(
    receiver: CallbackServer, unused_tcp_port: int
) -> None:
    async with vtn_client() as vtn:
        assert vtn.notifier is not None
        vtn.notifier.policy = WebhookPolicy(attempts=3, backoff=5.0, timeout=30.0)
        bl, _, _ = await _tokens(vtn)
        await _subscribe(vtn, bl, f"{receiver.base}/slow/x", ["PROGRAM", "EVENT"])
        await _subscribe(vtn, bl, f"http://127.0.0.1:{unused_tcp_port}/dead", ["PROGRAM", "EVENT"])
        await _subscribe(vtn, bl, f"{receiver.base}/ok/live", ["PROGRAM", "EVENT"])
        program = await _created(vtn, "/programs", bl, {"programName": "P"})
        started = time.monotonic()
        for n in range(20):
            await _created(vtn, "/events", bl, {"programID": program["id"], "eventName": f"e{n}"})
        took = time.monotonic() - started
        # the live callback has all 21 while the hung one still hangs
        notifier = vtn.notifier
        await _until(lambda: notifier.delivered == 21, within=5.0)
        assert len(receiver.to("/ok/live")) == 21
        assert len(receiver.to("/slow/x")) == 1  # still waiting on its first answer
    assert took < 5.0, took  # twenty creates, none waiting on a callback (hung for 10 s)


async def test_mqtt_notifications_on_mosquitto_under_the_specs_topics(
    mosquitto_address: tuple[str, int], topic_prefix: str
) -> None:
    host, port = mosquitto_address
    prefix = topic_prefix + "/"
    config = settings(
        mqtt_broker=host,
        mqtt_port=port,
        gridcore_openadr_mqtt_uris=f"mqtt://{host}:{port}",
        gridcore_openadr_mqtt_topic_prefix=prefix,
    )
    received: list[tuple[str, dict[str, Any]]] = []
    async with aiomqtt.Client(host, port) as subscriber, vtn_client(config) as vtn:
        await subscriber.subscribe(prefix + "#", qos=1)

        async def collect() -> None:
            async for message in subscriber.messages:
                assert isinstance(message.payload, bytes)
                received.append((str(message.topic)[len(prefix) :], json.loads(message.payload)))

        collector = asyncio.create_task(collect())
        try:
            bl, ven_a, _ = await _tokens(vtn)
            binding = (await vtn.get("/notifiers", ven_a)).json()
            assert binding == {
                "WEBHOOK": True,
                "MQTT": {
                    "URIS": [f"mqtt://{host}:{port}"],
                    "serialization": "JSON",
                    "authentication": {"method": "ANONYMOUS"},
                },
            }
            vens = await _granted_vens(vtn, bl)
            a, b = vens["ven-a"]["id"], vens["ven-b"]["id"]
            program = await _created(vtn, "/programs", bl, {"programName": "P"})
            topics = (await vtn.get(f"/notifiers/mqtt/topics/vens/{a}/events", ven_a)).json()
            assert topics["topics"]["CREATE"] == f"{prefix}vens/{a}/events/create"
            event = await _created(
                vtn,
                "/events",
                bl,
                {"programID": program["id"], "eventName": "g1", "targets": ["group1", "x"]},
            )
            assert vtn.notifier is not None
            await vtn.notifier.idle()
            await _until(lambda: any(t == f"vens/{a}/events/create" for t, _ in received))
        finally:
            collector.cancel()
    by_topic = {t: n for t, n in received}
    for notification in by_topic.values():
        openadr_schema.check_notification(notification)
    assert by_topic["programs/create"]["object"]["id"] == program["id"]
    assert by_topic["events/create"]["object"]["targets"] == ["group1", "x"]
    assert by_topic[f"programs/{program['id']}/events/create"]["object"]["id"] == event["id"]
    # VEN-A's own topic carries the event as VEN-A reads it; VEN-B gets none.
    assert by_topic[f"vens/{a}/events/create"]["object"]["targets"] == ["group1"]
    assert f"vens/{b}/events/create" not in by_topic
    assert by_topic[f"vens/{b}/programs/create"]["object"]["id"] == program["id"]
