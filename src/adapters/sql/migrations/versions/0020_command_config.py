"""Configuration pushes in the dispatch ledger (issue 18, ``ven/config/{venId}``):
``commands.config`` holds a push's loads as JSON text (gridcore.venconfig);
NULL for every other command, so existing rows need nothing.

Revision ID: 0020
Revises: 0019
Create Date: 2026-12-03
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0020"
down_revision = "0019"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("commands", sa.Column("config", sa.Text(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("commands") as batch:
        batch.drop_column("config")
