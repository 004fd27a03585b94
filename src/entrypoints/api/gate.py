"""``RequestGate``: what is refused before a request's body is read.

FastAPI reads and parses a body before it runs the route's dependencies, so a
100 MB POST without a token used to be read in full (8 s, +600 MB) before its
401, stalling everyone else. The gate answers first: a request under ``/api``
without a valid token gets its 401/403 at once, and a body over
``max_body_bytes`` its 413, whether it declares its length or streams it.

The documentation pages (``docs``: the OpenAPI document, Swagger UI, ReDoc)
need a read token too, as a bearer token or as an HTTP Basic password (see
``entrypoints.api.auth``); ``/health`` stays open for probes.
"""

from __future__ import annotations

from collections.abc import Iterable

from starlette.datastructures import Headers
from starlette.requests import cookie_parser
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from entrypoints.api.auth import BASIC_CHALLENGE, CHALLENGE, CSRF_HEADER, TokenChecker, refusal
from entrypoints.api.sessions import COOKIE, SessionKeeper


def _under(path: str, root: str) -> bool:
    return path == root or path.startswith(root + "/")


class RequestGate:
    def __init__(
        self,
        app: ASGIApp,
        *,
        prefix: str,
        docs: Iterable[str],
        tokens: TokenChecker,
        sessions: SessionKeeper,
        max_body_bytes: int,
    ) -> None:
        self.app = app
        self.prefix = prefix  # the paths that need a token
        self.docs = tuple(docs)  # the documentation paths (and what is under them)
        self.tokens = tokens
        self.sessions = sessions
        self.max_body_bytes = max_body_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = Headers(scope=scope)
        path: str = scope["path"]
        docs = any(_under(path, root) for root in self.docs)
        if docs or _under(path, self.prefix):
            authorization = headers.get("authorization")
            session = None
            if not docs:
                session = self.sessions.scope_for(
                    scope["method"],
                    cookie_parser(headers.get("cookie", "")).get(COOKIE),
                    headers.get(CSRF_HEADER),
                )
            failure = refusal(
                self.tokens, scope["method"], authorization, basic=docs, path=path, session=session
            )
            if failure is not None:
                status, message = failure
                extra = (BASIC_CHALLENGE if docs else CHALLENGE) if status == 401 else None
                await JSONResponse({"detail": message}, status, extra)(scope, receive, send)
                return
        declared = headers.get("content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.max_body_bytes:
            await self._too_large(scope, receive, send)
            return
        await self._counted(scope, receive, send)

    async def _counted(self, scope: Scope, receive: Receive, send: Send) -> None:
        """A body without a declared length is counted as it streams in. Past
        the limit the app is told the client left (FastAPI turns any failure
        while reading into its own 400), and what it answers is replaced by 413."""
        seen = 0
        over = started = False

        async def counting_receive() -> Message:
            nonlocal seen, over
            if over:
                return {"type": "http.disconnect"}
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.max_body_bytes:
                    over = True
                    return {"type": "http.disconnect"}
            return message

        async def tracking_send(message: Message) -> None:
            nonlocal started
            if over and not started:
                return  # the app's answer to a body it never got whole
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, counting_receive, tracking_send)
        except Exception:
            if not over or started:
                raise  # a failure of its own, not of the cut-off body
        if over and not started:
            await self._too_large(scope, receive, send)

    async def _too_large(self, scope: Scope, receive: Receive, send: Send) -> None:
        message = f"the request body is over {self.max_body_bytes} bytes (GRIDCORE_MAX_BODY_BYTES)"
        await JSONResponse({"detail": message}, 413, {"Connection": "close"})(scope, receive, send)
