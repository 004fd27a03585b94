"""The console's routes: sign-in and sign-out, the four pages, the assets.

``/`` is the fleet; the other pages live under ``/console`` (``/events`` and
``/vens`` are the documents' bare API paths, which the app rewrites to
``/api``). A page without a valid session redirects to the sign-in page,
which takes an API token and sets the session cookie; with
``GRIDCORE_AUTH=disabled`` (the demo) every page is open and can act.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, quote

from fastapi import APIRouter, FastAPI, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.templating import Jinja2Templates
from starlette.staticfiles import StaticFiles

from entrypoints.api.auth import ANONYMOUS, Scope, TokenChecker
from entrypoints.api.sessions import COOKIE, LIFETIME_S, ConsoleSession, SessionKeeper

HERE = Path(__file__).parent
PREFIX = "/console"
STATIC = f"{PREFIX}/static"
SIGN_IN = f"{PREFIX}/sign-in"
_MAX_FORM_BYTES = 4096  # a token and a path: anything longer is not a sign-in

templates = Jinja2Templates(directory=HERE / "templates")
router = APIRouter(include_in_schema=False)

# With access control off there is nothing to sign in to: every page may act.
_OPEN = ConsoleSession(Scope.CONTROL, ANONYMOUS, csrf="", expires=0)


def _session(request: Request) -> ConsoleSession | None:
    tokens: TokenChecker = request.app.state.tokens
    if not tokens.enabled:
        return _OPEN
    sessions: SessionKeeper = request.app.state.sessions
    return sessions.read(request.cookies.get(COOKIE))


def _local(path: str | None) -> str:
    """Where to go after signing in: a path of this site, never another site."""
    if not path or not path.startswith("/") or path.startswith("//") or "\\" in path:
        return "/"
    return path


def _page(request: Request, name: str, title: str, **context: Any) -> Response:
    session = _session(request)
    if session is None:
        wanted = request.url.path + (f"?{request.url.query}" if request.url.query else "")
        return RedirectResponse(f"{SIGN_IN}?next={quote(wanted)}", status_code=303)
    return templates.TemplateResponse(
        request,
        name,
        {
            "title": title,
            "session": session,
            "signed_in": request.app.state.tokens.enabled,
            "static": STATIC,
            **context,
        },
    )


@router.get("/")
async def fleet_page(request: Request) -> Response:
    return _page(request, "fleet.html", "Fleet", page="fleet")


@router.get(f"{PREFIX}/events")
async def events_page(request: Request) -> Response:
    return _page(request, "events.html", "Events", page="events")


@router.get(PREFIX + "/events/{event_id}")
async def event_page(request: Request, event_id: str) -> Response:
    return _page(request, "event.html", f"Event {event_id}", page="event", item=event_id)


@router.get(PREFIX + "/vens/{ven_id}")
async def ven_page(request: Request, ven_id: str) -> Response:
    return _page(request, "ven.html", f"VEN {ven_id}", page="ven", item=ven_id)


@router.get(SIGN_IN)
async def sign_in_form(request: Request, next: str | None = None) -> Response:
    if _session(request) is not None:
        return RedirectResponse(_local(next), status_code=303)
    return _sign_in(request, _local(next))


@router.post(SIGN_IN)
async def sign_in(request: Request) -> Response:
    body = await request.body()
    if len(body) > _MAX_FORM_BYTES:
        return _sign_in(request, "/", "That is too long to be a token.", status=413)
    form = parse_qs(body.decode("utf-8", "replace"))
    token = (form.get("token") or [""])[0].strip()
    target = _local((form.get("next") or ["/"])[0])
    if not token:
        return _sign_in(request, target, "Enter an API token.", status=422)
    opened = request.app.state.sessions.open(token)
    if opened is None:
        message = "That token is not valid here: use one of GRIDCORE_API_TOKENS."
        return _sign_in(request, target, message, status=401)
    cookie, _ = opened
    response = RedirectResponse(target, status_code=303)
    response.set_cookie(
        COOKIE,
        cookie,
        max_age=LIFETIME_S,
        httponly=True,
        samesite="lax",
        secure=request.url.scheme == "https",
        path="/",
    )
    return response


@router.post(f"{PREFIX}/sign-out")
async def sign_out(request: Request) -> Response:
    # A cross-site form could sign an operator out; it could not sign anyone in
    # or act. The form still carries the CSRF token, and it is checked.
    session = _session(request)
    form = parse_qs((await request.body())[:_MAX_FORM_BYTES].decode("utf-8", "replace"))
    sent = (form.get("csrf") or [""])[0]
    if session is not None and session is not _OPEN and sent != session.csrf:
        return HTMLResponse("This sign-out did not come from the console.", status_code=403)
    response = RedirectResponse(SIGN_IN, status_code=303)
    response.delete_cookie(COOKIE, path="/")
    return response


def _sign_in(
    request: Request, target: str, error: str | None = None, status: int = 200
) -> Response:
    return templates.TemplateResponse(
        request,
        "sign_in.html",
        {"title": "Sign in", "next": target, "error": error, "static": STATIC, "session": None},
        status_code=status,
    )


def install_console(app: FastAPI) -> None:
    app.include_router(router)
    app.mount(STATIC, StaticFiles(directory=HERE / "static"), name="console-static")
