"""Configuration from the environment (and a `.env` file), with the variable
names of the original documents: DB_*, DATABASE_URL, MQTT_*, EVENT_COMMAND_ENABLED.

:func:`load_settings` is how a process reads them: every mistake comes back as
one line naming the variable and what it may be, never a traceback.
"""

from __future__ import annotations

import difflib
import os
from collections.abc import Iterable, Mapping
from datetime import date, timedelta
from types import UnionType
from typing import Any, Literal, Union, get_args, get_origin
from urllib.parse import quote
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from dotenv import dotenv_values
from pydantic import Field, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from gridcore.baselines import DEFAULT_METHOD, method_named
from gridcore.errors import InvalidInput
from gridcore.plausibility import DEFAULT_MAX_FUTURE_SKEW, DEFAULT_MAX_LOADS_PER_VEN
from gridcore.rebound import MAX_RESTORE_SPREAD
from gridcore.retention import (
    DEFAULT_ACK_RETENTION_DAYS,
    DEFAULT_RAW_RETENTION_DAYS,
    RetentionPolicy,
)
from gridcore.verification import Programme

SQLITE_DEFAULT = "sqlite+aiosqlite:///./gridcore.db"


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_file=".env", env_file_encoding="utf-8", extra="ignore", case_sensitive=False
    )

    # --- database (backend README: DB_* with DB_PORT 5432, DB_TIMEOUT 30) ---
    database_url: str | None = Field(
        default=None, description="Full SQLAlchemy URL; wins over DB_*"
    )
    db_host: str | None = None
    db_port: int = Field(default=5432, ge=1, le=65535)
    db_user: str | None = None
    db_password: str | None = None
    db_name: str | None = None
    db_timeout: float = Field(default=30.0, gt=0)

    # --- dispatch ---
    event_command_enabled: bool = True
    ven_offline_after_seconds: float = Field(default=60.0, gt=0)
    ack_timeout_seconds: float = Field(default=30.0, gt=0)
    ack_max_retries: int = Field(default=2, ge=0, le=20)
    gridcore_reconcile_after_seconds: float = Field(
        default=60.0,
        ge=0,
        le=24 * 3600,
        description="A VEN whose telemetry shows no shed this long after it accepted an event "
        "is sent the command again (same correlationId); 0: never",
    )
    gridcore_restore_spread_seconds: float = Field(
        default=0.0,
        ge=0,
        le=MAX_RESTORE_SPREAD.total_seconds(),
        description="Restores at an event's end or stop are staggered over this window, "
        "a fixed offset per VEN and event; 0: all at once",
    )
    gridcore_auto_register: bool = Field(
        default=True, description="Register unknown VENs on first telemetry (else refuse)"
    )
    # The worker's /metrics, /health and /health/ready (entrypoints.observing).
    gridcore_worker_http_port: int = Field(
        default=8001,
        ge=0,
        le=65535,
        description="Port of the worker's /metrics, /health and /health/ready; 0: none",
    )
    gridcore_worker_http_host: str = Field(
        default="127.0.0.1",
        min_length=1,
        description="Address the worker's HTTP listener binds (0.0.0.0: every interface)",
    )

    # --- MQTT (document 004's backend variables, plus TLS and worker scaling) ---
    mqtt_enabled: bool = Field(default=True, description="Run the MQTT consumer in the worker")
    mqtt_broker: str | None = Field(
        default=None, description="Broker host; unset = the in-memory broker (zero setup)"
    )
    mqtt_port: int = Field(default=1883, ge=1, le=65535)
    iot_endpoint: str | None = Field(
        default=None, description="AWS IoT Core endpoint; the broker when MQTT_BROKER is unset"
    )
    mqtt_client_id: str | None = Field(
        default=None, description="Stable client id: enables a persistent QoS 1 session"
    )
    mqtt_username: str | None = None
    mqtt_password: str | None = None
    mqtt_ca_cert: str | None = Field(default=None, description="CA file; TLS is on when set")
    mqtt_client_cert: str | None = Field(default=None, description="X.509 client certificate")
    mqtt_client_key: str | None = Field(default=None, description="Client certificate's key")
    mqtt_shared_group: str | None = Field(
        default=None, description="MQTT 5 shared subscription group ($share/<group>/...)"
    )
    mqtt_protocol_v5: bool | None = Field(
        default=None, description="MQTT 5; default: on when MQTT_SHARED_GROUP is set"
    )
    mqtt_topic_metering: str = "volttron/metering"
    mqtt_topic_status: str | None = None
    mqtt_topic_events: str | None = None
    mqtt_topic_responses: str | None = None
    backend_loads_topic: str | None = None
    # Whether telemetry is read from the shared metering topic (the documents'
    # VENs publish there, but it carries no identity: any client may name any
    # venId), from ven/telemetry/{venId} (where a broker ACL can bind the topic
    # to the client's certificate and the consumer checks the payload agrees),
    # or both (migrating a fleet; a sample sent on both is stored once).
    gridcore_telemetry_topics: Literal["shared", "per-ven", "both"] = Field(
        default="shared",
        description="shared: MQTT_TOPIC_METERING; per-ven: ven/telemetry/+ only; both",
    )
    mqtt_topics_extra: str | None = Field(
        default=None,
        validation_alias="MQTT_TOPICS",
        description="Comma-separated extra topics to subscribe to",
    )
    mqtt_batch_size: int = Field(default=500, ge=1, le=50_000)
    mqtt_batch_max_delay_ms: float = Field(default=50.0, gt=0)
    mqtt_max_held_samples: int = Field(default=50_000, ge=1)
    shadow_store: Literal["local", "aws"] = Field(
        default="local", description="local: fed by shadow updates"
    )
    aws_region: str | None = None

    # --- REST API access (tokens are secrets: never logged, never echoed) ---
    gridcore_api_tokens: str | None = Field(
        default=None,
        description="Comma-separated name:scope:token entries (scope read or control; the "
        "name, who acts in the audit trail, may be left out: scope:token)",
    )
    gridcore_api_tokens_file: str | None = Field(
        default=None, description="File with one name:scope:token entry a line (# comments)"
    )

    # --- the operator command line (gridcore vens, events, ping, audit) ---
    gridcore_url: str = Field(
        default="http://127.0.0.1:8000",
        description="The API the operator commands talk to (http:// or https://)",
    )
    gridcore_token: str | None = Field(
        default=None, description="The API token the operator commands present"
    )
    gridcore_token_file: str | None = Field(
        default=None, description="A file holding that token (its first line), instead"
    )
    gridcore_auth: Literal["enabled", "disabled"] = Field(
        default="enabled", description="disabled: no token checks"
    )
    gridcore_allow_open_access: bool = Field(
        default=False,
        description="Allow GRIDCORE_AUTH=disabled on a non-loopback address (else refused)",
    )
    gridcore_cors_origins: str | None = Field(
        default=None, description="Comma-separated origins allowed by CORS (* for any)"
    )
    gridcore_anonymous_read: bool = Field(
        default=False,
        description="Requests without a token may GET the paths the original dashboard "
        "reads (entrypoints.api.auth.ANONYMOUS_READS); never a write, never /docs",
    )
    gridcore_max_body_bytes: int = Field(
        default=256 * 1024,
        ge=1024,
        le=64 * 1024 * 1024,
        description="Largest request body the API reads; larger ones get 413 unread",
    )
    gridcore_api_max_page_bytes: int = Field(
        default=4 * 1024 * 1024,
        ge=64 * 1024,
        le=256 * 1024 * 1024,
        description="Most JSON bytes one page of GET /api/vens answers; the rest is on the "
        "next page (X-Next-Offset)",
    )
    gridcore_api_statement_timeout_seconds: float = Field(
        default=10.0,
        ge=0,
        le=3600,
        description="PostgreSQL cancels an API query running longer (503); 0: no limit",
    )
    gridcore_api_stats_max_age_seconds: float = Field(
        default=5.0,
        ge=0,
        le=300,
        description="How old /api/stats/network and /api/stats/loads may be in an API process "
        "(read again in the background past it); 0: read on every request",
    )
    gridcore_api_db_pool_size: int = Field(
        default=5,
        ge=1,
        le=100,
        description="Database connections one API process holds at most (each "
        "`serve --workers` process has its own)",
    )

    # --- the OpenADR 3.1 VTN under /openadr3 (docs/openadr3.md; secrets never logged) ---
    gridcore_openadr_clients: str | None = Field(
        default=None,
        description="Comma-separated role:clientID:secret entries (role bl or ven): the "
        "OAuth2 clients that /openadr3/auth/token trades for bearer tokens",
    )
    gridcore_openadr_clients_file: str | None = Field(
        default=None, description="File with one role:clientID:secret entry a line (# comments)"
    )
    gridcore_openadr_token_seconds: int = Field(
        default=3600, ge=60, le=86400, description="How long an OpenADR bearer token is valid"
    )
    gridcore_openadr_mqtt_uris: str | None = Field(
        default=None,
        description="Comma-separated broker URIs (mqtt://host:1883) OpenADR clients connect "
        "to: set, the API publishes OpenADR notifications on the MQTT_* broker and /notifiers "
        "announces the MQTT binding (anonymous)",
    )
    gridcore_openadr_mqtt_topic_prefix: str = Field(
        default="",
        max_length=200,
        description="Prepended to the spec's MQTT topic names (empty: the names as specified)",
    )
    gridcore_openadr_webhook_timeout: float = Field(default=5.0, gt=0, le=60)
    gridcore_openadr_webhook_attempts: int = Field(default=5, ge=1, le=20)
    gridcore_openadr_webhook_backoff: float = Field(
        default=1.0, gt=0, le=600, description="Seconds before a webhook's 2nd try, doubling"
    )
    gridcore_openadr_outbox_retention: float = Field(
        default=86_400.0,
        gt=0,
        description="Seconds delivered and given-up notifications stay in the outbox table",
    )
    gridcore_openadr_token_key: str | None = Field(
        default=None,
        min_length=32,
        description="Key that signs OpenADR bearer tokens (every API process must share it); "
        "unset: derived from the configured clients and their secrets",
    )

    # --- what a VEN's report may claim (gridcore.plausibility) ---
    gridcore_max_loads_per_ven: int = Field(
        default=DEFAULT_MAX_LOADS_PER_VEN,
        ge=1,
        le=10_000,
        description="Most loads one telemetry or load snapshot may list; more is dead-lettered",
    )
    gridcore_max_future_skew_seconds: float = Field(
        default=DEFAULT_MAX_FUTURE_SKEW.total_seconds(),
        ge=0,
        le=24 * 3600,
        description="How far past its receive time a report may be stamped; later is refused",
    )

    # --- retention (gridcore.retention; docs/decisions.md) ---
    gridcore_raw_retention_days: int = Field(
        default=DEFAULT_RAW_RETENTION_DAYS,
        ge=1,
        le=3660,
        description="UTC days of raw telemetry, load samples, statuses and load snapshots "
        "kept before today; older days are dropped (5-minute intervals stay)",
    )
    gridcore_ack_retention_days: int = Field(
        default=DEFAULT_ACK_RETENTION_DAYS,
        ge=0,
        le=36600,
        description="UTC days of ACKs kept before today (settlement evidence); 0 keeps them",
    )
    gridcore_retention_interval_seconds: float = Field(
        default=3600.0,
        ge=10,
        le=86400,
        description="How often a worker makes the coming days ready and applies retention",
    )
    gridcore_rollup_interval_seconds: float = Field(
        default=60.0,
        ge=1,
        le=3600,
        description="How often a worker rolls up the fleet's closed history (5-minute "
        "intervals and days); the fleet's history reads what is not rolled up yet per VEN",
    )

    gridcore_openadr_report_seconds: float = Field(
        default=15.0,
        ge=1,
        le=3600,
        description="How often a worker rewrites the OpenADR bridge's reports (ACKs, shed)",
    )

    # --- measurement and verification (gridcore.baselines, gridcore.verification) ---
    gridcore_timezone: str = Field(
        default="UTC",
        description="The programme's time zone (IANA name, e.g. America/Los_Angeles): "
        "baseline days, weekdays and holidays are its local dates",
    )
    gridcore_baseline_method: str = Field(
        default=DEFAULT_METHOD,
        description="Baseline of event performance: high-X-of-Y, X-in-Y (10-in-10), "
        "meter-before[-MINUTES] or ven-reported",
    )
    gridcore_rebound_minutes: int = Field(
        default=60,
        ge=0,
        le=360,
        description="How long after an event its rebound (snapback) is measured; 0: not at "
        "all. An event's performance is final, and kept, once this span is over",
    )
    gridcore_holidays: str = Field(
        default="",
        description="The programme's holidays, comma-separated ISO dates (2026-12-25,...): "
        "never baseline days for weekday events",
    )

    @field_validator("gridcore_url")
    @classmethod
    def _api_url(cls, value: str) -> str:
        url = value.strip().rstrip("/")
        scheme, sep, rest = url.partition("://")
        if not sep or scheme.lower() not in ("http", "https") or not rest:
            raise ValueError(f"{value!r} is not an http:// or https:// URL of the API")
        return url

    @field_validator("gridcore_timezone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        try:
            ZoneInfo(value.strip())
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(
                f"{value!r} is not a time zone; use an IANA name such as "
                "America/Los_Angeles, Europe/Berlin or UTC"
            ) from None
        return value.strip()

    @field_validator("gridcore_baseline_method")
    @classmethod
    def _known_method(cls, value: str) -> str:
        try:
            # Its own name: reports are kept under it ("meter-before-60" is "meter-before").
            return method_named(value).name
        except InvalidInput as exc:
            raise ValueError(exc.message) from None

    @field_validator("gridcore_holidays")
    @classmethod
    def _dates(cls, value: str) -> str:
        for text in filter(None, (part.strip() for part in value.split(","))):
            try:
                date.fromisoformat(text)
            except ValueError:
                raise ValueError(f"{text!r} is not a date (YYYY-MM-DD)") from None
        return value

    @property
    def programme(self) -> Programme:
        return Programme(
            tz=ZoneInfo(self.gridcore_timezone),
            method=self.gridcore_baseline_method,
            rebound=timedelta(minutes=self.gridcore_rebound_minutes),
            holidays=frozenset(
                date.fromisoformat(part.strip())
                for part in self.gridcore_holidays.split(",")
                if part.strip()
            ),
        )

    @property
    def mqtt_host(self) -> str | None:
        return self.mqtt_broker or self.iot_endpoint

    @property
    def mqtt_extra_topics(self) -> list[str]:
        return [t.strip() for t in (self.mqtt_topics_extra or "").split(",") if t.strip()]

    @property
    def mqtt_topics(self) -> list[str]:
        """The document's property: the configured topics that are set."""
        topics = [
            self.mqtt_topic_metering,
            self.mqtt_topic_status,
            self.mqtt_topic_events,
            self.mqtt_topic_responses,
            self.backend_loads_topic,
            *self.mqtt_extra_topics,
        ]
        return [t for t in topics if t]

    @field_validator("shadow_store", "gridcore_auth", "gridcore_telemetry_topics", mode="before")
    @classmethod
    def _choice_any_case(cls, value: Any) -> Any:
        return value.strip().lower() if isinstance(value, str) else value

    @model_validator(mode="after")
    def _db_settings_complete(self) -> Settings:
        # Without DB_* the embedded SQLite file is used: a partial DB_* set
        # would quietly become that file, and a fleet's data would go there.
        if self.database_url is not None:
            return self
        given = [
            n for n in POSTGRES_SETTINGS if n in self.model_fields_set and getattr(self, n) != ""
        ]
        missing = [n.upper() for n in POSTGRES_NEEDS if getattr(self, n) in (None, "")]
        if given and missing:
            raise ValueError(
                f"{_names([n.upper() for n in given])} {'is' if len(given) == 1 else 'are'} "
                f"set but {_names(missing)} {'is' if len(missing) == 1 else 'are'} not: "
                + POSTGRES_RULE
            )
        return self

    @property
    def resolved_database_url(self) -> str:
        """DATABASE_URL, else a PostgreSQL URL from DB_*, else the SQLite file."""
        if self.database_url:
            url = self.database_url
            # Accept the common spellings and use the psycopg 3 / aiosqlite drivers.
            for plain in ("postgres://", "postgresql://"):
                if url.startswith(plain):
                    return "postgresql+psycopg://" + url[len(plain) :]
            if url.startswith("sqlite:///"):
                return "sqlite+aiosqlite:///" + url[len("sqlite:///") :]
            return url
        if self.db_host:
            auth = quote(self.db_user or "postgres", safe="")
            if self.db_password:
                auth += ":" + quote(self.db_password, safe="")
            return f"postgresql+psycopg://{auth}@{self.db_host}:{self.db_port}/{self.db_name}"
        return SQLITE_DEFAULT

    @property
    def retention(self) -> RetentionPolicy:
        return RetentionPolicy(
            raw_days=self.gridcore_raw_retention_days,
            ack_days=self.gridcore_ack_retention_days,
        )

    @property
    def offline_after(self) -> timedelta:
        return timedelta(seconds=self.ven_offline_after_seconds)

    @property
    def ack_timeout(self) -> timedelta:
        return timedelta(seconds=self.ack_timeout_seconds)

    @property
    def restore_spread(self) -> timedelta:
        return timedelta(seconds=self.gridcore_restore_spread_seconds)

    @property
    def telemetry_retention(self) -> timedelta:
        return timedelta(days=self.gridcore_raw_retention_days)

    @property
    def reconcile_after(self) -> timedelta | None:
        seconds = self.gridcore_reconcile_after_seconds
        return timedelta(seconds=seconds) if seconds > 0 else None


# --- checking a process's configuration ---------------------------------------

# Setting any of these asks for PostgreSQL; DB_TIMEOUT does not (SQLite uses it too).
POSTGRES_SETTINGS = ("db_host", "db_port", "db_user", "db_password", "db_name")
POSTGRES_NEEDS = ("db_host", "db_user", "db_name")
POSTGRES_RULE = "PostgreSQL needs DB_HOST, DB_USER and DB_NAME, or DATABASE_URL"
# Variables gridcore reads that are not fields here.
# Read by the command line and by the container image's entrypoint
# (deploy/docker-entrypoint.sh), not by Settings.
OTHER_VARIABLES = ("GRIDCORE_LOG_LEVEL", "GRIDCORE_LOG_FORMAT", "GRIDCORE_MIGRATE_AT_START")
LOOKALIKE_PREFIXES = ("DB_", "MQTT_", "GRIDCORE_")
TEST_PREFIX = "GRIDCORE_TEST_"
# Names other software uses for a setting, which difflib does not find.
OTHER_NAMES = {
    "MQTT_HOST": "MQTT_BROKER",
    "MQTT_SERVER": "MQTT_BROKER",
    "MQTT_USER": "MQTT_USERNAME",
    "DB_DATABASE": "DB_NAME",
    "DB_USERNAME": "DB_USER",
    "DB_PASS": "DB_PASSWORD",
}
SECRETS = frozenset({"db_password", "mqtt_password", "gridcore_api_tokens", "gridcore_token"})
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR")
LOG_FORMATS = ("text", "json")


class ConfigurationError(ValueError):
    """What is wrong with the configuration: one line per mistake."""

    def __init__(self, lines: list[str]) -> None:
        super().__init__("\n".join(lines))
        self.lines = lines


def _names(names: list[str]) -> str:
    return ", ".join(names[:-1]) + " and " + names[-1] if len(names) > 1 else names[0]


def topic_filter_problem(topic_filter: str) -> str | None:
    """Why a broker would refuse ``topic_filter`` as a subscription (MQTT
    3.1.1/5 section 4.7, and 4.8.2 for ``$share/<group>/<filter>``), or None."""
    if not topic_filter:
        return "a topic filter cannot be empty"
    if "\x00" in topic_filter or len(topic_filter.encode("utf-8", "surrogatepass")) > 65535:
        return "a topic filter has no NUL character and at most 65535 bytes"
    proper = topic_filter
    if topic_filter.startswith("$share/"):
        group, _, proper = topic_filter[len("$share/") :].partition("/")
        if not group or "+" in group or "#" in group or not proper:
            return "a shared subscription is $share/<group>/<filter>, the group without + or #"
    levels = proper.split("/")
    for i, level in enumerate(levels):
        if "#" in level and (level != "#" or i != len(levels) - 1):
            return "# must be a whole level and the last one (a/#, not a/#/b or a#)"
        if "+" in level and level != "+":
            return "+ must be a whole level (a/+/b, not a+/b)"
    return None


def env_name(field: str) -> str:
    alias = Settings.model_fields[field].validation_alias
    return alias if isinstance(alias, str) else field.upper()


def setting_names() -> list[str]:
    return [env_name(field) for field in Settings.model_fields] + list(OTHER_VARIABLES)


def lookalikes(names: Iterable[str]) -> dict[str, str]:
    """The variables in ``names`` that look like a setting but are none (a
    misspelling, another program's name for it), each with the closest real
    setting. A name like nothing of ours (GRIDCORE_TEST_PG_HOST) is left
    alone: the prefixes are not ours alone."""
    real = setting_names()
    found: dict[str, str] = {}
    for name in (n.upper() for n in names):
        if not name.startswith(LOOKALIKE_PREFIXES) or name in real:
            continue
        if name.startswith(TEST_PREFIX):
            continue  # the test suite's own (GRIDCORE_TEST_MQTT_PORT is no misspelt setting)
        closest = OTHER_NAMES.get(name) or next(
            iter(difflib.get_close_matches(name, real, n=1, cutoff=0.75)), None
        )
        if closest is not None:
            found[name] = closest
    return found


def _expected(field: str) -> str:
    """What a field's variable may be, in words: 'true or false', 'a whole
    number from 1 to 65535', 'one of shared, per-ven, both'."""
    info = Settings.model_fields[field]
    kind = info.annotation
    if get_origin(kind) in (Union, UnionType):  # X | None
        kind = next(a for a in get_args(kind) if a is not type(None))
    if get_origin(kind) is Literal:
        return "one of " + ", ".join(str(choice) for choice in get_args(kind))
    if kind is bool:
        return "true or false (or 1/0, yes/no, on/off)"
    if kind not in (int, float):
        return "text"
    bounds: dict[str, object] = {}
    for bound in info.metadata:
        for key in ("ge", "gt", "le"):
            if hasattr(bound, key):
                bounds[key] = getattr(bound, key)
    words = "a whole number" if kind is int else "a number"
    if "ge" in bounds and "le" in bounds:
        return f"{words} from {bounds['ge']} to {bounds['le']}"
    limits = [f"at least {bounds['ge']}"] if "ge" in bounds else []
    limits += [f"above {bounds['gt']}"] if "gt" in bounds else []
    limits += [f"at most {bounds['le']}"] if "le" in bounds else []
    return " ".join([words, " and ".join(limits)]).strip()


def error_lines(exc: ValidationError) -> list[str]:
    """One line per error: the variable, its value (unless secret) and what
    it may be."""
    lines = []
    for error in exc.errors():
        if not error["loc"]:  # a rule across settings: its message says it all
            lines.append(str(error.get("ctx", {}).get("error", error["msg"])))
            continue
        loc = str(error["loc"][0])
        field = next((f for f in Settings.model_fields if env_name(f) == loc.upper()), loc)
        name = env_name(field) if field in Settings.model_fields else loc.upper()
        value = "(hidden)" if field in SECRETS else str(error.get("input", ""))
        shown = value if value and " " not in value else repr(value)
        if error["type"] == "value_error":
            lines.append(f"{name}={shown}: {error['ctx']['error']}")
        elif field in Settings.model_fields:
            lines.append(f"{name}={shown}: must be {_expected(field)}")
        else:
            lines.append(f"{name}={shown}: {error['msg']}")
    return lines


TOPIC_FILTERS = (
    "mqtt_topic_metering",
    "mqtt_topic_status",
    "mqtt_topic_events",
    "mqtt_topic_responses",
    "backend_loads_topic",
)
FILES = (
    "mqtt_ca_cert",
    "mqtt_client_cert",
    "mqtt_client_key",
    "gridcore_api_tokens_file",
    "gridcore_openadr_clients_file",
)


def start_problems(settings: Settings) -> list[str]:
    """What a process would otherwise find only when the worker subscribes or
    connects, or the first request comes: topic filters a broker refuses, a
    share group that is not one level, files it cannot read. One line each."""
    problems = []
    for field in TOPIC_FILTERS:
        value = getattr(settings, field)
        problem = None if value is None else topic_filter_problem(value)
        if problem is not None:
            problems.append(f"{env_name(field)}={value}: {problem}")
    extra = settings.mqtt_topics_extra or ""
    for topic in settings.mqtt_extra_topics:
        problem = topic_filter_problem(topic)
        if problem is not None:
            where = f"{topic}: " if "," in extra else ""
            problems.append(f"MQTT_TOPICS={extra}: {where}{problem}")
    group = settings.mqtt_shared_group
    if group is not None and (not group or any(c in group for c in "/+#")):
        problems.append(f"MQTT_SHARED_GROUP={group!r}: must be one topic level, without /, + or #")
    for field in FILES:
        path = getattr(settings, field)
        try:
            if path is not None:
                with open(path, "rb"):
                    pass
        except OSError as exc:
            problems.append(f"{env_name(field)}={path}: cannot read it ({exc.strerror})")
    return problems


def _dotenv() -> Mapping[str, str | None]:
    env_file = Settings.model_config.get("env_file")
    return dotenv_values(env_file) if isinstance(env_file, str) else {}


def load_settings() -> tuple[Settings, list[str]]:
    """The settings from the environment and ``.env``, and a warning line
    for each variable that looks like a setting but is none; raises
    :class:`ConfigurationError` with one line per mistake. A misspelled
    DB_* variable is a mistake, not a warning: with it ignored, gridcore
    would store everything in a SQLite file instead of PostgreSQL."""
    found = lookalikes([*os.environ, *_dotenv()])
    hints = [f"{name} is not a setting: did you mean {real}?" for name, real in found.items()]
    storage = "; ".join(hint for hint in hints if hint.startswith("DB_"))
    try:
        settings = Settings()
    except ValidationError as exc:
        lines = error_lines(exc)
        if storage:
            rule = next((i for i, line in enumerate(lines) if POSTGRES_RULE in line), None)
            if rule is None:
                lines.append(storage)
            else:
                lines[rule] += f"; {storage}"
        raise ConfigurationError(lines) from None
    problems = start_problems(settings)
    if problems:
        raise ConfigurationError(problems)
    if storage and settings.database_url is None:
        if settings.db_host is None:
            storage += f" ({POSTGRES_RULE}; SQLite is used only when no DB_* variable is set)"
        raise ConfigurationError([storage])
    return settings, [hint for hint in hints if settings.database_url or hint not in storage]


def log_level(value: str, source: str = "GRIDCORE_LOG_LEVEL") -> str:
    """``value`` as a logging level name, in any case."""
    level = value.strip().upper()
    if level not in LOG_LEVELS:
        allowed = ", ".join(level.lower() for level in LOG_LEVELS)
        raise ConfigurationError([f"{source}={value}: must be one of {allowed} (any case)"])
    return level


def log_format(value: str, source: str = "GRIDCORE_LOG_FORMAT") -> str:
    """``value`` as a log format: text (the default) or json (one object a line)."""
    fmt = value.strip().lower()
    if fmt not in LOG_FORMATS:
        raise ConfigurationError([f"{source}={value}: must be text or json"])
    return fmt
