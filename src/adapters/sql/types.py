"""Column types that behave the same on PostgreSQL and SQLite."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import JSON, BigInteger, DateTime, Integer, Text
from sqlalchemy.dialects.postgresql import ARRAY, JSONB
from sqlalchemy.engine import Dialect
from sqlalchemy.types import TypeDecorator

# SQLite only auto-numbers an INTEGER PRIMARY KEY (the rowid alias), not a BIGINT.
BigId = BigInteger().with_variant(Integer(), "sqlite")

# JSON documents that are queried (ACK circuits, shadows): JSONB on PostgreSQL
# so the documents' `@>` queries work; they are low-volume, so the parse is free.
Document = JSON().with_variant(JSONB(), "postgresql")

# Targets (gridcore.targeting): text[] on PostgreSQL, where a GIN index finds
# the rows sharing one with a list (`&&`); a JSON array on SQLite, read with
# json_each (adapters.sql.targets). NULL: none.
TargetList = JSON().with_variant(ARRAY(Text()), "postgresql")


class UtcDateTime(TypeDecorator[datetime]):
    """A timestamp that is always timezone-aware UTC in Python.

    PostgreSQL stores ``timestamptz``. SQLite has no timestamp type and
    SQLAlchemy would silently drop the offset, so values are converted to UTC
    before the offset is dropped and marked UTC again when read. Naive values are
    refused: guessing their zone is how an hour of telemetry goes missing.
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None or value.utcoffset() is None:
            raise ValueError(f"naive datetime {value!r}: timestamps must be timezone-aware")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: Any, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if not isinstance(value, datetime):  # pragma: no cover - driver contract
            raise TypeError(f"expected a datetime from the driver, got {type(value).__name__}")
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)
