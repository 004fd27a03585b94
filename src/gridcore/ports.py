"""Ports: what gridcore needs from the outside world, as ``typing.Protocol``s.

Each docstring states the contract an adapter must keep; the contract test
suites in ``tests/integration`` hold every adapter to it.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from types import TracebackType
from typing import TYPE_CHECKING, Any, Protocol, Self

from gridcore.alerts import AlertFilter, VenAlert
from gridcore.audit import EVERY_ENTRY, AuditEntry, AuditQuery
from gridcore.correlation import Command, VenAck
from gridcore.events import DrEvent, EventStatus
from gridcore.history import HistorySource
from gridcore.intervals import IntervalReading, MeterSeries
from gridcore.listing import ALL, VenListing
from gridcore.notifications import Claimed, Outgoing
from gridcore.openadr import Document, Kind, ObjectChange, ObjectIndex, ObjectQuery
from gridcore.participation import Around, ResponseStats
from gridcore.reports import LoadSnapshot, VenStatusReport
from gridcore.retention import RetentionPolicy
from gridcore.summary import MAX_FLEET_PAGE, VenState, VenSummary
from gridcore.telemetry import (
    CircuitSnapshot,
    DeadLetter,
    HistoryPoint,
    LatestPanel,
    LoadTypeStats,
    NetworkStats,
    Page,
    TelemetrySample,
)
from gridcore.ven import Load, Ven

if TYPE_CHECKING:  # verification reads through these ports
    from gridcore.verification import PerformanceReport

# --- time and identity -------------------------------------------------------


class Clock(Protocol):
    """The current time. Always timezone-aware UTC; never goes backwards within
    one process. The domain never reads the wall clock itself."""

    def now(self) -> datetime: ...


class IdGenerator(Protocol):
    """Random identifiers. ``hex8`` returns 8 lowercase hex digits; collisions
    are the caller's to detect (ids are unique keys in storage)."""

    def hex8(self) -> str: ...


# --- storage -----------------------------------------------------------------


class VenRepository(Protocol):
    """Registered VENs and their configured loads. Changes become visible to
    others only when the owning unit of work commits."""

    async def get(self, ven_id: str) -> Ven | None:
        """The VEN with its configured loads, or None."""
        ...

    async def add(self, ven: Ven) -> None:
        """Register a new VEN. Raises ``ValueError`` if the id is taken."""
        ...

    async def update(self, ven: Ven) -> None:
        """Replace name, location, enabled and targets. Loads are saved with ``save_load``."""
        ...

    async def remove(self, ven_id: str) -> bool:
        """Deregister; True if it existed. Stored telemetry and ACKs stay (audit)."""
        ...

    async def page(self, offset: int = 0, limit: int = 100) -> Page[Ven]:
        """VENs in id order, bounded by ``limit``."""
        ...

    async def save_load(self, ven_id: str, load: Load) -> None:
        """Insert or replace one load's configuration (its targets included)."""
        ...

    async def targeted(self, targets: Sequence[str]) -> set[str]:
        """The registered VENs an object with ``targets`` is meant for: those
        :func:`gridcore.targeting.is_targeted` finds among their granted
        targets (their id, their own targets, their configured loads' targets:
        :meth:`gridcore.ven.Ven.granted_targets`); with no targets, every
        registered VEN. Found through an index, in one round trip."""
        ...

    async def online_ids(self, now: datetime, offline_after: timedelta) -> list[str]:
        """Enabled VENs whose last heartbeat is at most ``offline_after`` old, in id order."""
        ...

    async def names(self, ven_ids: Sequence[str]) -> dict[str, str]:
        """The names of the registered VENs among ``ven_ids``, in a bounded
        number of round trips (any number of ids); unknown ids are absent."""
        ...


