"""Commands by (event_id, ven_id): an ACK batch re-reads, under its event's
lock, every command of the VENs it answers for in that event; the index on
event_id alone made each batch scan all of a 10,000-VEN event's commands. The
composite index still serves the queries by event_id alone.

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-02
"""

from __future__ import annotations

from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index("ix_commands_event_id_ven_id", "commands", ["event_id", "ven_id"])
    op.drop_index("ix_commands_event_id", table_name="commands")


def downgrade() -> None:
    op.create_index("ix_commands_event_id", "commands", ["event_id"])
    op.drop_index("ix_commands_event_id_ven_id", table_name="commands")
