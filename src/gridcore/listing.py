"""Which VENs a fleet list shows and in what order: a search over id and
name, and a sort on what the registry holds (id, name, last heartbeat). The
operator console pages the fleet through these instead of loading all of it.

Sorting by a figure computed per VEN (power, shed) would need every VEN's
figure before the first page: it is not offered."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

from gridcore.errors import InvalidInput
from gridcore.ven import Ven

MAX_SEARCH = 100


class VenOrder(StrEnum):
    ID = "id"
    NAME = "name"
    LAST_SEEN = "lastSeen"  # online VENs are the recently seen ones


@dataclass(frozen=True, slots=True)
class VenListing:
    search: str | None = None  # case-insensitive, part of the id or the name
    order: VenOrder = VenOrder.ID
    descending: bool = False

    def __post_init__(self) -> None:
        if self.search is not None and len(self.search) > MAX_SEARCH:
            raise InvalidInput("search", f"at most {MAX_SEARCH} characters")

    @property
    def needle(self) -> str | None:
        text = (self.search or "").strip().lower()
        return text or None

    def matches(self, ven: Ven) -> bool:
        needle = self.needle
        return needle is None or needle in ven.id.lower() or needle in ven.name.lower()

    def arrange(self, vens: Sequence[Ven]) -> list[Ven]:
        """The matching VENs in order: by the key (never-seen VENs last, either
        direction), then by id."""
        chosen = sorted((v for v in vens if self.matches(v)), key=lambda v: v.id)
        if self.order is VenOrder.ID:
            return chosen[::-1] if self.descending else chosen
        if self.order is VenOrder.NAME:
            return sorted(chosen, key=lambda v: v.name, reverse=self.descending)
        seen = [v for v in chosen if v.last_seen_at is not None]
        never = [v for v in chosen if v.last_seen_at is None]
        return sorted(seen, key=_seen, reverse=self.descending) + never


def _seen(ven: Ven) -> datetime:
    assert ven.last_seen_at is not None
    return ven.last_seen_at


ALL = VenListing()
