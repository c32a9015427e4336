// accesswatch console: alerts (server-side search, sort and paging), their detail and
// triage, cases, a member's timeline, a subject's side and the watch-list.  Plain DOM,
// no framework; every value is set as text, never parsed as HTML.
"use strict";

const SEVERITY_ORDER = ["critical", "high", "medium", "low"];
const SEV_RANK = { critical: 4, high: 3, medium: 2, low: 1 };
const STATUS_LABEL = { new: "new", acknowledged: "acknowledged", justified: "justified",
  misuse: "misuse", false_positive: "false positive" };
const ACTION_LABEL = { acknowledge: "Acknowledge", assign: "Assign", unassign: "Unassign",
  justified: "Justified", misuse: "Misuse", false_positive: "False positive", reopen: "Reopen" };
const OUTCOME_ACTIONS = ["justified", "misuse", "false_positive"];
const CASE_STATUS_LABEL = { new: "new", investigating: "investigating", referred: "referred",
  awaiting_approval: "awaiting approval", closed: "closed" };
const OUTCOME_LABEL = { misuse: "misuse", justified: "justified", false_positive: "false positive",
  no_further_action: "no further action" };
const CASE_ACTION_LABEL = { assign: "Assign", unassign: "Unassign", investigate: "Investigate",
  refer: "Refer", note: "Add note", close: "Close", approve: "Approve", reject: "Reject", reopen: "Reopen" };
const PAGE = 100;          // rows fetched per page
const BULK_MAX = 500;      // ids per bulk request (the API's limit)
const TIMELINE_CHUNK = 500; // timeline entries drawn at a time
const SUBJECT_CHUNK = 200;  // a subject's opens drawn at a time
const SVG = "http://www.w3.org/2000/svg";

const state = { me: null, source: null, selected: null, detail: null, view: null,
  helloSeen: false, alerts: null, cases: null, working: null };

// --- helpers -----------------------------------------------------------------
function h(tag, attrs, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === null || v === undefined || v === false) continue;
    if (k === "class") el.className = v;
    else if (k.startsWith("on")) el.addEventListener(k.slice(2), v);
    else el.setAttribute(k, v === true ? "" : String(v));
  }
  for (const c of children.flat(Infinity)) {
    if (c === null || c === undefined || c === false) continue;
    el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return el;
}

function s(tag, attrs, ...children) {
  const el = document.createElementNS(SVG, tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === null || v === undefined) continue;
    el.setAttribute(k, String(v));
  }
  for (const c of children.flat(Infinity)) {
    if (c === null || c === undefined || c === false) continue;
    el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return el;
}

function nodes(...items) { return items.flat(Infinity).filter((x) => x !== null && x !== undefined && x !== false); }
function $(id) { return document.getElementById(id); }
// A cell's text that may be long: clipped with an ellipsis, the whole value on hover.
function clip(text, cls) { const t = text === null || text === undefined ? "" : String(text);
  return h("div", { class: cls ? `clip ${cls}` : "clip", title: t }, t); }

const clock = new Intl.DateTimeFormat("en-GB", { timeZone: "Europe/London", day: "2-digit",
  month: "short", hour: "2-digit", minute: "2-digit", second: "2-digit" });
const shortClock = new Intl.DateTimeFormat("en-GB", { timeZone: "Europe/London", day: "2-digit",
  month: "short", hour: "2-digit", minute: "2-digit" });
const dayClock = new Intl.DateTimeFormat("en-GB", { timeZone: "Europe/London", weekday: "short",
  day: "2-digit", month: "short", year: "numeric" });
const partsClock = new Intl.DateTimeFormat("en-GB", { timeZone: "Europe/London", year: "numeric",
  month: "2-digit", day: "2-digit", hour: "2-digit", minute: "2-digit", second: "2-digit", hourCycle: "h23" });
const count = new Intl.NumberFormat("en-GB");
// Times as London shows them: the force's own clock, whatever the analyst's machine says.
function when(iso) { return iso ? clock.format(new Date(iso)).replace(",", "") : ""; }
function whenShort(iso) { return iso ? shortClock.format(new Date(iso)).replace(",", "") : ""; }
function day(iso) { return iso ? dayClock.format(new Date(iso)).replace(",", "") : ""; }
function fmt(n) { return count.format(n || 0); }
function plural(n, one, many) { return `${fmt(n)} ${n === 1 ? one : (many || `${one}s`)}`; }
function num(x) { return Number.isInteger(x) ? String(x) : Number(x).toFixed(Math.abs(x) < 10 ? 2 : 1); }
// An alert is re-published, version one higher, as its evidence grows; absent means 1.
function version(r) { return r.version || 1; }
function updatedLabel(r) { return version(r) > 1 ? `updated, v${version(r)}` : null; }

function londonParts(ms) {
  const o = {};
  for (const p of partsClock.formatToParts(new Date(ms))) o[p.type] = p.value;
  return o;
}
function londonOffset(ms) {
  const p = londonParts(ms);
  return Date.UTC(+p.year, +p.month - 1, +p.day, +p.hour, +p.minute, +p.second) - Math.floor(ms / 1000) * 1000;
}
// A datetime-local value, read as London wall time, to ISO-8601 UTC ("…Z"); "" when empty.
function inputToIso(value) {
  const m = /^(\d{4})-(\d\d)-(\d\d)T(\d\d):(\d\d)/.exec(value || "");
  if (!m) return "";
  const wall = Date.UTC(+m[1], +m[2] - 1, +m[3], +m[4], +m[5]);
  const t = wall - londonOffset(wall - londonOffset(wall));
  return new Date(t).toISOString().replace(/\.\d{3}Z$/, "Z");
}
function isoToInput(iso) {
  if (!iso) return "";
  const p = londonParts(Date.parse(iso));
  return `${p.year}-${p.month}-${p.day}T${p.hour}:${p.minute}`;
}

function debounce(fn, ms) {
  let t = null;
  return function debounced(...args) { clearTimeout(t); t = setTimeout(() => fn.apply(this, args), ms); };
}

// Every request goes through here.  Signed out: to the sign-in page (the caller is left
// waiting; the page goes away).  No answer at all (the console restarting, the network
// gone): a 503 the caller shows like any refusal, never an uncaught error.
// Every read says why (the consultation log): a read the console answers 428 is asked
// again once the analyst has given a reason.
async function api(path, options = {}) {
  let resp;
  for (const ask of [false, true]) {
    const why = await purpose(ask);
    if (ask && !why) break;
    const headers = { ...(options.headers || {}), ...(why ? { "X-Accesswatch-Purpose": encodeURIComponent(why) } : {}) };
    try {
      resp = await fetch(path, { credentials: "same-origin", ...options, headers });
    } catch (err) {
      return new Response(JSON.stringify({ error: "the console did not answer: try again in a moment" }),
        { status: 503, headers: { "Content-Type": "application/json" } });
    }
    if (resp.status !== 428) break;
  }
  if (resp.status === 401) { window.location.assign("/login"); return new Promise(() => {}); }
  return resp;
}

// Why the analyst is looking: the case or alert being worked (state.working), else a
// reason asked for once per view (``ask``) and held in memory for the session.
const purposes = new Map();
async function purpose(ask) {
  if (state.working) return state.working;
  const view = window.location.hash.split("?")[0] || "#/alerts";
  if (purposes.has(view) || !ask) return purposes.get(view) || "";
  const input = h("input", { type: "text", maxlength: 500, required: true, id: "purpose-text",
    placeholder: "a case or incident reference, or why" });
  const dialog = h("dialog", { class: "purpose", "aria-labelledby": "purpose-title" },
    h("form", { method: "dialog" },
      h("h2", { id: "purpose-title" }, "Why are you looking?"),
      h("p", {}, "Opening personal data with no case or alert being worked is recorded with your reason."),
      h("label", { for: "purpose-text" }, "Reason"), input,
      h("menu", {}, h("button", { value: "cancel", formnovalidate: true }, "Cancel"),
        h("button", { value: "ok", class: "primary" }, "Continue"))));
  document.body.append(dialog);
  const text = await new Promise((resolve) => {
    dialog.addEventListener("close", () => resolve(dialog.returnValue === "ok" ? input.value.trim() : ""));
    dialog.showModal();
  });
  dialog.remove();
  if (text) purposes.set(view, text);
  return text;
}

// A download link cannot send a header: its reason goes as ?purpose=.
document.addEventListener("click", async (e) => {
  const a = e.target.closest && e.target.closest("a[download]");
  if (!a || !a.getAttribute("href").startsWith("/api/") || e.defaultPrevented) return;
  e.preventDefault();
  const why = await purpose(true);
  if (!why) return;
  const url = new URL(a.href, window.location.href);
  url.searchParams.set("purpose", why);
  window.location.assign(url.pathname + url.search);
});

async function post(path, body) {
  return api(path, { method: "POST", headers: { "Content-Type": "application/json",
    "X-CSRF-Token": state.me.csrf_token }, body: JSON.stringify(body) });
}

// GET some JSON: {ok, status, body}; an error body's words are in body.error.
async function getJSON(path) {
  const resp = await api(path);
  let body = null;
  try { body = await resp.json(); } catch (e) { body = null; }
  return { ok: resp.ok, status: resp.status, body: body || {} };
}

function errorText(r, what) { return (r.body && r.body.error) || `${what} failed (${r.status})`; }
function may(permission) { return state.me.permissions.includes(permission); }
function isLead() { return state.me.role === "lead"; }

function query(params) {
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries(params)) if (v !== "" && v !== null && v !== undefined) q.set(k, v);
  return q;
}

function fillSelect(select, values, label, current, allLabel) {
  const wanted = [["", allLabel], ...values.map((v) => (Array.isArray(v) ? v : [v, label ? label(v) : v]))];
  if (current && !wanted.some(([v]) => v === current)) wanted.push([current, label ? label(current) : current]);
  const have = [...select.options].map((o) => `${o.value}\u0001${o.textContent}`).join("\u0000");
  if (have === wanted.map(([v, t]) => `${v}\u0001${t}`).join("\u0000")) return;
  select.replaceChildren(...wanted.map(([v, t]) => h("option", { value: v }, t)));
  select.value = current || "";
}

function setState(el, value) { el.dataset.state = value; el.setAttribute("aria-busy", value === "loading" ? "true" : "false"); }

function link(href, text, attrs) { return h("a", { href, ...(attrs || {}) }, text); }
function memberLink(userId) { return userId ? link(`#/member/${encodeURIComponent(userId)}`, userId, { title: `${userId}: timeline` }) : ""; }
function subjectLink(subjectId, label) {
  return subjectId ? link(`#/subject/${encodeURIComponent(subjectId)}`, label || subjectId, { title: subjectId }) : "";
}
function caseLink(caseId) { return caseId ? link(`#/case/${encodeURIComponent(caseId)}`, caseId, { title: caseId }) : ""; }
function alertLink(alertId, text, attrs) {
  return link(`#/alert/${encodeURIComponent(alertId)}`, text || alertId, { title: alertId, ...(attrs || {}) });
}
function sev(severity) { return h("span", { class: `sev ${severity}` }, severity); }
function alertStatus(status) { return h("span", { class: `status ${status}` }, STATUS_LABEL[status] || status); }
function caseStatus(status, attrs) {
  return h("span", { class: `status case-${status}`, ...(attrs || {}) }, CASE_STATUS_LABEL[status] || status);
}
function justifiedTag(e) {
  if (e.justified) return h("span", { class: "tag ok" }, "justified");
  return h("span", { class: "tag bad", title: e.why || "not justified" }, e.why || "not justified");
}

