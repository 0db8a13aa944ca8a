// The Cluster page: Shardmon's own view of the distributed system, from GET /api/v1/status/cluster
// (the components' own metrics and status APIs, gathered by the querier): the services, the shards,
// the scrapers, the rulers and the querier's recent slow queries. Refreshes every few seconds (a toggle).
"use strict";
(() => {
  const { el, api, fmtTime, fmtDuration, errorBox } = Shardmon;
  const REFRESH_MS = 5000;

  const none = () => el("span", { class: "muted", title: "not reported" }, "–");
  const num = (v, digits = 0) => (v === null || v === undefined ? none()
    : Number(v).toLocaleString("en-US", { maximumFractionDigits: digits, minimumFractionDigits: digits }));
  function bytes(v) {
    if (v === null || v === undefined) return none();
    const units = ["B", "KiB", "MiB", "GiB", "TiB"];
    let i = 0;
    while (v >= 1024 && i < units.length - 1) { v /= 1024; i++; }
    return `${v.toFixed(i ? 1 : 0)} ${units[i]}`;
  }
  const seconds = (v) => (v === null || v === undefined ? none() : fmtDuration(v));
  const health = (h) => el("span", { class: `health-${h === "up" || h === "down" ? h : "unknown"}` }, h);
  const errorText = (text) => (text ? el("span", { class: "cluster-error" }, text) : "");

  function table(columns, rows, empty) {
    if (!rows.length) return el("p", { class: "muted" }, empty);
    return el("table", {},
      el("thead", {}, el("tr", {}, columns.map(([title, cls]) => el("th", { class: cls }, title)))),
      el("tbody", {}, rows));
  }

  function components(data) {
    return el("div", { class: "cluster-components" }, data.components.map((c) =>
      el("div", { class: "panel cluster-component", dataset: { component: c.component } },
        el("strong", {}, c.component), " ", health(c.health),
        el("div", { class: "muted" }, c.address || "not configured"),
        c.health === "down" ? errorText(c.lastError) : "")));
  }

  function summary(data) {
    const t = data.totals;
    return el("p", { class: "cluster-summary" },
      `${t.shardsUp} of ${t.shards} shards up · `, num(t.activeSeries), " active series · ",
      num(t.samplesPerSecond, 1), " samples/s · Redis ", bytes(t.redisMemoryBytes),
      ` · replication factor ${data.replicationFactor}`);
  }

  function replication(s, rf) {
    const parts = [`RF ${rf}`];
    if (s.redisAppendOnly !== null && s.redisAppendOnly !== undefined) parts.push(s.redisAppendOnly ? "AOF on" : "AOF off");
    if (s.redisReplicas !== null && s.redisReplicas !== undefined) {
      parts.push(`${s.redisReplicas} Redis replica${s.redisReplicas === 1 ? "" : "s"}`);
    }
    const out = [parts.join(" · ")];
    if (s.redisDataLost) out.push(" ", el("span", { class: "health-down" }, "data lost"));
    return out;
  }

  function shards(data) {
    const rows = data.shards.map((s) => el("tr", { dataset: { shard: String(s.id) } },
      el("td", {}, String(s.id)),
      el("td", {}, s.address, el("div", { class: "muted" }, s.metricsAddress ? `metrics ${s.metricsAddress}` : "")),
      el("td", { class: "health" }, health(s.health)),
      el("td", { class: "num" }, num(s.activeSeries)),
      el("td", { class: "num" }, s.health === "up" && s.samplesPerSecond === null
        ? el("span", { class: "muted", title: "measured from the next refresh on" }, "…") : num(s.samplesPerSecond, 1)),
      el("td", { class: "num" }, num(s.walEntries)),
      el("td", { class: "num" }, num(s.blocks)),
      el("td", { class: "num" }, s.blocks === 0 ? el("span", { class: "muted", title: "no blocks yet" }, "–")
        : num(s.bytesPerSample, 2)),
      el("td", { class: "num" }, bytes(s.redisMemoryBytes),
        s.redisMaxMemoryBytes ? el("div", { class: "muted" }, "of ", bytes(s.redisMaxMemoryBytes)) : ""),
      el("td", {}, s.health === "up" ? replication(s, data.replicationFactor) : none()),
      el("td", {}, errorText(s.lastError))));
    return table([["Shard"], ["Address"], ["Health"], ["Active series", "num"], ["Samples/s", "num"],
      ["WAL entries", "num"], ["Blocks", "num"], ["Bytes/sample", "num"], ["Redis memory", "num"],
      ["Replication"], ["Error"]], rows, "No shards configured.");
  }

  function node(ip, id) {
    return [ip || none(), id ? el("div", { class: "muted", title: id }, id.slice(0, 12)) : ""];
  }

  function scrapers(data) {
    const rows = data.scrapers.map((s) => el("tr", { dataset: { scraper: s.id } },
      el("td", {}, s.id),
      el("td", { class: "health" }, health(s.health), s.state !== "running" ? el("div", { class: "muted" }, s.state) : ""),
      el("td", {}, node(s.nodeIp, s.nodeId)),
      el("td", { class: "num" }, num(s.targets)),
      el("td", { class: "num" }, seconds(s.eventLoopLagSeconds)),
      el("td", { class: "num" }, num(s.queuedSamples)),
      el("td", { class: "num" }, num(s.samplesPerSecond, 1)),
      el("td", {}, errorText(s.health === "down" ? s.lastError : ""))));
    return table([["Scraper"], ["Health"], ["Ray node"], ["Targets", "num"], ["Event-loop lag", "num"],
      ["Queued samples", "num"], ["Samples/s scraped", "num"], ["Error"]], rows,
    data.components.find((c) => c.component === "ingest")?.health === "up" ? "No scrapers." : "The ingest service did not answer.");
  }

  function rulers(data) {
    const rows = data.rulers.map((r) => el("tr", { dataset: { ruler: r.id } },
      el("td", {}, r.id),
      el("td", { class: "health" }, health(r.health)),
      el("td", {}, r.nodeIp || none()),
      el("td", { class: "num", title: r.groups.join("\n") }, String(r.groups.length)),
      el("td", { class: "num" }, seconds(r.lagSeconds)),
      el("td", { class: "num" }, num(r.missedIterations)),
      el("td", {}, errorText(r.lastError))));
    const service = data.components.find((c) => c.component === "rulers");
    return table([["Ruler"], ["Health"], ["Node"], ["Groups", "num"], ["Lag", "num"], ["Missed iterations", "num"],
      ["Error"]], rows, service && service.health === "unknown" ? "No rulers (no rule files)." : "No rulers answered.");
  }

  function slowQueries(data) {
    const log = data.slowQueries;
    const rows = log.queries.map((q) => el("tr", { class: "slow-query" },
      el("td", {}, fmtTime(q.startedAt)),
      el("td", { class: "num" }, fmtDuration(q.durationSeconds)),
      el("td", {}, el("a", { href: `/graph?g0.expr=${encodeURIComponent(q.query)}&g0.tab=${q.kind === "range" ? 0 : 1}` },
        el("code", {}, q.query))),
      el("td", {}, `${q.kind} (${q.api})`),
      el("td", { class: "num" }, num(q.series)),
      el("td", { class: "num" }, num(q.samples)),
      el("td", {}, q.clientIP, q.userAgent ? el("div", { class: "muted" }, q.userAgent) : ""),
      el("td", {}, q.outcome === "ok" ? "ok" : el("span", { class: "health-down" }, q.outcome))));
    const about = log.thresholdSeconds > 0
      ? `Queries that ran ${fmtDuration(log.thresholdSeconds)} or longer (querier.slow_query_threshold), the latest ${log.size}, newest first.`
      : "Off (querier.slow_query_threshold is 0).";
    return [el("p", { class: "muted" }, about),
      table([["Started"], ["Duration", "num"], ["Query"], ["Kind"], ["Series", "num"], ["Samples", "num"], ["Client"],
        ["Outcome"]], rows, "No slow queries.")];
  }

  function render(data) {
    return [
      components(data), summary(data),
      el("h2", {}, "Shards"), shards(data),
      el("h2", {}, "Scrapers"), scrapers(data),
      el("h2", {}, "Rulers"), rulers(data),
      el("h2", {}, "Slow queries"), slowQueries(data),
    ].flat();
  }

  Shardmon.mount(async (app) => {
    const toggle = el("input", { type: "checkbox", id: "cluster-refresh", checked: true });
    const stamp = el("span", { class: "muted", id: "cluster-updated" });
    const body = el("div", { id: "cluster-body" });
    app.append(el("h1", {}, "Cluster"),
      el("div", { class: "toolbar" }, el("label", {}, toggle, ` Refresh every ${REFRESH_MS / 1000}s`), stamp),
      body);
    let timer = null;
    let busy = false;
    let firstRates = true;
    async function load() {
      if (busy) return;
      busy = true;
      try {
        const data = await api("/api/v1/status/cluster");
        body.replaceChildren(...render(data));
        stamp.textContent = `updated ${fmtTime(data.time)}`;
        // Rates need two readings: the first answer has none, so ask again soon once.
        if (firstRates && data.shards.some((s) => s.health === "up" && s.samplesPerSecond === null)) {
          firstRates = false;
          setTimeout(load, 1500);
        }
      } catch (err) {
        body.replaceChildren(errorBox(err));
      } finally {
        busy = false;
      }
    }
    function schedule() {
      if (timer) clearInterval(timer);
      timer = toggle.checked ? setInterval(load, REFRESH_MS) : null;
    }
    toggle.addEventListener("change", () => { schedule(); if (toggle.checked) load(); });
    await load();
    schedule();
  });
})();
