"""The dispatcher: turns stored DR events into commands to VENs, and keeps
them honest until the event ends.

One pass (:meth:`Dispatcher.run_once`) does, in order:
1. activate events whose start has come: allocate the requested kW over the
   online VENs it targets (:func:`allocate_shed`; an untargeted event: every
   online VEN) and write one command per VEN into the ledger in the same
   transaction as the state change (the outbox);
2. complete events whose end has come, queueing a restore to every VEN that
   was sent the event (cancelling event commands never sent, and no longer
   retrying unanswered ones);
3. re-send commands whose ACK is overdue, with the same correlationId, at most
   ``max_retries`` times, then time them out;
3b. reconcile (:mod:`gridcore.reconcile`): re-assert, with the same
   correlationId, an accepted command whose VEN's telemetry has shown it not
   shedding for the event for ``reconcile_after`` (it rebooted); what it
   delivered stops counting until it answers again;
4. relay: publish what the outbox holds, once its time has come (a
   staggered restore waits, :mod:`gridcore.rebound`) (before step 5, which reads every
   command of every active event: a new event's commands do not wait for it);
5. re-allocate the shortfall of rejected, silent or short VENs to VENs the
   event targets with headroom, while time remains, and relay those commands.

Everything after activation follows from the commands (ACKs, retries,
restores, reconciliation, measurement): a VEN an event does not target is
never sent it, so nothing downstream counts it. An event's targets are
resolved against the VENs' granted targets when it is allocated (at
activation and at each re-allocation), under the allocation lock.

Delivery rule: a command is marked sent (and committed) *before* it is
published. A worker killed between the two never sends a duplicate; the ACK
deadline then re-sends it with the same correlationId, so nothing is missed.
A publish that fails outright is put back in the outbox at once.
"""

from __future__ import annotations

import asyncio
import logging
import math
from collections import Counter
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from gridcore.allocation import allocate_shed, allocate_watts, among_targeted
from gridcore.correlation import (
    DEFAULT_ACK_TIMEOUT,
    DEFAULT_MAX_RETRIES,
    Command,
    CommandLedger,
    CommandOp,
    CommandState,
    delivered_per_ven,
)
from gridcore.errors import RetriesExhausted
from gridcore.events import DrEvent, EventStatus
from gridcore.logfields import log_ids
from gridcore.ports import (
    Clock,
    CommandPublisher,
    DispatchLease,
    TelemetryQueries,
    UnitOfWork,
    UnitOfWorkFactory,
)
from gridcore.quantities import to_kw, to_watts
from gridcore.rebound import restore_offset
from gridcore.reconcile import reassert_silent

log = logging.getLogger("gridcore.dispatch")

# The relay's first batch; each next one doubles, up to DispatchPolicy.batch_size.
FIRST_RELAY_BATCH = 500


@dataclass(frozen=True, slots=True)
class DispatchPolicy:
    offline_after: timedelta = timedelta(seconds=60)
    ack_timeout: timedelta = timedelta(seconds=30)
    max_retries: int = 2
    # Smaller shortfalls are not worth another round of commands.
    rebalance_min_kw: float = 0.1
    # No re-allocation in an event's last moments: the VEN could not act in time.
    rebalance_min_remaining: timedelta = timedelta(seconds=30)
    # Judging shortfalls reads every command of every active event: not every pass.
    rebalance_every: timedelta = timedelta(seconds=5)
    batch_size: int = 10_000
    max_in_flight: int = 1_000
    # A VEN seen not shedding this long after accepting is sent the command
    # again (gridcore.reconcile); None: never.
    reconcile_after: timedelta | None = timedelta(seconds=60)
    # Reconciling reads the telemetry of every accepted VEN: not every pass.
    reconcile_every: timedelta = timedelta(seconds=5)
    # Restores staggered over this window after an event's end (gridcore.rebound).
    restore_spread: timedelta = timedelta(0)


@dataclass(slots=True)
class DispatchReport:
    activated: list[str] = field(default_factory=list)
    finished: list[str] = field(default_factory=list)
    published: int = 0
    retried: int = 0
    timed_out: int = 0
    reallocated: int = 0
    reasserted: int = 0
    failed: int = 0

    @property
    def idle(self) -> bool:
        """Nothing moved: the loop may sleep. (Failures alone count as idle, so a
        broker outage is retried at the normal pace, not in a hot loop.)"""
        return not (
            self.activated
            or self.finished
            or self.published
            or self.retried
            or self.timed_out
            or self.reallocated
            or self.reasserted
        )