class EventRepository(Protocol):
    """DR events.

    Several workers and the API change events at once (PostgreSQL at READ
    COMMITTED). The rule that keeps them correct: a transaction that changes an
    event's lifecycle, adds or changes its commands, or changes its
    actualReductionKw first takes the event's lock (:meth:`lock`) and only then
    reads what it decides on. Such transactions on one event run one after the
    other; the lifecycle and the delivered kW are written by separate methods
    that touch only their own columns."""

    async def add(self, event: DrEvent) -> None: ...

    async def get(self, event_id: str) -> DrEvent | None: ...

    async def lock(self, event_ids: Sequence[str]) -> dict[str, DrEvent]:
        """Lock these events until the transaction ends (waiting for whoever
        holds one), and return them as they are once locked; unknown ids are
        absent. Locks are taken in id order, so two transactions locking
        overlapping sets never deadlock."""
        ...

    async def save_status(self, event: DrEvent, previous: EventStatus) -> None:
        """Store ``event``'s lifecycle (status, activatedAt, endedAt) and
        nothing else, if its stored status is still ``previous``; otherwise
        raise :class:`~gridcore.errors.IllegalTransition` from the stored
        status (someone else moved it first)."""
        ...

    async def reschedule(self, event: DrEvent) -> None:
        """Store a scheduled event's start, end, requested kW and targets (the
        OpenADR bridge following its event's update), if it is still
        scheduled; otherwise raise :class:`~gridcore.errors.IllegalTransition`
        (it started or ended first). Take the event's lock first."""
        ...

    async def add_actual_reduction(self, event_id: str, delta_kw: float) -> None:
        """Atomically add ``delta_kw`` (may be negative; the result is floored
        at 0) to an event's actualReductionKw, in one statement that computes
        from the stored value."""
        ...

    async def page(
        self,
        *,
        status: EventStatus | None = None,
        start: datetime | None = None,
        end: datetime | None = None,
        offset: int = 0,
        limit: int = 100,
    ) -> Page[DrEvent]:
        """Events overlapping [start, end), newest start first, bounded."""
        ...

    async def overlapping(
        self, *, start: datetime | None, end: datetime | None, after: DrEvent | None, limit: int
    ) -> list[DrEvent]:
        """Events overlapping [start, end) in the order of :meth:`page`
        (start time, then id, both descending) that come after ``after`` in
        it, at most ``limit`` (capped at ``MAX_PAGE_SIZE``): a keyset page, so
        that reading a long range page by page neither repeats nor skips an
        event while others are added."""
        ...

    async def due(self, now: datetime, limit: int = 100) -> list[DrEvent]:
        """Scheduled events whose start time has come, oldest first."""
        ...

    async def over(self, now: datetime, limit: int = 100) -> list[DrEvent]:
        """Active events whose end time has come, oldest first."""
        ...

    async def active(self) -> list[DrEvent]:
        """Events currently active, oldest start first."""
        ...


class CommandRepository(Protocol):
    """The dispatch ledger: one row per command (event x VEN, restore, ping,
    per-load shed), keyed by correlationId. Written in the same transaction as
    the state change that caused it, so it doubles as the outbox."""

    async def add_many(self, commands: Sequence[Command]) -> None:
        """Insert; raises ``ValueError`` on a duplicate correlationId."""
        ...

    async def get(self, correlation_id: str) -> Command | None: ...

    async def get_many(self, correlation_ids: Sequence[str]) -> dict[str, Command]:
        """The commands among ``correlation_ids`` that exist, by correlationId."""
        ...

    async def events_of(self, correlation_ids: Sequence[str]) -> dict[str, str | None]:
        """The event (None: none) of each command among ``correlation_ids``
        that exists: what to lock before reading them (an ACK batch reads its
        commands once, under their events' locks)."""
        ...

    async def update_many(self, commands: Sequence[Command]) -> None: ...

    async def for_event(self, event_id: str, ven_ids: Sequence[str] | None = None) -> list[Command]:
        """Every command of an event (event commands and its restores), or
        only those to ``ven_ids``; in (created_at, correlationId) order."""
        ...

    async def for_events(self, event_ids: Sequence[str]) -> list[Command]:
        """Every command of these events, in one round trip."""
        ...

    async def count_for_event(self, event_id: str) -> int:
        """How many commands an event has (its next command's sequence)."""
        ...

    async def has_open(self, event_id: str) -> bool:
        """Whether an event command of ``event_id`` is still pending or sent
        (one probe: the dispatcher asks it before reading a whole event)."""
        ...

    async def lock(self, correlation_ids: Sequence[str]) -> dict[str, Command]:
        """Lock commands outside any event (``cmd-...``) until the transaction
        ends, in correlationId order, and return them as they are once locked.
        Commands of an event are guarded by the event's lock instead; take
        event locks first."""
        ...

    async def lock_allocation(self) -> None:
        """Until the transaction ends, be the only transaction allocating shed
        to VENs (activation, re-allocation, a manual event command): what a VEN
        already owes is read and added to in one step, so two allocations never
        promise the same kW of one home twice."""
        ...

    async def pending(self, limit: int = 1000, now: datetime | None = None) -> list[Command]:
        """Commands in the outbox not yet published, oldest first; given
        ``now``, only those whose time has come (no not-before, or one at or
        before ``now``: :meth:`Command.is_due`), found through an index
        whatever the number of restores still waiting."""
        ...

    async def overdue(self, now: datetime, limit: int = 1000) -> list[Command]:
        """Sent commands whose ACK deadline has passed, earliest deadline first."""
        ...

    async def latest_for(
        self, ven_id: str, op: str, event_id: str | None, *, sent_only: bool = False
    ) -> Command | None:
        """Newest command of ``op`` to ``ven_id`` (for ``event_id`` when given;
        only those ever sent with ``sent_only``, the fallback match for ACKs
        without correlationId): :func:`gridcore.correlation.newest_command`."""
        ...

    async def response_stats(self, event_id: str) -> ResponseStats:
        """The event's answers, aggregated in the store as
        :func:`gridcore.participation.response_stats` computes them from the
        event's commands."""
        ...

    async def newest_answered(self, ven_ids: Sequence[str]) -> dict[str, Command]:
        """Per VEN among ``ven_ids`` (at most ``MAX_PAGE_SIZE``), the command
        whose ACK arrived last, as :func:`gridcore.summary.newest_answered`
        picks it, in one round trip; VENs that never answered are absent."""
        ...


