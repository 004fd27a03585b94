"""Load snapshots (``ven/loads/{venId}``): the documents' ``load_snapshots``
table, with the load line's other fields, keyed by (ven_id, timestamp, load_id).

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-27
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

from adapters.sql.types import UtcDateTime

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

# Spelled out here (not imported from tables.py), as in 0001.
BIG_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
DOCUMENT = sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql")


def upgrade() -> None:
    op.create_table(
        "load_snapshots",
        sa.Column("id", BIG_ID, autoincrement=True, nullable=False),
        sa.Column("ven_id", sa.String(length=128), nullable=False),
        sa.Column("load_id", sa.String(length=128), nullable=False),
        sa.Column("timestamp", UtcDateTime(timezone=True), nullable=False),
        sa.Column("name", sa.String(length=255), nullable=True),
        sa.Column("type", sa.String(length=64), nullable=True),
        sa.Column("capacity_kw", sa.Float(), nullable=True),
        sa.Column("current_power_kw", sa.Float(), nullable=True),
        sa.Column("shed_capability_kw", sa.Float(), nullable=True),
        sa.Column("enabled", sa.Boolean(), nullable=True),
        sa.Column("priority", sa.Integer(), nullable=True),
        sa.Column("critical", sa.Boolean(), nullable=True),
        sa.Column("raw_payload", DOCUMENT, nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_load_snapshots"),
        sa.UniqueConstraint(
            "ven_id", "timestamp", "load_id", name="uq_load_snapshots_ven_id_timestamp_load_id"
        ),
    )


def downgrade() -> None:
    op.drop_table("load_snapshots")
