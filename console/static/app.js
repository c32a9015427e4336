// accesswatch console: the live feed, alert detail and triage.  Plain DOM, no
// framework; every value is set as text, never parsed as HTML.
"use strict";

const SEVERITY_ORDER = ["critical", "high", "medium", "low"];
const STATUS_LABEL = { new: "new", acknowledged: "acknowledged", justified: "justified",
  misuse: "misuse", false_positive: "false positive" };
const ACTION_LABEL = { acknowledge: "Acknowledge", assign: "Assign", justified: "Justified",
  misuse: "Misuse", false_positive: "False positive" };
const SVG = "http://www.w3.org/2000/svg";

const state = {
  me: null, rows: new Map(), selected: null, detail: null, source: null,
  filters: { severity: "", rule: "", area: "", status: "", sort: "risk" },
};

// --- helpers -----------------------------------------------------------------
function h(tag, attrs, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === null || v === undefined || v === false) continue;
    if (k === "class") el.className = v;
    else if (k.startsWith("on")) el.addEventListener(k.slice(2), v);
    else el.setAttribute(k, v === true ? "" : String(v));
  }
  for (const c of children.flat()) {
    if (c === null || c === undefined || c === false) continue;
    el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return el;
}

function s(tag, attrs, ...children) {
  const el = document.createElementNS(SVG, tag);
  for (const [k, v] of Object.entries(attrs || {})) el.setAttribute(k, String(v));
  for (const c of children) el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  return el;
}

function nodes(...items) { return items.flat(Infinity).filter((x) => x !== null && x !== undefined && x !== false); }

const clock = new Intl.DateTimeFormat("en-GB", { timeZone: "Europe/London", day: "2-digit",
  month: "short", hour: "2-digit", minute: "2-digit", second: "2-digit" });
const shortClock = new Intl.DateTimeFormat("en-GB", { timeZone: "Europe/London", day: "2-digit",
  month: "short", hour: "2-digit", minute: "2-digit" });
// Times as London shows them: the force's own clock, whatever the analyst's machine says.
function when(iso) { return iso ? clock.format(new Date(iso)).replace(",", "") : ""; }
function whenShort(iso) { return iso ? shortClock.format(new Date(iso)).replace(",", "") : ""; }
function num(x) { return Number.isInteger(x) ? String(x) : Number(x).toFixed(Math.abs(x) < 10 ? 2 : 1); }
// An alert is re-published, version one higher, as its evidence grows; absent means 1.
function version(r) { return r.version || 1; }
function updatedLabel(r) { return version(r) > 1 ? `updated, v${version(r)}` : null; }

async function api(path, options = {}) {
  const resp = await fetch(path, { credentials: "same-origin", ...options });
  if (resp.status === 401) { window.location.assign("/login"); throw new Error("signed out"); }
  return resp;
}

async function post(path, body) {
  return api(path, { method: "POST", headers: { "Content-Type": "application/json",
    "X-CSRF-Token": state.me.csrf_token }, body: JSON.stringify(body) });
}

// --- the feed ----------------------------------------------------------------
async function loadList() {
  const resp = await api("/api/alerts?limit=5000");
  const body = await resp.json();
  const held = state.rows;
  // A live update may have overtaken this response: keep whichever version is higher.
  state.rows = new Map(body.alerts.map((r) => {
    const mine = held.get(r.alert_id);
    return [r.alert_id, mine && version(mine) > version(r) ? mine : r];
  }));
  renderFilters();
  renderFeed();
}

// A burst of alerts redraws the feed once, not once per alert.
let pending = null;
function upsert(row) {
  const held = state.rows.get(row.alert_id);
  if (held && version(held) > version(row)) return;  // never an older version over a newer
  state.rows.set(row.alert_id, row);
  if (state.selected === row.alert_id) loadDetail(row.alert_id);
  if (pending) { pending.add(row.alert_id); return; }
  pending = new Set([row.alert_id]);
  setTimeout(() => { const fresh = pending; pending = null; renderFilters(); renderFeed(fresh); }, 50);
}

function visibleRows() {
  const f = state.filters;
  const rows = [...state.rows.values()].filter((r) =>
    (!f.severity || r.severity === f.severity) && (!f.rule || r.rule_id === f.rule) &&
    (!f.area || r.area === f.area) && (!f.status || r.status === f.status));
  if (f.sort === "newest") rows.sort((a, b) => b.created_at.localeCompare(a.created_at));
  else rows.sort((a, b) => (b.score - a.score) || b.created_at.localeCompare(a.created_at));
  return rows;
}

