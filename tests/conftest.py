"""Shared fixtures: real services when they are there.

Tests that need PostgreSQL or Mosquitto skip when the service is unreachable,
unless GRIDCORE_REQUIRE_SERVICES=1 (as in CI), where they fail instead: a CI
run must never turn green by skipping what it was meant to prove.
"""

from __future__ import annotations

import os
import socket
import uuid
from collections.abc import Iterator

import pytest

PG_HOST = os.environ.get("GRIDCORE_TEST_PG_HOST", "127.0.0.1")
PG_PORT = int(os.environ.get("GRIDCORE_TEST_PG_PORT", "5432"))
PG_USER = os.environ.get("GRIDCORE_TEST_PG_USER", "postgres")
MQTT_HOST = os.environ.get("GRIDCORE_TEST_MQTT_HOST", "127.0.0.1")
MQTT_PORT = int(os.environ.get("GRIDCORE_TEST_MQTT_PORT", "1883"))


def services_required() -> bool:
    return os.environ.get("GRIDCORE_REQUIRE_SERVICES", "") not in ("", "0", "false")


def _reachable(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=1.0):
            return True
    except OSError:
        return False


def need_service(name: str, host: str, port: int) -> None:
    if _reachable(host, port):
        return
    message = f"{name} is not reachable on {host}:{port}"
    if services_required():
        pytest.fail(f"{message} and GRIDCORE_REQUIRE_SERVICES=1; start it (see .ci/run)")
    pytest.skip(message)


@pytest.fixture(scope="session")
def postgres_server() -> str:
    """Base URL (no database) of the PostgreSQL server used by the tests."""
    need_service("PostgreSQL", PG_HOST, PG_PORT)
    return f"postgresql+psycopg://{PG_USER}@{PG_HOST}:{PG_PORT}"


@pytest.fixture
def postgres_url(postgres_server: str) -> Iterator[str]:
    """A fresh, uniquely named database, dropped after the test."""
    import psycopg

    name = f"gridcore_test_{uuid.uuid4().hex[:12]}"
    admin = f"host={PG_HOST} port={PG_PORT} user={PG_USER} dbname=postgres"
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        yield f"{postgres_server}/{name}"
    finally:
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(scope="session")
def mosquitto_address() -> tuple[str, int]:
    need_service("Mosquitto", MQTT_HOST, MQTT_PORT)
    return MQTT_HOST, MQTT_PORT


@pytest.fixture
def topic_prefix() -> str:
    """A unique topic root so tests never see each other's messages."""
    return f"gridcore-test/{uuid.uuid4().hex[:12]}"
