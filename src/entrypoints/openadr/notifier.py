"""Delivery of OpenADR 3.1 notifications (docs/openadr3.md, "Notifications").

The :class:`Notifier` listens on ``Vtn.changes`` beside whatever else does
(:meth:`Notifier.attach` chains, it does not replace). The API request that
changed an object only puts its changes on a bounded queue
(``put_nowait``): routing (which subscriptions, what each subscriber may
read) and delivery run in background tasks of the same API process, so a
dead or slow callback or broker never delays a request or another callback.

- Webhooks: one lane (a task and its queue) per callback URL, delivering in
  the order of the changes; at most ``concurrency`` HTTP calls at once over
  all lanes, each with a timeout; a failure (connection error, timeout, 5xx, 408,
  429) is retried with exponential back-off up to ``attempts`` times; any
  other 4xx ends it (the callback refuses, retrying would not change that).
  At most ``max_pending`` deliveries wait at once (``max_per_callback`` for
  one URL); beyond that new ones are dropped and counted (``dropped``),
  never queued without bound.
- MQTT: every change on the spec's topics of everyone's objects (BL's),
  and on ``vens/{venID}/...`` for each ven whose client may read it (target
  hiding applied), through one publisher task in order.

Deliveries live in this process's memory: a restart loses what was not yet
delivered (see docs/openadr3.md, "Not yet": an outbox table).
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import json
import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass

import httpx

from adapters.mqtt.transport import AiomqttTransport, MqttConnection
from entrypoints.settings import Settings
from gridcore.notifications import (
    Callback,
    broadcast_topics,
    callbacks,
    notification,
    prefixed,
    ven_topic,
)
from gridcore.openadr import Client, Document, Kind, ObjectChange
from gridcore.vtn import Vtn

log = logging.getLogger("entrypoints.openadr.notifier")

Publish = Callable[[str, bytes], Awaitable[None]]
ClientLookup = Callable[[str], Client | None]
# Answers worth another try: the callback may recover.
_RETRIED = frozenset({408, 425, 429})


@dataclass(frozen=True, slots=True)
class WebhookPolicy:
    timeout: float = 5.0  # seconds per call
    attempts: int = 5
    backoff: float = 1.0  # seconds before the 2nd attempt, doubling after
    backoff_max: float = 60.0
    concurrency: int = 16  # HTTP calls at once
    max_pending: int = 10_000  # deliveries waiting (calling or backing off), all callbacks
    max_per_callback: int = 1_000  # of those, for one callback URL


@dataclass(frozen=True, slots=True)
class MqttBinding:
    """What /notifiers announces and where this process publishes."""

    uris: tuple[str, ...]
    publish: Publish
    topic_prefix: str = ""
    close: Callable[[], Awaitable[None]] | None = None


def _json(document: Document) -> bytes:
    return json.dumps(document, separators=(",", ":"), ensure_ascii=False).encode()


class Notifier:
    def __init__(
        self,
        vtn: Vtn,
        clients: ClientLookup,
        *,
        policy: WebhookPolicy | None = None,
        mqtt: MqttBinding | None = None,
        http: httpx.AsyncClient | None = None,
        max_changes: int = 10_000,
    ) -> None:
        self._vtn = vtn
        self._clients = clients
        self.policy = policy or WebhookPolicy()
        self.mqtt = mqtt
        self._http = http
        self._own_http = False
        self._changes: asyncio.Queue[ObjectChange] | None = None
        self._mqtt_queue: asyncio.Queue[tuple[str, bytes]] | None = None
        self._max_changes = max_changes
        self._lanes: dict[str, collections.deque[tuple[Callback, bytes]]] = {}
        self._lane_tasks: dict[str, asyncio.Task[None]] = {}
        self._pending = 0
        self._workers: list[asyncio.Task[None]] = []
        self._slots = asyncio.Semaphore(self.policy.concurrency)
        self._loop: asyncio.AbstractEventLoop | None = None
        # counters, for the log and the tests
        self.delivered = 0
        self.failed = 0
        self.dropped = 0
        self.published = 0

    def attach(self) -> None:
        """Listen on the VTN's changes, after whatever listens already."""
        previous = self._vtn.changes

        async def sink(changes: Sequence[ObjectChange]) -> None:
            self.offer(changes)  # cannot block or fail: first
            await previous(changes)

        self._vtn.changes = sink

    # --- the request's side: never waits ------------------------------------

    def offer(self, changes: Sequence[ObjectChange]) -> None:
        queue = self._started()
        for change in changes:
            try:
                queue.put_nowait(change)
            except asyncio.QueueFull:
                self.dropped += 1
                log.warning("notification queue full: %s %s dropped", change.operation, change.kind)

    def _started(self) -> asyncio.Queue[ObjectChange]:
        # Started on the first change, inside the server's event loop (again
        # if that loop has changed: a test client may run one per request).
        loop = asyncio.get_running_loop()
        if self._loop is not loop:
            self._loop, self._changes, self._mqtt_queue = loop, None, None
            self._workers.clear()
            self._lanes.clear()
            self._lane_tasks.clear()
            self._pending = 0
            self._slots = asyncio.Semaphore(self.policy.concurrency)
            if self._own_http:  # its connections belong to the old loop
                self._http, self._own_http = None, False
        if self._changes is None:
            self._changes = asyncio.Queue(self._max_changes)
            self._workers.append(asyncio.create_task(self._route_forever()))
            if self.mqtt is not None:
                self._mqtt_queue = asyncio.Queue(self._max_changes)
                self._workers.append(asyncio.create_task(self._publish_forever()))
        return self._changes

    # --- routing --------------------------------------------------------------

    async def _route_forever(self) -> None:
        assert self._changes is not None
        while True:
            change = await self._changes.get()
            try:
                await self._route(change)
            except Exception:  # one bad change must not stop notifications
                log.exception("routing %s %s failed", change.operation, change.kind)
            finally:
                self._changes.task_done()

    async def _route(self, change: ObjectChange) -> None:
        for subscription in await self._vtn.subscriptions_of(change.kind):
            wanted = callbacks(subscription, change)
            client = self._clients(subscription["clientID"]) if wanted else None
            if client is None:  # nothing asked, or its client is no longer configured
                continue
            shown = await self._vtn.visible_to(client, change.kind, change.document)
            if shown is None:  # privacy: not an object this subscriber may read
                continue
            body = _json(notification(change, shown))
            for callback in wanted:
                self._spawn(callback, body)
        if self._mqtt_queue is not None:
            await self._route_mqtt(change)

    async def _route_mqtt(self, change: ObjectChange) -> None:
        assert self.mqtt is not None and self._mqtt_queue is not None
        prefix = self.mqtt.topic_prefix
        whole = _json(notification(change, change.document))
        out = [(t, whole) for t in prefixed(prefix, broadcast_topics(change))]
        if ven_topic(change, "-") is not None:
            for ven in await self._ven_readers(change):
                client = self._clients(ven["clientID"])
                shown = (
                    None
                    if client is None
                    else await self._vtn.visible_to(client, change.kind, change.document)
                )
                topic = ven_topic(change, ven["id"])
                if shown is not None and topic is not None:
                    out.append((prefix + topic, _json(notification(change, shown))))
        for item in out:
            try:
                self._mqtt_queue.put_nowait(item)
            except asyncio.QueueFull:
                self.dropped += 1
                log.warning("MQTT notification queue full: %s dropped", item[0])

    async def _ven_readers(self, change: ObjectChange) -> list[Document]:
        """The vens with a topic of their own for this change."""
        document = change.document
        if change.kind is Kind.VEN:
            return [document]
        vens = await self._vtn.all_vens()
        if change.kind is Kind.RESOURCE:
            return [v for v in vens if v["id"] == document["venID"]]
        return vens

    # --- webhooks -------------------------------------------------------------

    def _spawn(self, callback: Callback, body: bytes) -> None:
        lane = self._lanes.setdefault(callback.url, collections.deque())
        if self._pending >= self.policy.max_pending or len(lane) >= self.policy.max_per_callback:
            self.dropped += 1
            log.warning(
                "webhook deliveries full (%d waiting, %d for %s): one for subscription %s dropped",
                self._pending,
                len(lane),
                callback.url,
                callback.subscription_id,
            )
            return
        lane.append((callback, body))
        self._pending += 1
        if callback.url not in self._lane_tasks:
            task = asyncio.create_task(self._drain(callback.url, lane))
            self._lane_tasks[callback.url] = task

    async def _drain(self, url: str, lane: collections.deque[tuple[Callback, bytes]]) -> None:
        """One callback URL's notifications, in the order of the changes: a
        DELETE never overtakes its CREATE. Each URL has a lane of its own, so
        a hung one holds up only itself."""
        try:
            while lane:
                callback, body = lane[0]
                try:
                    await self._deliver(callback, body)
                finally:
                    lane.popleft()
                    self._pending -= 1
        finally:
            del self._lane_tasks[url]
            if not lane:
                del self._lanes[url]

    async def _deliver(self, callback: Callback, body: bytes) -> None:
        headers = {"Content-Type": "application/json"}
        if callback.bearer_token:
            headers["Authorization"] = f"Bearer {callback.bearer_token}"
        policy = self.policy
        outcome = "not tried"
        for attempt in range(policy.attempts):
            if attempt:
                await asyncio.sleep(min(policy.backoff * 2 ** (attempt - 1), policy.backoff_max))
            try:
                async with self._slots:
                    answer = await self._client().post(
                        callback.url, content=body, headers=headers, timeout=policy.timeout
                    )
            except (httpx.UnsupportedProtocol, httpx.InvalidURL) as exc:
                outcome = f"{type(exc).__name__}: not a URL this VTN calls"
                break
            except httpx.HTTPError as exc:
                outcome = f"{type(exc).__name__}"
            except Exception as exc:  # a callback must never end its lane
                outcome = f"{type(exc).__name__}: {exc}"
                break
            else:
                if answer.is_success:
                    self.delivered += 1
                    return
                outcome = f"HTTP {answer.status_code}"
                if answer.status_code < 500 and answer.status_code not in _RETRIED:
                    break  # the callback refuses: another try would not change that
            log.info(
                "webhook %s of subscription %s: attempt %d failed (%s)",
                callback.url,
                callback.subscription_id,
                attempt + 1,
                outcome,
            )
        self.failed += 1
        log.warning(
            "webhook %s of subscription %s: not delivered (%s)",
            callback.url,
            callback.subscription_id,
            outcome,
        )

    def _client(self) -> httpx.AsyncClient:
        if self._http is None:
            # no redirects: a callback answers itself, it does not send us elsewhere
            self._http = httpx.AsyncClient(follow_redirects=False)
            self._own_http = True
        return self._http

    # --- MQTT -----------------------------------------------------------------

    async def _publish_forever(self) -> None:
        assert self.mqtt is not None and self._mqtt_queue is not None
        while True:
            topic, payload = await self._mqtt_queue.get()
            try:
                await self.mqtt.publish(topic, payload)
                self.published += 1
            except Exception:  # a broker away loses this message, not the publisher
                self.failed += 1
                log.warning("MQTT notification on %s not published", topic, exc_info=True)
            finally:
                self._mqtt_queue.task_done()

    # --- lifecycle ------------------------------------------------------------

    async def idle(self) -> None:
        """Wait until every change offered so far is routed, published and
        delivered (or given up): for tests and an orderly shutdown."""
        if self._changes is None:
            return
        await self._changes.join()
        if self._mqtt_queue is not None:
            await self._mqtt_queue.join()
        while self._lane_tasks:
            await asyncio.gather(*list(self._lane_tasks.values()), return_exceptions=True)

    async def close(self) -> None:
        tasks = [*self._workers, *self._lane_tasks.values()]
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._workers.clear()
        if self._http is not None and self._own_http:  # a client passed in is its owner's
            await self._http.aclose()
            self._http, self._own_http = None, False
        if self.mqtt is not None and self.mqtt.close is not None:
            await self.mqtt.close()


