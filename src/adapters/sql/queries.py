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
    null,
    or_,
    select,
    union_all,
)
from sqlalchemy.ext.asyncio import AsyncConnection
from sqlalchemy.sql.elements import ColumnElement
from sqlalchemy.sql.selectable import CompoundSelect, FromClause

from adapters.sql.latest import load_sample, rounded, sample_from
from adapters.sql.participation import ParticipationQueries
from adapters.sql.repositories import MAX_LIMIT
from adapters.sql.summary import SummaryQueries
from adapters.sql.tables import (
    fleet_days,
    fleet_intervals,
    fleet_late,
    fleet_rollup,
    ven_days,
    ven_interval_events,
    ven_intervals,
    ven_load_samples,
    ven_telemetry,
)
from gridcore.errors import InvalidInput
from gridcore.history import (
    DAY,
    FleetPlan,
    HistorySource,
    fleet_plan,
    history_source,
    whole_days,
)
from gridcore.intervals import INTERVAL, interval_start
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
        """The bucket's start: a timestamp on PostgreSQL (grouping by it is
        cheap; ``extract`` yields numeric, a third of a year's read), epoch
        seconds on SQLite; :meth:`_epoch` makes either epoch seconds."""
        if self._engine.dialect.name == "postgresql":
            return func.date_bin(timedelta(seconds=seconds), column, literal(EPOCH))
        # SQLite keeps 'YYYY-MM-DD HH:MM:SS.ffffff' UTC text; whole-second widths
        # aligned to the epoch make the fraction irrelevant. Floor, not truncate.
        epoch = cast(func.strftime("%s", column), Integer)
        return epoch - ((epoch % seconds) + seconds) % seconds

    def _epoch(self, bucket: Any) -> ColumnElement[Any]:
        if self._engine.dialect.name == "postgresql":
            return extract("epoch", bucket)
        return cast(bucket, Integer)

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
        fleet_wide = ven_id is None and load_id is None
        source = source or history_source(
            start,
            end,
            width,
            per_load=load_id is not None,
            raw_since=raw_since,
            fleet_wide=fleet_wide,
        )
        if source is HistorySource.FLEET and not fleet_wide:
            raise InvalidInput("source", "the fleet's roll-ups answer the fleet's history only")
        if end <= start:
            return []
        seconds = int(width.total_seconds())
        per_ven: Select[Any] | CompoundSelect[Any]
        async with self._engine.connect() as conn:
            if source is HistorySource.FLEET:
                # The roll-ups' reach, the marks and the rows from one snapshot.
                if self._engine.dialect.name == "postgresql":
                    await conn.execution_options(isolation_level="REPEATABLE READ")
                plan = await self._fleet_plan(conn, start, end, width)
                if plan is None:
                    per_ven = self._per_ven_from_intervals(start, end, width, None)
                else:
                    per_ven = self._per_ven_from_fleet(plan, width)
            elif source is HistorySource.INTERVALS:
                per_ven = self._per_ven_from_intervals(start, end, width, ven_id)
            else:
                per_ven = self._per_ven_from_samples(start, end, seconds, ven_id, load_id)
            pv = per_ven.subquery()
            query = (
                select(
                    self._epoch(pv.c.bucket).label("bucket"),
                    func.sum(pv.c.used).label("used"),
                    func.sum(pv.c.shed).label("shed"),
                    func.sum(pv.c.requested).label("requested"),
                    func.max(pv.c.event_id).label("event_id"),
                )
                .group_by(pv.c.bucket)
                .order_by(pv.c.bucket)
            )
            rows = (await conn.execute(query)).mappings().all()
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

    async def _fleet_plan(
        self, conn: AsyncConnection, start: datetime, end: datetime, width: timedelta
    ) -> FleetPlan | None:
        """How far the fleet's roll-ups reach and which of the range's buckets
        late telemetry marked (gridcore.history.fleet_plan)."""
        if width not in (INTERVAL, DAY):
            return None
        rolled = await conn.scalar(
            select(fleet_rollup.c.rolled_through).where(fleet_rollup.c.id == 1)
        )
        if rolled is None or rolled <= interval_start(start):
            return None
        late = fleet_late.c.start
        marked = await conn.scalars(
            select(late).distinct().where(late >= interval_start(start), late < min(end, rolled))
        )
        return fleet_plan(start, end, width, rolled, marked.all())

    def _per_ven_from_fleet(self, plan: FleetPlan, width: timedelta) -> CompoundSelect[Any]:
        """The rolled-up buckets as one row each (the fleet's sums: the outer
        sum leaves them as they are), and the live spans per VEN."""
        table = fleet_intervals if width == INTERVAL else fleet_days
        key = table.c.start if width == INTERVAL else table.c.day
        rolled = select(
            self._bucket(key, int(width.total_seconds())).label("bucket"),
            literal("").label("ven_id"),
            table.c.used_kw.label("used"),
            table.c.shed_kw.label("shed"),
            table.c.requested_kw.label("requested"),
            table.c.event_id,
        ).where(key >= plan.rolled[0], key < plan.rolled[1])
        if plan.skip:
            rolled = rolled.where(key.not_in(plan.skip))
        live = [self._per_ven_from_intervals(lo, hi, width, None) for lo, hi in plan.live]
        return union_all(rolled, *live)

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
            # the timestamp too: it prunes each lookup to one day's partition
            source = ven_load_samples.join(
                ven_telemetry, (t.id == s.telemetry_id) & (t.timestamp == s.timestamp)
            )
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
        self, start: datetime, end: datetime, width: timedelta, ven_id: str | None
    ) -> Select[Any]:
        """Each VEN's mean kW per bucket, from its 5-minute intervals and their
        event marks: a bucket of whole intervals holds the same samples' sums
        and counts as the raw rows (gridcore.history). Every interval that
        overlaps [start, end) counts whole. Buckets of whole days read the
        range's whole days from ``ven_days``, only its partial days' intervals."""
        i, e, d = ven_intervals.c, ven_interval_events.c, ven_days.c
        days = whole_days(start, end, width)
        first = interval_start(start)
        # The partial days at either end (none: the days answer it all), each a
        # range the primary key or the BRIN index on start can read. The event
        # marks are rows of their own (no samples), not a join: a join made
        # PostgreSQL hash every mark of the table.
        edges = [(first, end)] if days is None else [(first, days[0]), (days[1], end)]
        edges = [(lo, hi) for lo, hi in edges if lo < hi]
        zero = literal(0.0, Float)
        parts: list[Select[Any]] = []
        if edges:
            sums = select(
                i.ven_id,
                i.start.label("at"),
                i.samples,
                i.used_sum,
                i.shed_sum,
                zero.label("requested_sum"),
                cast(null(), e.event_id.type).label("event_id"),
            ).where(or_(*(and_(i.start >= lo, i.start < hi) for lo, hi in edges)))
            marks = select(
                e.ven_id,
                e.start.label("at"),
                literal(0, Integer).label("samples"),
                zero.label("used_sum"),
                zero.label("shed_sum"),
                e.requested_sum,
                e.event_id,
            ).where(or_(*(and_(e.start >= lo, e.start < hi) for lo, hi in edges)))
            if ven_id is not None:
                sums, marks = sums.where(i.ven_id == ven_id), marks.where(e.ven_id == ven_id)
            parts += [sums, marks]
        if days is not None:
            whole = select(
                d.ven_id,
                d.day.label("at"),
                d.samples,
                d.used_sum,
                d.shed_sum,
                d.requested_sum,
                d.event_id,
            ).where(d.day >= days[0], d.day < days[1])
            if ven_id is not None:
                whole = whole.where(d.ven_id == ven_id)
            if not parts and width == DAY:
                # Daily points of whole days: each row is its VEN's bucket already
                # (a year of the fleet: one pass, no grouping per VEN).
                n = cast(d.samples, Float)
                return whole.with_only_columns(
                    self._bucket(d.day, 86_400).label("bucket"),
                    d.ven_id,
                    (d.used_sum / n).label("used"),
                    (d.shed_sum / n).label("shed"),
                    (d.requested_sum / n).label("requested"),
                    d.event_id,
                )
            parts.append(whole)
        rows = union_all(*parts).subquery() if len(parts) > 1 else parts[0].subquery()
        bucket = self._bucket(rows.c.at, int(width.total_seconds())).label("bucket")
        n = cast(func.sum(rows.c.samples), Float)
        return select(
            bucket,
            rows.c.ven_id,
            (func.sum(rows.c.used_sum) / n).label("used"),
            (func.sum(rows.c.shed_sum) / n).label("shed"),
            (func.sum(rows.c.requested_sum) / n).label("requested"),
            func.max(rows.c.event_id).label("event_id"),
        ).group_by(bucket, rows.c.ven_id)

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
