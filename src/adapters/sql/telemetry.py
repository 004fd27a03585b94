"""Telemetry ingest: ``SqlTelemetryStore``, the SQL implementation of
:class:`gridcore.ports.TelemetryStore`.

One call stores one batch in one transaction: unknown VENs are registered (or
refused), samples already stored (same VEN and timestamp: a QoS 1 re-delivery)
are skipped, the rest are written in bulk (``COPY`` on PostgreSQL, executemany
on SQLite), heartbeats advance, the current-state tables take each VEN's
and each load's newest values, and each VEN's energy of the day takes the
segments the batch closes (``adapters.sql.energy``).
"""

from __future__ import annotations

import logging
import math
from collections.abc import Iterable, Sequence
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncEngine

from gridcore.errors import InvalidInput
from gridcore.limits import (
    EVENT_ID_LENGTH,
    INT32_MAX,
    INT32_MIN,
    LOAD_ID_LENGTH,
    LOAD_TYPE_LENGTH,
    NAME_LENGTH,
)
from gridcore.ports import NOT_REGISTERED, AppendResult
from gridcore.telemetry import LoadSample, TelemetrySample
from gridcore.ven import DEFAULT_OFFLINE_AFTER, validate_ven_id

log = logging.getLogger("adapters.sql.telemetry")

_RETRIES = 3  # a concurrent writer storing the same message makes COPY fail; retry


class StaleConnectionError(Exception):
    """The connection a writer kept from its last batch, used again without a
    ping, turned out closed (the server restarted or ended it): the batch is
    tried again on a new one, as a pre-ping would have had it."""


Key = tuple[str, datetime]


@dataclass(frozen=True, slots=True)
class Prepared:
    """A sample ready for storage, as column values: timestamp in UTC, loads
    unique by id, numbers finite floats, text free of NUL (PostgreSQL text
    cannot hold it). Building tuples once here keeps the hot path free of
    dataclass copies."""

    key: Key
    original: TelemetrySample
    panel: tuple[Any, ...]  # values of PANEL_FIELDS
    raw_payload: str | None
    loads: tuple[tuple[Any, ...], ...]  # (load_id, *LOAD_FIELDS, current_amps)


class BatchWriter(Protocol):
    """The dialect-specific part of an append. ``conn`` is what ``transaction``
    yields (the dialect's connection), inside that transaction."""

    def transaction(self) -> AbstractAsyncContextManager[Any]:
        """A connection in a new transaction, committed when the block ends
        without an error (unless ``write`` committed it), else rolled back."""
        ...

    async def close(self) -> None:
        """Give back any connection kept between appends."""
        ...

    async def known_vens(self, conn: Any, ven_ids: Sequence[str]) -> set[str]:
        """Which of these VENs (sorted, unique) are registered. May lock their
        rows, in id order, so that concurrent appends for a VEN take turns."""
        ...

    async def register(self, conn: Any, first_seen: Sequence[Key]) -> None:
        """Register VENs (id, first seen), sorted by id; one already registered
        (by a concurrent writer) is left alone. Called in a transaction of its
        own, which holds no other lock."""
        ...

    async def existing(self, conn: Any, keys: Sequence[Key]) -> set[Key]:
        """Which of these (VEN, timestamp) keys are already stored."""
        ...

    async def lookup(
        self, conn: Any, ven_ids: Sequence[str], keys: Sequence[Key]
    ) -> tuple[set[str], set[Key]]:
        """``known_vens`` then ``existing``, in one round trip where the
        database allows it (a batch's first statements)."""
        ...

    async def write(self, conn: Any, batch: Sequence[Prepared]) -> None:
        """Insert telemetry and load rows, advance heartbeats, update current
        state and energy (each VEN's segments chained from its ``ven_latest``
        row as it was before the batch, ``gridcore.energy``). The
        transaction's last statements: the writer may commit with them."""
        ...


def _text(value: object) -> str | None:
    if type(value) is str:
        return value if "\x00" not in value else value.replace("\x00", "")
    return None if value is None else str(value).replace("\x00", "")


def _number(value: object) -> float | None:
    if type(value) is float:  # the common case first: this runs ~10 times per load line
        return value if math.isfinite(value) else None
    if type(value) is int:
        return float(value)
    if value is None or isinstance(value, bool) or not isinstance(value, int | float):
        return None
    number = float(value)
    return number if math.isfinite(number) else None


