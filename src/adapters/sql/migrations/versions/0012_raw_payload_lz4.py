"""Raw payloads compressed with lz4 again on the partitioned telemetry.

0001 set lz4 on ``ven_telemetry.raw_payload`` (pglz, PostgreSQL's default,
cost ~10% of ingest; measured in issue 16 at a third of the COPY rate on
~3 KB payloads). 0010 rebuilt the table partitioned by day with ``LIKE``,
which does not carry a column's compression, and PostgreSQL 15 does not pass
a parent's compression on to partitions already made: every day partition
and the catch-all went back to pglz, and partitioned ingest measured ~0.65x
the unpartitioned rate. Set it on the parent and every partition; the
worker's new days copy it (``LIKE ... INCLUDING COMPRESSION``). Rows already
stored keep the compression they were written with.

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-03
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None

_RELATIONS = """
SELECT 'ven_telemetry' UNION ALL
SELECT inhrelid::regclass::text FROM pg_inherits WHERE inhparent = 'ven_telemetry'::regclass
"""


def _set(method: str) -> None:
    bind = op.get_bind()
    if bind.dialect.name != "postgresql":
        return
    has_lz4 = bind.execute(
        sa.text(
            "SELECT 'lz4' = ANY(enumvals) FROM pg_settings WHERE name = 'default_toast_compression'"
        )
    ).scalar()
    if not has_lz4:
        return
    for (relation,) in bind.execute(sa.text(_RELATIONS)).all():
        # ALTER TABLE on the parent alone does not reach its partitions.
        op.execute(f'ALTER TABLE "{relation}" ALTER COLUMN raw_payload SET COMPRESSION {method}')


def upgrade() -> None:
    _set("lz4")


def downgrade() -> None:
    _set("default")
