// The Query page's graph: a range query's matrix drawn with uPlot (static/vendor/uPlot.iife.min.js), lines or
// stacked areas, axis times in UTC or the browser's zone, a legend with each series' labels whose values
// follow the cursor and whose entries toggle their series when clicked. A native histogram point (the API's
// "histograms") is drawn as its count (Prometheus 2.53's graph draws its sum; the count is the more useful line,
// e.g. requests per second of a rate), and its series' legend entry says "(histogram count)".
"use strict";
window.ShardmonGraph = window.ShardmonGraph || {};
ShardmonGraph.chart = (() => {
  // Prometheus 2.42's colour pool (ColorPool.ts), in its order.
  const COLORS = ["#008000", "#008080", "#800000", "#800080", "#808000", "#808080", "#0000c0", "#008040", "#0080c0",
    "#800040", "#8000c0", "#808040", "#8080c0", "#00c000", "#00c080", "#804000", "#804080", "#80c000", "#80c080",
    "#0040c0", "#00c040", "#00c0c0", "#804040", "#8040c0", "#80c040", "#80c0c0", "#408000", "#408080", "#c00000",
    "#c00080", "#c08000", "#c08080", "#4000c0", "#408040", "#4080c0", "#c00040", "#c000c0", "#c08040", "#c080c0"];

  // A sample value's text ("1.5", "NaN", "+Inf") -> a number uPlot can draw, or null (a gap).
  function plottable(text) {
    const v = Number(text);
    return Number.isFinite(v) ? v : null;
  }

  // The matrix on the query's grid: x = start, start + step, ... end (seconds); one column per series, null
  // where a series has no point; `raw` keeps the API's value texts for the legend.
  function align(result, start, end, step) {
    const n = Math.floor((end - start) / step + 1e-9) + 1;
    const xs = Float64Array.from({ length: n }, (_, i) => start + i * step);
    const ys = [];
    const raw = [];
    for (const series of result) {
      const col = new Array(n).fill(null);
      const texts = new Array(n).fill(null);
      const points = (series.values || []).concat((series.histograms || []).map(([t, h]) => [t, h.count]));
      for (const [t, v] of points) {
        const i = Math.round((t - start) / step);
        if (i >= 0 && i < n) {
          col[i] = plottable(v);
          texts[i] = v;
        }
      }
      ys.push(col);
      raw.push(texts);
    }
    return { xs, ys, raw };
  }

  // Running sums over the shown series (a hidden one adds nothing); a gap stays a gap.
  function stack(ys, shown) {
    const sums = new Array(ys.length ? ys[0].length : 0).fill(0);
    return ys.map((col, s) => col.map((v, i) => {
      if (v === null) return null;
      if (shown[s]) sums[i] += v;
      return sums[i];
    }));
  }

  function fmtValue(text) {
    if (text === null || text === undefined) return "-";
    const v = Number(text);
    if (!Number.isFinite(v)) return text;
    const abs = Math.abs(v);
    return abs !== 0 && (abs >= 1e15 || abs < 1e-4) ? v.toExponential(4) : String(+v.toPrecision(8));
  }

  // Draw `result` (a matrix) into `target`; returns the uPlot instance (destroy() it before drawing again).
  function draw(target, result, { start, end, step, stacked, localTime, width, height = 380 }) {
    const { xs, ys, raw } = align(result, start, end, step);
    const shown = ys.map(() => true);
    const color = (i) => COLORS[i % COLORS.length];
    const series = [{
      label: localTime ? "Time (local)" : "Time (UTC)",
      value: (u, ts) => (ts === null || ts === undefined ? "-"
        : ShardmonGraph.params.formatTime(ts * 1000, localTime)),
    }];
    result.forEach((s, i) => {
      series.push({
        label: Shardmon.seriesText(s.metric) + (s.histograms && s.histograms.length ? " (histogram count)" : ""),
        stroke: color(i),
        width: 1.5,
        fill: stacked ? `${color(i)}66` : undefined,
        points: { show: (u, si, i0, i1) => i1 - i0 < 60 },
        spanGaps: false,
        value: (u, v, si, idx) => (idx === null || idx === undefined ? "-" : fmtValue(raw[si - 1][idx])),
      });
    });
    const bands = stacked ? result.slice(1).map((_, i) => ({ series: [i + 2, i + 1] })) : undefined;
    const data = () => [xs, ...(stacked ? stack(ys, shown) : ys)];
    const opts = {
      width,
      height,
      series,
      bands,
      scales: { x: { time: true, range: () => [start, end] } },
      axes: [{}, { size: 70, values: (u, ticks) => ticks.map(fmtValue) }],
      legend: { live: true },
      cursor: { points: { show: true } },
      tzDate: localTime ? undefined : (ts) => uPlot.tzDate(new Date(ts * 1000), "Etc/UTC"),
      hooks: {
        setSeries: [(u, si, opts2) => {
          if (!stacked || si === null || !opts2 || opts2.show === undefined) return;
          shown[si - 1] = opts2.show;
          u.setData(data());
        }],
      },
    };
    return new uPlot(opts, data(), target);
  }

  return { draw, align, stack, fmtValue, COLORS };
})();
