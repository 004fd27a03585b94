"""Configuration pushed to a VEN on ``ven/config/{venId}`` (004's future topic)
and how far it got.

Rules (docs/decisions.md, "Configuration pushed to VENs"):

- What a VEN acts on, per load: ``enabled``, ``priority``, ``critical`` and
  ``shedCapabilityKw`` (the most it may shed of that load). Names, types,
  capacities and targets are the backend's own bookkeeping: changing only
  those pushes nothing.
- A push carries the VEN's whole desired configuration (every load an
  operator configured, in id order), so the newest push alone is the truth:
  a push still open when a newer one is queued is cancelled (superseded).
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
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from gridcore.correlation import Command, CommandOp, CommandState
from gridcore.telemetry import LoadSample
from gridcore.ven import Load, Ven


@dataclass(frozen=True, slots=True)
class LoadSetting:
    """What a VEN must do with one load."""

    load_id: str
    enabled: bool
    priority: int | None
    critical: bool
    shed_capability_kw: float

    @classmethod
    def of(cls, load: Load) -> LoadSetting:
        return cls(
            load.id, bool(load.enabled), load.priority, bool(load.critical),
            float(load.shed_capability_kw),
        )  # fmt: skip

    def as_wire(self) -> dict[str, Any]:
        """The entry of a ``ven/config`` message (004's camelCase load fields)."""
        return {
            "loadId": self.load_id,
            "enabled": self.enabled,
            "priority": self.priority,
            "critical": self.critical,
            "shedCapabilityKw": self.shed_capability_kw,
        }

    @classmethod
    def from_wire(cls, entry: Mapping[str, Any]) -> LoadSetting:
        return cls(
            str(entry["loadId"]), bool(entry["enabled"]), entry.get("priority"),
            bool(entry["critical"]), float(entry["shedCapabilityKw"]),
        )  # fmt: skip

    def differences(self, reported: LoadSample | None) -> list[str]:
        """The wire names of the fields ``reported`` (the load's line in the
        VEN's newest telemetry) does not match; ``["loadId"]`` when the VEN
        reports no such load. A field the VEN leaves out cannot be compared
        and is not listed; a shed capability is met when the VEN reports no
        more than the limit (it varies with what the load draws)."""
        if reported is None:
            return ["loadId"]
        wrong = []
        if reported.enabled is not None and bool(reported.enabled) != self.enabled:
            wrong.append("enabled")
        if reported.priority is not None and reported.priority != self.priority:
            wrong.append("priority")
        if reported.critical is not None and bool(reported.critical) != self.critical:
            wrong.append("critical")
        shed = reported.shed_capability_kw
        if shed is not None and shed > self.shed_capability_kw + 1e-6:
            wrong.append("shedCapabilityKw")
        return wrong


def setting_changed(before: Load | None, after: Load) -> bool:
    """Whether configuring ``after`` (was ``before``) changes what the VEN must do."""
    return before is None or LoadSetting.of(before) != LoadSetting.of(after)


def desired_settings(ven: Ven, changed: Load | None = None) -> tuple[LoadSetting, ...]:
    """The VEN's configured loads as settings, in id order; ``changed``
    (being saved in the same transaction) replaces its stored version."""
    loads = {load.id: load for load in ven.loads}
    if changed is not None:
        loads[changed.id] = changed
    return tuple(LoadSetting.of(loads[load_id]) for load_id in sorted(loads))


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