// --- paged, server-sorted tables (alerts and cases) ----------------------------
class Listing {
  constructor(o) {
    Object.assign(this, o);
    this.table = $(o.tableId);
    this.body = this.table.querySelector("tbody");
    this.rows = new Map();    // id -> row as the server (or the live feed) last gave it
    this.els = new Map();     // id -> its <tr>
    this.order = [];          // ids in the order shown
    this.selection = new Set();
    this.filters = {};
    this.sort = o.sort; this.dir = o.dir;
    this.cursor = null; this.total = 0; this.held = 0; this.dropped = 0; this.ready = true;
    this.seq = 0; this.loaded = false; this.busy = false;
    this.columns = o.columns.filter((c) => !c.when || c.when());
    this.head();
    this.body.addEventListener("click", (e) => this.click(e));
    this.body.addEventListener("keydown", (e) => {
      const tr = e.target.closest("tr");
      if (e.key === "Enter" && tr && e.target === tr) this.open(tr.getAttribute(this.attr));
    });
    this.body.addEventListener("change", (e) => {
      const box = e.target.closest("input[data-select]");
      if (!box) return;
      const id = box.closest("tr").getAttribute(this.attr);
      if (box.checked) this.selection.add(id); else this.selection.delete(id);
      this.selectionChanged();
    });
    $(o.moreId).addEventListener("click", () => this.load(false));
  }

  head() {
    const tr = this.table.querySelector("thead tr");
    tr.replaceChildren(...this.columns.map((c) => {
      if (c.key === "select") {
        const all = h("input", { type: "checkbox", id: this.selectAllId, "aria-label": "select every row shown" });
        all.addEventListener("change", () => {
          for (const id of this.order) if (all.checked) this.selection.add(id); else this.selection.delete(id);
          for (const box of this.body.querySelectorAll("input[data-select]")) box.checked = all.checked;
          this.selectionChanged();
        });
        return h("th", { class: "c-select" }, all);
      }
      if (!c.sort) return h("th", { class: `c-${c.key} ${c.cls || ""}`.trim() }, c.label);
      const th = h("th", { class: `c-${c.key} ${c.cls || ""} sortable`.trim(), "data-sort": c.sort, tabindex: 0,
        title: `sort by ${c.label.toLowerCase()}` }, c.label);
      const go = () => {
        if (this.sort === c.sort) this.dir = this.dir === "desc" ? "asc" : "desc";
        else { this.sort = c.sort; this.dir = c.dir || "desc"; }
        this.sorted();
        this.load(true);
      };
      th.addEventListener("click", go);
      th.addEventListener("keydown", (e) => { if (e.key === "Enter" || e.key === " ") { e.preventDefault(); go(); } });
      return th;
    }));
    this.markSort();
  }

  markSort() {
    for (const th of this.table.querySelectorAll("th[data-sort]")) {
      if (th.dataset.sort === this.sort) th.setAttribute("aria-sort", this.dir === "asc" ? "ascending" : "descending");
      else th.removeAttribute("aria-sort");
    }
  }

  sorted() { this.markSort(); }

  params(withCursor) {
    return query({ ...this.filters, sort: this.sort, dir: this.dir,
      cursor: withCursor ? this.cursor : "", limit: PAGE });
  }

  // reset: page one (a new filter or sort); otherwise the next page, appended.
  async load(reset) {
    const seq = ++this.seq;
    this.busy = true;
    setState(this.table, "loading");
    const more = $(this.moreId);
    more.disabled = true;
    const r = await getJSON(`${this.endpoint}?${this.params(!reset)}`);
    if (seq !== this.seq) return;  // a newer request has been made: only it may draw
    this.busy = false;
    more.disabled = false;
    if (!r.ok) {
      $(this.countsId).textContent = errorText(r, "loading");
      setState(this.table, "error");
      return;
    }
    const b = r.body;
    const rows = b[this.key] || [];
    if (reset) {
      this.rows.clear(); this.els.clear(); this.order = [];
      this.selection.clear();
      this.body.replaceChildren();
      this.table.closest(".feed, .page-scroll").scrollTop = 0;
      this.reset();
    }
    const fresh = [];
    for (const row of rows) {
      const id = this.idOf(row);
      if (this.rows.has(id)) continue;  // already shown (a live insert): keep it where it is
      this.rows.set(id, row);
      this.order.push(id);
      const tr = this.rowEl(row);
      this.els.set(id, tr);
      fresh.push(tr);
    }
    this.body.append(...fresh);  // the new page only: the rows above are left alone
    this.cursor = b.next_cursor || null;
    this.total = b.total || 0;
    this.held = b.held ?? this.total;
    this.dropped = b.dropped || 0;
    this.ready = b.ready !== false;
    if (b.choices) this.choices(b.choices);
    more.hidden = !this.cursor;
    more.textContent = this.cursor ? `Load ${fmt(Math.min(PAGE, this.total - this.order.length) || PAGE)} more` : "Load more";
    $(this.emptyId).hidden = this.order.length > 0;
    this.loaded = true;
    this.counts();
    this.selectionChanged();
    this.loadedPage(reset);
    setState(this.table, "ready");
  }

  counts() {
    const n = this.order.length;
    const noun = this.noun ? ` ${this.noun}` : "";
    const parts = [n ? `1–${fmt(n)} of ${fmt(this.total)} matching${noun}` : `0 of ${fmt(this.total)} matching${noun}`];
    parts.push(...this.extraCounts());
    $(this.countsId).textContent = parts.join(" · ");
  }

  extraCounts() { return []; }
  reset() {}
  loadedPage() {}
  choices() {}

  click(e) {
    if (e.target.closest("a, input, button, label")) return;
    const tr = e.target.closest("tr[" + this.attr + "]");
    if (tr) this.open(tr.getAttribute(this.attr));
  }

  // Replace one row where it stands; nothing else is redrawn.
  replace(row, cls) {
    const id = this.idOf(row);
    this.rows.set(id, row);
    const old = this.els.get(id);
    const tr = this.rowEl(row);
    if (cls) tr.classList.add(cls);
    this.els.set(id, tr);
    if (old) old.replaceWith(tr);
    return tr;
  }

  selectionChanged() {
    if (!this.bulkId) return;
    const n = this.selection.size;
    $(this.bulkId).hidden = n === 0;
    $(`${this.bulkId}-count`).textContent = `${fmt(n)} selected`;
    const all = $(this.selectAllId);
    if (all) {
      all.checked = n > 0 && this.order.every((id) => this.selection.has(id));
      all.indeterminate = n > 0 && !all.checked;
    }
  }

  // One row's cells, each classed by its column (the stylesheet sizes and hides columns).
  cells(r, id) {
    return this.columns.map((c) => {
      if (c.key === "select") return this.checkbox(id);
      const td = c.cell(r);
      td.classList.add(`c-${c.key}`);
      return td;
    });
  }

  checkbox(id) {
    return h("td", { class: "c-select" }, h("input", { type: "checkbox", "data-select": "",
      "aria-label": `select ${id}`, checked: this.selection.has(id) }));
  }
}

// --- alerts ------------------------------------------------------------------
const ALERT_COLUMNS = [
  { key: "select", when: () => may("triage") },
  { key: "created", label: "Raised", sort: "created_at", cell: (r) => h("td", { class: "time" },
    whenShort(r.created_at), updatedLabel(r) ? h("div", { class: "sub", "data-testid": "updated",
      title: `updated ${when(r.updated_at)}` }, updatedLabel(r)) : null) },
  { key: "last", label: "Last access", sort: "last_seen", cell: (r) => h("td", { class: "time", title: `first ${when(r.first_seen)}` },
    whenShort(r.last_seen)) },
  { key: "severity", label: "Severity", sort: "severity", cell: (r) => h("td", {}, sev(r.severity)) },
  { key: "score", label: "Score", sort: "score", cls: "num", cell: (r) => h("td", { class: "num" }, num(r.score)) },
  { key: "rule", label: "Rule", sort: "rule_id", dir: "asc", cell: (r) => h("td", {},
    clip(r.rule_name || r.rule_id), r.rule_name ? clip(r.rule_id, "sub") : null) },
  { key: "alert", label: "Alert", sort: "title", dir: "asc", cell: (r) => h("td", { class: "alert" },
    clip(r.title), clip(r.reason, "sub")) },
  { key: "member", label: "Member", sort: "user_id", dir: "asc", cell: (r) => h("td", {}, clip(r.user_id)) },
  { key: "area", label: "Area", sort: "area", dir: "asc", cell: (r) => h("td", {}, clip(r.area)) },
  { key: "status", label: "Status", sort: "status", dir: "asc", cell: (r) => h("td", {}, alertStatus(r.status),
    r.assignee ? clip(`→ ${r.assignee}`, "sub") : null) },
  { key: "case", label: "Case", cell: (r) => h("td", { class: "case" }, r.case_id ? h("div", { class: "clip" }, caseLink(r.case_id)) : "") },
];

class AlertListing extends Listing {
  constructor() {
    super({ tableId: "feed", endpoint: "/api/alerts", key: "alerts", attr: "data-alert-id",
      idOf: (r) => r.alert_id, columns: ALERT_COLUMNS, sort: "score", dir: "desc",
      moreId: "more", countsId: "counts", emptyId: "empty", bulkId: "bulk", selectAllId: "select-all" });
    this.unseen = new Set();  // live alerts that match but were not placed: the banner's count
    this.pending = [];        // live rows that came while a page was loading
  }

  rowEl(r) {
    const tr = h("tr", { "data-alert-id": r.alert_id, tabindex: 0,
      class: r.alert_id === state.selected ? "selected" : null }, this.cells(r, r.alert_id));
    if (this.matches(r) === false) { tr.classList.add("stale"); tr.title = "changed since loaded: no longer matches the filters"; }
    return tr;
  }

  open(id) { select(id); }

  extraCounts() {
    const out = [`${fmt(this.held)} held`];
    if (this.dropped > 0) out.push(`${fmt(this.dropped)} older not held`);
    if (!this.ready) out.push("still reading the topic");
    return out;
  }

  reset() {
    this.unseen.clear();
    this.banner();
  }

  loadedPage(reset) {
    if (reset) exportLinks();
    const pending = this.pending;
    this.pending = [];
    for (const row of pending) this.live(row);
  }

  sorted() {
    super.sorted();
    const f = $("f-sort");
    const named = this.dir === "desc" && (this.sort === "score" ? "risk" : this.sort === "created_at" ? "newest" : null);
    f.options[2].hidden = Boolean(named);
    f.value = named || "column";
  }

  choices(c) {
    fillSelect($("f-severity"), SEVERITY_ORDER.filter((x) => (c.severity || []).includes(x)), null, this.filters.severity, "all");
    fillSelect($("f-rule"), (c.rule || []).map((r) => (typeof r === "string" ? [r, r] :
      [r.id, r.name && r.name !== r.id ? `${r.name} (${r.id})` : r.id])), null, this.filters.rule, "all");
    fillSelect($("f-area"), c.area || [], null, this.filters.area, "all");
    fillSelect($("f-status"), c.status && c.status.length ? c.status : Object.keys(STATUS_LABEL),
      (v) => STATUS_LABEL[v] || v, this.filters.status, "all");
    const people = (c.assignee || []).filter((u) => u !== "me" && u !== state.me.username);
    fillSelect($("f-assignee"), [["me", `me (${state.me.username})`], ...people.map((u) => [u, u])],
      null, this.filters.assignee, "anyone");
  }

