"""The bridge between OpenADR 3.1 objects and gridcore's DR events: pure
mapping, no I/O (the use cases are :mod:`gridcore.bridging`).

- An OpenADR event carrying ``DISPATCH_SETPOINT_RELATIVE`` payloads in kW
  ("the relative change of consumption by a resource", a non-negative
  number: gridcore reads it as kW to shed) becomes one gridcore DR event:
  :func:`read_shed`. Anything else is left an OpenADR-only event, with the
  reason (:class:`NotBridged`).
- The gridcore event of an OpenADR event has an id derived from the OpenADR
  id (:func:`bridged_event_id`): the events table's primary key is what makes
  "created once, never twice" hold across processes.
- gridcore's own events appear as OpenADR events in gridcore's own program
  (:func:`mirror_event`), and what VENs acknowledged and the meters measured
  becomes an OpenADR report honouring the report descriptors (:func:`report`).

docs/openadr3.md ("The bridge") gives the reasons for each choice.
"""

from __future__ import annotations

import hashlib
import itertools
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from gridcore.events import DrEvent, EventStatus
from gridcore.openadr import Document, add_duration, parse_date_time

SHED_PAYLOAD = "DISPATCH_SETPOINT_RELATIVE"
# units of the payload descriptor -> factor to kW; no units: kW (the program's default)
_TO_KW = {"KW": 1.0, "W": 0.001, "MW": 1000.0}
GRIDCORE_PROGRAM_ID = "program-gridcore"
GRIDCORE_PROGRAM_NAME = "gridcore"  # reserved: a BL program of this name stops the mirror
BRIDGE_CLIENT = "gridcore"  # clientID and clientName of the reports the bridge writes
# Report payload types the bridge can fill, per VEN (resource) or aggregated.
DELTA_USAGE = "DELTA_USAGE"  # measured (else acknowledged) kW, negative: consumption fell
OPERATING_STATE = "OPERATING_STATE"  # from the VEN's ACK
SUPPORTED_REPORTS = (DELTA_USAGE, OPERATING_STATE)
AGGREGATED = "AGGREGATED_REPORT"  # the resourceName of an aggregated report (the enumeration's)
_NOW_YEAR = 1  # a start of 0001-01-01 means "now" (User Guide)


@dataclass(frozen=True, slots=True)
class Shed:
    """What gridcore dispatches for an OpenADR event."""

    start: datetime
    end: datetime
    kw: float
    targets: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class NotBridged:
    """Why an OpenADR event stays OpenADR-only. ``asked``: it carries the
    shed payload (so it was meant for gridcore, and the BL is told why not);
    an event without one is none of the bridge's business."""

    reason: str
    asked: bool = True


def bridged_event_id(openadr_event_id: str) -> str:
    """The gridcore event id of an OpenADR event: ``evt-`` + 8 hex digits of
    its SHA-256, gridcore's id format. A collision is as likely as between
    two of gridcore's own random ids; :func:`gridcore.bridging` checks that the
    event it finds is not one of gridcore's own (mirrored) events."""
    return "evt-" + hashlib.sha256(openadr_event_id.encode()).hexdigest()[:8]


def mirror_id(gridcore_event_id: str) -> str:
    """The OpenADR id under which a gridcore event is served."""
    return f"event-{gridcore_event_id}"


SHARE_PREFIX = "event-share-"  # the ids of the per-device share events the bridge writes
SHARE_NAME = "gridcore share of "  # + the OpenADR event it is a share of: the eventName


def share_id(openadr_event_id: str, ven_object_id: str) -> str:
    """The one share event of a device (OpenADR ven object) in an OpenADR event."""
    digest = hashlib.sha256(f"{openadr_event_id}\0{ven_object_id}".encode()).hexdigest()[:16]
    return SHARE_PREFIX + digest


def share_parent(document: Mapping[str, Any]) -> str | None:
    """The OpenADR event a share event is a share of; None for any other event."""
    name = document.get("eventName") or ""
    if str(document.get("id", "")).startswith(SHARE_PREFIX) and name.startswith(SHARE_NAME):
        return str(name.removeprefix(SHARE_NAME))
    return None


