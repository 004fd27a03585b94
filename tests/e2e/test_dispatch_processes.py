"""The dispatcher in real `gridcore worker` processes, on PostgreSQL and
Mosquitto, against the VEN simulator as a process (`gridcore ven`).

A real subscriber on ``ven/cmd/#`` counts every command each of this test's
VENs receives (VEN ids are unique per test, so concurrent tests on the same
broker never clash; each test also has its own metering topic, so no other
test's VENs appear in its database). Proven here:

- two workers on one database: exactly one dispatches (one event command per
  VEN); when the lease holder is SIGKILLed the other takes over;
- a worker SIGKILLed mid-event and restarted sends no duplicate event
  command and still sends the restore at the event's end;
- an event starting now is on ``ven/cmd`` within 1 s of its creation.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import subprocess
import sys
import time
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import IO

import aiomqtt
import pytest
from processes import forget_sessions

from adapters.sql.engine import create_engine
from adapters.sql.migrate import migrate
from adapters.sql.uow import SqlUnitOfWorkFactory
from adapters.system import RandomIds, SystemClock
from gridcore.correlation import CommandOp, CommandState
from gridcore.events import DrEvent
from gridcore.services import create_event

pytestmark = [pytest.mark.mosquitto, pytest.mark.postgres]

STEP_TIMEOUT = 15.0  # any one wait in these tests
# Configuration that must not leak from the caller's environment into the processes.
_OWN_PREFIXES = ("DB_", "MQTT_", "ACK_", "VEN_", "BACKEND_", "GRIDCORE_", "SHADOW_", "IOT_")
_OWN_NAMES = {"DATABASE_URL", "EVENT_COMMAND_ENABLED", "AWS_REGION"}


def gridcore_command() -> list[str]:
    """The console script of this interpreter's environment, else ``-m``."""
    script = Path(sys.executable).with_name("gridcore")
    return [str(script)] if script.exists() else [sys.executable, "-m", "entrypoints.cli"]


# --- processes ---------------------------------------------------------------------------


