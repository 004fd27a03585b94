"""gridcore.retention: which UTC days are kept, made ready and dropped."""

from __future__ import annotations

import asyncio
from datetime import UTC, date, datetime, timedelta, timezone

import pytest

from entrypoints.retaining import run_retention, run_rollup
from entrypoints.settings import Settings
from gridcore.ports import RetentionReport, RollupReport
from gridcore.retention import Kept, RetentionPolicy

NOW = datetime(2031, 5, 20, 0, 0, 1, tzinfo=UTC)


def test_raw_rows_keep_today_and_the_days_before_it() -> None:
    policy = RetentionPolicy(raw_days=35)
    assert policy.first_kept_day(Kept.RAW, NOW) == date(2031, 4, 15)
    assert policy.cutoff(Kept.RAW, NOW) == datetime(2031, 4, 15, tzinfo=UTC)
    days = [date(2031, 4, 13), date(2031, 4, 14), date(2031, 4, 15), date(2031, 5, 21)]
    assert policy.expired(Kept.RAW, reversed(days), NOW) == days[:2]


def test_days_are_utc_days_whatever_the_clock_zone() -> None:
    # 23:30 on the 19th in New York is already the 20th in UTC.
    local = datetime(2031, 5, 19, 23, 30, tzinfo=timezone(timedelta(hours=-4)))
    assert RetentionPolicy(days_ahead=2).days_to_prepare(local) == [
        date(2031, 5, 20),
        date(2031, 5, 21),
        date(2031, 5, 22),
    ]
    with pytest.raises(ValueError, match="naive"):
        RetentionPolicy().days_to_prepare(datetime(2031, 5, 20))


def test_acks_have_their_own_retention_and_zero_keeps_them() -> None:
    assert RetentionPolicy(ack_days=400).first_kept_day(Kept.ACKS, NOW) == date(2030, 4, 15)
    forever = RetentionPolicy(ack_days=0)
    assert forever.cutoff(Kept.ACKS, NOW) is None
    assert forever.expired(Kept.ACKS, [date(2001, 1, 1)], NOW) == []
    assert forever.cutoff(Kept.RAW, NOW) is not None


@pytest.mark.parametrize("kwargs", [{"raw_days": 0}, {"ack_days": -1}, {"days_ahead": 0}])
def test_a_policy_that_would_lose_today_is_refused(kwargs: dict[str, int]) -> None:
    with pytest.raises(ValueError, match="day"):
        RetentionPolicy(**kwargs)


def test_settings_give_the_policy(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GRIDCORE_RAW_RETENTION_DAYS", "10")
    monkeypatch.setenv("GRIDCORE_ACK_RETENTION_DAYS", "0")
    policy = Settings().retention
    assert (policy.raw_days, policy.ack_days) == (10, 0)
    assert Settings(_env_file=None, gridcore_raw_retention_days=35).retention.raw_days == 35


class FlakyRetention:
    """A StorageRetention whose first pass fails."""

    def __init__(self, stop: asyncio.Event) -> None:
        self.passes: list[datetime] = []
        self._stop = stop

    async def enforce(self, policy: RetentionPolicy, now: datetime) -> RetentionReport | None:
        self.passes.append(now)
        if len(self.passes) == 3:
            self._stop.set()
        if len(self.passes) == 1:
            raise RuntimeError("database went away")
        return RetentionReport()


class FixedClock:
    def now(self) -> datetime:
        return NOW


async def test_the_worker_loop_passes_at_start_and_survives_a_failure() -> None:
    stop = asyncio.Event()
    retention = FlakyRetention(stop)
    run = run_retention(retention, RetentionPolicy(), FixedClock(), stop, interval=0.01)
    await asyncio.wait_for(run, 2.0)  # ends once stop is set, after the third pass
    assert retention.passes == [NOW, NOW, NOW]


class FlakyRollup:
    """A HistoryRollup whose first pass fails."""

    def __init__(self, stop: asyncio.Event) -> None:
        self.passes: list[datetime] = []
        self._stop = stop

    async def roll_up(self, now: datetime) -> RollupReport | None:
        self.passes.append(now)
        if len(self.passes) == 2:
            self._stop.set()
        if len(self.passes) == 1:
            raise RuntimeError("database went away")
        return RollupReport(now)


async def test_the_roll_up_loop_passes_at_start_and_survives_a_failure(
    caplog: pytest.LogCaptureFixture,
) -> None:
    stop = asyncio.Event()
    rollup = FlakyRollup(stop)
    await asyncio.wait_for(run_rollup(rollup, FixedClock(), stop, interval=0.01), 2.0)
    assert rollup.passes == [NOW, NOW]
    assert "roll-up pass failed" in caplog.text
