"""The dashboard, the alert rules and docs/operations.md name only metrics
gridcore exposes, and the operations guide describes every one: they cannot
drift apart from the code."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
import yaml
from prometheus_client import CollectorRegistry

from adapters.metrics import FleetCollector, FleetSnapshot
from entrypoints.observing import WorkerView, worker_registry

DOCS = Path(__file__).resolve().parents[2] / "docs"
NAME = re.compile(r"\bgridcore_[a-z0-9_]+")
SUFFIXES = {
    "counter": ("_total", "_created"),
    "histogram": ("_bucket", "_count", "_sum", "_created"),
    "gauge": ("",),
}


async def _no_database() -> None:
    raise ConnectionError("not used")


def families() -> dict[str, str]:
    """Every gridcore family a worker or serve exposes: name -> type."""
    registry = CollectorRegistry()
    registry.register(FleetCollector(FleetSnapshot(1, 1, 1, 1.0, 1.0)))
    found = {f.name: f.type for f in registry.collect()}
    found |= {f.name: f.type for f in worker_registry(WorkerView(_no_database)).collect()}
    return {name: kind for name, kind in found.items() if name.startswith("gridcore_")}


def sample_names() -> set[str]:
    return {name + suffix for name, kind in families().items() for suffix in SUFFIXES[kind]}


def dashboard() -> dict[str, Any]:
    return json.loads((DOCS / "grafana-dashboard.json").read_text())


def alert_rules() -> list[dict[str, Any]]:
    document = yaml.safe_load((DOCS / "prometheus-alerts.yml").read_text())
    return [rule for group in document["groups"] for rule in group["rules"]]


def dashboard_exprs() -> list[str]:
    return [t["expr"] for p in dashboard()["panels"] for t in p.get("targets", [])]


def test_the_registry_has_the_issues_metrics() -> None:
    names = families()
    for family in (
        "gridcore_api_requests",
        "gridcore_api_request_duration_seconds",
        "gridcore_mqtt_messages_received",
        "gridcore_mqtt_messages_stored",
        "gridcore_mqtt_dead_letters",
        "gridcore_ingest_lag_seconds",
        "gridcore_ingest_batch_size",
        "gridcore_ingest_write_duration_seconds",
        "gridcore_write_buffer_depth",
        "gridcore_commands_sent",
        "gridcore_commands_retried",
        "gridcore_commands_timed_out",
        "gridcore_acks",
        "gridcore_ack_round_trip_seconds",
        "gridcore_dispatch_pass_duration_seconds",
        "gridcore_vens_online",
        "gridcore_events_active",
        "gridcore_events_requested_kw",
        "gridcore_events_claimed_kw",
    ):
        assert family in names, family


@pytest.mark.parametrize("source", ["dashboard", "alerts", "operations"])
def test_every_metric_a_document_names_exists(source: str) -> None:
    if source == "dashboard":
        texts = dashboard_exprs()
    elif source == "alerts":
        texts = [rule["expr"] for rule in alert_rules()]
    else:
        texts = [(DOCS / "operations.md").read_text()]
    used = {name for text in texts for name in NAME.findall(text)}
    assert used
    known = sample_names() | set(families())
    assert used - known == set()


def test_the_operations_guide_describes_every_metric() -> None:
    guide = (DOCS / "operations.md").read_text()
    rows = {m.group(1) for m in re.finditer(r"^\| `(gridcore_[a-z0-9_]+)` \|", guide, re.M)}
    exposed = {name + ("_total" if kind == "counter" else "") for name, kind in families().items()}
    assert rows == exposed


def test_the_dashboard_is_an_importable_model_over_every_area() -> None:
    model = dashboard()
    assert model["title"] and model["uid"] and model["schemaVersion"] >= 30
    panels = model["panels"]
    assert len({p["id"] for p in panels}) == len(panels)
    for panel in panels:
        assert {"type", "title", "gridPos"} <= panel.keys()
        assert {"h", "w", "x", "y"} <= panel["gridPos"].keys()
        for target in panel.get("targets", []):
            assert target["refId"] and target["expr"]
            assert target["expr"].count("(") == target["expr"].count(")")
    used = {name for expr in dashboard_exprs() for name in NAME.findall(expr)}
    areas = ("api_", "mqtt_", "ingest_", "commands_", "ack", "dispatch_", "vens_", "events_")
    for area in (f"gridcore_{a}" for a in areas):
        assert any(name.startswith(area) for name in used), area


def test_the_alert_rules_cover_what_an_operator_starts_with() -> None:
    rules = {rule["alert"]: rule for rule in alert_rules()}
    for name in (
        "GridcoreWorkerDown",
        "GridcoreIngestLagHigh",
        "GridcoreDeadLettersRising",
        "GridcoreAckTimeoutsRising",
    ):
        assert name in rules
    for rule in rules.values():
        assert rule["expr"].count("(") == rule["expr"].count(")")
        assert rule["labels"]["severity"] in {"warning", "critical"}
        assert re.fullmatch(r"\d+[smh]", rule["for"])
        assert rule["annotations"]["summary"]