def share_event(
    parent: Mapping[str, Any],
    ven_object_id: str,
    kw: float,
    shed: Shed,
    stamps: tuple[str, str, str],
) -> Document:
    """A device's share of a bridged event: an event of the same program,
    targeted at its ven object only (so no other VEN reads it), one interval of
    ``kw`` over the span gridcore dispatches. ``stamps``: created, modified,
    and the start as the VTN writes times."""
    created, modified, start = stamps
    document: Document = {
        "id": share_id(parent["id"], ven_object_id),
        "createdDateTime": created,
        "modificationDateTime": modified,
        "objectType": "EVENT",
        "programID": parent["programID"],
        "eventName": SHARE_NAME + parent["id"],
        "payloadDescriptors": [_shed_descriptor()],
        "intervalPeriod": {"start": start, "duration": iso_duration(shed.end - shed.start)},
        "intervals": [{"id": 0, "payloads": [{"type": SHED_PAYLOAD, "values": [kw]}]}],
        "targets": [ven_object_id],
    }
    if parent.get("reportDescriptors"):
        document["reportDescriptors"] = parent["reportDescriptors"]
    return document


def share_kw(document: Mapping[str, Any]) -> float:
    """The kW a share event asks (what :func:`share_event` wrote)."""
    return float(document["intervals"][0]["payloads"][0]["values"][0])


def declared_total(resources: Iterable[Mapping[str, Any]]) -> float:
    """What a device can shed: the sum its resources declare (:func:`declared_kw`)."""
    return sum(declared_kw(r) or 0.0 for r in resources)


def report_id(openadr_event_id: str) -> str:
    """The one report the bridge keeps (and replaces) for an OpenADR event."""
    digest = hashlib.sha256(openadr_event_id.encode()).hexdigest()[:16]
    return f"report-gridcore-{digest}"


def _kw_factor(event: Mapping[str, Any], program: Mapping[str, Any] | None) -> float | None:
    """The factor to kW of the shed payload's units (event descriptors first,
    then the program's); None when the units are not power."""
    for source in (event, program or {}):
        for descriptor in source.get("payloadDescriptors") or ():
            if descriptor.get("payloadType") == SHED_PAYLOAD:
                return _TO_KW.get(str(descriptor.get("units") or "KW").upper())
    return 1.0


def read_shed(
    event: Mapping[str, Any], program: Mapping[str, Any] | None, now: datetime
) -> Shed | NotBridged:
    """The shed an OpenADR event asks for, or why gridcore does not dispatch it.

    gridcore's events are one block of kW over one span, so the event's
    intervals carrying the shed payload must follow each other without gaps
    and ask the same kW: an event that ramps is not bridged rather than
    dispatched as something it did not ask."""
    if not any(
        p.get("type") == SHED_PAYLOAD
        for i in event.get("intervals") or ()
        for p in i.get("payloads") or ()
    ):
        return NotBridged(
            f"no {SHED_PAYLOAD} payload: not a load shed gridcore dispatches", asked=False
        )
    if event.get("duration") is not None:
        return NotBridged("looping intervals (event duration) are not dispatched")
    factor = _kw_factor(event, program)
    if factor is None:
        return NotBridged(f"{SHED_PAYLOAD} units are not KW, W or MW")
    period = event.get("intervalPeriod") or {}
    cursor = _start(period, now)
    spans: list[tuple[datetime, datetime, float]] = []
    for interval in event.get("intervals") or ():
        own = interval.get("intervalPeriod") or {}
        begin = _start(own, now) if own.get("start") is not None else cursor
        duration = own.get("duration", period.get("duration"))
        if begin is None or duration is None:
            return NotBridged("an interval has no start or no duration")
        end = add_duration(begin, duration)
        if end is None or end <= begin:
            return NotBridged("an interval is open-ended or empty")
        cursor = end
        values = [
            v
            for p in interval.get("payloads") or ()
            if p.get("type") == SHED_PAYLOAD
            for v in p.get("values") or ()
        ]
        if values:
            if len(values) != 1 or not isinstance(values[0], int | float):
                return NotBridged(f"a {SHED_PAYLOAD} payload holds one number")
            spans.append((begin, end, float(values[0]) * factor))
    if not spans:
        return NotBridged(
            f"no {SHED_PAYLOAD} payload: not a load shed gridcore dispatches", asked=False
        )
    spans.sort()
    levels = {kw for _, _, kw in spans}
    if len(levels) != 1:
        return NotBridged(f"{SHED_PAYLOAD} changes between intervals; gridcore sheds one level")
    if any(a[1] != b[0] for a, b in itertools.pairwise(spans)):
        return NotBridged("the shed intervals are not contiguous")
    (kw,) = levels
    if not kw > 0:
        return NotBridged(f"{SHED_PAYLOAD} of {kw} kW sheds nothing")
    targets = tuple(event.get("targets") or (program or {}).get("targets") or ())
    return Shed(start=spans[0][0], end=spans[-1][1], kw=kw, targets=targets)


