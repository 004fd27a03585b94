"""The operator commands' HTTP client of the REST API (httpx): the URL and
token from the settings, and every way a request can fail turned into one
line that says what to do next (``Failure``, exit code 1), never a traceback."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import httpx

from entrypoints.cli import Failure, UsageError
from entrypoints.settings import Settings

TIMEOUT_S = 15.0
# How requests travel: None is the network; tests put an httpx.MockTransport here.
TRANSPORT: httpx.BaseTransport | None = None
# Where a 404 sends the operator, by the path's first segment after /api.
_LISTS = {"vens": "`gridcore vens` lists the VENs", "events": "`gridcore events list` lists them"}


def token_from(settings: Settings, token_file: str | None) -> str | None:
    """``GRIDCORE_TOKEN``, else the first line of ``--token-file`` or
    ``GRIDCORE_TOKEN_FILE``; None (no header: an API without access control)
    when neither is set."""
    if settings.gridcore_token and not token_file:
        return settings.gridcore_token.strip()
    path = token_file or settings.gridcore_token_file
    if not path:
        return None
    try:
        lines = Path(path).read_text(encoding="utf-8").splitlines()
    except OSError as exc:
        raise UsageError(f"cannot read the token file {path}: {exc.strerror}") from None
    token = next((line.strip() for line in lines if line.strip()), "")
    if not token:
        raise UsageError(f"the token file {path} is empty")
    return token


def _message(response: httpx.Response) -> str:
    """The API's own words: ``message`` (422), else ``detail``, else the text."""
    try:
        body = response.json()
    except ValueError:
        return response.text.strip()[:200] or response.reason_phrase
    if isinstance(body, dict):
        for key in ("message", "detail"):
            if isinstance(body.get(key), str):
                return str(body[key])
    return str(body)[:200]


class Api:
    def __init__(
        self,
        url: str,
        token: str | None,
        *,
        timeout: float = TIMEOUT_S,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self.url = url
        # httpx logs every request at INFO: the command's own output says enough.
        logging.getLogger("httpx").setLevel(logging.WARNING)
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        self._client = httpx.Client(
            base_url=url, headers=headers, timeout=timeout, transport=transport or TRANSPORT
        )

    @classmethod
    def from_settings(cls, settings: Settings, token_file: str | None = None) -> Api:
        return cls(settings.gridcore_url, token_from(settings, token_file))

    def close(self) -> None:
        self._client.close()

    def __enter__(self) -> Api:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    def request(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, Any] | None = None,
        json: Any = None,
    ) -> httpx.Response:
        """The answer to a 2xx, else ``Failure`` saying what to do."""
        query = {k: v for k, v in (params or {}).items() if v is not None}
        try:
            response = self._client.request(method, path, params=query, json=json)
        except httpx.TimeoutException:
            raise Failure(
                f"the API at {self.url} did not answer within {TIMEOUT_S:.0f} s; is it "
                f"overloaded? (`curl {self.url}/health`)"
            ) from None
        except httpx.TransportError as exc:
            raise Failure(
                f"cannot reach the API at {self.url} ({exc or type(exc).__name__}): is "
                "`gridcore serve` running there? Set GRIDCORE_URL to its address"
            ) from None
        if response.is_success:
            return response
        raise Failure(self._refusal(response, path))

    def _refusal(self, response: httpx.Response, path: str) -> str:
        status, said = response.status_code, _message(response)
        if status == 401:
            return (
                f"the API refused the request (401: {said}): set GRIDCORE_TOKEN, or "
                "GRIDCORE_TOKEN_FILE / --token-file, to a token of its GRIDCORE_API_TOKENS"
            )
        if status == 403:
            return f"not allowed (403: {said}): this needs a token with control scope"
        if status == 404:
            area = path.removeprefix("/api/").split("/")[0]
            hint = _LISTS.get(area)
            if said in ("Not Found", ""):
                said = f"{self.url}{path} does not exist: is GRIDCORE_URL gridcore's API?"
            return f"{said}" + (f" ({hint})" if hint else "")
        if status in (409, 422):
            return f"refused ({status}): {said}"
        if status >= 500:
            return f"the API failed ({status}: {said}); its log says more"
        return f"the API answered {status}: {said}"

    def get(self, path: str, **params: Any) -> Any:
        return self.request("GET", path, params=params).json()

    def post(self, path: str, body: Any = None) -> Any:
        return self.request("POST", path, json=body).json()

    def delete(self, path: str) -> Any:
        response = self.request("DELETE", path)
        return response.json() if response.content else None
