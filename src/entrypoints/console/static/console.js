/* gridcore console: each page reads the API (the session cookie stands for a
   token; writes carry the page's CSRF token) and refreshes itself while open.
   No framework: uPlot draws the charts. */
"use strict";

const POLL_MS = 5000;
const PAGE_SIZE = 50;
const body = document.body;
const canControl = body.dataset.canControl === "true";
const csrf = document.querySelector('meta[name="csrf-token"]').content;

// --- talking to the API -------------------------------------------------------

class ApiError extends Error {
  constructor(status, payload) {
    super(ApiError.describe(status, payload));
    this.status = status;
    this.payload = payload;
  }
  static describe(status, payload) {
    if (payload && typeof payload.message === "string") return payload.message;
    if (payload && typeof payload.detail === "string") return payload.detail;
    return `the server answered ${status}`;
  }
}

async function api(path, options = {}) {
  const headers = { Accept: "application/json", ...(options.headers || {}) };
  if (options.body !== undefined) headers["Content-Type"] = "application/json";
  if (options.method && options.method !== "GET") headers["X-CSRF-Token"] = csrf;
  const response = await fetch(path, {
    method: options.method || "GET",
    headers,
    body: options.body === undefined ? undefined : JSON.stringify(options.body),
    credentials: "same-origin",
  });
  if (response.status === 401) {
    // The session ended (expired, or the tokens changed): sign in again.
    location.assign(`/console/sign-in?next=${encodeURIComponent(location.pathname)}`);
    throw new ApiError(401, { detail: "signed out" });
  }
  const text = await response.text();
  const payload = text ? JSON.parse(text) : null;
  if (!response.ok) throw new ApiError(response.status, payload);
  return { data: payload, total: Number(response.headers.get("X-Total-Count") || NaN) };
}

// --- formatting -----------------------------------------------------------------

const num = (x, digits = 1) =>
  x === null || x === undefined || Number.isNaN(x) ? "–" : Number(x).toFixed(digits);
const kw = (x, digits = 1) => (x === null || x === undefined ? "–" : `${num(x, digits)} kW`);
const kwh = (x) => (x === null || x === undefined ? "–" : `${num(x, 2)} kWh`);
const pct = (x) => (x === null || x === undefined ? "–" : `${num(100 * x, 0)} %`);
const ms = (x) => (x === null || x === undefined ? "–" : `${num(x, 0)} ms`);
const when = (iso) => (iso ? new Date(iso).toLocaleString() : "–");
// Whom an event is for: its targets, or (none) the whole fleet.
const reach = (e) => (e.targets && e.targets.length ? `targets ${e.targets.join(", ")}` : "whole fleet");

function age(iso) {
  if (!iso) return "never";
  const s = Math.max(0, (Date.now() - Date.parse(iso)) / 1000);
  if (s < 90) return `${Math.round(s)} s ago`;
  if (s < 5400) return `${Math.round(s / 60)} min ago`;
  if (s < 129600) return `${Math.round(s / 3600)} h ago`;
  return `${Math.round(s / 86400)} days ago`;
}

function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (v === null || v === undefined || v === false) continue;
    if (k === "class") node.className = v;
    else if (k.startsWith("on")) node.addEventListener(k.slice(2), v);
    else node.setAttribute(k, v === true ? "" : v);
  }
  for (const c of children.flat()) {
    if (c !== null && c !== undefined) node.append(c instanceof Node ? c : String(c));
  }
  return node;
}

function svg(tag, attrs = {}, ...children) {
  const node = document.createElementNS("http://www.w3.org/2000/svg", tag);
  for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, v);
  for (const c of children) node.append(c);
  return node;
}

const setText = (id, text) => {
  const node = document.getElementById(id);
  if (node) node.textContent = text;
};

// A status word with a symbol, so colour never carries the meaning alone.
const BADGES = {
  online: "● online", offline: "○ offline", active: "▶ active", scheduled: "◷ scheduled",
  completed: "✓ completed", stopped: "■ stopped", cancelled: "✕ cancelled", acked: "✓ acked", accepted: "✓ accepted",
  sent: "→ sent", pending: "… pending", failed: "✕ failed", timed_out: "⌛ timed out",
  rejected: "✕ rejected", cancelled_cmd: "✕ cancelled", superseded: "↷ superseded",
  success: "✓ success", pong: "✓ pong",
};
const badge = (word) => el("span", { class: `badge badge-${word}` }, BADGES[word] || word || "–");

