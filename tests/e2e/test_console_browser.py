"""The operator console in a real browser (Debian's chromium, driven by
Playwright's sync API) against real processes: `gridcore serve`, `worker` and
`ven --count 5` on PostgreSQL and Mosquitto, in a database and a metering
topic of their own.

An operator with a control token signs in, sees the fleet come online, pings
a VEN, is told what is wrong with a bad event form, creates an event from the
form (in the browser's local time zone, which is not UTC here), watches its
VENs accept it, stops it and downloads the measured result. A read token sees
the same pages without a way to act, and the API refuses the writes its
session could attempt. On every page no script error, no console error, no
failed request and no unexpected error status happened, and every chart's
time axis spans its data and at most about a day.

Screenshots go to the test's tmp_path, and with GRIDCORE_SCREENSHOTS_DIR set
also there as console-fleet.png, console-event.png and console-ven.png (the
README's images).
"""

from __future__ import annotations

import contextlib
import csv
import io
import os
import re
import shutil
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo

import httpx
import psycopg
import pytest
from playwright.sync_api import (
    Browser,
    BrowserContext,
    ConsoleMessage,
    Page,
    Playwright,
    Request,
    Response,
    expect,
    sync_playwright,
)
from processes import Processes, free_port, logs_on_failure, wait_for

pytestmark = [pytest.mark.slow, pytest.mark.postgres, pytest.mark.mosquitto]

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
CONTROL = "control-token-console-e2e-0123456789"
READ = "read-token-console-e2e-0123456789"
COOKIE = "gridcore_session"
VENS = 5
# The browser's time zone: not UTC, and not a whole hour off it, so that a form
# read as UTC (or with the offset applied twice) would make a different event.
BROWSER_ZONE = "Asia/Kolkata"
WAIT_MS = 60_000  # generous: the pages refresh every 5 s
SERVICES = ("serve", "worker", "ven")
# Configuration that must not leak from the caller's environment into the processes.
_OWN_PREFIXES = ("DB_", "MQTT_", "ACK_", "VEN_", "BACKEND_", "GRIDCORE_", "SHADOW_", "IOT_")
_OWN_NAMES = {"DATABASE_URL", "EVENT_COMMAND_ENABLED", "AWS_REGION"}
DAY_S = 86_400
# Keeps every chart the pages make (window.__plots), to read its time axis: uPlot
# draws on a canvas. The vendored script's `var uPlot = ...` assigns through this
# setter, which hands the pages a constructor that records what it builds.
RECORD_CHARTS = """
(() => {
  let recording;
  Object.defineProperty(window, "uPlot", {
    configurable: true,
    get() { return recording; },
    set(real) {
      window.__plots = window.__plots || [];
      recording = function (opts, data, target) {
        const plot = new real(opts, data, target);
        window.__plots.push(plot);
        return plot;
      };
      Object.assign(recording, real);  // uPlot.paths and the other helpers
      recording.prototype = real.prototype;
    },
  });
})();
"""


def _services_required() -> bool:
    return os.environ.get("GRIDCORE_REQUIRE_SERVICES", "") not in ("", "0", "false")


# --- the system: a database of its own, serve, worker and five VENs ------------------------


@dataclass(frozen=True)
class Console:
    base: str  # http://127.0.0.1:PORT
    prefix: str  # VEN ids are {prefix}-1 .. {prefix}-5
    procs: Processes

    @property
    def ven_ids(self) -> list[str]:
        return [f"{self.prefix}-{n}" for n in range(1, VENS + 1)]

    def api(self, token: str = CONTROL) -> httpx.Client:
        return httpx.Client(
            base_url=self.base, headers={"Authorization": f"Bearer {token}"}, timeout=10
        )

    def event_ids(self) -> set[str]:
        with self.api(READ) as api:
            answer = api.get("/api/events", params={"limit": 200})
            answer.raise_for_status()
            return {e["id"] for e in answer.json()}

    @contextlib.contextmanager
    def logs_on_failure(self) -> Iterator[None]:
        with logs_on_failure(self.procs, *SERVICES):
            yield