def webhook_policy(settings: Settings) -> WebhookPolicy:
    return WebhookPolicy(
        timeout=settings.gridcore_openadr_webhook_timeout,
        attempts=settings.gridcore_openadr_webhook_attempts,
        backoff=settings.gridcore_openadr_webhook_backoff,
    )


def mqtt_binding(settings: Settings) -> MqttBinding | None:
    """The MQTT binding, when GRIDCORE_OPENADR_MQTT_URIS names where clients
    connect: this process publishes on the MQTT_* broker, connecting on the
    first notification (and reconnecting by itself, the transport's way),
    with a client id of its own (the worker's persistent one stays the
    worker's)."""
    uris = tuple(
        u.strip() for u in (settings.gridcore_openadr_mqtt_uris or "").split(",") if u.strip()
    )
    if not uris:
        return None
    host = settings.mqtt_host
    if host is None:
        raise ValueError("GRIDCORE_OPENADR_MQTT_URIS needs MQTT_BROKER: the broker to publish on")
    conn = MqttConnection(
        host=host,
        port=settings.mqtt_port,
        ca_cert=settings.mqtt_ca_cert,
        client_cert=settings.mqtt_client_cert,
        client_key=settings.mqtt_client_key,
        username=settings.mqtt_username,
        password=settings.mqtt_password,
    )
    transport: list[AiomqttTransport] = []
    lock = asyncio.Lock()

    async def publish(topic: str, payload: bytes) -> None:
        async with lock:
            if not transport:
                transport.append(await AiomqttTransport.connect(conn))
        await transport[0].publish(topic, payload, qos=1)

    async def close() -> None:
        if transport:
            await transport.pop().close()

    return MqttBinding(uris, publish, settings.gridcore_openadr_mqtt_topic_prefix, close)
