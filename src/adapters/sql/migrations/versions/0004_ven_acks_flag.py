"""ven_acks.flag: why an ACK was not credited as the VEN reported it (issue 11:
an ACK of 999999999 kW for a 1 kW command is credited 1 kW, "capped and
flagged, the raw value kept"). Nullable: ACKs credited as reported have none.

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-02
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("ven_acks", sa.Column("flag", sa.Text(), nullable=True))


def downgrade() -> None:
    # SQLite drops a column by copying the table (batch mode); PostgreSQL in place.
    with op.batch_alter_table("ven_acks") as batch:
        batch.drop_column("flag")
