"""Latest-state reads: each VEN's newest message (``ven_latest``) and the load
rows of that message, merged with the operator's load configuration
(configuration wins for name, type, capacity, priority, critical). One row per
VEN plus a primary-key lookup per VEN: never a history scan."""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import (
    BigInteger,
    Select,
    String,
    and_,
    bindparam,
    case,
    false,
    func,
    or_,
    select,
    text,
    true,
)
from sqlalchemy.dialects.postgresql import array
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine
from sqlalchemy.sql.elements import BindParameter
from sqlalchemy.types import NullType

from adapters.sql.energy import completed_today_kwh, today_kwh
from adapters.sql.recent import Recent
from adapters.sql.repositories import MAX_LIMIT, SqlVenRepository, answered_last
from adapters.sql.tables import (
    PANEL_FIELDS,
    events,
    ven_intervals,
    ven_latest,
    ven_load_samples,
    ven_loads,
    vens,
)
from gridcore.intervals import (
    MAX_INTERVAL_VENS,
    IntervalReading,
    MeterSeries,
    check_interval_range,
    spans_range,
)
from gridcore.network import delivery_percent
from gridcore.summary import VenState
from gridcore.telemetry import (
    LatestPanel,
    LoadSample,
    LoadTypeStats,
    NetworkStats,
    TelemetrySample,
)
from gridcore.ven import Load, Ven

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


# ven_latest's columns of a gridcore.telemetry.LatestPanel (beside ven_id).
_PANEL_COLUMNS = (
    "timestamp",
    "used_power_kw",
    "shed_power_kw",
    "requested_reduction_kw",
    "event_id",
)


def rounded(value: Any) -> float:
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
            c.targets,  # configuration only: a VEN never grants itself targets
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


def load_sample(row: Any) -> LoadSample:
    return LoadSample(load_id=row["load_id"], **{f: row[f] for f in _LOAD_SAMPLE_FIELDS})


def sample_from(row: Any, loads: list[LoadSample]) -> TelemetrySample:
    return TelemetrySample(
        ven_id=row["ven_id"],
        timestamp=row["timestamp"],
        loads=tuple(loads),
        raw_payload=row["raw_payload"],
        **{f: row[f] for f in PANEL_FIELDS},
    )


# The VEN list's and a VEN page's statements, built once per dialect with
# the VENs as an expanding parameter: building them per request (a lateral
# join of a merged subquery) cost the API more CPU than running them.
_WANTED: BindParameter[list[str]] = bindparam("wanted", expanding=True)


@functools.cache
def _loads_statement(dialect: str) -> Select[Any]:
    """Each wanted VEN's latest loads merged with configuration, by VEN and load."""
    merged = _merged_latest_loads()
    if dialect == "postgresql":
        # Per VEN, a probe of the samples' primary key at its newest
        # timestamp. Left to itself the planner hash-joins every stored
        # sample (108 ms a page of 1,000 VENs over 1.2 million rows).
        heads = select(ven_latest.c.ven_id).where(ven_latest.c.ven_id.in_(_WANTED)).cte("heads")
        lines = merged.where(ven_latest.c.ven_id == heads.c.ven_id).correlate(heads).lateral()
        loads = select(lines).select_from(heads.join(lines, true())).subquery()
    else:  # SQLite loops over the index by itself
        loads = merged.where(ven_latest.c.ven_id.in_(_WANTED)).subquery()
    return select(loads).order_by(loads.c.ven_id, loads.c.load_id)


@functools.cache
def _heads_statement(dialect: str) -> Select[Any]:
    """Per wanted registered VEN: its newest panel reading and the sent and
    ACK times of the command it answered last, driven by the registry."""
    c = ven_latest.c
    answer = answered_last(vens.c.id, "acked_at", "first_sent_at").correlate(vens)
    source = vens.outerjoin(ven_latest, c.ven_id == vens.c.id)
    last: list[Any]
    if dialect == "postgresql":
        answered = answer.lateral("last_answer")
        source, last = source.outerjoin(answered, true()), list(answered.c)
    else:  # SQLite has no LATERAL: a subquery per column (one index probe each)
        last = [
            answer.with_only_columns(column).scalar_subquery().label(column.name)
            for column in answer.selected_columns
        ]
    return (
        select(vens.c.id, *(c[name] for name in _PANEL_COLUMNS), *last)
        .select_from(source)
        .where(vens.c.id.in_(_WANTED))
    )