// --- the page's status line and polling ------------------------------------------

const status = document.getElementById("status");

function report(error) {
  if (!status) return;
  if (error) {
    status.textContent = `Could not refresh: ${error.message}. Retrying every ${POLL_MS / 1000} s.`;
    status.classList.add("error");
  } else {
    status.textContent = `Updated ${new Date().toLocaleTimeString()}`;
    status.classList.remove("error");
  }
}

function every(refresh, period = POLL_MS) {
  let timer = null;
  const run = async () => {
    clearTimeout(timer);
    try {
      await refresh();
      report(null);
    } catch (error) {
      if (!(error instanceof ApiError && error.status === 401)) report(error);
    }
    if (!document.hidden) timer = setTimeout(run, period);
  };
  document.addEventListener("visibilitychange", () => { if (!document.hidden) run(); });
  run();
  return run;
}

// --- tables: sortable by any column, searchable, paged ----------------------------

class Table {
  /* columns: [{key, label, value(row) for sorting, cell(row) -> node/text, num}].
     With `remote(window) -> {rows, total}` the server searches, sorts and pages
     (window: {offset, limit, sort, search}); only columns with `sort` (the
     server's key) are sortable then, and the table holds one page. */
  constructor(container, columns, { search = false, label = "Table", pageSize = PAGE_SIZE, remote = null, onload = null } = {}) {
    this.columns = columns;
    this.remote = remote;
    this.onload = onload; // called with each page read (remote)
    this.asked = 0; // the newest read: an older answer arriving late is dropped
    this.typing = null;
    this.total = 0;
    this.rows = [];
    this.sortKey = null;
    this.sortDir = 1;
    this.page = 0;
    this.pageSize = pageSize;
    this.query = "";
    this.container = container;
    if (search) {
      const id = `${container.id}-search`;
      const input = el("input", { id, type: "search", placeholder: "Search" });
      input.addEventListener("input", () => {
        this.query = input.value.trim().toLowerCase();
        this.page = 0;
        // A search the server runs waits for a pause in the typing.
        clearTimeout(this.typing);
        if (this.remote) this.typing = setTimeout(() => this.changed(), 250);
        else this.render();
      });
      container.append(el("label", { for: id }, "Search"), input);
    }
    this.table = el("table", { "aria-label": label });
    const head = el("tr");
    for (const c of columns) {
      if (remote && !c.sort) {
        c.th = el("th", { scope: "col", class: c.num ? "num" : null }, c.label);
      } else {
        const button = el("button", { type: "button", class: "sort" }, c.label);
        button.addEventListener("click", () => this.sortBy(c.key));
        c.th = el("th", { scope: "col", class: c.num ? "num" : null, "aria-sort": "none" }, button);
      }
      head.append(c.th);
    }
    this.tbody = el("tbody");
    this.table.append(el("thead", {}, head), this.tbody);
    this.pager = el("div", { class: "pager" });
    container.append(this.table, this.pager);
  }

  sortBy(key) {
    this.sortDir = this.sortKey === key ? -this.sortDir : 1;
    this.sortKey = key;
    this.changed();
  }

  set(rows) {
    this.rows = rows;
    this.render();
  }

  /* What the server is asked for: this page, this order, this search. */
  window() {
    const c = this.columns.find((col) => col.key === this.sortKey);
    const sort = c ? `${this.sortDir < 0 ? "-" : ""}${c.sort}` : "id";
    return { offset: this.page * this.pageSize, limit: this.pageSize, sort, search: this.query };
  }

  /* Reads the page again (remote), or shows the rows held in another order or page. */
  async load() {
    const asked = ++this.asked;
    const { rows, total } = await this.remote(this.window());
    if (asked !== this.asked) return this.rows;
    this.rows = rows;
    this.total = total;
    const last = Math.max(0, Math.ceil(total / this.pageSize) - 1);
    if (this.page > last) { this.page = last; return this.load(); }
    this.render();
    if (this.onload) this.onload(rows);
    return rows;
  }

