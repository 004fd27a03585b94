"""Every Prometheus metric gridcore exposes, in one place (docs/operations.md
describes each; docs/grafana-dashboard.json and docs/prometheus-alerts.yml use
them, and a unit test keeps the three in step).

Observers at the edge: the domain imports nothing from here. Adapters and
entrypoints record through the objects below; what a process already counts
(the consumer's :class:`~adapters.mqtt.consumer.ConsumerStats`, its buffers'
depths, the dispatch lease) is read at scrape time by a collector instead of
being counted again on the hot path (see ``entrypoints.observing``).

Labels are bounded: kinds of topic, reasons, outcomes, route templates. No
VEN id, event id or topic with a VEN in it is ever a label.

Under ``gridcore serve --workers N`` the API's metrics live in
prometheus_client's multiprocess mode (``PROMETHEUS_MULTIPROC_DIR``, set by
the serve command before its processes start): every metric defined here
works there, since none is a gauge of live state (those are collected at
scrape time).
"""

from __future__ import annotations

import bisect
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field

from prometheus_client import Counter, Histogram
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector

PREFIX = "gridcore_"

# Seconds, from a fast commit to a VEN whose clock or link lags minutes.
LAG_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0)
LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
ACK_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0)
BATCH_BUCKETS = (1, 5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10000)

# --- the API (gridcore serve) ---------------------------------------------------

API_REQUESTS = Counter(
    "gridcore_api_requests",
    "HTTP requests answered by the API, by route template, method and status code",
    ["route", "method", "status"],
)
API_REQUEST_DURATION = Histogram(
    "gridcore_api_request_duration_seconds",
    "Time from a request's arrival to the end of its response, by route template and method",
    ["route", "method"],
    buckets=LATENCY_BUCKETS,
)

# --- the worker's ingest ----------------------------------------------------------

WRITE_BATCH_SIZE = Histogram(
    "gridcore_ingest_batch_size",
    "Items per database write of the consumer's buffers, by kind",
    ["kind"],
    buckets=BATCH_BUCKETS,
)
WRITE_DURATION = Histogram(
    "gridcore_ingest_write_duration_seconds",
    "Time of one database write (one transaction) of the consumer's buffers, by kind",
    ["kind"],
    buckets=LATENCY_BUCKETS,
)
WRITE_FAILURES = Counter(
    "gridcore_ingest_write_failures",
    "Database writes of the consumer's buffers that failed (retried or bisected), by kind",
    ["kind"],
)

# --- the dispatcher ---------------------------------------------------------------

COMMANDS_SENT = Counter(
    "gridcore_commands_sent", "Commands published to VENs by the relay (first sends and restores)"
)
COMMANDS_RETRIED = Counter(
    "gridcore_commands_retried", "Commands sent again because their ACK was overdue"
)
COMMANDS_TIMED_OUT = Counter(
    "gridcore_commands_timed_out", "Commands given up on: no ACK after every retry"
)
COMMANDS_REASSERTED = Counter(
    "gridcore_commands_reasserted",
    "Accepted commands sent again because the VEN's telemetry showed it not shedding",
)
COMMANDS_REALLOCATED = Counter(
    "gridcore_commands_reallocated",
    "Commands created to re-allocate an event's shortfall to VENs with headroom",
)
COMMANDS_PUBLISH_FAILED = Counter(
    "gridcore_commands_publish_failed",
    "Publishes the broker refused (the command goes back to the outbox)",
)
DISPATCH_PASS_DURATION = Histogram(
    "gridcore_dispatch_pass_duration_seconds",
    "Time of one dispatcher pass (activation, ends, retries, relay, re-allocation)",
    buckets=LATENCY_BUCKETS,
)
DISPATCH_PASS_FAILURES = Counter(
    "gridcore_dispatch_pass_failures", "Dispatcher passes that failed (the loop retries)"
)


