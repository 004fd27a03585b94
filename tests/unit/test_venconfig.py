"""What a configuration push carries (only what operators set, laid over the
previous push) and how a VEN's report is compared with it."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime

from gridcore.correlation import CommandState
from gridcore.telemetry import LoadSample
from gridcore.venconfig import (
    ConfigState,
    LoadSetting,
    compare,
    config_state,
    decode_settings,
    encode_settings,
    new_push,
    overlay,
)

T0 = datetime(2026, 1, 5, 12, 0, tzinfo=UTC)


def test_overlay_keeps_earlier_instructions_and_skips_no_ops() -> None:
    first = overlay((), "c2", enabled=False, name="ignored")
    assert first == (LoadSetting("c2", enabled=False),)
    both = overlay(first, "c1", priority=3, shed_capability_kw=None)
    assert both == (LoadSetting("c1", priority=3), LoadSetting("c2", enabled=False))
    assert overlay(both, "c1", priority=3) is None  # nothing new: nothing to push
    assert overlay(both, "c1", name="HVAC", targets=("feeder-1",)) is None
    assert decode_settings(encode_settings(both)) == both
    assert encode_settings(both) == (
        '[{"loadId":"c1","priority":3},{"loadId":"c2","enabled":false}]'
    )


def test_only_set_fields_are_compared_and_a_shed_limit_is_a_ceiling() -> None:
    desired = (LoadSetting("c1", enabled=False, shed_capability_kw=1.0), LoadSetting("c9"))
    reported = [LoadSample("c1", enabled=False, priority=7, shed_capability_kw=0.4)]
    c1, c9 = compare(desired, reported)
    assert c1.in_sync and c1.mismatched == ()
    assert c9.mismatched == ("loadId",)  # the VEN reports no such load
    over = compare(desired[:1], [LoadSample("c1", enabled=True, shed_capability_kw=2.5)])
    assert over[0].mismatched == ("enabled", "shedCapabilityKw")
    unknown = compare(desired[:1], [LoadSample("c1")])  # fields it does not report
    assert unknown[0].in_sync


def test_a_push_state_follows_its_command() -> None:
    push = new_push("cmd-00000001", "ven-1", (LoadSetting("c1", priority=1),), T0)
    assert config_state(None) is ConfigState.NONE
    assert config_state(push) is ConfigState.PENDING
    expected = {
        CommandState.SENT: ConfigState.DELIVERED,
        CommandState.ACKED: ConfigState.CONFIRMED,
        CommandState.REJECTED: ConfigState.REJECTED,
        CommandState.TIMED_OUT: ConfigState.FAILED,
        CommandState.CANCELLED: ConfigState.SUPERSEDED,
    }
    for state, shown in expected.items():
        assert config_state(replace(push, state=state)) is shown