  // Would the server list this row under the current filters?  true, false, or null
  // when the page cannot tell (a search may match a subject id the row does not carry).
  matches(r) {
    const f = this.filters;
    if (f.severity && r.severity !== f.severity) return false;
    if (f.rule && r.rule_id !== f.rule) return false;
    if (f.area && r.area !== f.area) return false;
    if (f.status && r.status !== f.status) return false;
    if (f.assignee && r.assignee !== (f.assignee === "me" ? state.me.username : f.assignee)) return false;
    if (f.from && r.last_seen && Date.parse(r.last_seen) < Date.parse(f.from)) return false;
    if (f.to && r.first_seen && Date.parse(r.first_seen) > Date.parse(f.to)) return false;
    if (f.case && r.case_id !== f.case) return false;
    if (f.q) {
      const q = f.q.toLowerCase();
      const hay = [r.alert_id, r.user_id, r.rule_id, r.rule_name, r.title, r.reason, r.case_id];
      if (!hay.some((x) => x && String(x).toLowerCase().includes(q))) return null;
    }
    return true;
  }

  compare(a, b) {
    const key = this.sort;
    let x = a[key], y = b[key];
    if (key === "severity") { x = SEV_RANK[x] || 0; y = SEV_RANK[y] || 0; }
    let c;
    if (typeof x === "number" && typeof y === "number") c = x - y;
    else c = String(x ?? "").localeCompare(String(y ?? ""));
    return this.dir === "asc" ? c : -c;
  }

  // A row from the live feed: new, a higher version, or newly triaged.
  live(row) {
    if (this.busy) { this.pending.push(row); return; }  // applied after the answer
    const held = this.rows.get(row.alert_id);
    if (held) {
      if (version(held) > version(row)) return;  // never an older version over a newer
      this.replace(row, "fresh");
      return;
    }
    if (!this.loaded) return;
    const m = this.matches(row);
    if (m === false) { this.refreshCounts(); return; }  // "held" may have grown
    const feed = this.table.closest(".feed");
    const last = this.order.length ? this.rows.get(this.order[this.order.length - 1]) : null;
    const inRange = !this.cursor || (last && this.compare(row, last) < 0);
    if (!inRange) { this.refreshCounts(); return; }  // it belongs to a page not loaded yet
    if (m === null || feed.scrollTop > 40 || this.selection.size > 0) {
      // Never move rows under the analyst: count it, and let them choose to see it.
      this.unseen.add(row.alert_id);
      this.banner();
      return;
    }
    // At the top of the list: place it where the server's order puts it.
    const at = this.order.findIndex((id) => this.compare(row, this.rows.get(id)) < 0);
    const tr = this.rowEl(row);
    tr.classList.add("fresh");
    this.rows.set(row.alert_id, row);
    this.els.set(row.alert_id, tr);
    if (at < 0) { this.order.push(row.alert_id); this.body.append(tr); }
    else { this.els.get(this.order[at]).before(tr); this.order.splice(at, 0, row.alert_id); }
    $("empty").hidden = true;
    this.counts();
    this.refreshCounts();
  }

  banner() {
    const b = $("new-banner");
    const n = this.unseen.size;
    b.hidden = n === 0;
    b.textContent = n ? `${plural(n, "new alert")} — show` : "";
  }
}

// The totals after live changes, asked of the server (it alone knows them), at most once a second.
AlertListing.prototype.refreshCounts = debounce(async function refreshCounts() {
  const seq = this.seq;
  const r = await getJSON(`${this.endpoint}?${query({ ...this.filters, sort: this.sort, dir: this.dir, limit: 1 })}`);
  if (!r.ok || seq !== this.seq) return;
  this.total = Math.max(r.body.total || 0, this.order.length);
  this.held = r.body.held ?? this.total;
  this.dropped = r.body.dropped || 0;
  this.counts();
}, 1000);

function exportLinks() {
  const q = query(state.alerts.filters);
  q.set("sort", state.alerts.sort); q.set("dir", state.alerts.dir);
  $("export-csv").href = `/api/alerts.csv?${q}`;
  $("export-ndjson").href = `/api/alerts.ndjson?${q}`;
}

function readAlertFilters() {
  const f = {};
  for (const el of document.querySelectorAll("#alert-filters [data-filter]")) {
    const v = el.type === "datetime-local" ? inputToIso(el.value) : el.value.trim();
    if (v) f[el.dataset.filter] = v;
  }
  if (state.alerts.filters.case) f.case = state.alerts.filters.case;
  return f;
}

// Load page one for the filters as they now read, unless that is what is shown (or
// coming): Enter in the search box, then its debounce, ask once.
function alertFiltersChanged(force) {
  const f = readAlertFilters();
  const list = state.alerts;
  if (!force && list.loaded && JSON.stringify(f) === JSON.stringify(list.filters)) return;
  list.filters = f;
  list.load(true);
}

function setupAlerts() {
  const list = new AlertListing();
  state.alerts = list;
  const changed = debounce(alertFiltersChanged, 250);
  $("alert-filters").addEventListener("submit", (e) => { e.preventDefault(); alertFiltersChanged(); });
  $("q").addEventListener("input", () => changed());
  for (const el of document.querySelectorAll("#alert-filters select[data-filter], #alert-filters input[type=datetime-local]")) {
    el.addEventListener("change", () => alertFiltersChanged());
  }
  $("f-sort").addEventListener("change", () => {
    const v = $("f-sort").value;
    if (v === "column") return;
    list.sort = v === "newest" ? "created_at" : "score";
    list.dir = "desc";
    list.sorted();
    list.load(true);
  });
  $("f-clear").addEventListener("click", () => {
    for (const el of document.querySelectorAll("#alert-filters [data-filter]")) el.value = "";
    delete state.alerts.filters.case;
    alertFiltersChanged(true);
  });
  $("new-banner").addEventListener("click", () => list.load(true));
  setupBulk();
  list.sorted();
}

// --- bulk triage -------------------------------------------------------------
function setupBulk() {
  const action = $("bulk-action");
  action.replaceChildren(...["acknowledge", "assign", "unassign", "justified", "misuse", "false_positive", "reopen"]
    .map((a) => h("option", { value: a }, ACTION_LABEL[a])));
  const who = $("bulk-assignee");
  who.replaceChildren(...state.me.assignees.map((u) => h("option", { value: u }, u)));
  who.value = state.me.username;
  action.addEventListener("change", () => { who.hidden = action.value !== "assign"; });
  $("bulk-clear").addEventListener("click", () => {
    const list = state.alerts;
    list.selection.clear();
    for (const box of list.body.querySelectorAll("input[data-select]")) box.checked = false;
    $("bulk-result").replaceChildren();
    list.selectionChanged();
  });
  $("bulk-go").addEventListener("click", async () => {
    const list = state.alerts;
    const ids = [...list.selection];
    const body = { action: action.value, note: $("bulk-note").value };
    if (action.value === "assign") body.assignee = who.value;
    const go = $("bulk-go");
    go.disabled = true;
    const out = $("bulk-result");
    out.replaceChildren(h("span", { class: "note" }, `applying to ${plural(ids.length, "alert")}…`));
    const failed = [];
    let done = 0;
    let problem = null;
    for (let i = 0; i < ids.length && !problem; i += BULK_MAX) {
      const chunk = ids.slice(i, i + BULK_MAX);
      const resp = await post("/api/alerts/bulk", { ...body, alert_ids: chunk });
      const r = await resp.json().catch(() => ({}));
      if (!resp.ok) { problem = r.error || `failed (${resp.status})`; break; }
      for (const item of r.results || []) {
        if (item.ok) {
          done += 1;
          list.selection.delete(item.alert_id);
          if (item.summary) state.alerts.live(item.summary);
        } else failed.push(item);
      }
    }
    go.disabled = false;
    for (const box of list.body.querySelectorAll("input[data-select]")) {
      box.checked = list.selection.has(box.closest("tr").dataset.alertId);
    }
    out.replaceChildren(
      h("span", { class: failed.length || problem ? "message" : "message ok", "data-testid": "bulk-summary" },
        problem ? `Nothing more was done: ${problem}. ` : "",
        `${ACTION_LABEL[body.action]}: ${fmt(done)} done`, failed.length ? `, ${fmt(failed.length)} failed` : ""),
      failed.length ? h("ul", { class: "failures", "data-testid": "bulk-failures" }, failed.map((f) =>
        h("li", { "data-alert-id": f.alert_id }, h("strong", {}, f.alert_id), `: ${f.error || "failed"}`))) : null);
    if (!failed.length && !problem) $("bulk-note").value = "";
    list.selectionChanged();
    $("bulk").hidden = false;  // keep the report in view until it is dismissed
  });
}

// --- cases list ----------------------------------------------------------------
const CASE_COLUMNS = [
  { key: "select", when: () => may("triage") },
  { key: "case", label: "Case", cell: (r) => h("td", {}, clip(r.case_id)) },
  { key: "member", label: "Member", sort: "user_id", dir: "asc", cell: (r) => h("td", {}, clip(r.user_id), r.area ? clip(r.area, "sub") : null) },
  { key: "alerts", label: "Alerts", sort: "alerts", cls: "num", cell: (r) => h("td", { class: "num" }, fmt(r.alerts)) },
  { key: "first", label: "First access", sort: "first_seen", cell: (r) => h("td", { class: "time" }, whenShort(r.first_seen)) },
  { key: "last", label: "Last access", sort: "last_seen", cell: (r) => h("td", { class: "time" }, whenShort(r.last_seen)) },
  { key: "risk", label: "Risk", sort: "risk", cls: "num", cell: (r) => h("td", { class: "num" }, num(r.risk)) },
  { key: "severity", label: "Severity", sort: "severity", cell: (r) => h("td", {}, sev(r.severity)) },
  { key: "rules", label: "Rules", cell: (r) => h("td", {}, clip((r.rule_ids || []).join(", "))) },
  { key: "status", label: "Status", sort: "status", dir: "asc", cell: (r) => h("td", {}, caseStatus(r.status),
    r.outcome ? clip(OUTCOME_LABEL[r.outcome] || r.outcome, "sub") : null,
    r.proposed_by ? clip(`proposed by ${r.proposed_by}`, "sub") : null) },
  { key: "owner", label: "Owner", sort: "owner", dir: "asc", cell: (r) => h("td", {}, clip(r.owner || "—")) },
  { key: "updated", label: "Updated", sort: "updated_at", cell: (r) => h("td", { class: "time" }, whenShort(r.updated_at)) },
];

class CaseListing extends Listing {
  constructor() {
    super({ tableId: "cases", endpoint: "/api/cases", key: "cases", attr: "data-case-id",
      idOf: (r) => r.case_id, columns: CASE_COLUMNS, sort: "last_seen", dir: "desc",
      moreId: "cases-more", countsId: "cases-counts", emptyId: "cases-empty", bulkId: "cbulk", noun: "cases",
      selectAllId: "cases-select-all" });
  }

  extraCounts() { return [`${fmt(this.held)} held`]; }

  rowEl(r) {
    return h("tr", { "data-case-id": r.case_id, tabindex: 0 }, this.cells(r, r.case_id));
  }

  open(id) { window.location.hash = `#/case/${encodeURIComponent(id)}`; }

