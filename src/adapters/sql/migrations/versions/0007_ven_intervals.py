"""Five-minute intervals per VEN, kept up at ingest (issue 14: baselines read
ten days and more of a fleet's load; the raw 5-second samples are 60 times as
many rows). Filled from the telemetry already stored, so the first event after
the upgrade has its history.

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-02
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from adapters.sql.types import UtcDateTime

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None

# The stored telemetry, rolled up as ingest does (gridcore.intervals.roll_up);
# only the interval's start is written differently by each dialect.
_BACKFILL = """
INSERT INTO ven_intervals
SELECT ven_id, {start} AS start,
       count(*), coalesce(sum(used_power_kw), 0), count(used_power_kw),
       min(used_power_kw), max(used_power_kw),
       coalesce(sum(shed_power_kw), 0), count(shed_power_kw),
       min(shed_power_kw), max(shed_power_kw),
       coalesce(sum(baseline_power_kw), 0), count(baseline_power_kw)
FROM ven_telemetry GROUP BY 1, 2
"""
_START = {
    "postgresql": "to_timestamp(floor(extract(epoch FROM timestamp) / 300) * 300)",
    # SQLite keeps UtcDateTime as UTC text, 'YYYY-MM-DD HH:MM:SS.ffffff'.
    "sqlite": "strftime('%Y-%m-%d %H:%M:%S', (CAST(strftime('%s', timestamp) AS INTEGER) / 300)"
    " * 300, 'unixepoch') || '.000000'",
}


def upgrade() -> None:
    op.create_table(
        "ven_intervals",
        sa.Column("ven_id", sa.String(length=128), nullable=False),
        sa.Column("start", UtcDateTime(timezone=True), nullable=False),
        sa.Column("samples", sa.Integer(), nullable=False),
        sa.Column("used_sum", sa.Float(), nullable=False),
        sa.Column("used_count", sa.Integer(), nullable=False),
        sa.Column("used_min", sa.Float()),
        sa.Column("used_max", sa.Float()),
        sa.Column("shed_sum", sa.Float(), nullable=False),
        sa.Column("shed_count", sa.Integer(), nullable=False),
        sa.Column("shed_min", sa.Float()),
        sa.Column("shed_max", sa.Float()),
        sa.Column("baseline_sum", sa.Float(), nullable=False),
        sa.Column("baseline_count", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("ven_id", "start", name="pk_ven_intervals"),
    )
    op.execute(_BACKFILL.format(start=_START[op.get_bind().dialect.name]))


def downgrade() -> None:
    op.drop_table("ven_intervals")
