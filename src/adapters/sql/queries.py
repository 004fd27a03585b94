"""``SqlTelemetryQueries``: the read side of telemetry, aggregated in SQL.

Meaning of the numbers (shared with the in-memory adapter):

- Latest state is each VEN's newest message (``ven_latest``) and the load rows
  of that message, merged with the operator's load configuration
  (configuration wins for name, type, capacity, priority, critical).
- History buckets are aligned to the Unix epoch (a 5m bucket starts at :00,
  :05, ...). The guide's "sums of usedPowerKw/shedPowerKw per interval" are
  read as power, not energy: within a bucket each VEN's samples are averaged
  (a 5 s stream repeats the same kW twelve times a minute; adding those up
  would report twelve times the load), and the network point is the sum of
  those per-VEN averages. For one load, used is its current power and shed is
  its shed capability while the VEN reports it disabled (shed), else 0.
  A bucket carries the greatest eventId reported in it and the summed average
  requestedReductionKw; buckets without samples are omitted.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import (
    Float,
    Integer,
    and_,
    case,
    cast,
    extract,
    false,
    func,
    literal,
    select,
    true,
)
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlalchemy.sql.elements import ColumnElement
from sqlalchemy.sql.selectable import FromClause

from adapters.sql.repositories import MAX_LIMIT
from adapters.sql.tables import (
    PANEL_FIELDS,
    ven_latest,
    ven_load_samples,
    ven_loads,
    ven_telemetry,
    vens,
)
from gridcore.errors import InvalidInput
from gridcore.telemetry import (
    MAX_BUCKETS,
    CircuitSnapshot,
    HistoryPoint,
    LoadSample,
    LoadTypeStats,
    NetworkStats,
    Page,
    TelemetrySample,
)
from gridcore.ven import Load

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_LOAD_SAMPLE_FIELDS = (
    "name",
    "type",
    "capacity_kw",
    "current_power_kw",
    "shed_capability_kw",
    "enabled",
    "priority",
    "critical",
    "breaker_amps",
    "current_amps",
)


def _r(value: Any) -> float:
    return round(float(value or 0.0), 3)


def _merged_latest_loads() -> Any:
    """Each VEN's latest load rows merged with configuration, as a subquery with
    the columns of :class:`gridcore.ven.Load` plus ``ven_id`` and
    ``effective_capacity_kw`` (the guide's capacity fallback)."""
    s, c = ven_load_samples.c, ven_loads.c
    current = func.coalesce(s.current_power_kw, 0.0)
    shed = func.coalesce(s.shed_capability_kw, 0.0)
    capacity = func.coalesce(func.nullif(c.capacity_kw, 0.0), s.capacity_kw)
    return (
        select(
            s.ven_id,
            s.load_id,
            func.coalesce(func.nullif(c.type, ""), func.nullif(s.type, ""), "other").label("type"),
            func.coalesce(func.nullif(c.name, ""), s.name).label("name"),
            capacity.label("capacity_kw"),
            shed.label("shed_capability_kw"),
            current.label("current_power_kw"),
            func.coalesce(c.priority, s.priority).label("priority"),
            case(
                (c.ven_id.is_not(None), c.critical), else_=func.coalesce(s.critical, false())
            ).label("critical"),
            func.coalesce(s.enabled, true()).label("enabled"),
            s.breaker_amps,
            func.coalesce(capacity, case((current > 0, current), else_=0.0) + shed).label(
                "effective_capacity_kw"
            ),
        )
        .select_from(ven_latest)
        .join(
            ven_load_samples,
            and_(s.ven_id == ven_latest.c.ven_id, s.timestamp == ven_latest.c.timestamp),
        )
        .outerjoin(ven_loads, and_(c.ven_id == s.ven_id, c.load_id == s.load_id))
    )


def _load_sample(row: Any) -> LoadSample:
    return LoadSample(load_id=row["load_id"], **{f: row[f] for f in _LOAD_SAMPLE_FIELDS})


def _sample(row: Any, loads: list[LoadSample]) -> TelemetrySample:
    return TelemetrySample(
        ven_id=row["ven_id"],
        timestamp=row["timestamp"],
        loads=tuple(loads),
        raw_payload=row["raw_payload"],
        **{f: row[f] for f in PANEL_FIELDS},
    )


class SqlTelemetryQueries:
    """:class:`gridcore.ports.TelemetryQueries` over the SQL schema. Lists are
    capped at 1,000 rows; history at ``MAX_BUCKETS`` buckets."""

    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine

    async def _all(self, query: Any) -> list[Any]:
        async with self._engine.connect() as conn:
            return list((await conn.execute(query)).mappings().all())

    async def network_stats(self, now: datetime, offline_after: timedelta) -> NetworkStats:
        cutoff = now - offline_after
        registered = select(
            func.count().label("vens"),
            func.coalesce(func.sum(case((vens.c.last_seen_at >= cutoff, 1), else_=0)), 0).label(
                "online"
            ),
        ).select_from(vens)
        usage = (
            select(
                func.sum(func.coalesce(ven_latest.c.used_power_kw, 0.0)).label("usage"),
                func.count().label("reporting"),
            )
            .select_from(ven_latest)
            .join(vens, vens.c.id == ven_latest.c.ven_id)
        )
        loads = _merged_latest_loads().subquery()
        not_critical = loads.c.critical.is_(False)
        sheddable = and_(not_critical, loads.c.enabled.is_(True), loads.c.shed_capability_kw > 0)
        capability = (
            select(
                func.sum(case((not_critical, loads.c.effective_capacity_kw), else_=0.0)).label(
                    "controllable"
                ),
                func.sum(case((sheddable, loads.c.shed_capability_kw), else_=0.0)).label(
                    "potential"
                ),
            )
            .select_from(loads)
            .join(vens, vens.c.id == loads.c.ven_id)
        )
        async with self._engine.connect() as conn:
            counts = (await conn.execute(registered)).mappings().one()
            used = (await conn.execute(usage)).mappings().one()
            power = (await conn.execute(capability)).mappings().one()
        reporting = int(used["reporting"])
        return NetworkStats(
            ven_count=int(counts["vens"]),
            online_vens=int(counts["online"]),
            controllable_power_kw=_r(power["controllable"]),
            potential_load_reduction_kw=_r(power["potential"]),
            household_usage_kw=_r(used["usage"]),
            average_house_power=_r(float(used["usage"] or 0.0) / reporting) if reporting else None,
        )

    async def available_shed(self, now: datetime, offline_after: timedelta) -> dict[str, float]:
        loads = _merged_latest_loads().subquery()
        sheddable = and_(
            loads.c.critical.is_(False), loads.c.enabled.is_(True), loads.c.shed_capability_kw > 0
        )
        shed = func.sum(case((sheddable, loads.c.shed_capability_kw), else_=0.0))
        rows = await self._all(
            select(vens.c.id, func.coalesce(shed, 0.0).label("shed"))
            .select_from(vens)
            .outerjoin(loads, loads.c.ven_id == vens.c.id)
            .where(vens.c.enabled.is_(True), vens.c.last_seen_at >= now - offline_after)
            .group_by(vens.c.id)
        )
        return {r["id"]: _r(r["shed"]) for r in rows}

    async def load_type_stats(self) -> list[LoadTypeStats]:
        loads = _merged_latest_loads().subquery()
        rows = await self._all(
            select(
                loads.c.type,
                func.sum(loads.c.effective_capacity_kw).label("capacity"),
                func.sum(loads.c.shed_capability_kw).label("shed"),
                func.sum(loads.c.current_power_kw).label("usage"),
            )
            .select_from(loads)
            .join(vens, vens.c.id == loads.c.ven_id)
            .group_by(loads.c.type)
            .order_by(loads.c.type)
        )
        return [
            LoadTypeStats(r["type"], _r(r["capacity"]), _r(r["shed"]), _r(r["usage"])) for r in rows
        ]

    async def latest_loads(self, ven_id: str) -> list[Load]:
        return (await self.latest_loads_many([ven_id])).get(ven_id, [])

    async def latest_loads_many(self, ven_ids: Sequence[str]) -> dict[str, list[Load]]:
        wanted = sorted(set(ven_ids))[:MAX_LIMIT]
        if not wanted:
            return {}
        loads = _merged_latest_loads().where(ven_latest.c.ven_id.in_(wanted)).subquery()
        rows = await self._all(select(loads).order_by(loads.c.ven_id, loads.c.load_id))
        by_ven: dict[str, list[Load]] = {}
        for r in rows:
            by_ven.setdefault(r["ven_id"], []).append(
                Load(
                    id=r["load_id"],
                    type=r["type"],
                    name=r["name"],
                    capacity_kw=r["capacity_kw"],
                    shed_capability_kw=r["shed_capability_kw"],
                    current_power_kw=r["current_power_kw"],
                    priority=r["priority"],
                    critical=bool(r["critical"]),
                    enabled=bool(r["enabled"]),
                    breaker_amps=r["breaker_amps"],
                )
            )
        return by_ven

    async def latest_samples(self, ven_ids: Sequence[str]) -> dict[str, TelemetrySample]:
        wanted = sorted(set(ven_ids))[:MAX_LIMIT]
        if not wanted:
            return {}
        t, s = ven_telemetry.c, ven_load_samples.c
        async with self._engine.connect() as conn:
            rows = (
                (
                    await conn.execute(
                        select(ven_telemetry)
                        .join(ven_latest, ven_latest.c.telemetry_id == t.id)
                        .where(ven_latest.c.ven_id.in_(wanted))
                    )
                )
                .mappings()
                .all()
            )
            lines = await conn.execute(
                select(ven_load_samples)
                .join(
                    ven_latest,
                    and_(ven_latest.c.ven_id == s.ven_id, ven_latest.c.timestamp == s.timestamp),
                )
                .where(ven_latest.c.ven_id.in_(wanted))
                .order_by(s.ven_id, s.load_id)
            )
            loads: dict[str, list[LoadSample]] = {}
            for r in lines.mappings():
                loads.setdefault(r["ven_id"], []).append(_load_sample(r))
        return {r["ven_id"]: _sample(r, loads.get(r["ven_id"], [])) for r in rows}

    def _bucket(self, column: Any, seconds: int) -> ColumnElement[Any]:
        if self._engine.dialect.name == "postgresql":
            start = func.date_bin(timedelta(seconds=seconds), column, literal(EPOCH))
            return extract("epoch", start)
        # SQLite keeps 'YYYY-MM-DD HH:MM:SS.ffffff' UTC text; whole-second widths
        # aligned to the epoch make the fraction irrelevant. Floor, not truncate.
        epoch = cast(func.strftime("%s", column), Integer)
        return epoch - ((epoch % seconds) + seconds) % seconds

    async def history(
        self,
        *,
        start: datetime,
        end: datetime,
        width: timedelta,
        ven_id: str | None = None,
        load_id: str | None = None,
    ) -> list[HistoryPoint]:
        seconds = width.total_seconds()
        if seconds < 1 or seconds != int(seconds):
            raise InvalidInput("granularity", "must be a whole number of seconds, at least 1")
        if end <= start:
            return []
        if (end - start) / width > MAX_BUCKETS:
            raise InvalidInput(
                "granularity", f"too fine for this range: more than {MAX_BUCKETS} buckets"
            )
        t = ven_telemetry.c
        source: FromClause
        stamp: ColumnElement[datetime]
        used: ColumnElement[float]
        shed: ColumnElement[float]
        who: ColumnElement[str]
        if load_id is None:
            source = ven_telemetry
            stamp, used, shed = t.timestamp, t.used_power_kw, t.shed_power_kw
            who = t.ven_id
        else:
            s = ven_load_samples.c
            source = ven_load_samples.join(ven_telemetry, t.id == s.telemetry_id)
            stamp, used, who = s.timestamp, s.current_power_kw, s.ven_id
            shed = case((s.enabled.is_(False), s.shed_capability_kw), else_=0.0)
        bucket = self._bucket(stamp, int(seconds)).label("bucket")
        n = cast(func.count(), Float)
        per_ven = (
            select(
                bucket,
                who.label("ven_id"),
                (func.sum(func.coalesce(used, 0.0)) / n).label("used"),
                (func.sum(func.coalesce(shed, 0.0)) / n).label("shed"),
                (func.sum(func.coalesce(t.requested_reduction_kw, 0.0)) / n).label("requested"),
                func.max(t.event_id).label("event_id"),
            )
            .select_from(source)
            .where(stamp >= start, stamp < end)
            .group_by(bucket, who)
        )
        if ven_id is not None:
            per_ven = per_ven.where(who == ven_id)
        if load_id is not None:
            per_ven = per_ven.where(ven_load_samples.c.load_id == load_id)
        pv = per_ven.subquery()
        rows = await self._all(
            select(
                pv.c.bucket,
                func.sum(pv.c.used).label("used"),
                func.sum(pv.c.shed).label("shed"),
                func.sum(pv.c.requested).label("requested"),
                func.max(pv.c.event_id).label("event_id"),
            )
            .group_by(pv.c.bucket)
            .order_by(pv.c.bucket)
        )
        return [
            HistoryPoint(
                timestamp=EPOCH + timedelta(seconds=float(r["bucket"])),
                used_power_kw=_r(r["used"]),
                shed_power_kw=_r(r["shed"]),
                event_id=r["event_id"],
                requested_reduction_kw=_r(r["requested"]) if r["event_id"] else None,
            )
            for r in rows
        ]

    async def telemetry(
        self,
        ven_id: str,
        *,
        start: datetime | None = None,
        end: datetime | None = None,
        limit: int = 100,
    ) -> Page[TelemetrySample]:
        t = ven_telemetry.c
        where = [t.ven_id == ven_id]
        if start is not None:
            where.append(t.timestamp >= start)
        if end is not None:
            where.append(t.timestamp < end)
        limit = min(max(limit, 0), MAX_LIMIT)
        async with self._engine.connect() as conn:
            total = await conn.scalar(select(func.count()).select_from(ven_telemetry).where(*where))
            rows = (
                (
                    await conn.execute(
                        select(ven_telemetry)
                        .where(*where)
                        .order_by(t.timestamp.desc())
                        .limit(limit)
                    )
                )
                .mappings()
                .all()
            )
            loads: dict[datetime, list[LoadSample]] = {}
            if rows:
                s = ven_load_samples.c
                for r in (
                    await conn.execute(
                        select(ven_load_samples)
                        .where(
                            s.ven_id == ven_id,
                            s.timestamp >= rows[-1]["timestamp"],
                            s.timestamp <= rows[0]["timestamp"],
                        )
                        .order_by(s.timestamp, s.load_id)
                    )
                ).mappings():
                    loads.setdefault(r["timestamp"], []).append(_load_sample(r))
        samples = tuple(_sample(r, loads.get(r["timestamp"], [])) for r in rows)
        return Page(int(total or 0), samples)

    async def circuit_history(
        self,
        ven_id: str,
        *,
        load_id: str | None = None,
        start: datetime | None = None,
        end: datetime | None = None,
        limit: int = 100,
    ) -> Page[CircuitSnapshot]:
        s = ven_load_samples.c
        where = [s.ven_id == ven_id]
        if load_id is not None:
            where.append(s.load_id == load_id)
        if start is not None:
            where.append(s.timestamp >= start)
        if end is not None:
            where.append(s.timestamp < end)
        limit = min(max(limit, 0), MAX_LIMIT)
        async with self._engine.connect() as conn:
            total = await conn.scalar(
                select(func.count()).select_from(ven_load_samples).where(*where)
            )
            rows = await conn.execute(
                select(
                    s.timestamp,
                    s.load_id,
                    s.name,
                    s.current_power_kw,
                    s.shed_capability_kw,
                    s.enabled,
                )
                .where(*where)
                .order_by(s.timestamp.desc(), s.load_id)
                .limit(limit)
            )
            snapshots = tuple(CircuitSnapshot(**r) for r in rows.mappings())
        return Page(int(total or 0), snapshots)
