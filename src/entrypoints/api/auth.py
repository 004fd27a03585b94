"""Bearer tokens with two scopes: ``read`` for GET, ``control`` for every
write (a control token may also read).

Configuration: ``GRIDCORE_API_TOKENS`` = comma-separated ``name:scope:token``
entries, or ``GRIDCORE_API_TOKENS_FILE`` with one entry a line (blank lines
and ``#`` comments allowed); both may be given. The name says who acts in
the audit trail (``gridcore.audit``). The older ``scope:token`` form is still
read: an entry whose first field is a scope is that form, whatever its token
holds (a token may contain ``:``), and its name is derived from the scope and
a fingerprint of the token (``control-1a2b3c4d``: the first 8 hex digits of
the token's SHA-256), stable as long as the token is. A name is 1 to 64
letters, digits, ``.``, ``_``, ``-`` or ``@``, and never a scope word, so the
two forms cannot be mistaken for each other. Several tokens may share a name
(a rotation). ``GRIDCORE_AUTH=disabled`` turns the
checks off (the demo, bound to 127.0.0.1; another address needs an explicit
opt-in, see ``entrypoints.api.server``).

The API takes ``Authorization: Bearer <token>`` only. The documentation pages
(``/docs``, ``/redoc``, ``/openapi.json``) take the same token also as the
password of HTTP Basic, which a browser asks for by itself: they are read-only,
so a browser re-sending those credentials on another site's behalf (which is
why the API never accepts them) can change nothing.

A presented token is compared with every configured token, in constant time
and without stopping at the first match, so neither the timing nor the
position of a match tells an attacker anything.

``GRIDCORE_ANONYMOUS_READ=true`` lets a request without any ``Authorization``
header GET the paths the original dashboard reads (``ANONYMOUS_READS``): a
browser app that sends no token works, and nothing else opens. A request that
presents a token is judged by it (a wrong one is still 401).
"""

from __future__ import annotations

import base64
import binascii
import enum
import hashlib
import hmac
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated

from fastapi import Depends, HTTPException, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from entrypoints.settings import Settings

# Below this a token is guessable; refusing it at start-up beats a breach later.
MIN_TOKEN_LENGTH = 16
READ_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})

# What GRIDCORE_ANONYMOUS_READ opens, to GET (and HEAD) only: the reads of the
# original dashboard (ecs-frontend: stats cards, VEN list, map and detail page,
# circuit charts, event pages) and of the VEN simulator's page (a VEN's events).
# "*" is one path segment: an id, or "summary", "current", "history". Left
# closed: raw payloads (telemetry), device shadows, ACK audit details, the
# OpenAPI document and /docs, and every write.
ANONYMOUS_READS = (
    "/api/stats/network",
    "/api/stats/network/history",
    "/api/stats/loads",
    "/api/vens",
    "/api/vens/*",
    "/api/vens/*/events",
    "/api/vens/*/history",
    "/api/vens/*/circuits/history",
    "/api/vens/*/loads",
    "/api/vens/*/loads/*",
    "/api/vens/*/loads/*/history",
    "/api/events",
    "/api/events/*",
    "/api/events/*/metrics",
)
_ANONYMOUS_PATTERNS = tuple(tuple(path.split("/")) for path in ANONYMOUS_READS)


def anonymously_readable(method: str, path: str) -> bool:
    """Whether a request without a token may go on under GRIDCORE_ANONYMOUS_READ."""
    if method not in {"GET", "HEAD"}:
        return False
    parts = tuple(path.rstrip("/").split("/"))
    return any(
        len(parts) == len(pattern)
        and all(
            want == got or (want == "*" and got) for want, got in zip(pattern, parts, strict=True)
        )
        for pattern in _ANONYMOUS_PATTERNS
    )


class AccessRefused(RuntimeError):
    """The access configuration is unsafe or unusable: the API must not start."""


class AuthNotConfigured(AccessRefused):
    """Auth is on but no token is configured: every request would be refused."""


class OpenAccessRefused(AccessRefused):
    """Auth is off on an address other machines reach, without an explicit opt-in."""


class Scope(enum.StrEnum):
    READ = "read"
    CONTROL = "control"


