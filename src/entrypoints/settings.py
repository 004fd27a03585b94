"""Configuration from the environment (and a `.env` file), with the variable
names of the original documents: DB_*, DATABASE_URL, MQTT_*, EVENT_COMMAND_ENABLED.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Literal
from urllib.parse import quote

from pydantic import Field, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from gridcore.plausibility import DEFAULT_MAX_FUTURE_SKEW, DEFAULT_MAX_LOADS_PER_VEN

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
    gridcore_auto_register: bool = Field(
        default=True, description="Register unknown VENs on first telemetry (else refuse)"
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
    shadow_store: str = Field(
        default="local", pattern="^(local|aws)$", description="local: fed by shadow updates"
    )
    aws_region: str | None = None

    # --- REST API access (tokens are secrets: never logged, never echoed) ---
    gridcore_api_tokens: str | None = Field(
        default=None, description="Comma-separated scope:token pairs; scope read or control"
    )
    gridcore_api_tokens_file: str | None = Field(
        default=None, description="File with one scope:token pair a line (# comments)"
    )
    gridcore_auth: str = Field(
        default="enabled", pattern="^(enabled|disabled)$", description="disabled: no token checks"
    )
    gridcore_allow_open_access: bool = Field(
        default=False,
        description="Allow GRIDCORE_AUTH=disabled on a non-loopback address (else refused)",
    )
    gridcore_cors_origins: str | None = Field(
        default=None, description="Comma-separated origins allowed by CORS (* for any)"
    )
    gridcore_max_body_bytes: int = Field(
        default=256 * 1024,
        ge=1024,
        le=64 * 1024 * 1024,
        description="Largest request body the API reads; larger ones get 413 unread",
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

    @model_validator(mode="after")
    def _db_settings_complete(self) -> Settings:
        if self.database_url is None and self.db_host is not None and not self.db_name:
            raise ValueError("DB_HOST is set but DB_NAME is not: set DB_NAME (and DB_USER)")
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
    def offline_after(self) -> timedelta:
        return timedelta(seconds=self.ven_offline_after_seconds)

    @property
    def ack_timeout(self) -> timedelta:
        return timedelta(seconds=self.ack_timeout_seconds)