@dataclass
class Process:
    name: str
    args: list[str]
    env: dict[str, str]
    log_path: Path
    popen: subprocess.Popen[bytes] | None = None
    _log: IO[bytes] | None = None

    def start(self) -> Process:
        self._log = self.log_path.open("ab")
        self.popen = subprocess.Popen(
            self.args,
            env=self.env,
            cwd=self.log_path.parent,  # no stray .env file is read
            stdout=self._log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        return self

    @property
    def running(self) -> bool:
        return self.popen is not None and self.popen.poll() is None

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def kill(self, sig: int = signal.SIGKILL) -> None:
        if self.popen is not None and self.popen.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                self.popen.send_signal(sig)
        if self.popen is not None:
            try:
                self.popen.wait(10)
            except subprocess.TimeoutExpired:
                self.popen.kill()
                self.popen.wait(5)
        if self._log is not None:
            self._log.close()
            self._log = None


class Processes:
    """Every process a test starts; all killed when the test ends, whatever happens."""

    def __init__(self, tmp_path: Path, base_env: dict[str, str]) -> None:
        self.tmp_path = tmp_path
        self.base_env = base_env
        self.started: list[Process] = []

    def start(self, name: str, args: list[str], **env: str) -> Process:
        process = Process(
            name, gridcore_command() + args, {**self.base_env, **env}, self.tmp_path / f"{name}.log"
        )
        self.started.append(process.start())
        return process

    def kill_all(self) -> None:
        for process in self.started:
            process.kill(signal.SIGTERM if process.running else signal.SIGKILL)
        forget_sessions("".join(process.log() for process in self.started))

    def logs(self) -> str:
        return "\n".join(f"--- {p.name} ---\n{p.log()[-4000:]}" for p in self.started)


@dataclass(frozen=True)
class Fleet:
    """This test's names: VEN prefix, metering topic, database, broker."""

    prefix: str
    metering_topic: str
    database_url: str
    host: str
    port: int

    def ven_ids(self, count: int) -> set[str]:
        return {f"{self.prefix}-{n}" for n in range(1, count + 1)}


def process_env(fleet: Fleet) -> dict[str, str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in _OWN_NAMES and not k.startswith(_OWN_PREFIXES)
    }
    env.update(
        DATABASE_URL=fleet.database_url,
        MQTT_BROKER=fleet.host,
        MQTT_PORT=str(fleet.port),
        MQTT_TOPIC_METERING=fleet.metering_topic,
        MQTT_BATCH_MAX_DELAY_MS="20",
        VEN_OFFLINE_AFTER_SECONDS="60",
        ACK_TIMEOUT_SECONDS="5",
        ACK_MAX_RETRIES="2",
        EVENT_COMMAND_ENABLED="true",
        PYTHONUNBUFFERED="1",
        # No worker HTTP listener unless a test gives one a port: a test's
        # workers would all want the default 8001.
        GRIDCORE_WORKER_HTTP_PORT="0",
    )
    return env


# --- the command tap: a real subscriber on ven/cmd/# -------------------------------------


@dataclass(frozen=True)
class Received:
    ven_id: str
    op: str
    correlation_id: str
    event_id: str | None
    at: float  # time.time() on receipt


@dataclass
class CommandTap:
    prefix: str
    received: list[Received] = field(default_factory=list)

    def handle(self, topic: str, payload: bytes) -> None:
        ven_id = topic.removeprefix("ven/cmd/")
        if not ven_id.startswith(self.prefix + "-"):
            return  # another test's VEN
        body = json.loads(payload)
        self.received.append(
            Received(ven_id, body["op"], body["correlationId"], body.get("event_id"), time.time())
        )

    def of(self, op: str, event_id: str) -> list[Received]:
        return [r for r in self.received if r.op == op and r.event_id == event_id]

    def per_ven(self, op: str, event_id: str) -> Counter[str]:
        return Counter(r.ven_id for r in self.of(op, event_id))


@contextlib.asynccontextmanager
async def command_tap(fleet: Fleet) -> AsyncIterator[CommandTap]:
    tap = CommandTap(fleet.prefix)
    subscribed = asyncio.Event()

    async def listen() -> None:
        identifier = f"{fleet.prefix}-tap"
        async with aiomqtt.Client(fleet.host, fleet.port, identifier=identifier) as client:
            await client.subscribe("ven/cmd/#", qos=1)
            subscribed.set()
            async for message in client.messages:
                payload = message.payload
                assert isinstance(payload, bytes)
                tap.handle(str(message.topic), payload)

    task = asyncio.create_task(listen())
    try:
        waiting = asyncio.create_task(subscribed.wait())
        await asyncio.wait({task, waiting}, timeout=STEP_TIMEOUT, return_when="FIRST_COMPLETED")
        waiting.cancel()
        if task.done():
            task.result()  # raises what went wrong
        assert subscribed.is_set(), "the command tap could not subscribe"
        yield tap
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError, aiomqtt.MqttError):
            await task


# --- helpers ------------------------------------------------------------------------------


async def wait_until(
    what: str,
    check: Callable[[], bool | Awaitable[bool]],
    processes: Processes,
    within: float = STEP_TIMEOUT,
) -> None:
    deadline = time.monotonic() + within
    while True:
        result = check()
        if not isinstance(result, bool):
            result = await result
        if result:
            return
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {within:.0f}s waiting for {what}\n{processes.logs()}")
        await asyncio.sleep(0.05)


class Backend:
    """The test's own view of the database: create events, read what is there."""

    def __init__(self, url: str) -> None:
        self.engine = create_engine(url, timeout=10.0)
        self.uow = SqlUnitOfWorkFactory(self.engine)
        self.clock = SystemClock()

    async def online(self) -> set[str]:
        async with self.uow() as uow:
            return set(await uow.vens.online_ids(self.clock.now(), timedelta(seconds=60)))

    async def create_event(self, kw: float, seconds: float) -> DrEvent:
        now = self.clock.now()
        return await create_event(
            self.uow,
            self.clock,
            RandomIds(),
            start_time=now,
            end_time=now + timedelta(seconds=seconds),
            requested_reduction_kw=kw,
        )

    async def acked(self, event_id: str) -> set[str]:
        """VENs whose latest event command for ``event_id`` is ACKed in the ledger."""
        async with self.uow() as uow:
            commands = await uow.commands.for_event(event_id)
        return {
            c.ven_id for c in commands if c.op is CommandOp.EVENT and c.state is CommandState.ACKED
        }

    async def status(self, event_id: str) -> str:
        async with self.uow() as uow:
            event = await uow.events.get(event_id)
        assert event is not None
        return event.status.value


