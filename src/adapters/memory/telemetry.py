"""In-memory telemetry store and queries, with the same meaning as the SQL ones.

History semantics (shared with the SQL adapter): within a bucket each VEN's
samples are averaged (a kW reading repeated every 5 s is still the same kW),
and the network point is the sum of those averages over VENs.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta

from adapters.memory.participation import InMemoryParticipationQueries
from adapters.memory.repositories import InMemoryState
from gridcore.energy import Reading, batch_energy, day_start, energy_today
from gridcore.errors import InvalidInput
from gridcore.history import (
    DayTotals,
    FleetTotals,
    HistorySource,
    IntervalEvents,
    day_of,
    fleet_plan,
    history_source,
    late_intervals,
    whole_days,
)
from gridcore.intervals import (
    INTERVAL,
    MAX_INTERVAL_VENS,
    IntervalReading,
    IntervalTotals,
    MeterSeries,
    check_interval_range,
    in_spans,
    interval_start,
    spans_range,
)
from gridcore.listing import ALL, VenListing
from gridcore.network import current_reduction_kw, delivery_percent, latest_dispatched
from gridcore.ports import NOT_REGISTERED, AppendResult
from gridcore.summary import (
    MAX_FLEET_PAGE,
    VenState,
    VenSummary,
    newest_answered,
    summarize,
)
from gridcore.telemetry import (
    MAX_SNAPSHOT_PAGE,
    CircuitSnapshot,
    HistoryPoint,
    LatestPanel,
    LoadSample,
    LoadTypeStats,
    NetworkStats,
    Page,
    TelemetrySample,
    bucket_start,
    check_history_range,
    page_bounds,
)
from gridcore.ven import (
    DEFAULT_OFFLINE_AFTER,
    Connectivity,
    Load,
    Ven,
    available_shed_kw,
    connectivity,
)

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


@dataclass
class InMemoryTelemetry:
    """Stored samples by (VEN, timestamp), and each VEN's newest sample.

    A VEN's current loads are the loads of its newest sample (VENs report every
    circuit in every message), as in the SQL adapter."""

    samples: dict[tuple[str, datetime], TelemetrySample] = field(default_factory=dict)
    latest: dict[str, TelemetrySample] = field(default_factory=dict)
    # kWh per (UTC day, VEN), kept up as telemetry arrives (gridcore.energy).
    energy: dict[tuple[datetime, str], float] = field(default_factory=dict)
    # 5-minute intervals per (VEN, start), kept up as telemetry arrives.
    intervals: dict[tuple[str, datetime], IntervalTotals] = field(default_factory=dict)
    # Their event marks (gridcore.history), only where a sample carried one.
    interval_events: dict[tuple[str, datetime], IntervalEvents] = field(default_factory=dict)
    # And per UTC day (gridcore.history.DayTotals).
    days: dict[tuple[str, datetime], DayTotals] = field(default_factory=dict)
    # The fleet's roll-ups (gridcore.history.FleetTotals), made up to
    # rolled_through by InMemoryHistoryRollup; the intervals late telemetry marked.
    fleet_intervals: dict[datetime, FleetTotals] = field(default_factory=dict)
    fleet_days: dict[datetime, FleetTotals] = field(default_factory=dict)
    rolled_through: datetime | None = None
    late: list[datetime] = field(default_factory=list)


class InMemoryTelemetryStore:
    def __init__(
        self,
        state: InMemoryState,
        telemetry: InMemoryTelemetry,
        *,
        max_hold: timedelta = DEFAULT_OFFLINE_AFTER,
    ) -> None:
        self._state = state
        self._telemetry = telemetry
        self._max_hold = max_hold  # how long a reading counts for energy

    async def append(
        self, samples: Sequence[TelemetrySample], *, auto_register: bool = True
    ) -> AppendResult:
        stored = duplicates = 0
        refused: list[TelemetrySample] = []
        reasons: list[str] = []
        before: dict[str, Reading | None] = {}  # each VEN's newest reading before the batch
        fresh: list[tuple[str, Reading]] = []
        for sample in samples:
            ven = self._state.vens.get(sample.ven_id)
            if ven is None:
                if not auto_register:
                    refused.append(sample)
                    reasons.append(NOT_REGISTERED)
                    continue
                try:
                    ven = Ven(id=sample.ven_id, name=sample.ven_id, registered_at=sample.timestamp)
                except InvalidInput as exc:
                    refused.append(sample)  # an id that cannot be a VEN; the rest goes on
                    reasons.append(str(exc))
                    continue
            key = (sample.ven_id, sample.timestamp)
            if key in self._telemetry.samples:
                duplicates += 1
                continue
            self._telemetry.samples[key] = sample
            self._state.vens[sample.ven_id] = ven.heard_from(sample.heard_at)
            newest = self._telemetry.latest.get(sample.ven_id)
            if sample.ven_id not in before:
                before[sample.ven_id] = (
                    None if newest is None else Reading(newest.timestamp, newest.used_power_kw)
                )
            fresh.append((sample.ven_id, Reading(sample.timestamp, sample.used_power_kw)))
            if (
                newest is None
                or newest.timestamp < sample.timestamp
                # stamped after this one arrived: a clock running ahead, it yields
                or (sample.received_at is not None and newest.timestamp > sample.received_at)
            ):
                self._telemetry.latest[sample.ven_id] = sample
            self._add_to_interval(sample)
            stored += 1
        energy = self._telemetry.energy
        previous = {ven_id: r for ven_id, r in before.items() if r is not None}
        for slot, kwh in batch_energy(fresh, previous, self._max_hold).items():
            energy[slot] = energy.get(slot, 0.0) + kwh
        return AppendResult(stored, duplicates, tuple(refused), tuple(reasons))

    def _add_to_interval(self, sample: TelemetrySample) -> None:
        key = (sample.ven_id, interval_start(sample.timestamp))
        one = IntervalTotals.of(
            sample.used_power_kw, sample.shed_power_kw, sample.baseline_power_kw
        )
        held = self._telemetry.intervals.get(key)
        self._telemetry.intervals[key] = one if held is None else held.merge(one)
        self._telemetry.late.extend(late_intervals([key[1]], self._telemetry.rolled_through))
        mark = IntervalEvents.of(sample.event_id, sample.requested_reduction_kw)
        if mark is not None:
            marks = self._telemetry.interval_events
            marks[key] = mark if key not in marks else marks[key].merge(mark)
        day = (sample.ven_id, day_of(sample.timestamp))
        days, total = self._telemetry.days, DayTotals.of(one, mark)
        days[day] = total if day not in days else days[day].merge(total)


def _load_from(sample: LoadSample, config: Load | None) -> Load:
    """Reported values, with the operator's configuration taking precedence for
    what is configuration (name, type, priority, critical, capacity)."""
    return Load(
        id=sample.load_id,
        type=(config.type if config else None) or sample.type or "other",
        name=(config.name if config else None) or sample.name,
        capacity_kw=(config.capacity_kw if config else None) or sample.capacity_kw,
        shed_capability_kw=sample.shed_capability_kw or 0.0,
        current_power_kw=sample.current_power_kw or 0.0,
        priority=config.priority if config and config.priority is not None else sample.priority,
        critical=bool(config.critical if config else sample.critical),
        enabled=sample.enabled if sample.enabled is not None else True,
        breaker_amps=sample.breaker_amps,
        targets=config.targets if config else (),
    )


class InMemoryTelemetryQueries(InMemoryParticipationQueries):
    def __init__(self, state: InMemoryState, telemetry: InMemoryTelemetry) -> None:
        self._state = state
        self._telemetry = telemetry

    def _latest_loads_by_ven(self) -> dict[str, list[Load]]:
        return {
            ven_id: [
                _load_from(load, self._state.loads.get((ven_id, load.load_id)))
                for load in sample.loads
            ]
            for ven_id, sample in self._telemetry.latest.items()
        }

    def _latest_samples(self) -> dict[str, TelemetrySample]:
        return self._telemetry.latest

    async def network_stats(self, now: datetime, offline_after: timedelta) -> NetworkStats:
        vens = self._state.vens
        online = sum(
            1
            for v in vens.values()
            if connectivity(v.last_seen_at, now, offline_after) is Connectivity.ONLINE
        )
        latest = {k: s for k, s in self._latest_samples().items() if k in vens}
        loads = {k: v for k, v in self._latest_loads_by_ven().items() if k in vens}
        usage = sum(s.used_power_kw or 0.0 for s in latest.values())
        controllable = sum(
            load.effective_capacity_kw
            for ven_loads in loads.values()
            for load in ven_loads
            if not load.critical
        )
        potential = sum(available_shed_kw(ven_loads) for ven_loads in loads.values())
        shed = (Reading(s.timestamp, s.shed_power_kw) for s in latest.values())
        used = (Reading(s.timestamp, s.used_power_kw) for s in latest.values())
        days: dict[datetime, float] = defaultdict(float)
        for (day, ven_id), kwh in self._telemetry.energy.items():
            if ven_id in vens and day == day_start(now):
                days[day] += kwh
        today = energy_today(days, used, now=now, max_hold=offline_after)
        event = latest_dispatched(self._state.events.values())
        return NetworkStats(
            ven_count=len(vens),
            online_vens=online,
            controllable_power_kw=round(controllable, 3),
            potential_load_reduction_kw=round(potential, 3),
            household_usage_kw=round(usage, 3),
            average_house_power=round(usage / len(latest), 3) if latest else None,
            current_load_reduction_kw=round(current_reduction_kw(shed, now, offline_after), 3),
            network_efficiency=None
            if event is None
            else delivery_percent(event.requested_reduction_kw, event.actual_reduction_kw),
            total_house_power_today=round(today, 3),
        )

    async def available_shed(self, now: datetime, offline_after: timedelta) -> dict[str, float]:
        loads = self._latest_loads_by_ven()
        return {
            ven.id: round(available_shed_kw(loads.get(ven.id, [])), 3)
            for ven in self._state.vens.values()
            if ven.enabled
            and connectivity(ven.last_seen_at, now, offline_after) is Connectivity.ONLINE
        }

    async def load_type_stats(self) -> list[LoadTypeStats]:
        totals: dict[str, list[float]] = defaultdict(lambda: [0.0, 0.0, 0.0])
        for ven_id, ven_loads in self._latest_loads_by_ven().items():
            if ven_id not in self._state.vens:
                continue
            for load in ven_loads:
                row = totals[load.type]
                row[0] += load.effective_capacity_kw
                row[1] += load.shed_capability_kw
                row[2] += load.current_power_kw
        return [
            LoadTypeStats(t, round(c, 3), round(s, 3), round(u, 3))
            for t, (c, s, u) in sorted(totals.items())
        ]

    async def latest_loads(self, ven_id: str) -> list[Load]:
        return sorted(self._latest_loads_by_ven().get(ven_id, []), key=lambda load: load.id)

    async def latest_loads_many(self, ven_ids: Sequence[str]) -> dict[str, list[Load]]:
        wanted = set(ven_ids)
        return {
            ven_id: sorted(loads, key=lambda load: load.id)
            for ven_id, loads in self._latest_loads_by_ven().items()
            if ven_id in wanted
        }

    async def intervals(
        self,
        ven_ids: Sequence[str],
        start: datetime,
        end: datetime,
        *,
        spans: Sequence[tuple[datetime, datetime]] | None = None,
    ) -> dict[str, list[IntervalReading]]:
        check_interval_range(start, end, spans)
        wanted = set(sorted(set(ven_ids))[:MAX_INTERVAL_VENS])
        found: dict[str, list[IntervalReading]] = {}
        for (ven_id, at), totals in sorted(self._telemetry.intervals.items()):
            if ven_id in wanted and start <= at < end and in_spans(at, spans):
                found.setdefault(ven_id, []).append(IntervalReading.of(at, totals))
        return found

    async def meter_series(
        self, ven_ids: Sequence[str], spans: Sequence[tuple[datetime, datetime]]
    ) -> dict[str, MeterSeries]:
        found = await self.intervals(ven_ids, *spans_range(spans), spans=spans)
        return {ven_id: MeterSeries.of(readings) for ven_id, readings in found.items()}

    async def latest_panels(self, ven_ids: Sequence[str]) -> dict[str, LatestPanel]:
        wanted = set(ven_ids)
        return {k: LatestPanel.of(s) for k, s in self._latest_samples().items() if k in wanted}

    async def ven_states(self, ven_ids: Sequence[str]) -> dict[str, VenState]:
        wanted = set(ven_ids) & set(self._state.vens)  # registered VENs only
        loads = await self.latest_loads_many(sorted(wanted))
        panels = await self.latest_panels(sorted(wanted))
        answered = newest_answered(c for c in self._state.commands.values() if c.ven_id in wanted)
        return {
            ven_id: VenState(
                loads=tuple(loads.get(ven_id, ())),
                panel=panels.get(ven_id),
                round_trip=answered[ven_id].response_time if ven_id in answered else None,
            )
            for ven_id in wanted
        }

    async def ven_view(self, ven_id: str) -> tuple[Ven, VenState] | None:
        ven = self._state.vens.get(ven_id)
        if ven is None:
            return None
        configured = sorted(
            (load for (owner, _), load in self._state.loads.items() if owner == ven_id),
            key=lambda load: load.id,
        )
        return replace(ven, loads=tuple(configured)), (await self.ven_states([ven_id]))[ven_id]

    async def ven_summaries(
        self, *, offset: int = 0, limit: int = MAX_FLEET_PAGE, listing: VenListing = ALL
    ) -> Page[VenSummary]:
        vens = listing.arrange(list(self._state.vens.values()))
        offset, limit = max(offset, 0), min(max(limit, 0), MAX_FLEET_PAGE)
        configured: dict[str, list[Load]] = defaultdict(list)
        for (ven_id, _), load in sorted(self._state.loads.items()):
            configured[ven_id].append(load)
        reported = self._latest_loads_by_ven()
        answered = newest_answered(self._state.commands.values())
        return Page(
            len(vens),
            tuple(
                summarize(
                    replace(ven, loads=tuple(configured[ven.id])),
                    reported.get(ven.id, []),
                    self._telemetry.latest.get(ven.id),
                    answered.get(ven.id),
                )
                for ven in vens[offset : offset + limit]
            ),
        )

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
            start,
            end,
            width,
            per_load=load_id is not None,
            raw_since=raw_since,
            fleet_wide=ven_id is None and load_id is None,
        )
        # bucket -> ven -> [used, shed, requested sums, samples]; bucket -> greatest event id
        acc: dict[datetime, dict[str, list[float]]] = defaultdict(dict)
        events: dict[datetime, str] = {}

        def add(
            at: datetime, sid: str, sums: tuple[float, float, float, int], event: str | None
        ) -> None:
            bucket = bucket_start(at, width, EPOCH)
            row = acc[bucket].setdefault(sid, [0.0, 0.0, 0.0, 0.0])
            for i, value in enumerate(sums):
                row[i] += value
            if event and events.get(bucket, "") < event:
                events[bucket] = event

        if source is HistorySource.FLEET:
            if ven_id is not None or load_id is not None:
                raise InvalidInput("source", "the fleet's roll-ups answer the fleet's history only")
            t = self._telemetry
            plan = fleet_plan(start, end, width, t.rolled_through, t.late)
            if plan is None:
                self._from_intervals(add, start, end, width, None)
            else:
                rolled = t.fleet_intervals if width == INTERVAL else t.fleet_days
                lo, hi = plan.rolled
                for at, f in rolled.items():
                    if lo <= at < hi and at not in plan.skip:
                        add(at, "", (f.used_kw, f.shed_kw, f.requested_kw, 1), f.event_id)
                for lo, hi in plan.live:
                    self._from_intervals(add, lo, hi, width, None)
        elif source is HistorySource.INTERVALS:
            self._from_intervals(add, start, end, width, ven_id)
        else:
            for (sid, ts), sample in self._telemetry.samples.items():
                if not start <= ts < end or (ven_id is not None and sid != ven_id):
                    continue
                used, shed = sample.used_power_kw, sample.shed_power_kw
                if load_id is not None:
                    line = next((ld for ld in sample.loads if ld.load_id == load_id), None)
                    if line is None:
                        continue
                    # A load is shed while the VEN reports it disabled; what it gives
                    # up then is its shed capability.
                    used = line.current_power_kw
                    shed = line.shed_capability_kw if line.enabled is False else 0.0
                sums = (used or 0.0, shed or 0.0, sample.requested_reduction_kw or 0.0, 1)
                add(ts, sid, sums, sample.event_id)
        points = []
        for bucket in sorted(acc):
            per_ven = acc[bucket].values()
            event_id = events.get(bucket)
            points.append(
                HistoryPoint(
                    timestamp=bucket,
                    used_power_kw=round(sum(r[0] / r[3] for r in per_ven), 3),
                    shed_power_kw=round(sum(r[1] / r[3] for r in per_ven), 3),
                    event_id=event_id,
                    requested_reduction_kw=(
                        round(sum(r[2] / r[3] for r in per_ven), 3) if event_id else None
                    ),
                )
            )
        return points

    def _from_intervals(
        self,
        add: Callable[[datetime, str, tuple[float, float, float, int], str | None], None],
        start: datetime,
        end: datetime,
        width: timedelta,
        ven_id: str | None,
    ) -> None:
        """Each VEN's intervals over [start, end), whole days from its days."""
        marks = self._telemetry.interval_events
        first = interval_start(start)  # every interval overlapping the range, whole
        days = whole_days(start, end, width)  # read from the days; the rest from intervals
        lo, hi = days or (end, end)
        for (sid, day), d in self._telemetry.days.items():
            if lo <= day < hi and (ven_id is None or sid == ven_id):
                add(day, sid, (d.used_sum, d.shed_sum, d.requested_sum, d.samples), d.event_id)
        for (sid, at), totals in self._telemetry.intervals.items():
            if not first <= at < end or lo <= at < hi or (ven_id is not None and sid != ven_id):
                continue
            mark = marks.get((sid, at)) or IntervalEvents()
            sums = (totals.used_sum, totals.shed_sum, mark.requested_sum, totals.samples)
            add(at, sid, sums, mark.event_id)

    async def telemetry(
        self,
        ven_id: str,
        *,
        start: datetime | None = None,
        end: datetime | None = None,
        limit: int = 100,
    ) -> Page[TelemetrySample]:
        rows = sorted(
            (
                s
                for (sid, ts), s in self._telemetry.samples.items()
                if sid == ven_id and (start is None or ts >= start) and (end is None or ts < end)
            ),
            key=lambda s: s.timestamp,
            reverse=True,
        )
        return Page(len(rows), tuple(rows[: page_bounds(0, limit)[1]]))

    async def circuit_history(
        self,
        ven_id: str,
        *,
        load_id: str | None = None,
        start: datetime | None = None,
        end: datetime | None = None,
        limit: int = 100,
    ) -> Page[CircuitSnapshot]:
        page = await self.telemetry(ven_id, start=start, end=end, limit=10**9)
        snapshots = [
            CircuitSnapshot(
                timestamp=s.timestamp,
                load_id=load.load_id,
                name=load.name,
                current_power_kw=load.current_power_kw,
                shed_capability_kw=load.shed_capability_kw,
                enabled=load.enabled,
                type=load.type,
                capacity_kw=load.capacity_kw,
                priority=load.priority,
            )
            for s in page.items
            for load in sorted(s.loads, key=lambda ld: ld.load_id)
            if load_id is None or load.load_id == load_id
        ]
        return Page(len(snapshots), tuple(snapshots[: min(max(limit, 0), MAX_SNAPSHOT_PAGE)]))
