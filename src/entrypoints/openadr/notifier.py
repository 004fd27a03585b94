"""Delivery of OpenADR 3.1 notifications (docs/openadr3.md, "Notifications").

The :class:`Notifier` listens on ``Vtn.changes`` beside whatever else does
(:meth:`Notifier.attach` chains, it does not replace). Before the API
request that changed an object answers, its changes are routed (which
subscriptions, what each subscriber may read; which MQTT topics) and each
webhook call and MQTT message is put in the outbox
(:class:`gridcore.ports.NotificationOutbox`, a table on SQL storage), so a
stop or crash of this process loses none of them. Delivery runs in
background tasks, from the outbox, in every API process alike:

- A lane per callback URL (and per MQTT topic) delivers in the order of the
  changes; the outbox lets one process at a time hold a lane's head (a
  lease), so with several API processes each notification is delivered by
  one of them, and one whose holder died is taken over when its lease ends.
- At most ``concurrency`` calls at once over all lanes, each with a
  timeout; a failure (connection error, timeout, 5xx, 408, 425, 429) is
  retried with exponential back-off up to ``attempts`` times; any other 4xx
  ends it. A dead or slow callback holds up only its own lane.
- At most ``max_per_callback`` notifications wait for one lane (more are
  dropped and counted, ``dropped``); at most ``max_lanes`` lanes are
  delivered at once by this process (the others wait in the outbox).
- Delivered and given-up rows are pruned after ``retention``.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import socket
import uuid
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import httpx

from adapters.memory.outbox import InMemoryNotificationOutbox
from adapters.mqtt.transport import AiomqttTransport, MqttConnection
from entrypoints.settings import Settings
from gridcore.notifications import (
    Claimed,
    Outgoing,
    broadcast_topics,
    callbacks,
    notification,
    prefixed,
    ven_topic,
)
from gridcore.openadr import Client, Document, Kind, ObjectChange
from gridcore.ports import NotificationOutbox
from gridcore.vtn import Vtn

log = logging.getLogger("entrypoints.openadr.notifier")

Publish = Callable[[str, bytes], Awaitable[None]]
ClientLookup = Callable[[str], Client | None]
Now = Callable[[], datetime]
# Answers worth another try: the callback may recover.
_RETRIED = frozenset({408, 425, 429})
WEBHOOK, MQTT = "webhook", "mqtt"


@dataclass(frozen=True, slots=True)
class WebhookPolicy:
    timeout: float = 5.0  # seconds per call (and per MQTT publish)
    attempts: int = 5
    backoff: float = 1.0  # seconds before the 2nd attempt, doubling after
    backoff_max: float = 60.0
    concurrency: int = 16  # calls at once
    max_lanes: int = 1_000  # lanes this process delivers at once
    max_per_callback: int = 1_000  # notifications waiting for one lane
    poll: float = 1.0  # seconds between looks for others' rows and expired leases
    retention: float = 86_400.0  # seconds delivered/given-up rows are kept

    @property
    def lease(self) -> float:
        """Seconds a claimed row is this process's: longer than its whole
        delivery (every attempt timing out, every back-off), so a live
        process never has a row taken over; a dead one's comes back after."""
        waits = sum(
            min(self.backoff * 2.0 ** (a - 1), self.backoff_max) for a in range(1, self.attempts)
        )
        return float(self.attempts * self.timeout + waits + 30.0)


@dataclass(frozen=True, slots=True)
class MqttBinding:
    """What /notifiers announces and where this process publishes."""

    uris: tuple[str, ...]
    publish: Publish
    topic_prefix: str = ""
    close: Callable[[], Awaitable[None]] | None = None


def _json(document: Document) -> bytes:
    return json.dumps(document, separators=(",", ":"), ensure_ascii=False).encode()


def _utcnow() -> datetime:
    return datetime.now(UTC)


