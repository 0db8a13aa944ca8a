// The Cardinality page (/tsdb-status): /api/v1/status/tsdb over every shard, as Prometheus's TSDB status page
// shows it (head stats and the four top lists), with a `limit` and Shardmon's `match[]` (both kept in the
// page's URL, so a view can be shared), and the per-shard breakdown (series per shard, each shard's top metric
// names). A partial answer (a shard down) shows the API's warnings above the tables.
"use strict";
Shardmon.mount(async (app) => {
  const { el } = Shardmon;
  const url = new URL(window.location.href);
  const limitInput = el("input", { type: "text", id: "tsdb-limit", size: 5, inputmode: "numeric",
    value: url.searchParams.get("limit") || "10", "aria-label": "limit" });
  const matchInput = el("input", { type: "text", id: "tsdb-match", size: 50, spellcheck: "false",
    placeholder: 'match[] selector, e.g. {job="demo"} (optional)', value: url.searchParams.get("match[]") || "",
    "aria-label": "match[]" });
  const form = el("form", { class: "toolbar", id: "tsdb-form" },
    el("label", {}, "Top ", limitInput),
    el("label", {}, "Series matching ", matchInput),
    el("button", { type: "submit", class: "primary" }, "Show"));
  const out = el("div", { id: "tsdb-result" });
  app.append(el("h1", {}, "Cardinality"),
    el("p", { class: "muted" }, "The head of every shard (series with recent samples), merged as one Prometheus. ",
      el("code", {}, "match[]"), " is Shardmon's: only the series matching the selector count."),
    form, out);

  // The time as Prometheus's page writes it: ISO time and the raw milliseconds.
  const msTime = (ms, numSeries) => {
    const d = new Date(ms);
    if (isNaN(d) || Math.abs(ms) > 8.64e15) return numSeries === 0 ? "No datapoints yet" : `(${ms})`;
    return `${d.toISOString()} (${ms})`;
  };

  function headTable(h, id) {
    const cols = [["Number of Series", h.numSeries], ["Number of Chunks", h.chunkCount],
      ["Number of Label Pairs", h.numLabelPairs], ["Current Min Time", msTime(h.minTime, h.numSeries)],
      ["Current Max Time", msTime(h.maxTime, h.numSeries)]];
    return el("table", { id },
      el("thead", {}, el("tr", {}, cols.map(([t]) => el("th", {}, t)))),
      el("tbody", {}, el("tr", {}, cols.map(([, v]) => el("td", {}, String(v))))));
  }

  function statTable(title, key, stats, unit = "Count") {
    return el("div", { class: "panel" }, el("h2", {}, title),
      el("table", { "data-list": key },
        el("thead", {}, el("tr", {}, el("th", {}, "Name"), el("th", { class: "num" }, unit))),
        el("tbody", {}, stats.length ? stats.map((s) => el("tr", {},
          el("td", { class: "name", style: "overflow-wrap:anywhere" }, s.name), el("td", { class: "num value" }, String(s.value))))
          : el("tr", {}, el("td", { colspan: 2, class: "muted" }, "none")))));
  }

  function shardsPart(shards, total) {
    const rows = shards.map((s) => {
      if (s.error) {
        return el("tr", { "data-shard": s.shard }, el("td", {}, String(s.shard)),
          el("td", { colspan: 5, class: "health-down" }, s.error));
      }
      const h = s.headStats;
      const share = total ? (100 * h.numSeries / total) : 0;
      return el("tr", { "data-shard": s.shard }, el("td", {}, String(s.shard)),
        el("td", { class: "num series" }, String(h.numSeries)),
        el("td", {}, el("div", { style: "background:#e8edf6;height:.8em;min-width:8em" },
          el("div", { style: `background:var(--accent);height:100%;width:${share.toFixed(1)}%` })),
          el("span", { class: "muted" }, ` ${share.toFixed(1)}%`)),
        el("td", { class: "num" }, String(h.numLabelPairs)),
        el("td", {}, msTime(h.minTime, h.numSeries)), el("td", {}, msTime(h.maxTime, h.numSeries)));
    });
    const perShard = shards.filter((s) => !s.error).map((s) =>
      el("div", { class: "panel", style: "flex:1 1 22em;min-width:18em", "data-shard-top": s.shard },
        el("h2", {}, `Shard ${s.shard}: top series count by metric names`),
        el("table", {}, el("thead", {}, el("tr", {}, el("th", {}, "Name"), el("th", { class: "num" }, "Count"))),
          el("tbody", {}, s.seriesCountByMetricName.map((x) => el("tr", {},
            el("td", { class: "name" }, x.name), el("td", { class: "num value" }, String(x.value))))))));
    return [
      el("h2", {}, "Shards"),
      el("table", { id: "tsdb-shards" },
        el("thead", {}, el("tr", {}, ["Shard", "Series", "Share", "Label pairs", "Min time", "Max time"]
          .map((t, i) => el("th", { class: i === 1 || i === 3 ? "num" : undefined }, t)))),
        el("tbody", {}, rows)),
      el("div", { style: "display:flex;flex-wrap:wrap;gap:1em;margin-top:1em" }, perShard),
    ];
  }

  async function load() {
    const params = new URLSearchParams();
    const limit = limitInput.value.trim();
    const match = matchInput.value.trim();
    if (limit && limit !== "10") params.set("limit", limit);
    if (match) params.set("match[]", match);
    const qs = params.toString();
    history.replaceState(null, "", qs ? `?${qs}` : window.location.pathname);
    out.replaceChildren(el("p", { class: "muted" }, "Loading..."));
    // Not Shardmon.api: the warnings of a partial answer are shown too.
    const resp = await fetch(`/api/v1/status/tsdb${qs ? `?${qs}` : ""}`);
    let doc;
    try {
      doc = await resp.json();
    } catch (e) {
      throw new Shardmon.ApiError(resp.status, "bad_response", `${resp.status} ${resp.statusText}`);
    }
    if (doc.status !== "success") throw new Shardmon.ApiError(resp.status, doc.errorType, doc.error);
    const d = doc.data;
    const n = Number(limit) || 10;
    out.replaceChildren(
      ...(doc.warnings || []).map((w) => el("div", { class: "error warning" }, `Warning: ${w}`)),
      el("h2", {}, "Head Stats"), headTable(d.headStats, "tsdb-head"),
      el("h2", {}, "Head Cardinality Stats"),
      el("div", { style: "display:grid;grid-template-columns:repeat(2,minmax(0,1fr));gap:0 1em" },
        statTable(`Top ${n} label names with value count`, "labelValueCountByLabelName", d.labelValueCountByLabelName),
        statTable(`Top ${n} series count by metric names`, "seriesCountByMetricName", d.seriesCountByMetricName),
        statTable(`Top ${n} label names with high memory usage`, "memoryInBytesByLabelName",
          d.memoryInBytesByLabelName, "Bytes"),
        statTable(`Top ${n} series count by label value pairs`, "seriesCountByLabelValuePair",
          d.seriesCountByLabelValuePair)),
      ...shardsPart(d.shards || [], d.headStats.numSeries));
    out.dataset.loaded = qs || "default";
  }

  form.addEventListener("submit", (ev) => {
    ev.preventDefault();
    load().catch((err) => out.replaceChildren(Shardmon.errorBox(err)));
  });
  await load().catch((err) => out.replaceChildren(Shardmon.errorBox(err)));
});