class BulkHistogram(Collector):
    """A histogram fed a batch of values at a time, for the worker's per-item
    measurements (ingest lag, ACK round trips): a bisect and two additions a
    value, without prometheus_client's lock and method calls per observation.
    One event loop feeds it, so it takes no lock; a scrape may read a batch
    half added, which Prometheus's rate() does not notice."""

    def __init__(self, name: str, documentation: str, label: str, buckets: Sequence[float]) -> None:
        self.name = name
        self.documentation = documentation
        self.label = label
        self.bounds = tuple(float(b) for b in buckets)
        self._series: dict[str, tuple[list[int], list[float]]] = {}

    def observe_many(self, label_value: str, values: Iterable[float]) -> None:
        series = self._series.get(label_value)
        if series is None:
            series = self._series[label_value] = ([0] * (len(self.bounds) + 1), [0.0])
        counts, total = series
        bounds = self.bounds
        where = bisect.bisect_left
        s = 0.0
        for value in values:
            counts[where(bounds, value)] += 1
            s += value
        total[0] += s

    def collect(self) -> Iterator[HistogramMetricFamily]:
        family = HistogramMetricFamily(self.name, self.documentation, labels=[self.label])
        for label_value, (counts, total) in sorted(self._series.items()):
            cumulative, running = [], 0
            for bound, n in zip((*self.bounds, float("inf")), counts, strict=True):
                running += n
                cumulative.append((_bound(bound), running))
            family.add_metric([label_value], cumulative, total[0])
        yield family

    def describe(self) -> Iterator[HistogramMetricFamily]:
        yield HistogramMetricFamily(self.name, self.documentation, labels=[self.label])


def _bound(value: float) -> str:
    return "+Inf" if value == float("inf") else repr(value)


INGEST_LAG = BulkHistogram(
    "gridcore_ingest_lag_seconds",
    "Telemetry committed: seconds since the message's own timestamp (since=message) "
    "and since the worker received it (since=receipt)",
    "since",
    LAG_BUCKETS,
)
ACK_ROUND_TRIP = BulkHistogram(
    "gridcore_ack_round_trip_seconds",
    "Seconds from a command's first send to its ACK being stored, by op "
    "(event, restore, load_shed...)",
    "op",
    ACK_BUCKETS,
)


# --- what a worker holds, read at scrape time -------------------------------------


@dataclass(frozen=True, slots=True)
class WorkerSnapshot:
    """A worker's own counts and state at a scrape (``entrypoints.observing``
    reads them from its consumer, buffers, transport and lease)."""

    received: Mapping[str, int] = field(default_factory=dict)  # by kind of topic
    stored: Mapping[str, int] = field(default_factory=dict)  # by kind of topic
    duplicates: int = 0  # telemetry already stored (a re-sent sample)
    dead_letters: Mapping[tuple[str, str], int] = field(default_factory=dict)  # (kind, reason)
    acks: Mapping[str, int] = field(default_factory=dict)  # by outcome
    alerts: Mapping[str, int] = field(default_factory=dict)  # by severity
    buffered: Mapping[str, int] = field(default_factory=dict)  # held for a write, by kind
    broker_connected: bool = False
    lease_held: bool = False


WORKER_FAMILIES: dict[str, tuple[str, str, list[str]]] = {
    # name: (type, help, labels)
    "gridcore_mqtt_messages_received": (
        "counter",
        "MQTT messages the worker received, by kind of topic (telemetry, ack, shadow, status, "
        "loads, alert; unrouted: a topic no route handles)",
        ["kind"],
    ),
    "gridcore_mqtt_messages_stored": (
        "counter",
        "Messages committed to the database, by kind of topic (telemetry: new samples)",
        ["kind"],
    ),
    "gridcore_telemetry_duplicates": (
        "counter",
        "Telemetry samples received again and not stored twice",
        [],
    ),
    "gridcore_mqtt_dead_letters": (
        "counter",
        "Messages dead-lettered, by kind of topic and reason (oversize, unparseable, invalid, "
        "ven mismatch, no route, internal, refused, poison)",
        ["kind", "reason"],
    ),
    "gridcore_acks": (
        "counter",
        "ACKs stored, by outcome: matched, late (after its command timed out), duplicate, "
        "unmatched",
        ["outcome"],
    ),
    "gridcore_ven_alerts": (
        "counter",
        "VEN alerts received on ven/alerts/{venId} and stored, by severity (critical, warning, "
        "info); a re-delivered alert is stored once but counted again",
        ["severity"],
    ),
    "gridcore_write_buffer_depth": (
        "gauge",
        "Items received and held for a database write, by kind (grows while the database "
        "is slow or down)",
        ["kind"],
    ),
    "gridcore_mqtt_connected": ("gauge", "1 while the worker's consumer is connected", []),
    "gridcore_dispatch_lease_held": (
        "gauge",
        "1 while this worker holds the dispatch lease (exactly one worker dispatches)",
        [],
    ),
}


