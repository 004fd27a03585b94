"""History for the days before the simulator started (``--backfill-days``),
so that measurement has baselines from the first event on.

The past comes from the same function of time as the live telemetry: each VEN
gets a panel built from the same seed as its live one and is read at every
step (5 minutes by default) of the days asked for, as if no event had taken
place (the simulator knows of none then). A baseline from those days
therefore predicts the live load within the homes' own noise.

``N`` days of history are the N whole local days before today and today up
to now. Steps are aligned to the epoch (UTC) like gridcore's 5-minute
intervals (one sample at the start of each interval), end before the
interval holding ``now`` (where live telemetry begins) and are never repeated: a VEN whose
history is stored up to some instant (``since``) is filled from there on
only, so running the demo again fills the gap instead of writing twice.

Two ways in:

- :func:`backfill_store` (the demo): :class:`~gridcore.telemetry.TelemetrySample`
  batches straight into the :class:`~gridcore.ports.TelemetryStore`, which
  keeps ``ven_intervals`` up as for any telemetry. A sample carries the
  panel's figures (usedPowerKw, shed, baseline, battery, panel), not its
  circuits: measurement reads the panel, and ten days of circuit lines would
  be ten times the rows.
- :func:`backfill_broker` (``gridcore ven`` against a real broker): the live
  VEN's telemetry payload, circuits included, stamped in the past and
  published on the VEN's telemetry topics at a bounded rate, QoS 1 with a
  few publishes in flight, for the worker to store like any telemetry.

Both report progress through ``progress`` (one line every few seconds).
"""

from __future__ import annotations

import asyncio
import itertools
import math
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from entrypoints.simulator import payloads
from entrypoints.simulator.fleet import FleetConfig
from entrypoints.simulator.panel import Panel, generate_panel
from entrypoints.simulator.shedding import CircuitReading
from gridcore.ports import MessageTransport, TelemetryStore
from gridcore.quantities import to_kw, to_watts
from gridcore.telemetry import TelemetrySample

STEP_S = 300  # one sample per 5-minute interval
STORE_BATCH = 5_000  # samples per TelemetryStore.append
BROKER_RATE = 1_000.0  # samples per second published (two messages each)
BROKER_QOS = 1  # the broker's PUBACK paces the publisher and nothing is lost on the way
_IN_FLIGHT = 8  # publishes awaiting their PUBACK (aiomqtt warns above 10)
PROGRESS_EVERY_S = 5.0

Progress = Callable[[str], None]
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def _quiet(_: str) -> None:
    return None


@dataclass(frozen=True, slots=True)
class Window:
    """The instants to fill: ``start`` + k x ``step_s`` before ``end``
    (epoch seconds, multiples of ``step_s``)."""

    start: int
    end: int
    step_s: int

    @classmethod
    def of(
        cls, now: datetime, days: float, step_s: int = STEP_S, utc_offset_s: float = 0.0
    ) -> Window:
        """Up to the start of the step holding ``now``, from the local midnight
        that begins the day ``days`` days earlier: ``days`` whole days of
        history before today (in the homes' local time, ``utc_offset_s``),
        and today so far. No days, no history."""
        if days < 0 or not math.isfinite(days):
            raise ValueError("backfill days must be a non-negative number")
        if step_s < 1 or 86_400 % step_s:
            raise ValueError("the backfill step must divide a day in whole seconds")
        end = math.floor(now.timestamp()) // step_s * step_s
        if days == 0:
            return cls(end, end, step_s)
        local = end - round(days * 86_400) + utc_offset_s
        start = math.floor(local - local % 86_400 - utc_offset_s)
        return cls(start - start % step_s, end, step_s)

    def times(self, since: datetime | None = None) -> range:
        """The instants, after ``since`` when given (what is already stored)."""
        start = self.start
        if since is not None:
            after = math.floor(since.timestamp()) // self.step_s * self.step_s + self.step_s
            start = max(start, after)
        return range(start, self.end, self.step_s)

    def count(self, vens: int) -> int:
        return vens * len(self.times())