@contextlib.contextmanager
def own_database(server: str) -> Iterator[str]:
    """A new, empty PostgreSQL database on ``server`` (a SQLAlchemy URL without
    a database), dropped afterwards."""
    name = f"gridcore_test_{uuid.uuid4().hex[:12]}"
    admin = server.replace("+psycopg", "", 1) + "/postgres"
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        yield f"{server}/{name}"
    finally:
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(scope="module")
def console(
    postgres_server: str,
    mosquitto_address: tuple[str, int],
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Console]:
    host, port = mosquitto_address
    prefix = f"console{uuid.uuid4().hex[:6]}"
    api_port = free_port()
    with own_database(postgres_server) as database_url:
        env = {
            "DATABASE_URL": database_url,
            "MQTT_BROKER": host,
            "MQTT_PORT": str(port),
            # A metering topic of its own, so no other test's VENs join this fleet.
            "MQTT_TOPIC_METERING": f"{prefix}/metering",
            "MQTT_BATCH_MAX_DELAY_MS": "20",
            "GRIDCORE_API_TOKENS": f"read:{READ},control:{CONTROL}",
            "ACK_TIMEOUT_SECONDS": "5",
            "VEN_OFFLINE_AFTER_SECONDS": "60",
            # A stopped event's measurement is final at once (no hour of rebound to wait for).
            "GRIDCORE_REBOUND_MINUTES": "0",
            "PYTHONUNBUFFERED": "1",
        }
        procs = Processes(tmp_path_factory.mktemp("console-logs"), env)
        procs.env = {
            k: v
            for k, v in procs.env.items()
            if k not in _OWN_NAMES and not k.startswith(_OWN_PREFIXES)
        } | env
        with procs, logs_on_failure(procs, *SERVICES):
            migrated = procs.run("migrate")
            assert migrated.returncode == 0, migrated.stderr
            procs.start("serve", "serve", "--port", str(api_port))
            procs.start("worker", "worker")
            procs.start("ven", "ven", "--count", str(VENS), "--prefix", prefix, "--interval", "1")
            system = Console(f"http://127.0.0.1:{api_port}", prefix, procs)
            with system.api(READ) as api:

                def all_online() -> bool:
                    stats = api.get("/api/stats/network").json()
                    return bool(stats["onlineVens"] == VENS and stats["venCount"] == VENS)

                wait_for(all_online, 60, f"{VENS} VENs online")

                # A VEN page asks for the VEN's shadow, which is a 404 until the VEN
                # has reported one (every 6th report; the first may go out before the
                # worker subscribes): wait for them, so every answer the pages get is
                # a success.
                def all_shadows() -> bool:
                    return all(
                        api.get(f"/api/vens/{ven_id}/shadow").status_code == 200
                        for ven_id in system.ven_ids
                    )

                wait_for(all_shadows, 60, "every VEN's shadow", every=0.5)
            yield system


# --- the browser ------------------------------------------------------------------------


@pytest.fixture(scope="module", autouse=True)
def _chromium() -> None:
    """Before any process starts: Debian's chromium, or a skip (a failure under
    GRIDCORE_REQUIRE_SERVICES=1, as for the services)."""
    if not CHROMIUM.exists():
        message = f"{CHROMIUM} is missing (apt-get install chromium)"
        if _services_required():
            pytest.fail(f"{message} and GRIDCORE_REQUIRE_SERVICES=1: the console's tests need it")
        pytest.skip(message)


@pytest.fixture(scope="module")
def playwright() -> Iterator[Playwright]:
    with sync_playwright() as driver:
        yield driver


@pytest.fixture(scope="module")
def browser(playwright: Playwright) -> Iterator[Browser]:
    launched = playwright.chromium.launch(
        executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS
    )
    try:
        yield launched
    finally:
        launched.close()


@pytest.fixture
def context(browser: Browser, console: Console) -> Iterator[BrowserContext]:
    opened = browser.new_context(
        base_url=console.base,
        timezone_id=BROWSER_ZONE,
        locale="en-GB",
        viewport={"width": 1280, "height": 900},
    )
    opened.set_default_timeout(15_000)
    opened.add_init_script(RECORD_CHARTS)
    try:
        yield opened
    finally:
        opened.close()


