"""The OpenAPI document, generated from the app and checked in as
``docs/backend-api.yaml`` (the documents' file name); a test fails when the
checked-in copy differs from what the app generates."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml  # type: ignore[import-untyped, unused-ignore]

from entrypoints.api.app import create_app
from entrypoints.settings import Settings

DEFAULT_PATH = Path("docs/backend-api.yaml")


def openapi_document() -> dict[str, Any]:
    # No environment, no .env: the document must not depend on where it is built.
    settings = Settings.model_construct(database_url="memory://")
    return create_app(settings).openapi()


def openapi_yaml() -> str:
    text: str = yaml.safe_dump(openapi_document(), sort_keys=False, allow_unicode=True, width=100)
    return text


def write_openapi(path: Path = DEFAULT_PATH) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(openapi_yaml(), encoding="utf-8")
    return path
