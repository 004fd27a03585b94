"""Initial schema: the documents' telemetry and ACK tables, plus VENs, their
loads, DR events, the dispatch ledger, dead letters, shadows and current state.

Revision ID: 0001
Revises:
Create Date: 2026-11-26
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

from adapters.sql.types import UtcDateTime

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

# Spelled out here (not imported from tables.py) so that this revision keeps
# meaning what it meant when it was written.
BIG_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
DOCUMENT = sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql")
VEN_ID = sa.String(length=128)
LOAD_ID = sa.String(length=128)
EVENT_ID = sa.String(length=64)


def _ts(name: str, nullable: bool = True, server_default: Any = None) -> sa.Column[object]:
    return sa.Column(
        name, UtcDateTime(timezone=True), nullable=nullable, server_default=server_default
    )


def _kw(*names: str) -> list[sa.Column[float]]:
    return [sa.Column(name, sa.Float(), nullable=True) for name in names]


def _fast_raw_payload_compression() -> None:
    """Raw payloads (~3 KB each) are compressed out of line; pglz, the default,
    cost ~10% of ingest throughput, lz4 almost nothing. PostgreSQL only, and
    only when the server was built with lz4."""
    bind = op.get_bind()
    if bind.dialect.name != "postgresql":
        return
    has_lz4 = bind.execute(
        sa.text(
            "SELECT 'lz4' = ANY(enumvals) FROM pg_settings WHERE name = 'default_toast_compression'"
        )
    ).scalar()
    if has_lz4:
        op.execute("ALTER TABLE ven_telemetry ALTER COLUMN raw_payload SET COMPRESSION lz4")


def upgrade() -> None:
    op.create_table(
        "vens",
        sa.Column("id", VEN_ID, nullable=False),
        sa.Column("name", sa.String(length=255), nullable=False),
        *_kw("lat", "lon"),
        sa.Column("enabled", sa.Boolean(), nullable=False),
        _ts("registered_at"),
        _ts("last_seen_at"),
        sa.PrimaryKeyConstraint("id", name="pk_vens"),
    )
    op.create_table(
        "ven_loads",
        sa.Column("ven_id", VEN_ID, nullable=False),
        sa.Column("load_id", LOAD_ID, nullable=False),
        sa.Column("type", sa.String(length=64), nullable=False),
        sa.Column("name", sa.String(length=255), nullable=True),
        sa.Column("capacity_kw", sa.Float(), nullable=True),
        sa.Column("shed_capability_kw", sa.Float(), nullable=False),
        sa.Column("current_power_kw", sa.Float(), nullable=False),
        sa.Column("priority", sa.Integer(), nullable=True),
        sa.Column("critical", sa.Boolean(), nullable=False),
        sa.Column("enabled", sa.Boolean(), nullable=False),
        sa.Column("breaker_amps", sa.Float(), nullable=True),
        sa.ForeignKeyConstraint(
            ["ven_id"], ["vens.id"], name="fk_ven_loads_ven_id_vens", ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("ven_id", "load_id", name="pk_ven_loads"),
    )

    op.create_table(
        "events",
        sa.Column("event_id", EVENT_ID, nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        _ts("start_time", nullable=False),
        _ts("end_time", nullable=False),
        sa.Column("requested_reduction_kw", sa.Float(), nullable=False),
        sa.Column("actual_reduction_kw", sa.Float(), nullable=False),
        _ts("created_at"),
        _ts("activated_at"),
        _ts("ended_at"),
        sa.PrimaryKeyConstraint("event_id", name="pk_events"),
    )
    op.create_index("ix_events_status_start_time", "events", ["status", "start_time"])
    op.create_index("ix_events_status_end_time", "events", ["status", "end_time"])
    op.create_index("ix_events_start_time", "events", ["start_time"])

    op.create_table(
        "commands",
        sa.Column("correlation_id", sa.String(length=64), nullable=False),
        sa.Column("ven_id", VEN_ID, nullable=False),
        sa.Column("op", sa.String(length=16), nullable=False),
        sa.Column("event_id", EVENT_ID, nullable=True),
        sa.Column("shed_kw", sa.Float(), nullable=True),
        sa.Column("duration_sec", sa.Integer(), nullable=True),
        sa.Column("load_id", LOAD_ID, nullable=True),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        _ts("created_at", nullable=False),
        _ts("first_sent_at"),
        _ts("last_sent_at"),
        _ts("deadline"),
        _ts("acked_at"),
        sa.Column("ack_status", sa.String(length=64), nullable=True),
        sa.Column("delivered_kw", sa.Float(), nullable=True),
        sa.Column("late", sa.Boolean(), nullable=False),
        sa.Column("supersedes", sa.String(length=64), nullable=True),
        sa.ForeignKeyConstraint(
            ["event_id"], ["events.event_id"], name="fk_commands_event_id_events"
        ),
        sa.PrimaryKeyConstraint("correlation_id", name="pk_commands"),
    )
    op.create_index("ix_commands_state_created_at", "commands", ["state", "created_at"])
    op.create_index("ix_commands_state_deadline", "commands", ["state", "deadline"])
    op.create_index("ix_commands_event_id", "commands", ["event_id"])
    op.create_index("ix_commands_ven_id_op_created_at", "commands", ["ven_id", "op", "created_at"])

    op.create_table(
        "ven_telemetry",
        sa.Column("id", BIG_ID, autoincrement=True, nullable=False),
        sa.Column("ven_id", VEN_ID, nullable=False),
        _ts("timestamp", nullable=False),
        *_kw("used_power_kw", "shed_power_kw", "requested_reduction_kw"),
        sa.Column("event_id", EVENT_ID, nullable=True),
        *_kw(
            "baseline_power_kw",
            "battery_soc",
            "panel_amperage_rating",
            "panel_voltage",
            "panel_max_kw",
            "current_amps",
            "panel_utilization_percent",
        ),
        sa.Column("raw_payload", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_ven_telemetry"),
        sa.UniqueConstraint("ven_id", "timestamp", name="uq_ven_telemetry_ven_id_timestamp"),
    )
    op.create_index(
        "ix_ven_telemetry_timestamp", "ven_telemetry", ["timestamp"], postgresql_using="brin"
    )
    _fast_raw_payload_compression()

    op.create_table(
        "ven_load_samples",
        sa.Column("ven_id", VEN_ID, nullable=False),
        _ts("timestamp", nullable=False),
        sa.Column("load_id", LOAD_ID, nullable=False),
        sa.Column("telemetry_id", BIG_ID, nullable=False),
        sa.Column("name", sa.String(length=255), nullable=True),
        sa.Column("type", sa.String(length=64), nullable=True),
        *_kw("capacity_kw", "current_power_kw", "shed_capability_kw"),
        sa.Column("enabled", sa.Boolean(), nullable=True),
        sa.Column("priority", sa.Integer(), nullable=True),
        sa.Column("critical", sa.Boolean(), nullable=True),
        *_kw("breaker_amps", "current_amps"),
        sa.PrimaryKeyConstraint("ven_id", "timestamp", "load_id", name="pk_ven_load_samples"),
    )
    op.create_index(
        "ix_ven_load_samples_timestamp", "ven_load_samples", ["timestamp"], postgresql_using="brin"
    )

    op.create_table(
        "ven_statuses",
        sa.Column("id", BIG_ID, autoincrement=True, nullable=False),
        sa.Column("ven_id", VEN_ID, nullable=False),
        sa.Column("status", sa.String(length=32), nullable=False),
        sa.Column("details", DOCUMENT, nullable=True),
        _ts("timestamp", nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_ven_statuses"),
    )
    op.create_index("ix_ven_statuses_ven_id_timestamp", "ven_statuses", ["ven_id", "timestamp"])

    op.create_table(
        "ven_acks",
        sa.Column("id", BIG_ID, autoincrement=True, nullable=False),
        sa.Column("ven_id", VEN_ID, nullable=False),
        sa.Column("event_id", EVENT_ID, nullable=True),
        sa.Column("correlation_id", sa.String(length=255), nullable=True),
        sa.Column("op", sa.String(length=50), nullable=False),
        sa.Column("status", sa.String(length=50), nullable=False),
        _ts("timestamp", nullable=False),
        *_kw("requested_shed_kw", "actual_shed_kw"),
        sa.Column("circuits_curtailed", DOCUMENT, nullable=True),
        sa.Column("raw_payload", DOCUMENT, nullable=True),
        _ts("created_at", server_default=sa.func.now()),
        sa.PrimaryKeyConstraint("id", name="pk_ven_acks"),
    )
    op.create_index("ix_ven_acks_ven_id_timestamp", "ven_acks", ["ven_id", "timestamp"])
    op.create_index("ix_ven_acks_event_id_timestamp", "ven_acks", ["event_id", "timestamp"])
    op.create_index("ix_ven_acks_correlation_id", "ven_acks", ["correlation_id"])

    op.create_table(
        "dead_letters",
        sa.Column("id", BIG_ID, autoincrement=True, nullable=False),
        sa.Column("topic", sa.Text(), nullable=False),
        sa.Column("payload", sa.LargeBinary(), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        _ts("received_at", nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_dead_letters"),
    )
    op.create_index("ix_dead_letters_received_at", "dead_letters", ["received_at"])

    op.create_table(
        "shadows",
        sa.Column("ven_id", VEN_ID, nullable=False),
        sa.Column("document", DOCUMENT, nullable=False),
        _ts("updated_at", nullable=False),
        sa.PrimaryKeyConstraint("ven_id", name="pk_shadows"),
    )

    op.create_table(
        "ven_latest",
        sa.Column("ven_id", VEN_ID, nullable=False),
        sa.Column("telemetry_id", BIG_ID, nullable=False),
        _ts("timestamp", nullable=False),
        *_kw("used_power_kw", "shed_power_kw", "requested_reduction_kw"),
        sa.Column("event_id", EVENT_ID, nullable=True),
        sa.PrimaryKeyConstraint("ven_id", name="pk_ven_latest"),
    )


def downgrade() -> None:
    for table in (
        "ven_latest",
        "shadows",
        "dead_letters",
        "ven_acks",
        "ven_statuses",
        "ven_load_samples",
        "ven_telemetry",
        "commands",
        "events",
        "ven_loads",
        "vens",
    ):
        # Dropping a table drops its indexes and constraints on both dialects.
        op.drop_table(table)