@dataclass
class Watch:
    """Everything that went wrong on a page: script errors, console errors,
    failed requests and answers of 400 or more, except the ones the test
    provokes on purpose (``expecting``: a status and a path); and the findings
    of ``check`` and ``check_charts``, which do not stop the test. All are
    reported together by ``assert_clean``."""

    page: Page
    problems: list[str] = field(default_factory=list)
    expected: set[tuple[int, str]] = field(default_factory=set)
    provoked: list[tuple[int, str, str]] = field(default_factory=list)  # status, method, path

    def __post_init__(self) -> None:
        self.page.on("pageerror", lambda error: self._problem(f"script error: {error}"))
        self.page.on("console", self._console)
        self.page.on("requestfailed", self._failed)
        self.page.on("response", self._response)

    def _problem(self, what: str) -> None:
        self.problems.append(f"{what} (on {self.page.url})")

    def _console(self, message: ConsoleMessage) -> None:
        if message.type != "error":
            return
        # Chromium logs every answer of 400 or more: fine when the test asked for it.
        status = re.match(r"Failed to load resource: .*status of (\d{3})", message.text)
        where = urlsplit(message.location.get("url", "")).path
        if status and (int(status.group(1)), where) in self.expected:
            return
        self._problem(f"console error: {message.text} at {message.location}")

    def _failed(self, request: Request) -> None:
        self._problem(f"request failed: {request.method} {request.url}: {request.failure}")

    def _response(self, response: Response) -> None:
        if response.status < 400:
            return
        path = urlsplit(response.url).path
        if (response.status, path) in self.expected:
            self.provoked.append((response.status, response.request.method, path))
            return
        self._problem(f"HTTP {response.status} for {response.request.method} {response.url}")

    def expecting(self, status: int, path: str) -> None:
        self.expected.add((status, path))

    def check(self, condition: object, what: str) -> None:
        """A finding that does not stop the test: reported with the others at the end."""
        if not condition:
            self._problem(what)

    def check_charts(self, *ids: str) -> None:
        """The charts in the elements ``ids`` drawn, each over a readable span of
        time: their data, and at most a day and an hour (the longest any page
        shows is the last 24 hours)."""
        self.page.wait_for_function(
            """ids => ids.every(id => (window.__plots || []).some(
                p => p.root.isConnected && p.root.parentElement.id === id))""",
            arg=list(ids),
            timeout=WAIT_MS,
        )
        charts = self.page.evaluate(
            """ids => (window.__plots || [])
                .filter(p => p.root.isConnected && ids.includes(p.root.parentElement.id))
                .map(p => ({
                    id: p.root.parentElement.id,
                    min: p.scales.x.min,
                    max: p.scales.x.max,
                    first: p.data[0].length ? Math.min(...p.data[0]) : null,
                    last: p.data[0].length ? Math.max(...p.data[0]) : null,
                }))""",
            list(ids),
        )
        for chart in charts:
            span = chart["max"] - chart["min"]
            said = (
                f"#{chart['id']}: its time axis runs from {_when(chart['min'])} to "
                f"{_when(chart['max'])} ({span / DAY_S:.1f} days) for data from "
                f"{_when(chart['first'])} to {_when(chart['last'])}"
            )
            self.check(span <= DAY_S + 3600, said)
            if chart["first"] is not None:
                inside = chart["min"] <= chart["first"] and chart["last"] <= chart["max"]
                self.check(inside, f"{said}: not all of it shown")

    def assert_clean(self) -> None:
        assert not self.problems, "the console went wrong:\n" + "\n".join(self.problems)


@pytest.fixture
def page(context: BrowserContext) -> Iterator[Page]:
    opened = context.new_page()
    try:
        yield opened
    finally:
        opened.close()


def shoot(page: Page, tmp_path: Path, name: str, readme_name: str | None = None) -> Path:
    """A full-page screenshot in tmp_path, and with GRIDCORE_SCREENSHOTS_DIR set,
    a copy there as ``readme_name``."""
    path = tmp_path / f"{name}.png"
    page.screenshot(path=path, full_page=True)
    assert path.stat().st_size > 10_000, f"{path} looks empty"
    out = os.environ.get("GRIDCORE_SCREENSHOTS_DIR")
    if out and readme_name:
        Path(out).mkdir(parents=True, exist_ok=True)
        shutil.copyfile(path, Path(out) / readme_name)
    return path


def _when(epoch: float | None) -> str:
    return "-" if epoch is None else datetime.fromtimestamp(epoch, UTC).isoformat()