function renderFilters() {
  const rows = [...state.rows.values()];
  const choices = {
    severity: SEVERITY_ORDER.filter((s) => rows.some((r) => r.severity === s)),
    rule: [...new Set(rows.map((r) => r.rule_id))].sort(),
    area: [...new Set(rows.map((r) => r.area))].sort(),
    status: Object.keys(STATUS_LABEL),
  };
  for (const [name, values] of Object.entries(choices)) {
    const select = document.getElementById(`f-${name}`);
    const current = state.filters[name];
    const wanted = ["", ...values];
    if (current && !wanted.includes(current)) wanted.push(current);
    const have = [...select.options].map((o) => o.value);
    if (have.join("\u0000") === wanted.join("\u0000")) continue;
    select.replaceChildren(...wanted.map((v) => h("option", { value: v },
      v === "" ? "all" : (name === "status" ? STATUS_LABEL[v] : v))));
    select.value = current;
  }
}

function renderFeed(fresh) {
  const rows = visibleRows();
  const body = document.querySelector("#feed tbody");
  body.replaceChildren(...rows.map((r) => h("tr", {
    "data-alert-id": r.alert_id, tabindex: 0,
    class: [r.alert_id === state.selected ? "selected" : "", fresh && fresh.has(r.alert_id) ? "fresh" : ""].join(" ").trim() || null,
    onclick: () => select(r.alert_id),
    onkeydown: (e) => { if (e.key === "Enter") select(r.alert_id); },
  },
  h("td", { class: "time" }, whenShort(r.created_at),
    updatedLabel(r) ? h("div", { class: "sub", "data-testid": "updated", title: `updated ${when(r.updated_at)}` },
      updatedLabel(r)) : null),
  h("td", {}, h("span", { class: `sev ${r.severity}` }, r.severity)),
  h("td", { class: "num" }, num(r.score)),
  h("td", { class: "nowrap" }, r.rule_id),
  h("td", { class: "alert" }, h("div", { class: "clip", title: r.title }, r.title),
    h("div", { class: "sub clip", title: r.reason }, r.reason)),
  h("td", {}, r.user_id),
  h("td", {}, r.area),
  h("td", {}, h("span", { class: `status ${r.status}` }, STATUS_LABEL[r.status] || r.status),
    r.assignee ? h("div", { class: "sub" }, `→ ${r.assignee}`) : null),
  )));
  document.getElementById("empty").hidden = rows.length > 0;
  const open = [...state.rows.values()].filter((r) => r.status === "new").length;
  document.getElementById("counts").textContent =
    `${rows.length} shown · ${state.rows.size} alerts · ${open} untriaged`;
}

// --- live updates ------------------------------------------------------------
function connect() {
  const live = document.getElementById("live");
  const source = new EventSource("/api/stream");
  state.source = source;
  source.addEventListener("hello", () => {
    live.textContent = "live"; live.className = "live on";
    loadList();  // whatever arrived while we were away
  });
  source.addEventListener("alert", (e) => upsert(JSON.parse(e.data)));
  source.addEventListener("error", async () => {
    live.textContent = "reconnecting…"; live.className = "live off";
    if (source.readyState === EventSource.CLOSED) {
      try { await api("/api/me"); } catch (err) { return; }
      setTimeout(connect, 2000);
    }
  });
}

// --- detail ------------------------------------------------------------------
function select(alertId) {
  if (window.location.hash !== `#/alert/${alertId}`) window.location.hash = `#/alert/${alertId}`;
  else route();
}