class AckRepository(Protocol):
    """Every ACK received, matched or not (audit trail), in ``ven_acks``."""

    async def add_many(self, acks: Sequence[VenAck]) -> None: ...

    async def for_event(self, event_id: str, offset: int = 0, limit: int = 100) -> Page[VenAck]:
        """ACKs of an event, oldest first."""
        ...

    async def for_ven(
        self,
        ven_id: str,
        *,
        start: datetime | None = None,
        end: datetime | None = None,
        offset: int = 0,
        limit: int = 100,
    ) -> Page[VenAck]:
        """ACKs from a VEN in [start, end), newest first."""
        ...


class DeadLetterRepository(Protocol):
    """Messages that were rejected, with topic, raw bytes and reason."""

    async def add(self, letter: DeadLetter) -> None: ...

    async def count(self) -> int: ...

    async def recent(self, limit: int = 100) -> list[DeadLetter]: ...


class AuditLog(Protocol):
    """The audit trail (:mod:`gridcore.audit`): entries are only added, in
    the unit of work of the change they record, and never changed."""

    async def add(self, entry: AuditEntry) -> None: ...

    async def page(
        self, query: AuditQuery = EVERY_ENTRY, *, offset: int = 0, limit: int = 100
    ) -> Page[AuditEntry]:
        """Entries matching ``query``, newest first (by ``at``, then by id:
        the later kept first); ``limit`` is capped at the store's page size.
        Each returned entry has its ``id``."""
        ...


class UnitOfWork(Protocol):
    """One transaction over the repositories. Used as ``async with uow:``;
    nothing is kept unless ``commit`` is called; leaving the block without a
    commit (or on an exception) rolls back. Repositories never commit."""

    # Read-only properties, so that an adapter's own repository types fit.
    @property
    def vens(self) -> VenRepository: ...

    @property
    def events(self) -> EventRepository: ...

    @property
    def commands(self) -> CommandRepository: ...

    @property
    def acks(self) -> AckRepository: ...

    @property
    def dead_letters(self) -> DeadLetterRepository: ...

    @property
    def audit(self) -> AuditLog: ...

    async def __aenter__(self) -> Self: ...

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None: ...

    async def commit(self) -> None: ...

    async def rollback(self) -> None: ...


class UnitOfWorkFactory(Protocol):
    def __call__(self) -> UnitOfWork: ...


class PerformanceStore(Protocol):
    """Event performance reports (:class:`~gridcore.verification.PerformanceReport`),
    kept once final: what settlement reads, even if late telemetry arrives after."""

    async def save(self, report: PerformanceReport) -> None:
        """Keep ``report`` for its event and method, replacing one kept before."""
        ...

    async def get(self, event_id: str, method: str) -> PerformanceReport | None: ...

    async def kept(self, event_ids: Sequence[str], method: str) -> set[str]:
        """Which of ``event_ids`` have a report kept for ``method``."""
        ...


