"""The OpenADR 3.1.1 VTN over HTTP (in process): roles, object privacy,
targeting, scopes, metadata, search parameters and errors. Every answer is
checked against the official openadr3.yaml (tests.openadr_client)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from tests import openadr_schema
from tests.openadr_client import BL_SECRET, VEN_SECRETS, Checked, settings, vtn_client

from adapters.system import ManualClock

pytestmark = pytest.mark.skipif(not openadr_schema.available(), reason="openadr3.yaml not found")

T0 = datetime(2026, 12, 3, 12, 0, tzinfo=UTC)


async def _tokens(vtn: Checked) -> tuple[str, str, str]:
    return (
        await vtn.token("bl-client", BL_SECRET),
        await vtn.token("ven-a", VEN_SECRETS["ven-a"]),
        await vtn.token("ven-b", VEN_SECRETS["ven-b"]),
    )


async def _created(vtn: Checked, path: str, token: str, body: dict[str, Any]) -> dict[str, Any]:
    answer = await vtn.post(path, token, json=body)
    assert answer.status_code == 201, answer.text
    created: dict[str, Any] = answer.json()
    return created


def _names(answer: Any) -> set[str]:
    assert answer.status_code == 200, answer.text
    return {e["eventName"] for e in answer.json()}


@pytest.fixture(params=["memory", "sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def database_url(request: pytest.FixtureRequest) -> str:
    if request.param == "memory":
        return "memory://"
    fixture = "migrated_sqlite_url" if request.param == "sqlite" else "migrated_postgres_url"
    return str(request.getfixturevalue(fixture))


async def test_targeted_events_reach_exactly_the_granted_ven_with_targets_hidden(
    database_url: str,
) -> None:
    """User Guide 8.13 (dynamic targeting): BL grants targets through a ven
    and its resource; a VEN reads the untargeted event and those carrying a
    granted target, seeing only granted targets; another VEN does not. On
    each storage."""
    async with vtn_client(settings(database_url=database_url)) as vtn:
        bl, ven_a, ven_b = await _tokens(vtn)
        ven = await _created(
            vtn,
            "/vens",
            bl,
            {
                "objectType": "BL_VEN_REQUEST",
                "venName": "VEN-A",
                "clientID": "ven-a",
                "targets": ["group1", "areaX"],
            },
        )
        await _created(
            vtn,
            "/resources",
            bl,
            {
                "objectType": "BL_RESOURCE_REQUEST",
                "resourceName": "battery",
                "clientID": "ven-a",
                "venID": ven["id"],
                "targets": ["resource-9"],
            },
        )
        program = await _created(vtn, "/programs", bl, {"programName": "Shed"})
        events = {
            "everyone": None,
            "group1": ["group1", "secret-label"],
            "group2": ["group2"],
            "resource": ["resource-9"],
            "by-id": [ven["id"]],
        }
        ids = {}
        for name, targets in events.items():
            body: dict[str, Any] = {"programID": program["id"], "eventName": name}
            if targets:
                body["targets"] = targets
            ids[name] = (await _created(vtn, "/events", bl, body))["id"]

        seen = await vtn.get("/events", ven_a)
        assert _names(seen) == {"everyone", "group1", "resource", "by-id"}
        shown = {e["eventName"]: e.get("targets") for e in seen.json()}
        assert shown["group1"] == ["group1"]  # "secret-label" was not granted: hidden
        assert _names(await vtn.get("/events", ven_b)) == {"everyone"}
        assert len((await vtn.get("/events", bl)).json()) == 5
        assert (await vtn.get("/events/" + ids["group1"], bl)).json()["targets"] == [
            "group1",
            "secret-label",
        ]
        # request targets AND granted targets
        assert _names(await vtn.get("/events?targets=group1", ven_a)) == {"group1"}
        assert _names(await vtn.get("/events?targets=group2", ven_a)) == set()
        assert _names(await vtn.get("/events?targets=group2", bl)) == {"group2"}
        assert (await vtn.get("/events/" + ids["group2"], ven_a)).status_code == 404
        assert (await vtn.get("/events/" + ids["group1"], ven_b)).status_code == 404
        assert (await vtn.get("/events/" + ids["everyone"], ven_b)).status_code == 200

        # BL takes a target back: the VEN stops seeing the event
        await vtn.put(
            "/vens/" + ven["id"],
            bl,
            json={"objectType": "BL_VEN_REQUEST", "venName": "VEN-A", "clientID": "ven-a"},
        )
        assert _names(await vtn.get("/events", ven_a)) == {"everyone", "resource", "by-id"}


async def test_a_ven_reports_on_its_event_and_only_bl_and_itself_read_the_report(
    database_url: str,
) -> None:
    async with vtn_client(settings(database_url=database_url)) as vtn:
        bl, ven_a, ven_b = await _tokens(vtn)
        await _created(
            vtn,
            "/vens",
            bl,
            {
                "objectType": "BL_VEN_REQUEST",
                "venName": "VEN-A",
                "clientID": "ven-a",
                "targets": ["group1"],
            },
        )
        program = await _created(vtn, "/programs", bl, {"programName": "Shed"})
        event = await _created(
            vtn, "/events", bl, {"programID": program["id"], "targets": ["group1"]}
        )
        report_body = {
            "eventID": event["id"],
            "clientName": "VEN-A",
            "resources": [
                {
                    "resourceName": "AGGREGATED_REPORT",
                    "intervals": [{"id": 0, "payloads": [{"type": "USAGE", "values": [2.5]}]}],
                }
            ],
        }
        report = await _created(vtn, "/reports", ven_a, report_body)
        assert report["clientID"] == "ven-a"
        assert report["objectType"] == "REPORT"

        by_bl = await vtn.get(f"/reports?eventID={event['id']}&programID={program['id']}", bl)
        assert [r["id"] for r in by_bl.json()] == [report["id"]]
        assert (await vtn.get("/reports?programID=program-other", bl)).json() == []
        assert [r["id"] for r in (await vtn.get("/reports", ven_a)).json()] == [report["id"]]
        assert (await vtn.get("/reports", ven_b)).json() == []
        assert (await vtn.get("/reports/" + report["id"], ven_b)).status_code == 404
        assert (
            await vtn.put("/reports/" + report["id"], ven_b, json=report_body)
        ).status_code == 404
        assert (await vtn.delete("/reports/" + report["id"], ven_b)).status_code == 404
        # an event not meant for ven-b is no event to report on
        assert (await vtn.post("/reports", ven_b, json=report_body)).status_code == 409
        # BL reads reports but does not write them ("only VENs can write to reports")
        assert (await vtn.post("/reports", bl, json=report_body)).status_code == 403

        updated = await vtn.put(
            "/reports/" + report["id"], ven_a, json={**report_body, "reportName": "again"}
        )
        assert updated.json()["reportName"] == "again"
        assert (await vtn.delete("/reports/" + report["id"], ven_a)).json()["id"] == report["id"]
        assert (await vtn.get("/reports", bl)).json() == []


async def test_a_ven_registers_itself_and_its_resources_and_never_sees_another() -> None:
    async with vtn_client() as vtn:
        bl, ven_a, ven_b = await _tokens(vtn)
        mine = await _created(
            vtn, "/vens", ven_b, {"objectType": "VEN_VEN_REQUEST", "venName": "VEN-B"}
        )
        assert mine["clientID"] == "ven-b"  # written by the VTN from the token
        assert "targets" not in mine
        theirs = await _created(
            vtn, "/vens", ven_a, {"objectType": "VEN_VEN_REQUEST", "venName": "VEN-A"}
        )
        # only BL grants targets
        refused = await vtn.post(
            "/vens",
            ven_b,
            json={
                "objectType": "BL_VEN_REQUEST",
                "venName": "X",
                "clientID": "ven-b",
                "targets": ["group1"],
            },
        )
        assert refused.status_code == 403
        taken = await vtn.post(
            "/vens", ven_b, json={"objectType": "VEN_VEN_REQUEST", "venName": "VEN-A"}
        )
        assert taken.status_code == 409

        resource = await _created(
            vtn,
            "/resources",
            ven_b,
            {
                "objectType": "VEN_RESOURCE_REQUEST",
                "resourceName": "heat-pump",
                "venID": mine["id"],
            },
        )
        assert resource["clientID"] == "ven-b"
        on_theirs = await vtn.post(
            "/resources",
            ven_b,
            json={"objectType": "VEN_RESOURCE_REQUEST", "resourceName": "x", "venID": theirs["id"]},
        )
        assert on_theirs.status_code == 404

        assert [v["id"] for v in (await vtn.get("/vens", ven_b)).json()] == [mine["id"]]
        assert (await vtn.get("/vens?venName=VEN-A", ven_b)).json() == []
        assert (await vtn.get("/vens/" + theirs["id"], ven_b)).status_code == 404
        assert (await vtn.get(f"/resources?venID={theirs['id']}", ven_b)).json() == []
        assert (await vtn.get("/resources", ven_a)).json() == []
        assert (await vtn.delete("/vens/" + theirs["id"], ven_b)).status_code == 404
        assert len((await vtn.get("/vens", bl)).json()) == 2

        # BL grants a target; the VEN renames itself and keeps what BL granted
        await vtn.put(
            "/vens/" + mine["id"],
            bl,
            json={
                "objectType": "BL_VEN_REQUEST",
                "venName": "VEN-B",
                "clientID": "ven-b",
                "targets": ["group7"],
            },
        )
        renamed = await vtn.put(
            "/vens/" + mine["id"], ven_b, json={"objectType": "VEN_VEN_REQUEST", "venName": "B2"}
        )
        assert renamed.json()["targets"] == ["group7"]
        assert renamed.json()["venName"] == "B2"
        assert renamed.json()["createdDateTime"] == mine["createdDateTime"]

        # removing a ven removes its resources
        await vtn.delete("/vens/" + mine["id"], ven_b)
        assert (await vtn.get("/resources/" + resource["id"], bl)).status_code == 404


async def test_every_write_without_its_scope_or_token_is_refused() -> None:
    clock = ManualClock(T0)
    async with vtn_client(clock=clock) as vtn:
        bl, ven_a, _ = await _tokens(vtn)
        program = await _created(vtn, "/programs", bl, {"programName": "P"})
        event = await _created(vtn, "/events", bl, {"programID": program["id"]})
        writes = [
            ("POST", "/programs", {"programName": "Q"}),
            ("PUT", "/programs/" + program["id"], {"programName": "Q"}),
            ("DELETE", "/programs/" + program["id"], None),
            ("POST", "/events", {"programID": program["id"]}),
            ("PUT", "/events/" + event["id"], {"programID": program["id"]}),
            ("DELETE", "/events/" + event["id"], None),
        ]
        for method, path, body in writes:  # BL's writes, with a VEN's token
            answer = await vtn.request(method, path, ven_a, json=body)
            assert answer.status_code == 403, (method, path, answer.text)

        every_write = [
            *writes,
            ("POST", "/reports", {}),
            ("POST", "/subscriptions", {}),
            ("POST", "/vens", {}),
            ("POST", "/resources", {}),
        ]
        for method, path, body in every_write:
            # no token; and undeclared answers are not schema-checked here
            for token in (None, "not-a-token", ven_a[:-2] + "xx"):
                answer = await vtn.request(method, path, token, json=body, check=False)
                assert answer.status_code == 401, (method, path, token, answer.text)
                assert answer.json()["status"] == 401
                assert answer.headers["www-authenticate"] == "Bearer"

        clock.advance(timedelta(hours=1, seconds=1))  # GRIDCORE_OPENADR_TOKEN_SECONDS=3600
        expired = await vtn.get("/programs", bl)
        assert expired.status_code == 401
        assert "expired" in expired.json()["detail"]
        assert (
            await vtn.get("/programs", await vtn.token("bl-client", BL_SECRET))
        ).status_code == 200


async def test_the_vtn_writes_object_metadata_and_names_are_unique() -> None:
    clock = ManualClock(T0)
    async with vtn_client(clock=clock) as vtn:
        bl, _, _ = await _tokens(vtn)
        program = await _created(
            vtn,
            "/programs",
            bl,
            # metadata in a request is ignored (Definition.md, POST and PUT)
            {
                "programName": "P",
                "id": "mine",
                "objectType": "EVENT",
                "createdDateTime": "2000-01-01T00:00:00Z",
                "unknownField": 1,
            },
        )
        assert program["id"] != "mine"
        assert program["objectType"] == "PROGRAM"
        assert program["createdDateTime"] == "2026-12-03T12:00:00.000Z"
        assert "unknownField" not in program
        clock.advance(timedelta(minutes=5))
        updated = (
            await vtn.put("/programs/" + program["id"], bl, json={"programName": "P2"})
        ).json()
        assert updated["id"] == program["id"]
        assert updated["createdDateTime"] == program["createdDateTime"]
        assert updated["modificationDateTime"] == "2026-12-03T12:05:00.000Z"
        other = await _created(vtn, "/programs", bl, {"programName": "P3"})
        clash = await vtn.put("/programs/" + other["id"], bl, json={"programName": "P2"})
        assert clash.status_code == 409
        assert "P2" in clash.json()["detail"]
        # an event needs its program; removing the program removes its events
        assert (await vtn.post("/events", bl, json={"programID": "nope"})).status_code == 409
        event = await _created(vtn, "/events", bl, {"programID": other["id"]})
        assert (await vtn.delete("/programs/" + other["id"], bl)).json()["id"] == other["id"]
        assert (await vtn.get("/events/" + event["id"], bl)).status_code == 404


async def test_search_parameters_page_and_filter() -> None:
    clock = ManualClock(T0)
    async with vtn_client(clock=clock) as vtn:
        bl, ven_a, _ = await _tokens(vtn)
        program = await _created(vtn, "/programs", bl, {"programName": "P"})
        for hour in range(4):  # events of one hour each, starting at T0 + hour
            start = (T0 + timedelta(hours=hour)).isoformat().replace("+00:00", "Z")
            await _created(
                vtn,
                "/events",
                bl,
                {
                    "programID": program["id"],
                    "eventName": f"e{hour}",
                    "intervalPeriod": {"start": start, "duration": "PT1H"},
                    "intervals": [{"id": 0, "payloads": [{"type": "SIMPLE", "values": [1]}]}],
                },
            )
        await _created(vtn, "/events", bl, {"programID": program["id"], "eventName": "open"})
        page = await vtn.get("/events?skip=1&limit=2", bl)
        assert [e["eventName"] for e in page.json()] == ["e1", "e2"]
        assert (await vtn.get("/events?limit=0", bl)).json() == []
        clock.advance(timedelta(hours=2, minutes=30))  # e0 and e1 have transpired
        bl, ven_a, _ = await _tokens(vtn)  # the first ones expired meanwhile
        assert _names(await vtn.get("/events?active=true", bl)) == {"e2", "e3", "open"}
        assert _names(await vtn.get("/events?active=true", ven_a)) == {"e2", "e3", "open"}
        assert len((await vtn.get("/events?active=false", bl)).json()) == 5
        assert len((await vtn.get(f"/events?programID={program['id']}", bl)).json()) == 5
        assert (await vtn.get("/events?programID=other", bl)).json() == []

        for query in (
            "limit=51",
            "limit=-1",
            "skip=x",
            "active=yes",
            "targetType=VEN_NAME",
            "programID=no%20spaces",
            "skip=1&skip=2",
            "objects=EVENT",
        ):
            answer = await vtn.get("/events?" + query, bl)
            assert answer.status_code == 400, query
            assert answer.json()["title"] == "Bad Request"

        sub = {
            "clientName": "bl",
            "objectOperations": [
                {
                    "objects": ["EVENT"],
                    "operations": ["CREATE"],
                    "callbackUrl": "https://bl.test/cb",
                }
            ],
        }
        await _created(vtn, "/subscriptions", bl, sub)
        assert len((await vtn.get("/subscriptions?objects=EVENT&objects=VEN", bl)).json()) == 1
        assert (await vtn.get("/subscriptions?objects=REPORT", bl)).json() == []
        assert len((await vtn.get("/subscriptions?clientName=bl", bl)).json()) == 1


@pytest.mark.parametrize(
    ("path", "body"),
    [
        ("/programs", b"{not json"),
        ("/programs", b""),
        ("/programs", b"[]"),
        ("/programs", b'{"programName": ""}'),
        ("/programs", b'{"programName": "p", "intervalPeriod": {"start": "yesterday"}}'),
        ("/events", b'{"programID": "p", "intervals": [{"id": "0", "payloads": []}]}'),
        ("/events", b'{"programID": "p", "duration": "1 hour"}'),
        (
            "/events",
            b'{"programID": "p", "intervals": [{"id": 0, "payloads": '
            b'[{"type": "X", "values": [NaN]}]}]}',
        ),
        ("/vens", b'{"venName": "v"}'),
        ("/vens", b'{"objectType": "BL_VEN_REQUEST", "venName": "v"}'),
        (
            "/subscriptions",
            b'{"clientName": "c", "objectOperations": [{"objects": ["CAT"], '
            b'"operations": ["CREATE"], "callbackUrl": "https://x"}]}',
        ),
    ],
)
async def test_bad_input_is_a_400_problem_naming_what_is_wrong(path: str, body: bytes) -> None:
    async with vtn_client() as vtn:
        bl, _, _ = await _tokens(vtn)
        answer = await vtn.post(
            path, bl, content=body, headers={"Content-Type": "application/json"}
        )
        assert answer.status_code == 400
        assert answer.json()["status"] == 400
        assert answer.json()["detail"]


async def test_an_optional_field_given_null_is_taken_as_absent() -> None:
    """What 3.1 clients send for what they leave unset (openadr3-client)."""
    async with vtn_client() as vtn:
        bl, _, _ = await _tokens(vtn)
        program = await _created(
            vtn, "/programs", bl, {"programName": "p", "intervalPeriod": None, "targets": None}
        )
        assert "intervalPeriod" not in program
        assert program["targets"] is None  # nullable in the yaml: kept
        event = await _created(
            vtn,
            "/events",
            bl,
            {
                "programID": program["id"],
                "duration": None,
                "intervals": None,
                "intervalPeriod": {"start": "2026-12-03T12:00:00Z", "randomizeStart": None},
            },
        )
        assert event["intervalPeriod"] == {"start": "2026-12-03T12:00:00Z"}
        assert "duration" not in event
        assert "intervals" not in event
        refused = await vtn.post("/events", bl, json={"programID": None})
        assert refused.status_code == 400  # required: null is no value


async def test_bad_ids_and_unknown_paths_and_methods_are_problems() -> None:
    async with vtn_client() as vtn:
        bl, _, _ = await _tokens(vtn)
        assert (await vtn.get("/programs/has%20space", bl)).status_code == 400
        assert (await vtn.get("/programs/missing", bl)).status_code == 404
        unknown = await vtn.get("/nothing", bl, check=False)
        assert unknown.status_code == 404
        assert unknown.json()["title"] == "Not Found"
        method = await vtn.request("PATCH", "/programs", bl, check=False)
        assert method.status_code == 405
        assert method.headers["allow"] == "GET, POST"


async def test_token_endpoint_takes_form_and_basic_and_answers_rfc6749_errors() -> None:
    async with vtn_client() as vtn:
        server = await vtn.get("/auth/server")
        assert server.json()["tokenURL"] == "https://vtn.test/openadr3/auth/token"
        basic = await vtn.post(
            "/auth/token",
            data={"grant_type": "client_credentials"},
            auth=("ven-a", VEN_SECRETS["ven-a"]),
        )
        assert basic.status_code == 200
        assert basic.json()["token_type"] == "Bearer"
        assert basic.json()["expires_in"] == 3600
        assert set(basic.json()["scope"].split()) == {
            "read_targets",
            "read_ven_objects",
            "write_reports",
            "write_subscriptions",
            "write_vens",
        }
        assert basic.headers["cache-control"] == "no-store"
        wrong = await vtn.post(
            "/auth/token",
            data={
                "grant_type": "client_credentials",
                "client_id": "ven-a",
                "client_secret": VEN_SECRETS["ven-b"],
            },
        )
        assert wrong.status_code == 401
        assert wrong.json()["error"] == "invalid_client"
        grant = await vtn.post(
            "/auth/token", data={"grant_type": "password", "client_id": "a", "client_secret": "b"}
        )
        assert grant.status_code == 400
        assert grant.json()["error"] == "unsupported_grant_type"
        missing = await vtn.post("/auth/token", data={"grant_type": "client_credentials"})
        assert missing.json()["error"] == "invalid_request"


async def test_notifiers_claim_webhooks_and_no_mqtt_unconfigured_and_topics_keep_privacy() -> None:
    async with vtn_client() as vtn:
        bl, ven_a, ven_b = await _tokens(vtn)
        # MQTT only with GRIDCORE_OPENADR_MQTT_URIS (test_openadr_notifications)
        assert (await vtn.get("/notifiers", ven_a)).json() == {"WEBHOOK": True}
        topics = (await vtn.get("/notifiers/mqtt/topics/programs", ven_a)).json()["topics"]
        assert topics == {
            "CREATE": "programs/create",
            "UPDATE": "programs/update",
            "DELETE": "programs/delete",
            "ALL": "programs/+",
        }
        assert (await vtn.get("/notifiers/mqtt/topics/events", bl)).json()["topics"]["ALL"] == (
            "events/+"
        )
        assert (await vtn.get("/notifiers/mqtt/topics/events", ven_a)).status_code == 403
        ven = await _created(vtn, "/vens", ven_a, {"objectType": "VEN_VEN_REQUEST", "venName": "A"})
        own = await vtn.get(f"/notifiers/mqtt/topics/vens/{ven['id']}/events", ven_a)
        assert own.json()["topics"]["CREATE"] == f"vens/{ven['id']}/events/create"
        one = (await vtn.get(f"/notifiers/mqtt/topics/vens/{ven['id']}", ven_a)).json()
        assert "CREATE" not in one["topics"]
        assert (await vtn.get(f"/notifiers/mqtt/topics/vens/{ven['id']}", ven_b)).status_code == 404
        program = await _created(vtn, "/programs", bl, {"programName": "P", "targets": ["g9"]})
        hidden = await vtn.get(f"/notifiers/mqtt/topics/programs/{program['id']}/events", ven_a)
        assert hidden.status_code == 404
        shown = await vtn.get(f"/notifiers/mqtt/topics/programs/{program['id']}", bl)
        assert shown.json()["topics"]["UPDATE"] == f"programs/{program['id']}/update"


async def test_text_with_nul_is_refused_not_a_failure(database_url: str) -> None:
    """PostgreSQL's text cannot hold NUL: a 400, on every storage, not a 500."""
    async with vtn_client(settings(database_url=database_url)) as vtn:
        bl, _, _ = await _tokens(vtn)
        body = b'{"programName": "a\\u0000b"}'
        answer = await vtn.post("/programs", bl, content=body)
        assert answer.status_code == 400
        assert "programName" in answer.json()["detail"]
        assert (await vtn.get("/vens?venName=a%00b", bl)).status_code == 400
        assert (await vtn.get("/programs?targets=a%00b", bl)).status_code == 400


