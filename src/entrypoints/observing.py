"""The worker's HTTP listener: ``/metrics``, ``/health`` and ``/health/ready``
(GRIDCORE_WORKER_HTTP_HOST:GRIDCORE_WORKER_HTTP_PORT, 127.0.0.1:8001 by
default; port 0 turns it off).

A few lines of HTTP/1.0 on an asyncio server in the worker's own event loop:
a probe or a scrape never waits for ingest and ingest never waits for it
(the counts are read from what the consumer already keeps, see
:class:`adapters.metrics.WorkerCollector`; only readiness touches the
database, with a timeout). No token: it listens on loopback unless the
operator binds it elsewhere, and it can change nothing.

- ``/health``: 200 while the event loop answers (liveness).
- ``/health/ready``: 200 when the broker is connected and the database
  answers, else 503; the JSON body has each check, whether this worker holds
  the dispatch lease (for information: a standby worker is ready too) and
  how many received items wait for a database write.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections import Counter
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, CollectorRegistry, generate_latest
from prometheus_client.metrics_core import Metric
from prometheus_client.registry import Collector

from adapters.metrics import (
    ACK_ROUND_TRIP,
    INGEST_LAG,
    WorkerCollector,
    WorkerSnapshot,
)
from adapters.mqtt.buffering import WriteStats, metric_kind
from gridcore.ports import DispatchLease

if TYPE_CHECKING:
    from entrypoints.worker import Worker

log = logging.getLogger("entrypoints.worker.http")

PROBE_TIMEOUT = 2.0  # a readiness probe answers before an orchestrator's timeout
REQUEST_TIMEOUT = 5.0  # a client that sends no request line in this time is dropped
# What a write's "what" is as a kind of topic (gridcore_mqtt_messages_stored).
_STORED_KIND = {
    "status": "status",
    "load snapshot": "loads",
    "ack": "ack",
    "shadow": "shadow",
    "alert": "alert",
}


class ObservedLease:
    """The dispatch lease, remembering whether the last attempt held it."""

    def __init__(self, lease: DispatchLease) -> None:
        self._lease = lease
        self.held = False

    async def hold(self) -> bool:
        try:
            self.held = await self._lease.hold()
        except BaseException:
            self.held = False
            raise
        return self.held

    async def release(self) -> None:
        self.held = False
        await self._lease.release()


class WorkerView:
    """What a worker's listener reads: set by ``run_worker`` as the parts start."""

    def __init__(self, ping: Callable[[], Awaitable[None]]) -> None:
        self.ping = ping
        self.worker: Worker | None = None
        self.lease: ObservedLease | None = None
        self.consuming = True  # False: MQTT_ENABLED=false, no broker to need

    def snapshot(self) -> WorkerSnapshot:
        worker = self.worker
        stats = worker.stats if worker is not None else None
        consumer = worker.consumer if worker is not None else None
        if stats is None or consumer is None:
            return WorkerSnapshot(broker_connected=self.broker_connected(),
                                  lease_held=self.lease_held)  # fmt: skip
        writes: WriteStats = stats.writes
        received = dict(stats.by_kind)
        unrouted = stats.received - sum(received.values())
        if unrouted:
            received["unrouted"] = unrouted
        stored = {"telemetry": writes.stored}
        for what, n in writes.counts.items():
            if what in _STORED_KIND:
                stored[_STORED_KIND[what]] = n
        dead: Counter[tuple[str, str]] = Counter(stats.dead_letters)
        if writes.refused:
            dead["telemetry", "refused"] += writes.refused
        for what, n in writes.poisoned_by.items():
            dead[_STORED_KIND.get(what, metric_kind(what)), "poison"] += n
        buffered = {"telemetry": consumer.batcher.held, "writes": consumer.writes.pending}
        for batcher in (consumer.statuses, consumer.snapshots, consumer.alerts):
            if batcher is not None:
                buffered[metric_kind(batcher.what)] = batcher.held
        return WorkerSnapshot(
            received=received,
            stored=stored,
            duplicates=writes.duplicates,
            dead_letters=dead,
            acks=dict(stats.acks),
            alerts=dict(stats.alerts),
            buffered=buffered,
            broker_connected=self.broker_connected(),
            lease_held=self.lease_held,
        )

    @property
    def lease_held(self) -> bool:
        return self.lease is not None and self.lease.held

    def broker_connected(self) -> bool:
        transport = self.worker.transport if self.worker is not None else None
        if transport is None:
            return False
        # The in-memory broker's transport is always connected.
        return bool(getattr(transport, "connected", True))

    async def readiness(self) -> tuple[bool, dict[str, object]]:
        try:
            await asyncio.wait_for(self.ping(), PROBE_TIMEOUT)
            database = "ok"
        except Exception as exc:  # any failure means "not ready"; the reason goes in the body
            database = f"unreachable: {type(exc).__name__}: {exc}"[:300]
        if not self.consuming:
            broker = "disabled"
        else:
            broker = "ok" if self.broker_connected() else "disconnected"
        snapshot = self.snapshot()
        ready = database == "ok" and broker in ("ok", "disabled")
        return ready, {
            "status": "ok" if ready else "unavailable",
            "broker": broker,
            "database": database,
            "dispatchLease": {"held": self.lease_held},
            "writeBufferDepth": sum(snapshot.buffered.values()),
        }