def _load_row(load: LoadSample) -> tuple[Any, ...]:
    """One load line as column values (a ``LoadSample``'s fields are in column
    order): text through ``_text``, kW through ``_number``, flags only if
    bool, priority only if an int32. Written out because it runs for every
    load line of every message (~10 per message): a line whose values are
    all already storable (None, str without NUL, finite float: what the MQTT
    edge's validation lets through) is its own row, checked without a call.
    ``x - x == 0.0`` holds for a finite float, not NaN or inf."""
    load_id, name, kind, cap, cur, shed, enabled, priority, critical, breaker, amps = load
    if type(load_id) is not str or not 0 < len(load_id) <= LOAD_ID_LENGTH or "\x00" in load_id:
        raise InvalidInput("loadId", f"must be 1-{LOAD_ID_LENGTH} characters, without NUL")
    # Longer text would fail the whole batch's COPY (the MQTT edge refuses it first).
    if type(name) is str and len(name) > NAME_LENGTH:
        raise InvalidInput("name", f"must be at most {NAME_LENGTH} characters")
    if type(kind) is str and len(kind) > LOAD_TYPE_LENGTH:
        raise InvalidInput("type", f"must be at most {LOAD_TYPE_LENGTH} characters")
    if (
        (name is None or (type(name) is str and "\x00" not in name))
        and (kind is None or (type(kind) is str and "\x00" not in kind))
        and (cap is None or (type(cap) is float and cap - cap == 0.0))
        and (cur is None or (type(cur) is float and cur - cur == 0.0))
        and (shed is None or (type(shed) is float and shed - shed == 0.0))
        and (enabled is None or type(enabled) is bool)
        and (priority is None or (type(priority) is int and INT32_MIN <= priority <= INT32_MAX))
        and (critical is None or type(critical) is bool)
        and (breaker is None or (type(breaker) is float and breaker - breaker == 0.0))
        and (amps is None or (type(amps) is float and amps - amps == 0.0))
    ):
        return load
    return (
        load_id,
        _text(name),
        _text(kind),
        _number(cap),
        _number(cur),
        _number(shed),
        enabled if type(enabled) is bool else None,
        priority if type(priority) is int and INT32_MIN <= priority <= INT32_MAX else None,
        critical if type(critical) is bool else None,
        _number(breaker),
        _number(amps),
    )


def prepare(sample: TelemetrySample) -> Prepared:
    """Normalise one sample; raises :class:`InvalidInput` for what cannot be
    stored (an invalid VEN or load id, a naive timestamp, a load name or type
    longer than its column).

    Other values a column cannot hold become NULL (the raw payload keeps them):
    non-finite or non-numeric kW, out-of-range integers, over-long event ids.
    NUL characters are removed from text.
    """
    validate_ven_id(sample.ven_id)
    ts = sample.timestamp
    if not isinstance(ts, datetime) or ts.tzinfo is None or ts.utcoffset() is None:
        raise InvalidInput("timestamp", "must be a timezone-aware datetime")
    if ts.tzinfo is not UTC:
        ts = ts.astimezone(UTC)
    event_id = _text(sample.event_id)
    if event_id is not None and len(event_id) > EVENT_ID_LENGTH:
        event_id = None  # not one of ours
    panel = (
        _number(sample.used_power_kw),
        _number(sample.shed_power_kw),
        _number(sample.requested_reduction_kw),
        event_id,
        _number(sample.baseline_power_kw),
        _number(sample.battery_soc),
        _number(sample.panel_amperage_rating),
        _number(sample.panel_voltage),
        _number(sample.panel_max_kw),
        _number(sample.current_amps),
        _number(sample.panel_utilization_percent),
    )
    loads: dict[str, tuple[Any, ...]] = {}
    for load in sample.loads:
        row = _load_row(load)
        loads[row[0]] = row  # a circuit listed twice: the later line wins
    return Prepared(
        (sample.ven_id, ts), sample, panel, _text(sample.raw_payload), tuple(loads.values())
    )


def received_by(batch: Iterable[Prepared]) -> datetime | None:
    """When the newest sample of the batch arrived (None: none came over the
    wire): no heartbeat of the batch goes past it, and a current state stamped
    after it (a VEN clock running ahead) yields to the batch's sample."""
    stamps = [r for item in batch if (r := item.original.received_at) is not None]
    return max(stamps) if stamps else None


def newest_per_ven(batch: Iterable[Prepared]) -> list[Prepared]:
    """Each VEN's newest sample of the batch, in VEN id order (the lock order)."""
    newest: dict[str, Prepared] = {}
    for item in batch:
        current = newest.get(item.key[0])
        if current is None or current.key[1] < item.key[1]:
            newest[item.key[0]] = item
    return [newest[ven_id] for ven_id in sorted(newest)]