def _duration_sec(event: DrEvent, ven_id: str, now: datetime, restore_spread: timedelta) -> int:
    """How long ``ven_id`` holds its shed: to the event's end plus its restore
    offset. A VEN restores by itself when the duration has run (the
    documents' VEN and the simulator do), so with staggered restores a
    duration ending at the event's end would still bring every home back in
    the same second; each holds until its own restore instead."""
    held = event.remaining(now) + restore_offset(event.id, ven_id, restore_spread)
    return max(math.ceil(held.total_seconds()), 1)


async def end_event_commands(
    uow: UnitOfWork, event: DrEvent, now: datetime, restore_spread: timedelta = timedelta(0)
) -> list[Command]:
    """At an event's end or stop (the caller holds the event's lock): cancel its
    event commands still in the outbox, stop retrying the unanswered ones, and
    queue one restore per VEN that was sent the event and has none yet, each
    (with a ``restore_spread``) not before its offset after the event's end, or
    its stop if earlier (:mod:`gridcore.rebound`)."""
    ledger = CommandLedger(await uow.commands.for_event(event.id))
    restores = ledger.end_event(
        event.id, now, ended=min(event.end_time, now), restore_spread=restore_spread
    )
    await uow.commands.update_many(ledger.changed())
    await uow.commands.add_many(ledger.added())
    return restores


async def lock_owners(
    uow: UnitOfWork, commands: Sequence[Command]
) -> tuple[dict[str, DrEvent], dict[str, Command]]:
    """Take the locks that guard ``commands``: their events' rows, then (after
    them, so the order is always the same) the rows of those outside any
    event. Returns the events and the event-less commands as they are once locked."""
    events = await uow.events.lock([c.event_id for c in commands if c.event_id is not None])
    loose = await uow.commands.lock([c.correlation_id for c in commands if c.event_id is None])
    return events, loose


async def locked_ledger(
    uow: UnitOfWork,
    read: Callable[[], Awaitable[Sequence[Command]]],
    *,
    ack_timeout: timedelta = DEFAULT_ACK_TIMEOUT,
    max_retries: int = DEFAULT_MAX_RETRIES,
) -> CommandLedger:
    """The commands ``read`` returns, as they are once their events are locked
    (commands outside an event locked themselves): read, lock what they belong
    to, read again, and keep what the locks cover. A command another
    transaction moved meanwhile is seen as it is now (or no longer returned),
    so decisions are taken on the fresh copy only."""
    events, loose = await lock_owners(uow, await read())
    return CommandLedger(
        [
            c
            for c in await read()
            if (c.event_id in events if c.event_id is not None else c.correlation_id in loose)
        ],
        ack_timeout=ack_timeout,
        max_retries=max_retries,
    )


def _ask(
    ledger: CommandLedger,
    event: DrEvent,
    ven_id: str,
    shed_kw: float,
    now: datetime,
    restore_spread: timedelta,
    supersedes: Command | None = None,
) -> Command:
    """Record an event command asking ``ven_id`` for ``shed_kw`` until the event
    ends (and its restore offset has passed); a re-allocation's raised target
    replaces the VEN's previous command."""
    return ledger.record(
        Command(
            correlation_id=ledger.next_id(event.id),
            ven_id=ven_id,
            op=CommandOp.EVENT,
            created_at=now,
            event_id=event.id,
            shed_kw=shed_kw,
            duration_sec=_duration_sec(event, ven_id, now, restore_spread),
            supersedes=supersedes.correlation_id if supersedes else None,
        )
    )


