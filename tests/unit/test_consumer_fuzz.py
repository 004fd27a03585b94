"""A hypothesis fuzz of the MQTT consumer (issue 11): arbitrary JSON in every
field of every topic it subscribes, and the consumer must neither die nor lose
nor double-count a message.

Each example starts from a valid payload of one topic kind (both spellings the
documents show), then replaces, drops or adds fields at any depth (``loads[]``,
``circuits[]``, ``circuits_curtailed[]``, a shadow's ``state.reported``, a
status's ``details``) with arbitrary JSON: huge, tiny and negative numbers,
number tokens Python cannot round-trip (``1e400``, ``NaN``, 5,000 digits),
"NaN"/"inf" strings, edge timestamps, long strings, NUL and other unicode,
nested arrays and objects, null, booleans. Sometimes the whole payload is a
non-object, garbage bytes or oversize, and the topic's VEN level varies.

For every message, on a fresh consumer over the memory adapters:

- ``handle`` raises nothing;
- after a flush the message is accounted for exactly once: stored (the
  ``WriteStats`` counters and the memory stores agree) or one dead letter
  with a reason. A dead letter of category ``internal`` (the catch-all in
  ``MqttConsumer.handle``) or a write dead-lettered as poison is a failure:
  validation let through what it should have refused;
- everything stored, turned into rows as the SQL adapters would write them
  (``prepare``, ``ack_row``, ...), fits what PostgreSQL enforces on the columns
  of ``adapters.sql.tables``: ``String(n)`` lengths, no NUL in text, finite
  floats, int4/int8 ranges, NOT NULL, JSON documents jsonb accepts. The memory
  stores hold anything; this is what catches "valid at the edge, poison in the
  batch".

``FOUND`` keeps the minimal cases the fuzz has found as plain regressions.
"""

from __future__ import annotations

import asyncio
import copy
import json
import re
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import JSON, BigInteger, Boolean, Float, Integer, LargeBinary, String, Table

from adapters.memory.broker import InMemoryBroker
from adapters.memory.reports import (
    InMemoryLoadSnapshotStore,
    InMemoryReports,
    InMemoryVenStatusStore,
)
from adapters.memory.repositories import InMemoryUnitOfWorkFactory
from adapters.memory.shadows import InMemoryShadowStore
from adapters.memory.telemetry import InMemoryTelemetry, InMemoryTelemetryStore
from adapters.mqtt.buffering import RetryPolicy
from adapters.mqtt.consumer import ConsumerConfig, MqttConsumer
from adapters.mqtt.payloads import MAX_PAYLOAD_BYTES, batch_samples
from adapters.mqtt.topics import (
    ACK_FILTER,
    LOADS_FILTER,
    METERING,
    SHADOW_UPDATE_FILTER,
    TELEMETRY_FILTER,
    MessageKind,
    Route,
    TopicRouter,
)
from adapters.sql import tables
from adapters.sql.engine import json_dumps
from adapters.sql.mapping import ack_row, command_row, dead_letter_row, event_row, ven_row
from adapters.sql.reports import _snapshot_rows  # the rows load_snapshots gets
from adapters.sql.telemetry import prepare
from adapters.sql.types import UtcDateTime
from adapters.system import ManualClock
from gridcore import Command, CommandOp, DrEvent
from gridcore.ports import BrokerMessage
from gridcore.reports import LoadSnapshot, VenStatusReport

T0 = datetime(2025, 10, 20, 15, 0, tzinfo=UTC)
EPOCH = 1760972400  # T0
VEN = "ven-001"
EVENT_ID = "evt-a1b2c3d4"
EVENT_CMD = f"{EVENT_ID}-abc12345"
RESTORE_CMD = f"{EVENT_ID}-0000002a"
STATUS_FILTER = "ven/status/+"  # MQTT_TOPIC_STATUS, with a VEN level
ROUTES = [
    Route(METERING, MessageKind.TELEMETRY),
    Route(TELEMETRY_FILTER, MessageKind.TELEMETRY),  # a per-VEN topic from MQTT_TOPICS
    Route(ACK_FILTER, MessageKind.ACK),
    Route(SHADOW_UPDATE_FILTER, MessageKind.SHADOW),
    Route(LOADS_FILTER, MessageKind.LOADS),
    Route(STATUS_FILTER, MessageKind.STATUS),
]
FUZZ = settings(
    max_examples=200,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)

# --- valid payloads, both spellings -------------------------------------------

