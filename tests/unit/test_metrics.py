"""The metrics' own behaviour: the bulk histogram exposes what
prometheus_client's Histogram would for the same values; the API counts
requests by route template (never a VEN id) and keeps /metrics behind a read
token; the worker's listener answers probes and scrapes; JSON logs carry the
ids as fields."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Callable

import httpx
from fastapi import FastAPI
from prometheus_client import CollectorRegistry, Histogram, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from adapters.metrics import BulkHistogram
from entrypoints.logs import JsonFormatter
from entrypoints.observing import WorkerHttp, WorkerView
from entrypoints.settings import Settings
from gridcore.logfields import log_ids

READ = "read-token-0123456789"


def _samples(text: str, prefix: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
        if s.name.startswith(prefix) and not s.name.endswith("_created")
    }


def test_the_bulk_histogram_exposes_what_a_histogram_would() -> None:
    values = [0.0, 0.01, 0.02, 0.05, 0.3, 7.0, 7.0, 1000.0]
    buckets = (0.01, 0.05, 1.0, 10.0)
    bulk = BulkHistogram("t_bulk_seconds", "test", "since", buckets)
    bulk.observe_many("message", values[:3])
    bulk.observe_many("message", values[3:])
    reference = CollectorRegistry()
    plain = Histogram("t_bulk_seconds", "test", ["since"], buckets=buckets, registry=reference)
    for v in values:
        plain.labels("message").observe(v)
    mine = CollectorRegistry()
    mine.register(bulk)
    got = _samples(generate_latest(mine).decode(), "t_bulk")
    assert got == _samples(generate_latest(reference).decode(), "t_bulk")
    assert got["t_bulk_seconds_count", (("since", "message"),)] == len(values)


async def test_the_api_counts_requests_by_route_template(api_app: Callable[..., FastAPI]) -> None:
    settings = Settings(database_url="memory://", gridcore_api_tokens=f"read:{READ}")  # type: ignore[call-arg]
    app = api_app(settings)
    transport = httpx.ASGITransport(app=app)
    token = {"Authorization": f"Bearer {READ}"}
    async with httpx.AsyncClient(transport=transport, base_url="http://gridcore") as client:
        assert (await client.get("/metrics")).status_code == 401
        before = (await client.get("/metrics", headers=token)).text
        assert (await client.get("/api/vens/ven-secret-1", headers=token)).status_code == 404
        assert (await client.get("/vens/ven-secret-2", headers=token)).status_code == 404
        assert (await client.get("/api/vens")).status_code == 401
        scraped = await client.get("/metrics", auth=("prometheus", READ))  # HTTP Basic
        assert scraped.status_code == 200
    after = _samples(scraped.text, "gridcore_api_requests_total")
    earlier = _samples(before, "gridcore_api_requests_total")

    def moved(route: str, status: str) -> float:
        labels = (("method", "GET"), ("route", route), ("status", status))
        key = ("gridcore_api_requests_total", labels)
        return after.get(key, 0.0) - earlier.get(key, 0.0)

    assert moved("/api/vens/{venId}", "404") == 2  # the bare path is the same route
    assert moved("(none)", "401") == 1  # refused before routing
    assert moved("/metrics", "200") == 1
    assert "ven-secret" not in scraped.text
    assert "gridcore_vens_registered 0.0" in scraped.text  # the fleet, read at scrape time
    assert "gridcore_events_active 0.0" in scraped.text


async def _get(port: int, request: bytes) -> tuple[int, bytes]:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(request)
    answer = await reader.read()
    writer.close()
    head, _, body = answer.partition(b"\r\n\r\n")
    return int(head.split(b" ")[1]), body


async def test_the_worker_listener_answers_probes_and_scrapes() -> None:
    up = True

    async def ping() -> None:
        if not up:
            raise ConnectionRefusedError("database away")

    view = WorkerView(ping)
    view.consuming = False  # MQTT_ENABLED=false: no broker to need
    http = WorkerHttp(view, "127.0.0.1", 0)
    await http.start()
    try:
        status, body = await _get(http.port, b"GET /health/ready HTTP/1.1\r\nHost: x\r\n\r\n")
        assert status == 200
        assert json.loads(body) == {
            "status": "ok", "broker": "disabled", "database": "ok",
            "dispatchLease": {"held": False}, "writeBufferDepth": 0,
        }  # fmt: skip
        up = False
        status, body = await _get(http.port, b"GET /health/ready HTTP/1.1\r\n\r\n")
        assert status == 503
        assert json.loads(body)["database"].startswith("unreachable: ConnectionRefusedError")
        view.consuming = True  # and no consumer connected yet
        up = True
        status, body = await _get(http.port, b"GET /health/ready HTTP/1.1\r\n\r\n")
        assert (status, json.loads(body)["broker"]) == (503, "disconnected")
        assert (await _get(http.port, b"GET /health HTTP/1.1\r\n\r\n"))[0] == 200
        status, body = await _get(http.port, b"GET /metrics HTTP/1.1\r\n\r\n")
        assert status == 200 and b"gridcore_mqtt_connected 0.0" in body
        assert b"gridcore_dispatch_lease_held 0.0" in body
        assert (await _get(http.port, b"POST /metrics HTTP/1.1\r\n\r\n"))[0] == 405
        assert (await _get(http.port, b"GET /other HTTP/1.1\r\n\r\n"))[0] == 404
        # Garbage and a client that leaves do not stop the listener.
        assert (await _get(http.port, b"\r\n\r\n"))[0] == 400
        _, writer = await asyncio.open_connection("127.0.0.1", http.port)
        writer.close()
        assert (await _get(http.port, b"GET /health HTTP/1.1\r\n\r\n"))[0] == 200
    finally:
        await http.close()


def test_json_logs_carry_the_ids_as_fields() -> None:
    logger = logging.getLogger("test.json")
    record = logger.makeRecord(
        "test.json", logging.INFO, __file__, 1, "sent %s to %s", ("evt-1-aa", "ven-1"), None,
        extra=log_ids("evt-1", "evt-1-aa", "ven-1"),
    )  # fmt: skip
    line = JsonFormatter().format(record)
    assert "\n" not in line
    entry = json.loads(line)
    assert entry["message"] == "sent evt-1-aa to ven-1"
    assert (entry["level"], entry["logger"]) == ("INFO", "test.json")
    assert (entry["eventId"], entry["correlationId"], entry["venId"]) == (
        "evt-1",
        "evt-1-aa",
        "ven-1",
    )
    assert entry["time"].endswith("+00:00")
    assert log_ids(None, None, "ven-2") == {"venId": "ven-2"}
    try:
        raise ValueError("boom\nsecond line")
    except ValueError:
        import sys

        failed = logger.makeRecord("t", logging.ERROR, __file__, 1, "x", (), sys.exc_info())
    entry = json.loads(JsonFormatter().format(failed))
    assert "ValueError: boom" in entry["exception"]