class LatestStateQueries:
    """The latest-state half of :class:`gridcore.ports.TelemetryQueries`."""

    def __init__(self, engine: AsyncEngine, *, loads_max_age: float = 0.0) -> None:
        """``loads_max_age``: seconds the fleet-wide figures (``network_stats``,
        ``load_type_stats``) may be answered from the last read of them
        (:mod:`adapters.sql.recent`)."""
        self._engine = engine
        self._max_age = loads_max_age
        self._network: dict[timedelta, Recent[NetworkStats]] = {}
        self._load_types = Recent(self._read_load_type_stats, loads_max_age)

    async def _all(self, query: Any) -> list[Any]:
        async with self._engine.connect() as conn:
            return list((await conn.execute(query)).mappings().all())

    async def network_stats(self, now: datetime, offline_after: timedelta) -> NetworkStats:
        """Held up to ``loads_max_age`` (then read again by one caller while the
        others get the held figures, whose ``now`` is that of the read): every
        VEN reports every few seconds, so the figures are that old anyway, and
        twenty dashboards polling cost one read per process, not twenty."""

        def read() -> Awaitable[NetworkStats]:
            return self._read_network_stats(now, offline_after)

        held = self._network.get(offline_after)
        if held is None:
            held = self._network[offline_after] = Recent(read, self._max_age)
        return await held.get(read)  # a refresh is read as of its caller's now

    async def _read_network_stats(self, now: datetime, offline_after: timedelta) -> NetworkStats:
        cutoff = now - offline_after
        registered = select(
            func.count().label("vens"),
            func.coalesce(func.sum(case((vens.c.last_seen_at >= cutoff, 1), else_=0)), 0).label(
                "online"
            ),
        ).select_from(vens)
        current = ven_latest.c.timestamp >= cutoff  # gridcore.network.is_current
        usage = (
            select(
                func.sum(func.coalesce(ven_latest.c.used_power_kw, 0.0)).label("usage"),
                func.count().label("reporting"),
                func.sum(
                    case((current, func.coalesce(ven_latest.c.shed_power_kw, 0.0)), else_=0.0)
                ).label("reduction"),
            )
            .select_from(ven_latest)
            .join(vens, vens.c.id == ven_latest.c.ven_id)
        )
        dispatched = (
            select(events.c.requested_reduction_kw, events.c.actual_reduction_kw)
            .where(events.c.activated_at.is_not(None))
            .order_by(events.c.start_time.desc(), events.c.event_id.desc())
            .limit(1)
        )  # gridcore.network.latest_dispatched
        # One statement, one round trip: each part is a pass over a small
        # table (vens, ven_latest) or an index probe (the latest event).
        counts, used = registered.subquery("counts"), usage.subquery("used")
        dialect = self._engine.dialect.name
        everything = select(
            counts.c.vens,
            counts.c.online,
            used.c.usage,
            used.c.reporting,
            used.c.reduction,
            *(
                dispatched.with_only_columns(column).scalar_subquery().label(column.name)
                for column in (events.c.requested_reduction_kw, events.c.actual_reduction_kw)
            ),
            today_kwh(dialect, now, offline_after).scalar_subquery().label("running"),
            completed_today_kwh(now).scalar_subquery().label("completed"),
        ).select_from(counts.join(used, true()))
        async with self._engine.connect() as conn:
            row = (await conn.execute(everything)).mappings().one()
            power = await self._capability(conn)
        # gridcore.energy.energy_today: the running days and the completed ones.
        today = float(row["running"] or 0.0) + float(row["completed"] or 0.0)
        requested = row["requested_reduction_kw"]
        latest_event = None if requested is None else (requested, row["actual_reduction_kw"])
        reporting = int(row["reporting"])
        return NetworkStats(
            ven_count=int(row["vens"]),
            online_vens=int(row["online"]),
            controllable_power_kw=rounded(power["controllable"]),
            potential_load_reduction_kw=rounded(power["potential"]),
            household_usage_kw=rounded(row["usage"]),
            average_house_power=rounded(float(row["usage"] or 0.0) / reporting)
            if reporting
            else None,
            current_load_reduction_kw=rounded(row["reduction"]),
            network_efficiency=delivery_percent(*latest_event) if latest_event else None,
            total_house_power_today=rounded(today),
        )

    async def _capability(self, conn: AsyncConnection) -> Any:
        """What the fleet's latest load rows can control and shed: the
        expensive part of the network stats (every VEN's loads)."""
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
        return (await conn.execute(capability)).mappings().one()

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
        return {r["id"]: rounded(r["shed"]) for r in rows}

    async def load_type_stats(self) -> list[LoadTypeStats]:
        return await self._load_types.get()

    async def _read_load_type_stats(self) -> list[LoadTypeStats]:
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
            LoadTypeStats(
                r["type"], rounded(r["capacity"]), rounded(r["shed"]), rounded(r["usage"])
            )
            for r in rows
        ]

    async def latest_loads(self, ven_id: str) -> list[Load]:
        return (await self.latest_loads_many([ven_id])).get(ven_id, [])

    async def latest_loads_many(self, ven_ids: Sequence[str]) -> dict[str, list[Load]]:
        wanted = sorted(set(ven_ids))[:MAX_LIMIT]
        if not wanted:
            return {}
        async with self._engine.connect() as conn:
            return await self._loads_of(conn, wanted)

    async def _loads_of(self, conn: AsyncConnection, wanted: list[str]) -> dict[str, list[Load]]:
        query = _loads_statement(self._engine.dialect.name)
        rows = (await conn.execute(query, {"wanted": wanted})).all()
        by_ven: dict[str, list[Load]] = {}
        # Unpacked by position: a Row's attribute access costs about 1 µs (a
        # page of 100 VENs reads 1,000 rows of 11 columns), a tuple's 0.02.
        for (
            ven_id,
            load_id,
            type_,
            name,
            capacity_kw,
            shed_capability_kw,
            current_power_kw,
            priority,
            critical,
            enabled,
            breaker_amps,
            targets,
            _effective_capacity_kw,
        ) in rows:
            by_ven.setdefault(ven_id, []).append(
                Load(
                    id=load_id,
                    type=type_,
                    name=name,
                    capacity_kw=capacity_kw,
                    shed_capability_kw=shed_capability_kw,
                    current_power_kw=current_power_kw,
                    priority=priority,
                    critical=bool(critical),
                    enabled=bool(enabled),
                    breaker_amps=breaker_amps,
                    targets=tuple(targets or ()),
                )
            )
        return by_ven

    async def ven_states(self, ven_ids: Sequence[str]) -> dict[str, VenState]:
        wanted = sorted(set(ven_ids))[:MAX_LIMIT]
        if not wanted:
            return {}
        async with self._engine.connect() as conn:
            return await self._states_of(conn, wanted)

    async def ven_view(self, ven_id: str) -> tuple[Ven, VenState] | None:
        async with self._engine.connect() as conn:
            ven = await SqlVenRepository(conn).get(ven_id)
            if ven is None:
                return None
            states = await self._states_of(conn, [ven_id])
        return ven, states.get(ven_id, VenState())

    async def _states_of(self, conn: AsyncConnection, wanted: list[str]) -> dict[str, VenState]:
        loads = await self._loads_of(conn, wanted)
        heads = _heads_statement(self._engine.dialect.name)
        rows = (await conn.execute(heads, {"wanted": wanted})).mappings().all()
        states: dict[str, VenState] = {}
        for r in rows:
            sent, acked = r["first_sent_at"], r["acked_at"]
            panel = None
            if r["timestamp"] is not None:
                panel = LatestPanel(r["id"], **{name: r[name] for name in _PANEL_COLUMNS})
            states[r["id"]] = VenState(
                loads=tuple(loads.get(r["id"], ())),
                panel=panel,
                round_trip=acked - sent if acked is not None and sent is not None else None,
            )
        return states

    async def intervals(
        self,
        ven_ids: Sequence[str],
        start: datetime,
        end: datetime,
        *,
        spans: Sequence[tuple[datetime, datetime]] | None = None,
    ) -> dict[str, list[IntervalReading]]:
        check_interval_range(start, end, spans)
        wanted = sorted(set(ven_ids))[:MAX_INTERVAL_VENS]
        if not wanted:
            return {}
        c = ven_intervals.c
        where = [c.ven_id.in_(wanted), c.start >= start, c.start < end]
        if spans is not None:
            where.append(or_(*(and_(c.start >= lo, c.start < hi) for lo, hi in spans)))
        # gridcore.intervals.IntervalReading.of, computed by the store.
        means = (
            c.samples,
            c.used_sum / func.nullif(c.used_count, 0),
            c.used_min,
            c.used_max,
            c.shed_sum / func.nullif(c.shed_count, 0),
            c.baseline_sum / func.nullif(c.baseline_count, 0),
        )
        found: dict[str, list[IntervalReading]] = {}
        async with self._engine.connect() as conn:
            rows = await conn.execute(
                select(c.ven_id, c.start, *means).where(*where).order_by(c.ven_id, c.start)
            )
            for ven_id, *reading in rows:
                found.setdefault(ven_id, []).append(IntervalReading(*reading))
        return found

    async def meter_series(
        self, ven_ids: Sequence[str], spans: Sequence[tuple[datetime, datetime]]
    ) -> dict[str, MeterSeries]:
        first, last = spans_range(spans)
        if self._engine.dialect.name != "postgresql":  # SQLite: a few VENs, the plain read
            read = await self.intervals(ven_ids, first, last, spans=spans)
            return {ven_id: MeterSeries.of(readings) for ven_id, readings in read.items()}
        wanted = sorted(set(ven_ids))[:MAX_INTERVAL_VENS]
        if not wanted:
            return {}
        # Per VEN, its intervals in the spans through the primary key, into
        # arrays in time order: a fleet's ten days are millions of intervals,
        # which the driver decodes in C where a row each would cost a Python
        # object. One VEN at a time needs no sort of them all (grouping 1.5
        # million intervals by VEN spilled to disk), and only the columns
        # measurement reads travel.
        c = ven_intervals.c
        ids = (
            func.unnest(array(wanted, type_=String)).table_valued("ven_id").render_derived("wanted")
        )
        ordered = (
            select(
                func.extract("epoch", c.start).cast(BigInteger).label("epoch"),
                c.samples.label("samples"),
                (c.used_sum / func.nullif(c.used_count, 0)).label("used"),
                (c.baseline_sum / func.nullif(c.baseline_count, 0)).label("reported"),
            )
            .where(
                c.ven_id == ids.c.ven_id,
                c.start >= first,
                c.start < last,
                or_(*(and_(c.start >= lo, c.start < hi) for lo, hi in spans)),
            )
            # Sorted once, here, for the four arrays (array_agg(... ORDER BY)
            # sorts once per array: a quarter more of the server's time).
            .order_by(c.start)
            .correlate(ids)  # to the VEN two levels up, not a FROM of its own
            .subquery("ordered")
        )
        arrays = (
            # NullType: the driver's lists as they come, not walked again item by item.
            select(*(func.array_agg(v, type_=NullType()) for v in ordered.c)).lateral("series")
        )
        found: dict[str, MeterSeries] = {}
        starts: dict[int, datetime] = {}
        shared: tuple[list[int], list[datetime], dict[datetime, int]] | None = None
        async with self._engine.connect() as conn:
            # The plan's cost counts every interval: JIT-compiling it took
            # longer than running it (as for the fleet summary).
            await conn.execute(text("SET LOCAL jit = off"))
            result = await conn.execute(
                select(ids.c.ven_id, arrays).select_from(ids.join(arrays, true()))
            )
            for ven_id, stamps, samples, used, reported in result:
                if not stamps:
                    continue
                # Each distinct start becomes one datetime, shared by every VEN;
                # VENs with the same intervals (most of a fleet) share their index.
                if shared is None or stamps != shared[0]:
                    at = [
                        starts.get(s) or starts.setdefault(s, datetime.fromtimestamp(s, UTC))
                        for s in stamps
                    ]
                    shared = (stamps, at, MeterSeries.index_of(at))
                found[ven_id] = MeterSeries(shared[1], samples, used, reported, index=shared[2])
        return found

    async def latest_panels(self, ven_ids: Sequence[str]) -> dict[str, LatestPanel]:
        wanted = sorted(set(ven_ids))[:MAX_LIMIT]
        if not wanted:
            return {}
        c = ven_latest.c
        rows = await self._all(
            select(c.ven_id, *(c[name] for name in _PANEL_COLUMNS)).where(c.ven_id.in_(wanted))
        )
        return {r["ven_id"]: LatestPanel(**r) for r in rows}
