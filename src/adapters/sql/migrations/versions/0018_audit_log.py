"""The audit trail (issue 18): ``audit_log``, one row per operator action
(gridcore.audit), written in the transaction of the change it records.
Starts empty.

Revision ID: 0018
Revises: 0017
Create Date: 2026-12-03
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from adapters.sql.types import BigId, Document, UtcDateTime

revision = "0018"
down_revision = "0017"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "audit_log",
        sa.Column("id", BigId, autoincrement=True, nullable=False),
        sa.Column("at", UtcDateTime, nullable=False),
        sa.Column("actor", sa.String(length=128), nullable=False),
        sa.Column("action", sa.String(length=32), nullable=False),
        sa.Column("ven_id", sa.String(length=128), nullable=True),
        sa.Column("event_id", sa.String(length=64), nullable=True),
        sa.Column("load_id", sa.String(length=128), nullable=True),
        sa.Column("details", Document, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_audit_log"),
    )
    op.create_index("ix_audit_log_at", "audit_log", ["at"])
    op.create_index("ix_audit_log_event_id_at", "audit_log", ["event_id", "at"])
    op.create_index("ix_audit_log_ven_id_at", "audit_log", ["ven_id", "at"])


def downgrade() -> None:
    op.drop_index("ix_audit_log_ven_id_at", table_name="audit_log")
    op.drop_index("ix_audit_log_event_id_at", table_name="audit_log")
    op.drop_index("ix_audit_log_at", table_name="audit_log")
    op.drop_table("audit_log")