  changed() {
    if (!this.remote) { this.render(); return; }
    this.load().then(() => report(null), report);
  }

  visible() {
    if (this.remote) return this.rows;
    let rows = this.rows;
    if (this.query) {
      rows = rows.filter((r) => this.columns.some((c) => String(c.value ? c.value(r) : r[c.key] ?? "").toLowerCase().includes(this.query)));
    }
    if (this.sortKey) {
      const c = this.columns.find((col) => col.key === this.sortKey);
      const v = (r) => (c.value ? c.value(r) : r[c.key]);
      rows = [...rows].sort((a, b) => {
        const x = v(a), y = v(b);
        if (x === y) return 0;
        if (x === null || x === undefined) return 1;
        if (y === null || y === undefined) return -1;
        // Text in natural order: ven-2 before ven-10.
        if (typeof x === "string" && typeof y === "string") {
          return x.localeCompare(y, undefined, { numeric: true }) * this.sortDir;
        }
        return (x < y ? -1 : 1) * this.sortDir;
      });
    }
    return rows;
  }

  render() {
    for (const c of this.columns) {
      c.th.setAttribute("aria-sort", c.key === this.sortKey ? (this.sortDir > 0 ? "ascending" : "descending") : "none");
    }
    const rows = this.visible();
    const count = this.remote ? this.total : rows.length;
    const pages = Math.max(1, Math.ceil(count / this.pageSize));
    this.page = Math.min(this.page, pages - 1);
    const shown = this.remote ? rows : rows.slice(this.page * this.pageSize, (this.page + 1) * this.pageSize);
    this.tbody.replaceChildren(...shown.map((r) => el("tr", {}, this.columns.map((c) =>
      el("td", { class: c.num ? "num" : null }, c.cell ? c.cell(r) : (r[c.key] ?? "–"))))));
    if (!shown.length) this.tbody.append(el("tr", {}, el("td", { colspan: this.columns.length }, "Nothing to show.")));
    const go = (p) => () => { this.page = p; this.changed(); };
    this.pager.replaceChildren(
      el("button", { type: "button", disabled: this.page === 0, onclick: go(this.page - 1) }, "‹ Previous"),
      ` Page ${this.page + 1} of ${pages} (${count} rows) `,
      el("button", { type: "button", disabled: this.page >= pages - 1, onclick: go(this.page + 1) }, "Next ›"),
    );
  }
}

// --- charts -------------------------------------------------------------------------

const COLOURS = ["#1f5fa8", "#c2410c", "#15803d", "#7e22ce", "#a16207"];
const DASHES = [[], [6, 4], [2, 3], [10, 3, 2, 3], [1, 1]]; // colour is never the only cue

/* Shades the periods [[startSec, endSec], ...] behind the lines. */
function shading(periods) {
  return {
    hooks: {
      drawClear: [(u) => {
        const ctx = u.ctx;
        ctx.save();
        ctx.fillStyle = "rgba(194, 65, 12, 0.12)";
        for (const [a, b] of periods()) {
          const left = u.bbox.left, right = u.bbox.left + u.bbox.width;
          const x0 = Math.max(left, u.valToPos(a, "x", true));
          const x1 = Math.min(right, u.valToPos(b, "x", true));
          if (x1 > x0) ctx.fillRect(x0, u.bbox.top, x1 - x0, u.bbox.height);
        }
        ctx.restore();
      }],
    },
  };
}

class Chart {
  constructor(container, labels, { periods = () => [], unit = "kW", stepped = false } = {}) {
    this.container = container;
    this.labels = labels;
    this.periods = periods;
    this.unit = unit;
    this.stepped = stepped;
    this.plot = null;
    new ResizeObserver(() => this.plot && this.plot.setSize(this.size())).observe(container);
  }

  size() {
    return { width: Math.max(300, this.container.clientWidth), height: 260 };
  }

  set(xs, ...series) {
    const data = [xs, ...series];
    if (this.plot) this.plot.setData(data);
    else this.create(data);
    // One point in time (an event just begun) still gets a readable span.
    if (xs.length && Math.min(...xs) === Math.max(...xs)) {
      this.plot.setScale("x", { min: xs[0] - 300, max: xs[0] + 300 });
    }
  }