def _start(period: Mapping[str, Any], now: datetime) -> datetime | None:
    text = period.get("start")
    if text is None:
        return None
    at = parse_date_time(text)
    return now if at.year == _NOW_YEAR else at


# --- gridcore's events as OpenADR events ---------------------------------------------


def gridcore_program(now: str) -> Document:
    return {
        "id": GRIDCORE_PROGRAM_ID,
        "createdDateTime": now,
        "modificationDateTime": now,
        "objectType": "PROGRAM",
        "programName": GRIDCORE_PROGRAM_NAME,
        "programLongName": "gridcore's own DR events (POST /api/events)",
        "payloadDescriptors": [_shed_descriptor()],
        "reportDescriptors": [{"payloadType": DELTA_USAGE, "units": "KW"}],
    }


def _shed_descriptor() -> Document:
    return {"objectType": "EVENT_PAYLOAD_DESCRIPTOR", "payloadType": SHED_PAYLOAD, "units": "KW"}


def iso_duration(span: timedelta) -> str:
    return f"PT{max(0, round(span.total_seconds()))}S"


def mirror_event(event: DrEvent, created: str, modified: str, stamp: str) -> Document:
    """A gridcore event as an OpenADR event of gridcore's program: one interval
    of its kW; a stopped event ends when it stopped. ``stamp`` is its start
    written as the VTN writes times."""
    end = event.ended_at if event.status is EventStatus.STOPPED and event.ended_at else None
    span = (end or event.end_time) - event.start_time
    document: Document = {
        "id": mirror_id(event.id),
        "createdDateTime": created,
        "modificationDateTime": modified,
        "objectType": "EVENT",
        "programID": GRIDCORE_PROGRAM_ID,
        "eventName": event.id,
        "payloadDescriptors": [_shed_descriptor()],
        "intervalPeriod": {"start": stamp, "duration": iso_duration(span)},
        "intervals": [
            {
                "id": 0,
                "payloads": [{"type": SHED_PAYLOAD, "values": [event.requested_reduction_kw]}],
            }
        ],
    }
    if event.targets:
        document["targets"] = list(event.targets)
    return document


# --- what the fleet did, as an OpenADR report ---------------------------------------


@dataclass(frozen=True, slots=True)
class VenResult:
    """One gridcore VEN in an event: its ACK (None: no answer yet), the kW it
    said it delivered, and the kW the meters verified (None: not measured)."""

    ven_id: str
    ack_status: str | None
    delivered_kw: float | None
    measured_kw: float | None

    @property
    def shed_kw(self) -> float | None:
        """Measured when the meters say, else what the ACK claims."""
        return self.measured_kw if self.measured_kw is not None else self.delivered_kw


def requested_reports(
    event: Mapping[str, Any], program: Mapping[str, Any] | None
) -> list[Mapping[str, Any]]:
    """The report descriptors to honour: the event's, else the program's, else
    DELTA_USAGE and OPERATING_STATE per resource. Those asking a payload type
    the bridge cannot fill are left out (docs/openadr3.md)."""
    asked = event.get("reportDescriptors") or (program or {}).get("reportDescriptors")
    if not asked:
        asked = [{"payloadType": t} for t in SUPPORTED_REPORTS]
    return [d for d in asked if d.get("payloadType") in SUPPORTED_REPORTS]


_STATES = {True: "RUNNING_CURTAILED", False: "RUNNING_OPTED_OUT"}
_POSITIVE = frozenset({"ok", "accepted", "success", "done", "complete", "completed", "shed"})


def operating_state(ack_status: str | None) -> str:
    if ack_status is None:
        return "NORMAL"  # no answer: nothing says it follows the event
    return _STATES[ack_status.strip().lower() in _POSITIVE]