def session_cookies(context: BrowserContext) -> list[Any]:
    return [c for c in context.cookies() if c["name"] == COOKIE]


def sign_in(page: Page, token: str) -> None:
    page.get_by_label("API token").fill(token)
    page.get_by_role("button", name="Sign in").click()


def local_minute(at: datetime) -> str:
    """A datetime-local input's value for ``at`` in the browser's time zone."""
    return at.astimezone(ZoneInfo(BROWSER_ZONE)).strftime("%Y-%m-%dT%H:%M")


def utc(iso: str) -> datetime:
    return datetime.fromisoformat(iso.replace("Z", "+00:00")).astimezone(UTC)


def submit_event_form(page: Page) -> Response:
    """Press "Create event"; the API's answer to the form's POST."""

    def the_post(response: Response) -> bool:
        return response.request.method == "POST" and urlsplit(response.url).path == "/api/events"

    with page.expect_response(the_post) as answer:
        page.get_by_role("button", name="Create event").click()
    return answer.value


def error_element(detail: list[dict[str, Any]]) -> str:
    """Where the console shows a 422's first message: next to the field its
    ``loc`` names, else under the form."""
    fields = {"startTime", "endTime", "requestedReductionKw", "targets"}
    for entry in detail:
        named = [x for x in reversed(entry.get("loc", [])) if x in fields]
        if named:
            return f"#{named[0]}-error"
    return "#form-error"


def facts(page: Page, term: str) -> Any:
    """The ``dd`` after the ``dt`` saying ``term`` in the measured result."""
    return page.locator("#measured dl.facts dt", has_text=term).locator(
        "xpath=following-sibling::dd[1]"
    )


# --- the tests ------------------------------------------------------------------------------


