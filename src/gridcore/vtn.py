"""The OpenADR 3.1 VTN's use cases: create, update, delete, read and search
programs, events, reports, subscriptions, vens and resources, with the
roles, scopes and object privacy of Definition.md ("Object Privacy").

- BL (scope ``read_all``) reads every object as stored and filters only by
  the query it sends.
- A VEN client reads programs and events that are untargeted or carry a
  target granted to it (targets of its ven objects and their resources,
  :func:`gridcore.targeting.readable`), and sees only those targets (target
  hiding); it reads, updates and deletes only the vens, resources, reports
  and subscriptions whose ``clientID`` is its own. Another client's object
  is "not found", so a VEN learns nothing about other VENs.
- The VTN writes each object's metadata (id, createdDateTime,
  modificationDateTime, objectType) and, for what a VEN creates, the
  ``clientID`` its token names. Only BL writes targets to vens and resources.

Every stored change passes through :meth:`Vtn._publish`, to the ``changes``
sink (where notifications and the bridge to gridcore's events hook in).

Requests arrive validated against openadr3.yaml's request schemas (the
entrypoint's job); what is checked here are the rules across objects.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, replace
from datetime import datetime

from gridcore.errors import Conflict, Forbidden, InvalidInput, NotFound
from gridcore.openadr import (
    READ_SCOPE,
    WRITE_SCOPE,
    Client,
    Document,
    Kind,
    ObjectChange,
    ObjectIndex,
    ObjectQuery,
    Role,
    index_of,
)
from gridcore.ports import Clock, IdGenerator, OpenAdrStore
from gridcore.targeting import granted, readable

ChangeSink = Callable[[Sequence[ObjectChange]], Awaitable[None]]

# Kinds read through targets; the others through clientID.
TARGETED = frozenset({Kind.PROGRAM, Kind.EVENT})
# The request's discriminator and what a VEN client may send instead of BL's.
_BL_REQUEST = {Kind.VEN: "BL_VEN_REQUEST", Kind.RESOURCE: "BL_RESOURCE_REQUEST"}
_METADATA = ("id", "createdDateTime", "modificationDateTime", "objectType")
_ID_PREFIX = {
    Kind.PROGRAM: "program",
    Kind.EVENT: "event",
    Kind.REPORT: "report",
    Kind.SUBSCRIPTION: "subscription",
    Kind.VEN: "ven",
    Kind.RESOURCE: "resource",
}


async def _nowhere(_: Sequence[ObjectChange]) -> None:
    return None


def _actor(client: Client) -> str:
    """A client as the audit trail names it (gridcore.audit.ACTOR_LENGTH)."""
    return f"openadr:{client.client_id}"


def stamp(at: datetime) -> str:
    """RFC 3339 in UTC with milliseconds, as the VTN writes its times."""
    return at.isoformat(timespec="milliseconds").replace("+00:00", "Z")


@dataclass(frozen=True, slots=True)
class Filters:
    """A search's query parameters (openadr3.yaml), each None when absent."""

    program_id: str | None = None
    event_id: str | None = None
    ven_id: str | None = None
    client_name: str | None = None
    ven_name: str | None = None
    resource_name: str | None = None
    objects: frozenset[str] | None = None
    targets: frozenset[str] | None = None
    active: bool | None = None