function route() {
  const m = window.location.hash.match(/^#\/alert\/([A-Za-z0-9_.:-]+)$/);
  state.selected = m ? m[1] : null;
  renderFeed();
  if (state.selected) loadDetail(state.selected);
  else document.getElementById("detail").hidden = true;
}

let detailSeq = 0;
async function loadDetail(alertId) {
  const seq = ++detailSeq;  // only the latest request may draw
  const resp = await api(`/api/alerts/${encodeURIComponent(alertId)}`);
  const body = resp.ok ? await resp.json() : null;
  if (seq !== detailSeq || state.selected !== alertId) return;
  const pane = document.getElementById("detail");
  pane.hidden = false;
  if (!body) { pane.replaceChildren(h("p", { class: "empty" }, "This alert is not held by the console.")); return; }
  state.detail = body;
  renderDetail(body);
}

function renderDetail(d) {
  const a = d.alert, m = d.member;
  const pane = document.getElementById("detail");
  // Someone else's decision redraws the pane: keep the note being typed.
  const typing = document.getElementById("triage-note");
  const draft = pane.dataset.alertId === a.alert_id && typing ? typing.value : "";
  pane.dataset.alertId = a.alert_id;
  pane.replaceChildren(...nodes(
    h("button", { class: "close ghost", type: "button", "aria-label": "close",
      onclick: () => { window.location.hash = ""; } }, "✕"),
    h("span", { class: `sev ${a.severity}` }, a.severity), " ",
    h("span", { class: `status ${d.summary.status}`, "data-testid": "triage-status" },
      STATUS_LABEL[d.summary.status]),
    h("h2", {}, a.title),
    h("dl", { class: "facts" },
      h("dt", {}, "Alert"), h("dd", {}, a.alert_id),
      h("dt", {}, "Version"), h("dd", { "data-testid": "version" },
        updatedLabel(d.summary) ? [updatedLabel(d.summary), d.summary.updated_at ? ` · ${when(d.summary.updated_at)}` : ""] :
          "v1, as first published",
        h("span", { class: "note" }, ` · first published ${when(a.created_at)}`)),
      h("dt", {}, "Rule · score"), h("dd", {}, `${a.rule_id} · ${num(a.score)} / 100`),
      h("dt", {}, "Member"), h("dd", {}, a.user_id,
        m ? h("span", { class: "note" }, ` · ${m.role} · ${m.unit} · ${m.area}` +
          (m.status !== "active" ? ` · ${m.status}` : "")) : h("span", { class: "note" }, " · not in the staff directory")),
      h("dt", {}, "Seen"), h("dd", {}, `${when(a.first_seen)} → ${when(a.last_seen)}`,
        h("span", { class: "note" }, ` · ${a.count} event${a.count === 1 ? "" : "s"}`)),
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
  const note = document.getElementById("triage-note");
  if (note && draft) note.value = draft;
}

function evidence(d) {
  const items = [...d.evidence].sort((x, y) => x.ts.localeCompare(y.ts)).map((e) =>
    h("li", { "data-event-id": e.event_id },
      h("div", { class: "when" }, when(e.ts), " · ", e.system, " · terminal ", e.terminal_id),
      h("div", {}, h("span", { class: "tag" }, e.action), " ",
        h("span", { class: "what" }, e.subject_id ? `${e.subject_type || "record"} ${e.subject_id}` :
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

function memberHistory(d) {
  const points = d.history;
  const width = 460, height = 90, pad = 22;
  const svg = s("svg", { width, height, role: "img", "aria-label": "alert score over time",
    "data-testid": "risk-chart" });
  svg.append(s("line", { class: "axis", x1: pad, y1: height - pad, x2: width - 4, y2: height - pad }),
    s("line", { class: "axis", x1: pad, y1: 8, x2: width - 4, y2: 8 }),
    s("text", { class: "muted", x: 0, y: 11 }, "100"), s("text", { class: "muted", x: 10, y: height - pad + 3 }, "0"));
  if (points.length) {
    const t = points.map((p) => Date.parse(p.created_at));
    const t0 = Math.min(...t), t1 = Math.max(...t), span = Math.max(t1 - t0, 1);
    const xy = points.map((p, i) => [pad + 6 + (points.length === 1 ? (width - pad) / 2 : (width - pad - 16) * (t[i] - t0) / span),
      (height - pad) - (height - pad - 8) * p.score / 100]);
    svg.append(s("polyline", { class: "line", points: xy.map(([x, y]) => `${x.toFixed(1)},${y.toFixed(1)}`).join(" ") }));
    xy.forEach(([x, y], i) => svg.append(s("circle", { cx: x, cy: y, r: 4,
      class: points[i].alert_id === d.alert.alert_id ? "dot current" : "dot" },
      s("title", {}, `${when(points[i].created_at)} ${points[i].rule_id} ${num(points[i].score)}`))));
    svg.append(s("text", { class: "muted", x: pad, y: height - 6 }, when(points[0].created_at)),
      s("text", { class: "muted", x: width - 110, y: height - 6 }, when(points[points.length - 1].created_at)));
  }
  const list = h("ul", { class: "history" }, [...points].reverse().slice(0, 8).map((p) =>
    h("li", { class: p.alert_id === d.alert.alert_id ? "current" : null },
      when(p.created_at), " · ", h("span", { class: `sev ${p.severity}` }, p.severity), " ",
      p.alert_id === d.alert.alert_id ? p.title :
        h("button", { class: "link", type: "button", onclick: () => select(p.alert_id) }, p.title),
      " · ", STATUS_LABEL[p.status])));
  return [svg, h("p", { class: "note" }, `${points.length} alert(s) held for ${d.alert.user_id}; each point is an alert's score (0–100), this one in orange.`), list];
}

function triagePanel(d) {
  const t = d.triage;
  const log = h("ol", { class: "triage-log", "data-testid": "triage-log" },
    (t ? t.history : []).map((step) => h("li", {},
      h("strong", {}, ACTION_LABEL[step.action] || step.action),
      step.assignee ? ` → ${step.assignee}` : "", ` by ${step.by}, ${when(step.at)}`,
      step.note ? h("div", { class: "note" }, step.note) : null)));
  const summary = h("p", {}, "Status: ", h("span", { class: `status ${d.summary.status}` }, STATUS_LABEL[d.summary.status]),
    t && t.assignee ? ` · assigned to ${t.assignee}` : "", t ? "" : " · no decision yet");
  if (!state.me.permissions.includes("triage")) return [summary, log, h("p", { class: "note" }, "Your role may view, not triage.")];
  const note = h("textarea", { id: "triage-note", placeholder: "Note: what you checked and why (required for an outcome)", maxlength: 2000 });
  const assignee = h("select", { id: "triage-assignee" }, state.me.assignees.map((u) =>
    h("option", { value: u, selected: u === (t && t.assignee ? t.assignee : state.me.username) }, u)));
  const message = h("div", { role: "status" });
  const act = async (action) => {
    const body = { action, note: note.value, version: t ? t.version : 0 };
    if (action === "assign") body.assignee = assignee.value;
    for (const b of form.querySelectorAll("button")) b.disabled = true;
    const resp = await post(`/api/alerts/${encodeURIComponent(d.alert.alert_id)}/triage`, body);
    const out = await resp.json();
    if (!resp.ok) {
      message.replaceChildren(h("div", { class: "message" }, out.error || `failed (${resp.status})`));
      for (const b of form.querySelectorAll("button")) b.disabled = false;
      if (resp.status === 409) loadDetail(d.alert.alert_id);
      return;
    }
    document.getElementById("triage-note").value = "";
    state.rows.set(out.summary.alert_id, out.summary);
    renderFeed();
    await loadDetail(d.alert.alert_id);
  };
  const button = (action, cls) => h("button", { type: "button", class: cls, "data-action": action,
    onclick: () => act(action) }, ACTION_LABEL[action]);
  const form = h("div", { class: "triage-form" },
    note,
    h("div", { class: "row" }, button("acknowledge"), assignee, button("assign")),
    h("div", { class: "row" }, button("justified", "outcome justified"), button("misuse", "outcome misuse"),
      button("false_positive", "outcome false_positive")),
    message);
  return [summary, log, form];
}

// --- start -------------------------------------------------------------------
async function boot() {
  state.me = await (await api("/api/me")).json();
  document.getElementById("whoami").textContent = `${state.me.username} (${state.me.role})`;
  if (state.me.permissions.includes("export")) {
    document.getElementById("fp-csv").hidden = false;
    document.getElementById("fp-json").hidden = false;
  }
  for (const select of document.querySelectorAll("select[data-filter]")) {
    select.addEventListener("change", () => { state.filters[select.dataset.filter] = select.value; renderFeed(); });
  }
  document.getElementById("signout").addEventListener("click", async () => {
    if (state.source) state.source.close();
    await post("/logout", {});
    window.location.assign("/login");
  });
  window.addEventListener("hashchange", route);
  await loadList();
  route();
  connect();
}

document.addEventListener("DOMContentLoaded", boot);
