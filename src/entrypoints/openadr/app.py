"""The OpenADR 3.1.1 VTN as an ASGI app, mounted by ``create_app`` at
``/openadr3``: every path of ``openadr3.yaml`` (docs/openadr3.md).

The app has its own error handling (every error a ``problem`` object) and
its own access control (OAuth2 client credentials, :mod:`.tokens`), apart
from gridcore's ``/api`` tokens. Rules are :class:`gridcore.vtn.Vtn`'s; this
module maps HTTP to them. ``app.state.vtn`` is the one ``Vtn``, whose
``changes`` sink is where the bridge hooks in, beside the notifier (:mod:`.notifier`).
"""

from __future__ import annotations

import base64
import binascii
import json
from http import HTTPStatus
from typing import Annotated, cast
from urllib.parse import parse_qs, unquote_plus

from fastapi import APIRouter, Depends, FastAPI, Request
from fastapi.responses import JSONResponse

from entrypoints.openadr import problems
from entrypoints.openadr.models import BadRequest, parse_request
from entrypoints.openadr.notifier import MqttBinding, Notifier, WebhookPolicy
from entrypoints.openadr.params import object_id, search_parameters
from entrypoints.openadr.problems import Unauthorized
from entrypoints.openadr.tokens import InvalidToken, TokenService
from gridcore.errors import Forbidden
from gridcore.openadr import READ_BL, READ_VEN_OBJECTS, Client, Kind, mqtt_topics
from gridcore.ports import Clock, IdGenerator, NotificationOutbox, OpenAdrStore
from gridcore.vtn import ChangeSink, Vtn

BASE_PATH = "/openadr3"
COLLECTIONS = {
    "programs": Kind.PROGRAM,
    "events": Kind.EVENT,
    "reports": Kind.REPORT,
    "subscriptions": Kind.SUBSCRIPTION,
    "vens": Kind.VEN,
    "resources": Kind.RESOURCE,
}
_ID_NAMES = {
    "programs": "programID",
    "events": "eventID",
    "reports": "reportID",
    "subscriptions": "subscriptionID",
    "vens": "venID",
    "resources": "resourceID",
}
NO_STORE = {"Cache-Control": "no-store", "Pragma": "no-cache"}  # RFC 6749 5.1


def _vtn(request: Request) -> Vtn:
    return cast(Vtn, request.app.state.vtn)


def _tokens(request: Request) -> TokenService:
    return cast(TokenService, request.app.state.tokens)


async def _client(request: Request) -> Client:
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise Unauthorized("a bearer token is required: fetch one from auth/token")
    try:
        return _tokens(request).verify(token.strip())
    except InvalidToken as exc:
        raise Unauthorized(str(exc)) from None


ClientDep = Annotated[Client, Depends(_client)]


def _object_routes(router: APIRouter, collection: str, kind: Kind) -> None:
    id_name = _ID_NAMES[collection]

    async def search(request: Request, client: ClientDep) -> JSONResponse:
        filters, skip, limit = search_parameters(collection, request.query_params)
        return JSONResponse(await _vtn(request).search(client, kind, filters, skip, limit))

    async def create(request: Request, client: ClientDep) -> JSONResponse:
        _no_query(request)
        body = parse_request(kind, await request.body())
        return JSONResponse(await _vtn(request).create(client, kind, body), status_code=201)

    async def read(request: Request, client: ClientDep) -> JSONResponse:
        _no_query(request)
        the_id = object_id(request.path_params["object_id"], id_name)
        return JSONResponse(await _vtn(request).get(client, kind, the_id))

    async def update(request: Request, client: ClientDep) -> JSONResponse:
        _no_query(request)
        the_id = object_id(request.path_params["object_id"], id_name)
        body = parse_request(kind, await request.body())
        return JSONResponse(await _vtn(request).update(client, kind, the_id, body))

    async def remove(request: Request, client: ClientDep) -> JSONResponse:
        _no_query(request)
        the_id = object_id(request.path_params["object_id"], id_name)
        return JSONResponse(await _vtn(request).delete(client, kind, the_id))

    path = f"/{collection}"
    router.add_api_route(path, search, methods=["GET"], name=f"search_{collection}")
    router.add_api_route(path, create, methods=["POST"], name=f"create_{collection}")
    item = f"{path}/{{object_id}}"
    router.add_api_route(item, read, methods=["GET"], name=f"read_{collection}")
    router.add_api_route(item, update, methods=["PUT"], name=f"update_{collection}")
    router.add_api_route(item, remove, methods=["DELETE"], name=f"delete_{collection}")