  create(data) {
    const opts = {
      ...this.size(),
      plugins: [shading(this.periods)],
      scales: { x: { time: true } },
      axes: [{}, { label: this.unit, values: (u, vals) => vals.map((v) => num(v, 1)) }],
      series: [{}, ...this.labels.map((label, i) => ({
        label: `${label} (${this.unit})`,
        stroke: COLOURS[i % COLOURS.length],
        dash: DASHES[i % DASHES.length],
        width: 2,
        value: (u, v) => num(v, 2),
        paths: this.stepped ? uPlot.paths.stepped({ align: 1 }) : undefined,
      }))],
    };
    this.plot = new uPlot(opts, data, this.container);
  }
}

const seconds = (iso) => Date.parse(iso) / 1000;
const dayAgo = () => new Date(Date.now() - 86400000).toISOString();

// --- a confirmation before acting ------------------------------------------------------

function confirmed(text) {
  const dialog = document.getElementById("confirm");
  document.getElementById("confirm-text").textContent = text;
  return new Promise((resolve) => {
    dialog.addEventListener("close", () => resolve(dialog.returnValue === "yes"), { once: true });
    dialog.showModal();
  });
}

// --- the pages -----------------------------------------------------------------------------

const pages = {};

pages.fleet = () => {
  let events = [];
  const chart = new Chart(document.getElementById("fleet-chart"), ["used", "shed"], {
    periods: () => events.map((e) => [seconds(e.startTime), seconds(e.endTime)]),
  });
  const loads = document.querySelector("#load-types tbody");
  // The fleet table reads one page at a time: the server searches, sorts
  // (by name, status or last heartbeat) and pages, so 10,000 VENs cost what 50 do.
  const summaryPage = async ({ offset, limit, sort, search }) => {
    const q = new URLSearchParams({ offset, limit, sort });
    if (search) q.set("search", search);
    const page = await api(`/api/vens/summary?${q}`);
    return { rows: page.data, total: page.total };
  };
  const vens = new Table(document.getElementById("ven-table"), [
    { key: "name", label: "VEN", sort: "name", cell: (r) => el("a", { href: `/console/vens/${encodeURIComponent(r.id)}` }, r.name) },
    // Online is seen recently: status sorts as the last heartbeat does.
    { key: "status", label: "Status", sort: "lastSeen", cell: (r) => badge(r.status) },
    { key: "lastSeen", label: "Last seen", sort: "lastSeen", value: (r) => r.lastSeen || "", cell: (r) => el("time", { datetime: r.lastSeen || "" }, age(r.lastSeen)) },
    { key: "currentPower", label: "Power now (kW)", num: true, cell: (r) => num(r.currentPower, 2) },
    { key: "controllablePower", label: "Can shed now (kW)", num: true, cell: (r) => num(r.controllablePower, 2) },
    { key: "responseTime", label: "Last response (ms)", num: true, cell: (r) => num(r.responseTime, 0) },
    { key: "location", label: "Location", cell: (r) => r.location || "–" },
  ], { search: true, label: "VENs", remote: summaryPage, onload: (rows) => drawMap(rows) });
  const map = document.getElementById("ven-map");

  const drawMap = (rows) => {
    const placed = rows.filter((r) => r.location);
    map.replaceChildren();
    if (!placed.length) {
      map.setAttribute("viewBox", "0 0 400 60");
      map.append(svg("text", { x: 10, y: 30 }, "No VEN has a registered location."));
      return;
    }
    const pts = placed.map((r) => { const [lat, lon] = r.location.split(",").map(Number); return { r, lat, lon }; });
    const lats = pts.map((p) => p.lat), lons = pts.map((p) => p.lon);
    const [a, b, c, d] = [Math.min(...lats), Math.max(...lats), Math.min(...lons), Math.max(...lons)];
    const W = 400, H = 260, pad = 20;
    map.setAttribute("viewBox", `0 0 ${W} ${H}`);
    for (const p of pts) {
      const x = pad + ((p.lon - c) / (d - c || 1)) * (W - 2 * pad);
      const y = H - pad - ((p.lat - a) / (b - a || 1)) * (H - 2 * pad);
      // Online a filled circle, offline a hollow square: not colour alone.
      const dot = p.r.status === "online"
        ? svg("circle", { cx: x, cy: y, r: 5, class: "dot online" })
        : svg("rect", { x: x - 4, y: y - 4, width: 8, height: 8, class: "dot offline" });
      dot.append(svg("title", {}, `${p.r.name}: ${p.r.status}, ${p.r.location}`));
      map.append(dot);
    }
  };

  every(async () => {
    const [stats, history, loadStats, , current] = await Promise.all([
      api("/api/stats/network"),
      api(`/api/stats/network/history?start=${dayAgo()}`),
      api("/api/stats/loads"),
      vens.load(), // and the map of its page
      api("/api/events?limit=100"),
    ]);
    const s = stats.data;
    setText("vens-online", `${s.onlineVens} / ${s.venCount}`);
    setText("controllable", kw(s.controllablePowerKw));
    setText("available", kw(s.potentialLoadReductionKw));
    setText("usage", kw(s.householdUsageKw));
    events = current.data;
    const active = events.find((e) => e.status === "active");
    const activeNode = document.getElementById("active-event");
    activeNode.replaceChildren(active
      ? el("a", { href: `/console/events/${active.id}` }, `${active.id}: ${kw(active.requestedReductionKw)}`)
      : "none");
    const pts = history.data.points;
    chart.set(pts.map((p) => seconds(p.timestamp)), pts.map((p) => p.usedPowerKw), pts.map((p) => p.shedPowerKw));
    loads.replaceChildren(...loadStats.data.map((l) => el("tr", {},
      el("td", {}, l.type), el("td", { class: "num" }, num(l.currentUsageKw, 2)),
      el("td", { class: "num" }, num(l.totalShedCapabilityKw, 2)), el("td", { class: "num" }, num(l.totalCapacityKw, 2)))));
  });
};