class Notifier:
    def __init__(
        self,
        vtn: Vtn,
        clients: ClientLookup,
        *,
        policy: WebhookPolicy | None = None,
        mqtt: MqttBinding | None = None,
        http: httpx.AsyncClient | None = None,
        outbox: NotificationOutbox | None = None,
        now: Now = _utcnow,
    ) -> None:
        self._vtn = vtn
        self._clients = clients
        self.policy = policy or WebhookPolicy()
        self.mqtt = mqtt
        self.outbox: NotificationOutbox = outbox or InMemoryNotificationOutbox()
        self._now = now
        self._http = http
        self._own_http = False
        # who holds a lease: unique per process and notifier, readable in the table
        self.owner = f"{socket.gethostname()[:80]}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        self._lanes: dict[tuple[str, str], list[Claimed]] = {}
        self._lane_tasks: dict[tuple[str, str], asyncio.Task[None]] = {}
        self._poller: asyncio.Task[None] | None = None
        self._wake = asyncio.Event()
        self._slots = asyncio.Semaphore(self.policy.concurrency)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._pruned_at: datetime | None = None
        # a process without the MQTT binding leaves MQTT rows to those with it
        self._channels = (WEBHOOK, MQTT) if mqtt is not None else (WEBHOOK,)
        # counters, for the log and the tests
        self.delivered = 0
        self.failed = 0
        self.dropped = 0
        self.published = 0

    def attach(self) -> None:
        """Listen on the VTN's changes, after whatever listens already."""
        previous = self._vtn.changes

        async def sink(changes: Sequence[ObjectChange]) -> None:
            await self.offer(changes)
            await previous(changes)

        self._vtn.changes = sink

    # --- the request's side: into the outbox, before the request answers ----

    async def offer(self, changes: Sequence[ObjectChange]) -> None:
        items: list[Outgoing] = []
        for change in changes:
            try:
                items.extend(await self._route(change))
            except Exception:  # one bad change must not fail the request or the others
                log.exception("routing %s %s failed", change.operation, change.kind)
        if items:
            try:
                left_out = await self.outbox.put(items, self._now(), self.policy.max_per_callback)
            except Exception:  # the change is stored already: the request still succeeds
                self.dropped += len(items)
                log.exception("%d notifications not written to the outbox", len(items))
                return
            if left_out:
                self.dropped += left_out
                log.warning("outbox lanes full: %d notifications dropped", left_out)
        self.start()
        self._wake.set()

    # --- routing --------------------------------------------------------------

    async def _route(self, change: ObjectChange) -> list[Outgoing]:
        out: list[Outgoing] = []
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
                out.append(
                    Outgoing(
                        WEBHOOK, callback.url, body, callback.bearer_token, callback.subscription_id
                    )
                )
        if self.mqtt is not None:
            out.extend(await self._route_mqtt(change))
        return out

    async def _route_mqtt(self, change: ObjectChange) -> list[Outgoing]:
        assert self.mqtt is not None
        prefix = self.mqtt.topic_prefix
        whole = _json(notification(change, change.document))
        out = [Outgoing(MQTT, t, whole) for t in prefixed(prefix, broadcast_topics(change))]
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
                    out.append(Outgoing(MQTT, prefix + topic, _json(notification(change, shown))))
        return out

    async def _ven_readers(self, change: ObjectChange) -> list[Document]:
        """The vens with a topic of their own for this change."""
        document = change.document
        if change.kind is Kind.VEN:
            return [document]
        vens = await self._vtn.all_vens()
        if change.kind is Kind.RESOURCE:
            return [v for v in vens if v["id"] == document["venID"]]
        return vens

    # --- delivery from the outbox ----------------------------------------------

    def start(self) -> None:
        """Deliver from the outbox in the background: what this process put
        there and what others left (a stopped process's rows, resumed at
        once; a crashed one's, when their leases end). Idempotent; started
        again if the event loop has changed (a test client may run one per
        request)."""
        loop = asyncio.get_running_loop()
        if self._loop is not loop:
            self._loop, self._poller = loop, None
            self._lanes.clear()
            self._lane_tasks.clear()
            self._wake = asyncio.Event()
            self._slots = asyncio.Semaphore(self.policy.concurrency)
            if self._own_http:  # its connections belong to the old loop
                self._http, self._own_http = None, False
        if self._poller is None:
            self._poller = asyncio.create_task(self._poll_forever())

    async def _poll_forever(self) -> None:
        while True:
            try:
                await self._claim()
                await self._prune()
            except Exception:  # the database away: look again later
                log.warning("notification outbox not read", exc_info=True)
            try:
                async with asyncio.timeout(self.policy.poll):
                    await self._wake.wait()
            except TimeoutError:
                pass
            self._wake.clear()

    async def _claim(self) -> int:
        room = self.policy.max_lanes - len(self._lane_tasks)
        if room <= 0:
            return 0
        now = self._now()
        until = now + timedelta(seconds=self.policy.lease)
        claimed = await self.outbox.claim(self.owner, now, until, room, None, self._channels)
        for row in claimed:
            lane = row.item.lane
            self._lanes.setdefault(lane, []).append(row)
            if lane not in self._lane_tasks:
                self._lane_tasks[lane] = asyncio.create_task(self._drain(lane))
        return len(claimed)

    async def _drain(self, lane: tuple[str, str]) -> None:
        """One lane's notifications, in order (a DELETE never overtakes its
        CREATE): the rows claimed for it, then its next heads, one by one."""
        rows = self._lanes[lane]
        try:
            while True:
                if not rows:
                    now = self._now()
                    until = now + timedelta(seconds=self.policy.lease)
                    rows.extend(await self.outbox.claim(self.owner, now, until, 1, lane))
                    if not rows:
                        return
                row = rows.pop(0)
                try:
                    delivered = await self._deliver(row.item)
                except Exception:  # a notification must never end its lane
                    log.exception("delivery on %s %s failed", *lane)
                    delivered = False
                if not await self.outbox.finish(row.row_id, self.owner, delivered, self._now()):
                    log.warning("outbox row %d of %s was taken over", row.row_id, lane[1])
        except Exception:  # the outbox away: the rows stay pending, the poller resumes them
            log.warning("lane %s %s stopped", *lane, exc_info=True)
        finally:
            del self._lane_tasks[lane]
            del self._lanes[lane]

    async def _deliver(self, item: Outgoing) -> bool:
        policy = self.policy
        outcome = "not tried"
        for attempt in range(policy.attempts):
            if attempt:
                await asyncio.sleep(min(policy.backoff * 2 ** (attempt - 1), policy.backoff_max))
            async with self._slots:
                outcome = await self._attempt(item)
            if outcome == "":
                return True
            if outcome.startswith("final "):
                break
            log.info(
                "%s %s of subscription %s: attempt %d failed (%s)",
                item.channel,
                item.target,
                item.subscription_id,
                attempt + 1,
                outcome,
            )
        self.failed += 1
        log.warning(
            "%s %s of subscription %s: not delivered (%s)",
            item.channel,
            item.target,
            item.subscription_id,
            outcome,
        )
        return False

    async def _attempt(self, item: Outgoing) -> str:
        """One try: "" when done, a reason otherwise ("final ..." when
        another try would not change it)."""
        if item.channel == MQTT:
            if self.mqtt is None:
                return "final no MQTT binding in this process"
            try:
                await asyncio.wait_for(
                    self.mqtt.publish(item.target, item.body), self.policy.timeout
                )
            except Exception as exc:  # the broker away: retried
                return f"{type(exc).__name__}"
            self.published += 1
            return ""
        headers = {"Content-Type": "application/json"}
        if item.bearer_token:
            headers["Authorization"] = f"Bearer {item.bearer_token}"
        try:
            answer = await self._client().post(
                item.target, content=item.body, headers=headers, timeout=self.policy.timeout
            )
        except (httpx.UnsupportedProtocol, httpx.InvalidURL) as exc:
            return f"final {type(exc).__name__}: not a URL this VTN calls"
        except httpx.HTTPError as exc:
            return f"{type(exc).__name__}"
        if answer.is_success:
            self.delivered += 1
            return ""
        if answer.status_code < 500 and answer.status_code not in _RETRIED:
            # the callback refuses: another try would not change that
            return f"final HTTP {answer.status_code}"
        return f"HTTP {answer.status_code}"

    async def _prune(self) -> None:
        now = self._now()
        every = timedelta(seconds=min(300.0, self.policy.retention))
        if self._pruned_at is not None and now - self._pruned_at < every:
            return
        self._pruned_at = now
        removed = await self.outbox.prune(now - timedelta(seconds=self.policy.retention))
        if removed:
            log.info("outbox: %d finished notifications pruned", removed)

    def _client(self) -> httpx.AsyncClient:
        if self._http is None:
            # no redirects: a callback answers itself, it does not send us elsewhere
            self._http = httpx.AsyncClient(follow_redirects=False)
            self._own_http = True
        return self._http

    # --- lifecycle ------------------------------------------------------------

    async def idle(self) -> None:
        """Deliver (or give up) every notification this process can claim
        now, and wait for it: for tests and an orderly shutdown."""
        self.start()
        while True:
            claimed = await self._claim()
            if not claimed and not self._lane_tasks:
                return
            await asyncio.gather(*list(self._lane_tasks.values()), return_exceptions=True)

    async def close(self) -> None:
        """Stop delivering; what is not delivered stays in the outbox, its
        leases given back so that another process resumes it at once."""
        tasks = [t for t in (self._poller, *self._lane_tasks.values()) if t is not None]
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._poller = None
        try:
            await self.outbox.release(self.owner)
        except Exception:  # the leases end by themselves
            log.warning("outbox leases of %s not released", self.owner, exc_info=True)
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
        retention=settings.gridcore_openadr_outbox_retention,
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