class WorkerCollector(Collector):
    """The worker's counts, from ``snapshot()`` at each scrape: nothing is
    counted twice on the hot path (the consumer counts for its own log line)."""

    def __init__(self, snapshot: Callable[[], WorkerSnapshot]) -> None:
        self._snapshot = snapshot

    def collect(self) -> Iterator[Metric]:
        s = self._snapshot()
        values: dict[str, Iterable[tuple[Sequence[str], float]]] = {
            "gridcore_mqtt_messages_received": _by_one(s.received),
            "gridcore_mqtt_messages_stored": _by_one(s.stored),
            "gridcore_telemetry_duplicates": [((), s.duplicates)],
            "gridcore_mqtt_dead_letters": [(key, n) for key, n in sorted(s.dead_letters.items())],
            "gridcore_acks": _by_one(s.acks),
            "gridcore_ven_alerts": _by_one(s.alerts),
            "gridcore_write_buffer_depth": _by_one(s.buffered),
            "gridcore_mqtt_connected": [((), float(s.broker_connected))],
            "gridcore_dispatch_lease_held": [((), float(s.lease_held))],
        }
        for name, samples in values.items():
            family = _family(name, WORKER_FAMILIES[name])
            for labels, value in samples:
                family.add_metric(list(labels), value)
            yield family

    def describe(self) -> Iterator[Metric]:
        for name, spec in WORKER_FAMILIES.items():
            yield _family(name, spec)


def _by_one(counts: Mapping[str, int]) -> list[tuple[Sequence[str], float]]:
    return [((key,), n) for key, n in sorted(counts.items())]


def _family(name: str, spec: tuple[str, str, list[str]]) -> CounterMetricFamily | GaugeMetricFamily:
    kind, documentation, labels = spec
    if kind == "counter":
        return CounterMetricFamily(name, documentation, labels=labels)
    return GaugeMetricFamily(name, documentation, labels=labels)


# --- the fleet, read from the database at scrape time (gridcore serve) -------------


@dataclass(frozen=True, slots=True)
class FleetSnapshot:
    registered_vens: int
    online_vens: int
    active_events: int
    requested_kw: float  # sum over active events of requestedReductionKw
    claimed_kw: float  # sum over active events of actualReductionKw (what ACKs report)


FLEET_FAMILIES: dict[str, str] = {
    "gridcore_vens_registered": "VENs registered",
    "gridcore_vens_online": "VENs whose newest telemetry is within VEN_OFFLINE_AFTER_SECONDS",
    "gridcore_events_active": "DR events active now",
    "gridcore_events_requested_kw": "Reduction the active events request, kW",
    "gridcore_events_claimed_kw": "Reduction the VENs' ACKs claim for the active events, kW",
}


class FleetCollector(Collector):
    """Gauges of one :class:`FleetSnapshot` (read once per scrape by the caller)."""

    def __init__(self, snapshot: FleetSnapshot | None) -> None:
        self.snapshot = snapshot

    def collect(self) -> Iterator[Metric]:
        s = self.snapshot
        if s is None:  # the database did not answer: no gauge rather than a wrong one
            return
        values = {
            "gridcore_vens_registered": s.registered_vens,
            "gridcore_vens_online": s.online_vens,
            "gridcore_events_active": s.active_events,
            "gridcore_events_requested_kw": s.requested_kw,
            "gridcore_events_claimed_kw": s.claimed_kw,
        }
        for name, value in values.items():
            yield GaugeMetricFamily(name, FLEET_FAMILIES[name], value=float(value))

    def describe(self) -> Iterator[Metric]:
        for name, documentation in FLEET_FAMILIES.items():
            yield GaugeMetricFamily(name, documentation)