class SqlTelemetryStore:
    """Batched, idempotent telemetry ingest (see the module docstring).

    Samples that cannot be stored (invalid VEN or load id, naive timestamp) are
    returned as refused along with those of unregistered VENs when
    ``auto_register`` is false; they never fail the rest of the batch.
    """

    def __init__(self, engine: AsyncEngine, *, max_hold: timedelta = DEFAULT_OFFLINE_AFTER) -> None:
        """``max_hold``: how long a reading counts for energy (gridcore.energy)."""
        self._engine = engine
        self._writer: BatchWriter
        if engine.dialect.name == "postgresql":
            from adapters.sql.ingest_pg import PostgresBatchWriter

            self._writer = PostgresBatchWriter(engine, max_hold)
        else:
            from adapters.sql.ingest_sqlite import SqliteBatchWriter

            self._writer = SqliteBatchWriter(engine, max_hold)

    async def append(
        self, samples: Sequence[TelemetrySample], *, auto_register: bool = True
    ) -> AppendResult:
        refused: list[TelemetrySample] = []
        reasons: list[str] = []
        valid: list[Prepared] = []
        for sample in samples:
            try:
                valid.append(prepare(sample))
            except (InvalidInput, TypeError, ValueError, AttributeError) as exc:
                log.warning("refused a telemetry sample from %r: %s", sample.ven_id, exc)
                refused.append(sample)
                reasons.append(str(exc))
        for attempt in range(1, _RETRIES + 1):
            try:
                stored, duplicates, rejected = await self._store(valid, auto_register)
                break
            except IntegrityError:
                if attempt == _RETRIES:
                    raise
                log.info("telemetry batch raced another writer; retrying (%d)", attempt)
            except StaleConnectionError as exc:
                if attempt == _RETRIES:
                    raise
                log.info("telemetry batch retried on a new connection: %s", exc.__cause__)
        refused.extend(rejected)
        reasons.extend(NOT_REGISTERED for _ in rejected)
        return AppendResult(stored, duplicates, tuple(refused), tuple(reasons))

    async def _store(
        self, valid: list[Prepared], auto_register: bool
    ) -> tuple[int, int, list[TelemetrySample]]:
        """Returns (stored, duplicates, samples refused as unregistered)."""
        if not valid:
            return 0, 0, []
        ven_ids = sorted({item.key[0] for item in valid})
        unique: dict[Key, Prepared] = {}
        for item in valid:
            unique.setdefault(item.key, item)  # the first copy of a repeat wins
        async with self._writer.transaction() as conn:
            registered, stored = await self._writer.lookup(conn, ven_ids, list(unique))
            unknown = set(ven_ids) - registered
            if not (unknown and auto_register):
                rejected: list[TelemetrySample] = []
                if unknown:
                    rejected = [item.original for item in valid if item.key[0] in unknown]
                    valid = [item for item in valid if item.key[0] not in unknown]
                    unique = {k: item for k, item in unique.items() if k[0] not in unknown}
                fresh = [item for key, item in unique.items() if key not in stored]
                if fresh:
                    await self._writer.write(conn, fresh)
                return len(fresh), len(valid) - len(fresh), rejected
        # Registering here would lock new rows after the lookup locked the
        # known ones: out of id order, so two writers (with a third committing
        # a VEN between their lookups) could wait on each other, a deadlock
        # PostgreSQL breaks by failing a batch. So the lookup's locks are given
        # up, the VENs are registered in a transaction that holds nothing else,
        # and the batch starts over, locking every VEN in one ordered pass. A
        # VEN is registered once in its life, so this path is rare.
        async with self._writer.transaction() as conn:
            await self._register(conn, valid, unknown)
        # Not registering again: a VEN deregistered in the meantime is refused.
        return await self._store(valid, auto_register=False)

    async def close(self) -> None:
        """Give back the connection kept for the next append (PostgreSQL)."""
        await self._writer.close()

    async def _register(self, conn: Any, batch: Sequence[Prepared], unknown: set[str]) -> None:
        first_seen: dict[str, datetime] = {}
        for item in batch:
            if item.key[0] in unknown:
                first_seen.setdefault(item.key[0], item.key[1])
        # Two workers may register the same VEN at once: the second does nothing.
        await self._writer.register(conn, sorted(first_seen.items()))
        log.info(
            "auto-registered %d VEN(s): %s", len(first_seen), ", ".join(sorted(first_seen)[:10])
        )
