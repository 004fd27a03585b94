"""The OpenADR 3.1 VTN's objects (issue 17): ``oadr_programs``,
``oadr_events``, ``oadr_reports``, ``oadr_subscriptions``, ``oadr_vens``,
``oadr_resources`` (each object as its JSON document beside the columns its
searches filter on) and ``oadr_targets`` (each object's targets, a row each).
All start empty.

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-03
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from alembic import op

from adapters.sql.types import BigId, UtcDateTime

revision = "0013"
down_revision = "0012"
branch_labels = None
depends_on = None

_ID = sa.String(length=128)


def _table(name: str, *extra: Any) -> None:
    op.create_table(
        name,
        sa.Column("seq", BigId, autoincrement=True, nullable=False),
        sa.Column("id", _ID, nullable=False),
        *extra,
        sa.Column("document", sa.JSON(), nullable=False),
        sa.PrimaryKeyConstraint("seq", name=f"pk_{name}"),
        sa.UniqueConstraint("id", name=f"uq_{name}_id"),
    )


def upgrade() -> None:
    _table(
        "oadr_programs",
        sa.Column("name", _ID, nullable=False),
        sa.Column("targeted", sa.Boolean(), nullable=False),
        sa.UniqueConstraint("name", name="uq_oadr_programs_name"),
    )
    _table(
        "oadr_events",
        sa.Column("program_id", _ID, nullable=False),
        sa.Column("ends_at", UtcDateTime(timezone=True), nullable=True),
        sa.Column("targeted", sa.Boolean(), nullable=False),
        sa.ForeignKeyConstraint(
            ["program_id"],
            ["oadr_programs.id"],
            name="fk_oadr_events_program_id_oadr_programs",
            ondelete="CASCADE",
        ),
    )
    op.create_index("ix_oadr_events_program_id", "oadr_events", ["program_id"])
    op.create_index("ix_oadr_events_ends_at", "oadr_events", ["ends_at"])
    _table(
        "oadr_reports",
        sa.Column("program_id", _ID, nullable=True),
        sa.Column("event_id", _ID, nullable=False),
        sa.Column("client_id", _ID, nullable=False),
        sa.Column("client_name", _ID, nullable=False),
    )
    for column in ("program_id", "event_id", "client_id"):
        op.create_index(f"ix_oadr_reports_{column}", "oadr_reports", [column])
    _table(
        "oadr_subscriptions",
        sa.Column("program_id", _ID, nullable=True),
        sa.Column("client_id", _ID, nullable=False),
        sa.Column("client_name", _ID, nullable=False),
        sa.Column("object_types", sa.String(length=128), nullable=False),
        sa.Column("targeted", sa.Boolean(), nullable=False),
    )
    for column in ("program_id", "client_id"):
        op.create_index(f"ix_oadr_subscriptions_{column}", "oadr_subscriptions", [column])
    _table(
        "oadr_vens",
        sa.Column("name", _ID, nullable=False),
        sa.Column("client_id", _ID, nullable=False),
        sa.Column("targeted", sa.Boolean(), nullable=False),
        sa.UniqueConstraint("name", name="uq_oadr_vens_name"),
    )
    op.create_index("ix_oadr_vens_client_id", "oadr_vens", ["client_id"])
    _table(
        "oadr_resources",
        sa.Column("ven_id", _ID, nullable=False),
        sa.Column("name", _ID, nullable=False),
        sa.Column("client_id", _ID, nullable=False),
        sa.Column("targeted", sa.Boolean(), nullable=False),
        sa.ForeignKeyConstraint(
            ["ven_id"],
            ["oadr_vens.id"],
            name="fk_oadr_resources_ven_id_oadr_vens",
            ondelete="CASCADE",
        ),
        sa.UniqueConstraint("ven_id", "name", name="uq_oadr_resources_ven_id_name"),
    )
    op.create_index("ix_oadr_resources_client_id", "oadr_resources", ["client_id"])
    op.create_table(
        "oadr_targets",
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("object_id", _ID, nullable=False),
        sa.Column("target", _ID, nullable=False),
        sa.PrimaryKeyConstraint("kind", "object_id", "target", name="pk_oadr_targets"),
    )
    op.create_index("ix_oadr_targets_kind_target", "oadr_targets", ["kind", "target"])


def downgrade() -> None:
    op.drop_table("oadr_targets")
    op.drop_table("oadr_resources")
    op.drop_table("oadr_vens")
    op.drop_table("oadr_subscriptions")
    op.drop_table("oadr_reports")
    op.drop_table("oadr_events")
    op.drop_table("oadr_programs")
