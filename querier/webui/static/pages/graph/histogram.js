// A native histogram sample on the Query page's table, as Prometheus 2.53's DataTable shows one: its total count
// and sum, a small bar chart of its buckets (each bar's height its count, on a linear scale) and the bucket
// list with each bucket's range in the API's boundary notation ("(0.5 -> 1]", "[-0.001 -> 0.001]") and count.
// A matrix cell lists each histogram point's bucket table with its timestamp, after the float points.
"use strict";
window.ShardmonGraph = window.ShardmonGraph || {};
ShardmonGraph.histogram = (() => {
  const { el } = Shardmon;

  // A bucket's range as Prometheus's bucketRangeString: "[" or "(" by its boundary rule, "->", "]" or ")".
  function rangeText([rule, lower, upper]) {
    const left = rule === 3 || rule === 1 ? "[" : "(";
    const right = rule === 3 || rule === 0 ? "]" : ")";
    return `${left}${lower} -> ${upper}${right}`;
  }

  // The bucket list: a row per (non-empty) bucket, its range and count.
  function bucketTable(h) {
    const rows = (h.buckets || []).map((b) => el("tr", {}, el("td", {}, rangeText(b)), el("td", {}, b[3])));
    return el("table", { class: "histogram-buckets" },
      el("thead", {}, el("tr", {}, el("th", { colspan: "2" }, "Histogram Sample")),
        el("tr", {}, el("th", {}, "Range"), el("th", {}, "Count"))),
      el("tbody", {}, rows));
  }

  // The buckets as bars side by side, each as tall as its count relative to the largest (CSS only).
  function bars(h) {
    const counts = (h.buckets || []).map((b) => Number(b[3]));
    const finite = counts.filter(Number.isFinite);
    const max = finite.length ? Math.max(...finite.map(Math.abs)) : 0;
    return el("div", { class: "histogram-chart", role: "img", "aria-label": "bucket counts" },
      (h.buckets || []).map((b, i) => {
        const v = Number.isFinite(counts[i]) && max > 0 ? Math.abs(counts[i]) / max : 0;
        return el("div", { class: "histogram-bar", title: `${rangeText(b)}: ${b[3]}`,
          style: `height: ${Math.max(1, Math.round(v * 100))}%` });
      }));
  }

  // The whole cell of a vector's histogram sample: summary, chart, bucket list.
  function sample(h) {
    return el("div", { class: "histogram-sample" },
      el("div", { class: "histogram-summary" },
        el("span", {}, el("strong", {}, "Total count:"), ` ${h.count}`),
        el("span", {}, el("strong", {}, "Sum:"), ` ${h.sum}`)),
      h.buckets && h.buckets.length ? bars(h) : null,
      bucketTable(h));
  }

  return { rangeText, bucketTable, bars, sample };
})();