@pytest.fixture
def fleet(postgres_url: str, mosquitto_address: tuple[str, int], topic_prefix: str) -> Fleet:
    host, port = mosquitto_address
    return Fleet(
        prefix=f"t{uuid.uuid4().hex[:8]}-n",
        metering_topic=f"{topic_prefix}/metering",
        database_url=postgres_url,
        host=host,
        port=port,
    )


@pytest.fixture
async def backend(fleet: Fleet) -> AsyncIterator[Backend]:
    await migrate(fleet.database_url, retries=3, wait_seconds=0.5)
    backend = Backend(fleet.database_url)
    try:
        yield backend
    finally:
        await backend.engine.dispose()


@pytest.fixture
def processes(tmp_path: Path, fleet: Fleet) -> Iterator[Processes]:
    started = Processes(tmp_path, process_env(fleet))
    try:
        yield started
    finally:
        started.kill_all()


def start_vens(processes: Processes, fleet: Fleet, count: int) -> Process:
    args = ["ven", "--count", str(count), "--prefix", fleet.prefix, "--interval", "1"]
    return processes.start("vens", args)


def start_worker(processes: Processes, name: str, **env: str) -> Process:
    return processes.start(name, ["worker"], **env)


async def fleet_online(processes: Processes, backend: Backend, vens: set[str]) -> None:
    async def all_online() -> bool:
        return await backend.online() >= vens

    await wait_until("the simulated VENs to be online", all_online, processes)


LEASE_LINE = "holds the dispatch lease"


# --- tests ------------------------------------------------------------------------------


async def test_two_workers_one_dispatches_and_the_other_takes_over(
    fleet: Fleet, backend: Backend, processes: Processes
) -> None:
    vens = fleet.ven_ids(3)
    group = f"{fleet.prefix}-workers"  # the two consumers share the ACK stream
    workers = [start_worker(processes, f"worker-{n}", MQTT_SHARED_GROUP=group) for n in range(2)]
    start_vens(processes, fleet, len(vens))
    async with command_tap(fleet) as tap:
        await fleet_online(processes, backend, vens)

        def holders() -> list[Process]:
            return [w for w in workers if LEASE_LINE in w.log()]

        await wait_until("a worker to take the lease", lambda: bool(holders()), processes)
        (holder,) = holders()
        (other,) = [w for w in workers if w is not holder]

        first = await backend.create_event(kw=0.3, seconds=30)
        await wait_until(
            "the first event's commands",
            lambda: set(tap.per_ven("event", first.id)) == vens,
            processes,
        )
        await asyncio.sleep(1.5)  # room for a second dispatcher to (wrongly) send again
        assert tap.per_ven("event", first.id) == Counter({v: 1 for v in vens})
        assert f"event {first.id} active" in holder.log()
        assert f"event {first.id} active" not in other.log()
        assert LEASE_LINE not in other.log()

        holder.kill(signal.SIGKILL)
        await wait_until("the other worker to take the lease",
                         lambda: LEASE_LINE in other.log(), processes)  # fmt: skip
        second = await backend.create_event(kw=0.3, seconds=30)
        await wait_until(
            "the second event's commands from the survivor",
            lambda: set(tap.per_ven("event", second.id)) == vens,
            processes,
        )
        await asyncio.sleep(1.0)
        assert f"event {second.id} active" in other.log()
        assert tap.per_ven("event", second.id) == Counter({v: 1 for v in vens})
        # Taking over re-sent nothing of the first event.
        assert tap.per_ven("event", first.id) == Counter({v: 1 for v in vens})


