// The Query page's table: an instant query's result as Prometheus 2.42's DataTable shows it: a row per
// series with its labels and value (vector), the values with their timestamps (matrix), one row for a
// scalar or a string; at most 10,000 rows, with a warning naming how many were left out. A native histogram
// sample (the API's "histogram"/"histograms") is shown as Prometheus 2.53 shows it (graph/histogram.js).
"use strict";
window.ShardmonGraph = window.ShardmonGraph || {};
ShardmonGraph.table = (() => {
  const { el, seriesText } = Shardmon;
  const H = ShardmonGraph.histogram;
  const MAX_ROWS = 10000;

  // The number of results as the query stats count them (a scalar or string is one).
  function count(data) {
    if (!data) return 0;
    if (data.resultType === "scalar" || data.resultType === "string") return 1;
    return (data.result || []).length;
  }

  function render(data, { localTime }) {
    if (!data) return el("div", { class: "muted" }, "No data queried yet");
    const { resultType, result } = data;
    if ((resultType === "vector" || resultType === "matrix") && (!result || !result.length)) {
      return el("div", { class: "muted empty-result" }, "Empty query result");
    }
    const rows = [];
    if (resultType === "vector") {
      for (const s of result.slice(0, MAX_ROWS)) {
        rows.push(el("tr", {}, el("td", { class: "series" }, seriesText(s.metric)),
          el("td", { class: "value" }, s.value ? s.value[1] : (s.histogram ? H.sample(s.histogram[1]) : ""))));
      }
    } else if (resultType === "matrix") {
      for (const s of result.slice(0, MAX_ROWS)) {
        const at = (t) => el("span", { title: ShardmonGraph.params.formatTime(t * 1000, localTime) }, String(t));
        const lines = (s.values || []).map(([t, v]) => el("div", {}, `${v} @`, at(t)));
        for (const [t, h] of s.histograms || []) lines.push(el("div", { class: "histogram-point" }, H.bucketTable(h), el("span", {}, "@", at(t))));
        rows.push(el("tr", {}, el("td", { class: "series" }, seriesText(s.metric)),
          el("td", { class: "value" }, lines)));
      }
    } else if (resultType === "scalar" || resultType === "string") {
      rows.push(el("tr", {}, el("td", { class: "series" }, resultType), el("td", { class: "value" }, result[1])));
    } else {
      return Shardmon.errorBox(`Unsupported result type ${resultType}`);
    }
    const limited = (resultType === "vector" || resultType === "matrix") && result.length > MAX_ROWS;
    return el("div", {},
      limited ? el("div", { class: "error" }, `Warning: fetched ${result.length} series, only displaying the first ${MAX_ROWS}.`) : null,
      el("table", { class: "data-table" }, el("tbody", {}, rows)));
  }

  return { render, count, MAX_ROWS };
})();
