"""gridcore.notifications: which callbacks a change calls and on which MQTT
topics it is published."""

from __future__ import annotations

from typing import Any

from gridcore.notifications import broadcast_topics, callbacks, notification, ven_topic
from gridcore.openadr import Kind, ObjectChange

EVENT = {"id": "event-1", "objectType": "EVENT", "programID": "program-1", "targets": ["g1"]}


def _subscription(**fields: Any) -> dict[str, Any]:
    operations = [
        {"objects": ["EVENT"], "operations": ["CREATE", "DELETE"], "callbackUrl": "https://a/cb"},
        {"objects": ["EVENT", "PROGRAM"], "operations": ["CREATE"], "callbackUrl": "https://a/cb"},
        {"objects": ["REPORT"], "operations": ["CREATE"], "callbackUrl": "https://b/cb"},
    ]
    return {"id": "s1", "clientID": "ven-a", "objectOperations": operations, **fields}


def test_an_entry_naming_the_kind_and_operation_calls_its_url_once() -> None:
    found = callbacks(_subscription(), ObjectChange("CREATE", Kind.EVENT, EVENT))
    assert [(c.url, c.client_id) for c in found] == [("https://a/cb", "ven-a")]
    assert callbacks(_subscription(), ObjectChange("UPDATE", Kind.EVENT, EVENT)) == []


def test_program_and_targets_of_a_subscription_filter_what_carries_them() -> None:
    create = ObjectChange("CREATE", Kind.EVENT, EVENT)
    assert callbacks(_subscription(programID="program-2"), create) == []
    assert callbacks(_subscription(programID="program-1"), create)
    assert callbacks(_subscription(targets=["g2"]), create) == []
    assert callbacks(_subscription(targets=["g2", "g1"]), create)
    # reports carry neither a program nor targets: not filtered by them
    report = ObjectChange("CREATE", Kind.REPORT, {"id": "report-1", "eventID": "event-1"})
    assert callbacks(_subscription(programID="program-2", targets=["g2"]), report)


def test_topics_follow_the_specs_names() -> None:
    create = ObjectChange("CREATE", Kind.EVENT, EVENT)
    assert broadcast_topics(create) == ["events/create", "programs/program-1/events/create"]
    assert ven_topic(create, "ven-1") == "vens/ven-1/events/create"
    program = ObjectChange("DELETE", Kind.PROGRAM, {"id": "program-1"})
    assert broadcast_topics(program) == ["programs/delete", "programs/program-1/delete"]
    ven = ObjectChange("CREATE", Kind.VEN, {"id": "ven-1"})
    assert broadcast_topics(ven) == ["vens/create"]  # no per-object CREATE
    assert ven_topic(ven, "ven-1") is None
    assert ven_topic(ObjectChange("CREATE", Kind.REPORT, {}), "ven-1") is None


def test_the_notification_carries_what_the_recipient_may_see() -> None:
    shown = {**EVENT, "targets": []}
    body = notification(ObjectChange("UPDATE", Kind.EVENT, EVENT), shown)
    assert body == {"objectType": "EVENT", "operation": "UPDATE", "object": shown}
