"""The outbox read in its own order, and its two indexes split by whether a
command waits.

- ``ix_commands_state_created_at`` becomes (state, created_at,
  correlation_id) over the commands due at once (``not_before IS NULL``):
  the relay's "the oldest N due at once" (``... AND not_before IS NULL ORDER
  BY created_at, correlation_id LIMIT N``) is a walk of the index that stops
  after N rows. Before, every command of an event sharing one created_at,
  each relay batch of a 100,000-VEN event read and sorted every command still
  pending, twice (before and after its lock): 50 - 150 ms a read, about
  fifteen batches an event. (0009's index could not give that order:
  PostgreSQL does not take ``not_before IS NULL`` for an equality that fixes
  the column.)
- 0009's (state, not_before, created_at) keeps only the commands that wait
  (``not_before IS NOT NULL``, the staggered restores), which is all the
  "due by now" read (``not_before <= now``) looks at: an event's commands no
  longer each add an entry to it when written, sent and answered.

Revision ID: 0016
Revises: 0015
Create Date: 2026-12-03
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0016"
down_revision = "0015"
branch_labels = None
depends_on = None

AT_ONCE_OLD = "ix_commands_state_created_at"
AT_ONCE = "ix_commands_state_created_at_correlation_id"
WAITING = "ix_commands_state_not_before_created_at"


AT_ONCE_WHERE = sa.text("not_before IS NULL")
WAITING_WHERE = sa.text("not_before IS NOT NULL")


def upgrade() -> None:
    op.create_index(
        AT_ONCE, "commands", ["state", "created_at", "correlation_id"],
        postgresql_where=AT_ONCE_WHERE, sqlite_where=AT_ONCE_WHERE,
    )  # fmt: skip
    op.drop_index(AT_ONCE_OLD, table_name="commands")
    op.drop_index(WAITING, table_name="commands")
    op.create_index(
        WAITING, "commands", ["state", "not_before", "created_at"],
        postgresql_where=WAITING_WHERE, sqlite_where=WAITING_WHERE,
    )  # fmt: skip


def downgrade() -> None:
    op.drop_index(WAITING, table_name="commands")
    op.create_index(WAITING, "commands", ["state", "not_before", "created_at"])
    op.create_index(AT_ONCE_OLD, "commands", ["state", "created_at"])
    op.drop_index(AT_ONCE, table_name="commands")
