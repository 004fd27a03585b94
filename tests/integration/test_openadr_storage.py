"""The OpenAdrStore contract (gridcore.ports), held to the memory adapter and
the SQL one on SQLite and PostgreSQL: documents kept whole, unique names,
references, cascades, every search filter, order and paging; and on
PostgreSQL, two writers racing for one name."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from adapters.memory.openadr import InMemoryOpenAdrStore
from adapters.sql.engine import create_engine
from adapters.sql.openadr import SqlOpenAdrStore
from gridcore.errors import Conflict
from gridcore.openadr import Kind, ObjectQuery, index_of
from gridcore.ports import OpenAdrStore

T0 = datetime(2026, 12, 3, 12, 0, tzinfo=UTC)


@pytest.fixture(params=["memory", "sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
async def store(request: pytest.FixtureRequest) -> AsyncIterator[OpenAdrStore]:
    if request.param == "memory":
        yield InMemoryOpenAdrStore()
        return
    fixture = "migrated_sqlite_url" if request.param == "sqlite" else "migrated_postgres_url"
    engine = create_engine(str(request.getfixturevalue(fixture)))
    try:
        yield SqlOpenAdrStore(engine)
    finally:
        await engine.dispose()


async def _add(store: OpenAdrStore, kind: Kind, document: dict[str, Any], **kw: Any) -> None:
    await store.add(kind, document, index_of(kind, document, **kw))


def _program(pid: str, name: str, targets: list[str] | None = None) -> dict[str, Any]:
    doc: dict[str, Any] = {"id": pid, "objectType": "PROGRAM", "programName": name}
    if targets is not None:
        doc["targets"] = targets
    return doc


def _event(eid: str, pid: str, targets: list[str] | None = None, **extra: Any) -> dict[str, Any]:
    return {"id": eid, "objectType": "EVENT", "programID": pid, "targets": targets, **extra}


def _ven(vid: str, name: str, client: str, targets: list[str] | None = None) -> dict[str, Any]:
    return {"id": vid, "objectType": "VEN", "venName": name, "clientID": client, "targets": targets}


def _resource(rid: str, name: str, ven: str, client: str) -> dict[str, Any]:
    return {
        "id": rid,
        "objectType": "RESOURCE",
        "resourceName": name,
        "venID": ven,
        "clientID": client,
    }


async def _ids(store: OpenAdrStore, kind: Kind, query: ObjectQuery, **kw: Any) -> list[str]:
    return [d["id"] for d in await store.search(kind, query, **kw)]


async def test_documents_round_trip_whole(store: OpenAdrStore) -> None:
    document = {
        **_program("p1", "Shed ⚡", ["g1"]),
        "intervalPeriod": {"start": "2026-12-03T12:00:00Z", "duration": "PT1H"},
        "attributes": [{"type": "X", "values": [1, 2.5, "text", True, {"x": 1.0, "y": -2.0}]}],
        "programDescriptions": None,
    }
    await _add(store, Kind.PROGRAM, document)
    assert await store.get(Kind.PROGRAM, "p1") == document
    assert await store.get(Kind.PROGRAM, "p2") is None
    assert await store.get(Kind.EVENT, "p1") is None  # ids are per kind


async def test_names_are_unique_and_references_must_exist(store: OpenAdrStore) -> None:
    await _add(store, Kind.PROGRAM, _program("p1", "A"))
    with pytest.raises(Conflict, match="programName"):
        await _add(store, Kind.PROGRAM, _program("p2", "A"))
    await _add(store, Kind.PROGRAM, _program("p2", "B"))
    with pytest.raises(Conflict, match="programName"):
        await store.replace(
            Kind.PROGRAM, _program("p2", "A"), index_of(Kind.PROGRAM, _program("p2", "A"))
        )
    assert await store.replace(
        Kind.PROGRAM, _program("p2", "B2"), index_of(Kind.PROGRAM, _program("p2", "B2"))
    )
    assert not await store.replace(
        Kind.PROGRAM, _program("p9", "Z"), index_of(Kind.PROGRAM, _program("p9", "Z"))
    )
    with pytest.raises(Conflict, match="program 'nope'"):
        await _add(store, Kind.EVENT, _event("e1", "nope"))

    await _add(store, Kind.VEN, _ven("v1", "VEN-1", "c1"))
    await _add(store, Kind.VEN, _ven("v2", "VEN-2", "c2"))
    with pytest.raises(Conflict, match="venName"):
        await _add(store, Kind.VEN, _ven("v3", "VEN-1", "c3"))
    await _add(store, Kind.RESOURCE, _resource("r1", "battery", "v1", "c1"))
    await _add(store, Kind.RESOURCE, _resource("r2", "battery", "v2", "c2"))  # another ven's
    with pytest.raises(Conflict, match="resourceName"):
        await _add(store, Kind.RESOURCE, _resource("r3", "battery", "v1", "c1"))
    with pytest.raises(Conflict, match="ven 'v9'"):
        await _add(store, Kind.RESOURCE, _resource("r4", "x", "v9", "c1"))


async def test_removing_a_parent_removes_its_children_and_says_so(store: OpenAdrStore) -> None:
    await _add(store, Kind.PROGRAM, _program("p1", "A"))
    await _add(store, Kind.EVENT, _event("e1", "p1", ["g1"]))
    await _add(store, Kind.EVENT, _event("e2", "p1"))
    removed = await store.remove(Kind.PROGRAM, "p1")
    assert [(c.operation, c.kind, c.document["id"]) for c in removed] == [
        ("DELETE", Kind.PROGRAM, "p1"),
        ("DELETE", Kind.EVENT, "e1"),
        ("DELETE", Kind.EVENT, "e2"),
    ]
    assert await store.get(Kind.EVENT, "e1") is None
    assert await store.remove(Kind.PROGRAM, "p1") == []
    # the removed event's targets went with it: a new one of that id has none
    await _add(store, Kind.PROGRAM, _program("p1", "A"))
    await _add(store, Kind.EVENT, _event("e1", "p1"))
    assert await _ids(store, Kind.EVENT, ObjectQuery(targets_any=frozenset({"g1"}))) == []

    await _add(store, Kind.VEN, _ven("v1", "VEN-1", "c1"))
    await _add(store, Kind.RESOURCE, _resource("r1", "battery", "v1", "c1"))
    assert [c.kind for c in await store.remove(Kind.VEN, "v1")] == [Kind.VEN, Kind.RESOURCE]
    assert await store.get(Kind.RESOURCE, "r1") is None


async def test_searches_filter_page_and_keep_order(store: OpenAdrStore) -> None:
    await _add(store, Kind.PROGRAM, _program("p1", "A", ["g1"]))
    await _add(store, Kind.PROGRAM, _program("p2", "B"))
    end = lambda hours: {  # noqa: E731 - an event ending `hours` after T0
        "intervalPeriod": {"start": "2026-12-03T12:00:00Z", "duration": f"PT{hours}H"}
    }
    await _add(store, Kind.EVENT, _event("e1", "p1", ["g1", "g2"], **end(1)))
    await _add(store, Kind.EVENT, _event("e2", "p2", None, **end(3)))
    await _add(store, Kind.EVENT, _event("e3", "p1", ["g3"]))  # never ends
    await _add(store, Kind.EVENT, _event("e4", "p2", ["g2"], **end(2)))

    everything = ObjectQuery()
    assert await _ids(store, Kind.EVENT, everything) == ["e1", "e2", "e3", "e4"]
    assert await _ids(store, Kind.EVENT, everything, skip=1, limit=2) == ["e2", "e3"]
    assert await _ids(store, Kind.EVENT, everything, skip=4) == []
    assert await _ids(store, Kind.EVENT, ObjectQuery(program_id="p1")) == ["e1", "e3"]
    g2 = frozenset({"g2"})
    assert await _ids(store, Kind.EVENT, ObjectQuery(targets_any=g2)) == ["e1", "e4"]
    both = ObjectQuery(targets_any=g2, or_untargeted=True)
    assert await _ids(store, Kind.EVENT, both) == ["e1", "e2", "e4"]
    none = ObjectQuery(targets_any=frozenset(), or_untargeted=True)
    assert await _ids(store, Kind.EVENT, none) == ["e2"]
    assert await _ids(store, Kind.EVENT, ObjectQuery(targets_any=frozenset())) == []
    later = ObjectQuery(active_at=T0 + timedelta(hours=1, minutes=30))
    assert await _ids(store, Kind.EVENT, later) == ["e2", "e3", "e4"]
    assert await _ids(store, Kind.EVENT, ObjectQuery(program_id="p2", targets_any=g2)) == ["e4"]
    assert await _ids(store, Kind.EVENT, ObjectQuery(client_id="c1")) == []  # events have none
    # a target is matched whole, never as a substring
    assert await _ids(store, Kind.EVENT, ObjectQuery(targets_any=frozenset({"g"}))) == []
    # a replaced event's targets are the new ones
    await store.replace(
        Kind.EVENT, _event("e1", "p1", ["g9"]), index_of(Kind.EVENT, _event("e1", "p1", ["g9"]))
    )
    assert await _ids(store, Kind.EVENT, ObjectQuery(targets_any=g2)) == ["e4"]

    await _add(store, Kind.EVENT, _event("e5", "p1"))
    report = {
        "id": "r1",
        "objectType": "REPORT",
        "eventID": "e5",
        "clientID": "c1",
        "clientName": "VEN-1",
        "resources": [],
    }
    await _add(store, Kind.REPORT, report, program_id="p1")
    assert await _ids(store, Kind.REPORT, ObjectQuery(program_id="p1", event_id="e5")) == ["r1"]
    assert await _ids(store, Kind.REPORT, ObjectQuery(client_id="c2")) == []
    assert await _ids(store, Kind.REPORT, ObjectQuery(client_name="VEN-1")) == ["r1"]

    subscription = {
        "id": "s1",
        "objectType": "SUBSCRIPTION",
        "clientID": "c1",
        "clientName": "VEN-1",
        "objectOperations": [
            {
                "objects": ["EVENT", "PROGRAM"],
                "operations": ["CREATE"],
                "callbackUrl": "https://x.test/cb",
            }
        ],
    }
    await _add(store, Kind.SUBSCRIPTION, subscription)
    found = ObjectQuery(object_types=frozenset({"PROGRAM", "VEN"}))
    assert await _ids(store, Kind.SUBSCRIPTION, found) == ["s1"]
    missing = ObjectQuery(object_types=frozenset({"REPORT"}))
    assert await _ids(store, Kind.SUBSCRIPTION, missing) == []

    await _add(store, Kind.VEN, _ven("v1", "VEN-1", "c1", ["g1"]))
    await _add(store, Kind.VEN, _ven("v2", "VEN-2", "c1"))
    await _add(store, Kind.RESOURCE, _resource("r1", "battery", "v2", "c1"))
    assert await _ids(store, Kind.VEN, ObjectQuery(client_id="c1")) == ["v1", "v2"]
    assert await _ids(store, Kind.VEN, ObjectQuery(name="VEN-2")) == ["v2"]
    assert await _ids(store, Kind.RESOURCE, ObjectQuery(ven_id="v2", name="battery")) == ["r1"]


@pytest.mark.postgres
async def test_two_writers_racing_for_one_name_on_postgres(migrated_postgres_url: str) -> None:
    engines = [create_engine(migrated_postgres_url) for _ in range(2)]
    try:
        stores = [SqlOpenAdrStore(e) for e in engines]
        for attempt in range(10):
            results = await asyncio.gather(
                *(
                    _add(s, Kind.PROGRAM, _program(f"p{attempt}-{i}", f"name-{attempt}"))
                    for i, s in enumerate(stores)
                ),
                return_exceptions=True,
            )
            assert sum(r is None for r in results) == 1, results
            assert all(r is None or isinstance(r, Conflict) for r in results), results
        assert len(await stores[0].search(Kind.PROGRAM, ObjectQuery())) == 10
    finally:
        for engine in engines:
            await engine.dispose()