async def kill_and_restart_mid_event(
    fleet: Fleet,
    backend: Backend,
    processes: Processes,
    *,
    after_acks_stored: bool,
) -> tuple[CommandTap, DrEvent, set[str]]:
    """One worker dispatches a short event; it is SIGKILLed mid-event (once
    the VENs' ACKs are stored, or as soon as the commands are on the wire) and
    restarted; returns once every VEN got its restore."""
    vens = fleet.ven_ids(3)
    # A stable client id: the consumer's session keeps the ACKs sent while it is dead.
    env = {"MQTT_CLIENT_ID": f"{fleet.prefix}-worker"}
    worker = start_worker(processes, "worker", **env)
    start_vens(processes, fleet, len(vens))
    async with command_tap(fleet) as tap:
        await fleet_online(processes, backend, vens)
        event = await backend.create_event(kw=0.3, seconds=14)
        await wait_until(
            "the event's commands",
            lambda: set(tap.per_ven("event", event.id)) == vens,
            processes,
        )
        if after_acks_stored:

            async def all_acked() -> bool:
                return await backend.acked(event.id) == vens

            await wait_until("the VENs' ACKs to be stored", all_acked, processes)
        worker.kill(signal.SIGKILL)
        await asyncio.sleep(0.5)
        restarted = start_worker(processes, "worker-restarted", **env)
        await wait_until(
            "the restarted worker to take the lease",
            lambda: LEASE_LINE in restarted.log(),
            processes,
        )
        await wait_until(
            "the restores at the event's end",
            lambda: set(tap.per_ven("restore", event.id)) == vens,
            processes,
            within=25,
        )
        await asyncio.sleep(1.0)  # room for a (wrong) second restore
    assert await backend.status(event.id) == "completed"
    assert await backend.acked(event.id) == vens
    restore_at = min(r.at for r in tap.of("restore", event.id))
    assert restore_at >= event.end_time.timestamp() - 0.05  # not before the end
    assert tap.per_ven("restore", event.id) == Counter({v: 1 for v in vens})
    return tap, event, vens


async def test_worker_killed_mid_event_sends_no_duplicate_and_still_restores(
    fleet: Fleet, backend: Backend, processes: Processes
) -> None:
    tap, event, vens = await kill_and_restart_mid_event(
        fleet, backend, processes, after_acks_stored=True
    )
    assert tap.per_ven("event", event.id) == Counter({v: 1 for v in vens})


async def test_worker_killed_right_after_sending_redispatches_nothing(
    fleet: Fleet, backend: Backend, processes: Processes
) -> None:
    """Killed before the VENs' ACKs are stored, the restarted worker creates
    no second command: an ACK the dead worker had taken from the broker but
    not stored is asked for again by the ACK deadline, with the same
    correlationId (a repeat the VEN answers idempotently), nothing more."""
    tap, event, vens = await kill_and_restart_mid_event(
        fleet, backend, processes, after_acks_stored=False
    )
    for ven in vens:
        sent = [r for r in tap.of("event", event.id) if r.ven_id == ven]
        assert len({r.correlation_id for r in sent}) == 1, sent
        assert 1 <= len(sent) <= 2, sent  # ACK_TIMEOUT 5 s: at most one retry before the ACK


async def test_event_starting_now_is_on_the_wire_within_a_second(
    fleet: Fleet, backend: Backend, processes: Processes
) -> None:
    vens = fleet.ven_ids(2)
    start_worker(processes, "worker")
    start_vens(processes, fleet, len(vens))
    async with command_tap(fleet) as tap:
        await fleet_online(processes, backend, vens)
        worker = processes.started[0]
        await wait_until("the worker's dispatcher", lambda: LEASE_LINE in worker.log(), processes)
        latencies = []
        for _ in range(3):
            created_at = time.time()
            event = await backend.create_event(kw=0.2, seconds=20)
            await wait_until(
                "the event's commands",
                lambda: set(tap.per_ven("event", event.id)) == vens,  # noqa: B023
                processes,
                within=5,
            )
            latencies.append(max(r.at for r in tap.of("event", event.id)) - created_at)
        print(f"creation -> last command on ven/cmd: {[round(s, 3) for s in latencies]} s")
        assert max(latencies) < 1.0, f"creation to last command: {latencies}"
        assert datetime.now(UTC) < event.end_time
