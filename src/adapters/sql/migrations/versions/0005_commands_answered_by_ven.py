"""Commands by (ven_id, acked_at), answered ones only (issue 13): the fleet
summary shows each VEN's last round trip, the command it answered last; the
partial index makes that one probe per VEN instead of a scan of its ledger.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-03
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

ANSWERED = sa.text("acked_at IS NOT NULL")


def upgrade() -> None:
    op.create_index(
        "ix_commands_ven_id_acked_at",
        "commands",
        ["ven_id", "acked_at"],
        postgresql_where=ANSWERED,
        sqlite_where=ANSWERED,
    )


def downgrade() -> None:
    op.drop_index("ix_commands_ven_id_acked_at", table_name="commands")