class NotificationOutbox(Protocol):
    """OpenADR notifications waiting for delivery, kept where every API
    process sees them (docs/openadr3.md, "Notifications"). A row is pending
    until it is finished (delivered or given up). Only the oldest pending
    row of each lane (:attr:`Outgoing.lane`) can be claimed, so a lane is
    delivered in order, by one process at a time; a claim is a lease that
    another process may take over once it has expired (its holder died)."""

    async def put(self, items: Sequence[Outgoing], now: datetime, max_per_lane: int) -> int:
        """Keep ``items`` (in order) as pending rows, except those that would
        make a lane hold more than ``max_per_lane`` pending: the number left out."""
        ...

    async def claim(
        self,
        owner: str,
        now: datetime,
        until: datetime,
        limit: int,
        lane: tuple[str, str] | None = None,
        channels: Sequence[str] = ("webhook", "mqtt"),
    ) -> list[Claimed]:
        """Lease to ``owner`` until ``until`` at most ``limit`` lane heads (of
        ``lane`` only, if given; of ``channels`` only, those ``owner`` can
        deliver) that nobody holds (no lease, or one expired by ``now``);
        oldest first."""
        ...

    async def finish(self, row_id: int, owner: str, delivered: bool, now: datetime) -> bool:
        """Mark a row ``owner`` holds delivered (or given up); False if its
        lease had been taken over (the row is another's now)."""
        ...

    async def release(self, owner: str) -> int:
        """Give up ``owner``'s leases (an orderly stop): others resume them at once."""
        ...

    async def prune(self, before: datetime) -> int:
        """Remove rows finished before ``before``: how many."""
        ...

    async def pending(self) -> int:
        """How many rows are not finished."""
        ...


class OpenAdrStore(Protocol):
    """The OpenADR VTN's objects (:mod:`gridcore.openadr`): JSON documents by
    kind and id, with the fields of :func:`gridcore.openadr.index_of` indexed.

    Unique: a program's name, a ven's name, a resource's name within its ven
    (a write that would repeat one raises :class:`~gridcore.errors.Conflict`).
    An event belongs to an existing program and a resource to an existing ven
    (else ``Conflict``); removing a program removes its events, removing a
    ven its resources. Searches return documents in the order they were
    first stored."""

    async def add(self, kind: Kind, document: Document, index: ObjectIndex) -> None:
        """Store a new object (``document["id"]`` is new)."""
        ...

    async def get(self, kind: Kind, object_id: str) -> Document | None: ...

    async def replace(self, kind: Kind, document: Document, index: ObjectIndex) -> bool:
        """Replace the stored object with ``document["id"]``; False if there is none."""
        ...

    async def remove(self, kind: Kind, object_id: str) -> list[ObjectChange]:
        """Remove the object and what goes with it: the DELETE changes, the
        object's first (empty if there was none)."""
        ...

    async def search(
        self, kind: Kind, query: ObjectQuery, skip: int = 0, limit: int | None = None
    ) -> list[Document]:
        """The objects matching ``query``, ``skip`` of them skipped, at most
        ``limit`` (None: all)."""
        ...


class TelemetryStore(Protocol):
    """Batched, idempotent telemetry ingest.

    ``append`` stores a batch in its own transaction: one ``ven_telemetry`` row
    per (VEN, timestamp) plus its load samples; a sample whose (VEN, timestamp)
    is already stored is skipped (re-delivery under QoS 1). Unknown VENs are
    registered when ``auto_register`` is true; samples of unknown VENs are
    otherwise returned as refused, as are samples it cannot store (an invalid
    id), each with its reason. Heartbeats (last seen) advance to the newest
    sample's ``heard_at`` (never past its receive time) and the VEN's current
    state to its newest sample; a current state stamped after the newest
    receive time of a batch yields to that batch's newest sample, so a clock
    running ahead cannot pin it. Returns (stored, skipped_duplicates, refused
    samples and why)."""

    async def append(
        self, samples: Sequence[TelemetrySample], *, auto_register: bool = True
    ) -> AppendResult: ...


@dataclass(frozen=True, slots=True)
class AppendResult:
    stored: int
    duplicates: int
    refused: tuple[TelemetrySample, ...] = ()
    reasons: tuple[str, ...] = ()  # why each refused sample was, in the same order

    def refusals(self) -> list[tuple[TelemetrySample, str]]:
        """Each refused sample with its reason (a store that gave none refused
        it as the port's contract first says: its VEN is not registered)."""
        return [
            (sample, self.reasons[n] if n < len(self.reasons) else NOT_REGISTERED)
            for n, sample in enumerate(self.refused)
        ]


