"""The worker's MQTT consumer: every message received is routed by topic,
parsed once, and handed to a gridcore use case, or dead-lettered.

- telemetry (``volttron/metering``, extra telemetry topics) -> batched
  ``ingest_telemetry`` (VEN auto-registered, heartbeat advanced); a message
  may carry several samples (``{"venId", "samples": [...]}``), each validated
  on its own: a bad one is dead-lettered alone, the others are kept;
- ACKs (``ven/ack/{venId}``) -> ``record_acks``, in batches of what arrived
  together (ledger match, ``ven_acks``: one transaction per batch);
- shadow updates (``$aws/things/{venId}/shadow/update``) -> ``ShadowStore.update``;
- status messages (``ven_statuses``), load snapshots (``ven/loads/{venId}``)
  and alerts (``ven/alerts/{venId}``) -> their stores (:class:`StatusSink`,
  :class:`LoadSnapshotSink`, :class:`AlertSink`), when configured, in
  batches (:mod:`adapters.mqtt.report_batching`).

A message that is oversize, not UTF-8 JSON, fails validation, or names a VEN
other than its topic's goes to the dead-letter table with topic, raw bytes,
reason and time; it is counted and the loop goes on. Storage outages are
absorbed by :mod:`adapters.mqtt.buffering`.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from pydantic import ValidationError

from adapters.metrics import ACK_ROUND_TRIP
from adapters.mqtt.buffering import (
    HeldWrite,
    Job,
    RetryPolicy,
    TelemetryBatcher,
    WriteQueue,
    WriteStats,
)
from adapters.mqtt.payloads import (
    AckWire,
    AlertWire,
    LoadSnapshotWire,
    PayloadTooLargeError,
    ShadowUpdateWire,
    StatusWire,
    TelemetryWire,
    batch_samples,
    decode_text,
    sample_text,
    to_telemetry_sample,
    to_ven_ack,
    to_ven_alert,
)
from adapters.mqtt.report_batching import ReportBatcher
from adapters.mqtt.topics import MessageKind, Routed, TopicRouter
from gridcore.alerts import MAX_ALERT_BYTES, VenAlert
from gridcore.correlation import AckMatch, VenAck
from gridcore.errors import InvalidInput
from gridcore.plausibility import ReportLimits
from gridcore.ports import (
    BrokerMessage,
    Clock,
    MessageTransport,
    ShadowStore,
    TelemetryStore,
    UnitOfWorkFactory,
)
from gridcore.reports import LoadSnapshot, VenStatusReport
from gridcore.services import record_ack, record_acks, record_dead_letter
from gridcore.telemetry import DeadLetter
from gridcore.ven import validate_ven_id

log = logging.getLogger("adapters.mqtt.consumer")


class StatusSink(Protocol):
    """Where VEN status reports go (``ven_statuses``): the write half of
    :class:`gridcore.ports.VenStatusStore`."""

    async def record_statuses(self, reports: Sequence[VenStatusReport]) -> int: ...


class LoadSnapshotSink(Protocol):
    """Where ``ven/loads/{venId}`` snapshots go (``load_snapshots``): the write
    half of :class:`gridcore.ports.LoadSnapshotStore`."""

    async def record_snapshots(self, snapshots: Sequence[LoadSnapshot]) -> int: ...


class AlertSink(Protocol):
    """Where ``ven/alerts/{venId}`` alerts go (``ven_alerts``): the write half
    of :class:`gridcore.ports.VenAlertStore`."""

    async def record_alerts(self, alerts: Sequence[VenAlert]) -> int: ...


class RejectedMessageError(Exception):
    """A message that cannot be accepted; ``reason`` goes to the dead letter."""

    def __init__(self, category: str, detail: str) -> None:
        super().__init__(f"{category}: {detail}")
        self.category = category
        self.detail = detail


@dataclass(frozen=True, slots=True)
class ConsumerConfig:
    batch_size: int = 500
    batch_max_delay: float = 0.05
    max_held_samples: int = 50_000
    max_held_writes: int = 10_000
    auto_register: bool = True
    retry: RetryPolicy = field(default_factory=RetryPolicy)
    drain_timeout: float = 30.0
    limits: ReportLimits = field(default_factory=ReportLimits)  # loads, clock skew


@dataclass
class ConsumerStats:
    received: int = 0
    by_kind: Counter[str] = field(default_factory=Counter)
    rejected: Counter[str] = field(default_factory=Counter)  # by reason category
    # The same rejections by (kind of topic, reason category), for the metrics
    # (the kind is "unrouted" for a topic no route handles).
    dead_letters: Counter[tuple[str, str]] = field(default_factory=Counter)
    acks: Counter[str] = field(default_factory=Counter)  # stored ACKs by outcome
    unstored: Counter[str] = field(default_factory=Counter)  # valid, but no sink configured
    batched_samples: int = 0  # samples that came several to a message
    # Alerts written, by severity (re-deliveries included, as ``writes.counts``):
    # what gridcore_ven_alerts_total{severity} exports.
    alerts: Counter[str] = field(default_factory=Counter)
    writes: WriteStats = field(default_factory=WriteStats)

    @property
    def dead_lettered(self) -> int:
        return self.rejected.total()


def _validation_detail(exc: ValidationError) -> str:
    first = exc.errors(include_url=False)[:3]
    parts = [f"{'.'.join(str(p) for p in e['loc']) or '(root)'}: {e['msg']}" for e in first]
    more = exc.error_count() - len(first)
    return "; ".join(parts) + (f" (+{more} more)" if more > 0 else "")


class MqttConsumer:
    """Consumes a transport's messages until the transport is closed (or the
    ``run`` task is cancelled), then writes what it still holds."""

    def __init__(
        self,
        transport: MessageTransport,
        router: TopicRouter,
        *,
        uow_factory: UnitOfWorkFactory,
        telemetry_store: TelemetryStore,
        shadow_store: ShadowStore | None,
        clock: Clock,
        config: ConsumerConfig | None = None,
        status_sink: StatusSink | None = None,
        load_sink: LoadSnapshotSink | None = None,
        alert_sink: AlertSink | None = None,
    ) -> None:
        self.config = config or ConsumerConfig()
        self.stats = ConsumerStats()
        self._transport = transport
        self._router = router
        self._uow_factory = uow_factory
        self._shadows = shadow_store
        self._clock = clock
        cfg = self.config
        self.statuses: ReportBatcher[VenStatusReport] | None = None
        self.snapshots: ReportBatcher[LoadSnapshot] | None = None
        self.alerts: ReportBatcher[VenAlert] | None = None
        self._alert_sink = alert_sink
        if status_sink is not None:
            self.statuses = ReportBatcher(
                "status", status_sink.record_statuses, uow_factory, clock,
                batch_size=cfg.batch_size, max_delay=cfg.batch_max_delay,
                max_held=cfg.max_held_writes, retry=cfg.retry, stats=self.stats.writes,
            )  # fmt: skip
        if load_sink is not None:
            self.snapshots = ReportBatcher(
                "load snapshot", load_sink.record_snapshots, uow_factory, clock,
                batch_size=cfg.batch_size, max_delay=cfg.batch_max_delay,
                max_held=cfg.max_held_writes, retry=cfg.retry, stats=self.stats.writes,
            )  # fmt: skip
        if alert_sink is not None:
            self.alerts = ReportBatcher(
                "alert", self._store_alerts, uow_factory, clock,
                batch_size=cfg.batch_size, max_delay=cfg.batch_max_delay,
                max_held=cfg.max_held_writes, retry=cfg.retry, stats=self.stats.writes,
            )  # fmt: skip
        self.batcher = TelemetryBatcher(
            telemetry_store, uow_factory, clock,
            batch_size=cfg.batch_size, max_delay=cfg.batch_max_delay,
            max_held=cfg.max_held_samples, auto_register=cfg.auto_register,
            retry=cfg.retry, stats=self.stats.writes,
        )  # fmt: skip
        self.writes = WriteQueue(
            uow_factory, clock, max_held=cfg.max_held_writes, retry=cfg.retry,
            stats=self.stats.writes,
        )  # fmt: skip

    async def run(self) -> None:
        writers = [
            asyncio.create_task(self.batcher.run(), name="telemetry-writer"),
            asyncio.create_task(self.writes.run(), name="write-queue"),
        ]
        writers += [
            asyncio.create_task(reports.run(), name=f"{reports.what}-writer")
            for reports in self._report_batchers()
        ]
        try:
            async for message in self._transport.messages():
                await self.handle(message)
        finally:
            self.batcher.close()
            for reports in self._report_batchers():
                reports.close()
            await self.writes.close()
            done, pending = await asyncio.wait(writers, timeout=self.config.drain_timeout)
            for task in pending:
                task.cancel()
            if pending:
                log.error(
                    "shutdown: %d samples and some writes could not be stored in %.0fs",
                    self.batcher.held,
                    self.config.drain_timeout,
                )
            for task in done:
                if not task.cancelled() and task.exception() is not None:
                    log.error("writer failed", exc_info=task.exception())

    async def flushed(self) -> None:
        """Wait until everything handled so far has been written."""
        await self.batcher.flushed()
        for reports in self._report_batchers():
            await reports.flushed()
        await self.writes.flushed()

    def _report_batchers(self) -> list[ReportBatcher[Any]]:
        return [b for b in (self.statuses, self.snapshots, self.alerts) if b is not None]

    async def handle(self, message: BrokerMessage) -> None:
        """Route one message. Never raises for bad input."""
        self.stats.received += 1
        kind = "unrouted"
        try:
            routed = self._router.route(message.topic)
            if routed is None:
                raise RejectedMessageError("no route", f"nothing handles topic {message.topic!r}")
            kind = routed.kind
            self.stats.by_kind[kind] += 1
            text = decode_text(message.payload)
            if routed.kind is MessageKind.TELEMETRY:
                # The hot path: parse, map, hold. No await unless the buffer is full.
                try:
                    wire = TelemetryWire.model_validate_json(text)
                except ValidationError:
                    batch = batch_samples(text)  # a batch without venId, or an array
                    if batch is None:
                        raise
                    await self._telemetry_batch(message, routed, *batch)
                    return
                if wire.samples is not None:
                    await self._telemetry_batch(message, routed, *_batch_of(text))
                    return
                self._check_ven(routed, wire.ven_id)
                sample = to_telemetry_sample(wire, text, now := self._clock.now())
                self.config.limits.check(sample.timestamp, now, len(sample.loads))
                self.batcher.add(sample, message.topic)
                _settle(message)
                await self.batcher.wait_for_room()
            else:
                await self._handle_other(message, routed, text)
        except PayloadTooLargeError as exc:
            await self._reject(message, RejectedMessageError("oversize", str(exc)), kind)
        except UnicodeDecodeError as exc:
            await self._reject(
                message, RejectedMessageError("unparseable", f"not UTF-8: {exc}"), kind
            )
        except ValidationError as exc:
            await self._reject(message, _validation_rejection(exc), kind)
        except RejectedMessageError as exc:
            await self._reject(message, exc, kind)
        except InvalidInput as exc:
            await self._reject(message, RejectedMessageError("invalid", str(exc)), kind)
        except json.JSONDecodeError as exc:  # a batch's envelope (payloads.batch_samples)
            await self._reject(message, RejectedMessageError("unparseable", str(exc)), kind)
        except Exception as exc:
            # A message no rule above foresaw must not stop the loop (and with
            # it every VEN's data): it is kept with what went wrong, and logged
            # with its traceback, because it is a gap in validation to close.
            log.exception("message on %s failed unexpectedly; dead-lettered", message.topic)
            detail = f"{type(exc).__name__}: {exc}"
            await self._reject(message, RejectedMessageError("internal", detail), kind)

    async def _telemetry_batch(
        self, message: BrokerMessage, routed: Routed, ven_id: str | None, samples: list[Any]
    ) -> None:
        """Several samples in one message: each is validated as a single
        message would be; a bad one is dead-lettered alone (its own JSON,
        with its position), the others are held for the batch write."""
        self._check_ven(routed, ven_id)
        now = self._clock.now()
        for n, raw in enumerate(samples):
            text: str | None = None
            try:
                text = sample_text(raw, ven_id)
                wire = TelemetryWire.model_validate_json(text)
                self._check_ven(routed, wire.ven_id)
                if ven_id is not None and wire.ven_id != ven_id:
                    raise RejectedMessageError(
                        "ven mismatch", f"batch of VEN {ven_id!r} holds a sample of {wire.ven_id!r}"
                    )
                sample = to_telemetry_sample(wire, text, now)
                self.config.limits.check(sample.timestamp, now, len(sample.loads))
            except Exception as exc:  # one sample's fault; never the others'
                rejection = _rejection(exc)
                where = f"sample {n + 1} of {len(samples)}: "
                body = text.encode() if text is not None else repr(raw)[:2000].encode()
                await self._reject(
                    message,
                    RejectedMessageError(rejection.category, where + rejection.detail),
                    routed.kind,
                    payload=body,
                    settles=False,
                )
                continue
            self.batcher.add(sample, message.topic)
            self.stats.batched_samples += 1
        _settle(message)
        await self.batcher.wait_for_room()

    @staticmethod
    def _check_ven(routed: Routed, payload_ven: str | None) -> None:
        if routed.ven_id is not None and payload_ven is not None and payload_ven != routed.ven_id:
            raise RejectedMessageError(
                "ven mismatch", f"topic names VEN {routed.ven_id!r}, payload {payload_ven!r}"
            )

    async def _handle_other(self, message: BrokerMessage, routed: Routed, text: str) -> None:
        now = self._clock.now()
        kind = routed.kind
        if kind is MessageKind.ACK:
            ack_wire = AckWire.model_validate_json(text)
            self._check_ven(routed, ack_wire.ven_id)
            ven_id = routed.ven_id or ack_wire.ven_id
            if not ven_id:
                raise RejectedMessageError(
                    "invalid", "an ACK needs its VEN in the topic or in venId"
                )
            try:
                ack = to_ven_ack(ack_wire, ven_id, text, now)
            except ValueError as exc:
                raise RejectedMessageError("invalid", str(exc)) from None

            async def store_ack() -> None:
                self._observe_acks([await record_ack(self._uow_factory, self._clock, ack)])

            await self.writes.put(
                HeldWrite(
                    "ack",
                    store_ack,
                    message.topic,
                    message.payload,
                    batch=self._store_acks,
                    item=ack,
                    settle=message.settle,
                )
            )
        elif kind is MessageKind.SHADOW:
            ShadowUpdateWire.model_validate_json(text)
            if not routed.ven_id:
                raise RejectedMessageError("invalid", "a shadow update needs the VEN in its topic")
            shadows, ven, document = (
                self._shadows,
                validate_ven_id(routed.ven_id),
                _json_object(text),
            )
            if shadows is None:
                self.stats.unstored[kind] += 1
                _settle(message)
                return

            async def store_shadow() -> None:
                await shadows.update(ven, document, now)

            await self._hold("shadow", store_shadow, message)
        elif kind is MessageKind.LOADS:
            snap = LoadSnapshotWire.model_validate_json(text)
            self._check_ven(routed, snap.ven_id)
            if self.snapshots is None:
                self.stats.unstored[kind] += 1
                _settle(message)
                return
            try:
                snapshot = LoadSnapshot(
                    snap.ven_id, snap.timestamp, snap.load_samples(), _raw_loads(text), now
                )
                self.config.limits.check(snapshot.timestamp, now, len(snapshot.loads))
            except InvalidInput as exc:
                raise RejectedMessageError("invalid", str(exc)) from None
            self.snapshots.add(snapshot, message.topic, message.payload)
            _settle(message)
            await self.snapshots.wait_for_room()
        elif kind is MessageKind.ALERT:
            if len(message.payload) > MAX_ALERT_BYTES:
                size = len(message.payload)
                raise RejectedMessageError(
                    "oversize", f"an alert of {size} bytes; at most {MAX_ALERT_BYTES}"
                )
            alert_wire = AlertWire.model_validate_json(text)
            self._check_ven(routed, alert_wire.ven_id)
            alert_ven = routed.ven_id or alert_wire.ven_id
            if not alert_ven:
                raise RejectedMessageError("invalid", "an alert needs its VEN in topic or venId")
            try:
                alert = to_ven_alert(alert_wire, alert_ven, now)
                self.config.limits.check(alert.timestamp, now)
            except InvalidInput as exc:
                raise RejectedMessageError("invalid", str(exc)) from None
            if self.alerts is None:
                self.stats.unstored[kind] += 1
                _settle(message)
                return
            self.alerts.add(alert, message.topic, message.payload)
            _settle(message)
            await self.alerts.wait_for_room()
        elif kind is MessageKind.STATUS:
            status = StatusWire.model_validate_json(text)
            self._check_ven(routed, status.ven_id)
            if self.statuses is None:
                self.stats.unstored[kind] += 1
                _settle(message)
                return
            try:
                report = VenStatusReport(
                    status.ven_id, status.status, status.timestamp or now, status.details, now
                )
                self.config.limits.check(report.timestamp, now)
            except InvalidInput as exc:
                raise RejectedMessageError("invalid", str(exc)) from None
            self.statuses.add(report, message.topic, message.payload)
            _settle(message)
            await self.statuses.wait_for_room()

    async def _store_acks(self, acks: Sequence[VenAck]) -> None:
        self._observe_acks(await record_acks(self._uow_factory, self._clock, acks))

    def _observe_acks(self, matches: Sequence[AckMatch]) -> None:
        """Count a committed batch's ACKs by outcome, and the round trip of
        those that answered their command now (not duplicates)."""
        self.stats.acks.update(m.outcome.value for m in matches)
        by_op: dict[str, list[float]] = {}
        for m in matches:
            command = m.command
            if m.changed and command is not None and command.response_time is not None:
                by_op.setdefault(command.op.value, []).append(command.response_time.total_seconds())
        for op, seconds in by_op.items():
            ACK_ROUND_TRIP.observe_many(op, seconds)

    async def _store_alerts(self, alerts: Sequence[VenAlert]) -> None:
        """Write a batch of alerts, then count them by severity: the hook of
        the ``gridcore_ven_alerts_total{severity}`` counter (counted once
        written, as ``writes.counts`` is)."""
        assert self._alert_sink is not None  # only wired with a sink
        await self._alert_sink.record_alerts(alerts)
        self.stats.alerts.update(alert.severity.value for alert in alerts)

    async def _hold(self, what: str, run: Job, message: BrokerMessage) -> None:
        await self.writes.put(
            HeldWrite(what, run, message.topic, message.payload, settle=message.settle)
        )

    async def _reject(
        self,
        message: BrokerMessage,
        rejection: RejectedMessageError,
        kind: str,
        *,
        payload: bytes | None = None,
        settles: bool = True,
    ) -> None:
        """Dead-letter ``message`` (or, with ``payload``, one part of it: a
        sample of a batch, which does not settle the message); ``kind`` is its
        topic's kind, for the metrics."""
        self.stats.rejected[rejection.category] += 1
        self.stats.dead_letters[kind, rejection.category] += 1
        reason = str(rejection)[:2000]
        body = message.payload if payload is None else payload
        letter = DeadLetter(message.topic, body, reason, self._clock.now())
        log.warning("dead letter on %s: %s", message.topic, reason)

        async def store() -> None:
            await record_dead_letter(self._uow_factory, letter)

        settle = message.settle if settles else None
        await self.writes.put(HeldWrite("dead letter", store, message.topic, body, settle=settle))


