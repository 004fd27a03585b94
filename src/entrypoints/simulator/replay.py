"""A fleet of simulated VENs through one DR event in virtual time, against
gridcore's own dispatcher and measurement: what the rebound measurement
shows with and without staggered restores on the same homes (issue 14).

Hours of an event take seconds: no broker and no wall clock. Each step
every VEN reports (its metering message decoded as the worker decodes it,
into the in-memory telemetry store and its 5-minute intervals), the
dispatcher runs one pass, and its commands reach the VENs as the bytes they
would receive on ``ven/cmd/{venId}``; their ACKs come back the same way.
The homes, their loads' rebound and every rule on either side are the ones
``gridcore ven`` and ``gridcore worker`` run; only the transport and the
clock are replaced. ``gridcore demo`` shows the same live, in real time.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta

from adapters.memory.performance import InMemoryPerformanceStore
from adapters.memory.repositories import InMemoryUnitOfWorkFactory
from adapters.memory.telemetry import (
    InMemoryTelemetry,
    InMemoryTelemetryQueries,
    InMemoryTelemetryStore,
)
from adapters.mqtt.commands import encode_command
from adapters.mqtt.payloads import AckWire, TelemetryWire, to_telemetry_sample, to_ven_ack
from adapters.mqtt.topics import ACK_FILTER, METERING, match_levels
from adapters.system import ManualClock, SequentialIds
from entrypoints.simulator.backfill import backfill_store
from entrypoints.simulator.fleet import FleetConfig, build_vens
from gridcore import services
from gridcore.correlation import Command
from gridcore.dispatch import Dispatcher, DispatchPolicy
from gridcore.ports import BrokerMessage
from gridcore.verification import PerformanceReport, Programme, event_report

# A Wednesday evening peak, in UTC (the programme's time zone here).
DEFAULT_START = datetime(2026, 7, 15, 17, 0, tzinfo=UTC)


@dataclass(frozen=True, slots=True)
class ReplayedEvent:
    """One event over a simulated fleet: what to run."""

    vens: int = 50
    seed: int = 0
    start: datetime = DEFAULT_START
    duration: timedelta = timedelta(hours=2)
    kw_per_ven: float = 1.0  # the event requests this times the fleet's size
    restore_spread: timedelta = timedelta(0)
    # Telemetry every step (the documents' VENs: 5 s; coarser is faster and
    # fills the same 5-minute intervals).
    step: timedelta = timedelta(seconds=30)
    # Live reporting starts this long before the event (the day-of
    # adjustment's hours); the days before are filled as ``gridcore demo``
    # fills them (``--backfill-days``), for an X of Y baseline.
    lead: timedelta = timedelta(hours=4, minutes=5)
    history_days: int = 16
    method: str = "10-in-10"


@dataclass
class _Outbox:
    """The dispatcher's publisher: commands wait here for the step to deliver them."""

    sent: list[Command]

    async def publish(self, command: Command) -> None:
        self.sent.append(command)


async def replay_event(run: ReplayedEvent) -> PerformanceReport:
    """Run ``run`` to the end of its rebound span (and its restores') and
    measure it with ``run.method``."""
    clock = ManualClock(run.start - run.lead)
    uow = InMemoryUnitOfWorkFactory()
    telemetry = InMemoryTelemetry()
    store = InMemoryTelemetryStore(uow.state, telemetry)
    queries = InMemoryTelemetryQueries(uow.state, telemetry)
    outbox = _Outbox([])
    policy = replace(DispatchPolicy(), restore_spread=run.restore_spread, reconcile_after=None)
    dispatcher = Dispatcher(uow, queries, outbox, clock, policy)
    config = FleetConfig(count=run.vens, seed=run.seed)
    vens = {v.ven_id: v for v in build_vens(config)}
    await backfill_store(store, config, now=clock.now(), days=run.history_days)
    programme = Programme(method=run.method)
    event = await services.create_event(
        uow,
        clock,
        SequentialIds(),
        start_time=run.start,
        end_time=run.start + run.duration,
        requested_reduction_kw=run.kw_per_ven * run.vens,
    )
    last = event.end_time + programme.rebound + run.restore_spread
    while clock.now() <= last:
        now = clock.now()
        await _deliver(uow, clock, store, [m for v in vens.values() for m in v.report(now)])
        await dispatcher.run_once()
        while outbox.sent:
            commands, outbox.sent = outbox.sent, []
            answers = [m for c in commands for m in vens[c.ven_id].handle(encode_command(c), now)]
            await _deliver(uow, clock, store, answers)
        clock.advance(run.step)
    return await event_report(
        uow,
        queries,
        InMemoryPerformanceStore(),
        event.id,
        programme=programme,
        now=clock.now(),
        recompute=True,
    )


async def _deliver(
    uow: InMemoryUnitOfWorkFactory,
    clock: ManualClock,
    store: InMemoryTelemetryStore,
    messages: Sequence[BrokerMessage],
) -> None:
    """What the worker does with the VENs' messages that measurement reads:
    metering into the telemetry store, ACKs into the ledger."""
    now = clock.now()
    samples = []
    for m in messages:
        text = m.payload.decode()
        if m.topic == METERING:
            samples.append(to_telemetry_sample(TelemetryWire.model_validate_json(text), text, now))
        elif (levels := match_levels(ACK_FILTER, m.topic)) is not None:
            (ven_id,) = levels
            ack = to_ven_ack(AckWire.model_validate_json(text), ven_id, text, now)
            await services.record_ack(uow, clock, ack)
    if samples:
        await services.ingest_telemetry(store, samples)