class _Process(Collector):
    """This process's registered metrics (histograms, counters, process_*)."""

    def collect(self) -> Iterable[Metric]:
        return REGISTRY.collect()


def worker_registry(view: WorkerView) -> CollectorRegistry:
    registry = CollectorRegistry()
    for collector in (_Process(), INGEST_LAG, ACK_ROUND_TRIP, WorkerCollector(view.snapshot)):
        registry.register(collector)
    return registry


@dataclass
class _Answer:
    status: int
    body: bytes
    content_type: str = "application/json"


_REASONS = {
    200: "OK",
    400: "Bad Request",
    404: "Not Found",
    405: "Method Not Allowed",
    503: "Service Unavailable",
}


class WorkerHttp:
    """The listener; :meth:`start` binds (an OSError says the port is taken)."""

    def __init__(self, view: WorkerView, host: str, port: int) -> None:
        self.view = view
        self.host = host
        self.port = port
        self.registry = worker_registry(view)
        self._server: asyncio.Server | None = None

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._serve, self.host, self.port)
        bound = self._server.sockets[0].getsockname()
        self.port = int(bound[1])
        log.info("worker HTTP on %s:%d: /metrics, /health, /health/ready", self.host, self.port)

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
            with contextlib.suppress(Exception):
                await self._server.wait_closed()

    async def answer(self, method: str, path: str) -> _Answer:
        path = path.split("?", 1)[0].rstrip("/") or "/"
        if path not in ("/metrics", "/health", "/health/ready"):
            return _Answer(404, b'{"detail":"not found: /metrics, /health, /health/ready"}')
        if method not in ("GET", "HEAD"):
            return _Answer(405, b'{"detail":"only GET"}')
        if path == "/metrics":
            return _Answer(200, generate_latest(self.registry), CONTENT_TYPE_LATEST)
        if path == "/health":
            return _Answer(200, b'{"status":"ok"}')
        ready, body = await self.view.readiness()
        return _Answer(200 if ready else 503, json.dumps(body).encode())

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            async with asyncio.timeout(REQUEST_TIMEOUT):
                head = await reader.readuntil(b"\r\n\r\n")
            method, _, rest = head.split(b"\r\n", 1)[0].decode("latin-1").partition(" ")
            path = rest.partition(" ")[0]
            if path.startswith("/"):
                answer = await self.answer(method, path)
            else:
                answer = _Answer(400, b'{"detail":"not an HTTP request"}')
            writer.write(
                f"HTTP/1.1 {answer.status} {_REASONS[answer.status]}\r\n"
                f"Content-Type: {answer.content_type}\r\n"
                f"Content-Length: {len(answer.body)}\r\nConnection: close\r\n\r\n".encode()
            )
            if method != "HEAD":
                writer.write(answer.body)
            await writer.drain()
        except (TimeoutError, ValueError, ConnectionError, asyncio.IncompleteReadError):
            pass  # a client that left or spoke no HTTP: nothing to answer
        except Exception:  # never let one request take the listener down
            log.exception("worker HTTP request failed")
        finally:
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()