def _validation_rejection(exc: ValidationError) -> RejectedMessageError:
    if any(e["type"] == "json_invalid" for e in exc.errors(include_url=False)):
        return RejectedMessageError("unparseable", _validation_detail(exc))
    return RejectedMessageError("invalid", _validation_detail(exc))


def _rejection(exc: Exception) -> RejectedMessageError:
    """What a dead letter says about ``exc`` (a sample of a batch)."""
    if isinstance(exc, RejectedMessageError):
        return exc
    if isinstance(exc, ValidationError):
        return _validation_rejection(exc)
    if isinstance(exc, ValueError):  # InvalidInput, a sample not an object, NaN
        return RejectedMessageError("invalid", str(exc))
    log.exception("a sample failed unexpectedly; dead-lettered")
    return RejectedMessageError("internal", f"{type(exc).__name__}: {exc}")


def _batch_of(text: str) -> tuple[str | None, list[Any]]:
    found = batch_samples(text)
    if found is None:  # pragma: no cover - the wire model saw its samples
        raise RejectedMessageError("invalid", "samples: not a batch")
    return found


def _settle(message: BrokerMessage) -> None:
    """Acknowledge a message to the broker once held for a batch: telemetry,
    status and load snapshots are not held back for their commit (the
    broker's in-flight window would wait for the database); the transport
    acknowledges those on receipt unless configured otherwise."""
    if message.settle is not None:
        message.settle()


def _raw_loads(text: str) -> dict[str, dict[str, Any]]:
    """Each load's entry of a snapshot as sent, unknown fields included, by id
    (the payload has been validated: ``loads`` is a list of objects with an id)."""
    raw: dict[str, dict[str, Any]] = {}
    for entry in _json_object(text).get("loads") or ():
        load_id = entry.get("loadId", entry.get("load_id", entry.get("id")))
        if isinstance(load_id, str):
            raw[load_id] = entry
    return raw


def _json_object(text: str) -> dict[str, Any]:
    value = json.loads(text)
    if not isinstance(value, dict):
        raise RejectedMessageError("invalid", "expected a JSON object")
    return value
