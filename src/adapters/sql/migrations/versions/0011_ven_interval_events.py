"""History past raw retention (issue 16): ``ven_interval_events``, the event
marks of each VEN's 5-minute intervals (greatest eventId, summed
requestedReductionKw), kept up at ingest beside ``ven_intervals`` so that
history read from the intervals keeps its ``eventId`` and
``requestedReductionKw``; and ``ven_days``, the same per VEN per UTC day, so
that a year of daily history reads 365 rows a VEN; BRIN indexes on the
intervals' and marks' start, through which the fleet's history reads a time
range. Filled from the telemetry and intervals already stored.

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-03
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from adapters.sql.types import UtcDateTime

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None

# As ingest rolls them up (gridcore.history.IntervalEvents); the interval's
# start written as 0007 writes it for each dialect.
_BACKFILL = """
INSERT INTO ven_interval_events
SELECT ven_id, {start} AS start, max(event_id), coalesce(sum(requested_reduction_kw), 0)
FROM ven_telemetry
WHERE event_id IS NOT NULL OR requested_reduction_kw IS NOT NULL
GROUP BY 1, 2
"""
_START = {
    "postgresql": "to_timestamp(floor(extract(epoch FROM timestamp) / 300) * 300)",
    "sqlite": "strftime('%Y-%m-%d %H:%M:%S', (CAST(strftime('%s', timestamp) AS INTEGER) / 300)"
    " * 300, 'unixepoch') || '.000000'",
}


# Days from the intervals (kept longer than the raw rows) and their marks.
_DAYS = """
INSERT INTO ven_days
SELECT i.ven_id, {day} AS day, sum(i.samples), sum(i.used_sum), sum(i.shed_sum),
       coalesce(sum(e.requested_sum), 0), max(e.event_id)
FROM ven_intervals i LEFT JOIN ven_interval_events e ON e.ven_id = i.ven_id AND e.start = i.start
GROUP BY 1, 2
"""
_DAY = {
    "postgresql": "date_trunc('day', i.start, 'UTC')",
    "sqlite": "substr(i.start, 1, 10) || ' 00:00:00.000000'",
}


def upgrade() -> None:
    op.create_table(
        "ven_interval_events",
        sa.Column("ven_id", sa.String(length=128), nullable=False),
        sa.Column("start", UtcDateTime(timezone=True), nullable=False),
        sa.Column("event_id", sa.String(length=64), nullable=True),
        sa.Column("requested_sum", sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint("ven_id", "start", name="pk_ven_interval_events"),
    )
    op.create_table(
        "ven_days",
        sa.Column("ven_id", sa.String(length=128), nullable=False),
        sa.Column("day", UtcDateTime(timezone=True), nullable=False),
        sa.Column("samples", sa.Integer(), nullable=False),
        sa.Column("used_sum", sa.Float(), nullable=False),
        sa.Column("shed_sum", sa.Float(), nullable=False),
        sa.Column("requested_sum", sa.Float(), nullable=False),
        sa.Column("event_id", sa.String(length=64), nullable=True),
        sa.PrimaryKeyConstraint("ven_id", "day", name="pk_ven_days"),
    )
    op.create_index(
        "ix_ven_interval_events_start", "ven_interval_events", ["start"], postgresql_using="brin"
    )
    op.create_index("ix_ven_days_day", "ven_days", ["day"])
    op.create_index("ix_ven_intervals_start", "ven_intervals", ["start"], postgresql_using="brin")
    dialect = op.get_bind().dialect.name
    op.execute(_BACKFILL.format(start=_START[dialect]))
    op.execute(_DAYS.format(day=_DAY[dialect]))


def downgrade() -> None:
    op.drop_index("ix_ven_intervals_start", "ven_intervals")
    op.drop_table("ven_days")
    op.drop_table("ven_interval_events")
