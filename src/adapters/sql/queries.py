"""``SqlTelemetryQueries``: the read side of telemetry, aggregated in SQL.

Meaning of the numbers (shared with the in-memory adapter):

- Latest state: see :mod:`adapters.sql.latest`; the fleet summary:
  :mod:`adapters.sql.summary`.
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

from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import (
    Float,
    Integer,
    Select,
    and_,
    case,
    cast,
    extract,
    func,
    literal,
    select,
)
from sqlalchemy.sql.elements import ColumnElement
from sqlalchemy.sql.selectable import FromClause

from adapters.sql.latest import load_sample, rounded, sample_from
from adapters.sql.participation import ParticipationQueries
from adapters.sql.repositories import MAX_LIMIT
from adapters.sql.summary import SummaryQueries
from adapters.sql.tables import (
    ven_interval_events,
    ven_intervals,
    ven_load_samples,
    ven_telemetry,
)
from gridcore.history import HistorySource, history_source
from gridcore.intervals import interval_start
from gridcore.telemetry import (
    MAX_SNAPSHOT_PAGE,
    CircuitSnapshot,
    HistoryPoint,
    LoadSample,
    Page,
    TelemetrySample,
    check_history_range,
)

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


class SqlTelemetryQueries(SummaryQueries, ParticipationQueries):
    """:class:`gridcore.ports.TelemetryQueries` over the SQL schema. Lists are
    capped at 1,000 rows; history at ``MAX_BUCKETS`` buckets."""

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
        raw_since: datetime | None = None,
        source: HistorySource | None = None,
    ) -> list[HistoryPoint]:
        check_history_range(start, end, width)
        source = source or history_source(
            start, end, width, per_load=load_id is not None, raw_since=raw_since
        )
        if end <= start:
            return []
        seconds = int(width.total_seconds())
        if source is HistorySource.INTERVALS:
            per_ven = self._per_ven_from_intervals(start, end, seconds, ven_id)
        else:
            per_ven = self._per_ven_from_samples(start, end, seconds, ven_id, load_id)
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
                used_power_kw=rounded(r["used"]),
                shed_power_kw=rounded(r["shed"]),
                event_id=r["event_id"],
                requested_reduction_kw=rounded(r["requested"]) if r["event_id"] else None,
            )
            for r in rows
        ]

    def _per_ven_from_samples(
        self, start: datetime, end: datetime, seconds: int, ven_id: str | None, load_id: str | None
    ) -> Select[Any]:
        """Each VEN's mean kW per bucket, from the raw samples."""
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
        bucket = self._bucket(stamp, seconds).label("bucket")
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
        return per_ven

    def _per_ven_from_intervals(
        self, start: datetime, end: datetime, seconds: int, ven_id: str | None
    ) -> Select[Any]:
        """Each VEN's mean kW per bucket, from its 5-minute intervals and their
        event marks: a bucket of whole intervals holds the same samples' sums
        and counts as the raw rows (gridcore.history). Every interval that
        overlaps [start, end) counts whole."""
        i, e = ven_intervals.c, ven_interval_events.c
        bucket = self._bucket(i.start, seconds).label("bucket")
        n = cast(func.sum(i.samples), Float)
        marks = ven_intervals.outerjoin(
            ven_interval_events, and_(e.ven_id == i.ven_id, e.start == i.start)
        )
        per_ven = (
            select(
                bucket,
                i.ven_id.label("ven_id"),
                (func.sum(i.used_sum) / n).label("used"),
                (func.sum(i.shed_sum) / n).label("shed"),
                (func.coalesce(func.sum(e.requested_sum), 0.0) / n).label("requested"),
                func.max(e.event_id).label("event_id"),
            )
            .select_from(marks)
            .where(i.start >= interval_start(start), i.start < end)
            .group_by(bucket, i.ven_id)
        )
        if ven_id is not None:
            per_ven = per_ven.where(i.ven_id == ven_id)
        return per_ven

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
                    loads.setdefault(r["timestamp"], []).append(load_sample(r))
        samples = tuple(sample_from(r, loads.get(r["timestamp"], [])) for r in rows)
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
        limit = min(max(limit, 0), MAX_SNAPSHOT_PAGE)
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
                    s.type,
                    s.capacity_kw,
                    s.priority,
                )
                .where(*where)
                .order_by(s.timestamp.desc(), s.load_id)
                .limit(limit)
            )
            snapshots = tuple(CircuitSnapshot(**r) for r in rows.mappings())
        return Page(int(total or 0), snapshots)
