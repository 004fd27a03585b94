"""One simulated VEN: what it publishes each telemetry cycle, and how it
answers commands on ``ven/cmd/{venId}`` (002, 004).

This class does no I/O: it turns a command or a tick of the clock into the
messages to publish, and :mod:`entrypoints.simulator.shard` sends them. So the
VEN's rules are plain code, testable without a broker.

Commands:

- ``event``: plan ``shed_kw`` (else ``data.requestedReductionKw``) over the
  live circuits with ``gridcore.plan_curtailment``, apply it, ACK
  ``accepted`` with the circuits curtailed. A new event (different
  correlationId) while shedding re-plans to the new target. After
  ``duration_sec`` (else ``data.duration_s``) the VEN restores by itself and
  sends a restore ACK carrying the event id.
- ``restore``: restore and ACK ``success``. The loads that were held then
  catch up for a while (rebound, see :mod:`entrypoints.simulator.shedding`).
- ``ping``: ACK ``pong``.
- ``shed_load``: shed ``shed_kw`` (all when absent) of circuit ``load_id``
  and ACK ``accepted``; critical or unknown circuits are refused.
- ``config`` (on ``ven/config/{venId}``): apply each load's ``enabled``,
  ``priority``, ``critical`` and ``shedCapabilityKw`` (a disabled circuit
  draws nothing; the limit caps what it offers to shed), report them so in
  telemetry, and ACK ``applied`` with the loads as applied. A push naming a
  circuit the panel does not have is refused whole (``rejected``).
- A correlationId already answered gets the same ACK again, and nothing is
  applied twice (the backend retries with the same correlationId).

Alerts (``ven/alerts/{venId}``, :mod:`entrypoints.simulator.alerting`) are
raised from what the panel reads each cycle. With ``batch`` > 1 the metering
samples go ``batch`` to a message (``{venId, timestamp, samples}``).

A REJECTING VEN refuses events and load sheds (status ``rejected``, actual
0) but answers restore and ping. A SILENT VEN ignores every command (its
command path is broken); it still sends telemetry, so the backend sees it
online and has to time its commands out.
"""

from __future__ import annotations

import enum
import json
import logging
import math
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import replace
from datetime import datetime
from typing import Any

from adapters.mqtt.topics import (
    METERING,
    ack_topic,
    alerts_topic,
    config_topic,
    loads_topic,
    shadow_update_topic,
)
from entrypoints.simulator import payloads
from entrypoints.simulator.alerting import AlertWatch
from entrypoints.simulator.panel import Panel
from entrypoints.simulator.shedding import CircuitReading, ShedState
from gridcore.correlation import CommandOp
from gridcore.ports import BrokerMessage
from gridcore.quantities import to_kw, to_watts

log = logging.getLogger("entrypoints.simulator")

SHADOW_EVERY = 6  # cycles: every 30 s at the documents' 5 s cadence
TELEMETRY_QOS = 0
ACK_QOS = 1
ALERT_QOS = 1
_ANSWERS_KEPT = 256  # correlationIds remembered per VEN for idempotent repeats


class Behaviour(enum.StrEnum):
    COOPERATIVE = "cooperative"
    REJECTING = "rejecting"
    SILENT = "silent"


