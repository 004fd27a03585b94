"""Energy per VEN and UTC day, kept up at ingest (issue 13: the dashboard's
"today" total is an energy; integrating a day of telemetry on every poll took a
second for 50 VENs): ``ven_latest.energy_day``/``energy_kwh`` (the day each VEN
is in and its kWh so far) and ``ven_energy`` (completed days). Both start
empty: energy is counted from the first telemetry stored after the upgrade.

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-03
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from adapters.sql.types import UtcDateTime

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("ven_latest", sa.Column("energy_day", UtcDateTime(timezone=True)))
    op.add_column("ven_latest", sa.Column("energy_kwh", sa.Float()))
    op.create_table(
        "ven_energy",
        sa.Column("day", UtcDateTime(timezone=True), nullable=False),
        sa.Column("ven_id", sa.String(length=128), nullable=False),
        sa.Column("used_kwh", sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint("day", "ven_id", name="pk_ven_energy"),
    )


def downgrade() -> None:
    op.drop_table("ven_energy")
    # SQLite drops a column by copying the table (batch mode); PostgreSQL in place.
    with op.batch_alter_table("ven_latest") as batch:
        batch.drop_column("energy_kwh")
        batch.drop_column("energy_day")
