"""The bridge's use cases (mapping: :mod:`gridcore.bridge`): OpenADR events
become gridcore DR events and follow their updates and deletion; gridcore's
own events are served as OpenADR events; what the fleet did becomes an
OpenADR report; an OpenADR device (a ven object that is no gridcore VEN,
whose resources declare what they can shed) is allocated its share of a
bridged event beside the MQTT VENs and told it as its own share event, and
its report counts towards delivered kW.

:meth:`OpenAdrBridge.on_changes` is a sink of :attr:`gridcore.vtn.Vtn.changes`
(beside the notifiers'); the objects it writes itself (the mirror events, its
reports) are handed to ``publish`` so notifications see them, and it skips
them when they come back.

Races between processes (API workers answering a PUT and a DELETE of one
event, a retried POST) are settled by the database: the gridcore event's id
derives from the OpenADR id (its primary key refuses a second one), and every
lifecycle change takes the event's lock (:meth:`EventRepository.lock`).
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import replace
from datetime import datetime, timedelta
from typing import Any

from gridcore import audit, bridge, services
from gridcore.allocation import allocate_with_devices
from gridcore.audit import Actor, AuditAction
from gridcore.bridge import NotBridged, Shed, VenResult
from gridcore.correlation import CommandOp
from gridcore.errors import Conflict, IllegalTransition, InvalidInput
from gridcore.events import DrEvent, EventStatus
from gridcore.openadr import (
    Document,
    Kind,
    ObjectChange,
    ObjectIndex,
    ObjectQuery,
    index_of,
    parse_date_time,
)
from gridcore.ports import Clock, OpenAdrStore, PerformanceStore, UnitOfWorkFactory
from gridcore.vtn import stamp

log = logging.getLogger("gridcore.bridging")

Publish = Callable[[Sequence[ObjectChange]], Awaitable[None]]
# kW each online MQTT VEN can shed now (TelemetryQueries.available_shed, with the
# dispatcher's offline_after): what devices are allocated beside.
Available = Callable[[datetime], Awaitable[Mapping[str, float]]]
# Reports are refreshed for events that ended this recently (the measured
# result is kept about an hour after the end: the rebound window).
REPORT_HORIZON = timedelta(days=2)
_PAGE = 200


async def _nowhere(_: Sequence[ObjectChange]) -> None:
    return None


class _FixedId:
    """The IdGenerator that gives services.create_event the bridged id."""

    def __init__(self, event_id: str) -> None:
        self._hex8 = event_id.removeprefix("evt-")

    def hex8(self) -> str:
        return self._hex8


class OpenAdrBridge:
    def __init__(
        self,
        uow_factory: UnitOfWorkFactory,
        store: OpenAdrStore,
        clock: Clock,
        *,
        performance: PerformanceStore | None = None,
        method: str | None = None,
        publish: Publish = _nowhere,
        available: Available | None = None,
    ) -> None:
        self._uow = uow_factory
        self._store = store
        self._clock = clock
        self._performance = performance
        self._method = method
        self.publish = publish
        # None: the fleet's availability is unknown here, so no device is allocated
        self._available = available

    # --- OpenADR -> gridcore ----------------------------------------------------

    async def on_changes(self, changes: Sequence[ObjectChange]) -> None:
        """The Vtn.changes hook. A failure is logged, never raised: the OpenADR
        object is stored already, and the BL sees the bridge's report say so."""
        for change in changes:
            try:
                await self._on_change(change)
            except Exception:
                log.exception(
                    "bridge: %s of %s %s failed",
                    change.operation,
                    change.kind.value,
                    change.document.get("id"),
                )

    async def _on_change(self, change: ObjectChange) -> None:
        document = change.document
        # The client's change to a gridcore event is written in its audit trail.
        actor = Actor(change.by, self._clock.now()) if change.by is not None else None
        if (
            change.kind is Kind.EVENT
            and document.get("programID") != bridge.GRIDCORE_PROGRAM_ID
            and bridge.share_parent(document) is None  # a device's share: the bridge's own
        ):
            if change.operation == "DELETE":
                await self.withdraw(document, actor=actor)
            else:
                await self.follow(document, actor=actor)
        elif (
            change.kind is Kind.REPORT
            and change.operation == "CREATE"
            and document.get("clientID") != bridge.BRIDGE_CLIENT
        ):
            await self.count_report(document)

    async def follow(self, document: Document, *, actor: Actor | None = None) -> DrEvent | None:
        """Create, reschedule or end the gridcore event of an OpenADR event as
        it now reads; None when it is not (or no longer) dispatched. What it
        does to the gridcore event is audited as ``actor``'s (when given)."""
        now = self._clock.now()
        program = await self._store.get(Kind.PROGRAM, document["programID"])
        event_id = bridge.bridged_event_id(document["id"])
        if await self._store.get(Kind.EVENT, bridge.mirror_id(event_id)) is not None:
            # the hash met one of gridcore's own events: never touch that one
            await self._not_bridged(document, program, "its id collides; recreate it")
            return None
        shed = bridge.read_shed(document, program, now)
        async with self._uow() as uow:
            existing = await uow.events.get(event_id)
        if isinstance(shed, NotBridged):
            if existing is not None:
                await self._drop_shares(document)
                await self._end(event_id, actor)
            if shed.asked or existing is not None:  # else not gridcore's business: no report
                await self._not_bridged(document, program, shed.reason)
            return None
        vens = await self._targeted_vens(shed)
        targets = self._gridcore_targets(shed, vens)
        allot = existing is None or existing.status is EventStatus.SCHEDULED
        shares: dict[str, float] = {}
        dispatched = shed
        if allot:  # an active event keeps what it allocated, devices' shares too
            kw, shares, targets = await self._allot(document["id"], shed, targets, vens)
            dispatched = replace(shed, kw=kw)
        try:
            if existing is None:
                event = await self._create(event_id, dispatched, targets, actor)
            else:
                event = await self._reschedule(existing, dispatched, targets, now, actor)
        except InvalidInput as exc:
            await self._not_bridged(document, program, f"{exc.field}: {exc.message}")
            return None
        if allot:
            await self._write_shares(document, shed, shares)
        await self._write_report(document, program, event)
        return event

    async def _allot(
        self, parent_id: str, shed: Shed, targets: tuple[str, ...], vens: dict[str, Document]
    ) -> tuple[float, dict[str, float], tuple[str, ...]]:
        """Split the event's kW between the MQTT VENs it targets and the
        devices it targets: (the kW the gridcore event asks the MQTT VENs,
        each device's share, the gridcore event's targets)."""
        if self._available is None:
            return shed.kw, {}, targets
        devices = await self._devices(shed, vens)
        if not devices:
            return shed.kw, {}, targets
        available = await self._available(self._clock.now())
        async with self._uow() as uow:
            targeted = await uow.vens.targeted(targets) if targets else None
        left, shares = allocate_with_devices(shed.kw, available, targeted, devices)
        shares = {ven_id: kw for ven_id, kw in shares.items() if kw > 0}
        if left <= 0:
            # The devices carry it all. The gridcore event still exists (their
            # reports count on it) but reaches no MQTT VEN: its targets are the
            # share events' ids, which no VEN is granted.
            return shed.kw, shares, tuple(bridge.share_id(parent_id, v) for v in sorted(shares))
        return left, shares, targets

    async def _devices(self, shed: Shed, vens: dict[str, Document]) -> dict[str, float]:
        """The devices an event targets (an untargeted one: every ven object)
        and what their resources declare they can shed, together: ven objects
        whose venName is no gridcore VEN (those are MQTT VENs, which the
        dispatcher allocates on their telemetry) declaring more than 0 kW."""
        if not shed.targets:
            vens = {v["id"]: v for v in await self._store.search(Kind.VEN, ObjectQuery())}
        devices: dict[str, float] = {}
        for ven_id, ven in sorted(vens.items()):
            async with self._uow() as uow:
                if await uow.vens.get(ven["venName"]) is not None:
                    continue
            resources = await self._store.search(Kind.RESOURCE, ObjectQuery(ven_id=ven_id))
            declared = bridge.declared_total(resources)
            if declared > 0:
                devices[ven_id] = declared
        return devices

    async def _write_shares(self, document: Document, shed: Shed, shares: dict[str, float]) -> None:
        """Each device's share as its own event (targeted at its ven object:
        the device reads its own kW, no other VEN reads it); shares no longer
        allotted are removed."""
        now = stamp(self._clock.now())
        kept = set()
        for ven_id, kw in sorted(shares.items()):
            the_id = bridge.share_id(document["id"], ven_id)
            kept.add(the_id)
            stored = await self._store.get(Kind.EVENT, the_id)
            created = stored["createdDateTime"] if stored else now
            share = bridge.share_event(
                document, ven_id, kw, shed, (created, now, stamp(shed.start))
            )
            if stored is None or not _same(stored, share):
                await self._put(Kind.EVENT, share, index_of(Kind.EVENT, share), stored)
        await self._drop_shares(document, kept)

    async def _drop_shares(
        self, document: Document, keep: set[str] | frozenset[str] = frozenset()
    ) -> None:
        """Remove the share events of ``document`` but ``keep`` (read from its
        program's events: share events are not indexed by their parent)."""
        query = ObjectQuery(program_id=document["programID"])
        stale = [
            e["id"]
            for e in await self._store.search(Kind.EVENT, query)
            if bridge.share_parent(e) == document["id"] and e["id"] not in keep
        ]
        for the_id in stale:
            await self.publish(await self._store.remove(Kind.EVENT, the_id))

    async def _put(
        self, kind: Kind, document: Document, index: ObjectIndex, stored: Document | None
    ) -> None:
        """Store ``document`` (new, or replacing ``stored``) and publish the
        change; written meanwhile by another process: replace it."""
        if stored is None:
            try:
                await self._store.add(kind, document, index)
                await self.publish([ObjectChange("CREATE", kind, document)])
                return
            except Conflict:
                pass
        await self._store.replace(kind, document, index)
        await self.publish([ObjectChange("UPDATE", kind, document)])

    async def _create(
        self, event_id: str, shed: Shed, targets: Sequence[str], actor: Actor | None
    ) -> DrEvent:
        try:
            return await services.create_event(
                self._uow,
                self._clock,
                _FixedId(event_id),
                start_time=shed.start,
                end_time=shed.end,
                requested_reduction_kw=shed.kw,
                targets=targets,
                require_match=False,  # OpenADR VENs may be granted the targets later
                actor=actor,
            )
        except ValueError as exc:  # created first by another process: the key holds
            if "already exists" not in str(exc):
                raise
            async with self._uow() as uow:
                found = await uow.events.get(event_id)
            if found is None:
                raise
            return found

    async def _reschedule(
        self,
        existing: DrEvent,
        shed: Shed,
        targets: Sequence[str],
        now: datetime,
        actor: Actor | None,
    ) -> DrEvent:
        """A scheduled event takes the update whole; a started one only ends
        (an update ending it in the past stops it): gridcore does not change
        what an active event allocated."""
        async with self._uow() as uow:
            event = (await uow.events.lock([existing.id]))[existing.id]
            if event.status is EventStatus.SCHEDULED:
                if shed.end <= now:
                    raise InvalidInput("endTime", "is in the past; an event must end in the future")
                changed = replace(  # replace() checks it as a new event is checked
                    event,
                    start_time=shed.start,
                    end_time=shed.end,
                    requested_reduction_kw=shed.kw,
                    targets=tuple(targets),
                )
                await uow.events.reschedule(changed)
                await audit.record(
                    uow,
                    actor,
                    AuditAction.EVENT_RESCHEDULED,
                    event_id=event.id,
                    details=audit.schedule_of(changed),
                )
                await uow.commit()
                log.info("bridge: event %s rescheduled", event.id)
                return changed
        if event.status is EventStatus.ACTIVE and shed.end <= now:
            return await services.stop_event(self._uow, self._clock, event.id, actor=actor)
        return event

    async def withdraw(self, document: Document, *, actor: Actor | None = None) -> DrEvent | None:
        """The OpenADR event was deleted: cancel or stop its gridcore event,
        and remove the devices' shares."""
        await self._drop_shares(document)
        return await self._end(bridge.bridged_event_id(document["id"]), actor)

    async def _end(self, event_id: str, actor: Actor | None) -> DrEvent | None:
        async with self._uow() as uow:
            event = await uow.events.get(event_id)
        if event is None or event.status.is_final:
            return event
        try:
            if event.status is EventStatus.SCHEDULED:
                return await services.cancel_event(self._uow, self._clock, event_id, actor=actor)
            return await services.stop_event(self._uow, self._clock, event_id, actor=actor)
        except IllegalTransition:  # it moved meanwhile (activated, or ended by another process)
            async with self._uow() as uow:
                event = await uow.events.get(event_id)
            if event is not None and event.status is EventStatus.ACTIVE:
                return await services.stop_event(self._uow, self._clock, event_id, actor=actor)
            return event

    async def _targeted_vens(self, shed: Shed) -> dict[str, Document]:
        """The OpenADR ven objects granted one of the event's targets, by their
        targets, their resources' or their id (indexed searches, not a scan of
        every ven); an untargeted event: none here (it means the whole fleet)."""
        if not shed.targets:
            return {}
        wanted = frozenset(shed.targets)
        found: dict[str, Document] = {}
        for ven in await self._store.search(Kind.VEN, ObjectQuery(targets_any=wanted)):
            found[ven["id"]] = ven
        resources = await self._store.search(Kind.RESOURCE, ObjectQuery(targets_any=wanted))
        ven_ids = {r["venID"] for r in resources}
        ven_ids |= {t for t in shed.targets if t.startswith("ven-")}  # a ven object's own id
        for ven_id in sorted(ven_ids - found.keys()):
            by_id = await self._store.get(Kind.VEN, ven_id)
            if by_id is not None:
                found[ven_id] = by_id
        return found

    @staticmethod
    def _gridcore_targets(shed: Shed, vens: dict[str, Document]) -> tuple[str, ...]:
        """OpenADR targets -> gridcore's: the same strings, and the venName (a
        gridcore VEN id) of every OpenADR ven granted one (``vens``).
        Untargeted stays untargeted: the whole fleet."""
        if not shed.targets:
            return ()
        # an OpenADR ven object IS the gridcore VEN whose id is its venName
        names = sorted(v["venName"] for v in vens.values())
        return tuple(dict.fromkeys([*shed.targets, *names]))

    async def _not_bridged(self, document: Document, program: Document | None, reason: str) -> None:
        log.info("bridge: OpenADR event %s stays OpenADR-only: %s", document["id"], reason)
        await self._write_report(document, program, None, reason=reason)

    # --- an OpenADR VEN's report counts as delivered -----------------------------

    async def count_report(self, document: Document) -> float:
        """Add what a VEN's new report says it shed to its event's delivered
        kW: the difference from that client's previous report on the event
        (its newest report stands for what it delivers, as an ACK does)."""
        openadr_event = await self._store.get(Kind.EVENT, document["eventID"])
        if openadr_event is None:
            return 0.0
        event_id = self._gridcore_id(openadr_event)
        share = bridge.share_parent(openadr_event) is not None
        if not share and await self._has_share(openadr_event, document["clientID"]):
            # a device allotted a share reports on it; its report on the whole
            # event would count the same shed twice
            log.info("bridge: report %s not counted: its client has a share", document["id"])
            return 0.0
        query = ObjectQuery(event_id=document["eventID"], client_id=document["clientID"])
        mine = [
            r for r in await self._store.search(Kind.REPORT, query) if r["id"] != document["id"]
        ]
        async with self._uow() as uow:
            asked = await uow.events.get(event_id)
        if asked is None:
            return 0.0  # not dispatched by gridcore: nothing to count towards
        # what its resources declare they can shed caps what it says it did
        resources = await self._store.search(
            Kind.RESOURCE, ObjectQuery(client_id=document["clientID"])
        )
        caps = {r["resourceName"]: bridge.declared_kw(r) for r in resources}
        cap = bridge.share_kw(openadr_event) if share else asked.requested_reduction_kw
        before = bridge.delivered_kw(mine[-1], caps, cap) if mine else 0.0
        delta = bridge.delivered_kw(document, caps, cap) - before
        if not delta:
            return 0.0
        async with self._uow() as uow:
            if not await uow.events.lock([event_id]):
                return 0.0  # not dispatched by gridcore: nothing to count towards
            await uow.events.add_actual_reduction(event_id, delta)
            await uow.commit()
        log.info("bridge: report %s adds %.3f kW to event %s", document["id"], delta, event_id)
        return delta

    async def _has_share(self, openadr_event: Document, client_id: str) -> bool:
        for ven in await self._store.search(Kind.VEN, ObjectQuery(client_id=client_id)):
            if await self._store.get(Kind.EVENT, bridge.share_id(openadr_event["id"], ven["id"])):
                return True
        return False

    @staticmethod
    def _gridcore_id(openadr_event: Document) -> str:
        if openadr_event.get("programID") == bridge.GRIDCORE_PROGRAM_ID:
            return str(openadr_event["eventName"])
        parent = bridge.share_parent(openadr_event)
        return bridge.bridged_event_id(parent or openadr_event["id"])

    # --- gridcore -> OpenADR ----------------------------------------------------

    async def mirror(self, event: DrEvent) -> None:
        """Serve a gridcore event (POST /api/events) as an OpenADR event of
        gridcore's program, or withdraw it once cancelled."""
        if event.status is EventStatus.CANCELLED:
            removed = await self._store.remove(Kind.EVENT, bridge.mirror_id(event.id))
            await self.publish(removed)
            return
        now = stamp(self._clock.now())
        await self._ensure_program(now)
        stored = await self._store.get(Kind.EVENT, bridge.mirror_id(event.id))
        created = stored["createdDateTime"] if stored else now
        document = bridge.mirror_event(event, created, now, stamp(event.start_time))
        await self._put(Kind.EVENT, document, index_of(Kind.EVENT, document), stored)

    async def _ensure_program(self, now: str) -> None:
        if await self._store.get(Kind.PROGRAM, bridge.GRIDCORE_PROGRAM_ID) is not None:
            return
        program = bridge.gridcore_program(now)
        try:
            await self._store.add(Kind.PROGRAM, program, index_of(Kind.PROGRAM, program))
        except Conflict:  # another process made it first (or a BL took the name: logged)
            if await self._store.get(Kind.PROGRAM, bridge.GRIDCORE_PROGRAM_ID) is None:
                raise
            return
        await self.publish([ObjectChange("CREATE", Kind.PROGRAM, program)])

    # --- what the fleet did, as reports ---------------------------------------------

    async def refresh_reports(self) -> int:
        """The worker's pass: rewrite the bridge's report of every OpenADR event
        (bridged or mirrored) that has not ended, or ended within the horizon,
        and whose gridcore event was dispatched. One failure does not stop the
        others."""
        now = self._clock.now()
        query = ObjectQuery(active_at=now - REPORT_HORIZON)
        written, skip = 0, 0
        while page := await self._store.search(Kind.EVENT, query, skip, _PAGE):
            skip += len(page)
            for document in page:
                try:
                    written += await self._refresh(document)
                except Exception:
                    log.exception("bridge: report of OpenADR event %s failed", document["id"])
        return written

    async def _refresh(self, document: Document) -> int:
        if bridge.share_parent(document) is not None:
            return 0  # a device's share: the report is on the event it is a share of
        async with self._uow() as uow:
            event = await uow.events.get(self._gridcore_id(document))
        if event is None or event.status in (EventStatus.SCHEDULED, EventStatus.CANCELLED):
            return 0
        if event.status.is_final and await self._settled(document, event):
            return 0
        program = await self._store.get(Kind.PROGRAM, document["programID"])
        await self._write_report(document, program, event)
        return 1

    async def _settled(self, document: Document, event: DrEvent) -> bool:
        """An ended event whose report was written after its measurement was
        kept: nothing will change it, so the pass reads none of its commands
        again (an event of 100,000 VENs is 100,000 of them)."""
        if self._performance is None or self._method is None:
            return False
        kept = await self._performance.get(event.id, self._method)
        written = await self._store.get(Kind.REPORT, bridge.report_id(document["id"]))
        return (
            kept is not None
            and written is not None
            and parse_date_time(written["modificationDateTime"]) >= kept.computed_at
        )

    async def _results(self, event: DrEvent) -> list[VenResult]:
        """Per VEN sent the event: its newest shed command's ACK and delivered
        kW, and the kW the kept measurement verified."""
        async with self._uow() as uow:
            commands = await uow.commands.for_event(event.id)
        newest: dict[str, Any] = {}
        for c in sorted(commands, key=lambda c: c.created_at):
            if c.op in (CommandOp.EVENT, CommandOp.SHED_LOAD):
                newest[c.ven_id] = c
        measured: dict[str, float | None] = {}
        if self._performance is not None and self._method is not None:
            kept = await self._performance.get(event.id, self._method)
            if kept is not None:
                measured = {line.ven_id: line.avg_shed_kw for line in kept.vens}
        return [
            VenResult(ven_id, c.ack_status, c.delivered_kw, measured.get(ven_id))
            for ven_id, c in sorted(newest.items())
        ]

    async def _write_report(
        self,
        document: Document,
        program: Document | None,
        event: DrEvent | None,
        *,
        reason: str | None = None,
    ) -> None:
        now = stamp(self._clock.now())
        results = [] if event is None else await self._results(event)
        start = stamp(event.start_time) if event else now
        span = (event.ended_at or event.end_time) - event.start_time if event else timedelta(0)
        the_id = bridge.report_id(document["id"])
        stored = await self._store.get(Kind.REPORT, the_id)
        report = bridge.report(
            document,
            program,
            results,
            start=start,
            duration=bridge.iso_duration(span),
            created=stored["createdDateTime"] if stored else now,
            modified=now,
            reason=reason,
        )
        if stored is not None and _same(stored, report):
            return
        index = index_of(Kind.REPORT, report, program_id=document["programID"])
        await self._put(Kind.REPORT, report, index, stored)


def _same(a: Document, b: Document) -> bool:
    """Equal but for the modification time: no rewrite, no notification."""
    return {**a, "modificationDateTime": None} == {**b, "modificationDateTime": None}