  choices(c) {
    fillSelect($("c-status"), c.status && c.status.length ? c.status : Object.keys(CASE_STATUS_LABEL),
      (v) => CASE_STATUS_LABEL[v] || v, this.filters.status, "all");
    fillSelect($("c-severity"), SEVERITY_ORDER.filter((x) => (c.severity || SEVERITY_ORDER).includes(x)), null,
      this.filters.severity, "all");
    const people = (c.owner || state.me.assignees).filter((u) => u !== "me" && u !== state.me.username);
    fillSelect($("c-owner"), [["me", `me (${state.me.username})`], ...people.map((u) => [u, u])], null,
      this.filters.owner, "anyone");
  }

}

function setupCases() {
  const list = new CaseListing();
  state.cases = list;
  const changed = () => {
    const f = {};
    for (const el of document.querySelectorAll("#case-filters [data-filter]")) {
      const v = el.type === "datetime-local" ? inputToIso(el.value) : el.value.trim();
      if (v) f[el.dataset.filter] = v;
    }
    if (list.loaded && JSON.stringify(f) === JSON.stringify(list.filters)) return;
    list.filters = f;
    list.load(true);
  };
  $("case-filters").addEventListener("submit", (e) => { e.preventDefault(); changed(); });
  $("cq").addEventListener("input", debounce(changed, 250));
  for (const el of document.querySelectorAll("#case-filters select, #case-filters input[type=datetime-local]")) {
    el.addEventListener("change", changed);
  }
  $("c-clear").addEventListener("click", () => {
    for (const el of document.querySelectorAll("#case-filters [data-filter]")) el.value = "";
    changed();
  });
  const action = $("cbulk-action");
  action.replaceChildren(...["assign", "unassign", "investigate", "refer", "note"]
    .map((a) => h("option", { value: a }, CASE_ACTION_LABEL[a])));
  const owner = $("cbulk-owner");
  owner.replaceChildren(...state.me.assignees.map((u) => h("option", { value: u }, u)));
  owner.value = state.me.username;
  owner.hidden = action.value !== "assign";
  action.addEventListener("change", () => { owner.hidden = action.value !== "assign"; });
  $("cbulk-clear").addEventListener("click", () => {
    list.selection.clear();
    for (const box of list.body.querySelectorAll("input[data-select]")) box.checked = false;
    $("cbulk-result").replaceChildren();
    list.selectionChanged();
  });
  $("cbulk-go").addEventListener("click", async () => {
    const ids = [...list.selection];
    const body = { action: action.value, note: $("cbulk-note").value, case_ids: ids };
    if (action.value === "assign") body.owner = owner.value;
    const resp = await post("/api/cases/bulk", body);
    const r = await resp.json().catch(() => ({}));
    const out = $("cbulk-result");
    if (!resp.ok) { out.replaceChildren(h("span", { class: "message" }, r.error || `failed (${resp.status})`)); return; }
    const failed = (r.results || []).filter((x) => !x.ok);
    out.replaceChildren(h("span", { class: failed.length ? "message" : "message ok" },
      `${CASE_ACTION_LABEL[body.action]}: ${fmt((r.results || []).length - failed.length)} done`,
      failed.length ? `, ${fmt(failed.length)} failed` : ""),
    failed.length ? h("ul", { class: "failures" }, failed.map((f) => h("li", {}, h("strong", {}, f.case_id), `: ${f.error || "failed"}`))) : null);
    await list.load(true);
    $("cbulk").hidden = false;
  });
}

// --- live updates ------------------------------------------------------------
function connect() {
  const live = $("live");
  const source = new EventSource("/api/stream");
  state.source = source;
  source.addEventListener("hello", () => {
    live.textContent = "live"; live.className = "live on";
    // After a reconnect: whatever arrived while we were away.
    if (state.helloSeen && state.alerts.loaded) state.alerts.load(true);
    state.helloSeen = true;
  });
  source.addEventListener("alert", (e) => {
    const row = JSON.parse(e.data);
    state.alerts.live(row);
    if (state.selected === row.alert_id) loadDetail(row.alert_id);
  });
  source.addEventListener("case", (e) => {
    const row = JSON.parse(e.data);
    if (state.cases.rows.has(row.case_id)) state.cases.replace(row, "fresh");
  });
  source.addEventListener("error", async () => {
    live.textContent = "reconnecting…"; live.className = "live off";
    if (source.readyState === EventSource.CLOSED) {
      await api("/api/me");  // signed out: to the sign-in page; otherwise try again
      setTimeout(connect, 2000);
    }
  });
}