function localInputValue(date) {
  const d = new Date(date.getTime() - date.getTimezoneOffset() * 60000);
  return d.toISOString().slice(0, 16);
}

pages.events = () => {
  const filter = document.getElementById("status-filter");
  const table = new Table(document.getElementById("event-table"), [
    { key: "id", label: "Event", cell: (r) => el("a", { href: `/console/events/${r.id}` }, r.id) },
    { key: "status", label: "Status", cell: (r) => badge(r.status) },
    { key: "startTime", label: "Start", cell: (r) => when(r.startTime) },
    { key: "endTime", label: "End", cell: (r) => when(r.endTime) },
    { key: "requestedReductionKw", label: "Requested (kW)", num: true, cell: (r) => num(r.requestedReductionKw, 2) },
    { key: "actualReductionKw", label: "Claimed (kW)", num: true, cell: (r) => num(r.actualReductionKw, 2) },
    { key: "targets", label: "Targets", value: (r) => reach(r), cell: (r) => reach(r) },
    { key: "actions", label: "Actions", value: () => "", cell: (r) => actions(r) },
  ], { label: "Events" });

  const act = async (event, verb) => {
    const text = verb === "stop"
      ? `Stop ${event.id} now? Its VENs are sent restores.`
      : `Cancel ${event.id}? It will not run.`;
    if (!(await confirmed(text))) return;
    try {
      if (verb === "stop") await api(`/api/events/${event.id}/stop`, { method: "POST", body: {} });
      else await api(`/api/events/${event.id}`, { method: "DELETE" });
      refresh();
    } catch (error) {
      report(error);
    }
  };
  const actions = (r) => {
    if (!canControl) return "";
    if (r.status === "active") return el("button", { type: "button", class: "danger", onclick: () => act(r, "stop") }, `Stop ${r.id}`);
    if (r.status === "scheduled") return el("button", { type: "button", class: "danger", onclick: () => act(r, "cancel") }, `Cancel ${r.id}`);
    return "";
  };

  const form = document.getElementById("event-form");
  if (form) {
    const start = new Date(Date.now() + 60000), end = new Date(start.getTime() + 3600000);
    form.startTime.value = localInputValue(start);
    form.endTime.value = localInputValue(end);
    form.addEventListener("submit", async (e) => {
      e.preventDefault();
      for (const p of form.querySelectorAll(".field-error")) { p.hidden = true; p.textContent = ""; }
      for (const i of form.querySelectorAll("input")) i.removeAttribute("aria-invalid");
      const shown = (name, message) => {
        const p = document.getElementById(`${name}-error`) || document.getElementById("form-error");
        p.textContent = message;
        p.hidden = false;
        const input = form.elements[name];
        if (input) input.setAttribute("aria-invalid", "true");
      };
      const at = (input) => (input.value ? new Date(input.value).toISOString() : null);
      const kwValue = form.requestedReductionKw.value === "" ? null : Number(form.requestedReductionKw.value);
      // Empty: no targets, the whole fleet. Each target keeps its own spelling.
      const targets = form.targets.value.split(",").map((t) => t.trim()).filter((t) => t !== "");
      try {
        const created = await api("/api/events", {
          method: "POST",
          body: { startTime: at(form.startTime), endTime: at(form.endTime), requestedReductionKw: kwValue, targets },
        });
        location.assign(`/console/events/${created.data.id}`);
      } catch (error) {
        const details = error.payload && Array.isArray(error.payload.detail) ? error.payload.detail : [];
        let placed = false;
        for (const d of details) {
          const field = [...(d.loc || [])].reverse().find((x) => typeof x === "string" && form.elements[x]);
          if (field) { shown(field, d.msg); placed = true; }
        }
        if (!placed) shown("form", error.message);
      }
    });
  }

  const refresh = every(async () => {
    const q = filter.value ? `&status=${encodeURIComponent(filter.value)}` : "";
    const list = await api(`/api/events?limit=200${q}`);
    table.set(list.data);
  });
  filter.addEventListener("change", refresh);
};

