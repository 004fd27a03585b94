"""Device shadows kept locally, fed by ``$aws/things/{venId}/shadow/update``
for brokers that are not AWS IoT (and for the demo)."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any


def merge_state(current: Mapping[str, Any], update: Mapping[str, Any]) -> dict[str, Any]:
    """AWS IoT shadow merge rule: objects merge key by key, a null deletes the
    key, anything else (arrays included) replaces."""
    merged = dict(current)
    for key, value in update.items():
        if value is None:
            merged.pop(key, None)
        elif isinstance(value, Mapping) and isinstance(merged.get(key), Mapping):
            merged[key] = merge_state(merged[key], value)
        else:
            merged[key] = value
    return merged


class InMemoryShadowStore:
    def __init__(self) -> None:
        self._documents: dict[str, dict[str, Any]] = {}

    async def get(self, ven_id: str) -> Mapping[str, Any] | None:
        return self._documents.get(ven_id)

    async def update(self, ven_id: str, document: Mapping[str, Any], at: datetime) -> None:
        state = document.get("state")
        if not isinstance(state, Mapping):
            raise ValueError("a shadow update needs a 'state' object")
        current = self._documents.get(ven_id, {"state": {}})
        merged = merge_state(current, {"state": state})
        merged["timestamp"] = int(at.timestamp())
        self._documents[ven_id] = merged