NOT_REGISTERED = "VEN is not registered"


class TelemetryQueries(Protocol):
    """Read side of telemetry. Aggregation happens in the store; every list
    is bounded; latest-state queries do not scan history."""

    async def network_stats(self, now: datetime, offline_after: timedelta) -> NetworkStats: ...

    async def available_shed(self, now: datetime, offline_after: timedelta) -> dict[str, float]:
        """kW each online, enabled VEN can shed now, from its loads' latest
        samples (shed capability of enabled, non-critical loads)."""
        ...

    async def load_type_stats(self) -> list[LoadTypeStats]: ...

    async def latest_loads(self, ven_id: str) -> list[Load]:
        """Each load's latest sample merged with its configuration."""
        ...

    async def latest_loads_many(self, ven_ids: Sequence[str]) -> dict[str, list[Load]]:
        """``latest_loads`` for several VENs in one round trip (a page of the
        VEN list); VENs without samples are absent. Loads in id order."""
        ...

    async def latest_panels(self, ven_ids: Sequence[str]) -> dict[str, LatestPanel]:
        """Each VEN's newest panel reading (no payload, no loads), in one round
        trip; VENs without telemetry are absent. Never reads history."""
        ...

    async def ven_states(self, ven_ids: Sequence[str]) -> dict[str, VenState]:
        """For the VEN list and a VEN's page: each registered VEN's
        ``latest_loads``, newest panel reading and last round trip (as
        :meth:`CommandRepository.newest_answered`), in one connection and two
        statements (a page is answered on few round trips: each costs the
        API and the database CPU). A VEN that is absent has none of them."""
        ...

    async def ven_view(self, ven_id: str) -> tuple[Ven, VenState] | None:
        """A VEN's page: the registered VEN (with its configured loads, as
        :meth:`VenRepository.get`) and its :meth:`ven_states`, in one
        connection; None when it is not registered."""
        ...

    async def intervals(
        self,
        ven_ids: Sequence[str],
        start: datetime,
        end: datetime,
        *,
        spans: Sequence[tuple[datetime, datetime]] | None = None,
    ) -> dict[str, list[IntervalReading]]:
        """Each VEN's 5-minute intervals starting in ``[start, end)``, in time
        order (:mod:`gridcore.intervals`); VENs without any are absent. At
        most ``MAX_INTERVAL_VENS`` VENs and ``MAX_INTERVAL_SPAN`` at a time
        (:func:`~gridcore.intervals.check_interval_range`). ``spans``: only
        intervals starting in one of these ``[lo, hi)`` (within start, end;
        at most ``MAX_INTERVAL_SPANS``): a baseline's few hours of each day."""
        ...

    async def meter_series(
        self, ven_ids: Sequence[str], spans: Sequence[tuple[datetime, datetime]]
    ) -> dict[str, MeterSeries]:
        """What measurement reads of each VEN's intervals starting in ``spans``
        (``[lo, hi)`` in time order, bounded as for :meth:`intervals`): its
        sample counts, metered and VEN-reported kW, as columns; VENs without
        any are absent. A fleet's baselines read millions of intervals: this
        read makes no object per interval."""
        ...

    async def ven_summaries(
        self, *, offset: int = 0, limit: int = MAX_FLEET_PAGE, listing: VenListing = ALL
    ) -> Page[VenSummary]:
        """Registered VENs in id order (or those ``listing`` finds, in its
        order: :meth:`gridcore.listing.VenListing.arrange`; the page's total
        counts them), one :class:`~gridcore.summary.VenSummary`
        each, computed as :func:`gridcore.summary.summarize` does; at most
        ``MAX_FLEET_PAGE`` at a time, in a fixed number of queries whatever
        the fleet's size (never one per VEN)."""
        ...

    async def reported_reduction(self, event_id: str, at: datetime, within: timedelta) -> float:
        """kW the VENs report shedding for an event at the instant ``at``: per
        VEN, its newest sample stamped at or before ``at`` and less than
        ``within`` before it; the sum of their ``shedPowerKw`` over the VENs
        whose sample names the event. A VEN that reports another event or
        none then, or was silent for ``within``, adds nothing. Reads latest
        state when ``at`` is now, else only the window before ``at``."""
        ...

    async def not_shedding(
        self, event_id: str, *, acked_before: datetime, since: datetime, limit: int = 1000
    ) -> list[str]:
        """The VENs that accepted an event command of ``event_id`` at or before
        ``acked_before`` and whose telemetry shows them not shedding for it
        since ``since`` (:func:`gridcore.reconcile.not_shedding`: their current
        state and every sample stamped after ``since``, at least one, name
        another event or none and report no shed). In id order, at most
        ``limit`` (capped at 20,000); in one round trip for the whole event,
        reading history only of the VENs whose current state is quiet."""
        ...

    async def samples_around(
        self, ven_id: str, instants: Sequence[datetime], within: timedelta
    ) -> dict[datetime, Around]:
        """For each instant (at most ``MAX_PAGE_SIZE``), the VEN's newest
        sample stamped before it and its oldest stamped at or after it, each
        less than ``within`` away, with their loads; in a bounded number of
        round trips. Instants with neither are absent."""
        ...

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
        """Buckets of ``width`` over [start, end): sums of used/shed kW, for the
        network, one VEN, or one load of one VEN. Read from the 5-minute
        intervals when ``width`` is a whole number of them, else from the raw
        samples (:func:`gridcore.history.history_source`); ``raw_since``: the
        oldest instant raw samples are kept from (None: all), a read that needs
        raw samples from before it is refused (``InvalidInput``). ``source``:
        read that store whatever the width (None: the one chosen as above);
        for comparing the two, as tests and benchmarks do."""
        ...

    async def telemetry(
        self,
        ven_id: str,
        *,
        start: datetime | None = None,
        end: datetime | None = None,
        limit: int = 100,
    ) -> Page[TelemetrySample]:
        """Panel-level samples newest first."""
        ...

    async def circuit_history(
        self,
        ven_id: str,
        *,
        load_id: str | None = None,
        start: datetime | None = None,
        end: datetime | None = None,
        limit: int = 100,
    ) -> Page[CircuitSnapshot]:
        """Circuit snapshots newest first."""
        ...