// --- routes ------------------------------------------------------------------
// #/alerts (default), #/alert/{id} (detail over the alerts), #/cases, #/case/{id},
// #/member/{user_id}, #/subject/{id}, #/watchlist; a route may carry ?from=&to=…
function parseHash() {
  const raw = window.location.hash.replace(/^#/, "") || "/alerts";
  const [path, qs] = raw.split("?");
  const parts = path.split("/").filter(Boolean).map((p) => { try { return decodeURIComponent(p); } catch (e) { return p; } });
  return { parts, params: new URLSearchParams(qs || "") };
}

function replaceHash(hash) {
  if (window.location.hash !== hash) history.replaceState(null, "", hash);
  route();
}

function show(view) {
  state.view = view;
  for (const sec of document.querySelectorAll("section.view")) sec.hidden = sec.dataset.view !== view;
  const nav = { alerts: "alerts", cases: "cases", case: "cases", watchlist: "watchlist",
    consultations: "consultations" }[view];
  for (const a of document.querySelectorAll("[data-nav]")) {
    if (a.dataset.nav === nav) a.setAttribute("aria-current", "page"); else a.removeAttribute("aria-current");
  }
}

function route() {
  const { parts, params } = parseHash();
  const [page, id] = parts;
  // The alert or case being worked; kept while following its member or subjects.
  if (page === "alert" || page === "case") state.working = id || null;
  else if (page !== "member" && page !== "subject") state.working = null;
  const previous = state.selected;
  state.selected = page === "alert" && id ? id : null;
  if (page === "alert" || page === "alerts" || !page) {
    show("alerts");
    if (page === "alerts" && [...params.keys()].length) applyAlertParams(params);
    else if (!state.alerts.loaded && state.alerts.seq === 0) state.alerts.load(true);
    markSelected(previous);
    if (state.selected) loadDetail(state.selected);
    else $("detail").hidden = true;
    return;
  }
  $("detail").hidden = true;
  if (page === "cases") {
    show("cases");
    // Others act on cases too: page one is asked again on each visit (more pages are kept).
    if (state.cases.order.length <= PAGE && !state.cases.busy) state.cases.load(true);
  } else if (page === "case" && id) { show("case"); loadCase(id); }
  else if (page === "member" && id) { show("member"); loadTimeline(id, params); }
  else if (page === "subject" && id) { show("subject"); loadSubject(id, params); }
  else if (page === "watchlist") { show("watchlist"); loadWatchlist(params); }
  else if (page === "consultations") { show("consultations"); loadConsultations(params); }
  else { history.replaceState(null, "", "#/alerts"); route(); }
}

// #/alerts?q=…&severity=… (a link from elsewhere): set the filters, then load.
function applyAlertParams(params) {
  for (const el of document.querySelectorAll("#alert-filters [data-filter]")) {
    const v = params.get(el.dataset.filter) || "";
    el.value = el.type === "datetime-local" ? isoToInput(v) : v;
  }
  const f = readAlertFilters();
  if (params.get("case")) f.case = params.get("case"); else delete f.case;
  state.alerts.filters = f;
  history.replaceState(null, "", "#/alerts");
  state.alerts.load(true);
}

function markSelected(previous) {
  if (previous && state.alerts.els.has(previous)) state.alerts.els.get(previous).classList.remove("selected");
  if (state.selected && state.alerts.els.has(state.selected)) state.alerts.els.get(state.selected).classList.add("selected");
}

// --- alert detail --------------------------------------------------------------
function select(alertId) {
  if (window.location.hash !== `#/alert/${alertId}`) window.location.hash = `#/alert/${alertId}`;
  else route();
}

let detailSeq = 0;
async function loadDetail(alertId) {
  const seq = ++detailSeq;  // only the latest request may draw
  const r = await getJSON(`/api/alerts/${encodeURIComponent(alertId)}`);
  if (seq !== detailSeq || state.selected !== alertId) return;
  const pane = $("detail");
  pane.hidden = false;
  if (!r.ok) {
    pane.replaceChildren(h("button", { class: "close ghost", type: "button", "aria-label": "close",
      onclick: () => { window.location.hash = "#/alerts"; } }, "✕"),
    h("p", { class: "empty" }, r.status === 404 ? "This alert is not held by the console." : errorText(r, "loading the alert")));
    return;
  }
  const body = r.body;
  state.detail = body;
  renderDetail(body);
  // The pane's answer is the freshest row: the table shows it too.
  if (state.alerts.rows.has(alertId)) {
    const held = state.alerts.rows.get(alertId);
    const row = { ...held, ...body.summary };
    if (version(row) >= version(held) && (row.status !== held.status || row.assignee !== held.assignee ||
        version(row) !== version(held))) state.alerts.replace(row);
  }
}

function renderDetail(d) {
  const a = d.alert, m = d.member;
  const caseId = d.case_id || d.summary.case_id;
  const pane = $("detail");
  // Someone else's decision redraws the pane: keep the note being typed.
  const typing = $("triage-note");
  const draft = pane.dataset.alertId === a.alert_id && typing ? typing.value : "";
  pane.dataset.alertId = a.alert_id;
  pane.replaceChildren(...nodes(
    h("button", { class: "close ghost", type: "button", "aria-label": "close",
      onclick: () => { window.location.hash = "#/alerts"; } }, "✕"),
    sev(a.severity), " ",
    h("span", { class: `status ${d.summary.status}`, "data-testid": "triage-status" },
      STATUS_LABEL[d.summary.status] || d.summary.status),
    h("h2", {}, a.title),
    h("dl", { class: "facts" },
      h("dt", {}, "Alert"), h("dd", {}, a.alert_id),
      h("dt", {}, "Version"), h("dd", { "data-testid": "version" },
        updatedLabel(d.summary) ? [updatedLabel(d.summary), d.summary.updated_at ? ` · ${when(d.summary.updated_at)}` : ""] :
          "v1, as first published",
        h("span", { class: "note" }, ` · first published ${when(a.created_at)}`)),
      h("dt", {}, "Rule · score"), h("dd", {}, `${d.summary.rule_name ? `${d.summary.rule_name} · ` : ""}${a.rule_id} · ${num(a.score)} / 100`),
      h("dt", {}, "Member"), h("dd", {}, memberLink(a.user_id),
        m ? h("span", { class: "note" }, ` · ${m.role} · ${m.unit} · ${m.area}` +
          (m.status !== "active" ? ` · ${m.status}` : "")) : h("span", { class: "note" }, " · not in the staff directory"),
        " · ", link(`#/member/${encodeURIComponent(a.user_id)}`, "timeline", { "data-testid": "member-timeline" })),
      h("dt", {}, "Seen"), h("dd", {}, `${when(a.first_seen)} → ${when(a.last_seen)}`,
        h("span", { class: "note" }, ` · ${a.count} event${a.count === 1 ? "" : "s"}`)),
      caseId ? [h("dt", {}, "Case"), h("dd", { "data-testid": "alert-case" }, caseLink(caseId))] : null,
      (a.subject_ids || []).length ? [h("dt", {}, "Subjects"), h("dd", { class: "subjects" },
        a.subject_ids.map((sid, i) => [i ? ", " : "", subjectLink(sid)]))] : null,
    ),
    h("h3", {}, "Why it fired"),
    h("ul", { class: "reasons", "data-testid": "reasons" }, a.reasons.map((r) => h("li", {}, r))),
    h("h3", {}, "Triage"),
    triagePanel(d),
    h("h3", {}, "Evidence"),
    evidence(d),
    a.model ? [h("h3", {}, "Model: top features against baseline"), modelChart(a.model)] : null,
    h("h3", {}, "This member's alerts and risk over time"),
    memberHistory(d),
  ));
  const note = $("triage-note");
  if (note && draft) note.value = draft;
}

function evidence(d) {
  const items = [...d.evidence].sort((x, y) => x.ts.localeCompare(y.ts)).map((e) =>
    h("li", { "data-event-id": e.event_id },
      h("div", { class: "when" }, when(e.ts), " · ", e.system, " · terminal ", e.terminal_id),
      h("div", {}, h("span", { class: "tag" }, e.action), " ",
        h("span", { class: "what" }, e.subject_id ? [`${e.subject_type || "record"} `, subjectLink(e.subject_id)] :
          `${e.result_count ?? "?"} results, none opened`), " · ",
        e.case_ref ? `case ${e.case_ref}` : h("span", { class: "nocase" }, "no case reference given")),
    ));
  const missing = d.evidence_missing.length ? h("p", { class: "note" },
    `${d.evidence_missing.length} evidence event(s) are not in the console's index of recent events: `,
    d.evidence_missing.join(", ")) : null;
  return [h("ol", { class: "timeline", "data-testid": "evidence" }, items), missing];
}

function modelChart(model) {
  const feats = model.top_features || [];
  const rowH = 34, labelW = 190, barW = 280, width = labelW + barW + 90;
  const svg = s("svg", { width, height: feats.length * rowH + 6, role: "img",
    "aria-label": "top model features against baseline", "data-testid": "model-chart" });
  feats.forEach((f, i) => {
    const y = i * rowH + 4, base = f.baseline ?? 0;
    const top = Math.max(Math.abs(f.value), Math.abs(base), 1e-9);
    svg.append(
      s("text", { x: 0, y: y + 12 }, f.name),
      s("rect", { class: "value", x: labelW, y, height: 11, width: Math.max(1, barW * Math.abs(f.value) / top) }),
      s("text", { x: labelW + barW + 6, y: y + 10 }, num(f.value)),
      s("rect", { class: "baseline", x: labelW, y: y + 14, height: 11,
        width: f.baseline === null || f.baseline === undefined ? 0 : Math.max(1, barW * Math.abs(base) / top) }),
      s("text", { class: "muted", x: labelW + barW + 6, y: y + 24 },
        f.baseline === null || f.baseline === undefined ? "no baseline" : num(base)),
    );
  });
  return [
    h("p", { class: "note" }, `${model.name || "model"} ${model.version || ""} · anomaly score ${num(model.anomaly_score ?? 0)}`),
    svg,
    h("div", { class: "legend" }, h("span", { class: "k value" }), "this member now",
      h("span", { class: "k baseline" }), "baseline"),
  ];
}

// Each point is one of the member's alerts, at when its accesses happened (last_seen,
// event time) when the server gives it, else when it was raised.
function memberHistory(d) {
  const points = d.history;
  const at = (p) => p.last_seen || p.created_at;
  const width = 460, height = 90, pad = 22;
  const svg = s("svg", { width, height, role: "img", "aria-label": "alert score over time",
    "data-testid": "risk-chart" });
  svg.append(s("line", { class: "axis", x1: pad, y1: height - pad, x2: width - 4, y2: height - pad }),
    s("line", { class: "axis", x1: pad, y1: 8, x2: width - 4, y2: 8 }),
    s("text", { class: "muted", x: 0, y: 11 }, "100"), s("text", { class: "muted", x: 10, y: height - pad + 3 }, "0"));
  const sortedPoints = [...points].sort((p, q) => at(p).localeCompare(at(q)));
  if (sortedPoints.length) {
    const t = sortedPoints.map((p) => Date.parse(at(p)));
    const t0 = Math.min(...t), t1 = Math.max(...t), span = Math.max(t1 - t0, 1);
    const xy = sortedPoints.map((p, i) => [pad + 6 + (sortedPoints.length === 1 ? (width - pad) / 2 : (width - pad - 16) * (t[i] - t0) / span),
      (height - pad) - (height - pad - 8) * p.score / 100]);
    svg.append(s("polyline", { class: "line", points: xy.map(([x, y]) => `${x.toFixed(1)},${y.toFixed(1)}`).join(" ") }));
    xy.forEach(([x, y], i) => svg.append(s("circle", { cx: x, cy: y, r: 4,
      class: sortedPoints[i].alert_id === d.alert.alert_id ? "dot current" : "dot" },
      s("title", {}, `${when(at(sortedPoints[i]))} ${sortedPoints[i].rule_id} ${num(sortedPoints[i].score)}`))));
    svg.append(s("text", { class: "muted", x: pad, y: height - 6 }, when(at(sortedPoints[0]))),
      s("text", { class: "muted", x: width - 110, y: height - 6 }, when(at(sortedPoints[sortedPoints.length - 1]))));
  }
  const list = h("ul", { class: "history" }, [...points].reverse().slice(0, 8).map((p) =>
    h("li", { class: p.alert_id === d.alert.alert_id ? "current" : null },
      when(p.created_at), " · ", sev(p.severity), " ",
      p.alert_id === d.alert.alert_id ? p.title :
        h("button", { class: "link", type: "button", onclick: () => select(p.alert_id) }, p.title),
      " · ", STATUS_LABEL[p.status] || p.status)));
  return [svg, h("p", { class: "note" }, `${points.length} alert(s) held for ${d.alert.user_id}; each point is an alert's score (0–100) at its last access, this one in orange. `,
    link(`#/member/${encodeURIComponent(d.alert.user_id)}`, "Every access on the member's timeline →")), list];
}

function triagePanel(d) {
  const t = d.triage;
  const log = h("ol", { class: "triage-log", "data-testid": "triage-log" },
    (t ? t.history : []).map((step) => h("li", {},
      h("strong", {}, ACTION_LABEL[step.action] || step.action),
      step.assignee ? ` → ${step.assignee}` : "", ` by ${step.by}, ${when(step.at)}`,
      step.note ? h("div", { class: "note" }, step.note) : null)));
  const status = d.summary.status;
  const summary = h("p", {}, "Status: ", alertStatus(status),
    t && t.assignee ? ` · assigned to ${t.assignee}` : "", t ? "" : " · no decision yet");
  if (!may("triage")) return [summary, log, h("p", { class: "note" }, "Your role may view, not triage.")];
  const note = h("textarea", { id: "triage-note", placeholder: "Note: what you checked and why (required for an outcome)", maxlength: 2000 });
  const assignee = h("select", { id: "triage-assignee", "aria-label": "assign to" }, state.me.assignees.map((u) =>
    h("option", { value: u, selected: u === (t && t.assignee ? t.assignee : state.me.username) }, u)));
  const message = h("div", { role: "status" });
  const act = async (action) => {
    const body = { action, note: note.value, version: t ? t.version : 0 };
    if (action === "assign") body.assignee = assignee.value;
    for (const b of form.querySelectorAll("button")) b.disabled = true;
    const resp = await post(`/api/alerts/${encodeURIComponent(d.alert.alert_id)}/triage`, body);
    const out = await resp.json().catch(() => ({}));
    if (!resp.ok) {
      message.replaceChildren(h("div", { class: "message" }, out.error || `failed (${resp.status})`));
      for (const b of form.querySelectorAll("button")) b.disabled = false;
      if (resp.status === 409) loadDetail(d.alert.alert_id);
      return;
    }
    $("triage-note").value = "";
    if (out.summary && state.alerts.rows.has(out.summary.alert_id)) {
      state.alerts.replace({ ...state.alerts.rows.get(out.summary.alert_id), ...out.summary });
    }
    await loadDetail(d.alert.alert_id);
  };
  const button = (action, cls) => h("button", { type: "button", class: cls, "data-action": action,
    onclick: () => act(action) }, ACTION_LABEL[action]);
  const decided = OUTCOME_ACTIONS.includes(status);
  const form = h("div", { class: "triage-form" },
    note,
    h("div", { class: "row" }, button("acknowledge"), assignee, button("assign"),
      t && t.assignee ? button("unassign") : null),
    h("div", { class: "row" }, button("justified", "outcome justified"), button("misuse", "outcome misuse"),
      button("false_positive", "outcome false_positive"), decided ? button("reopen") : null),
    message);
  return [summary, log, form];
}

// --- a case --------------------------------------------------------------------
let caseSeq = 0;
async function loadCase(caseId) {
  const seq = ++caseSeq;
  const root = $("case");
  setState(root, "loading");
  const r = await getJSON(`/api/cases/${encodeURIComponent(caseId)}`);
  if (seq !== caseSeq) return;
  if (!r.ok) {
    root.replaceChildren(crumbs("cases"), h("p", { class: "empty" },
      r.status === 404 ? "No such case is held by the console." : errorText(r, "loading the case")));
    setState(root, "ready");
    return;
  }
  renderCase(r.body);
  setState(root, "ready");
}

function crumbs(to) {
  const back = { cases: ["#/cases", "← Cases"], alerts: ["#/alerts", "← Alerts"], watchlist: ["#/watchlist", "← Watch-list"] }[to];
  return h("p", { class: "crumbs" }, link(back[0], back[1]));
}

function fact(term, ...value) { return [h("dt", {}, term), h("dd", {}, ...value)]; }

function renderCase(b) {
  const c = b.case, rec = b.record, m = b.member;
  const root = $("case");
  const typing = $("case-note");
  const draft = root.dataset.caseId === c.case_id && typing ? typing.value : "";
  root.dataset.caseId = c.case_id;
  const window_ = query({ from: c.first_seen, to: c.last_seen });
  root.replaceChildren(...nodes(
    crumbs("cases"),
    h("div", { class: "page-head" },
      h("h2", {}, "Case ", h("span", { class: "mono" }, c.case_id)),
      caseStatus(c.status, { "data-testid": "case-status" }),
      c.outcome ? h("span", { class: `status ${c.outcome}`, "data-testid": "case-outcome" }, OUTCOME_LABEL[c.outcome] || c.outcome) : null,
      h("span", { class: "spacer" }),
      link(`#/member/${encodeURIComponent(c.user_id)}?${window_}`, "Member's timeline for this case", { id: "case-timeline", class: "button" }),
      link(`/api/cases/${encodeURIComponent(c.case_id)}/evidence.zip`, "Evidence pack (ZIP)",
        { id: "evidence-pack", class: "button", download: `${c.case_id}.zip` })),
    h("dl", { class: "facts" },
      fact("Member", memberLink(c.user_id), m ? h("span", { class: "note" }, ` · ${m.role} · ${m.unit} · ${m.area}` +
        (m.status !== "active" ? ` · ${m.status}` : "")) : h("span", { class: "note" }, " · not in the staff directory")),
      fact("Accesses", `${when(c.first_seen)} → ${when(c.last_seen)}`, h("span", { class: "note" }, " (event time)")),
      fact("Risk", h("span", { "data-testid": "case-risk" }, num(c.risk)), " / 100 · ", sev(c.severity)),
      fact("Alerts", fmt(c.alerts), " · ", (c.rule_ids || []).join(", ")),
      fact("Owner", h("span", { "data-testid": "case-owner" }, c.owner || "nobody")),
      rec && rec.proposed ? fact("Proposed", h("span", { "data-testid": "case-proposed" },
        `${OUTCOME_LABEL[rec.proposed.outcome] || rec.proposed.outcome} by ${rec.proposed.by}, ${when(rec.proposed.at)}`),
      rec.proposed.note ? h("div", { class: "note" }, rec.proposed.note) : null) : null,
      rec && rec.approved_by ? fact("Approved by", h("span", { "data-testid": "case-approved-by" }, rec.approved_by)) : null,
      fact("Updated", c.updated_at ? when(c.updated_at) : "never: no decision yet"),
    ),
    h("h3", {}, "Actions"),
    caseActions(c, rec),
    h("h3", {}, "Notes"),
    rec && rec.notes && rec.notes.length ? h("ol", { class: "triage-log", "data-testid": "case-notes" },
      rec.notes.map((n) => h("li", {}, h("strong", {}, n.by), `, ${when(n.at)}`, h("div", { class: "note-text" }, n.text))))
      : h("p", { class: "note", "data-testid": "case-notes" }, "No notes yet."),
    h("h3", {}, "History"),
    h("ol", { class: "triage-log", "data-testid": "case-history" }, (rec ? rec.history : []).map((step) =>
      h("li", {}, h("strong", {}, CASE_ACTION_LABEL[step.action] || step.action),
        step.owner ? ` → ${step.owner}` : "", step.outcome ? ` (${OUTCOME_LABEL[step.outcome] || step.outcome})` : "",
        ` by ${step.by}, ${when(step.at)}`, step.note ? h("div", { class: "note" }, step.note) : null))),
    h("h3", {}, `Alerts in this case (${fmt((b.alerts || []).length)})`),
    alertTable(b.alerts || [], "case-alerts"),
  ));
  const note = $("case-note");
  if (note && draft) note.value = draft;
}

function caseActions(c, rec) {
  if (!may("triage")) return h("p", { class: "note" }, "Your role may view, not act on cases.");
  const st = c.status;
  const message = h("div", { role: "status", "data-testid": "case-message" });
  const note = h("textarea", { id: "case-note", maxlength: 2000,
    placeholder: "Note: what you checked and why (required to close, reject or reopen)" });
  const owner = h("select", { id: "case-owner", "aria-label": "owner" }, state.me.assignees.map((u) =>
    h("option", { value: u, selected: u === (c.owner || state.me.username) }, u)));
  const outcome = h("select", { id: "case-outcome", "aria-label": "outcome" },
    Object.entries(OUTCOME_LABEL).map(([v, t]) => h("option", { value: v }, t)));
  const act = async (action) => {
    const body = { action, note: note.value, version: c.version || 0 };
    if (action === "assign") body.owner = owner.value;
    if (action === "close") body.outcome = outcome.value;
    for (const b of form.querySelectorAll("button")) b.disabled = true;
    const resp = await post(`/api/cases/${encodeURIComponent(c.case_id)}`, body);
    const out = await resp.json().catch(() => ({}));
    if (!resp.ok) {
      message.replaceChildren(h("div", { class: "message" }, out.error || `failed (${resp.status})`));
      for (const b of form.querySelectorAll("button")) b.disabled = false;
      if (resp.status === 409) loadCase(c.case_id);
      return;
    }
    note.value = "";
    if (state.cases.rows.has(c.case_id) && out.case) state.cases.replace(out.case);
    await loadCase(c.case_id);
  };
  const button = (action, cls, label) => h("button", { type: "button", class: cls || null, "data-case-action": action,
    onclick: () => act(action) }, label || CASE_ACTION_LABEL[action]);
  // What each status allows (console/cases.py decides; these are the buttons that can work).
  const open = ["new", "investigating", "referred"].includes(st);
  const proposer = rec && rec.proposed ? rec.proposed.by : c.proposed_by;
  const mine = proposer === state.me.username;
  const mayApprove = st === "awaiting_approval" && isLead() && !mine;
  const form = h("div", { class: "triage-form" },
    note,
    st !== "closed" ? h("div", { class: "row" }, owner, button("assign"), c.owner ? button("unassign") : null,
      ["new", "referred"].includes(st) ? button("investigate") : null,
      ["new", "investigating"].includes(st) ? button("refer") : null) : null,
    h("div", { class: "row" }, button("note"),
      open ? [outcome, button("close", "outcome", "Close with outcome")] : null,
      st === "closed" ? button("reopen") : null),
    st === "awaiting_approval" ? h("div", { class: "row approval", "data-testid": "case-approval" },
      h("span", { class: "note" }, `${proposer || "Someone"} proposed closing as ${OUTCOME_LABEL[rec && rec.proposed ? rec.proposed.outcome : "misuse"] || "misuse"}: `,
        mayApprove ? "approve or reject it (a note is needed to reject)." : mine
          ? "a different lead must approve it; you may withdraw it."
          : "a lead other than the proposer approves or rejects it."),
      mayApprove ? [button("approve", "outcome justified", "Approve"), button("reject", "outcome misuse", "Reject")] : null,
      mine && !mayApprove ? button("reject", null, "Withdraw proposal") : null) : null,
    open ? h("p", { class: "note" }, "Closing as misuse asks a lead (not you) to approve it; other outcomes close at once.") : null,
    message);
  return form;
}

// A header row; each column given as "Label" or ["Label", "w-…" width class].
function head(cols) {
  return h("thead", {}, h("tr", {}, cols.map((c) => (Array.isArray(c) ? h("th", { class: c[1] }, c[0]) : h("th", {}, c)))));
}

function alertTable(rows, testid) {
  if (!rows.length) return h("p", { class: "note", "data-testid": testid }, "None.");
  return h("table", { class: "grid compact", "data-testid": testid },
    head([["Raised", "w-time"], ["Last access", "w-time"], ["Severity", "w-sev"], ["Score", "w-num num"], ["Rule", "w-rule"],
      "Alert", ["Status", "w-status"]]),
    h("tbody", {}, rows.map((r) => h("tr", { "data-alert-id": r.alert_id },
      h("td", { class: "time" }, whenShort(r.created_at)),
      h("td", { class: "time" }, whenShort(r.last_seen)),
      h("td", {}, sev(r.severity)),
      h("td", { class: "num" }, num(r.score)),
      h("td", {}, clip(r.rule_name || r.rule_id)),
      h("td", { class: "alert" }, h("div", { class: "clip" }, alertLink(r.alert_id, r.title)), r.reason ? clip(r.reason, "sub") : null),
      h("td", {}, alertStatus(r.status || "new"))))));
}

// --- a member's timeline -------------------------------------------------------
let timelineSeq = 0;
async function loadTimeline(userId, params) {
  const seq = ++timelineSeq;
  const root = $("timeline");
  setState(root, "loading");
  const q = query({ from: params.get("from"), to: params.get("to"), system: params.get("system"),
    action: params.get("action"), subject_type: params.get("subject_type") });
  const r = await getJSON(`/api/members/${encodeURIComponent(userId)}/timeline?${q}`);
  if (seq !== timelineSeq) return;
  if (!r.ok) {
    root.replaceChildren(crumbs("alerts"), h("p", { class: "empty" }, errorText(r, "loading the timeline")));
    setState(root, "ready");
    return;
  }
  renderTimeline(userId, r.body, params);
  setState(root, "ready");
}

function renderTimeline(userId, b, params) {
  const root = $("timeline");
  const m = b.member;
  const events = [...(b.events || [])].sort((x, y) => y.ts.localeCompare(x.ts));  // newest first
  const base = `#/member/${encodeURIComponent(userId)}`;
  const navigate = (changes) => {
    const next = new URLSearchParams(params);
    for (const [k, v] of Object.entries(changes)) { if (v) next.set(k, v); else next.delete(k); }
    replaceHash(`${base}${[...next.keys()].length ? `?${next}` : ""}`);
  };
  const choice = (id, key, label) => {
    const sel = h("select", { id, "aria-label": label });
    fillSelect(sel, (b.choices && b.choices[key]) || [], null, params.get(key) || "", "all");
    sel.addEventListener("change", () => navigate({ [key]: sel.value }));
    return h("label", {}, label, " ", sel);
  };
  const from = h("input", { id: "t-from", type: "datetime-local", value: isoToInput(b.from) });
  const to = h("input", { id: "t-to", type: "datetime-local", value: isoToInput(b.to) });
  from.addEventListener("change", () => navigate({ from: inputToIso(from.value) }));
  to.addEventListener("change", () => navigate({ to: inputToIso(to.value) }));
  const list = h("ol", { class: "tl", "data-testid": "timeline-events" });
  const more = h("button", { id: "t-more", type: "button" });
  let shown = 0, lastDay = null;
  const drawMore = () => {
    const chunk = events.slice(shown, shown + TIMELINE_CHUNK);
    const items = [];
    for (const e of chunk) {
      const d = day(e.ts);
      if (d !== lastDay) { items.push(h("li", { class: "day" }, d)); lastDay = d; }
      items.push(timelineItem(e));
    }
    list.append(...items);
    shown += chunk.length;
    more.hidden = shown >= events.length;
    more.textContent = `Show ${fmt(Math.min(TIMELINE_CHUNK, events.length - shown))} more (${fmt(shown)} of ${fmt(events.length)} shown)`;
  };
  more.addEventListener("click", drawMore);
  drawMore();
  const total = b.total ?? events.length;
  root.replaceChildren(...nodes(
    crumbs("alerts"),
    h("div", { class: "page-head" },
      h("h2", {}, "Member ", h("span", { class: "mono", "data-testid": "member-id" }, userId)),
      m ? h("span", { class: "note" }, `${m.role} · ${m.unit} · ${m.area}${m.status !== "active" ? ` · ${m.status}` : ""}`)
        : h("span", { class: "note" }, "not in the staff directory"),
      h("span", { class: "spacer" }),
      link(`#/alerts?q=${encodeURIComponent(userId)}`, "This member's alerts", { class: "button" })),
    h("form", { class: "filters inline", "aria-label": "timeline filters", onsubmit: (e) => e.preventDefault() },
      h("label", {}, "From ", from), h("label", {}, "To ", to),
      choice("t-system", "system", "System"), choice("t-action", "action", "Action"),
      choice("t-subject-type", "subject_type", "Subject type"),
      h("button", { type: "button", class: "ghost", onclick: () => replaceHash(base) }, "Last 14 days")),
    h("p", { class: "counts", "data-testid": "timeline-counts" },
      b.truncated ? `Showing ${fmt(events.length)} of ${fmt(total)} accesses in this window (the newest): narrow the window or filter to see the rest`
        : `${plural(total, "access", "accesses")} in this window`,
      ` · ${when(b.from)} → ${when(b.to)} (London) · ${plural((b.alerts || []).length, "alert")} · ${plural((b.cases || []).length, "case")}`,
      historyNote(b.from)),
    riskChart(b),
    h("div", { class: "split" },
      h("div", { class: "main-col" }, h("h3", {}, "Accesses, newest first"), events.length ? list :
        h("p", { class: "empty" }, "No accesses in this window."), more),
      h("div", { class: "side-col" },
        h("h3", {}, "Alerts"),
        h("ul", { class: "marks", "data-testid": "member-alerts" }, (b.alerts || []).map((a) =>
          h("li", { "data-alert-id": a.alert_id }, sev(a.severity), " ", alertLink(a.alert_id, a.title || a.rule_id),
            h("div", { class: "sub" }, `${whenShort(a.first_seen)} → ${whenShort(a.last_seen)} · ${num(a.score)} · `,
              STATUS_LABEL[a.status] || a.status || "new", a.case_id ? [" · ", caseLink(a.case_id)] : null)))),
        h("h3", {}, "Cases"),
        h("ul", { class: "marks", "data-testid": "member-cases" }, (b.cases || []).map((c) =>
          h("li", { "data-case-id": c.case_id }, caseLink(c.case_id), " ", caseStatus(c.status),
            h("div", { class: "sub" }, `${whenShort(c.first_seen)} → ${whenShort(c.last_seen)} · risk ${num(c.risk)} · ${plural(c.alerts, "alert")}`))))),
    ),
  ));
}

// Said when the window reaches back before the oldest access the history holds.
function historyNote(from) {
  const oldest = state.me.history && state.me.history.oldest;
  if (!oldest || (from && Date.parse(from) >= Date.parse(oldest))) return null;
  return h("span", { class: "warn", "data-testid": "history-note" },
    ` · the history holds accesses from ${when(oldest)} on` +
    (state.me.history.retention_days ? ` (${num(state.me.history.retention_days)} days are kept)` : ""));
}

function timelineItem(e) {
  return h("li", { "data-event-id": e.event_id, class: [e.justified ? "" : "unjustified", (e.alert_ids || []).length ? "alerted" : ""].join(" ").trim() || null },
    h("div", { class: "when" }, when(e.ts), " · ", e.system, " · terminal ", e.terminal_id),
    h("div", {}, h("span", { class: "tag" }, e.action), " ",
      h("span", { class: "what" }, e.subject_id ? [`${e.subject_type || "record"} `, subjectLink(e.subject_id)] :
        `${e.result_count ?? "?"} results, none opened`), " · ",
      // Unjustified: the tag says why (which covers "no case was given").
      e.case_ref ? `case ${e.case_ref} ` : e.justified ? h("span", { class: "nocase" }, "no case reference given ") : null,
      justifiedTag(e),
      (e.alert_ids || []).map((id) => [" ", alertLink(id, "⚑ alert", { class: "flag" })])));
}

// Risk over time, in event time: each alert's score at its last access, the hourly
// opens as bars beneath, and each case's window as a band on top.
function riskChart(b) {
  const width = 960, height = 200, left = 34, right = 10, top = 18, scoreH = 110, barTop = 138, barH = 40;
  const t0 = Date.parse(b.from), t1 = Math.max(Date.parse(b.to), t0 + 1);
  const x = (iso) => left + (width - left - right) * (Math.min(Math.max(Date.parse(iso), t0), t1) - t0) / (t1 - t0);
  const svg = s("svg", { class: "risk", viewBox: `0 0 ${width} ${height}`, width: "100%", role: "img",
    "aria-label": "risk over time, in event time", "data-testid": "risk-chart" });
  svg.append(
    s("line", { class: "axis", x1: left, y1: top + scoreH, x2: width - right, y2: top + scoreH }),
    s("line", { class: "axis", x1: left, y1: top, x2: width - right, y2: top }),
    s("text", { class: "muted", x: 2, y: top + 4 }, "100"), s("text", { class: "muted", x: 14, y: top + scoreH + 4 }, "0"),
    s("text", { class: "muted", x: 2, y: barTop + 10 }, "opens"));
  const hourly = b.hourly || [];
  const most = Math.max(1, ...hourly.map(([, n]) => n));
  const hourW = Math.max(1, (width - left - right) * 3600000 / (t1 - t0) - 0.5);
  const bars = s("g", { class: "bars" });
  for (const [hour, n] of hourly) {
    const hh = barH * n / most;
    bars.append(s("rect", { class: "bar", x: x(hour).toFixed(1), y: (barTop + barH - hh).toFixed(1), width: hourW.toFixed(1),
      height: Math.max(hh, 0.5).toFixed(1) }, s("title", {}, `${whenShort(hour)}: ${plural(n, "open")}`)));
  }
  svg.append(bars);
  const bands = s("g", { class: "bands" });
  for (const c of b.cases || []) {
    bands.append(s("rect", { class: `band case-${c.status}`, x: x(c.first_seen).toFixed(1), y: 2,
      width: Math.max(3, x(c.last_seen) - x(c.first_seen)).toFixed(1), height: 10, "data-case-id": c.case_id },
    s("title", {}, `case ${c.case_id} · ${CASE_STATUS_LABEL[c.status] || c.status} · ${whenShort(c.first_seen)} → ${whenShort(c.last_seen)}`)));
  }
  svg.append(bands);
  const alerts = [...(b.alerts || [])].sort((p, q) => p.last_seen.localeCompare(q.last_seen));
  const y = (score) => top + scoreH - scoreH * Math.min(Math.max(score, 0), 100) / 100;
  if (alerts.length > 1) {
    svg.append(s("polyline", { class: "line", points: alerts.map((a) => `${x(a.last_seen).toFixed(1)},${y(a.score).toFixed(1)}`).join(" ") }));
  }
  for (const a of alerts) {
    const dot = s("circle", { class: `dot ${a.severity}`, cx: x(a.last_seen).toFixed(1), cy: y(a.score).toFixed(1), r: 5,
      "data-alert-id": a.alert_id, tabindex: 0 },
    s("title", {}, `${when(a.last_seen)} · ${a.rule_id} · ${num(a.score)} · ${a.title || ""}`));
    dot.addEventListener("click", () => select(a.alert_id));
    svg.append(dot);
  }
  svg.append(s("text", { class: "muted", x: left, y: height - 4 }, when(b.from)),
    s("text", { class: "muted", x: width - right, y: height - 4, "text-anchor": "end" }, when(b.to)));
  return [svg, h("div", { class: "legend" }, h("span", { class: "k dot" }), "an alert's score at its last access",
    h("span", { class: "k bar" }), `records opened an hour (most ${fmt(most)})`, h("span", { class: "k band" }), "a case's window")];
}

// --- a subject ------------------------------------------------------------------
let subjectSeq = 0;
async function loadSubject(subjectId, params) {
  const seq = ++subjectSeq;
  const root = $("subject");
  setState(root, "loading");
  const q = query({ from: params.get("from"), to: params.get("to") });
  const r = await getJSON(`/api/subjects/${encodeURIComponent(subjectId)}?${q}`);
  if (seq !== subjectSeq) return;
  if (!r.ok) {
    root.replaceChildren(crumbs("watchlist"), h("p", { class: "empty" }, errorText(r, "loading the subject")));
    setState(root, "ready");
    return;
  }
  renderSubject(subjectId, r.body, params);
  setState(root, "ready");
}

function renderSubject(subjectId, b, params) {
  const root = $("subject");
  const subj = b.subject || { subject_id: subjectId, flags: [], watch: null };
  const accesses = [...(b.accesses || [])].sort((x, y) => y.ts.localeCompare(x.ts));
  const members = new Set(accesses.map((e) => e.user_id));
  const base = `#/subject/${encodeURIComponent(subjectId)}`;
  const from = h("input", { id: "s-from", type: "datetime-local", value: isoToInput(params.get("from")) });
  const to = h("input", { id: "s-to", type: "datetime-local", value: isoToInput(params.get("to")) });
  const navigate = () => {
    const next = query({ from: inputToIso(from.value), to: inputToIso(to.value) });
    replaceHash(`${base}${[...next.keys()].length ? `?${next}` : ""}`);
  };
  from.addEventListener("change", navigate);
  to.addEventListener("change", navigate);
  const total = b.total ?? accesses.length;
  // Drawn a chunk at a time, as the timeline is: a much-opened person has thousands.
  const body = h("tbody", {});
  const more = h("button", { id: "s-more", type: "button" });
  let shown = 0;
  const drawMore = () => {
    const chunk = accesses.slice(shown, shown + SUBJECT_CHUNK);
    body.append(...chunk.map(subjectRow));
    shown += chunk.length;
    more.hidden = shown >= accesses.length;
    more.textContent = `Show ${fmt(Math.min(SUBJECT_CHUNK, accesses.length - shown))} more (${fmt(shown)} of ${fmt(accesses.length)} shown)`;
  };
  more.addEventListener("click", drawMore);
  drawMore();
  root.replaceChildren(...nodes(
    crumbs("watchlist"),
    h("div", { class: "page-head" },
      h("h2", {}, "Subject ", h("span", { class: "mono", "data-testid": "subject-id" }, subj.subject_id || subjectId)),
      (subj.flags || []).map((f) => h("span", { class: "tag flag-tag" }, f)),
      subj.watch ? h("span", { class: "tag watch", "data-testid": "subject-watched", title: subj.watch.reason || "" }, "on the watch-list") : null,
      h("span", { class: "spacer" }),
      watchToggle(subj)),
    h("form", { class: "filters inline", "aria-label": "window", onsubmit: (e) => e.preventDefault() },
      h("label", {}, "From ", from), h("label", {}, "To ", to),
      h("button", { type: "button", class: "ghost", onclick: () => replaceHash(base) }, "Everything held")),
    h("p", { class: "counts", "data-testid": "subject-counts" },
      b.truncated ? `Showing ${fmt(accesses.length)} of ${fmt(total)} opens (the newest): narrow the window to see the rest`
        : `${plural(total, "open")} by ${plural(members.size, "member")}`,
      ` · ${plural(accesses.filter((e) => !e.justified).length, "unjustified open")} shown`,
      historyNote(params.get("from"))),
    h("table", { class: "grid", "data-testid": "subject-accesses" },
      head([["When", "w-when"], ["Member", "w-id"], ["System", "w-short"], ["Action", "w-short"], ["Terminal", "w-mid"],
        ["Case ref", "w-mid"], "Justified?", ["Alerts · cases", "w-wide"]]),
      body),
    more,
    accesses.length ? null : h("p", { class: "empty" }, "Nobody opened this subject in the window held."),
    h("h3", {}, `Alerts naming this subject (${fmt((b.alerts || []).length)})`),
    alertTable(b.alerts || [], "subject-alerts"),
  ));
}

function subjectRow(e) {
  return h("tr", { "data-event-id": e.event_id, class: e.justified ? null : "unjustified" },
    h("td", { class: "time" }, when(e.ts)),
    h("td", {}, h("div", { class: "clip" }, memberLink(e.user_id))),
    h("td", {}, clip(e.system)),
    h("td", {}, h("span", { class: "tag" }, e.action)),
    h("td", {}, clip(e.terminal_id)),
    h("td", {}, e.case_ref ? clip(e.case_ref) : h("span", { class: "nocase" }, "none given")),
    h("td", {}, h("div", { class: "clip" }, justifiedTag(e))),
    h("td", {}, h("div", { class: "clip" }, (e.alert_ids || []).map((id, i) => [i ? " " : "", alertLink(id, "⚑ alert")]),
      (e.case_ids || []).map((id) => [" ", caseLink(id)]))));
}

function watchToggle(subj) {
  if (!isLead()) return null;
  const id = subj.subject_id;
  const message = h("span", { role: "status" });
  if (subj.watch && subj.watch.source !== "reference") {
    return h("span", {}, h("button", { type: "button", "data-watch-remove": id, onclick: async () => {
      const resp = await post("/api/watchlist/remove", { subject_id: id });
      if (!resp.ok) { message.replaceChildren(h("span", { class: "message" }, (await resp.json().catch(() => ({}))).error || `failed (${resp.status})`)); return; }
      route();
    } }, "Remove from watch-list"), message);
  }
  if (subj.watch) return null;
  const reason = h("input", { id: "s-watch-reason", type: "text", maxlength: 200, placeholder: "why (e.g. victim)" });
  return h("span", { class: "row" }, reason, h("button", { type: "button", id: "s-watch-add", onclick: async () => {
    const resp = await post("/api/watchlist", { subject_id: id, reason: reason.value });
    if (!resp.ok) { message.replaceChildren(h("span", { class: "message" }, (await resp.json().catch(() => ({}))).error || `failed (${resp.status})`)); return; }
    route();
  } }, "Watch this subject"), message);
}

// --- the watch-list --------------------------------------------------------------
let watchSeq = 0;
async function loadWatchlist(params) {
  const seq = ++watchSeq;
  const root = $("watchlist");
  setState(root, "loading");
  const days = params.get("days") || "7";
  const r = await getJSON(`/api/watchlist?${query({ days })}`);
  if (seq !== watchSeq) return;
  if (!r.ok) {
    root.replaceChildren(h("p", { class: "empty" }, errorText(r, "loading the watch-list")));
    setState(root, "ready");
    return;
  }
  renderWatchlist(r.body, days);
  setState(root, "ready");
}

function renderWatchlist(b, days) {
  const root = $("watchlist");
  const subjects = b.subjects || [];
  const opens = [...(b.opens || [])].sort((x, y) => y.ts.localeCompare(x.ts));
  const message = h("div", { role: "status", "data-testid": "watch-message" });
  const fail = async (resp) => {
    const r = await resp.json().catch(() => ({}));
    message.replaceChildren(h("div", { class: "message" }, r.error || `failed (${resp.status})`));
  };
  let add = null;
  if (isLead()) {
    const sid = h("input", { id: "w-subject", type: "text", maxlength: 128, placeholder: "subject id", required: true });
    const reason = h("input", { id: "w-reason", type: "text", maxlength: 200, placeholder: "why: victim, staff, VIP…" });
    add = h("form", { class: "filters inline", "aria-label": "add to the watch-list", onsubmit: async (e) => {
      e.preventDefault();
      if (!sid.value.trim()) return;
      const resp = await post("/api/watchlist", { subject_id: sid.value.trim(), reason: reason.value.trim() });
      if (!resp.ok) { await fail(resp); return; }
      route();
    } }, h("label", {}, "Subject ", sid), h("label", {}, "Reason ", reason),
    h("button", { id: "w-add", type: "submit" }, "Add to the watch-list"));
  }
  const daysSel = h("select", { id: "w-days", "aria-label": "days" }, ["1", "7", "14", "30"].map((d) =>
    h("option", { value: d, selected: d === String(days) }, d)));
  if (![...daysSel.options].some((o) => o.selected)) daysSel.append(h("option", { value: days, selected: true }, days));
  daysSel.addEventListener("change", () => replaceHash(`#/watchlist?days=${encodeURIComponent(daysSel.value)}`));
  root.replaceChildren(...nodes(
    h("div", { class: "page-head" }, h("h2", {}, "Watch-list"),
      h("span", { class: "note" }, "Protected subjects (victims, staff, VIPs) and who opened them without a case that justifies it.")),
    add, message,
    h("h3", {}, `Protected subjects (${fmt(subjects.length)})`),
    subjects.length ? h("table", { class: "grid", "data-testid": "watch-subjects" },
      head([["Subject", "w-mid"], ["Flags", "w-wide"], ["Source", "w-mid"], "Reason", ["Added", "w-wide"], ["", "w-short"]]),
      h("tbody", {}, subjects.map((w) => h("tr", { "data-subject-id": w.subject_id },
        h("td", {}, h("div", { class: "clip" }, subjectLink(w.subject_id))),
        h("td", {}, clip((w.flags || []).join(", "))),
        h("td", {}, w.source === "reference" ? "reference data" : "console"),
        h("td", {}, clip(w.reason || "")),
        h("td", {}, w.by ? clip(`${w.by}, ${whenShort(w.at)}`) : ""),
        h("td", {}, isLead() && w.source === "console" ? h("button", { type: "button", class: "ghost", "data-watch-remove": w.subject_id,
          onclick: async () => {
            const resp = await post("/api/watchlist/remove", { subject_id: w.subject_id });
            if (!resp.ok) { await fail(resp); return; }
            route();
          } }, "Remove") : ""))))) : h("p", { class: "note", "data-testid": "watch-subjects" }, "No protected subjects."),
    h("h3", {}, "Unjustified opens of these subjects in the last ", daysSel, " days ", h("span", { class: "note" }, `(${fmt(opens.length)})`)),
    b.truncated ? h("p", { class: "note", "data-testid": "watch-truncated" },
      `Only the newest ${fmt(opens.length)} are listed: shorten the window, or open a subject for all of its opens.`) : null,
    opens.length ? h("table", { class: "grid", "data-testid": "watch-opens" },
      head([["When", "w-when"], ["Member", "w-id"], ["Subject", "w-mid"], ["System", "w-short"], ["Action", "w-short"],
        ["Terminal", "w-mid"], "Why not justified"]),
      h("tbody", {}, opens.map((e) => h("tr", { "data-event-id": e.event_id, class: "unjustified" },
        h("td", { class: "time" }, when(e.ts)),
        h("td", {}, h("div", { class: "clip" }, memberLink(e.user_id))),
        h("td", {}, h("div", { class: "clip" }, subjectLink(e.subject_id))),
        h("td", {}, clip(e.system)),
        h("td", {}, h("span", { class: "tag" }, e.action)),
        h("td", {}, clip(e.terminal_id)),
        h("td", {}, clip(e.why || "not justified"))))))
      : h("p", { class: "empty" }, "No unjustified opens in this window."),
  ));
}

// --- the consultation log (a lead's) ------------------------------------------------
// #/consultations?from=&to=&user=&subject=: who read what personal data, when, from where
// and why, newest first, from the records the console holds (the export has them all).
const CONSULTATION_ID_KINDS = ["subject", "member", "alert", "case", "event"];
const CONSULTATION_IDS_SHOWN = 8;  // ids of each kind listed in a row; the rest counted
let consultationSeq = 0;
async function loadConsultations(params) {
  const seq = ++consultationSeq;
  const root = $("consultations");
  setState(root, "loading");
  const q = query({ from: params.get("from"), to: params.get("to"), user: params.get("user"),
    subject: params.get("subject") });
  const r = await getJSON(`/api/consultations?${q}`);
  if (seq !== consultationSeq) return;
  if (!r.ok) {
    root.replaceChildren(h("div", { class: "page-head" }, h("h2", {}, "Consultation log")),
      h("p", { class: "empty", "data-testid": "consultations-error" }, errorText(r, "loading the consultation log")));
    setState(root, "ready");
    return;
  }
  renderConsultations(r.body, params);
  setState(root, "ready");
}

function consultationIds(c) {
  const what = c.what || {};
  const ids = what.ids || {};
  const counts = what.counts || {};
  return CONSULTATION_ID_KINDS.filter((k) => (ids[k] || []).length).map((k) => {
    const shown = ids[k].slice(0, CONSULTATION_IDS_SHOWN);
    const more = (counts[k] || ids[k].length) - shown.length;
    return h("div", { class: "clip", "data-kind": k, title: ids[k].slice(0, 100).join(" ") },
      h("span", { class: "muted" }, `${k}: `), shown.join(" "), more > 0 ? ` (+${fmt(more)} more)` : null);
  });
}

function consultationPurpose(p) {
  p = p || {};
  if (p.case_id) return h("span", {}, "case ", caseLink(p.case_id));
  if (p.alert_id) return h("span", {}, "alert ", alertLink(p.alert_id));
  if (p.text) return clip(p.text);
  return h("span", { class: "muted" }, "none needed (a list)");
}

function consultationRow(c) {
  return h("tr", { "data-consultation-id": c.id },
    h("td", { class: "time" }, h("time", { datetime: c.at, title: c.at }, when(c.at))),
    h("td", { class: "c-user" }, clip(c.user),
      h("div", { class: "muted clip" }, c.staff_id ? `${c.role} · ${c.staff_id}` : `${c.role} · no staff id`)),
    h("td", { class: "c-address" }, clip(c.address)),
    h("td", { class: "c-read" }, h("span", { class: "tag" }, (c.what && c.what.kind) || ""), clip(c.route, "mono")),
    h("td", { class: "c-ids" }, consultationIds(c)),
    h("td", { class: "c-purpose" }, consultationPurpose(c.purpose)));
}

function renderConsultations(b, params) {
  const root = $("consultations");
  const rows = b.consultations || [];
  const field = (id, type, value, attrs) => h("input", { id, type, value: value || "", ...(attrs || {}) });
  const from = field("cl-from", "datetime-local", isoToInput(params.get("from")));
  const to = field("cl-to", "datetime-local", isoToInput(params.get("to")));
  const user = field("cl-user", "search", params.get("user"), { maxlength: 128, placeholder: "user or staff id",
    autocomplete: "off", spellcheck: "false" });
  const subject = field("cl-subject", "search", params.get("subject"), { maxlength: 128,
    placeholder: "subject or member id", autocomplete: "off", spellcheck: "false" });
  const filters = h("form", { id: "consultation-filters", class: "filters inline", "aria-label": "consultation filters",
    onsubmit: (e) => {
      e.preventDefault();
      const next = query({ from: inputToIso(from.value), to: inputToIso(to.value), user: user.value.trim(),
        subject: subject.value.trim() });
      replaceHash(`#/consultations${[...next.keys()].length ? `?${next}` : ""}`);
    } },
  h("label", {}, "From ", from), h("label", {}, "To ", to), h("label", {}, "User ", user),
  h("label", {}, "Subject ", subject), h("button", { id: "cl-apply", type: "submit" }, "Show"),
  h("button", { id: "cl-clear", type: "button", class: "ghost", onclick: () => replaceHash("#/consultations") }, "Clear"));
  const total = b.total ?? rows.length;
  root.replaceChildren(...nodes(
    h("div", { class: "page-head" }, h("h2", {}, "Consultation log"),
      h("span", { class: "note" }, "Every read of personal data through the console: who, when, from where, what and why.")),
    filters,
    h("p", { class: "counts", "data-testid": "consultations-counts" },
      `${plural(total, "consultation")} match`,
      b.truncated ? ` · the newest ${fmt(rows.length)} listed: narrow the filters for the rest` : null,
      ` · ${fmt(b.held)} held here (the newest ${fmt(b.limit)})`,
      b.dropped ? ` · ${plural(b.dropped, "older consultation")} no longer held here: the export has every one (accesswatch console consultations)` : null),
    rows.length ? h("table", { class: "grid", "data-testid": "consultations" },
      head([["When", "w-when"], ["User", "w-mid"], ["From", "w-mid"], ["Read", "w-mid"], "What it showed", ["Why", "w-why"]]),
      h("tbody", {}, rows.map(consultationRow)))
      : h("p", { class: "empty" }, "No consultations match these filters."),
  ));
}

// --- start -------------------------------------------------------------------
async function boot() {
  state.me = await (await api("/api/me")).json();
  $("whoami").textContent = `${state.me.username} (${state.me.role})`;
  if (may("export")) { $("fp-csv").hidden = false; $("fp-json").hidden = false; }
  if (state.me.cases_enabled === false) document.querySelector("[data-nav=cases]").hidden = true;
  if (isLead()) document.querySelector("[data-nav=consultations]").hidden = false;
  $("signout").addEventListener("click", async () => {
    if (state.source) state.source.close();
    await post("/logout", {});
    window.location.assign("/login");
  });
  $("subject-form").addEventListener("submit", (e) => {
    e.preventDefault();
    const v = $("subject-q").value.trim();
    if (v) window.location.hash = `#/subject/${encodeURIComponent(v)}`;
  });
  setupAlerts();
  setupCases();
  exportLinks();
  window.addEventListener("hashchange", route);
  route();
  connect();
}

document.addEventListener("DOMContentLoaded", boot);