def _no_query(request: Request) -> None:
    if request.query_params:
        name = next(iter(request.query_params))
        raise BadRequest(f"{name}: this operation takes no query parameters")


# --- auth ---------------------------------------------------------------------


async def auth_server(request: Request) -> JSONResponse:
    return JSONResponse({"tokenURL": str(request.url_for("fetch_token"))})


def _credentials(request: Request, body: bytes) -> tuple[dict[str, str], tuple[str, str] | None]:
    """The form's fields (or a JSON body's) and HTTP Basic's client id and secret."""
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    fields: dict[str, str] = {}
    try:
        if content_type == "application/json":
            loaded = json.loads(body or b"{}")
            if not isinstance(loaded, dict):
                raise BadRequest("the body is not a form of grant_type, client_id, client_secret")
            fields = {k: v for k, v in loaded.items() if isinstance(v, str)}
        else:
            parsed = parse_qs(body.decode("utf-8"), keep_blank_values=True, strict_parsing=False)
            fields = {k: v[-1] for k, v in parsed.items()}
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:
        raise BadRequest(
            f"the body is not an application/x-www-form-urlencoded form: {exc}"
        ) from None
    basic = None
    scheme, _, encoded = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() == "basic":
        try:
            user, sep, password = (
                base64.b64decode(encoded.strip(), validate=True).decode().partition(":")
            )
        except (binascii.Error, UnicodeDecodeError):
            user, sep, password = "", "", ""
        if not sep:
            raise Unauthorized("HTTP Basic credentials are base64 of clientID:secret")
        # RFC 6749 2.3.1: id and secret are form-encoded before base64
        basic = (unquote_plus(user), unquote_plus(password))
    return fields, basic


def _oauth_error(status: int, error: str, description: str) -> JSONResponse:
    """A problem object that is also RFC 6749's error answer (``error``,
    ``error_description``), so both kinds of client read it."""
    body = {
        "title": HTTPStatus(status).phrase,
        "status": status,
        "detail": description,
        "error": error,
        "error_description": description,
    }
    return JSONResponse(body, status_code=status, headers=dict(NO_STORE))


async def fetch_token(request: Request) -> JSONResponse:
    fields, basic = _credentials(request, await request.body())
    grant = fields.get("grant_type")
    if grant != "client_credentials":
        error = "invalid_request" if grant is None else "unsupported_grant_type"
        return _oauth_error(400, error, "grant_type must be client_credentials")
    client_id, secret = basic if basic else (fields.get("client_id"), fields.get("client_secret"))
    if basic is None and (not client_id or not secret):
        return _oauth_error(
            400, "invalid_request", "client_id and client_secret are required (or HTTP Basic)"
        )
    client = _tokens(request).authenticate(client_id or "", secret or "")
    if client is None:
        response = _oauth_error(401, "invalid_client", "unknown client or wrong secret")
        response.headers["WWW-Authenticate"] = "Basic" if basic else "Bearer"
        return response
    issued = _tokens(request).issue(client)
    answer = {
        "access_token": issued.token,
        "token_type": "Bearer",
        "expires_in": issued.expires_in,
        "scope": " ".join(sorted(client.scopes)),
    }
    return JSONResponse(answer, headers=NO_STORE)


# --- notifiers ---------------------------------------------------------------------


async def notifiers(request: Request, client: ClientDep) -> JSONResponse:
    # Webhooks are always delivered; MQTT only when this process publishes
    # (GRIDCORE_OPENADR_MQTT_URIS), and then with the one method that works
    # with gridcore's broker as configured: anonymous.
    answer: dict[str, object] = {"WEBHOOK": True}
    binding = _notifier(request).mqtt
    if binding is not None:
        answer["MQTT"] = {
            "URIS": list(binding.uris),
            "serialization": "JSON",
            "authentication": {"method": "ANONYMOUS"},
        }
    return JSONResponse(answer)


def _notifier(request: Request) -> Notifier:
    return cast(Notifier, request.app.state.notifier)