class VenStatusStore(Protocol):
    """VEN status messages (``ven_statuses``), see :mod:`gridcore.reports`.

    ``record_statuses`` stores a batch in one transaction and returns how many
    were new: a report already stored (same VEN, timestamp and status: a QoS 1
    re-delivery) is skipped. Reports of unregistered VENs are stored too but
    register nothing. Each registered VEN's heartbeat advances to its newest
    report that ``is_heartbeat`` (never backwards)."""

    async def record_statuses(self, reports: Sequence[VenStatusReport]) -> int: ...

    async def latest_statuses(self, ven_ids: Sequence[str]) -> dict[str, VenStatusReport]:
        """Each VEN's newest report (by timestamp; the later stored wins a tie),
        in one round trip; VENs without reports are absent."""
        ...

    async def statuses(self, ven_id: str, *, limit: int = 100) -> list[VenStatusReport]:
        """A VEN's reports, newest first, at most ``limit`` (capped at
        ``MAX_PAGE_SIZE``)."""
        ...


class VenAlertStore(Protocol):
    """Alerts from ``ven/alerts/{venId}`` (``ven_alerts``), see :mod:`gridcore.alerts`.

    ``record_alerts`` stores a batch in one transaction and returns how many
    were new: an alert already stored (same VEN, timestamp, code and load: a
    QoS 1 re-delivery, or a repeat within the batch) is skipped. Alerts of
    unregistered VENs are stored too; an alert registers nothing and moves
    no heartbeat."""

    async def record_alerts(self, alerts: Sequence[VenAlert]) -> int: ...

    async def alerts(
        self, where: AlertFilter, *, offset: int = 0, limit: int = 100
    ) -> Page[VenAlert]:
        """The alerts ``where`` selects, newest first (by timestamp, then the
        later stored), ``limit`` capped at ``MAX_PAGE_SIZE``, with their total."""
        ...


