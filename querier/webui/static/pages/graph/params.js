// The Query page's panel options and Prometheus 2.42's URL parameters for them (g<N>.expr, g<N>.tab, ...),
// durations ("1h30m") and the end-time text ("YYYY-MM-DD HH:mm:ss"), pure functions, no DOM.
"use strict";
window.ShardmonGraph = window.ShardmonGraph || {};
ShardmonGraph.params = (() => {
  const HOUR_MS = 3600 * 1000;

  // A new panel's options, as 2.42's PanelDefaultOptions: table tab, 1h range, end = now, step chosen.
  function defaults() {
    return { expr: "", tab: 1, range: HOUR_MS, endTime: null, resolution: null, stacked: false, showExemplars: false };
  }

  const UNITS = [["y", 365 * 24 * HOUR_MS], ["w", 7 * 24 * HOUR_MS], ["d", 24 * HOUR_MS], ["h", HOUR_MS],
    ["m", 60 * 1000], ["s", 1000], ["ms", 1]];
  const DURATION_RE = /^(?:(\d+)y)?(?:(\d+)w)?(?:(\d+)d)?(?:(\d+)h)?(?:(\d+)m)?(?:(\d+)s)?(?:(\d+)ms)?$/;

  // "1h30m" -> milliseconds; "0" -> 0; anything else (and "") -> null.
  function parseDuration(text) {
    text = String(text || "").trim();
    if (text === "") return null;
    if (text === "0") return 0;
    const m = text.match(DURATION_RE);
    if (!m) return null;
    return UNITS.reduce((ms, [, mult], i) => ms + (m[i + 1] === undefined ? 0 : parseInt(m[i + 1], 10) * mult), 0);
  }

  // Milliseconds -> "1h30m" (years and weeks only when exact, as Prometheus writes it: "90d", not "12w6d").
  function formatDuration(ms) {
    if (ms === 0) return "0s";
    let out = "";
    for (const [unit, mult] of UNITS) {
      if ((unit === "y" || unit === "w") && ms % mult !== 0) continue;
      const v = Math.floor(ms / mult);
      if (v > 0) {
        out += `${v}${unit}`;
        ms -= v * mult;
      }
    }
    return out;
  }

  const pad = (n) => String(n).padStart(2, "0");

  // Unix milliseconds -> "YYYY-MM-DD HH:mm:ss" in UTC, or in the browser's zone when `local`.
  function formatTime(ms, local = false) {
    const d = new Date(ms);
    const [y, mo, day, h, mi, s] = local
      ? [d.getFullYear(), d.getMonth() + 1, d.getDate(), d.getHours(), d.getMinutes(), d.getSeconds()]
      : [d.getUTCFullYear(), d.getUTCMonth() + 1, d.getUTCDate(), d.getUTCHours(), d.getUTCMinutes(), d.getUTCSeconds()];
    return `${y}-${pad(mo)}-${pad(day)} ${pad(h)}:${pad(mi)}:${pad(s)}`;
  }

  // "YYYY-MM-DD HH:mm[:ss]" (or an RFC 3339 / ISO text, or Unix seconds) -> Unix milliseconds; NaN if not a time.
  function parseTime(text, local = false) {
    text = String(text || "").trim();
    if (/^\d+(\.\d+)?$/.test(text)) return parseFloat(text) * 1000;
    const m = text.match(/^(\d{4})-(\d{2})-(\d{2})(?:[ T](\d{2}):(\d{2})(?::(\d{2})(?:\.(\d{1,3}))?)?)?$/);
    if (m) {
      const parts = m.slice(1).map((v) => (v === undefined ? 0 : parseInt(v, 10)));
      parts[1] -= 1;
      if (m[7]) parts[6] = parseInt(m[7].padEnd(3, "0"), 10);
      return local ? new Date(...parts).getTime() : Date.UTC(...parts);
    }
    return Date.parse(text);
  }

  // The step a range query uses: the panel's resolution, else Prometheus's choice, range / 250 (at least 1 s).
  function step(options) {
    return options.resolution || Math.max(Math.floor(options.range / 250000), 1);
  }

  // One URL parameter (after "g<N>.") onto `options`, as 2.42's parseOption; unknown or bad values are ignored.
  function applyOption(options, name, value) {
    switch (name) {
      case "expr": options.expr = value; break;
      case "tab": options.tab = value === "0" ? 0 : 1; break;
      case "stacked": options.stacked = value === "1"; break;
      case "show_exemplars": options.showExemplars = value === "1"; break;
      case "range_input": {
        const range = parseDuration(value);
        if (range !== null) options.range = range;
        break;
      }
      case "end_input":
      case "moment_input": {
        const t = parseTime(value);
        if (!isNaN(t)) options.endTime = t;
        break;
      }
      case "step_input": {
        const res = parseInt(value, 10);
        if (res > 0) options.resolution = res;
        break;
      }
      default: break;
    }
  }

  // A query string ("?g0.expr=up&g0.tab=1&g1.expr=...") -> the panels' options, in the order of N; a panel
  // exists for each g<N>.expr, as in Prometheus.
  function decode(search) {
    const byIndex = new Map();
    for (const [key, value] of new URLSearchParams(search)) {
      const m = key.match(/^g(\d+)\.(.+)$/);
      if (!m) continue;
      const n = parseInt(m[1], 10);
      if (!byIndex.has(n)) byIndex.set(n, { hasExpr: false, pairs: [] });
      const entry = byIndex.get(n);
      if (m[2] === "expr") entry.hasExpr = true;
      entry.pairs.push([m[2], value]);
    }
    return [...byIndex.entries()].sort((a, b) => a[0] - b[0]).filter(([, e]) => e.hasExpr).map(([, e]) => {
      const options = defaults();
      for (const [name, value] of e.pairs) applyOption(options, name, value);
      return options;
    });
  }

  // The panels' options -> a query string, as 2.42's encodePanelOptionsToQueryString writes it.
  function encode(panels) {
    const params = new URLSearchParams();
    panels.forEach((o, n) => {
      const g = (name, value) => params.append(`g${n}.${name}`, String(value));
      g("expr", o.expr);
      g("tab", o.tab);
      g("stacked", o.stacked ? 1 : 0);
      g("show_exemplars", o.showExemplars ? 1 : 0);
      g("range_input", formatDuration(o.range));
      if (o.endTime !== null) {
        g("end_input", formatTime(o.endTime));
        g("moment_input", formatTime(o.endTime));
      }
      if (o.resolution) g("step_input", o.resolution);
    });
    return `?${params.toString().replace(/\+/g, "%20")}`;
  }

  // The range buttons' steps (2.42's rangeSteps), in milliseconds.
  const RANGE_STEPS = [1, 10, 60, 300, 900, 1800, 3600, 7200, 21600, 43200, 86400, 172800, 604800, 1209600,
    2419200, 4838400, 9676800, 15724800, 31536000, 63072000].map((s) => s * 1000);

  function widerRange(range) {
    return RANGE_STEPS.find((r) => r > range) || range;
  }

  function narrowerRange(range) {
    return [...RANGE_STEPS].reverse().find((r) => r < range) || range;
  }

  return { defaults, parseDuration, formatDuration, formatTime, parseTime, step, applyOption, decode, encode,
    widerRange, narrowerRange, RANGE_STEPS };
})();
