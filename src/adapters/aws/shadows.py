"""``ShadowStore`` on AWS IoT Device Shadow through boto3 ``iot-data``.

boto3 is blocking: every call runs in a worker thread so the event loop (the
MQTT consumer) never waits on HTTP. ``get`` returns the shadow document as AWS
returns it (``state``, ``metadata``, ``version``, ``timestamp``), or None when
the thing has no shadow.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Mapping
from datetime import datetime
from typing import Any

import boto3  # type: ignore[import-untyped]


class Boto3ShadowStore:
    def __init__(
        self,
        *,
        endpoint_url: str | None = None,
        region: str | None = None,
        client: Any = None,
        shadow_name: str | None = None,
    ) -> None:
        """``endpoint_url`` is ``https://{IOT_ENDPOINT}``; ``shadow_name`` selects
        a named shadow (the classic, unnamed one by default)."""
        self._client = client or boto3.client(
            "iot-data", endpoint_url=endpoint_url, region_name=region
        )
        self._named = {"shadowName": shadow_name} if shadow_name else {}

    def _get(self, ven_id: str) -> Mapping[str, Any] | None:
        try:
            response = self._client.get_thing_shadow(thingName=ven_id, **self._named)
        except self._client.exceptions.ResourceNotFoundException:
            return None
        document = json.loads(response["payload"].read())
        return document if isinstance(document, dict) else None

    def _update(self, ven_id: str, document: Mapping[str, Any]) -> None:
        payload = json.dumps({"state": document["state"]}, separators=(",", ":")).encode()
        self._client.update_thing_shadow(thingName=ven_id, payload=payload, **self._named)

    async def get(self, ven_id: str) -> Mapping[str, Any] | None:
        return await asyncio.to_thread(self._get, ven_id)

    async def update(self, ven_id: str, document: Mapping[str, Any], at: datetime) -> None:
        """Forward a shadow update; AWS merges it and stamps its own time
        (``at`` is not needed: the service's clock is the shadow's clock)."""
        if not isinstance(document.get("state"), Mapping):
            raise ValueError("a shadow update needs a 'state' object")
        await asyncio.to_thread(self._update, ven_id, document)
