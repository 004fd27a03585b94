"""OAuth2 client credentials for the VTN: the configured clients and the
bearer tokens ``/openadr3/auth/token`` trades their secrets for.

Clients come from ``GRIDCORE_OPENADR_CLIENTS`` (comma-separated
``role:clientID:secret``, role ``bl`` or ``ven``) and/or
``GRIDCORE_OPENADR_CLIENTS_FILE`` (one entry a line, ``#`` comments). A
secret is at least 16 characters and is compared by its digest, in constant
time, against every client.

A token is a JWT (HS256) naming the client (``sub``), its role and scopes
(:data:`gridcore.openadr.ROLE_SCOPES`), issued and expiring (``iat``,
``exp``). It is verified by its signature and expiry, and its client must
still be configured with the same role: removing a client from the
configuration revokes its tokens at the next restart. The signing key is
``GRIDCORE_OPENADR_TOKEN_KEY``, or else derived from the configured clients,
so every API process of one configuration accepts every other's tokens and
changing a secret voids the tokens issued before.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from entrypoints.settings import Settings
from gridcore.openadr import ROLE_SCOPES, Client, Role
from gridcore.ports import Clock

MIN_SECRET_LENGTH = 16
MAX_CLIENT_ID_LENGTH = 128  # openadr3.yaml clientID
ISSUER = "gridcore-vtn"
_HEADER = {"alg": "HS256", "typ": "JWT"}


@dataclass(frozen=True, slots=True)
class ClientEntry:
    client_id: str
    role: Role
    digest: bytes  # sha256 of the secret

    def __repr__(self) -> str:  # never print a secret, not even its digest
        return f"ClientEntry({self.client_id!r}, {self.role.value})"


def _digest(secret: str) -> bytes:
    return hashlib.sha256(secret.encode("utf-8", "surrogatepass")).digest()


def parse_clients(
    text: str, *, separator: str = ",", source: str = "GRIDCORE_OPENADR_CLIENTS"
) -> list[ClientEntry]:
    entries: list[ClientEntry] = []
    for number, raw in enumerate(text.split(separator), start=1):
        entry = raw.strip()
        if not entry or entry.startswith("#"):
            continue
        where = f"{source} entry {number}"
        role, _, rest = entry.partition(":")
        client_id, sep, secret = rest.partition(":")
        if not sep or role.strip() not in {r.value for r in Role}:
            raise ValueError(
                f"{where}: expected 'bl:<clientID>:<secret>' or 'ven:<clientID>:<secret>'"
            )
        client_id, secret = client_id.strip(), secret.strip()
        if not 1 <= len(client_id) <= MAX_CLIENT_ID_LENGTH:
            raise ValueError(f"{where}: a clientID has 1 to {MAX_CLIENT_ID_LENGTH} characters")
        if len(secret) < MIN_SECRET_LENGTH:
            raise ValueError(f"{where}: secret shorter than {MIN_SECRET_LENGTH} characters")
        if any(e.client_id == client_id for e in entries):
            raise ValueError(f"{where}: clientID {client_id!r} is configured twice")
        entries.append(ClientEntry(client_id, Role(role.strip()), _digest(secret)))
    return entries


def clients_from(settings: Settings) -> list[ClientEntry]:
    entries = parse_clients(settings.gridcore_openadr_clients or "")
    if settings.gridcore_openadr_clients_file:
        path = Path(settings.gridcore_openadr_clients_file)
        entries += parse_clients(
            path.read_text(encoding="utf-8"), separator="\n", source=f"{path} line"
        )
    ids = [e.client_id for e in entries]
    twice = sorted({i for i in ids if ids.count(i) > 1})
    if twice:
        raise ValueError(f"OpenADR clientIDs configured twice: {', '.join(twice)}")
    return entries


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


class InvalidToken(Exception):
    """Why a presented token is refused (its message is safe to show)."""


@dataclass(frozen=True, slots=True)
class Issued:
    token: str
    expires_in: int
    client: Client


class TokenService:
    def __init__(
        self, clients: list[ClientEntry], *, key: bytes, lifetime_seconds: int, clock: Clock
    ) -> None:
        self._clients = {c.client_id: c for c in clients}
        self._key = key
        self._lifetime = lifetime_seconds
        self._clock = clock

    @classmethod
    def from_settings(cls, settings: Settings, clock: Clock) -> TokenService:
        clients = clients_from(settings)
        if settings.gridcore_openadr_token_key:
            key = settings.gridcore_openadr_token_key.encode()
        else:
            material = b"\n".join(
                sorted(
                    c.client_id.encode() + b":" + c.role.value.encode() + b":" + c.digest
                    for c in clients
                )
            )
            key = hashlib.sha256(b"gridcore-openadr-token-key\n" + material).digest()
        return cls(
            clients, key=key, lifetime_seconds=settings.gridcore_openadr_token_seconds, clock=clock
        )

    def authenticate(self, client_id: str, secret: str) -> Client | None:
        """The client these credentials belong to, or None. Every configured
        client is compared (no early exit), so the time says nothing."""
        presented = _digest(secret)
        found: ClientEntry | None = None
        for entry in self._clients.values():
            same_secret = hmac.compare_digest(presented, entry.digest)
            if same_secret and hmac.compare_digest(entry.client_id.encode(), client_id.encode()):
                found = entry
        return (
            None if found is None else Client(found.client_id, found.role, ROLE_SCOPES[found.role])
        )

    def client(self, client_id: str) -> Client | None:
        """A configured client by id (None once removed from the
        configuration), with its role's scopes: whom a subscription notifies."""
        entry = self._clients.get(client_id)
        return (
            None if entry is None else Client(entry.client_id, entry.role, ROLE_SCOPES[entry.role])
        )

    def issue(self, client: Client) -> Issued:
        now = int(self._clock.now().timestamp())
        claims = {
            "iss": ISSUER,
            "sub": client.client_id,
            "role": client.role.value,
            "scope": " ".join(sorted(client.scopes)),
            "iat": now,
            "exp": now + self._lifetime,
        }
        signing_input = f"{_b64(json.dumps(_HEADER).encode())}.{_b64(json.dumps(claims).encode())}"
        signature = hmac.new(self._key, signing_input.encode("ascii"), hashlib.sha256).digest()
        return Issued(f"{signing_input}.{_b64(signature)}", self._lifetime, client)

    def verify(self, token: str) -> Client:
        """The client a token was issued to; :class:`InvalidToken` if it is
        not one of ours, was altered, has expired or its client is gone."""
        parts = token.split(".")
        if len(parts) != 3:
            raise InvalidToken("the bearer token is not a token of this VTN")
        signing_input = f"{parts[0]}.{parts[1]}".encode("ascii", "replace")
        expected = hmac.new(self._key, signing_input, hashlib.sha256).digest()
        try:
            signature = _unb64(parts[2])
            claims: dict[str, Any] = json.loads(_unb64(parts[1]))
        except (ValueError, UnicodeDecodeError) as exc:
            raise InvalidToken("the bearer token is not a token of this VTN") from exc
        if not hmac.compare_digest(signature, expected) or not isinstance(claims, dict):
            raise InvalidToken("the bearer token is not a token of this VTN")
        exp = claims.get("exp")
        if not isinstance(exp, int) or exp <= self._clock.now().timestamp():
            raise InvalidToken("the bearer token has expired: fetch a new one from auth/token")
        entry = self._clients.get(str(claims.get("sub")))
        if entry is None or entry.role.value != claims.get("role"):
            raise InvalidToken("the bearer token's client is no longer configured")
        scopes = frozenset(str(claims.get("scope", "")).split()) & ROLE_SCOPES[entry.role]
        return Client(entry.client_id, entry.role, scopes)