def history_panels(config: FleetConfig) -> list[tuple[str, Panel]]:
    """Each VEN of ``config`` with a panel of its own for the past (the same
    circuits and seeds as its live one; its battery runs through the past
    without touching the live one's)."""
    return [
        (config.ven_id(n), generate_panel(config.seed, n, config.utc_offset_s))
        for n in range(config.start_index, config.start_index + config.count)
    ]


def _readings(panel: Panel, epoch: float) -> tuple[list[CircuitReading], float]:
    draws = panel.read(epoch)
    readings = [
        CircuitReading(spec, draws[spec.id], draws[spec.id], True) for spec in panel.circuits
    ]
    return readings, to_kw(sum(to_watts(kw) for kw in draws.values()))


def history_payload(ven_id: str, panel: Panel, epoch: int) -> payloads.JsonObject:
    """The telemetry the live VEN would have sent at ``epoch`` with no event."""
    readings, used = _readings(panel, epoch)
    return payloads.telemetry(
        ven_id, epoch, panel, readings, used_kw=used, shed_kw=0.0, baseline_kw=used, event=None
    )


def history_sample(ven_id: str, panel: Panel, epoch: int) -> TelemetrySample:
    """:func:`history_payload`'s panel figures as the store takes them (the
    same numbers, rounded as on the wire; no circuit lines, no raw payload:
    nothing was received)."""
    draws = panel.read(epoch)
    used = to_kw(sum(to_watts(kw) for kw in draws.values()))
    body = payloads.telemetry(
        ven_id, epoch, panel, (), used_kw=used, shed_kw=0.0, baseline_kw=used, event=None
    )
    return TelemetrySample(
        ven_id=ven_id,
        timestamp=_EPOCH + timedelta(seconds=epoch),
        used_power_kw=body["usedPowerKw"],
        shed_power_kw=body["shedPowerKw"],
        baseline_power_kw=body["baselinePowerKw"],
        battery_soc=body["batterySOC"],
        panel_amperage_rating=body["panelAmperageRating"],
        panel_voltage=body["panelVoltage"],
        panel_max_kw=body["panelMaxKw"],
        current_amps=body["currentAmps"],
        panel_utilization_percent=body["panelUtilizationPercent"],
    )


def _walk(
    panels: Sequence[tuple[str, Panel]], window: Window, since: Mapping[str, datetime]
) -> Iterator[tuple[str, Panel, int]]:
    """(VEN, panel, instant) in time order, every VEN at each instant (so
    batteries step forwards), skipping what each VEN has stored already."""
    starts = {ven_id: window.times(since.get(ven_id)).start for ven_id, _ in panels}
    first = min(starts.values(), default=window.end)
    for epoch in range(first, window.end, window.step_s):
        for ven_id, panel in panels:
            if epoch >= starts[ven_id]:
                yield ven_id, panel, epoch


@dataclass(slots=True)
class _Reporter:
    what: str
    total: int
    progress: Progress
    done: int = 0
    started: float = 0.0
    last: float = 0.0

    def __post_init__(self) -> None:
        self.started = self.last = time.monotonic()

    def step(self, n: int) -> None:
        self.done += n
        now = time.monotonic()
        if now - self.last >= PROGRESS_EVERY_S and self.done < self.total:
            self.last = now
            rate = self.done / max(now - self.started, 1e-9)
            left = (self.total - self.done) / rate if rate > 0 else 0.0
            self.progress(
                f"backfill: {self.done:,} of {self.total:,} {self.what} "
                f"({100 * self.done / self.total:.0f} %, about {left:.0f} s left)"
            )

    @property
    def elapsed(self) -> float:
        return time.monotonic() - self.started


@dataclass(frozen=True, slots=True)
class BackfillResult:
    samples: int  # samples written (or published)
    duplicates: int  # already stored (the store path only)
    seconds: float
    start: datetime
    end: datetime

    def summary(self, days: float) -> str:
        if self.samples == 0 and self.duplicates == 0:
            return f"backfill: the last {days:g} day(s) of history are there already"
        rate = self.samples / self.seconds if self.seconds > 0 else 0.0
        return (
            f"backfill: {self.samples:,} samples of {days:g} day(s) "
            f"({self.start:%Y-%m-%d %H:%M} to {self.end:%Y-%m-%d %H:%M} UTC) "
            f"in {self.seconds:.1f} s ({rate:,.0f} a second)"
        )


