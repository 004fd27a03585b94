"""Console sessions: the operator console's second way to present a token.

A browser page cannot keep a bearer token safe (any script on it could read
it), so the console's sign-in takes an API token once and answers with an
``HttpOnly``, ``SameSite=Lax`` cookie. The cookie holds no token: only the
scope the token had, an expiry and a random nonce, signed with a key made
from every configured token, so that changing the tokens ends every session
and that any number of API processes agree on a cookie without sharing
state.

The API takes the cookie in place of an ``Authorization`` header. A read
needs nothing more (another site's page can make the browser send a GET, but
not read its answer). A write also needs the ``X-CSRF-Token`` header equal
to the session's CSRF token, which the console's pages carry and another
site cannot read or set (a custom header makes a cross-site request
preflighted, and the API allows no foreign origin with credentials).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass

from entrypoints.api.auth import COOKIE, CSRF_HEADER, READ_METHODS, Scope, TokenChecker

__all__ = ["COOKIE", "CSRF_HEADER", "ConsoleSession", "SessionKeeper"]

LIFETIME_S = 12 * 3600  # an operator's shift


@dataclass(frozen=True, slots=True)
class ConsoleSession:
    scope: Scope
    name: str  # the token's (entrypoints.api.auth): who acts, in the audit trail
    csrf: str  # what a write must carry as X-CSRF-Token (and the console's forms)
    expires: int  # epoch seconds

    @property
    def can_control(self) -> bool:
        return self.scope is Scope.CONTROL


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


class SessionKeeper:
    def __init__(self, checker: TokenChecker, *, clock: Callable[[], float] = time.time) -> None:
        self._checker = checker
        self._clock = clock
        self._key = hashlib.sha256(
            b"gridcore console session\0" + b"".join(checker.fingerprints())
        ).digest()

    def open(self, token: str) -> tuple[str, ConsoleSession] | None:
        """A cookie value and its session for a valid ``token``, else None."""
        found = self._checker.token_of(token)
        if found is None:
            return None
        scope, name = found.scope, found.name
        expires = int(self._clock()) + LIFETIME_S
        fields = {"s": scope.value, "u": name, "e": expires, "n": secrets.token_urlsafe(16)}
        payload = _b64(json.dumps(fields).encode())
        cookie = f"{payload}.{self._sign(payload)}"
        return cookie, self._session(payload, scope, name, expires)

    def read(self, cookie: str | None) -> ConsoleSession | None:
        """The session of a cookie this keeper signed and that has not expired."""
        if not cookie or len(cookie) > 512:
            return None
        payload, _, signature = cookie.partition(".")
        if not hmac.compare_digest(signature.encode(), self._sign(payload).encode()):
            return None
        try:
            fields = json.loads(_unb64(payload))
            scope, name, expires = Scope(fields["s"]), str(fields["u"]), int(fields["e"])
        except (ValueError, KeyError, TypeError):
            return None  # a cookie from before names: signed in again
        if expires <= self._clock():
            return None
        return self._session(payload, scope, name, expires)

    def scope_for(self, method: str, cookie: str | None, csrf: str | None) -> Scope | None:
        """What a request carrying ``cookie`` (and for a write, ``csrf``) may
        do: its session's scope, or None (the request is judged without it)."""
        session = self.read(cookie)
        if session is None:
            return None
        if method not in READ_METHODS and not hmac.compare_digest(
            (csrf or "").encode(), session.csrf.encode()
        ):
            return None
        return session.scope

    def _sign(self, payload: str) -> str:
        return _b64(hmac.new(self._key, payload.encode(), hashlib.sha256).digest())

    def _session(self, payload: str, scope: Scope, name: str, expires: int) -> ConsoleSession:
        csrf = _b64(hmac.new(self._key, b"csrf\0" + payload.encode(), hashlib.sha256).digest())
        return ConsoleSession(scope, name, csrf, expires)
