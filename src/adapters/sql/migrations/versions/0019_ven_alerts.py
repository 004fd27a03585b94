"""VEN alerts (issue 18, ``ven/alerts/{venId}``): ``ven_alerts``, one row per
alert, unique by (VEN, timestamp, code, load) so that a re-delivered alert is
stored once; indexed by time for the fleet's list, by severity and time for
its filter, and by VEN through the unique key. Starts empty.

Written on top of 0017; the merge puts it after 0018 (the audit log).

Revision ID: 0019
Revises: 0018
Create Date: 2026-12-03
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from adapters.sql.types import BigId, Document, UtcDateTime

revision = "0019"
down_revision = "0018"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "ven_alerts",
        sa.Column("id", BigId, autoincrement=True, nullable=False),
        sa.Column("ven_id", sa.String(length=128), nullable=False),
        sa.Column("timestamp", UtcDateTime, nullable=False),
        sa.Column("severity", sa.String(length=16), nullable=False),
        sa.Column("code", sa.String(length=64), nullable=False),
        sa.Column("load_id", sa.String(length=128), nullable=False),
        sa.Column("message", sa.String(length=1000), nullable=True),
        sa.Column("details", Document, nullable=True),
        sa.Column("received_at", UtcDateTime, nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_ven_alerts"),
        sa.UniqueConstraint(
            "ven_id",
            "timestamp",
            "code",
            "load_id",
            name="uq_ven_alerts_ven_id_timestamp_code_load_id",
        ),
    )
    op.create_index("ix_ven_alerts_timestamp", "ven_alerts", ["timestamp"])
    op.create_index("ix_ven_alerts_severity_timestamp", "ven_alerts", ["severity", "timestamp"])


def downgrade() -> None:
    op.drop_index("ix_ven_alerts_severity_timestamp", table_name="ven_alerts")
    op.drop_index("ix_ven_alerts_timestamp", table_name="ven_alerts")
    op.drop_table("ven_alerts")
