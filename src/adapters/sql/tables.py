"""The schema, as SQLAlchemy Core tables: one definition for PostgreSQL and SQLite.

Table and column names are the documents' (``ven_telemetry``, ``ven_load_samples``,
``ven_statuses``, ``ven_acks`` and their columns); the rest is what gridcore adds
to make the documents' fixture-backed parts real. The Alembic chain in
``migrations/`` must produce exactly this (a test compares them).

Deliberate departures, each for a measured reason:

- ``ven_telemetry.raw_payload`` is TEXT (the message exactly as received), not
  JSON/JSONB: parsing JSON on insert halves ingest speed, and a payload that is
  not valid JSON can still be kept. ``raw_payload::json`` reads it as JSON.
- ``ven_load_samples`` carries ``ven_id`` and ``timestamp`` of its telemetry row
  (denormalised) and is keyed by (ven_id, timestamp, load_id): that key serves
  every circuit query without a join, and makes a re-delivered message
  impossible to store twice. ``telemetry_id`` links the row to its telemetry
  row without a foreign key constraint, because checking one per load row costs
  more than half of the ingest rate; the store writes both rows in one
  transaction with the parent's id, and retention removes both by time.
- ``ven_telemetry``, ``ven_load_samples`` and ``ven_acks`` have no foreign key
  to ``vens``: deregistering a VEN keeps its history (audit).
- ``ven_latest`` holds each VEN's newest sample (updated with every batch), so
  network stats never scan history. A VEN's latest loads are the load rows of
  that newest message, one primary-key lookup away. (A per-load current-state
  table cost more to maintain than both COPYs together; see ``ingest_pg``.)
- The time-kept tables (``TIME_KEPT``: telemetry, load samples, statuses, load
  snapshots, ACKs) are range-partitioned by UTC day on ``timestamp`` on
  PostgreSQL (``adapters.sql.partitions`` makes and drops the days; migration
  0010), so that retention drops a day instead of deleting rows. PostgreSQL
  requires every primary and unique key of a partitioned table to include the
  partition key: there the surrogate ``id`` keys are ``(id, timestamp)``
  (``PARTITIONED_PRIMARY_KEYS``); SQLite keeps ``id`` alone, its rowid, which
  numbers rows itself. Alembic does not compare primary keys;
  ``test_sql_migrations`` checks the PostgreSQL ones.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Column,
    Float,
    ForeignKey,
    ForeignKeyConstraint,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    PrimaryKeyConstraint,
    String,
    Table,
    Text,
    UniqueConstraint,
    func,
    text,
)

from adapters.sql.types import BigId, Document, TargetList, UtcDateTime
from gridcore import alerts, limits
from gridcore.audit import ACTOR_LENGTH
from gridcore.retention import Kept

# Explicit constraint names: Alembic can then drop/alter them on both dialects,
# and SQLite batch migrations can find them.
NAMING = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

metadata = MetaData(naming_convention=NAMING)

# Lengths come from gridcore.limits, which the MQTT edge validates against.
VEN_ID = String(limits.VEN_ID_LENGTH)
LOAD_ID = String(limits.LOAD_ID_LENGTH)
EVENT_ID = String(limits.EVENT_ID_LENGTH)
COMMAND_ID = String(limits.COMMAND_ID_LENGTH)
NAME = String(limits.NAME_LENGTH)
LOAD_TYPE = String(limits.LOAD_TYPE_LENGTH)
STATE = String(limits.EVENT_STATE_LENGTH)


def targets_index() -> Index:
    """The index that finds the rows granted one of an event's targets: GIN on
    PostgreSQL (``&&``); on SQLite, where json_each reads the lists, a partial
    index that holds only the rows with targets (it costs nothing elsewhere)."""
    return Index(None, "targets", postgresql_using="gin", sqlite_where=text("targets IS NOT NULL"))


# --- registry and configuration ----------------------------------------------

vens = Table(
    "vens",
    metadata,
    Column("id", VEN_ID, primary_key=True),
    Column("name", NAME, nullable=False),
    Column("lat", Float),
    Column("lon", Float),
    Column("enabled", Boolean, nullable=False),
    Column("registered_at", UtcDateTime),
    Column("last_seen_at", UtcDateTime),
    # Granted by the operator (gridcore.targeting); NULL: none.
    Column("targets", TargetList),
    targets_index(),
)

ven_loads = Table(
    "ven_loads",
    metadata,
    Column("ven_id", VEN_ID, ForeignKey("vens.id", ondelete="CASCADE"), nullable=False),
    Column("load_id", LOAD_ID, nullable=False),
    Column("type", LOAD_TYPE, nullable=False),
    Column("name", NAME),
    Column("capacity_kw", Float),
    Column("shed_capability_kw", Float, nullable=False),
    Column("current_power_kw", Float, nullable=False),
    Column("priority", Integer),
    Column("critical", Boolean, nullable=False),
    Column("enabled", Boolean, nullable=False),
    Column("breaker_amps", Float),
    # Granted by the operator: an event targeting one reaches the load's VEN.
    Column("targets", TargetList),
    PrimaryKeyConstraint("ven_id", "load_id"),
    targets_index(),
)

# --- DR events and the dispatch ledger ----------------------------------------

events = Table(
    "events",
    metadata,
    # `event_id`, as the event flow document's analysis queries name it.
    Column("event_id", EVENT_ID, primary_key=True),
    Column("status", STATE, nullable=False),
    Column("start_time", UtcDateTime, nullable=False),
    Column("end_time", UtcDateTime, nullable=False),
    Column("requested_reduction_kw", Float, nullable=False),
    Column("actual_reduction_kw", Float, nullable=False),
    Column("created_at", UtcDateTime),
    Column("activated_at", UtcDateTime),
    Column("ended_at", UtcDateTime),
    # The VENs it is meant for (gridcore.targeting); NULL: the whole fleet.
    Column("targets", TargetList),
    Index(None, "status", "start_time"),
    Index(None, "status", "end_time"),
    Index(None, "start_time"),
)

commands = Table(
    "commands",
    metadata,
    Column("correlation_id", COMMAND_ID, primary_key=True),
    Column("ven_id", VEN_ID, nullable=False),
    Column("op", STATE, nullable=False),
    Column("event_id", EVENT_ID, ForeignKey("events.event_id")),
    Column("shed_kw", Float),
    Column("duration_sec", Integer),
    Column("load_id", LOAD_ID),
    Column("state", STATE, nullable=False),
    Column("attempts", Integer, nullable=False),
    Column("created_at", UtcDateTime, nullable=False),
    Column("first_sent_at", UtcDateTime),
    Column("last_sent_at", UtcDateTime),
    Column("deadline", UtcDateTime),
    Column("acked_at", UtcDateTime),
    Column("ack_status", String(limits.ACK_STATUS_LENGTH)),
    Column("delivered_kw", Float),
    Column("late", Boolean, nullable=False),
    # The command a re-allocation replaced (its delivered kW is counted once).
    Column("supersedes", COMMAND_ID),
    # Not published before this: a staggered restore (gridcore.rebound).
    Column("not_before", UtcDateTime),
    # A configuration push's loads as JSON text (gridcore.venconfig; migration 0020).
    Column("config", Text),
    # The outbox's commands due at once, oldest first, straight off the index
    # (a LIMIT stops after N; an event's commands share one created_at).
    Index(
        None,
        "state",
        "created_at",
        "correlation_id",
        postgresql_where=text("not_before IS NULL"),
        sqlite_where=text("not_before IS NULL"),
    ),
    # The outbox's commands that wait (staggered restores), once due:
    # (pending, <= now), without reading the others (migration 0012).
    Index(
        None,
        "state",
        "not_before",
        "created_at",
        postgresql_where=text("not_before IS NOT NULL"),
        sqlite_where=text("not_before IS NOT NULL"),
    ),
    Index(None, "state", "deadline"),  # overdue ACKs
    Index(None, "event_id", "ven_id"),  # an event's commands; an ACK batch's VENs in it
    Index(None, "ven_id", "op", "created_at"),  # ACKs without correlationId
    # Each VEN's last answered command (its response time), for the fleet summary;
    # partial: unanswered commands are never looked up this way.
    Index(
        None,
        "ven_id",
        "acked_at",
        postgresql_where=text("acked_at IS NOT NULL"),
        sqlite_where=text("acked_at IS NOT NULL"),
    ),
)

# --- what VENs send -------------------------------------------------------------

ven_telemetry = Table(
    "ven_telemetry",
    metadata,
    Column("id", BigId, primary_key=True, autoincrement=True),
    Column("ven_id", VEN_ID, nullable=False),
    Column("timestamp", UtcDateTime, nullable=False),
    Column("used_power_kw", Float),
    Column("shed_power_kw", Float),
    Column("requested_reduction_kw", Float),
    Column("event_id", EVENT_ID),
    Column("baseline_power_kw", Float),
    Column("battery_soc", Float),
    Column("panel_amperage_rating", Float),
    Column("panel_voltage", Float),
    Column("panel_max_kw", Float),
    Column("current_amps", Float),
    Column("panel_utilization_percent", Float),
    Column("raw_payload", Text),
    # One row per VEN and timestamp: a QoS 1 re-delivery is stored once. The
    # unique index also serves every per-VEN time-range query.
    UniqueConstraint("ven_id", "timestamp"),
    # BRIN on PostgreSQL: tiny, and telemetry arrives in time order (network
    # history scans a time range). SQLite ignores the method: a plain index.
    Index("ix_ven_telemetry_timestamp", "timestamp", postgresql_using="brin"),
    postgresql_partition_by="RANGE (timestamp)",
)

ven_load_samples = Table(
    "ven_load_samples",
    metadata,
    Column("ven_id", VEN_ID, nullable=False),
    Column("timestamp", UtcDateTime, nullable=False),
    Column("load_id", LOAD_ID, nullable=False),
    Column("telemetry_id", BigId, nullable=False),
    Column("name", NAME),
    Column("type", LOAD_TYPE),
    Column("capacity_kw", Float),
    Column("current_power_kw", Float),
    Column("shed_capability_kw", Float),
    Column("enabled", Boolean),
    Column("priority", Integer),
    Column("critical", Boolean),
    Column("breaker_amps", Float),
    Column("current_amps", Float),
    PrimaryKeyConstraint("ven_id", "timestamp", "load_id"),
    Index("ix_ven_load_samples_timestamp", "timestamp", postgresql_using="brin"),
    postgresql_partition_by="RANGE (timestamp)",
)

ven_statuses = Table(
    "ven_statuses",
    metadata,
    Column("id", BigId, primary_key=True, autoincrement=True),
    Column("ven_id", VEN_ID, nullable=False),
    Column("status", String(limits.VEN_STATUS_LENGTH), nullable=False),
    Column("details", Document),
    Column("timestamp", UtcDateTime, nullable=False),
    Index(None, "ven_id", "timestamp"),
    postgresql_partition_by="RANGE (timestamp)",
)

# ``ven/alerts/{venId}`` (gridcore.alerts; migration 0019). ``load_id`` is ''
# for an alert about the whole VEN, so that the unique key (a re-delivered
# alert is stored once) holds for those too. Not partitioned: alerts are rare.
ven_alerts = Table(
    "ven_alerts",
    metadata,
    Column("id", BigId, primary_key=True, autoincrement=True),
    Column("ven_id", VEN_ID, nullable=False),
    Column("timestamp", UtcDateTime, nullable=False),
    Column("severity", String(16), nullable=False),
    Column("code", String(alerts.ALERT_CODE_LENGTH), nullable=False),
    Column("load_id", LOAD_ID, nullable=False),
    Column("message", String(alerts.ALERT_MESSAGE_LENGTH)),
    Column("details", Document),
    Column("received_at", UtcDateTime),
    UniqueConstraint("ven_id", "timestamp", "code", "load_id"),
    Index(None, "timestamp"),
    Index(None, "severity", "timestamp"),
)

# ``ven/loads/{venId}``: the document's columns, plus the load line's other
# fields so a snapshot reads back whole. Keyed by (ven_id, timestamp, load_id)
# as the load samples are: a re-delivered snapshot is stored once.
load_snapshots = Table(
    "load_snapshots",
    metadata,
    Column("id", BigId, primary_key=True, autoincrement=True),
    Column("ven_id", VEN_ID, nullable=False),
    Column("load_id", LOAD_ID, nullable=False),
    Column("timestamp", UtcDateTime, nullable=False),
    Column("name", NAME),
    Column("type", LOAD_TYPE),
    Column("capacity_kw", Float),
    Column("current_power_kw", Float),
    Column("shed_capability_kw", Float),
    Column("enabled", Boolean),
    Column("priority", Integer),
    Column("critical", Boolean),
    Column("raw_payload", Document),
    UniqueConstraint("ven_id", "timestamp", "load_id"),
    postgresql_partition_by="RANGE (timestamp)",
)

ven_acks = Table(
    "ven_acks",
    metadata,
    Column("id", BigId, primary_key=True, autoincrement=True),
    Column("ven_id", VEN_ID, nullable=False),
    # Restore and ping ACKs carry no event id.
    Column("event_id", EVENT_ID),
    Column("correlation_id", String(limits.ACK_CORRELATION_ID_LENGTH)),
    Column("op", String(limits.ACK_TEXT_LENGTH), nullable=False),
    Column("status", String(limits.ACK_TEXT_LENGTH), nullable=False),
    Column("timestamp", UtcDateTime, nullable=False),
    Column("requested_shed_kw", Float),
    Column("actual_shed_kw", Float),
    Column("circuits_curtailed", Document),
    Column("raw_payload", Document),
    Column("created_at", UtcDateTime, server_default=func.now()),
    # Why the ACK was not credited as reported ("capped: reported 999999999 kW,
    # asked 1 kW"); the report itself stays in actual_shed_kw and raw_payload.
    Column("flag", Text),
    Index(None, "ven_id", "timestamp"),
    Index(None, "event_id", "timestamp"),
    Index(None, "correlation_id"),
    postgresql_partition_by="RANGE (timestamp)",
)

dead_letters = Table(
    "dead_letters",
    metadata,
    Column("id", BigId, primary_key=True, autoincrement=True),
    Column("topic", Text, nullable=False),
    Column("payload", LargeBinary, nullable=False),
    Column("reason", Text, nullable=False),
    Column("received_at", UtcDateTime, nullable=False),
    Index(None, "received_at"),
)

# The audit trail (gridcore.audit): append-only, read newest first, by
# event, VEN or actor.
audit_log = Table(
    "audit_log",
    metadata,
    Column("id", BigId, primary_key=True, autoincrement=True),
    Column("at", UtcDateTime, nullable=False),
    Column("actor", String(ACTOR_LENGTH), nullable=False),
    Column("action", String(32), nullable=False),
    Column("ven_id", VEN_ID, nullable=True),
    Column("event_id", EVENT_ID, nullable=True),
    Column("load_id", LOAD_ID, nullable=True),
    Column("details", Document, nullable=False),
    Index(None, "at"),
    Index(None, "event_id", "at"),
    Index(None, "ven_id", "at"),
)

shadows = Table(
    "shadows",
    metadata,
    Column("ven_id", VEN_ID, primary_key=True),
    Column("document", Document, nullable=False),
    Column("updated_at", UtcDateTime, nullable=False),
)

# --- current state (one row per VEN, never a history scan) ---------------------

ven_latest = Table(
    "ven_latest",
    metadata,
    Column("ven_id", VEN_ID, primary_key=True),
    Column("telemetry_id", BigId, nullable=False),
    Column("timestamp", UtcDateTime, nullable=False),
    Column("used_power_kw", Float),
    Column("shed_power_kw", Float),
    Column("requested_reduction_kw", Float),
    Column("event_id", EVENT_ID),
    # The UTC day (its midnight) this VEN's energy is running in, and its kWh so
    # far (closed segments, gridcore.energy): today's total never scans history.
    Column("energy_day", UtcDateTime),
    Column("energy_kwh", Float),
)

# Energy each VEN used per completed UTC day, written at ingest when the VEN's
# running day moves on (adapters.sql.energy). Keyed by day first: a day is a range.
ven_energy = Table(
    "ven_energy",
    metadata,
    Column("day", UtcDateTime, nullable=False),
    Column("ven_id", VEN_ID, nullable=False),
    Column("used_kwh", Float, nullable=False),
    PrimaryKeyConstraint("day", "ven_id"),
)

# Each VEN's telemetry rolled up into 5-minute intervals (gridcore.intervals),
# kept up at ingest: baselines read days of a fleet's intervals, never the raw
# samples. Sums and counts, so batches and late telemetry merge exactly.
ven_intervals = Table(
    "ven_intervals",
    metadata,
    Column("ven_id", VEN_ID, nullable=False),
    Column("start", UtcDateTime, nullable=False),
    Column("samples", Integer, nullable=False),
    Column("used_sum", Float, nullable=False),
    Column("used_count", Integer, nullable=False),
    Column("used_min", Float),
    Column("used_max", Float),
    Column("shed_sum", Float, nullable=False),
    Column("shed_count", Integer, nullable=False),
    Column("shed_min", Float),
    Column("shed_max", Float),
    Column("baseline_sum", Float, nullable=False),
    Column("baseline_count", Integer, nullable=False),
    PrimaryKeyConstraint("ven_id", "start"),
    # The fleet's history reads a time range of every VEN (migration 0010). BRIN:
    # tiny, and intervals are written in time order.
    Index("ix_ven_intervals_start", "start", postgresql_using="brin"),
)
# What each VEN's samples in a 5-minute interval said about DR events
# (gridcore.history.IntervalEvents): the greatest eventId and the summed
# requestedReductionKw. Beside ven_intervals, which history reads once raw
# samples are past retention; a row only where a sample carried either.
ven_interval_events = Table(
    "ven_interval_events",
    metadata,
    Column("ven_id", VEN_ID, nullable=False),
    Column("start", UtcDateTime, nullable=False),
    Column("event_id", EVENT_ID),
    Column("requested_sum", Float, nullable=False),
    PrimaryKeyConstraint("ven_id", "start"),
    Index("ix_ven_interval_events_start", "start", postgresql_using="brin"),
)
# Each VEN's samples per UTC day (gridcore.history.DayTotals), kept up at
# ingest: a year of daily history is 365 rows a VEN, not 105,120 intervals.
ven_days = Table(
    "ven_days",
    metadata,
    Column("ven_id", VEN_ID, nullable=False),
    Column("day", UtcDateTime, nullable=False),
    Column("samples", Integer, nullable=False),
    Column("used_sum", Float, nullable=False),
    Column("shed_sum", Float, nullable=False),
    Column("requested_sum", Float, nullable=False),
    Column("event_id", EVENT_ID),
    PrimaryKeyConstraint("ven_id", "day"),
    Index(None, "day"),  # the fleet's days
)


# The fleet's history roll-ups (gridcore.history.FleetTotals), one row per
# closed 5-minute interval and per closed UTC day, made by the worker's
# maintenance (adapters.sql.rollups) from ven_intervals and ven_days: the
# fleet's day in 5-minute points reads 288 rows, its year in days 365,
# whatever the fleet's size.
def _fleet_totals(name: str, key: str) -> Table:
    return Table(
        name,
        metadata,
        Column(key, UtcDateTime, primary_key=True),
        Column("vens", Integer, nullable=False),
        Column("samples", BigInteger, nullable=False),
        Column("used_kw", Float, nullable=False),
        Column("shed_kw", Float, nullable=False),
        Column("requested_kw", Float, nullable=False),
        Column("event_id", EVENT_ID),
    )


fleet_intervals = _fleet_totals("fleet_intervals", "start")
fleet_days = _fleet_totals("fleet_days", "day")
# How far the roll-ups reach (one row): ``rolled_through``, the intervals
# before it are rolled up (days ending at or before it), what reads trust;
# ``marked_through``, ingest marks telemetry added to intervals before it
# (fleet_late), moved first. NULL: nothing rolled up yet.
fleet_rollup = Table(
    "fleet_rollup",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=False),
    Column("marked_through", UtcDateTime),
    Column("rolled_through", UtcDateTime),
)
# Intervals late telemetry was added to after their roll-up may have been
# made: one row per ingest transaction and interval (appended, never updated,
# so that concurrent ingest transactions never wait on one another); reads
# take these buckets from the VENs' rows until the maintenance makes them
# again and deletes the marks it saw.
fleet_late = Table(
    "fleet_late",
    metadata,
    Column("start", UtcDateTime, nullable=False),
    Index("ix_fleet_late_start", "start"),
)

INTERVAL_TOTALS = (
    "samples",
    "used_sum",
    "used_count",
    "used_min",
    "used_max",
    "shed_sum",
    "shed_count",
    "shed_min",
    "shed_max",
    "baseline_sum",
    "baseline_count",
)

# An event's measured performance (gridcore.verification.PerformanceReport),
# kept once its measured span is over, per baseline method: what settlement
# reads. The fleet's figures and interval series as one document; a row per VEN.
event_performance = Table(
    "event_performance",
    metadata,
    Column("event_id", EVENT_ID, ForeignKey("events.event_id", ondelete="CASCADE")),
    Column("method", String(limits.METHOD_LENGTH), nullable=False),
    Column("computed_at", UtcDateTime, nullable=False),
    Column("measured_until", UtcDateTime, nullable=False),
    Column("window_start", UtcDateTime, nullable=False),
    Column("window_end", UtcDateTime, nullable=False),
    Column("rebound_seconds", Integer, nullable=False),  # the rebound span measured after
    Column("fleet", Document, nullable=False),
    PrimaryKeyConstraint("event_id", "method"),
)
VEN_PERFORMANCE_FIELDS = (
    "baseline_method",
    "fell_back",
    "shed_kwh",
    "avg_shed_kw",
    "allocated_kw",
    "performance_ratio",
    "claimed_kw",
    "claimed_avg_shed_kw",
    "coverage",
    "intervals_expected",
    "intervals_present",
    "samples_expected",
    "samples_present",
    "offline_intervals",
    "baseline_days",
    "rebound_kwh",
    "rebound_peak_kw",
)
event_ven_performance = Table(
    "event_ven_performance",
    metadata,
    Column("event_id", EVENT_ID, nullable=False),
    Column("method", String(limits.METHOD_LENGTH), nullable=False),
    Column("ven_id", VEN_ID, nullable=False),
    Column("baseline_method", String(limits.METHOD_LENGTH), nullable=False),
    Column("fell_back", Document, nullable=False),
    Column("shed_kwh", Float),
    Column("avg_shed_kw", Float),
    Column("allocated_kw", Float),
    Column("performance_ratio", Float),
    Column("claimed_kw", Float),
    Column("claimed_avg_shed_kw", Float),
    Column("coverage", Float),
    Column("intervals_expected", Integer, nullable=False),
    Column("intervals_present", Integer, nullable=False),
    Column("samples_expected", Float),
    Column("samples_present", Integer, nullable=False),
    Column("offline_intervals", Integer, nullable=False),
    Column("baseline_days", Integer, nullable=False),
    Column("rebound_kwh", Float),
    Column("rebound_peak_kw", Float),
    PrimaryKeyConstraint("event_id", "method", "ven_id"),
    ForeignKeyConstraint(
        ["event_id", "method"],
        ["event_performance.event_id", "event_performance.method"],
        ondelete="CASCADE",
    ),
)

# Columns of a load line, shared by samples and the latest-state table.
LOAD_FIELDS = (
    "name",
    "type",
    "capacity_kw",
    "current_power_kw",
    "shed_capability_kw",
    "enabled",
    "priority",
    "critical",
    "breaker_amps",
)
PANEL_FIELDS = (
    "used_power_kw",
    "shed_power_kw",
    "requested_reduction_kw",
    "event_id",
    "baseline_power_kw",
    "battery_soc",
    "panel_amperage_rating",
    "panel_voltage",
    "panel_max_kw",
    "current_amps",
    "panel_utilization_percent",
)

# Tables kept by time (gridcore.retention), partitioned by day on PostgreSQL.
TIME_KEPT = {
    "ven_telemetry": Kept.RAW,
    "ven_load_samples": Kept.RAW,
    "ven_statuses": Kept.RAW,
    "load_snapshots": Kept.RAW,
    "ven_acks": Kept.ACKS,
}
# Tables kept by time too, but not partitioned: a trickle each (what VENs
# send wrong, the alerts they raise), so rows past retention are deleted in
# batches, by the column (indexed) that says when: without it a VEN sending
# garbage every 5 s would grow ``dead_letters`` for ever.
PRUNED = {
    "dead_letters": ("received_at", Kept.RAW),
    "ven_alerts": ("timestamp", Kept.RAW),
}
# Their primary keys on PostgreSQL (the partition key added; see the docstring).
PARTITIONED_PRIMARY_KEYS = {
    "ven_telemetry": ("id", "timestamp"),
    "ven_load_samples": ("ven_id", "timestamp", "load_id"),
    "ven_statuses": ("id", "timestamp"),
    "load_snapshots": ("id", "timestamp"),
    "ven_acks": ("id", "timestamp"),
}

# --- the OpenADR 3.1 VTN's objects (gridcore.openadr, adapters.sql.openadr) ------
#
# Each object is kept whole as the JSON document the VTN serves, beside the
# fields its searches filter on (gridcore.openadr.ObjectIndex). ``seq`` orders
# searches (the order objects were first stored); ``id`` is the VTN's objectID.
# ``name`` is the unique name of programs and vens, and of a resource within
# its ven. An event goes with its program, a resource with its ven (ON DELETE
# CASCADE); reports and subscriptions only name what they refer to.
# ``oadr_targets`` holds each object's targets, one row a target, so that a
# VEN's search for what is targeted at it is one indexed lookup.

OADR_ID = String(128)  # openadr3.yaml objectID, clientID, names, targets: 1 to 128
OADR_DOCUMENT = JSON()  # the document as the client will read it back (key order kept)


def _oadr_table(name: str, *extra: Column[Any] | Index | UniqueConstraint) -> Table:
    return Table(
        name,
        metadata,
        Column("seq", BigId, primary_key=True, autoincrement=True),
        Column("id", OADR_ID, nullable=False, unique=True),
        *extra,
        Column("document", OADR_DOCUMENT, nullable=False),
    )


oadr_programs = _oadr_table(
    "oadr_programs",
    Column("name", OADR_ID, nullable=False, unique=True),
    Column("targeted", Boolean, nullable=False),
)
oadr_events = _oadr_table(
    "oadr_events",
    Column(
        "program_id",
        OADR_ID,
        ForeignKey("oadr_programs.id", ondelete="CASCADE"),
        nullable=False,
        index=True,
    ),
    Column("ends_at", UtcDateTime, index=True),  # NULL: not known to end
    Column("targeted", Boolean, nullable=False),
)
oadr_reports = _oadr_table(
    "oadr_reports",
    Column("program_id", OADR_ID, index=True),
    Column("event_id", OADR_ID, nullable=False, index=True),
    Column("client_id", OADR_ID, nullable=False, index=True),
    Column("client_name", OADR_ID, nullable=False),
)
oadr_subscriptions = _oadr_table(
    "oadr_subscriptions",
    Column("program_id", OADR_ID, index=True),
    Column("client_id", OADR_ID, nullable=False, index=True),
    Column("client_name", OADR_ID, nullable=False),
    Column("object_types", String(128), nullable=False),  # ",EVENT,PROGRAM,"
    Column("targeted", Boolean, nullable=False),
)
oadr_vens = _oadr_table(
    "oadr_vens",
    Column("name", OADR_ID, nullable=False, unique=True),
    Column("client_id", OADR_ID, nullable=False, index=True),
    Column("targeted", Boolean, nullable=False),
)
oadr_resources = _oadr_table(
    "oadr_resources",
    Column("ven_id", OADR_ID, ForeignKey("oadr_vens.id", ondelete="CASCADE"), nullable=False),
    Column("name", OADR_ID, nullable=False),
    Column("client_id", OADR_ID, nullable=False, index=True),
    Column("targeted", Boolean, nullable=False),
    UniqueConstraint("ven_id", "name"),
)
oadr_targets = Table(
    "oadr_targets",
    metadata,
    Column("kind", String(16), nullable=False),
    Column("object_id", OADR_ID, nullable=False),
    Column("target", OADR_ID, nullable=False),
    PrimaryKeyConstraint("kind", "object_id", "target"),
    Index(None, "kind", "target"),
)

# OpenADR notifications waiting for delivery (adapters.sql.outbox): pending
# while finished_at is NULL; a lane is (channel, target), its head the
# lowest pending id; lease_owner/lease_until say which process delivers it.
oadr_outbox = Table(
    "oadr_outbox",
    metadata,
    Column("id", BigId, primary_key=True, autoincrement=True),
    Column("channel", String(16), nullable=False),  # "webhook" | "mqtt"
    Column("target", Text, nullable=False),  # the callback URL or the topic
    Column("body", LargeBinary, nullable=False),
    Column("bearer_token", Text),
    Column("subscription_id", OADR_ID),
    Column("created_at", UtcDateTime, nullable=False),
    Column("lease_owner", String(128)),
    Column("lease_until", UtcDateTime),
    Column("finished_at", UtcDateTime),
    Column("delivered", Boolean),
    Index(
        "ix_oadr_outbox_pending",
        "channel",
        "target",
        "id",
        postgresql_where=text("finished_at IS NULL"),
        sqlite_where=text("finished_at IS NULL"),
    ),
    Index("ix_oadr_outbox_finished_at", "finished_at"),
)
