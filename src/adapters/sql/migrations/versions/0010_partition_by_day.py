"""Time-kept tables partitioned by UTC day on PostgreSQL (issue 16: retention
drops a day instead of deleting rows; docs/decisions.md, "Telemetry
partitions and retention"). SQLite keeps its plain tables: nothing to do.

Each of ``ven_telemetry``, ``ven_load_samples``, ``ven_statuses``,
``load_snapshots`` and ``ven_acks`` is rebuilt: the old table is renamed aside,
a partitioned table of the same columns (its id sequence carried over, so ids
go on where they were) gets a catch-all DEFAULT partition and one partition
per UTC day that has rows from a year ago to the days ahead, every row is
copied across, the keys and indexes are built once the rows are in (a bulk
build, several times faster than maintaining them row by row), and the old
table is dropped. Older rows (or implausibly stamped ones) land in the
catch-all, where retention deletes them later or the worker gives them their
day. It runs in the migration's one transaction: all or nothing, and ingest
must be stopped meanwhile: the rebuild rewrites every row (docs/decisions.md
gives its duration per million rows).

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-03
"""

from __future__ import annotations

from datetime import timedelta

from alembic import op
from sqlalchemy import text

from adapters.sql.partitions import default_name, partition_name

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None

# Keys on PostgreSQL's partitioned tables must include the partition key.
_KEYS = {
    "ven_telemetry": [
        ("pk_ven_telemetry", "PRIMARY KEY (id, timestamp)"),
        ("uq_ven_telemetry_ven_id_timestamp", "UNIQUE (ven_id, timestamp)"),
    ],
    "ven_load_samples": [("pk_ven_load_samples", "PRIMARY KEY (ven_id, timestamp, load_id)")],
    "ven_statuses": [("pk_ven_statuses", "PRIMARY KEY (id, timestamp)")],
    "load_snapshots": [
        ("pk_load_snapshots", "PRIMARY KEY (id, timestamp)"),
        ("uq_load_snapshots_ven_id_timestamp_load_id", "UNIQUE (ven_id, timestamp, load_id)"),
    ],
    "ven_acks": [("pk_ven_acks", "PRIMARY KEY (id, timestamp)")],
}
# Before: the surrogate ids alone.
_KEYS_0009 = {
    **_KEYS,
    "ven_telemetry": [
        ("pk_ven_telemetry", "PRIMARY KEY (id)"),
        ("uq_ven_telemetry_ven_id_timestamp", "UNIQUE (ven_id, timestamp)"),
    ],
    "ven_statuses": [("pk_ven_statuses", "PRIMARY KEY (id)")],
    "load_snapshots": [
        ("pk_load_snapshots", "PRIMARY KEY (id)"),
        ("uq_load_snapshots_ven_id_timestamp_load_id", "UNIQUE (ven_id, timestamp, load_id)"),
    ],
    "ven_acks": [("pk_ven_acks", "PRIMARY KEY (id)")],
}
_INDEXES = {
    "ven_telemetry": [("ix_ven_telemetry_timestamp", "USING brin (timestamp)")],
    "ven_load_samples": [("ix_ven_load_samples_timestamp", "USING brin (timestamp)")],
    "ven_statuses": [("ix_ven_statuses_ven_id_timestamp", "(ven_id, timestamp)")],
    "load_snapshots": [],
    "ven_acks": [
        ("ix_ven_acks_ven_id_timestamp", "(ven_id, timestamp)"),
        ("ix_ven_acks_event_id_timestamp", "(event_id, timestamp)"),
        ("ix_ven_acks_correlation_id", "(correlation_id)"),
    ],
}
ASIDE = "_unpartitioned"

# The UTC days to partition: those with rows within a year, and today and the
# next three (the worker's own look-ahead takes over from there).
_DAYS = """
SELECT d FROM (
    SELECT DISTINCT (timestamp AT TIME ZONE 'UTC')::date AS d FROM {table}
    WHERE timestamp >= now() - interval '366 days' AND timestamp < now() + interval '4 days'
    UNION SELECT (now() AT TIME ZONE 'UTC')::date + n FROM generate_series(0, 3) AS n
) days ORDER BY d
"""


def _set_aside(table: str) -> str:
    """Rename a table and its keys and indexes out of the way; keep its id
    sequence (owned by the table's id column, it would go with it)."""
    old = f"{table}{ASIDE}"
    op.execute(f'ALTER TABLE "{table}" RENAME TO "{old}"')
    for name, _ in _KEYS[table] + _INDEXES[table]:
        op.execute(f'ALTER INDEX "{name}" RENAME TO "{name}{ASIDE}"')
    return old


def _carry_sequence(old: str, table: str) -> None:
    if table == "ven_load_samples":  # keyed by its telemetry row, no id of its own
        return
    sequence = op.get_bind().scalar(text("SELECT pg_get_serial_sequence(:t, 'id')"), {"t": old})
    if sequence is not None:
        op.execute(f'ALTER SEQUENCE {sequence} OWNED BY "{table}".id')


def _build_keys(table: str, keys: list[tuple[str, str]]) -> None:
    for name, key in keys:
        op.execute(f'ALTER TABLE "{table}" ADD CONSTRAINT "{name}" {key}')
    for name, how in _INDEXES[table]:
        op.execute(f'CREATE INDEX "{name}" ON "{table}" {how}')


def _partition(table: str) -> None:
    old = _set_aside(table)
    op.execute(
        f'CREATE TABLE "{table}" (LIKE "{old}" INCLUDING DEFAULTS) PARTITION BY RANGE (timestamp)'
    )
    _carry_sequence(old, table)
    op.execute(f'CREATE TABLE "{default_name(table)}" PARTITION OF "{table}" DEFAULT')
    for (day,) in op.get_bind().execute(text(_DAYS.format(table=f'"{old}"'))):
        op.execute(
            f'CREATE TABLE "{partition_name(table, day)}" PARTITION OF "{table}" '
            f"FOR VALUES FROM ('{day.isoformat()}T00:00:00Z') "
            f"TO ('{(day + timedelta(days=1)).isoformat()}T00:00:00Z')"
        )
    op.execute(f'INSERT INTO "{table}" SELECT * FROM "{old}"')
    _build_keys(table, _KEYS[table])
    op.execute(f'DROP TABLE "{old}"')


def _unpartition(table: str) -> None:
    old = _set_aside(table)
    op.execute(f'CREATE TABLE "{table}" (LIKE "{old}" INCLUDING DEFAULTS)')
    _carry_sequence(old, table)
    op.execute(f'INSERT INTO "{table}" SELECT * FROM "{old}"')
    _build_keys(table, _KEYS_0009[table])
    op.execute(f'DROP TABLE "{old}"')  # and its partitions


def upgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    for table in _KEYS:
        _partition(table)


def downgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    for table in _KEYS:
        _unpartition(table)
