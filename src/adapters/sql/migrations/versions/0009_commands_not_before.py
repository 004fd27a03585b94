"""Staggered restores (issue 14, rebound mitigation): ``commands.not_before``,
the time before which the relay does not publish a command (a restore waits
its VEN's offset after the event's end; NULL: at once), and the index through
which the outbox finds what is due without reading what still waits.

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-04
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from adapters.sql.types import UtcDateTime

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None

INDEX = "ix_commands_state_not_before_created_at"


def upgrade() -> None:
    op.add_column("commands", sa.Column("not_before", UtcDateTime(timezone=True), nullable=True))
    op.create_index(INDEX, "commands", ["state", "not_before", "created_at"])


def downgrade() -> None:
    op.drop_index(INDEX, table_name="commands")
    with op.batch_alter_table("commands") as batch:  # SQLite rebuilds the table
        batch.drop_column("not_before")