class Dispatcher:
    def __init__(
        self,
        uow_factory: UnitOfWorkFactory,
        queries: TelemetryQueries,
        publisher: CommandPublisher,
        clock: Clock,
        policy: DispatchPolicy | None = None,
        lease: DispatchLease | None = None,
    ) -> None:
        self._uow = uow_factory
        self._queries = queries
        self._publisher = publisher
        self._clock = clock
        self.policy = policy or DispatchPolicy()
        self._lease = lease
        self._last_rebalance: datetime | None = None
        self._last_reconcile: datetime | None = None
        # Commands whose re-assertions are used up, warned about once.
        self._exhausted: set[str] = set()

    async def release(self) -> None:
        """Give up the dispatch lease (on shutdown), so another worker takes over."""
        if self._lease is not None:
            await self._lease.release()

    async def run_once(self) -> DispatchReport:
        report = DispatchReport()
        if self._lease is not None and not await self._lease.hold():
            return report
        report.activated = await self.activate_due()
        report.finished = await self.finish_over()
        await self.handle_overdue(report)
        report.reasserted = await self.reconcile()
        # Relay before judging shortfalls: that reads every command of every
        # active event, and a new event's commands must not wait for it.
        await self.relay(report)
        report.reallocated = await self.rebalance()
        if report.reallocated:
            await self.relay(report)
        return report

    # --- 1. activation --------------------------------------------------

    async def _allocation_ledger(self, uow: UnitOfWork, event_id: str) -> CommandLedger:
        """Every command of every active event and of ``event_id``, read under
        the allocation lock: what each VEN already owes, so overlapping events
        never ask one home for the same kW twice."""
        active = [e.id for e in await uow.events.active()]
        return CommandLedger(await uow.commands.for_events([*active, event_id]))

    async def _targeted(self, uow: UnitOfWork, event: DrEvent) -> set[str] | None:
        """The VENs ``event`` targets, as granted now; None: untargeted, every VEN."""
        return await uow.vens.targeted(event.targets) if event.targets else None

    async def activate_due(self) -> list[str]:
        now = self._clock.now()
        async with self._uow() as uow:
            due = await uow.events.due(now)
        if not due:
            return []
        available = await self._queries.available_shed(now, self.policy.offline_after)
        activated = []
        for candidate in due:
            async with self._uow() as uow:
                await uow.commands.lock_allocation()
                event = (await uow.events.lock([candidate.id])).get(candidate.id)
                if event is None or not event.is_due(now):
                    continue  # cancelled or activated by someone else meanwhile
                if event.end_time <= now:
                    # Its whole window passed while no dispatcher ran: nothing to send.
                    finished = event.activate(now).complete(now)
                    await uow.events.save_status(finished, EventStatus.SCHEDULED)
                    await uow.commit()
                    log.warning(
                        "event %s: window passed before dispatch; completed",
                        event.id,
                        extra=log_ids(event.id),
                    )
                    continue
                ledger = await self._allocation_ledger(uow, event.id)
                owed = ledger.owed_w()
                headroom = {v: max(kw - to_kw(owed.get(v, 0)), 0.0) for v, kw in available.items()}
                targeted = await self._targeted(uow, event)
                shares = allocate_shed(event.requested_reduction_kw, headroom, targeted)
                for ven_id, kw in sorted(shares.items()):
                    if kw > 0:
                        _ask(ledger, event, ven_id, kw, now, self.policy.restore_spread)
                commands = ledger.added()
                await uow.events.save_status(event.activate(now), EventStatus.SCHEDULED)
                await uow.commands.add_many(commands)
                await uow.commit()
            activated.append(event.id)
            allocated = sum(c.shed_kw or 0.0 for c in commands)
            if targeted is not None:
                log.info(
                    "event %s targets %s: %d registered VEN(s) granted one",
                    event.id,
                    ", ".join(event.targets),
                    len(targeted),
                    extra=log_ids(event.id),
                )
            log.info(
                "event %s active: %.3f of %.3f kW allocated over %d online VEN(s)",
                event.id,
                allocated,
                event.requested_reduction_kw,
                len(commands),
                extra=log_ids(event.id),
            )
            if not commands:
                log.warning(
                    "event %s: no online VEN%s with shed available; nothing sent",
                    event.id,
                    "" if targeted is None else " it targets",
                    extra=log_ids(event.id),
                )
        return activated

    # --- 2. end ---------------------------------------------------------

    async def finish_over(self) -> list[str]:
        now = self._clock.now()
        async with self._uow() as uow:
            over = await uow.events.over(now)
        finished = []
        for candidate in over:
            async with self._uow() as uow:
                event = (await uow.events.lock([candidate.id])).get(candidate.id)
                if event is None or not event.is_over(now):
                    continue  # stopped (or completed) by someone else meanwhile
                await uow.events.save_status(event.complete(now), EventStatus.ACTIVE)
                restores = await end_event_commands(uow, event, now, self.policy.restore_spread)
                await uow.commit()
            finished.append(event.id)
            log.info(
                "event %s completed; %d restore(s) queued",
                event.id,
                len(restores),
                extra=log_ids(event.id),
            )
        return finished

    # --- 3. ACK deadlines -------------------------------------------------

    async def _locked(
        self, uow: UnitOfWork, read: Callable[[], Awaitable[Sequence[Command]]]
    ) -> CommandLedger:
        return await locked_ledger(
            uow, read, ack_timeout=self.policy.ack_timeout, max_retries=self.policy.max_retries
        )

    async def handle_overdue(self, report: DispatchReport) -> None:
        now = self._clock.now()
        policy = self.policy
        resend: list[Command] = []
        expired: list[Command] = []
        async with self._uow() as uow:
            ledger = await self._locked(uow, lambda: uow.commands.overdue(now, policy.batch_size))
            # Decided on the locked copy: an ACK that landed since the overdue
            # query is kept, and the command is not sent again.
            for command in ledger.overdue(now):
                try:
                    resend.append(ledger.retry(command.correlation_id, now))
                except RetriesExhausted:
                    expired.append(ledger.get(command.correlation_id))
            await uow.commands.update_many(ledger.changed())
            await uow.commit()
        # A line per event at INFO (WARNING for time-outs), whatever the pass's
        # size: a 10,000-VEN event whose VENs time out a few at a time would
        # otherwise write a line each. Each command's line is at DEBUG.
        if log.isEnabledFor(logging.DEBUG):  # a fleet's worth of arguments nobody keeps cost too
            for c in expired:
                log.debug(
                    "command %s to %s (event %s): no ACK after %d send(s); timed out",
                    c.correlation_id,
                    c.ven_id,
                    c.event_id,
                    c.attempts,
                    extra=log_ids(c.event_id, c.correlation_id, c.ven_id),
                )
            for c in resend:
                log.debug(
                    "command %s to %s: no ACK yet; retry %d of %d",
                    c.correlation_id,
                    c.ven_id,
                    c.attempts - 1,
                    policy.max_retries,
                    extra=log_ids(c.event_id, c.correlation_id, c.ven_id),
                )
        for event_id, n in sorted(Counter(c.event_id for c in expired).items(), key=str):
            log.warning("%d command(s) of event %s: no ACK after every send; timed out",
                        n, event_id, extra=log_ids(event_id))  # fmt: skip
        for event_id, n in sorted(Counter(c.event_id for c in resend).items(), key=str):
            log.info("%d command(s) of event %s: no ACK yet; sent again", n, event_id,
                     extra=log_ids(event_id))  # fmt: skip
        report.timed_out += len(expired)
        report.retried += len(resend)
        report.failed += await self._publish(resend)

    # --- 3b. reconciliation ----------------------------------------------

    async def reconcile(self) -> int:
        """Re-assert the accepted commands of active events whose VENs'
        telemetry shows them not shedding (:mod:`gridcore.reconcile`). The
        telemetry is read outside any lock (one query per event); the
        decision is taken on the commands as they are under the allocation
        lock and the event's lock, the locks activation and re-allocation
        take, in the same order: an ACK that lands meanwhile waits, or is
        seen, and delivered kW is counted once."""
        after = self.policy.reconcile_after
        now = self._clock.now()
        last = self._last_reconcile
        if after is None or (last is not None and now - last < self.policy.reconcile_every):
            return 0
        self._last_reconcile = now
        async with self._uow() as uow:
            active = await uow.events.active()
        reasserted = 0
        for candidate in active:
            silent = await self._queries.not_shedding(
                candidate.id,
                acked_before=now - after,
                since=now - after,
                limit=self.policy.batch_size,
            )
            if not silent:
                continue
            async with self._uow() as uow:
                await uow.commands.lock_allocation()
                event = (await uow.events.lock([candidate.id])).get(candidate.id)
                if event is None or event.status is not EventStatus.ACTIVE:
                    continue  # ended meanwhile: its restores are on their way
                ledger = CommandLedger(
                    await uow.commands.for_event(event.id, silent),
                    ack_timeout=self.policy.ack_timeout,
                    max_retries=self.policy.max_retries,
                )
                done = reassert_silent(ledger, event.id, silent, now - after)
                await uow.commands.update_many(ledger.changed())
                if done.delta_w:
                    await uow.events.add_actual_reduction(event.id, to_kw(done.delta_w))
                await uow.commit()
            reasserted += len(done.reasserted)
            for c in done.reasserted:
                log.warning(
                    "command %s to %s (event %s): re-asserted (same correlationId): "
                    "accepted at %s, but its telemetry has shown no shed for the event "
                    "for %gs (rebooted?); its %.3f kW do not count until it answers",
                    c.correlation_id,
                    c.ven_id,
                    event.id,
                    c.acked_at.isoformat() if c.acked_at else "?",
                    after.total_seconds(),
                    to_kw(delivered_per_ven([c]).get(c.ven_id, 0)),
                    extra=log_ids(event.id, c.correlation_id, c.ven_id),
                )
            for c in done.exhausted:
                if c.correlation_id not in self._exhausted:
                    self._exhausted.add(c.correlation_id)
                    log.warning(
                        "command %s to %s (event %s): telemetry shows no shed for the "
                        "event, but it was sent %d times already; not re-asserted again",
                        c.correlation_id,
                        c.ven_id,
                        event.id,
                        c.attempts,
                        extra=log_ids(event.id, c.correlation_id, c.ven_id),
                    )
        if len(self._exhausted) > 100_000:  # bounded: at worst a warning repeats
            self._exhausted.clear()
        return reasserted

    # --- 4. re-allocation -----------------------------------------------

    async def rebalance(self) -> int:
        now = self._clock.now()
        last = self._last_rebalance
        if last is not None and now - last < self.policy.rebalance_every:
            return 0
        self._last_rebalance = now
        async with self._uow() as uow:
            active = await uow.events.active()
        active = [e for e in active if e.remaining(now) >= self.policy.rebalance_min_remaining]
        if not active:
            return 0
        available: dict[str, float] | None = None
        created = 0
        for candidate in active:
            async with self._uow() as uow:
                # One probe first: while any VEN has not answered, the whole
                # ledger (100,000 rows at fleet size) is not read under the
                # locks every ACK batch of the event waits for.
                if await uow.commands.has_open(candidate.id):
                    continue
            async with self._uow() as uow:
                await uow.commands.lock_allocation()
                event = (await uow.events.lock([candidate.id])).get(candidate.id)
                if event is None or event.status is not EventStatus.ACTIVE:
                    continue  # stopped or completed meanwhile: nothing more to send
                ledger = await self._allocation_ledger(uow, event.id)
                latest = ledger.latest_per_ven(event.id)
                if not latest or any(c.state.is_open for c in latest.values()):
                    continue  # wait for every answer before judging the shortfall
                expected = ledger.expected_per_ven(event.id)
                gap = to_watts(event.requested_reduction_kw) - sum(expected.values())
                if gap < to_watts(self.policy.rebalance_min_kw):
                    continue
                if available is None:
                    available = await self._queries.available_shed(now, self.policy.offline_after)
                # Headroom is what a VEN can shed less what it owes every active
                # event (this one included): the same count activation uses.
                owed = ledger.owed_w()
                refused = {v for v, c in latest.items() if c.state is not CommandState.ACKED}
                # Only VENs the event targets (as granted now) take its shortfall.
                targeted = among_targeted(available, await self._targeted(uow, event))
                headroom = {
                    v: max(to_watts(kw) - owed.get(v, 0), 0)
                    for v, kw in targeted.items()
                    if v not in refused
                }
                extra = allocate_watts(min(gap, sum(headroom.values())), headroom)
                for v, w in sorted(extra.items()):
                    if w > 0:
                        mine = expected.get(v, 0)
                        _ask(
                            ledger,
                            event,
                            v,
                            to_kw(mine + w),
                            now,
                            self.policy.restore_spread,
                            supersedes=latest.get(v),
                        )
                commands = ledger.added()
                if not commands:
                    continue
                await uow.commands.add_many(commands)
                await uow.commit()
            created += len(commands)
            log.info(
                "event %s: %.3f kW short; re-allocated to %d VEN(s) with headroom",
                event.id,
                to_kw(gap),
                len(commands),
                extra=log_ids(event.id),
            )
        return created

    # --- 5. relay -------------------------------------------------------

    async def relay(self, report: DispatchReport) -> None:
        """Publish what the outbox holds, in batches: while one batch is
        published, the next is marked sent (each batch is marked and committed
        before its publish starts, the delivery rule). The first batch is
        small (:data:`FIRST_RELAY_BATCH`) and each next one doubles, up to the
        policy's ``batch_size``: the first commands leave after marking a few
        hundred rows, not 10,000, and a 100,000-VEN event costs the time of
        its publishing, not that plus its marking. Stops at a publish failure
        (the failed commands are back in the outbox, for the next pass)."""
        size = min(FIRST_RELAY_BATCH, self.policy.batch_size)
        publishing: asyncio.Task[int] | None = None
        in_flight = 0

        async def settle() -> int:
            nonlocal publishing
            assert publishing is not None
            # Shielded: a cancelled pass still waits for the batch it publishes.
            failed = await asyncio.shield(publishing)
            publishing = None
            report.published += in_flight - failed
            report.failed += failed
            return failed

        try:
            while True:
                marked = await self._mark_sent(size)
                if publishing is not None and await settle() and marked:
                    # The broker refused the last batch: this one (already
                    # marked) is tried once too, then the pass ends.
                    failed = await self._publish(marked)
                    report.published += len(marked) - failed
                    report.failed += failed
                    return
                if not marked:
                    return
                in_flight = len(marked)
                publishing = asyncio.create_task(self._publish(marked))
                if len(marked) < size:  # the outbox is empty
                    return
                size = min(size * 2, self.policy.batch_size)
        finally:
            if publishing is not None:
                await settle()

    async def _mark_sent(self, limit: int) -> list[Command]:
        """Take up to ``limit`` commands from the outbox, marked sent and committed."""
        now = self._clock.now()
        async with self._uow() as uow:
            ledger = await self._locked(uow, lambda: uow.commands.pending(limit, now=now))
            for command in ledger.commands():
                ledger.sent(command.correlation_id, now)
            marked = ledger.changed()
            await uow.commands.update_many(marked)
            await uow.commit()
        return marked

    async def _publish(self, commands: Sequence[Command]) -> int:
        """Publish concurrently (bounded); put the ones that failed back in the outbox."""
        if not commands:
            return 0
        gate = asyncio.Semaphore(self.policy.max_in_flight)
        each = log.isEnabledFor(logging.DEBUG)  # the arguments of lines nobody keeps cost too

        async def send(command: Command) -> Command | None:
            async with gate:
                try:
                    await self._publisher.publish(command)
                except Exception as exc:  # any transport failure: retry via the outbox
                    log.warning(
                        "publish of %s to %s failed: %s",
                        command.correlation_id,
                        command.ven_id,
                        exc,
                        extra=log_ids(command.event_id, command.correlation_id, command.ven_id),
                    )
                    return command
            if each:
                log.debug(
                    "sent %s %s to %s (attempt %d)",
                    command.op.value,
                    command.correlation_id,
                    command.ven_id,
                    command.attempts,
                    extra=log_ids(command.event_id, command.correlation_id, command.ven_id),
                )
            return None

        failed = [c for c in await asyncio.gather(*(send(c) for c in commands)) if c is not None]
        _log_sent(commands, failed)
        if failed:
            async with self._uow() as uow:
                ids = [c.correlation_id for c in failed]

                async def current() -> list[Command]:
                    return list((await uow.commands.get_many(ids)).values())

                ledger = await self._locked(uow, current)
                for c in failed:
                    if c.correlation_id in ledger:
                        ledger.unsent(c.correlation_id, c.attempts)
                await uow.commands.update_many(ledger.changed())
                await uow.commit()
        return len(failed)


def _log_sent(commands: Sequence[Command], failed: Sequence[Command]) -> None:
    """A batch's INFO lines: one per event and op, not one per command (at
    100,000 VENs a line each was 100,000 lines, about 0.75 s of the
    dispatcher's time, and an event sent a few VENs at a time would still log
    a line each); each command's line is at DEBUG, and the ledger keeps every
    correlationId, VEN and send time."""
    if not log.isEnabledFor(logging.INFO):
        return
    lost = {c.correlation_id for c in failed}
    groups: dict[tuple[str | None, str], list[Command]] = {}
    for c in commands:
        if c.correlation_id not in lost:
            groups.setdefault((c.event_id, c.op.value), []).append(c)
    for (event_id, op), sent in groups.items():
        ids = sorted(c.correlation_id for c in sent)
        retries = sum(c.attempts > 1 for c in sent)
        log.info(
            "sent %d %s command(s) (%s), %d of them again: %s",
            len(sent),
            op,
            f"event {event_id}" if event_id else "no event",
            retries,
            ids[0] if len(ids) == 1 else f"{ids[0]} .. {ids[-1]}",
            extra=log_ids(event_id),
        )
