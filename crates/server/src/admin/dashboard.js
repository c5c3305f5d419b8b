// fleetca dashboard: plain JS, no build step. Reads the admin token from the URL fragment
// (#token=...; removed from the address bar at once) or the form, keeps it in sessionStorage
// only, and calls the admin API with it.
"use strict";

const KEY = "fleetca-admin-token";

function fragmentParams() {
  return new URLSearchParams(location.hash.replace(/^#/, ""));
}

function token() {
  return sessionStorage.getItem(KEY) || "";
}

async function api(path) {
  const r = await fetch(path, { headers: { Authorization: "Bearer " + token() } });
  if (!r.ok) {
    let msg = r.status + "";
    try { msg += ": " + (await r.json()).error; } catch (_) { /* not JSON */ }
    throw new Error(msg);
  }
  return r.json();
}

function el(tag, attrs, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) e.setAttribute(k, v);
  for (const c of children) e.append(c instanceof Node ? c : document.createTextNode(String(c)));
  return e;
}

function when(t) {
  return t == null ? "" : new Date(t * 1000).toISOString().replace(".000Z", "Z");
}

// A bar chart as inline SVG; labels every few bars.
function barChart(title, values, start, step, fmt) {
  const w = 480, h = 120, pad = 20;
  const max = Math.max(1, ...values);
  const bw = (w - pad) / Math.max(1, values.length);
  const NS = "http://www.w3.org/2000/svg";
  const svg = document.createElementNS(NS, "svg");
  svg.setAttribute("width", w); svg.setAttribute("height", h + 18);
  svg.setAttribute("role", "img"); svg.setAttribute("aria-label", title);
  values.forEach((v, i) => {
    const bh = (h - pad) * v / max;
    const r = document.createElementNS(NS, "rect");
    r.setAttribute("x", pad + i * bw); r.setAttribute("y", h - bh);
    r.setAttribute("width", Math.max(1, bw - 1)); r.setAttribute("height", bh);
    r.setAttribute("fill", "#3a7bd5");
    const t = document.createElementNS(NS, "title");
    t.textContent = fmt(start + i * step) + ": " + v;
    r.append(t); svg.append(r);
  });
  const lab = (x, y, s) => { const t = document.createElementNS(NS, "text"); t.setAttribute("x", x); t.setAttribute("y", y); t.setAttribute("font-size", "10"); t.textContent = s; svg.append(t); };
  lab(0, 12, max); lab(0, h, 0);
  lab(pad, h + 14, fmt(start)); lab(w - 80, h + 14, fmt(start + (values.length - 1) * step));
  const total = values.reduce((a, b) => a + b, 0);
  return el("div", { class: "chart" }, el("div", {}, title + " (total " + total + ")"), svg);
}

const hourFmt = (t) => new Date(t * 1000).toISOString().slice(5, 13).replace("T", " ") + "h";
const dayFmt = (t) => new Date(t * 1000).toISOString().slice(0, 10);

async function loadStats() {
  const s = await api("/api/stats");
  const tbody = document.querySelector("#tenants tbody");
  tbody.replaceChildren();
  const rates = document.getElementById("rate-charts");
  const renew = document.getElementById("renewal-charts");
  rates.replaceChildren(); renew.replaceChildren();
  let total = 0;
  for (const t of s.tenants) {
    const c = t.certificates;
    total += c.valid;
    tbody.append(el("tr", { "data-tenant": t.tenant },
      el("td", {}, t.tenant),
      el("td", { class: "n valid" }, c.valid),
      el("td", { class: "n expiring" }, c.expiring_24h),
      el("td", { class: "n revoked" }, c.revoked),
      el("td", { class: "n expired" }, c.expired)));
    rates.append(barChart(t.tenant + ": issued", t.issued_per_hour, s.hours_start, 3600, hourFmt));
    rates.append(barChart(t.tenant + ": failed validations", t.failed_validations_per_hour, s.hours_start, 3600, hourFmt));
    renew.append(barChart(t.tenant + ": renewals", t.renewals_per_day, s.days_start, 86400, dayFmt));
  }
  document.getElementById("total-valid").textContent = total;
}

const COVERAGE_STATES = ["ok", "due", "overdue", "expiring", "silent", "revoked", "expired"];
const AT_RISK = ["due", "overdue", "expiring", "silent"];

async function loadCoverage() {
  const s = await api("/api/coverage/summary");
  const tbody = document.querySelector("#coverage tbody");
  let atRisk = 0;
  tbody.replaceChildren(...s.tenants.map((t) => {
    for (const st of AT_RISK) atRisk += t.counts[st] || 0;
    return el("tr", { "data-coverage-tenant": t.tenant }, el("td", {}, t.tenant),
      ...COVERAGE_STATES.map((st) => el("td", { class: "n", "data-state": st }, t.counts[st] || 0)));
  }));
  document.getElementById("coverage-at-risk").textContent = atRisk;
  document.querySelector("#coverage-worst tbody").replaceChildren(...s.worst.map((r) =>
    el("tr", { class: "worst", "data-serial": r.serial, "data-state": r.state },
      el("td", {}, r.state), el("td", {}, r.names.join(", ")), el("td", {}, r.serial),
      el("td", {}, r.tenant), el("td", {}, when(r.not_after)), el("td", {}, when(r.last_seen)))));
}

async function loadAudit() {
  const entries = await api("/api/audit?limit=20");
  const tbody = document.querySelector("#audit tbody");
  tbody.replaceChildren(...entries.map((e) => el("tr", {},
    el("td", {}, when(e.at)), el("td", {}, e.actor), el("td", {}, e.action),
    el("td", {}, e.tenant || ""), el("td", {}, e.object || ""))));
}

async function search(field, value) {
  const q = new URLSearchParams({ limit: "50" });
  if (value) q.set(field, value);
  const certs = await api("/api/certificates?" + q);
  const tbody = document.querySelector("#search-results tbody");
  tbody.replaceChildren(...certs.map((c) => el("tr", { class: "cert", "data-serial": c.serial },
    el("td", {}, c.serial), el("td", {}, c.tenant), el("td", {}, c.status),
    el("td", {}, c.names.map((n) => n.value).join(", ")), el("td", {}, when(c.not_after)))));
  document.getElementById("search-summary").textContent =
    certs.length + " certificate(s) found for " + field + " " + JSON.stringify(value);
}

async function refresh() {
  const status = document.getElementById("status");
  if (!token()) { status.textContent = "enter an admin token (scope read)"; return; }
  try {
    await Promise.all([loadStats(), loadCoverage(), loadAudit()]);
    status.textContent = "";
    document.body.setAttribute("data-loaded", "true");
  } catch (e) {
    status.textContent = "API error " + e.message;
  }
}

function main() {
  const frag = fragmentParams();
  if (frag.get("token")) {
    sessionStorage.setItem(KEY, frag.get("token"));
    frag.delete("token");
    const rest = frag.toString();
    history.replaceState(null, "", location.pathname + location.search + (rest ? "#" + rest : ""));
  }
  document.getElementById("token-form").addEventListener("submit", (ev) => {
    ev.preventDefault();
    sessionStorage.setItem(KEY, document.getElementById("token-input").value.trim());
    document.getElementById("token-input").value = "";
    refresh();
  });
  document.getElementById("search-form").addEventListener("submit", (ev) => {
    ev.preventDefault();
    search(document.getElementById("search-field").value, document.getElementById("search-input").value.trim())
      .catch((e) => { document.getElementById("search-summary").textContent = "search failed: " + e.message; });
  });
  refresh().then(() => {
    // `#search=NAME` runs a search on load (bookmarks, and the headless browser test).
    const s = frag.get("search");
    if (s && token()) {
      document.getElementById("search-input").value = s;
      return search("name", s);
    }
  }).catch(() => {});
  setInterval(refresh, 60000);
}

main();
