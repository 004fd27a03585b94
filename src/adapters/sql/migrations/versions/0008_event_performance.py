"""An event's measured performance, kept per baseline method once its measured
span is over (issue 14: settlement reads what was measured then, even if late
telemetry arrives afterwards): ``event_performance`` (the fleet) and
``event_ven_performance`` (a row per VEN). Both start empty: the worker
measures events as they finish; an older event is measured when asked for.

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-02
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from adapters.sql.types import Document, UtcDateTime

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "event_performance",
        sa.Column("event_id", sa.String(length=64), nullable=False),
        sa.Column("method", sa.String(length=40), nullable=False),
        sa.Column("computed_at", UtcDateTime(timezone=True), nullable=False),
        sa.Column("measured_until", UtcDateTime(timezone=True), nullable=False),
        sa.Column("window_start", UtcDateTime(timezone=True), nullable=False),
        sa.Column("window_end", UtcDateTime(timezone=True), nullable=False),
        sa.Column("rebound_seconds", sa.Integer(), nullable=False),
        sa.Column("fleet", Document, nullable=False),
        sa.ForeignKeyConstraint(
            ["event_id"],
            ["events.event_id"],
            name="fk_event_performance_event_id_events",
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("event_id", "method", name="pk_event_performance"),
    )
    op.create_table(
        "event_ven_performance",
        sa.Column("event_id", sa.String(length=64), nullable=False),
        sa.Column("method", sa.String(length=40), nullable=False),
        sa.Column("ven_id", sa.String(length=128), nullable=False),
        sa.Column("baseline_method", sa.String(length=40), nullable=False),
        sa.Column("fell_back", Document, nullable=False),
        sa.Column("shed_kwh", sa.Float()),
        sa.Column("avg_shed_kw", sa.Float()),
        sa.Column("allocated_kw", sa.Float()),
        sa.Column("performance_ratio", sa.Float()),
        sa.Column("claimed_kw", sa.Float()),
        sa.Column("claimed_avg_shed_kw", sa.Float()),
        sa.Column("coverage", sa.Float()),
        sa.Column("intervals_expected", sa.Integer(), nullable=False),
        sa.Column("intervals_present", sa.Integer(), nullable=False),
        sa.Column("samples_expected", sa.Float()),
        sa.Column("samples_present", sa.Integer(), nullable=False),
        sa.Column("offline_intervals", sa.Integer(), nullable=False),
        sa.Column("baseline_days", sa.Integer(), nullable=False),
        sa.Column("rebound_kwh", sa.Float()),
        sa.Column("rebound_peak_kw", sa.Float()),
        sa.ForeignKeyConstraint(
            ["event_id", "method"],
            ["event_performance.event_id", "event_performance.method"],
            name="fk_event_ven_performance_event_id_event_performance",
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("event_id", "method", "ven_id", name="pk_event_ven_performance"),
    )


def downgrade() -> None:
    op.drop_table("event_ven_performance")
    op.drop_table("event_performance")