def _topics(request: Request, prefix: str, *, create: bool = True) -> JSONResponse:
    binding = _notifier(request).mqtt
    head = "" if binding is None else binding.topic_prefix
    return JSONResponse({"topics": mqtt_topics(head + prefix, create=create)})


def _need(client: Client, scope: str) -> None:
    if scope not in client.scopes:
        raise Forbidden(f"this needs the {scope} scope, which client {client.client_id!r} lacks")


def _notifier_routes(router: APIRouter) -> None:
    base = "/notifiers/mqtt/topics"

    # Topic names for everyone's objects: read_bl in openadr3.yaml.
    for collection in ("events", "reports", "subscriptions", "vens", "resources"):

        async def all_of(request: Request, client: ClientDep, _c: str = collection) -> JSONResponse:
            _need(client, READ_BL)
            return _topics(request, _c)

        router.add_api_route(f"{base}/{collection}", all_of, methods=["GET"])

    # read_all in the yaml, but the User Guide's VEN asks for them (6.3.2):
    # any client; a program the client cannot read is not found.
    async def programs(request: Request, client: ClientDep) -> JSONResponse:
        return _topics(request, "programs")

    async def program(request: Request, client: ClientDep) -> JSONResponse:
        the_id = object_id(request.path_params["program_id"], "programID")
        await _vtn(request).get(client, Kind.PROGRAM, the_id)
        return _topics(request, f"programs/{the_id}", create=False)

    async def program_events(request: Request, client: ClientDep) -> JSONResponse:
        the_id = object_id(request.path_params["program_id"], "programID")
        await _vtn(request).get(client, Kind.PROGRAM, the_id)
        return _topics(request, f"programs/{the_id}/events")

    router.add_api_route(f"{base}/programs", programs, methods=["GET"])
    router.add_api_route(f"{base}/programs/{{program_id}}", program, methods=["GET"])
    router.add_api_route(f"{base}/programs/{{program_id}}/events", program_events, methods=["GET"])

    # A ven's own topics: read_ven_objects, and the ven must be the client's.
    for tail in ("", "/events", "/programs", "/resources"):

        async def of_ven(request: Request, client: ClientDep, _tail: str = tail) -> JSONResponse:
            _need(client, READ_VEN_OBJECTS)
            the_id = object_id(request.path_params["ven_id"], "venID")
            await _vtn(request).get(client, Kind.VEN, the_id)
            return _topics(request, f"vens/{the_id}{_tail}", create=bool(_tail))

        router.add_api_route(f"{base}/vens/{{ven_id}}{tail}", of_ven, methods=["GET"])


def create_vtn(
    store: OpenAdrStore,
    clock: Clock,
    ids: IdGenerator,
    tokens: TokenService,
    changes: ChangeSink | None = None,
    *,
    webhooks: WebhookPolicy | None = None,
    mqtt: MqttBinding | None = None,
    outbox: NotificationOutbox | None = None,
) -> FastAPI:
    """The VTN app; ``changes`` receives every stored change (the bridge to
    gridcore's events hooks in there). Its notifier (``app.state.notifier``,
    started and closed by the caller) listens beside it: webhooks, and MQTT if
    ``mqtt``, delivered from ``outbox`` (one in memory if None)."""
    app = FastAPI(
        title="gridcore OpenADR 3.1.1 VTN",
        openapi_url=None,  # the contract is openadr3.yaml itself
        docs_url=None,
        redoc_url=None,
        redirect_slashes=False,
    )
    app.state.vtn = Vtn(store, clock, ids) if changes is None else Vtn(store, clock, ids, changes)
    app.state.tokens = tokens
    app.state.notifier = Notifier(
        app.state.vtn, tokens.client, policy=webhooks, mqtt=mqtt, outbox=outbox
    )
    app.state.notifier.attach()
    problems.install(app)
    router = app.router  # routes of its own: the 405 handler lists each path's methods
    for collection, kind in COLLECTIONS.items():
        _object_routes(router, collection, kind)
    router.add_api_route("/auth/server", auth_server, methods=["GET"])
    router.add_api_route("/auth/token", fetch_token, methods=["POST"], name="fetch_token")
    router.add_api_route("/notifiers", notifiers, methods=["GET"])
    _notifier_routes(router)
    return app