TELEMETRY_BASES: list[dict[str, Any]] = [
    {
        "venId": VEN,
        "timestamp": EPOCH,
        "usedPowerKw": 8.2,
        "shedPowerKw": 4.8,
        "requestedReductionKw": 5.0,
        "eventId": "evt-123",
        "baselinePowerKw": 13.0,
        "batterySOC": 85.5,
        "panelAmperageRating": 200,
        "panelVoltage": 240,
        "panelMaxKw": 48.0,
        "currentAmps": 34.2,
        "panelUtilizationPercent": 17.1,
        "circuits": [
            {
                "id": "circuit_1",
                "name": "Main HVAC",
                "breakerAmps": 30,
                "currentKw": 2.1,
                "currentAmps": 8.75,
                "enabled": True,
                "critical": False,
            },
            {"id": "circuit_3", "name": "Pool Pump", "breakerAmps": 20, "currentKw": 0.0},
        ],
        "loads": [
            {
                "loadId": "circuit_1",
                "name": "Main HVAC",
                "type": "hvac",
                "capacityKw": 5.0,
                "currentPowerKw": 2.1,
                "shedCapabilityKw": 5.0,
                "enabled": True,
                "priority": 2,
                "critical": False,
            },
        ],
    },
    {
        "venId": VEN,
        "timestamp": "2025-10-20T15:00:00+02:00",
        "usedPowerKw": 1.5,
        "batterySoc": 40,
        "circuits": [
            {
                "id": "ev1",
                "name": "EV Charger",
                "breaker_amps": 50,
                "current_kw": 7.2,
                "current_amps": 30.0,
                "enabled": True,
                "critical": False,
            },
        ],
        "loads": [
            {
                "load_id": "ev1",
                "type": "ev",
                "capacity_kw": 7.2,
                "current_power_kw": 7.2,
                "shed_capability_kw": 7.2,
            },
            {"id": "heater1", "name": "Water Heater", "type": "water_heater", "priority": 5},
        ],
    },
]

ACK_BASES: list[dict[str, Any]] = [
    {  # 002: {id, name, breaker_amps, original_kw, curtailed_kw, final_kw, critical}
        "op": "event",
        "status": "accepted",
        "event_id": EVENT_ID,
        "correlationId": EVENT_CMD,
        "requested_shed_kw": 5.0,
        "actual_shed_kw": 5.0,
        "circuits_curtailed": [
            {
                "id": "ev1",
                "name": "EV Charger",
                "breaker_amps": 50,
                "original_kw": 8.5,
                "curtailed_kw": 8.5,
                "final_kw": 0.0,
                "critical": False,
            },
        ],
        "ts": EPOCH,
    },
    {  # 004 and the other spellings: {loadId, name, shedKw}, camelCase kW, timestamp
        "op": "event",
        "status": "accepted",
        "venId": VEN,
        "eventId": EVENT_ID,
        "correlation_id": EVENT_CMD,
        "requestedShedKw": 5.0,
        "actualShedKw": 4.8,
        "circuitsCurtailed": [
            {"loadId": "circuit_3", "name": "HVAC", "shedKw": 3.5},
            {"load_id": "circuit_5", "originalKw": 1.3, "finalKw": 0.0, "breakerAmps": 20},
        ],
        "timestamp": "2025-10-20T15:00:05Z",
    },
    {  # no correlationId: matched to the newest event command of the VEN
        "op": "event",
        "status": "accepted",
        "ven_id": VEN,
        "circuits_curtailed": [{"id": "ev1", "shed_kw": 2.0, "curtailedKw": 2.0}],
    },
    {"op": "restore", "status": "success", "ts": EPOCH, "correlationId": RESTORE_CMD},
]

SHADOW_BASES: list[dict[str, Any]] = [
    {
        "state": {
            "reported": {
                "power_kw": 8.2,
                "shed_kw": 4.8,
                "panel_amperage": 200,
                "circuits": [
                    {"id": "circuit_1", "name": "Main HVAC", "enabled": True, "current_kw": 2.1},
                ],
                "active_event": {"event_id": "evt-123", "shed_kw": 5.0, "end_ts": EPOCH},
                "timestamp": EPOCH,
            },
        },
    },
    {"state": {"reported": {"power_kw": 1.0}, "desired": {"mode": "auto"}}, "version": 3},
]

LOADS_BASES: list[dict[str, Any]] = [
    {
        "schemaVersion": "1.0",
        "venId": VEN,
        "timestamp": EPOCH,
        "loads": [
            {
                "loadId": "circuit_1",
                "name": "Main HVAC",
                "type": "hvac",
                "capacityKw": 5.0,
                "currentPowerKw": 2.1,
                "shedCapabilityKw": 5.0,
                "enabled": True,
                "priority": 2,
            },
            {
                "load_id": "ev1",
                "type": "ev",
                "capacity_kw": 7.2,
                "current_power_kw": 0.0,
                "shed_capability_kw": 7.2,
                "critical": False,
            },
        ],
    },
]