pages.event = () => {
  const id = body.dataset.item;
  const samples = { t: [], requested: [], allocated: [], claimed: [], metered: [] };
  let window_ = null;
  const progress = new Chart(document.getElementById("progress-chart"), ["requested", "allocated", "ACK-claimed", "metered"], {
    periods: () => (window_ ? [window_] : []), stepped: true,
  });
  const measuredChart = new Chart(document.getElementById("measured-chart"), ["baseline", "metered", "shed"], {
    periods: () => (window_ ? [window_] : []),
  });
  const vens = new Table(document.getElementById("ev-vens"), [
    { key: "venId", label: "VEN", cell: (r) => el("a", { href: `/console/vens/${encodeURIComponent(r.venId)}` }, r.venName || r.venId) },
    { key: "allocatedKw", label: "Allocated (kW)", num: true, cell: (r) => num(r.allocatedKw, 3) },
    { key: "commandState", label: "Command", cell: (r) => badge(r.commandState) },
    { key: "ackStatus", label: "ACK", cell: (r) => (r.ackStatus ? badge(r.ackStatus) : "–") },
    { key: "deliveredKw", label: "Delivered (kW)", num: true, cell: (r) => num(r.deliveredKw, 3) },
    { key: "meteredShedKw", label: "Metered shed (kW)", num: true, cell: (r) => num(r.meteredShedKw, 3) },
    { key: "responseTimeSeconds", label: "Response (ms)", num: true, cell: (r) => (r.responseTimeSeconds == null ? "–" : num(1000 * r.responseTimeSeconds, 0)) },
    { key: "attempts", label: "Sends", num: true, value: (r) => r.attempts, cell: (r) => `${r.attempts} (${Math.max(0, r.attempts - 1)} retries)` },
  ], { search: true, label: "VENs of the event" });

  const act = async (verb) => {
    const text = verb === "stop" ? `Stop ${id} now? Its VENs are sent restores.` : `Cancel ${id}? It will not run.`;
    if (!(await confirmed(text))) return;
    try {
      if (verb === "stop") await api(`/api/events/${id}/stop`, { method: "POST", body: {} });
      else await api(`/api/events/${id}`, { method: "DELETE" });
      refresh();
    } catch (error) {
      report(error);
    }
  };
  const stop = document.getElementById("ev-stop"), cancel = document.getElementById("ev-cancel");
  if (stop) stop.addEventListener("click", () => act("stop"));
  if (cancel) cancel.addEventListener("click", () => act("cancel"));

  const showMeasured = async (e) => {
    if (e.status === "scheduled" || e.status === "cancelled" && !e.vens.length) return;
    const perf = (await api(`/api/events/${id}/performance`)).data;
    const f = perf.fleet;
    const box = document.getElementById("measured");
    box.replaceChildren(
      el("dl", { class: "facts" },
        el("dt", {}, "Baseline"), el("dd", {}, `${perf.method}${perf.live ? (e.status === "active" ? " (live, while the event runs)" : " (live, until the rebound span after the end is over)") : ""}`),
        el("dt", {}, "Shed energy"), el("dd", {}, kwh(f.shedKwh)),
        el("dt", {}, "Average shed"), el("dd", {}, kw(f.avgShedKw, 2)),
        el("dt", {}, "Performance (metered / requested)"), el("dd", {}, pct(f.performanceRatio)),
        el("dt", {}, "Claimed by ACKs"), el("dd", {}, kw(f.claimedKw, 2)),
        el("dt", {}, "VENs measured"), el("dd", {}, `${f.vens} (${f.vensOffline} offline during it, ${f.vensWithoutBaseline} without a baseline)`),
        el("dt", {}, "Rebound after the end"), el("dd", {}, f.rebound ? `${kwh(f.rebound.kwh)}, peak ${kw(f.rebound.peakKw, 2)}` : "–"),
      ),
      el("p", {}, el("a", { href: `/api/events/${id}/performance?format=csv`, download: `${id}-performance.csv` }, "Download the per-VEN result (CSV)")),
    );
    const s = f.series;
    measuredChart.set(s.map((p) => seconds(p.start)), s.map((p) => p.baselineKw), s.map((p) => p.meteredKw), s.map((p) => p.shedKw));
  };

  let refreshes = 0;
  const refresh = every(async () => {
    const e = (await api(`/api/events/${id}`)).data;
    window_ = [seconds(e.startTime), seconds(e.endTime)];
    const allocated = e.vens.reduce((sum, v) => sum + (v.allocatedKw || 0), 0);
    const metered = e.metered ? e.metered.shedKw : null;
    setText("ev-status", "");
    document.getElementById("ev-status").append(badge(e.status));
    setText("ev-requested", kw(e.requestedReductionKw, 2));
    setText("ev-allocated", kw(allocated, 2));
    setText("ev-claimed", kw(e.actualReductionKw, 2));
    setText("ev-metered", metered === null ? "–" : kw(metered, 2));
    setText("ev-times", `${when(e.startTime)} to ${when(e.endTime)} · ${reach(e)} · ${e.vensResponding ?? 0} VENs responding · average response ${ms(e.avgResponseMs)}`);
    const actions = document.getElementById("ev-actions");
    if (actions) {
      actions.hidden = !["active", "scheduled"].includes(e.status);
      stop.hidden = e.status !== "active";
      cancel.hidden = e.status !== "scheduled";
    }
    samples.t.push(Date.now() / 1000);
    samples.requested.push(e.requestedReductionKw);
    samples.allocated.push(allocated);
    samples.claimed.push(e.actualReductionKw);
    samples.metered.push(metered);
    progress.set(samples.t, samples.requested, samples.allocated, samples.claimed, samples.metered);
    vens.set(e.vens);
    // The measured result changes slowly: every third refresh.
    if (refreshes++ % 3 === 0) await showMeasured(e);
  });
};