async def backfill_store(
    store: TelemetryStore,
    config: FleetConfig,
    *,
    now: datetime,
    days: float,
    since: Mapping[str, datetime] | None = None,
    step_s: int = STEP_S,
    batch: int = STORE_BATCH,
    progress: Progress = _quiet,
) -> BackfillResult:
    """Write ``days`` of ``config``'s fleet's history before ``now`` into
    ``store`` in batches of ``batch`` samples. ``since``: per VEN, the newest
    sample already stored (nothing at or before it is written again)."""
    window = Window.of(now, days, step_s, config.utc_offset_s)
    known = since or {}
    panels = history_panels(config)
    total = sum(len(window.times(known.get(ven_id))) for ven_id, _ in panels)
    reporter = _Reporter("samples", total, progress)
    walk = _walk(panels, window, known)

    def next_batch() -> list[TelemetrySample]:
        return [history_sample(*item) for item in itertools.islice(walk, batch)]

    # The next batch is made in a thread while the store writes this one (the
    # database's driver lets go of the GIL while it works).
    stored = duplicates = 0
    pending = await asyncio.to_thread(next_batch)
    while pending:
        making = asyncio.create_task(asyncio.to_thread(next_batch))
        try:
            result = await store.append(pending)
        except BaseException:
            making.cancel()
            raise
        stored, duplicates = stored + result.stored, duplicates + result.duplicates
        reporter.step(len(pending))
        pending = await making
    return BackfillResult(stored, duplicates, reporter.elapsed, _at(window.start), _at(window.end))


async def backfill_broker(
    transport: MessageTransport,
    config: FleetConfig,
    *,
    now: datetime,
    days: float,
    step_s: int = STEP_S,
    rate: float = BROKER_RATE,
    progress: Progress = _quiet,
) -> BackfillResult:
    """Publish ``days`` of ``config``'s fleet's telemetry before ``now`` on
    each VEN's telemetry topics (the metering topic and ``ven/telemetry/{venId}``,
    as the live VEN does), at most ``rate`` samples a second."""
    if not rate > 0:
        raise ValueError("the backfill rate must be a positive number of samples a second")
    window = Window.of(now, days, step_s, config.utc_offset_s)
    panels = history_panels(config)
    reporter = _Reporter("samples", window.count(len(panels)), progress)
    gate = asyncio.Semaphore(_IN_FLIGHT)
    failures: list[BaseException] = []

    async def publish(topic: str, body: bytes) -> None:
        try:
            await transport.publish(topic, body, qos=BROKER_QOS)
        except (ConnectionError, OSError) as exc:
            failures.append(exc)
        finally:
            gate.release()

    tasks: set[asyncio.Task[None]] = set()
    loop = asyncio.get_running_loop()
    started = loop.time()
    sent = 0
    for ven_id, panel, epoch in _walk(panels, window, {}):
        if failures:
            break
        body = payloads.encode(history_payload(ven_id, panel, epoch))
        for topic in (config.metering_topic, f"ven/telemetry/{ven_id}"):
            await gate.acquire()
            task = loop.create_task(publish(topic, body))
            tasks.add(task)
            task.add_done_callback(tasks.discard)
        sent += 1
        reporter.step(1)
        ahead = started + sent / rate - loop.time()
        if ahead > 0:
            await asyncio.sleep(ahead)
    if tasks:
        await asyncio.gather(*tasks)
    if failures:
        raise ConnectionError(f"backfill stopped after {sent:,} samples: {failures[0]}")
    return BackfillResult(sent, 0, reporter.elapsed, _at(window.start), _at(window.end))


def _at(epoch: int) -> datetime:
    return _EPOCH + timedelta(seconds=epoch)
