"""Targeting (issue 17): ``vens.targets``, ``ven_loads.targets`` (granted by
the operator) and ``events.targets`` (the VENs an event is meant for; NULL:
the whole fleet), see ``gridcore.targeting``. ``text[]`` on PostgreSQL with
GIN indexes (``&&`` finds the VENs an event's targets reach); JSON arrays on
SQLite, where a partial index holds only the rows with targets. Every
existing row gets NULL: no targets, which is what each meant until now.

Revision ID: 0014
Revises: 0013
Create Date: 2026-12-03
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0014"
down_revision = "0013"
branch_labels = None
depends_on = None

# As adapters.sql.types.TargetList is today, written out: the migration keeps
# meaning what it meant whatever that type becomes.
TARGETS = sa.JSON().with_variant(postgresql.ARRAY(sa.Text()), "postgresql")
INDEXED = ("vens", "ven_loads")


def upgrade() -> None:
    for table in (*INDEXED, "events"):
        op.add_column(table, sa.Column("targets", TARGETS, nullable=True))
    for table in INDEXED:
        op.create_index(
            f"ix_{table}_targets",
            table,
            ["targets"],
            postgresql_using="gin",
            sqlite_where=sa.text("targets IS NOT NULL"),
        )


def downgrade() -> None:
    for table in INDEXED:
        op.drop_index(f"ix_{table}_targets", table_name=table)
    # A plain DROP COLUMN (SQLite 3.35+ has it), not a batch copy: rebuilding
    # `vens` on SQLite drops the table, and its ON DELETE CASCADE would take
    # the configured loads with it.
    for table in ("events", *INDEXED):
        op.drop_column(table, "targets")