def report(
    openadr_event: Mapping[str, Any],
    program: Mapping[str, Any] | None,
    results: Sequence[VenResult],
    *,
    start: str,
    duration: str,
    created: str,
    modified: str,
    reason: str | None = None,
) -> Document:
    """The bridge's report on an OpenADR event: a resource per gridcore VEN
    (``resourceName`` = VEN id), or one ``AGGREGATED_REPORT`` for a descriptor
    asking ``aggregate``, with one interval covering the event. ``reason``: the
    event was not dispatched, and why (in ``reportName``, with no resources)."""
    descriptors = requested_reports(openadr_event, program)
    name = f"gridcore: not dispatched: {reason}" if reason else "gridcore dispatch"
    document: Document = {
        "id": report_id(openadr_event["id"]),
        "createdDateTime": created,
        "modificationDateTime": modified,
        "objectType": "REPORT",
        "eventID": openadr_event["id"],
        "clientID": BRIDGE_CLIENT,
        "clientName": BRIDGE_CLIENT,
        "reportName": name[:128],
        "payloadDescriptors": [
            {"objectType": "REPORT_PAYLOAD_DESCRIPTOR", "payloadType": d["payloadType"]}
            | ({"units": "KW"} if d["payloadType"] == DELTA_USAGE else {})
            | ({"readingType": "DIRECT_READ"} if d["payloadType"] == DELTA_USAGE else {})
            for d in descriptors
        ],
        "resources": [],
    }
    if reason:
        return document
    period = {"start": start, "duration": duration}
    per_ven = [d for d in descriptors if not d.get("aggregate")]
    aggregated = [d for d in descriptors if d.get("aggregate")]
    for r in results:
        payloads = [_payload(d["payloadType"], [r]) for d in per_ven]
        if payloads:
            document["resources"].append(
                {
                    "resourceName": r.ven_id,
                    "intervalPeriod": period,
                    "intervals": [{"id": 0, "payloads": payloads}],
                }
            )
    if aggregated and results:
        payloads = [_payload(d["payloadType"], results) for d in aggregated]
        document["resources"].append(
            {
                "resourceName": AGGREGATED,
                "intervalPeriod": period,
                "intervals": [{"id": 0, "payloads": payloads}],
            }
        )
    return document


def _payload(payload_type: str, results: Sequence[VenResult]) -> Document:
    if payload_type == DELTA_USAGE:
        # consumption against the baseline: a shed is a fall, so negative
        total = sum(r.shed_kw or 0.0 for r in results)
        return {"type": DELTA_USAGE, "values": [-total if total else 0.0]}
    states = {operating_state(r.ack_status) for r in results}
    return {"type": OPERATING_STATE, "values": [states.pop() if len(states) == 1 else AGGREGATED]}


def declared_kw(resource: Mapping[str, Any]) -> float | None:
    """What an OpenADR resource declares it can shed: its MAX_POWER_CONSUMPTION
    attribute (ven-resource-attributes: one non-negative number, kW); None
    when it declares none."""
    for attribute in resource.get("attributes") or ():
        values = attribute.get("values") or ()
        if attribute.get("type") == "MAX_POWER_CONSUMPTION" and values:
            value = values[0]
            if isinstance(value, int | float) and not isinstance(value, bool) and value >= 0:
                return float(value)
    return None


def delivered_kw(
    report_document: Mapping[str, Any],
    caps: Mapping[str, float | None] | None = None,
    default_cap: float | None = None,
) -> float:
    """The kW an OpenADR VEN's report says it shed for an event: the newest
    interval's DELTA_USAGE of each resource, a fall in consumption (negative)
    counted as shed, at most what the resource declares it can shed
    (``caps`` by resourceName, :func:`declared_kw`) or, declaring nothing,
    ``default_cap`` (the event's kW: no one delivers more than was asked, as
    for an ACK). What it cannot read counts nothing."""
    total = 0.0
    for resource in report_document.get("resources") or ():
        newest = None
        for interval in resource.get("intervals") or ():
            for payload in interval.get("payloads") or ():
                values = payload.get("values") or ()
                if payload.get("type") == DELTA_USAGE and values:
                    value = values[0]
                    if isinstance(value, int | float) and not isinstance(value, bool):
                        newest = float(value)
        if newest is not None and newest < 0:
            cap = (caps or {}).get(resource.get("resourceName", ""))
            cap = default_cap if cap is None else cap
            total += -newest if cap is None else min(-newest, cap)
    return total