class LoadSnapshotStore(Protocol):
    """Load snapshots (``ven/loads/{venId}`` -> ``load_snapshots``, one row per
    load), see :mod:`gridcore.reports`.

    ``record_snapshots`` stores a batch in one transaction and returns how many
    load rows were new: a (VEN, timestamp, load) already stored is skipped.
    Snapshots of unregistered VENs are stored but register nothing; a
    registered VEN's heartbeat advances to its newest snapshot. They do not
    change the VEN's current loads (those come from telemetry)."""

    async def record_snapshots(self, snapshots: Sequence[LoadSnapshot]) -> int: ...

    async def latest_snapshots(self, ven_ids: Sequence[str]) -> dict[str, LoadSnapshot]:
        """Each VEN's newest snapshot with its loads in id order, in one round
        trip; VENs without snapshots are absent."""
        ...


class ShadowStore(Protocol):
    """Device shadows (``{"state": {"reported": {...}}}``). ``get`` returns the
    current document or None for a VEN without one."""

    async def get(self, ven_id: str) -> Mapping[str, Any] | None: ...

    async def update(self, ven_id: str, document: Mapping[str, Any], at: datetime) -> None:
        """Merge a shadow update (as a VEN publishes it) into the stored document."""
        ...


@dataclass(frozen=True, slots=True)
class RetentionReport:
    """What one retention pass did: days made ready, days dropped (as
    ``table:YYYY-MM-DD``), rows moved from the catch-all into a day made
    for them, rows deleted one by one (past retention where no whole day
    could be dropped)."""

    prepared: tuple[str, ...] = ()
    dropped: tuple[str, ...] = ()
    moved: int = 0
    deleted: int = 0


class StorageRetention(Protocol):
    """Keeps time-kept storage within a :class:`RetentionPolicy`: makes the
    coming days ready and removes what is past retention. Idempotent, and safe
    to call from every worker at once: at most one does the work at a time, the
    others get None. It never loses a row that is within retention, and
    writers are never refused for lack of a day made ready (such rows wait in a
    catch-all until their day is made)."""

    async def enforce(self, policy: RetentionPolicy, now: datetime) -> RetentionReport | None: ...


@dataclass(frozen=True, slots=True)
class RollupReport:
    """What one roll-up pass did: the fleet's roll-ups now reach
    ``rolled_through`` (intervals before it; days ending at or before it),
    ``intervals`` and ``days`` made, ``restated`` buckets made again because
    late telemetry had marked them."""

    rolled_through: datetime | None = None
    intervals: int = 0
    days: int = 0
    restated: int = 0


class HistoryRollup(Protocol):
    """Keeps the fleet's history roll-ups (gridcore.history): rolls up the
    intervals and days closed at ``now`` and makes again those late telemetry
    marked. Idempotent and safe to call from every worker at once (at most one
    does the work at a time, the others get None); never makes a history read
    answer otherwise than without roll-ups, and never holds ingest up longer
    than the ingest transactions in flight take to end."""

    async def roll_up(self, now: datetime) -> RollupReport | None: ...


class DispatchLease(Protocol):
    """Exclusive right to dispatch: at most one holder among all workers sharing
    the store at any time; released when the holder dies. ``hold`` is called
    before every dispatch pass and answers whether this worker holds it now
    (acquiring it when it is free)."""

    async def hold(self) -> bool: ...

    async def release(self) -> None: ...


# --- messaging ---------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class BrokerMessage:
    """A received message. ``settle``, when set, tells the broker the message
    is taken care of (its QoS 1 PUBACK): call it once what the message carries
    is committed, or dead-lettered; until then the broker redelivers it to a
    persistent session after a crash. None: acknowledged on receipt."""

    topic: str
    payload: bytes
    qos: int = 0
    retain: bool = False
    settle: Callable[[], None] | None = field(default=None, compare=False, repr=False)


class MessageTransport(Protocol):
    """A connection to an MQTT-style broker. ``publish`` with qos 1 returns once
    the broker has the message (at-least-once). ``messages`` yields what the
    subscriptions match, in arrival order per publisher, until ``close``."""

    async def publish(
        self, topic: str, payload: bytes, qos: int = 0, retain: bool = False
    ) -> None: ...

    async def subscribe(self, topic_filter: str, qos: int = 0) -> None: ...

    async def unsubscribe(self, topic_filter: str) -> None: ...

    def messages(self) -> AsyncIterator[BrokerMessage]: ...

    async def close(self) -> None: ...


class CommandPublisher(Protocol):
    """Sends a command to its VEN (``ven/cmd/{venId}``, QoS 1). At-least-once:
    a command may arrive twice, so VENs treat a repeated correlationId as
    idempotent. Raises on failure; the ledger keeps it pending for the relay."""

    async def publish(self, command: Command) -> None: ...