STATUS_BASES: list[dict[str, Any]] = [
    {"venId": VEN, "status": "online", "timestamp": EPOCH, "details": {"reason": "boot"}},
    {"ven_id": VEN, "status": "offline", "ts": "2025-10-20T15:00:00Z"},
]

# --- arbitrary JSON -----------------------------------------------------------


@dataclass(frozen=True)
class Raw:
    """A JSON token written as is: what ``json.dumps`` cannot produce."""

    text: str


RAW_NUMBERS = [
    "NaN",
    "Infinity",
    "-Infinity",
    "1e400",
    "-1e400",
    "1e-400",
    "-0",
    "1" * 5000,  # over Python's 4,300-digit int limit
    "-" + "9" * 4301,
    "1" + "0" * 400 + ".5",
]
RAW_STRINGS = [
    '"\\ud800"',  # lone surrogates
    '"x\\udfff"',
    '"\\u0000"',
    '"\\\\u0000"',  # a backslash, then u0000: six characters of text
    '"a\\\\"',
]
RAW_NESTING = ["[" * 300 + "]" * 300, '{"a":' * 120 + "1" + "}" * 120]

SPECIAL_STRINGS = [
    "",
    " ",
    "\x00",
    "a\x00b",
    "NaN",
    "nan",
    "Infinity",
    "-inf",
    "1e309",
    "5.0",
    "null",
    "true",
    "9999-12-31T23:59:59-23:59",
    "0001-01-01T00:00:00+01:00",
    "9999-12-31T23:59:59.999999",
    "2099-12-31T23:59:59Z",
    "2100-01-01T00:00:00Z",
    "1999-12-31T23:59:59+00:00",
    "1900-01-01T00:00:00",
    "2025-10-20T15:00:00+14:00",
    "2025-10-20T15:00:00.123456789Z",
    "2025-W43-1",
    "\u202eevil",
    "\ufeffbom",
    "😀" * 3,
    "a/b",
    "+",
    "#",
    VEN,
    EVENT_ID,
    EVENT_CMD,
]

SPECIAL_INTS = [
    0,
    -1,
    1,
    2**31 - 1,
    2**31,
    -(2**31) - 1,
    2**53 + 1,
    2**63,
    -(2**63) - 1,
    2**64,
    10**30,
    10**400,
    946684799,  # the epoch bounds of a timestamp: 2000, 2100
    946684800,
    4102444799,
    4102444800,
]

SPECIAL_FLOATS = [1e308, -1e308, 1.7976931348623157e308, 5e-324, -0.0, 946684799.999, 4102444799.5]

# Lengths around the columns' String(n): 32 (status), 50 (op), 64 (event id,
# load type, ack_status), 128 (ids), 255 (names); and far beyond.
LONG_LENGTHS = [33, 51, 65, 129, 256, 1000, 20_000]

Path = tuple[str | int, ...]


def paths(value: Any, prefix: Path = ()) -> Iterator[tuple[Path, Any]]:
    """Every field and list item of a payload, at any depth, with its value."""
    if isinstance(value, dict):
        items: Iterator[tuple[str | int, Any]] = iter(value.items())
    elif isinstance(value, list):
        items = enumerate(value)
    else:
        return
    for key, child in items:
        yield (*prefix, key), child
        yield from paths(child, (*prefix, key))


def _parent(doc: Any, path: Path) -> Any:
    for key in path[:-1]:
        doc = doc[key]
    return doc


def _all_keys(doc: Any) -> set[str]:
    return {p[-1] for p, _ in paths(doc) if isinstance(p[-1], str)}


# Every field name the wire models read, to add as "unknown" fields too (a
# second spelling next to the first, a field where it does not belong).
KNOWN_NAMES = sorted(
    set().union(
        *(
            _all_keys(base)
            for bases in (TELEMETRY_BASES, ACK_BASES, SHADOW_BASES, LOADS_BASES, STATUS_BASES)
            for base in bases
        ),
        {  # the other spellings of payloads.py the bases do not all show
            "batterySoc",
            "batterySOC",
            "load_id",
            "loadId",
            "eventId",
            "event_id",
            "shed_kw",
            "curtailedKw",
            "ven_id",
            "venId",
            "ts",
            "timestamp",
            "desired",
            "reported",
        },
    )
)


