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

  return { ApiError, api, el, seriesText, fmtTime, fmtDuration, errorBox, mount };
})();