def test_an_operator_signs_in_runs_an_event_and_stops_it(
    console: Console, context: BrowserContext, page: Page, tmp_path: Path
) -> None:
    watch = Watch(page)
    with console.logs_on_failure():
        # Signing in: the fleet page sends the operator to the sign-in form and back.
        page.goto("/")
        expect(page).to_have_url(re.compile(r"/console/sign-in\?next=/$"))
        assert session_cookies(context) == []
        sign_in(page, CONTROL)
        expect(page).to_have_url(f"{console.base}/")
        (cookie,) = session_cookies(context)
        assert cookie["httpOnly"] is True
        assert cookie["sameSite"] == "Lax"
        assert cookie["path"] == "/"
        assert CONTROL not in cookie["value"]  # the cookie stands for the token, it is not it
        assert COOKIE not in page.evaluate("document.cookie")  # no script can read it
        expect(page.locator(".who")).to_contain_text("control")

        # The fleet: every VEN online, each in the table with a link to its page.
        expect(page.locator("#vens-online")).to_have_text(f"{VENS} / {VENS}", timeout=WAIT_MS)
        rows = page.locator("#ven-table tbody tr")
        expect(rows).to_have_count(VENS, timeout=WAIT_MS)
        for ven_id in console.ven_ids:
            link = page.locator(f'#ven-table a[href="/console/vens/{ven_id}"]')
            expect(link).to_have_count(1)
        expect(rows.filter(has_text="online")).to_have_count(VENS, timeout=WAIT_MS)
        expect(page.locator("#fleet-chart canvas").first).to_be_visible(timeout=WAIT_MS)
        expect(page.locator("#status")).to_contain_text("Updated", timeout=WAIT_MS)
        watch.check_charts("fleet-chart")
        shoot(page, tmp_path, "fleet", "console-fleet.png")

        # A VEN's page, from its link; a ping comes back as a pong.
        ven_id = console.ven_ids[0]
        page.locator(f'#ven-table a[href="/console/vens/{ven_id}"]').click()
        expect(page).to_have_url(f"{console.base}/console/vens/{ven_id}")
        expect(page.locator("#ven-status")).to_contain_text("online", timeout=WAIT_MS)
        expect(page.locator("#circuits tbody tr").first).not_to_have_text("Nothing to show.")
        expect(page.locator("#shadow")).to_contain_text("{", timeout=WAIT_MS)
        page.locator("#ping").click()
        expect(page.locator("#ping-result")).to_contain_text("pong", timeout=30_000)
        watch.check_charts("ven-chart", "circuit-chart")
        shoot(page, tmp_path, "ven", "console-ven.png")

        # The events page: a form that says what the API refused, next to the field.
        page.get_by_role("link", name="Events").click()
        expect(page).to_have_url(f"{console.base}/console/events")
        form = page.locator("#event-form")
        expect(form).to_be_visible()
        expect(page.locator("#startTime")).to_have_value(re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d$"))
        expect(page.locator("#endTime")).to_have_value(re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d$"))
        before = console.event_ids()
        watch.expecting(422, "/api/events")

        page.locator("#requestedReductionKw").fill("")
        answer = submit_event_form(page)
        assert answer.status == 422, answer.text()
        detail = answer.json()["detail"]
        assert error_element(detail) == "#requestedReductionKw-error", detail
        shown = page.locator("#requestedReductionKw-error")
        expect(shown).to_be_visible()
        expect(shown).to_have_text(detail[0]["msg"])
        assert detail[0]["msg"].strip()
        expect(page.locator("#requestedReductionKw")).to_have_attribute("aria-invalid", "true")

        now = datetime.now(UTC)
        page.locator("#requestedReductionKw").fill("4")
        page.locator("#startTime").fill(local_minute(now + timedelta(hours=2)))
        page.locator("#endTime").fill(local_minute(now + timedelta(hours=1)))
        answer = submit_event_form(page)
        assert answer.status == 422, answer.text()
        body = answer.json()
        where = error_element(body["detail"])
        assert where in ("#endTime-error", "#form-error"), body
        shown = page.locator(where)
        expect(shown).to_be_visible()
        expect(shown).to_contain_text(body["detail"][0]["msg"])
        # The earlier message is gone.
        expect(page.locator("#requestedReductionKw-error")).to_be_hidden()
        assert console.event_ids() == before, "a refused form created an event"

        # Targets no VEN is granted: refused, shown next to the targets field.
        now = datetime.now(UTC)
        page.locator("#startTime").fill(local_minute(now + timedelta(hours=1)))
        page.locator("#endTime").fill(local_minute(now + timedelta(hours=2)))
        page.locator("#targets").fill("no-such-group, feeder-x")
        answer = submit_event_form(page)
        assert answer.status == 422, answer.text()
        detail = answer.json()["detail"]
        assert error_element(detail) == "#targets-error", detail
        expect(page.locator("#targets-error")).to_contain_text("targets match no VEN")
        assert console.event_ids() == before, "a refused form created an event"
        page.locator("#targets").fill("")  # the whole fleet

        # A real event: from this minute (so it starts at once) for ten minutes.
        start = datetime.now(UTC).replace(second=0, microsecond=0)
        end = start + timedelta(minutes=10)
        page.locator("#startTime").fill(local_minute(start))
        page.locator("#endTime").fill(local_minute(end))
        page.locator("#requestedReductionKw").fill("3")
        answer = submit_event_form(page)
        assert answer.status == 201
        # The browser goes on to the new event's page (the answer's body is gone with it).
        expect(page).to_have_url(re.compile(r"/console/events/[^/?#]+$"))
        event_id = urlsplit(page.url).path.rsplit("/", 1)[1]
        assert console.event_ids() == before | {event_id}
        with console.api(READ) as api:
            created = api.get(f"/api/events/{event_id}").json()
        # The form's local times are the event's instants.
        assert utc(created["startTime"]) == start, created
        assert utc(created["endTime"]) == end, created
        assert created["requestedReductionKw"] == 3

        expect(page.locator("#ev-status")).to_contain_text("active", timeout=WAIT_MS)
        ev_rows = page.locator("#ev-vens tbody tr")
        expect(ev_rows.filter(has_text="accepted")).to_have_count(VENS, timeout=WAIT_MS)
        for ven_id in console.ven_ids:
            expect(page.locator(f'#ev-vens a[href="/console/vens/{ven_id}"]')).to_have_count(1)
        expect(page.locator("#ev-requested")).to_have_text("3.00 kW")
        expect(page.locator("#measured dl.facts")).to_be_visible(timeout=WAIT_MS)
        expect(page.locator("#ev-stop")).to_be_visible()
        expect(page.locator("#ev-cancel")).to_be_hidden()
        watch.check_charts("progress-chart", "measured-chart")
        shoot(page, tmp_path, "event-active")

        # Stop it, after saying yes to the question.
        page.locator("#ev-stop").click()
        dialog = page.locator("#confirm")
        expect(dialog).to_be_visible()
        expect(page.locator("#confirm-text")).to_contain_text(f"Stop {event_id}")
        dialog.get_by_role("button", name="Yes").click()
        expect(dialog).to_be_hidden()
        # An event stopped early ends "stopped" (docs/api.md: active -> stopped), not
        # "completed", which is an event that ran to its end.
        expect(page.locator("#ev-status")).to_have_text(re.compile(r"\bstopped$"), timeout=WAIT_MS)
        expect(page.locator("#ev-actions")).to_be_hidden()
        with console.api(READ) as api:
            assert api.get(f"/api/events/{event_id}").json()["status"] == "stopped"

        # The measured result, once measured after the stop (no longer "live").
        baseline = facts(page, "Baseline")
        method = re.compile(r"^(meter-before(-\d+)?|ven-reported|\d+-in-\d+|high-\d+-of-\d+)$")
        expect(baseline).to_have_text(method, timeout=WAIT_MS)
        expect(facts(page, "VENs measured")).to_contain_text(f"{VENS} (")
        link = page.locator('#measured a[href$="performance?format=csv"]')
        expect(link).to_be_visible()
        href = link.get_attribute("href")
        assert href == f"/api/events/{event_id}/performance?format=csv"
        watch.check_charts("progress-chart", "measured-chart")
        shoot(page, tmp_path, "event-stopped", "console-event.png")

        # The CSV, as the link downloads it: with the page's cookie, not a token.
        download = page.request.get(href)
        assert download.status == 200, download.text()
        assert download.headers["content-type"].startswith("text/csv")
        table = list(csv.DictReader(io.StringIO(download.text())))
        by_ven = {row["venId"]: row for row in table}
        assert set(by_ven) == {*console.ven_ids, "FLEET"}, download.text()
        assert len(table) == VENS + 1
        assert method.match(by_ven["FLEET"]["method"]), by_ven["FLEET"]
        # Without the cookie the same address is refused.
        assert httpx.get(console.base + href, timeout=10).status_code == 401
        # And the link itself downloads it under the name it gives.
        with page.expect_download() as downloading:
            link.click()
        saved = downloading.value
        assert saved.suggested_filename == f"{event_id}-performance.csv"
        saved_rows = csv.DictReader(io.StringIO(Path(saved.path()).read_text()))
        assert {row["venId"] for row in saved_rows} == {*console.ven_ids, "FLEET"}

        # The events list shows it as stopped, with nothing left to do to it.
        page.get_by_role("link", name="Events").click()
        expect(page).to_have_url(f"{console.base}/console/events")
        row = page.locator("#event-table tbody tr", has_text=event_id)
        expect(row).to_contain_text("stopped", timeout=WAIT_MS)
        expect(row.get_by_role("button")).to_have_count(0)
        # The status filter offers every status an event can have, stopped too.
        offered = page.locator("#status-filter option").all_inner_texts()
        watch.check("stopped" in offered, f"the status filter offers {offered}, not stopped")
        if "stopped" in offered:
            page.locator("#status-filter").select_option("stopped")
            expect(page.locator("#event-table tbody tr")).to_have_count(1, timeout=WAIT_MS)
            expect(row).to_be_visible()

        # Two bad times, then targets no VEN is granted.
        assert watch.provoked == [(422, "POST", "/api/events")] * 3
        watch.assert_clean()


def test_a_read_token_sees_the_console_but_cannot_act(
    console: Console, context: BrowserContext, page: Page
) -> None:
    watch = Watch(page)
    with console.logs_on_failure():
        # A scheduled event, which a control session could cancel from the pages.
        soon = datetime.now(UTC).replace(microsecond=0) + timedelta(hours=3)
        with console.api(CONTROL) as api:
            created = api.post(
                "/api/events",
                json={
                    "startTime": soon.isoformat(),
                    "endTime": (soon + timedelta(hours=1)).isoformat(),
                    "requestedReductionKw": 2.0,
                },
            )
            assert created.status_code == 201, created.text
        event_id = created.json()["id"]

        page.goto("/console/events")
        expect(page).to_have_url(re.compile(r"/console/sign-in\?next=/console/events$"))

        # A wrong token: the form says so next to the field, and no cookie is set.
        watch.expecting(401, "/console/sign-in")
        with page.expect_response(
            lambda r: r.request.method == "POST" and r.url.endswith("/console/sign-in")
        ) as refused:
            sign_in(page, "not-a-token-of-this-server-0123")
        assert refused.value.status == 401
        error = page.locator("#token-error")
        expect(error).to_be_visible()
        expect(error).to_have_text(re.compile(r"\S"))
        expect(error).to_contain_text("not valid")
        expect(page.get_by_label("API token")).to_have_attribute("aria-invalid", "true")
        assert session_cookies(context) == []

        # The read token: back to the page asked for, which has nothing to act with.
        sign_in(page, READ)
        expect(page).to_have_url(f"{console.base}/console/events")
        (cookie,) = session_cookies(context)
        assert cookie["httpOnly"] is True and cookie["sameSite"] == "Lax"
        expect(page.locator(".who")).to_contain_text("(view only)")
        expect(page.locator("#event-form")).to_have_count(0)
        row = page.locator("#event-table tbody tr", has_text=event_id)
        expect(row).to_be_visible(timeout=WAIT_MS)
        expect(row).to_contain_text("scheduled")
        expect(page.locator("#event-table tbody button")).to_have_count(0)
        expect(page.get_by_role("button", name=re.compile(r"^(Stop|Cancel) "))).to_have_count(0)

        # The event's page: no stop, no cancel.
        row.get_by_role("link", name=event_id).click()
        expect(page).to_have_url(f"{console.base}/console/events/{event_id}")
        expect(page.locator("#ev-status")).to_contain_text("scheduled", timeout=WAIT_MS)
        expect(page.locator("#ev-stop")).to_have_count(0)
        expect(page.locator("#ev-cancel")).to_have_count(0)
        expect(page.locator("#ev-actions")).to_have_count(0)

        # Writes from the page with its session: 403 with the CSRF token, 401 without.
        csrf = page.locator('meta[name="csrf-token"]').get_attribute("content")
        assert csrf, "the page carries no CSRF token"
        before = console.event_ids()
        watch.expecting(403, "/api/events")
        watch.expecting(401, "/api/events")
        body = {
            "startTime": (soon + timedelta(hours=2)).isoformat(),
            "endTime": (soon + timedelta(hours=3)).isoformat(),
            "requestedReductionKw": 1.0,
        }

        def post(headers: dict[str, str]) -> dict[str, Any]:
            answer: dict[str, Any] = page.evaluate(
                """async ([headers, body]) => {
                    const r = await fetch("/api/events", {
                        method: "POST",
                        headers: { "Content-Type": "application/json", ...headers },
                        body: JSON.stringify(body),
                        credentials: "same-origin",
                    });
                    return { status: r.status, text: await r.text() };
                }""",
                [headers, body],
            )
            return answer

        with_csrf = post({"X-CSRF-Token": csrf})
        assert with_csrf["status"] == 403, with_csrf
        assert "control" in with_csrf["text"]
        without_csrf = post({})
        assert without_csrf["status"] == 401, without_csrf
        assert console.event_ids() == before, "a read session created an event"
        # The page still stands, signed in.
        expect(page).to_have_url(f"{console.base}/console/events/{event_id}")

        # A VEN's page: no ping.
        ven_id = console.ven_ids[1]
        page.goto(f"/console/vens/{ven_id}")
        expect(page.locator("#ven-status")).to_contain_text("online", timeout=WAIT_MS)
        expect(page.locator("#ping")).to_have_count(0)
        expect(page.locator("#status")).to_contain_text("Updated", timeout=WAIT_MS)
        watch.check_charts("ven-chart", "circuit-chart")

        # Signing out ends the session: the pages ask for a token again.
        page.get_by_role("button", name="Sign out").click()
        expect(page).to_have_url(f"{console.base}/console/sign-in")
        assert session_cookies(context) == []
        page.goto("/console/events")
        expect(page).to_have_url(re.compile(r"/console/sign-in\?next=/console/events$"))

        assert sorted(watch.provoked) == [
            (401, "POST", "/api/events"),
            (401, "POST", "/console/sign-in"),
            (403, "POST", "/api/events"),
        ]
        watch.assert_clean()