def _number(value: Any) -> float | None:
    """A finite, non-negative JSON number, else None (``true`` is not a number)."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    if not math.isfinite(value) or value < 0:
        return None
    return float(value)


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None


class SimulatedVen:
    def __init__(
        self,
        ven_id: str,
        panel: Panel,
        behaviour: Behaviour = Behaviour.COOPERATIVE,
        *,
        metering_topic: str = METERING,
        whole_seconds: bool = True,
        batch: int = 1,
    ) -> None:
        self.ven_id = ven_id
        self.panel = panel
        self.behaviour = behaviour
        self.state = ShedState(panel)
        self.cycle = 0
        self.command_topic = f"ven/cmd/{ven_id}"
        self.config_topic = config_topic(ven_id)
        self._alerts_topic = alerts_topic(ven_id)
        self._watch = AlertWatch(ven_id)
        if batch < 1:
            raise ValueError("batch must be at least 1 sample a message")
        self._batch = batch
        self._held: list[payloads.JsonObject] = []  # metering samples not yet sent
        self._metering_topic = metering_topic
        self._telemetry_topic = f"ven/telemetry/{ven_id}"
        self._ack_topic = ack_topic(ven_id)
        # The documents send epoch seconds; sub-second cadences (tests) need
        # fractions, or samples in one second would share a timestamp.
        self._whole_seconds = whole_seconds
        self._answers: OrderedDict[str, bytes] = OrderedDict()
        self._handlers: dict[str, Callable[[dict[str, Any], float], payloads.JsonObject]] = {
            CommandOp.EVENT.value: self._event,
            CommandOp.RESTORE.value: self._restore,
            CommandOp.PING.value: self._ping,
            CommandOp.SHED_LOAD.value: self._shed_load,
            CommandOp.CONFIG.value: self._config,
        }

    @property
    def topics(self) -> tuple[str, str]:
        """What the VEN listens to: its commands and its configuration."""
        return (self.command_topic, self.config_topic)

    # --- telemetry -------------------------------------------------------

    def readings(self, epoch: float) -> list[CircuitReading]:
        return self.state.readings(self.panel.circuits, self.panel.read(epoch), epoch)

    def report(self, now: datetime) -> list[BrokerMessage]:
        """One telemetry cycle: metering and per-VEN telemetry, and every
        sixth cycle the shadow and a load snapshot. Lifts curtailments whose
        time is up first, in case a timer was late."""
        out = self.expire(now)
        epoch = now.timestamp()
        stamp: float = int(epoch) if self._whole_seconds else round(epoch, 3)
        readings = self.readings(epoch)
        used = to_kw(sum(to_watts(r.kw) for r in readings))
        shed = self.state.shed_kw(used)
        baseline = self.state.baseline_kw if self.state.baseline_kw is not None else used
        event = self.state.event
        sample = payloads.telemetry(
            self.ven_id, stamp, self.panel, readings,
            used_kw=used, shed_kw=shed, baseline_kw=baseline, event=event,
        )  # fmt: skip
        body = payloads.encode(sample)
        if self._batch == 1:
            out.append(BrokerMessage(self._metering_topic, body, TELEMETRY_QOS))
        else:
            self._held.append(sample)
            if len(self._held) >= self._batch:
                batch = payloads.metering_batch(self.ven_id, self._held)
                self._held = []
                out.append(BrokerMessage(self._metering_topic, payloads.encode(batch), 0))
        out.append(BrokerMessage(self._telemetry_topic, body, TELEMETRY_QOS))
        for alert in self._watch.check(self.panel, readings, epoch, stamp):
            out.append(BrokerMessage(self._alerts_topic, payloads.encode(alert), ALERT_QOS))
        if self.cycle % SHADOW_EVERY == 0:
            shadow = payloads.shadow_update(
                stamp, self.panel, readings, used_kw=used, shed_kw=shed, event=event
            )
            snapshot = payloads.load_snapshot(self.ven_id, stamp, readings)
            out.append(BrokerMessage(shadow_update_topic(self.ven_id), payloads.encode(shadow), 0))
            out.append(BrokerMessage(loads_topic(self.ven_id), payloads.encode(snapshot), 0))
        self.cycle += 1
        return out

    # --- commands --------------------------------------------------------

    def handle(self, payload: bytes, now: datetime) -> list[BrokerMessage]:
        """The ACK(s) to publish in answer to one command payload."""
        if self.behaviour is Behaviour.SILENT:
            return []
        try:
            body = json.loads(payload)
        except (UnicodeDecodeError, json.JSONDecodeError):
            log.warning("%s: ignoring a command that is not JSON: %r", self.ven_id, payload[:200])
            return []
        if not isinstance(body, dict):
            log.warning("%s: ignoring a command that is not a JSON object", self.ven_id)
            return []
        correlation_id = _text(body.get("correlationId")) or _text(body.get("correlation_id"))
        if correlation_id is not None and correlation_id in self._answers:
            self._answers.move_to_end(correlation_id)
            return [BrokerMessage(self._ack_topic, self._answers[correlation_id], ACK_QOS)]
        op = body.get("op")
        handler = self._handlers.get(op) if isinstance(op, str) else None
        if handler is None:
            ack = payloads.simple_ack(
                str(op), "rejected", correlation_id=correlation_id, ts=int(now.timestamp()),
                reason=f"unknown op {op!r}",
            )  # fmt: skip
        else:
            ack = handler(body, now.timestamp())
        encoded = payloads.encode(ack)
        if correlation_id is not None:
            self._answers[correlation_id] = encoded
            if len(self._answers) > _ANSWERS_KEPT:
                self._answers.popitem(last=False)
        return [BrokerMessage(self._ack_topic, encoded, ACK_QOS)]

    def next_expiry(self) -> float | None:
        """Epoch seconds when a curtailment runs out, if any does."""
        return self.state.next_expiry()

    def expire(self, now: datetime) -> list[BrokerMessage]:
        """Lift curtailments whose duration is over; an event that ends so is
        announced with a restore ACK (004, phase 3)."""
        ended = self.state.expire(now.timestamp())
        if ended is None:
            return []
        ack = payloads.simple_ack(
            "restore", "success", correlation_id=None, ts=int(now.timestamp()),
            event_id=ended.event_id,
        )  # fmt: skip
        return [BrokerMessage(self._ack_topic, payloads.encode(ack), ACK_QOS)]

    def _event(self, body: dict[str, Any], now: float) -> payloads.JsonObject:
        raw_data = body.get("data")
        data: dict[str, Any] = raw_data if isinstance(raw_data, dict) else {}
        event_id = _text(body.get("event_id")) or _text(data.get("event_id"))
        correlation_id = _text(body.get("correlationId"))
        shed = _number(body.get("shed_kw"))
        if shed is None:
            shed = _number(data.get("requestedReductionKw"))
        duration = _number(body.get("duration_sec"))
        if duration is None:
            duration = _number(data.get("duration_s"))

        def refuse(reason: str) -> payloads.JsonObject:
            return payloads.shed_ack(
                "event", "rejected", event_id=event_id, correlation_id=correlation_id,
                requested_kw=shed, lines=(), ts=int(now), reason=reason,
            )  # fmt: skip

        if shed is None:
            return refuse("shed_kw is missing or not a non-negative number")
        if self.behaviour is Behaviour.REJECTING:
            return refuse("opted out of demand response")
        plan = self.state.start_event(
            self.readings(now), shed, event_id=event_id, correlation_id=correlation_id,
            now=now, duration_s=duration,
        )  # fmt: skip
        return payloads.shed_ack(
            "event", "accepted", event_id=event_id, correlation_id=correlation_id,
            requested_kw=shed, lines=plan.circuits, ts=int(now),
        )  # fmt: skip

    def _restore(self, body: dict[str, Any], now: float) -> payloads.JsonObject:
        self.state.restore(_text(body.get("event_id")), now=now)
        return payloads.simple_ack(
            "restore", "success", correlation_id=_text(body.get("correlationId")), ts=int(now)
        )

    def _ping(self, body: dict[str, Any], now: float) -> payloads.JsonObject:
        return payloads.simple_ack(
            "ping", "pong", correlation_id=_text(body.get("correlationId")), ts=int(now)
        )

    def _config(self, body: dict[str, Any], now: float) -> payloads.JsonObject:
        correlation_id = _text(body.get("correlationId"))
        loads = body.get("loads")

        def refuse(reason: str) -> payloads.JsonObject:
            return payloads.config_ack(
                "rejected", correlation_id=correlation_id, ts=int(now), reason=reason
            )

        if not isinstance(loads, list):
            return refuse("loads must be a list")
        configured = {}
        for entry in loads:
            load_id = (_text(entry.get("loadId")) or _text(entry.get("load_id"))
                       if isinstance(entry, dict) else None)  # fmt: skip
            spec = self.panel.circuit(load_id) if load_id is not None else None
            if spec is None or not isinstance(entry, dict):
                return refuse(f"no circuit {load_id!r} on this panel")
            enabled, critical = entry.get("enabled"), entry.get("critical")
            priority = entry.get("priority")
            configured[spec.id] = replace(
                spec,
                enabled=enabled if isinstance(enabled, bool) else spec.enabled,
                critical=critical if isinstance(critical, bool) else spec.critical,
                configured_priority=priority
                if isinstance(priority, int) and not isinstance(priority, bool)
                else spec.configured_priority,
                shed_limit_kw=_number(entry.get("shedCapabilityKw")),
            )
        self.panel.circuits = tuple(configured.get(c.id, c) for c in self.panel.circuits)
        applied = [
            {
                "loadId": c.id,
                "enabled": c.enabled,
                "priority": c.priority,
                "critical": c.critical,
                "shedCapabilityKw": c.shed_limit_kw,
            }
            for c in self.panel.circuits
            if c.id in configured
        ]
        return payloads.config_ack(
            "applied", correlation_id=correlation_id, ts=int(now), loads=applied
        )

    def _shed_load(self, body: dict[str, Any], now: float) -> payloads.JsonObject:
        load_id = _text(body.get("load_id")) or _text(body.get("loadId"))
        event_id = _text(body.get("event_id"))
        correlation_id = _text(body.get("correlationId"))
        shed = _number(body.get("shed_kw"))
        spec = self.panel.circuit(load_id) if load_id is not None else None

        def refuse(reason: str) -> payloads.JsonObject:
            return payloads.shed_ack(
                "shed_load", "rejected", event_id=event_id, correlation_id=correlation_id,
                requested_kw=shed, lines=(), ts=int(now), load_id=load_id, reason=reason,
            )  # fmt: skip

        if spec is None:
            return refuse(f"no circuit {load_id!r} on this panel")
        if spec.critical:
            return refuse(f"{spec.name} is a critical load and is never shed")
        if self.behaviour is Behaviour.REJECTING:
            return refuse("opted out of demand response")
        readings = self.readings(now)
        reading = next(r for r in readings if r.spec.id == spec.id)
        line = self.state.shed_load(
            reading, shed, all_readings=readings, event_id=event_id, now=now,
            duration_s=_number(body.get("duration_sec")),
        )  # fmt: skip
        return payloads.shed_ack(
            "shed_load", "accepted", event_id=event_id, correlation_id=correlation_id,
            requested_kw=shed if shed is not None else line.curtailed_kw, lines=(line,),
            ts=int(now), load_id=load_id,
        )  # fmt: skip
