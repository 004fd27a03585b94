"""The fleet's history roll-ups (issue 16): ``fleet_intervals`` and
``fleet_days``, one row per closed 5-minute interval and per closed UTC day
(gridcore.history.FleetTotals), made by the worker's maintenance, so that the
fleet's history reads one row per point whatever the fleet's size;
``fleet_rollup``, how far they reach (nothing yet: the first maintenance pass
rolls up what the intervals and days hold, a day per transaction); and
``fleet_late``, the intervals late telemetry marked.

Revision ID: 0015
Revises: 0014
Create Date: 2026-12-03
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from adapters.sql.types import UtcDateTime

revision = "0015"
down_revision = "0014"
branch_labels = None
depends_on = None


def _fleet_totals(name: str, key: str) -> None:
    op.create_table(
        name,
        sa.Column(key, UtcDateTime(timezone=True), nullable=False),
        sa.Column("vens", sa.Integer(), nullable=False),
        sa.Column("samples", sa.BigInteger(), nullable=False),
        sa.Column("used_kw", sa.Float(), nullable=False),
        sa.Column("shed_kw", sa.Float(), nullable=False),
        sa.Column("requested_kw", sa.Float(), nullable=False),
        sa.Column("event_id", sa.String(length=64), nullable=True),
        sa.PrimaryKeyConstraint(key, name=f"pk_{name}"),
    )


def upgrade() -> None:
    _fleet_totals("fleet_intervals", "start")
    _fleet_totals("fleet_days", "day")
    op.create_table(
        "fleet_rollup",
        sa.Column("id", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("marked_through", UtcDateTime(timezone=True), nullable=True),
        sa.Column("rolled_through", UtcDateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_fleet_rollup"),
    )
    op.execute("INSERT INTO fleet_rollup (id) VALUES (1)")
    op.create_table(
        "fleet_late",
        sa.Column("start", UtcDateTime(timezone=True), nullable=False),
    )
    op.create_index("ix_fleet_late_start", "fleet_late", ["start"])


def downgrade() -> None:
    op.drop_table("fleet_late")
    op.drop_table("fleet_rollup")
    op.drop_table("fleet_days")
    op.drop_table("fleet_intervals")
