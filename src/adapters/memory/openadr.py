"""The OpenADR VTN's objects in process memory (:class:`gridcore.ports.OpenAdrStore`)."""

from __future__ import annotations

import copy
from dataclasses import dataclass

from gridcore.errors import Conflict
from gridcore.openadr import Document, Kind, ObjectChange, ObjectIndex, ObjectQuery

# Whose children go with an object, and the kind whose name is unique per parent.
_CHILDREN = {Kind.PROGRAM: Kind.EVENT, Kind.VEN: Kind.RESOURCE}
_PARENT = {Kind.EVENT: (Kind.PROGRAM, "program_id"), Kind.RESOURCE: (Kind.VEN, "ven_id")}
_NAMED = {Kind.PROGRAM: "programName", Kind.VEN: "venName", Kind.RESOURCE: "resourceName"}


@dataclass
class _Row:
    document: Document
    index: ObjectIndex


class InMemoryOpenAdrStore:
    def __init__(self) -> None:
        # dicts keep insertion order: the order objects were first stored
        self._rows: dict[Kind, dict[str, _Row]] = {kind: {} for kind in Kind}

    def _check(self, kind: Kind, object_id: str, index: ObjectIndex) -> None:
        parent = _PARENT.get(kind)
        if parent is not None:
            parent_kind, field = parent
            parent_id = getattr(index, field)
            if parent_id not in self._rows[parent_kind]:
                raise Conflict(f"{parent_kind.value.lower()} {parent_id!r} does not exist")
        if kind in _NAMED:
            for other_id, row in self._rows[kind].items():
                same_scope = kind is not Kind.RESOURCE or row.index.ven_id == index.ven_id
                if other_id != object_id and same_scope and row.index.name == index.name:
                    raise Conflict(f"{_NAMED[kind]} {index.name!r} is taken")

    async def add(self, kind: Kind, document: Document, index: ObjectIndex) -> None:
        object_id = document["id"]
        if object_id in self._rows[kind]:
            raise Conflict(f"{kind.value.lower()} {object_id!r} exists")
        self._check(kind, object_id, index)
        self._rows[kind][object_id] = _Row(copy.deepcopy(document), index)

    async def get(self, kind: Kind, object_id: str) -> Document | None:
        row = self._rows[kind].get(object_id)
        return None if row is None else copy.deepcopy(row.document)

    async def replace(self, kind: Kind, document: Document, index: ObjectIndex) -> bool:
        object_id = document["id"]
        if object_id not in self._rows[kind]:
            return False
        self._check(kind, object_id, index)
        self._rows[kind][object_id] = _Row(copy.deepcopy(document), index)
        return True

    async def remove(self, kind: Kind, object_id: str) -> list[ObjectChange]:
        row = self._rows[kind].pop(object_id, None)
        if row is None:
            return []
        removed = [ObjectChange("DELETE", kind, row.document)]
        child = _CHILDREN.get(kind)
        if child is not None:
            _, field = _PARENT[child]
            for child_id, child_row in list(self._rows[child].items()):
                if getattr(child_row.index, field) == object_id:
                    del self._rows[child][child_id]
                    removed.append(ObjectChange("DELETE", child, child_row.document))
        return removed

    async def search(
        self, kind: Kind, query: ObjectQuery, skip: int = 0, limit: int | None = None
    ) -> list[Document]:
        found = [r.document for r in self._rows[kind].values() if query.matches(r.index)]
        end = None if limit is None else skip + limit
        return copy.deepcopy(found[skip:end])
