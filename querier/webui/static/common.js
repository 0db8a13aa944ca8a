// Shared by every page of Shardmon's web UI: API calls, DOM building, formatting, errors.
// Each page script (static/pages/<page>.js) calls Shardmon.mount(async (app) => { ... }) to fill <main id="app">.
"use strict";
const Shardmon = (() => {
  class ApiError extends Error {
    constructor(status, errorType, message) {
      super(message);
      this.status = status;
      this.errorType = errorType;
    }
  }

  // GET (or POST form) a Prometheus-style API; resolves to its `data`, rejects with an ApiError naming
  // the server's errorType and error text. With `whole`, resolves to the whole document (its `warnings` too).
  async function api(path, params = {}, { method = "GET", signal, whole = false } = {}) {
    const body = new URLSearchParams();
    for (const [k, v] of Object.entries(params)) {
      for (const item of Array.isArray(v) ? v : [v]) {
        if (item !== undefined && item !== null) body.append(k, String(item));
      }
    }
    const url = method === "GET" && [...body].length ? `${path}?${body}` : path;
    const resp = await fetch(url, method === "GET" ? { signal } : { method, body, signal });
    let doc;
    try {
      doc = await resp.json();
    } catch (e) {
      throw new ApiError(resp.status, "bad_response", `${resp.status} ${resp.statusText}`);
    }
    if (doc.status === "error" || !resp.ok) {
      throw new ApiError(resp.status, doc.errorType || "error", doc.error || `${resp.status} ${resp.statusText}`);
    }
    return whole || doc.data === undefined ? doc : doc.data;
  }

  // el("div", {class: "x", onclick: fn}, child, "text", [more]) -> an element.
  function el(tag, attrs = {}, ...children) {
    const node = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (v === undefined || v === null || v === false) continue;
      if (k.startsWith("on") && typeof v === "function") node.addEventListener(k.slice(2), v);
      else if (k === "class") node.className = v;
      else if (k === "dataset") Object.assign(node.dataset, v);
      else node.setAttribute(k, v === true ? "" : v);
    }
    for (const c of children.flat(Infinity)) {
      if (c === undefined || c === null || c === false) continue;
      node.append(c instanceof Node ? c : document.createTextNode(String(c)));
    }
    return node;
  }

  // A metric's label set as PromQL writes it: name{a="1", b="2"}.
  function seriesText(metric) {
    const name = metric.__name__ || "";
    const labels = Object.entries(metric).filter(([k]) => k !== "__name__")
      .map(([k, v]) => `${k}=${JSON.stringify(v)}`);
    return labels.length ? `${name}{${labels.join(", ")}}` : name || "{}";
  }

  function fmtTime(t) { // Unix seconds or an RFC 3339 string -> "2026-12-06 02:58:12 UTC"
    const d = typeof t === "number" ? new Date(t * 1000) : new Date(t);
    return isNaN(d) ? String(t) : d.toISOString().replace("T", " ").replace(/\.\d+Z$/, " UTC");
  }

  function fmtDuration(seconds) {
    if (seconds < 1) return `${Math.round(seconds * 1000)}ms`;
    if (seconds < 60) return `${seconds.toFixed(1)}s`;
    if (seconds < 3600) return `${Math.floor(seconds / 60)}m ${Math.round(seconds % 60)}s`;
    return `${Math.floor(seconds / 3600)}h ${Math.floor((seconds % 3600) / 60)}m`;
  }

  function errorBox(err) {
    return el("div", { class: "error", role: "alert" }, err instanceof ApiError ? `${err.errorType}: ${err.message}`
      : String(err && err.message || err));
  }

  // Run `fn(app)` once the page has loaded; an exception shows as an error box on the page.
  function mount(fn) {
    const run = async () => {
      const app = document.getElementById("app");
      try {
        await fn(app);
      } catch (err) {
        app.append(errorBox(err));
      }
    };
    if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", run);
    else run();
  }

  // -- shared by the Targets, Service discovery, Rules, Alerts and Status pages -----------------------
  // A label set as badges: <span class="labels"><span>k="v"</span>...</span> (sorted by name).
  function labelBadges(labels) {
    return el("span", { class: "labels" }, Object.keys(labels || {}).sort()
      .map((k) => el("span", { title: `${k}=${JSON.stringify(labels[k])}` }, `${k}=${JSON.stringify(labels[k])}`)));
  }

  // How long ago an RFC 3339 time (or Unix seconds) was: "1.2s ago"; "never" for Go's zero time.
  function fmtAgo(t) {
    const d = typeof t === "number" ? new Date(t * 1000) : new Date(t);
    if (isNaN(d) || d.getUTCFullYear() <= 1) return "never";
    return `${fmtDuration(Math.max(0, (Date.now() - d.getTime()) / 1000))} ago`;
  }

  // A short duration in seconds with its digits (scrape and evaluation times): "0.358ms", "12.4ms", "1.2s".
  function fmtSeconds(s) {
    return s > 0 && s < 1 ? `${+(s * 1000).toPrecision(3)}ms` : fmtDuration(s || 0);
  }

  // A text filter's test: every word of `query` is in one of `texts` (case-insensitive).
  function matchesText(query, ...texts) {
    const hay = texts.flat(Infinity).join("\n").toLowerCase();
    return query.toLowerCase().split(/\s+/).filter(Boolean).every((w) => hay.includes(w));
  }

  // A label set as the texts a filter searches: k="v" each.
  function labelTexts(labels) {
    return Object.entries(labels || {}).map(([k, v]) => `${k}="${v}"`);
  }

  // A link opening `expr` on the Query page, as Prometheus's rule pages link expressions (table tab).
  function graphLink(expr, text = expr) {
    return el("a", { href: `/graph?g0.expr=${encodeURIComponent(expr)}&g0.tab=1` }, text);
  }

  // A rule of /api/v1/rules as its file writes it: alert/record, expr (both linked), for, labels, annotations.
  function ruleDefinition(rule) {
    const line = (key, ...value) => el("div", {}, el("strong", {}, `${key}: `), ...value);
    const map = (key, m) => Object.keys(m || {}).length
      ? [line(key), Object.entries(m).map(([k, v]) => el("div", { style: "margin-left:2em" }, `${k}: ${v}`))] : null;
    const alerting = rule.type === "alerting";
    return el("div", { class: "rule-definition" },
      alerting ? line("alert", graphLink(`ALERTS{alertname=${JSON.stringify(rule.name)}}`, rule.name))
        : line("record", graphLink(rule.name)),
      line("expr", graphLink(rule.query)),
      rule.duration > 0 ? line("for", fmtDuration(rule.duration)) : null,
      rule.keepFiringFor > 0 ? line("keep_firing_for", fmtDuration(rule.keepFiringFor)) : null,
      map("labels", rule.labels),
      alerting ? map("annotations", rule.annotations) : null);
  }

  return { ApiError, api, el, seriesText, fmtTime, fmtDuration, errorBox, mount,
    labelBadges, fmtAgo, fmtSeconds, matchesText, labelTexts, graphLink, ruleDefinition };
})();
