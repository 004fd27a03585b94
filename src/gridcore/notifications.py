"""OpenADR 3.1 notifications: which subscription callbacks a stored change
reaches, the ``notification`` object they receive, and the MQTT topics a
change is published on (Definition.md, "Subscriptions" and "Notifications
via Additional Protocols").

Pure rules; who may read the object (privacy, target hiding) is
:class:`gridcore.vtn.Vtn`'s, and delivery is the entrypoint's.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from gridcore.openadr import Document, Kind, ObjectChange
from gridcore.targeting import matches_query

# The collection segment of each kind in topic names (openadr3.yaml paths).
COLLECTION = {
    Kind.PROGRAM: "programs",
    Kind.EVENT: "events",
    Kind.REPORT: "reports",
    Kind.SUBSCRIPTION: "subscriptions",
    Kind.VEN: "vens",
    Kind.RESOURCE: "resources",
}


# Kinds whose objects carry targets (reports and subscriptions do not).
_TARGETED = frozenset({Kind.PROGRAM, Kind.EVENT, Kind.VEN, Kind.RESOURCE})


@dataclass(frozen=True, slots=True)
class Callback:
    """One webhook a subscription asks to be called for a change."""

    subscription_id: str
    client_id: str
    url: str
    bearer_token: str | None


def notification(change: ObjectChange, shown: Document) -> Document:
    """openadr3.yaml ``notification``: objectType, operation and the object
    as its recipient may see it (``shown``: target hiding applied)."""
    return {"objectType": change.kind.value, "operation": change.operation, "object": shown}


def _program_of(kind: Kind, document: Mapping[str, Any]) -> str | None:
    if kind is Kind.PROGRAM:
        return str(document["id"])
    if kind is Kind.EVENT:
        return str(document["programID"])
    return None


def callbacks(subscription: Mapping[str, Any], change: ObjectChange) -> list[Callback]:
    """The callbacks of ``subscription`` that ``change`` calls: each
    objectOperations entry naming the change's object type and operation,
    once per distinct URL. A subscription's ``programID`` keeps programs and
    events of that program only (other kinds carry no program); its
    ``targets`` ("used by server to filter notifications") keep only objects
    carrying one of them, of the kinds that carry targets."""
    program_id = subscription.get("programID")
    if program_id is not None:
        of = _program_of(change.kind, change.document)
        if of is not None and of != program_id:
            return []
    wanted_targets = subscription.get("targets")
    if (
        wanted_targets
        and change.kind in _TARGETED
        and not matches_query(change.document.get("targets") or (), frozenset(wanted_targets))
    ):
        return []
    out: dict[str, Callback] = {}
    for entry in subscription["objectOperations"]:
        if change.kind.value in entry["objects"] and change.operation in entry["operations"]:
            url = entry["callbackUrl"]
            out.setdefault(
                url,
                Callback(
                    subscription["id"], subscription["clientID"], url, entry.get("bearerToken")
                ),
            )
    return list(out.values())


def broadcast_topics(change: ObjectChange) -> list[str]:
    """The topics of everyone's objects a change is published on, with the
    object whole (BL's topics: openadr3.yaml gives them ``read_bl`` /
    ``read_all``): ``{collection}/{op}``, ``{collection}/{id}/{op}`` for a
    program or ven (no per-object CREATE, the spec's rule), and
    ``programs/{programID}/events/{op}`` for an event."""
    op = change.operation.lower()
    kind, document = change.kind, change.document
    topics = [f"{COLLECTION[kind]}/{op}"]
    if kind in (Kind.PROGRAM, Kind.VEN) and change.operation != "CREATE":
        topics.append(f"{COLLECTION[kind]}/{document['id']}/{op}")
    if kind is Kind.EVENT:
        topics.append(f"programs/{document['programID']}/events/{op}")
    return topics


def ven_topic(change: ObjectChange, ven_id: str) -> str | None:
    """The topic of one ven's own notifications for this change, if its kind
    has one: ``vens/{venID}/events|programs|resources/{op}`` and
    ``vens/{venID}/{op}`` (update, delete) for the ven itself."""
    op = change.operation.lower()
    if change.kind is Kind.VEN:
        return None if change.operation == "CREATE" else f"vens/{ven_id}/{op}"
    if change.kind in (Kind.EVENT, Kind.PROGRAM, Kind.RESOURCE):
        return f"vens/{ven_id}/{COLLECTION[change.kind]}/{op}"
    return None


def prefixed(prefix: str, topics: Iterable[str]) -> list[str]:
    """Topic names under an optional deployment prefix (``""``: the spec's names)."""
    return [f"{prefix}{t}" for t in topics]


@dataclass(frozen=True, slots=True)
class Outgoing:
    """One notification to deliver, as the outbox keeps it: a webhook call
    (``channel`` "webhook", ``target`` the callback URL) or an MQTT message
    (``channel`` "mqtt", ``target`` the topic). Notifications with the same
    channel and target form a lane, delivered in the order they were put."""

    channel: str
    target: str
    body: bytes
    bearer_token: str | None = None
    subscription_id: str | None = None

    @property
    def lane(self) -> tuple[str, str]:
        return (self.channel, self.target)


@dataclass(frozen=True, slots=True)
class Claimed:
    """An outbox row leased to one delivering process (``row_id`` names it)."""

    row_id: int
    item: Outgoing
