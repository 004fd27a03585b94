"""OpenADR notifications waiting for delivery (issue 17, the outbox):
``oadr_outbox``, one row per webhook call or MQTT message, pending until
delivered or given up, pruned after a retention (adapters.sql.outbox).
Starts empty.

Revision ID: 0017
Revises: 0016
Create Date: 2026-12-03
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from adapters.sql.types import BigId, UtcDateTime

revision = "0017"
down_revision = "0016"
branch_labels = None
depends_on = None

PENDING = sa.text("finished_at IS NULL")


def upgrade() -> None:
    op.create_table(
        "oadr_outbox",
        sa.Column("id", BigId, autoincrement=True, nullable=False),
        sa.Column("channel", sa.String(length=16), nullable=False),
        sa.Column("target", sa.Text(), nullable=False),
        sa.Column("body", sa.LargeBinary(), nullable=False),
        sa.Column("bearer_token", sa.Text(), nullable=True),
        sa.Column("subscription_id", sa.String(length=128), nullable=True),
        sa.Column("created_at", UtcDateTime, nullable=False),
        sa.Column("lease_owner", sa.String(length=128), nullable=True),
        sa.Column("lease_until", UtcDateTime, nullable=True),
        sa.Column("finished_at", UtcDateTime, nullable=True),
        sa.Column("delivered", sa.Boolean(), nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_oadr_outbox"),
    )
    op.create_index(
        "ix_oadr_outbox_pending",
        "oadr_outbox",
        ["channel", "target", "id"],
        postgresql_where=PENDING,
        sqlite_where=PENDING,
    )
    op.create_index("ix_oadr_outbox_finished_at", "oadr_outbox", ["finished_at"])


def downgrade() -> None:
    op.drop_index("ix_oadr_outbox_finished_at", table_name="oadr_outbox")
    op.drop_index("ix_oadr_outbox_pending", table_name="oadr_outbox")
    op.drop_table("oadr_outbox")
