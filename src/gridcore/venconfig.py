"""Configuration pushed to a VEN on ``ven/config/{venId}`` (004's future topic)
and how far it got.

Rules (docs/decisions.md, "Configuration pushed to VENs"):

- What a VEN acts on, per load: ``enabled``, ``priority``, ``critical`` and
  ``shedCapabilityKw`` (the most it may shed of that load). Names, types,
  capacities and targets are the backend's own bookkeeping: changing only
  those pushes nothing.
- Only what an operator set is pushed (a load's state as the VEN last
  reported it is no instruction: during an event a shed circuit reads
  disabled). A push carries every instruction so far (the previous push's
  loads with this change laid over them, in load id order), so the newest
  push alone is the desired configuration: a push still open when a newer
  one is queued is cancelled (superseded).
- A push is a command (``op: config``) in the dispatch ledger: written in the
  transaction that stores the load's configuration (the outbox), published
  by the worker, re-sent with the same correlationId until the VEN answers,
  at most ``1 + max_retries`` times, then timed out.
- It is confirmed by the VEN's ACK on ``ven/ack/{venId}`` (``op: config``,
  a positive status, the correlationId). What the VEN then reports in its
  telemetry is compared with what is desired, load by load (``inSync``), so
  a VEN that said yes but does otherwise is visible.
"""

from __future__ import annotations

import enum
import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

from gridcore.correlation import Command, CommandOp, CommandState
from gridcore.telemetry import LoadSample

PUSHED = ("enabled", "priority", "critical", "shed_capability_kw")
_WIRE = {"enabled": "enabled", "priority": "priority", "critical": "critical",
         "shed_capability_kw": "shedCapabilityKw"}  # fmt: skip


@dataclass(frozen=True, slots=True)
class LoadSetting:
    """What a VEN must do with one load: only what an operator set (None: the
    VEN keeps its own; a load's ``enabled`` as reported during an event, say,
    is no instruction)."""

    load_id: str
    enabled: bool | None = None
    priority: int | None = None
    critical: bool | None = None
    shed_capability_kw: float | None = None

    def as_wire(self) -> dict[str, Any]:
        """The entry of a ``ven/config`` message (004's camelCase load fields),
        with the fields set and no others."""
        entry: dict[str, Any] = {"loadId": self.load_id}
        for name in PUSHED:
            value = getattr(self, name)
            if value is not None:
                entry[_WIRE[name]] = value
        return entry

    @classmethod
    def from_wire(cls, entry: Mapping[str, Any]) -> LoadSetting:
        shed = entry.get("shedCapabilityKw")
        return cls(
            str(entry["loadId"]), entry.get("enabled"), entry.get("priority"),
            entry.get("critical"), None if shed is None else float(shed),
        )  # fmt: skip

    def differences(self, reported: LoadSample | None) -> list[str]:
        """The wire names of the fields set here that ``reported`` (the load's
        line in the VEN's newest telemetry) does not match; ``["loadId"]``
        when the VEN reports no such load. A field the VEN leaves out cannot
        be compared and is not listed; a shed capability is met when the VEN
        reports no more than the limit (it varies with what the load draws)."""
        if reported is None:
            return ["loadId"]
        wrong = []
        for name in ("enabled", "priority", "critical"):
            wanted, seen = getattr(self, name), getattr(reported, name)
            if wanted is not None and seen is not None and seen != wanted:
                wrong.append(name)
        limit, shed = self.shed_capability_kw, reported.shed_capability_kw
        if limit is not None and shed is not None and shed > limit + 1e-6:
            wrong.append("shedCapabilityKw")
        return wrong


def overlay(
    desired: Sequence[LoadSetting], load_id: str, **changes: Any
) -> tuple[LoadSetting, ...] | None:
    """``desired`` with the fields in ``changes`` (``enabled``, ``priority``,
    ``critical``, ``shed_capability_kw``; None: unchanged) set on
    ``load_id``, in load id order; None when that changes nothing (there is
    nothing to push)."""
    by_id = {s.load_id: s for s in desired}
    before = by_id.get(load_id, LoadSetting(load_id))
    after = replace(before, **{k: v for k, v in changes.items() if k in PUSHED and v is not None})
    if after == before:
        return None
    by_id[load_id] = after
    return tuple(by_id[k] for k in sorted(by_id))


def encode_settings(settings: Iterable[LoadSetting]) -> str:
    """The ``loads`` of a push as it is kept in the ledger (compact JSON)."""
    return json.dumps([s.as_wire() for s in settings], separators=(",", ":"))


def decode_settings(text: str | None) -> tuple[LoadSetting, ...]:
    if not text:
        return ()
    return tuple(LoadSetting.from_wire(entry) for entry in json.loads(text))


class ConfigState(enum.StrEnum):
    """How far a VEN's newest push got."""

    NONE = "none"  # nothing was ever pushed
    PENDING = "pending"  # in the outbox
    DELIVERED = "delivered"  # published, waiting for the VEN's ACK
    CONFIRMED = "confirmed"  # the VEN applied it
    REJECTED = "rejected"  # the VEN refused it
    FAILED = "failed"  # no answer after every re-delivery
    SUPERSEDED = "superseded"  # replaced by a newer push before it was answered


_STATES = {
    CommandState.PENDING: ConfigState.PENDING,
    CommandState.SENT: ConfigState.DELIVERED,
    CommandState.ACKED: ConfigState.CONFIRMED,
    CommandState.REJECTED: ConfigState.REJECTED,
    CommandState.TIMED_OUT: ConfigState.FAILED,
    CommandState.CANCELLED: ConfigState.SUPERSEDED,
}


def config_state(push: Command | None) -> ConfigState:
    return ConfigState.NONE if push is None else _STATES[push.state]


@dataclass(frozen=True, slots=True)
class LoadConfigStatus:
    desired: LoadSetting
    reported: LoadSample | None
    mismatched: tuple[str, ...]

    @property
    def in_sync(self) -> bool:
        return not self.mismatched


def compare(
    desired: Sequence[LoadSetting], reported: Iterable[LoadSample]
) -> list[LoadConfigStatus]:
    """Each desired load against its line in the VEN's newest telemetry."""
    by_id = {line.load_id: line for line in reported}
    return [
        LoadConfigStatus(s, by_id.get(s.load_id), tuple(s.differences(by_id.get(s.load_id))))
        for s in desired
    ]


def new_push(
    correlation_id: str, ven_id: str, settings: Sequence[LoadSetting], now: datetime
) -> Command:
    """The ledger entry of one push."""
    return Command(
        correlation_id=correlation_id,
        ven_id=ven_id,
        op=CommandOp.CONFIG,
        created_at=now,
        config=encode_settings(settings),
    )