NAME_PATTERN = re.compile(r"[A-Za-z0-9._@-]{1,64}")
# Who acts when access control is off (the demo): there is no token to name
# anyone, and a client address names a machine, not a person.
ANONYMOUS = "anonymous"


@dataclass(frozen=True, slots=True)
class ApiToken:
    scope: Scope
    digest: bytes  # sha256 of the secret: equal lengths for compare_digest
    name: str = ""  # who acts with it (the audit trail); derived when not given

    def __post_init__(self) -> None:
        if not self.name:
            derived = f"{self.scope.value}-{self.digest.hex()[:8]}"
            object.__setattr__(self, "name", derived)

    def __repr__(self) -> str:  # never print a secret, not even its digest
        return f"ApiToken(name={self.name}, scope={self.scope.value})"


def _digest(secret: str) -> bytes:
    return hashlib.sha256(secret.encode("utf-8", "surrogatepass")).digest()


_SCOPES = frozenset(s.value for s in Scope)


def _fields(entry: str) -> tuple[str, str, str] | None:
    """(name, scope, secret) of ``name:scope:token`` or ``scope:token`` (name
    empty), else None. A first field that is a scope word is the older form."""
    first, sep, rest = entry.partition(":")
    if not sep:
        return None
    if first.strip() in _SCOPES:
        return "", first.strip(), rest
    scope, sep, secret = rest.partition(":")
    if not sep or scope.strip() not in _SCOPES:
        return None
    return first.strip(), scope.strip(), secret


def parse_tokens(
    text: str, *, separator: str = ",", source: str = "GRIDCORE_API_TOKENS"
) -> list[ApiToken]:
    tokens = []
    for number, raw in enumerate(text.split(separator), start=1):
        entry = raw.strip()
        if not entry or entry.startswith("#"):
            continue
        where = f"{source} entry {number}"
        fields = _fields(entry)
        if fields is None:
            raise ValueError(
                f"{where}: expected '<name>:read:<token>' or '<name>:control:<token>' "
                "(or the older 'read:<token>', 'control:<token>')"
            )
        name, scope, secret = fields
        if name and not NAME_PATTERN.fullmatch(name):
            raise ValueError(
                f"{where}: the name {name[:70]!r} must be 1 to 64 letters, digits, '.', '_', "
                "'-' or '@'"
            )
        if len(secret.strip()) < MIN_TOKEN_LENGTH:
            raise ValueError(f"{where}: token shorter than {MIN_TOKEN_LENGTH} characters")
        tokens.append(ApiToken(Scope(scope), _digest(secret.strip()), name))
    return tokens


def tokens_from(settings: Settings) -> list[ApiToken]:
    tokens = parse_tokens(settings.gridcore_api_tokens or "")
    if settings.gridcore_api_tokens_file:
        path = Path(settings.gridcore_api_tokens_file)
        tokens += parse_tokens(
            path.read_text(encoding="utf-8"), separator="\n", source=f"{path} line"
        )
    return tokens


class TokenChecker:
    def __init__(
        self, tokens: list[ApiToken], *, enabled: bool = True, anonymous_read: bool = False
    ) -> None:
        self.enabled = enabled
        self.anonymous_read = anonymous_read  # GRIDCORE_ANONYMOUS_READ: see ANONYMOUS_READS
        self._tokens = list(tokens)

    @classmethod
    def from_settings(cls, settings: Settings) -> TokenChecker:
        enabled = settings.gridcore_auth != "disabled"
        return cls(
            tokens_from(settings) if enabled else [],
            enabled=enabled,
            anonymous_read=settings.gridcore_anonymous_read,
        )

    @property
    def configured(self) -> bool:
        return bool(self._tokens)

    def fingerprints(self) -> list[bytes]:
        """What identifies the configured tokens (scope and digest), in a
        fixed order: console sessions are signed with a key made of them."""
        return sorted(t.scope.value.encode() + b":" + t.digest for t in self._tokens)

    def scope_of(self, presented: str) -> Scope | None:
        """The broadest scope of the configured tokens equal to ``presented``."""
        token = self.token_of(presented)
        return None if token is None else token.scope

    def token_of(self, presented: str) -> ApiToken | None:
        """The configured token equal to ``presented`` (of the broadest scope,
        the first configured among equals), or None."""
        digest = _digest(presented)
        found: ApiToken | None = None
        for token in self._tokens:  # no early exit: constant work per request
            if hmac.compare_digest(digest, token.digest) and (
                found is None or (found.scope is Scope.READ and token.scope is Scope.CONTROL)
            ):
                found = token
        return found


