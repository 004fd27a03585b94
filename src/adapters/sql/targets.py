"""Targets in SQL (:mod:`gridcore.targeting`): the predicates that find the
rows an object's targets reach, for each dialect.

A target list is a ``text[]`` on PostgreSQL (GIN-indexed: ``&&`` is an index
scan) and a JSON array on SQLite (``json_each``). The wanted targets travel
as one parameter (an array, or a JSON text), whatever their number, so that
SQLite's limit on parameters never applies.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from sqlalchemy import ColumnElement, Select, Text, any_, exists, func, literal, select
from sqlalchemy.dialects.postgresql import ARRAY


def _wanted_sqlite(targets: Sequence[str]) -> Select[Any]:
    """The wanted targets as a one-column SELECT (SQLite)."""
    each = func.json_each(literal(json.dumps(list(targets)), Text())).table_valued("value")
    return select(each.c.value)


def is_one_of(
    column: ColumnElement[str], targets: Sequence[str], dialect: str
) -> ColumnElement[bool]:
    """``column`` (a VEN id) is one of ``targets``."""
    if dialect == "postgresql":
        return column == any_(literal(list(targets), ARRAY(Text())))
    return column.in_(_wanted_sqlite(targets))


def shares_one(
    column: ColumnElement[Any], targets: Sequence[str], dialect: str
) -> ColumnElement[bool]:
    """The target list in ``column`` holds one of ``targets`` (NULL holds none)."""
    if dialect == "postgresql":
        return column.bool_op("&&")(literal(list(targets), ARRAY(Text())))
    held = func.json_each(column).table_valued("value")
    return exists(
        select(literal(1)).select_from(held).where(held.c.value.in_(_wanted_sqlite(targets)))
    )
