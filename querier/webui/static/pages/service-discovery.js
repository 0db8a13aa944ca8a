// The Service discovery page (as Prometheus's /service-discovery): per scrape pool, each discovered target's
// labels before relabeling next to its target labels after, and the targets relabeling dropped ("Dropped").
"use strict";
Shardmon.mount(async (app) => {
  const { api, el, labelBadges, matchesText, labelTexts } = Shardmon;
  const data = await api("/api/v1/targets", { state: "any" });
  const active = data.activeTargets || [];
  const dropped = data.droppedTargets || [];

  // Pools in the order the targets name them; a dropped target's pool is its discovered `job` label.
  const pools = new Map();
  const pool = (name) => {
    if (!pools.has(name)) pools.set(name, []);
    return pools.get(name);
  };
  for (const t of active) pool(t.scrapePool).push({ discovered: t.discoveredLabels, labels: t.labels });
  for (const t of dropped) pool(t.discoveredLabels.job || "(unknown pool)").push({ discovered: t.discoveredLabels, labels: null });

  const search = el("input", { type: "search", id: "filter-text", placeholder: "Filter by labels", size: 40 });
  app.append(
    el("h1", {}, "Service Discovery"),
    el("p", { id: "sd-summary" }, `${active.length} active targets, `,
      el("span", { id: "dropped-count" }, String(dropped.length)), " dropped targets"),
    el("ul", { class: "pool-index" }, [...pools].map(([name, items]) => {
      const n = items.filter((i) => i.labels).length;
      return el("li", {}, el("a", { href: `#pool-${encodeURIComponent(name)}` }, name),
        ` (${n} / ${items.length} active targets)`);
    })),
    el("div", { class: "toolbar" }, search));

  const rows = [];
  for (const [name, items] of pools) {
    const active = items.filter((i) => i.labels).length;
    const tbody = el("tbody");
    for (const item of items) {
      const row = el("tr", { class: item.labels ? "sd-target" : "sd-target sd-dropped" },
        el("td", {}, labelBadges(item.discovered)),
        item.labels ? el("td", {}, labelBadges(item.labels)) : el("td", { class: "dropped" }, "Dropped"));
      tbody.append(row);
      rows.push({ row, texts: [labelTexts(item.discovered), labelTexts(item.labels)] });
    }
    app.append(el("details", { class: "pool", open: true, id: `pool-${encodeURIComponent(name)}`, dataset: { pool: name } },
      el("summary", {}, name, el("span", { class: "count" }, `${active} / ${items.length} active targets`)),
      el("table", {},
        el("thead", {}, el("tr", {}, el("th", { style: "width:50%" }, "Discovered Labels"), el("th", {}, "Target Labels"))),
        tbody)));
  }
  if (!pools.size) app.append(el("p", { class: "muted" }, "No targets discovered."));
  search.addEventListener("input", () => {
    const q = search.value.trim();
    for (const { row, texts } of rows) row.hidden = !!q && !matchesText(q, texts);
  });
});
