"""History past raw retention (issue 16): ``ven_interval_events``, the event
marks of each VEN's 5-minute intervals (greatest eventId, summed
requestedReductionKw), kept up at ingest beside ``ven_intervals`` so that
history read from the intervals keeps its ``eventId`` and
``requestedReductionKw``. Filled from the telemetry already stored.

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-03
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from adapters.sql.types import UtcDateTime

revision = "0010"
down_revision = "0009"
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


def upgrade() -> None:
    op.create_table(
        "ven_interval_events",
        sa.Column("ven_id", sa.String(length=128), nullable=False),
        sa.Column("start", UtcDateTime(timezone=True), nullable=False),
        sa.Column("event_id", sa.String(length=64), nullable=True),
        sa.Column("requested_sum", sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint("ven_id", "start", name="pk_ven_interval_events"),
    )
    op.execute(_BACKFILL.format(start=_START[op.get_bind().dialect.name]))


def downgrade() -> None:
    op.drop_table("ven_interval_events")