async def test_every_stored_change_passes_through_the_change_sink() -> None:
    """Where notifications and the bridge hook in: creates, updates, and
    deletes with what was deleted along."""
    from gridcore.openadr import ObjectChange

    seen: list[ObjectChange] = []

    async def sink(changes: Any) -> None:
        seen.extend(changes)

    async with vtn_client() as vtn:
        app = vtn.http._transport.app  # type: ignore[attr-defined]
        vtn_app = next(r.app for r in app.routes if getattr(r, "path", "") == "/openadr3")
        vtn_app.state.vtn.changes = sink
        bl, _, _ = await _tokens(vtn)
        program = await _created(vtn, "/programs", bl, {"programName": "P"})
        event = await _created(vtn, "/events", bl, {"programID": program["id"]})
        await vtn.put("/programs/" + program["id"], bl, json={"programName": "P2"})
        await vtn.delete("/programs/" + program["id"], bl)
    assert [(c.operation, c.kind.value, c.document["id"]) for c in seen] == [
        ("CREATE", "PROGRAM", program["id"]),
        ("CREATE", "EVENT", event["id"]),
        ("UPDATE", "PROGRAM", program["id"]),
        ("DELETE", "PROGRAM", program["id"]),
        ("DELETE", "EVENT", event["id"]),
    ]