pages.ven = () => {
  const id = body.dataset.item;
  const path = `/api/vens/${encodeURIComponent(id)}`;
  let events = [];
  const chart = new Chart(document.getElementById("ven-chart"), ["used", "shed"], {
    periods: () => events,
  });
  const circuitChart = new Chart(document.getElementById("circuit-chart"), ["power"], { periods: () => events });
  const pick = document.getElementById("circuit-pick");
  const circuits = new Table(document.getElementById("circuits"), [
    { key: "name", label: "Circuit", cell: (r) => `${r.name || r.id} (${r.id})` },
    { key: "type", label: "Type" },
    { key: "currentPowerKw", label: "Power now (kW)", num: true, cell: (r) => num(r.currentPowerKw, 3) },
    { key: "shedCapabilityKw", label: "Can shed (kW)", num: true, cell: (r) => num(r.shedCapabilityKw, 3) },
    { key: "capacityKw", label: "Capacity (kW)", num: true, cell: (r) => num(r.capacityKw, 2) },
    { key: "critical", label: "Critical", cell: (r) => (r.critical ? "yes" : "no") },
    { key: "enabled", label: "Enabled", cell: (r) => (r.enabled ? "yes" : "no (shed)") },
  ], { label: "Circuits", pageSize: 100 });
  const acks = new Table(document.getElementById("acks"), [
    { key: "timestamp", label: "When", cell: (r) => when(r.timestamp) },
    { key: "op", label: "Command" },
    { key: "status", label: "Status", cell: (r) => badge(r.status) },
    { key: "eventId", label: "Event", cell: (r) => (r.eventId ? el("a", { href: `/console/events/${r.eventId}` }, r.eventId) : "–") },
    { key: "actualShedKw", label: "Shed (kW)", num: true, cell: (r) => num(r.actualShedKw, 3) },
    { key: "circuits", label: "Circuits curtailed", value: (r) => (r.circuitsCurtailed || []).length,
      cell: (r) => (r.circuitsCurtailed || []).map((c) => `${c.name || c.loadId}: ${num(c.shedKw, 2)} kW`).join(", ") || "–" },
  ], { label: "ACKs" });

  const showCircuit = async () => {
    if (!pick.value) return;
    const h = (await api(`${path}/loads/${encodeURIComponent(pick.value)}/history?start=${dayAgo()}`)).data.points;
    circuitChart.set(h.map((p) => seconds(p.timestamp)), h.map((p) => p.usedPowerKw));
  };
  pick.addEventListener("change", showCircuit);

  const ping = document.getElementById("ping");
  if (ping) {
    ping.addEventListener("click", async () => {
      const out = document.getElementById("ping-result");
      ping.disabled = true;
      out.textContent = "Ping sent…";
      const started = performance.now();
      try {
        const sent = (await api(`${path}/ping`, { method: "POST", body: {} })).data;
        for (let i = 0; i < 40; i++) {
          await new Promise((r) => setTimeout(r, 250));
          const answer = (await api(`${path}/acks?limit=20`)).data.acks.find((a) => a.correlationId === sent.correlationId);
          if (answer) {
            out.textContent = `${answer.status} in ${num(performance.now() - started, 0)} ms (round trip seen by this page)`;
            return;
          }
        }
        out.textContent = "No answer within 10 s: the VEN may be offline.";
      } catch (error) {
        out.textContent = `The ping failed: ${error.message}`;
      } finally {
        ping.disabled = false;
      }
    });
  }

  every(async () => {
    const [ven, history, ackList, shadow, fleetEvents] = await Promise.all([
      api(path), api(`${path}/history?start=${dayAgo()}`), api(`${path}/acks?limit=100`),
      // A VEN that never reported a shadow has none (404): said in its place.
      api(`${path}/shadow`).catch((error) => (error.status === 404 ? null : Promise.reject(error))),
      api("/api/events?limit=200"),
    ]);
    const v = ven.data;
    setText("ven-status", "");
    document.getElementById("ven-status").append(badge(v.status), ` · seen ${age(v.lastSeen)}`);
    setText("ven-power", kw(v.metrics.currentPowerKw, 2));
    setText("ven-shed", kw(v.metrics.shedAvailabilityKw, 2));
    setText("ven-rtt", ms(v.responseTimeMs));
    setText("ven-targets", v.targets && v.targets.length ? v.targets.join(", ") : "none granted");
    // Shaded: the events this VEN answered.
    const mine = new Set(ackList.data.acks.map((a) => a.eventId).filter(Boolean));
    events = fleetEvents.data.filter((e) => mine.has(e.id)).map((e) => [seconds(e.startTime), seconds(e.endTime)]);
    const pts = history.data.points;
    chart.set(pts.map((p) => seconds(p.timestamp)), pts.map((p) => p.usedPowerKw), pts.map((p) => p.shedPowerKw));
    circuits.set(v.loads);
    if (pick.options.length !== v.loads.length) {
      pick.replaceChildren(...v.loads.map((l) => el("option", { value: l.id }, `${l.name || l.id} (${l.type})`)));
      showCircuit();
    }
    acks.set(ackList.data.acks);
    document.getElementById("shadow").textContent = shadow ? JSON.stringify(shadow.data, null, 2) : "No shadow reported yet.";
  });
};

const start = pages[body.dataset.page];
if (start) start();