numbers = st.one_of(
    st.integers(),
    st.sampled_from(SPECIAL_INTS),
    st.floats(allow_nan=False, allow_infinity=False),
    st.sampled_from(SPECIAL_FLOATS),
    st.floats(min_value=946684700, max_value=4102444900),  # epochs near the bounds
    st.sampled_from(RAW_NUMBERS).map(Raw),
)
strings = st.one_of(
    st.text(max_size=30),
    st.sampled_from(SPECIAL_STRINGS),
    st.builds(
        lambda s, n: (s * n)[:n],
        st.sampled_from(["x", "é", "😀", "\x00", "a\x00", "\\u0000", "ven-"]),
        st.sampled_from(LONG_LENGTHS),
    ),
    st.sampled_from(RAW_STRINGS).map(Raw),
)
leaves = st.one_of(
    st.none(),
    st.booleans(),
    numbers,
    strings,
    st.sampled_from(RAW_NESTING).map(Raw),
)


def _containers(children: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    keys = st.one_of(st.text(max_size=12), st.sampled_from(KNOWN_NAMES))
    return st.lists(children, max_size=4) | st.dictionaries(keys, children, max_size=4)


json_values = st.recursive(leaves, _containers, max_leaves=12)


_MARK = re.compile('"\ue000([0-9]+)\ue000"')


def encode(value: Any) -> str:
    """JSON text of a value that may hold :class:`Raw` tokens (non-ASCII as is)."""
    raws: list[str] = []

    def mark(raw: Any) -> str:
        raws.append(raw.text)
        return f"\ue000{len(raws) - 1}\ue000"

    text = json.dumps(value, ensure_ascii=False, default=mark)
    return _MARK.sub(lambda m: raws[int(m.group(1))], text) if raws else text


def _like(value: Any) -> st.SearchStrategy[Any]:
    """Edge values of the kind a field holds: where validation has limits."""
    if isinstance(value, str):
        return strings
    if isinstance(value, int | float) and not isinstance(value, bool):
        return numbers
    return json_values


@st.composite
def mutated(draw: st.DrawFn, bases: Sequence[dict[str, Any]]) -> bytes:
    """A payload of one kind: mostly a valid one with fields replaced, dropped,
    added or multiplied; sometimes any JSON at all, garbage or oversize."""
    base = copy.deepcopy(draw(st.sampled_from(bases)))
    shape = draw(st.sampled_from(["fields"] * 12 + ["root", "garbage", "oversize"]))
    if shape == "root":
        return encode(draw(json_values)).encode()
    if shape == "garbage":
        valid = encode(base).encode()
        return draw(
            st.one_of(
                st.binary(max_size=40),
                st.integers(0, len(valid) - 1).map(lambda n: valid[:n]),
                st.just(b"\xff\xfe" + valid),
                st.just(valid + b"\x00"),
                st.just(valid.replace(b'"', b"'")),
            )
        )
    if shape == "oversize":
        return encode(base).encode() + b" " * MAX_PAYLOAD_BYTES
    for _ in range(draw(st.integers(1, 4))):
        found = list(paths(base))
        op = draw(st.sampled_from(["replace", "replace", "replace", "drop", "add"]))
        if op == "add" or not found:
            objects = [(), *(p for p, v in found if isinstance(v, dict))]
            at = draw(st.sampled_from(objects))
            target = base
            for key in at:
                target = target[key]
            key = draw(st.sampled_from(KNOWN_NAMES) | st.text(max_size=12))
            target[key] = draw(json_values)
        else:
            at, _ = draw(st.sampled_from(found))
            parent = _parent(base, at)
            if op == "drop":
                del parent[at[-1]]
            else:
                parent[at[-1]] = draw(_like(parent[at[-1]]) | json_values)
    lists = [(p, v) for p, v in paths(base) if isinstance(v, list) and v]
    if lists and draw(st.booleans()):  # loads[], circuits[]... by the thousand
        at, items = draw(st.sampled_from(lists))
        grown = []
        for i in range(draw(st.sampled_from([0, 2, 50, 400, 3000]))):
            item = items[i % len(items)]
            if isinstance(item, dict):
                item = dict(item)  # ids made unique; the rest shared
                for id_key in ("id", "loadId", "load_id"):
                    if isinstance(item.get(id_key), str):
                        item[id_key] = f"{item[id_key]}-{i}"
            grown.append(item)
        _parent(base, at)[at[-1]] = grown
    return encode(base).encode()


# The VEN level of a topic: mostly the payload's VEN, else another valid id,
# an empty level, one too long for ven_id, a level that is not a VEN id.
ven_levels = st.one_of(
    st.just(VEN),
    st.just(VEN),
    st.just(VEN),
    st.sampled_from(["ven-002", "", "a" * 128, "a" * 129, "x" * 300, "ven 001", "vën", "a/b"]),
    st.text(
        alphabet=st.characters(blacklist_characters="/+#\x00", blacklist_categories=["Cs"]),
        max_size=20,
    ),
)


@dataclass(frozen=True)
class TopicKind:
    name: str
    kind: MessageKind
    topic: str  # with {ven} for the VEN level, if it has one
    bases: list[dict[str, Any]]


KINDS = [
    TopicKind("telemetry-metering", MessageKind.TELEMETRY, METERING, TELEMETRY_BASES),
    TopicKind("telemetry-per-ven", MessageKind.TELEMETRY, "ven/telemetry/{ven}", TELEMETRY_BASES),
    TopicKind("ack", MessageKind.ACK, "ven/ack/{ven}", ACK_BASES),
    TopicKind("shadow", MessageKind.SHADOW, "$aws/things/{ven}/shadow/update", SHADOW_BASES),
    TopicKind("loads", MessageKind.LOADS, "ven/loads/{ven}", LOADS_BASES),
    TopicKind("status", MessageKind.STATUS, "ven/status/{ven}", STATUS_BASES),
]

# --- the consumer, over memory adapters that keep what they were given ----------


class RecordingStatuses(InMemoryVenStatusStore):
    def __init__(self, *args: Any) -> None:
        super().__init__(*args)
        self.written: list[VenStatusReport] = []

    async def record_statuses(self, reports: Sequence[VenStatusReport]) -> int:
        stored = await super().record_statuses(reports)
        self.written.extend(reports)
        return stored


class RecordingSnapshots(InMemoryLoadSnapshotStore):
    def __init__(self, *args: Any) -> None:
        super().__init__(*args)
        self.written: list[LoadSnapshot] = []

    async def record_snapshots(self, snapshots: Sequence[LoadSnapshot]) -> int:
        stored = await super().record_snapshots(snapshots)
        self.written.extend(snapshots)
        return stored


class RecordingShadows(InMemoryShadowStore):
    def __init__(self) -> None:
        super().__init__()
        self.updated: list[str] = []

    async def update(self, ven_id: str, document: Mapping[str, Any], at: datetime) -> None:
        await super().update(ven_id, document, at)
        self.updated.append(ven_id)


class Rig:
    def __init__(self) -> None:
        self.uow = InMemoryUnitOfWorkFactory()
        self.telemetry = InMemoryTelemetry()
        self.shadows = RecordingShadows()
        reports = InMemoryReports()
        self.statuses = RecordingStatuses(self.uow.state, reports)
        self.snapshots = RecordingSnapshots(self.uow.state, reports)
        self.transport = InMemoryBroker().connect("worker")
        config = ConsumerConfig(
            batch_size=1, batch_max_delay=0.0,
            retry=RetryPolicy(initial_delay=0.0001, max_delay=0.0001),
        )  # fmt: skip
        self.consumer = MqttConsumer(
            self.transport, TopicRouter(ROUTES), uow_factory=self.uow,
            telemetry_store=InMemoryTelemetryStore(self.uow.state, self.telemetry),
            shadow_store=self.shadows, clock=ManualClock(T0), config=config,
            status_sink=self.statuses, load_sink=self.snapshots,
        )  # fmt: skip
        self.consumer.writes.batch_delay = 0.0  # an ACK alone need not wait for company

    async def seed(self) -> None:
        """An active event with an event and a restore command to VEN, sent,
        so that ACKs match and move the ledger and the event's kW."""
        event = DrEvent(
            id=EVENT_ID, start_time=T0, end_time=T0 + timedelta(hours=1),
            requested_reduction_kw=10.0, created_at=T0,
        )  # fmt: skip
        commands = [
            Command(
                correlation_id=EVENT_CMD, ven_id=VEN, op=CommandOp.EVENT, created_at=T0,
                event_id=EVENT_ID, shed_kw=5.0, duration_sec=3600,
            ).mark_sent(T0, timedelta(seconds=30)),
            Command(
                correlation_id=RESTORE_CMD, ven_id=VEN, op=CommandOp.RESTORE, created_at=T0,
                event_id=EVENT_ID,
            ).mark_sent(T0, timedelta(seconds=30)),
        ]  # fmt: skip
        async with self.uow() as uow:
            await uow.events.add(event)
            await uow.commands.add_many(commands)
            await uow.commit()


async def consume(topic: str, payload: bytes) -> tuple[Rig, BaseException | None]:
    rig = Rig()
    await rig.seed()
    run = asyncio.create_task(rig.consumer.run())
    await asyncio.sleep(0)
    escaped: BaseException | None = None
    try:
        await rig.consumer.handle(BrokerMessage(topic, payload, qos=1))
    except Exception as exc:
        escaped = exc
    await asyncio.wait_for(rig.consumer.flushed(), 5.0)
    await rig.transport.close()
    await asyncio.wait_for(run, 5.0)
    return rig, escaped


# --- what PostgreSQL would refuse ----------------------------------------------

INT4, INT8 = 2**31 - 1, 2**63 - 1


def _json_problems(where: str, value: Any) -> list[str]:
    """A document as the engine's serializer writes it, as jsonb would read it."""
    try:
        text = json_dumps(value)
    except Exception as exc:  # the serializer itself fails: the write fails
        return [f"{where}: json_dumps raised {type(exc).__name__}: {exc}"]
    try:
        parsed = json.loads(text)
    except ValueError as exc:
        return [f"{where}: the serialized document is not JSON ({exc}): {text[:80]!r}"]
    problems = []
    for path, leaf in [((), parsed), *paths(parsed)]:
        for text_value in (leaf, path[-1] if path else None):
            if not isinstance(text_value, str):
                continue
            # jsonb refuses the escape \u0000 (a NUL), not the text "\\u0000"
            # (an escaped backslash, then "u0000"), which json_dumps keeps.
            if "\x00" in text_value:
                problems.append(f"{where}: a NUL at {list(path)} (jsonb refuses \\u0000)")
            try:
                text_value.encode("utf-8")
            except UnicodeEncodeError:
                problems.append(f"{where}: a lone surrogate at {list(path)} (jsonb refuses it)")
    return problems


def row_problems(table: Table, row: Mapping[str, Any]) -> list[str]:
    """What PostgreSQL would refuse in ``row`` for ``table``."""
    problems: list[str] = []
    for name, value in row.items():
        column = table.c[name]
        where = f"{table.name}.{name}"
        kind = column.type
        if value is None:
            if not column.nullable and column.server_default is None:
                problems.append(f"{where}: NULL in a NOT NULL column")
            continue
        if isinstance(kind, JSON):
            problems += _json_problems(where, value)
        elif isinstance(kind, String):
            if not isinstance(value, str):
                problems.append(f"{where}: {type(value).__name__} in a text column")
                continue
            if kind.length is not None and len(value) > kind.length:
                problems.append(f"{where}: {len(value)} characters > varchar({kind.length})")
            if "\x00" in value:
                problems.append(f"{where}: NUL in text")
            try:
                value.encode("utf-8")
            except UnicodeEncodeError:
                problems.append(f"{where}: not encodable as UTF-8")
        elif isinstance(kind, Float):
            if isinstance(value, bool) or not isinstance(value, int | float):
                problems.append(f"{where}: {type(value).__name__} in a float column")
            elif not abs(value) <= 1.7976931348623157e308:
                problems.append(f"{where}: {value!r} is not a finite float")
        elif isinstance(kind, Integer):
            bound = INT8 if isinstance(kind, BigInteger) else INT4
            if isinstance(value, bool) or not isinstance(value, int):
                problems.append(f"{where}: {type(value).__name__} in an integer column")
            elif not -bound - 1 <= value <= bound:
                problems.append(f"{where}: {value} out of the integer range")
        elif isinstance(kind, Boolean):
            if not isinstance(value, bool):
                problems.append(f"{where}: {type(value).__name__} in a boolean column")
        elif isinstance(kind, UtcDateTime):
            if not isinstance(value, datetime) or value.utcoffset() is None:
                problems.append(f"{where}: {value!r} is not an aware datetime")
        elif isinstance(kind, LargeBinary) and not isinstance(value, bytes):
            problems.append(f"{where}: {type(value).__name__} in a bytea column")
    return problems


_TELEMETRY_COLUMNS = ("ven_id", "timestamp", *tables.PANEL_FIELDS, "raw_payload")
_LOAD_COLUMNS = ("load_id", *tables.LOAD_FIELDS, "current_amps")
_LATEST_COLUMNS = ("ven_id", "timestamp", "used_power_kw", "shed_power_kw")


def stored_rows(rig: Rig) -> Iterator[tuple[Table, Mapping[str, Any]]]:
    """Everything the consumer stored, as the SQL adapters would write it.
    A sample ``prepare`` refuses is reported by the caller."""
    state = rig.uow.state
    for sample in rig.telemetry.samples.values():
        prepared = prepare(sample)
        (ven_id, at), panel = prepared.key, prepared.panel
        row = dict(zip(_TELEMETRY_COLUMNS, (ven_id, at, *panel, prepared.raw_payload), strict=True))
        yield tables.ven_telemetry, row
        yield tables.ven_latest, {**{c: row[c] for c in _LATEST_COLUMNS}, "event_id": panel[3]}
        for load in prepared.loads:
            load_row = dict(zip(_LOAD_COLUMNS, load, strict=True))
            yield tables.ven_load_samples, {"ven_id": ven_id, "timestamp": at, **load_row}
    for ven in state.vens.values():
        yield tables.vens, ven_row(ven)
    for ack in state.acks:
        yield tables.ven_acks, ack_row(ack)
    for command in state.commands.values():
        yield tables.commands, command_row(command)
    for event in state.events.values():
        yield tables.events, event_row(event)
    for report in rig.statuses.written:
        details = dict(report.details) if report.details is not None else None
        yield tables.ven_statuses, {
            "ven_id": report.ven_id, "status": report.status, "details": details,
            "timestamp": report.timestamp,
        }  # fmt: skip
    for snapshot in rig.snapshots.written:
        for snapshot_row in _snapshot_rows(snapshot):
            yield tables.load_snapshots, snapshot_row
    for ven_id in rig.shadows.updated:
        document = rig.shadows._documents[ven_id]
        yield tables.shadows, {"ven_id": ven_id, "document": document, "updated_at": T0}
    for letter in state.dead_letters:
        yield tables.dead_letters, dead_letter_row(letter)


# --- the property ----------------------------------------------------------------


def stored_count(rig: Rig, kind: MessageKind) -> int:
    """How many times the message was stored (a duplicate counts as stored),
    from the write counters, checked against the stores."""
    writes = rig.consumer.stats.writes
    if kind is MessageKind.TELEMETRY:
        assert len(rig.telemetry.samples) == writes.stored
        return writes.stored + writes.duplicates
    what, held = {
        MessageKind.ACK: ("ack", len(rig.uow.state.acks)),
        MessageKind.SHADOW: ("shadow", len(rig.shadows.updated)),
        MessageKind.STATUS: ("status", len(rig.statuses.written)),
        MessageKind.LOADS: ("load snapshot", len(rig.snapshots.written)),
    }[kind]
    assert writes.counts.get(what, 0) == held, (what, writes.counts, held)
    return held


def samples_of(payload: bytes) -> list[Any]:
    """The samples of a batched metering message; one for anything else (a
    single sample, or a message refused whole)."""
    try:
        found = batch_samples(payload.decode())
    except (ValueError, RecursionError):  # InvalidInput, JSONDecodeError, UnicodeDecodeError
        return [payload]
    return [payload] if found is None else found[1]


def check_message(kind: TopicKind, topic: str, payload: bytes) -> None:
    rig, escaped = asyncio.run(consume(topic, payload))
    if escaped is not None:
        raise AssertionError(f"handle() raised {type(escaped).__name__}: {escaped}") from escaped
    stats = rig.consumer.stats
    letters = rig.uow.state.dead_letters
    internal = [d.reason for d in letters if d.reason.startswith("internal")]
    assert not internal, f"validation gap, caught by the catch-all: {internal}"
    assert stats.writes.poisoned == 0, f"accepted, then refused by the store: {letters}"
    assert not stats.unstored, f"valid but not stored: {stats.unstored}"
    stored = stored_count(rig, kind.kind) + stats.writes.duplicates
    # A batch of metering samples is each of its samples stored or dead-lettered.
    expected = len(samples_of(payload)) if kind.kind is MessageKind.TELEMETRY else 1
    assert stored + len(letters) == expected, f"stored {stored} times, dead letters {letters}"
    assert len(letters) == stats.dead_lettered + stats.writes.refused
    assert all(d.reason.strip() for d in letters), letters
    refused: list[str] = []
    for sample in rig.telemetry.samples.values():
        try:
            prepare(sample)
        except Exception as exc:
            refused.append(f"{type(exc).__name__}: {exc}")
    assert not refused, f"stored in memory, refused by the SQL store: {refused}"
    problems = [p for table, row in stored_rows(rig) for p in row_problems(table, row)]
    assert not problems, f"PostgreSQL would refuse: {problems}"


@pytest.mark.slow  # 200 examples a kind; what it found stays in the loop (below)
@pytest.mark.parametrize("kind", KINDS, ids=[k.name for k in KINDS])
@FUZZ
@given(data=st.data())
def test_every_message_is_stored_or_dead_lettered(kind: TopicKind, data: st.DataObject) -> None:
    level = data.draw(ven_levels, label="ven level") if "{ven}" in kind.topic else ""
    topic = kind.topic.format(ven=level)
    payload = data.draw(mutated(kind.bases), label="payload")
    check_message(kind, topic, payload)


def test_the_valid_bases_are_stored() -> None:
    """The starting points are valid: each is stored, not dead-lettered."""
    for kind in KINDS:
        for base in kind.bases:
            topic = kind.topic.format(ven=VEN)
            rig, escaped = asyncio.run(consume(topic, encode(base).encode()))
            assert escaped is None
            assert rig.uow.state.dead_letters == [], (kind.name, base)
            assert stored_count(rig, kind.kind) == 1, (kind.name, base)


# What the fuzz found (minimal cases), kept as plain regressions so that they
# are checked on every run, not only when the search happens to hit them again.
HUGE_EPOCH = Raw("1" + "0" * 309)  # an integer no float holds
BACKSLASH_U0000 = "\\u0000"  # six characters of text, not a NUL
ACK = {"op": "event", "status": "accepted", "correlationId": EVENT_CMD}
AT = {"venId": VEN, "timestamp": EPOCH}
FOUND = [
    pytest.param(
        "telemetry-metering",
        METERING,
        {"venId": VEN, "timestamp": HUGE_EPOCH},
        id="huge-epoch-telemetry",
    ),
    pytest.param(
        "ack",
        f"ven/ack/{VEN}",
        {"op": "ping", "status": "ok", "ts": HUGE_EPOCH},
        id="huge-epoch-ack",
    ),
    pytest.param(
        "loads", f"ven/loads/{VEN}", {"venId": VEN, "timestamp": HUGE_EPOCH}, id="huge-epoch-loads"
    ),
    pytest.param(
        "status",
        f"ven/status/{VEN}",
        {"venId": VEN, "status": "x", "ts": HUGE_EPOCH},
        id="huge-epoch-status",
    ),
    pytest.param(
        "ack",
        f"ven/ack/{VEN}",
        {**ACK, "circuits_curtailed": [{"id": "a", "curtailed_kw": -1e306}]},
        id="ack-negative-curtailed",
    ),
    pytest.param("ack", f"ven/ack/{VEN}", {**ACK, "status": "x" * 65}, id="ack-status-65"),
    pytest.param("ack", f"ven/ack/{VEN}", {**ACK, "status": "\x00"}, id="ack-status-nul"),
    pytest.param("ack", f"ven/ack/{VEN}", {**ACK, "x": BACKSLASH_U0000}, id="ack-backslash-u0000"),
    pytest.param(
        "shadow",
        f"$aws/things/{VEN}/shadow/update",
        {"state": {"x": BACKSLASH_U0000}},
        id="shadow-backslash-u0000",
    ),
    pytest.param(
        "shadow", f"$aws/things/{'a' * 129}/shadow/update", {"state": {}}, id="shadow-ven-129"
    ),
    pytest.param(
        "loads",
        f"ven/loads/{VEN}",
        {**AT, "loads": [{"id": "a", "x": BACKSLASH_U0000}]},
        id="loads-backslash-u0000",
    ),
    pytest.param(
        "status",
        f"ven/status/{VEN}",
        {"venId": VEN, "status": "x", "details": {"x": BACKSLASH_U0000}},
        id="status-backslash-u0000",
    ),
    pytest.param(
        "telemetry-metering",
        METERING,
        {**AT, "loads": [{"id": "a", "name": "x" * 256}]},
        id="load-name-256",
    ),
    pytest.param(
        "telemetry-metering",
        METERING,
        {**AT, "loads": [{"id": "a", "type": "x" * 65}]},
        id="load-type-65",
    ),
    pytest.param(
        "telemetry-metering", METERING, {**AT, "loads": [{"id": "x" * 129}]}, id="load-id-129"
    ),
    pytest.param(
        "telemetry-metering", METERING, {**AT, "loads": [{"id": "\x00"}]}, id="load-id-nul"
    ),
]


@pytest.mark.parametrize(("name", "topic", "payload"), FOUND)
def test_what_the_fuzz_found(name: str, topic: str, payload: Any) -> None:
    (kind,) = (k for k in KINDS if k.name == name)
    check_message(kind, topic, encode(payload).encode())
