"""Configuration from the environment (and a `.env` file), with the variable
names of the original documents: DB_*, DATABASE_URL, MQTT_*, EVENT_COMMAND_ENABLED.
"""

from __future__ import annotations

from datetime import timedelta
from urllib.parse import quote

from pydantic import Field, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

SQLITE_DEFAULT = "sqlite+aiosqlite:///./gridcore.db"


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_file=".env", env_file_encoding="utf-8", extra="ignore", case_sensitive=False
    )

    # --- database (backend README: DB_* with DB_PORT 5432, DB_TIMEOUT 30) ---
    database_url: str | None = Field(default=None, description="Full SQLAlchemy URL; wins over DB_*")
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
