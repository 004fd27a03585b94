"""Filling a benchmark database in SQL (``generate_series``), shared by the
benchmarks that need a large telemetry history: the load rows of generated
telemetry, each VEN's current state, and a bulk load with the big tables'
primary keys built once after it rather than row by row (the same schema,
much faster to fill)."""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from typing import Any

from bench_ingest import CIRCUITS

# One load row per circuit of every telemetry row (``{where}``: which rows).
LOAD_ROWS = """
INSERT INTO ven_load_samples (ven_id, timestamp, load_id, telemetry_id, name, type,
    capacity_kw, current_power_kw, shed_capability_kw, enabled, priority, critical)
SELECT t.ven_id, t.timestamp, 'circuit_' || c.n, t.id, c.name, c.type, c.capacity,
       c.capacity * ((t.id + c.n) %% 10) / 10.0, c.capacity, true, c.priority,
       c.type IN ('hvac', 'refrigerator')
FROM ven_telemetry t
CROSS JOIN (VALUES {circuits}) AS c(n, name, type, capacity, priority)
{where};
"""

# Each VEN's newest telemetry row as its current state.
LATEST = """
INSERT INTO ven_latest (ven_id, telemetry_id, timestamp, used_power_kw, shed_power_kw,
    requested_reduction_kw, event_id)
SELECT DISTINCT ON (ven_id) ven_id, id, timestamp, used_power_kw, shed_power_kw,
       requested_reduction_kw, event_id
FROM ven_telemetry {where} ORDER BY ven_id, timestamp DESC;
"""

# The 5-minute intervals, their event marks and the days of generated
# telemetry (``{filter}``: which rows), as ingest keeps them and migrations
# 0007 and 0011 fill them: history reads these, not the raw rows.
ROLL_UP = """
INSERT INTO ven_intervals
SELECT ven_id, to_timestamp(floor(extract(epoch FROM timestamp) / 300) * 300),
       count(*), coalesce(sum(used_power_kw), 0), count(used_power_kw),
       min(used_power_kw), max(used_power_kw),
       coalesce(sum(shed_power_kw), 0), count(shed_power_kw),
       min(shed_power_kw), max(shed_power_kw),
       coalesce(sum(baseline_power_kw), 0), count(baseline_power_kw)
FROM ven_telemetry WHERE {filter} GROUP BY 1, 2;

INSERT INTO ven_interval_events
SELECT ven_id, to_timestamp(floor(extract(epoch FROM timestamp) / 300) * 300),
       max(event_id), coalesce(sum(requested_reduction_kw), 0)
FROM ven_telemetry
WHERE (event_id IS NOT NULL OR requested_reduction_kw IS NOT NULL) AND {filter}
GROUP BY 1, 2;

INSERT INTO ven_days
SELECT ven_id, date_trunc('day', timestamp, 'UTC'), count(*),
       coalesce(sum(used_power_kw), 0), coalesce(sum(shed_power_kw), 0),
       coalesce(sum(requested_reduction_kw), 0), max(event_id)
FROM ven_telemetry WHERE {filter} GROUP BY 1, 2;
"""

# The primary keys dropped during a fill and built after it.
KEYS = {
    "ven_load_samples": "(ven_id, timestamp, load_id)",
    "ven_intervals": "(ven_id, start)",
}


def load_rows(circuits: int = len(CIRCUITS), where: str = "") -> str:
    """``LOAD_ROWS`` for the first ``circuits`` circuits of bench_ingest's panel."""
    values = ", ".join(
        f"({n}, '{name}', '{kind}', {capacity}, {priority})"
        for n, (name, kind, _, capacity, priority) in enumerate(CIRCUITS[:circuits], start=1)
    )
    return LOAD_ROWS.replace("{circuits}", values).replace("{where}", where)


def latest(where: str = "") -> str:
    return LATEST.replace("{where}", where)


def roll_up(filter: str = "true") -> str:
    return ROLL_UP.replace("{filter}", filter)


def dsn_of(url: str) -> str:
    """psycopg's connection string for a SQLAlchemy URL."""
    from sqlalchemy.engine import make_url

    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


def fill(url: str, sql: str, params: Mapping[str, Any], *, rebuild: Sequence[str] = ()) -> float:
    """Run ``sql`` (statements separated by ``;`` at a line's end) with
    ``params``, the keys of the ``rebuild`` tables dropped before and built
    after; then the telemetry id sequence past the generated ids, and VACUUM
    ANALYZE. Returns the seconds it took."""
    import psycopg

    started = time.perf_counter()
    with psycopg.connect(dsn_of(url), autocommit=True) as conn:
        for table in rebuild:
            conn.execute(f"ALTER TABLE {table} DROP CONSTRAINT pk_{table}")
        for statement in sql.split(";\n"):
            if statement.strip():
                conn.execute(statement, params)
        for table in rebuild:
            conn.execute(f"ALTER TABLE {table} ADD CONSTRAINT pk_{table} PRIMARY KEY {KEYS[table]}")
        conn.execute(
            "SELECT setval(pg_get_serial_sequence('ven_telemetry', 'id'), "
            "(SELECT coalesce(max(id), 1) FROM ven_telemetry))"
        )
        conn.execute("VACUUM ANALYZE")
    return time.perf_counter() - started