class Vtn:
    def __init__(
        self,
        store: OpenAdrStore,
        clock: Clock,
        ids: IdGenerator,
        changes: ChangeSink = _nowhere,
    ) -> None:
        self._store = store
        self._clock = clock
        self._ids = ids
        self.changes = changes  # the sink of every stored change: notifiers and the bridge set it

    # --- writes ---------------------------------------------------------

    async def create(self, client: Client, kind: Kind, request: Document) -> Document:
        _need(client, WRITE_SCOPE[kind])
        now = stamp(self._clock.now())
        body = await self._body(client, kind, request, stored=None)
        document = {
            "id": f"{_ID_PREFIX[kind]}-{self._ids.hex8()}{self._ids.hex8()}",
            "createdDateTime": now,
            "modificationDateTime": now,
            "objectType": kind.value,
            **body,
        }
        await self._store.add(kind, document, await self._index(kind, document))
        await self._publish([ObjectChange("CREATE", kind, document, by=_actor(client))])
        return document

    async def update(
        self, client: Client, kind: Kind, object_id: str, request: Document
    ) -> Document:
        _need(client, WRITE_SCOPE[kind])
        stored = await self._owned(client, kind, object_id)
        body = await self._body(client, kind, request, stored=stored)
        document = {
            **{k: stored[k] for k in _METADATA},
            "modificationDateTime": stamp(self._clock.now()),
            **body,
        }
        if not await self._store.replace(kind, document, await self._index(kind, document)):
            raise NotFound(kind.value.lower(), object_id)
        await self._publish([ObjectChange("UPDATE", kind, document, by=_actor(client))])
        return document

    async def delete(self, client: Client, kind: Kind, object_id: str) -> Document:
        _need(client, WRITE_SCOPE[kind])
        await self._owned(client, kind, object_id)
        removed = await self._store.remove(kind, object_id)
        if not removed:
            raise NotFound(kind.value.lower(), object_id)
        await self._publish([replace(change, by=_actor(client)) for change in removed])
        return removed[0].document

    # --- reads ----------------------------------------------------------

    async def get(self, client: Client, kind: Kind, object_id: str) -> Document:
        _need(client, READ_SCOPE[kind])
        document = await self._store.get(kind, object_id)
        shown = None if document is None else await self._visible(client, kind, document)
        if shown is None:
            raise NotFound(kind.value.lower(), object_id)
        return shown

    async def search(
        self, client: Client, kind: Kind, filters: Filters, skip: int, limit: int
    ) -> list[Document]:
        _need(client, READ_SCOPE[kind])
        query = ObjectQuery(
            program_id=filters.program_id,
            event_id=filters.event_id,
            ven_id=filters.ven_id,
            client_name=filters.client_name,
            name=filters.ven_name if kind is Kind.VEN else filters.resource_name,
            object_types=filters.objects,
            targets_any=filters.targets or None,
            active_at=self._clock.now() if filters.active else None,
        )
        if client.sees_all:
            return await self._store.search(kind, query, skip, limit)
        if kind not in TARGETED:
            return await self._store.search(
                kind, replace(query, client_id=client.client_id), skip, limit
            )
        # readable(): the request's targets AND the granted ones; an untargeted
        # object only when the request names no targets.
        granted_targets = await self._granted(client.client_id)
        allowed = granted_targets & filters.targets if filters.targets else granted_targets
        query = replace(query, targets_any=allowed, or_untargeted=not filters.targets)
        found = await self._store.search(kind, query, skip, limit)
        shown = (_hidden(d, granted_targets, filters.targets) for d in found)
        return [d for d in shown if d is not None]

    # --- for notifiers (gridcore.notifications) --------------------------

    async def visible_to(self, client: Client, kind: Kind, document: Document) -> Document | None:
        """``document`` as ``client`` may read it (target hiding applied), or
        None: the privacy rule of reads, for notifications."""
        return await self._visible(client, kind, document)

    async def subscriptions_of(self, kind: Kind) -> list[Document]:
        """Every subscription naming ``kind`` in one of its objectOperations."""
        query = ObjectQuery(object_types=frozenset({kind.value}))
        return await self._store.search(Kind.SUBSCRIPTION, query)

    async def all_vens(self) -> list[Document]:
        return await self._store.search(Kind.VEN, ObjectQuery())

    # --- rules ----------------------------------------------------------

    async def _visible(self, client: Client, kind: Kind, document: Document) -> Document | None:
        if client.sees_all:
            return document
        if kind in TARGETED:
            return _hidden(document, await self._granted(client.client_id), None)
        return document if document.get("clientID") == client.client_id else None

    async def _owned(self, client: Client, kind: Kind, object_id: str) -> Document:
        """The stored object this client may change (else NotFound, so that
        another client's object and no object look the same)."""
        document = await self._store.get(kind, object_id)
        if document is None or (
            not client.sees_all and document.get("clientID") != client.client_id
        ):
            raise NotFound(kind.value.lower(), object_id)
        return document

    async def _granted(self, client_id: str) -> frozenset[str]:
        """Targets granted to a VEN client: of its ven objects (each also by
        its own id, gridcore.targeting's rule) and their resources. A client
        without a ven object is granted nothing: it reads untargeted objects only."""
        out: set[str] = set()
        for ven in await self._store.search(Kind.VEN, ObjectQuery(client_id=client_id)):
            resources = await self._store.search(Kind.RESOURCE, ObjectQuery(ven_id=ven["id"]))
            out |= granted(
                ven["id"], ven.get("targets") or (), *((r.get("targets") or ()) for r in resources)
            )
        return frozenset(out)

    async def _body(
        self, client: Client, kind: Kind, request: Document, *, stored: Document | None
    ) -> Document:
        """The object's fields as the request and the rules make them."""
        body = {k: v for k, v in request.items() if k not in _METADATA}
        if kind in (Kind.VEN, Kind.RESOURCE):
            body = self._ven_body(client, kind, request.get("objectType"), body, stored)
            if kind is Kind.RESOURCE:
                ven = await self._store.get(Kind.VEN, body["venID"])
                if ven is None or await self._visible(client, Kind.VEN, ven) is None:
                    raise NotFound("ven", body["venID"])
        elif kind is Kind.EVENT:
            if await self._store.get(Kind.PROGRAM, body["programID"]) is None:
                raise Conflict(f"program {body['programID']!r} does not exist")
        elif kind is Kind.REPORT:
            event = await self._store.get(Kind.EVENT, body["eventID"])
            if event is None or await self._visible(client, Kind.EVENT, event) is None:
                raise Conflict(f"event {body['eventID']!r} does not exist")
            body["clientID"] = stored["clientID"] if stored else client.client_id
        elif kind is Kind.SUBSCRIPTION:
            program_id = body.get("programID")
            if program_id is not None:
                program = await self._store.get(Kind.PROGRAM, program_id)
                if program is None or await self._visible(client, Kind.PROGRAM, program) is None:
                    raise Conflict(f"program {program_id!r} does not exist")
            body["clientID"] = stored["clientID"] if stored else client.client_id
        return body

    @staticmethod
    def _ven_body(
        client: Client, kind: Kind, request_type: object, body: Document, stored: Document | None
    ) -> Document:
        """A ven or resource: BL's request (BL_*) names clientID and targets;
        a VEN's (VEN_*) cannot, and keeps what BL granted."""
        bl_request = request_type == _BL_REQUEST[kind]
        if bl_request and client.role is not Role.BL:
            raise Forbidden(
                f"only business logic sends {_BL_REQUEST[kind]} (it writes clientID and "
                "targets); a VEN client sends VEN_" + _BL_REQUEST[kind][3:]
            )
        if bl_request:
            return body
        if stored is None and client.role is Role.BL:
            raise InvalidInput(
                "objectType",
                f"business logic creates a {kind.value.lower()} with "
                f"{_BL_REQUEST[kind]}, which names its clientID",
            )
        body["clientID"] = stored["clientID"] if stored else client.client_id
        if stored is not None and stored.get("targets") is not None:
            body["targets"] = stored["targets"]
        return body

    async def _index(self, kind: Kind, document: Document) -> ObjectIndex:
        program_id = None
        if kind is Kind.REPORT:
            event = await self._store.get(Kind.EVENT, document["eventID"])
            program_id = None if event is None else event["programID"]
        return index_of(kind, document, program_id=program_id)

    async def _publish(self, changes: Sequence[ObjectChange]) -> None:
        await self.changes(changes)


def _need(client: Client, scope: str) -> None:
    if scope not in client.scopes:
        raise Forbidden(f"this needs the {scope} scope, which client {client.client_id!r} lacks")


def _hidden(
    document: Document, granted_targets: frozenset[str], requested: frozenset[str] | None
) -> Document | None:
    """A program or event as a VEN may see it: None if it is not for the VEN,
    else with only the targets it asked for and was granted (target hiding)."""
    shown = readable(document.get("targets") or (), granted_targets, requested or None)
    if shown is None:
        return None
    if not document.get("targets"):
        return document
    return {**document, "targets": list(shown)}