# auto_error=False: a missing header is answered 401 with our message, not 403.
_bearer = HTTPBearer(
    auto_error=False, description="a token of GRIDCORE_API_TOKENS (name:scope:token)"
)


CHALLENGE = {"WWW-Authenticate": "Bearer"}
# The console's session cookie and the header a write with it must carry
# (entrypoints.api.sessions).
COOKIE = "gridcore_session"
CSRF_HEADER = "x-csrf-token"
# The documentation pages: a browser asks for the token itself (as a password).
BASIC_CHALLENGE = {"WWW-Authenticate": 'Basic realm="gridcore API", charset="UTF-8"'}


def presented_token(authorization: str | None, *, basic: bool = False) -> str | None:
    """The token of an ``Authorization`` header: ``Bearer <token>``, or with
    ``basic`` the password of ``Basic base64(<any user>:<token>)``."""
    scheme, _, credentials = (authorization or "").partition(" ")
    credentials = credentials.strip()
    if scheme.lower() == "basic" and basic:
        try:
            decoded = base64.b64decode(credentials, validate=True).decode("utf-8")
        except (binascii.Error, UnicodeDecodeError):
            return None
        credentials = decoded.partition(":")[2]
    elif scheme.lower() != "bearer":
        return None
    return credentials or None


def refusal(
    checker: TokenChecker,
    method: str,
    authorization: str | None,
    *,
    basic: bool = False,
    path: str = "",
    session: Scope | None = None,
) -> tuple[int, str] | None:
    """Why a request with this ``Authorization`` header may not go on (status,
    message), or None. GET needs read (or control), every other method control.
    ``basic``: the token may also come as an HTTP Basic password (docs pages).
    ``path``: without any header, a GET of ``ANONYMOUS_READS`` goes on when the
    checker allows anonymous reads (never a docs page). ``session``: the scope
    of the request's console session (``entrypoints.api.sessions``), which
    stands for a token when no header is sent."""
    if not checker.enabled:
        return None
    if authorization is None and session is not None:
        if method not in READ_METHODS and session is not Scope.CONTROL:
            return 403, "this needs a token with control scope: sign in with one"
        return None
    anonymous = authorization is None and not basic and checker.anonymous_read
    if anonymous and anonymously_readable(method, path):
        return None
    presented = presented_token(authorization, basic=basic)
    if presented is None:
        if basic:
            return 401, "a read token is required: the browser asks for it as the password"
        return 401, "a bearer token is required"
    scope = checker.scope_of(presented)
    if scope is None:
        return 401, "the bearer token is not valid"
    if method not in READ_METHODS and scope is not Scope.CONTROL:
        return 403, "this needs a token with control scope"
    return None


async def authorize(
    request: Request,
    _: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],  # for OpenAPI
) -> None:
    """Router-wide token check (the request gate already made it before the
    body was read; this keeps it for any route mounted without the gate)."""
    failure = refusal(
        request.app.state.tokens,
        request.method,
        request.headers.get("authorization"),
        path=request.scope["path"],
        session=request.app.state.sessions.scope_for(
            request.method, request.cookies.get(COOKIE), request.headers.get(CSRF_HEADER)
        ),
    )
    if failure is not None:
        status, message = failure
        raise HTTPException(status, message, headers=CHALLENGE if status == 401 else None)


def actor_name(request: Request) -> str:
    """Who makes ``request``, for the audit trail: the name of its bearer
    token, else of its console session's token; ``anonymous`` with access
    control off. Asked only by writes, which ``authorize`` let through."""
    checker: TokenChecker = request.app.state.tokens
    if not checker.enabled:
        return ANONYMOUS
    presented = presented_token(request.headers.get("authorization"))
    if presented is not None:
        token = checker.token_of(presented)
        if token is not None:
            return token.name
    session = request.app.state.sessions.read(request.cookies.get(COOKIE))
    return session.name if session is not None else ANONYMOUS
