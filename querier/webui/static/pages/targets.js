// The Targets page (as Prometheus's /targets): every active target of /api/v1/targets by scrape pool, with
// its health, the Shardmon scraper that owns it and that scraper's Ray node (/api/v1/scrapers), its labels
// (the discovered ones on demand), last scrape, duration and error. Filters: unhealthy only, free text.
"use strict";
Shardmon.mount(async (app) => {
  const { api, el, labelBadges, fmtAgo, fmtSeconds, matchesText, labelTexts, errorBox } = Shardmon;
  const params = new URLSearchParams(location.search);
  const state = { unhealthy: params.get("health") === "unhealthy", text: params.get("search") || "" };

  const [data, scrapers] = await Promise.all([
    api("/api/v1/targets", { state: "active" }),
    api("/api/v1/scrapers").catch((err) => err), // the page works without it (no ingest API: an error shown)
  ]);
  const nodes = {};
  if (Array.isArray(scrapers)) for (const s of scrapers) nodes[s.scraper_id] = s;

  const pools = new Map();
  for (const t of data.activeTargets || []) {
    if (!pools.has(t.scrapePool)) pools.set(t.scrapePool, []);
    pools.get(t.scrapePool).push(t);
  }

  const unhealthyBtn = el("button", { type: "button", id: "filter-unhealthy" }, "Unhealthy only");
  const allBtn = el("button", { type: "button", id: "filter-all" }, "All");
  const search = el("input", { type: "search", id: "filter-text", placeholder: "Filter by endpoint or labels",
    value: state.text, size: 40 });
  const expand = el("button", { type: "button", id: "toggle-all" }, "Collapse all");
  const summary = el("span", { class: "muted", id: "targets-summary" });
  app.append(el("h1", {}, "Targets"), el("div", { class: "toolbar" }, allBtn, unhealthyBtn, search, expand, summary));
  if (!Array.isArray(scrapers)) {
    app.append(el("div", { class: "muted" }, "Scrapers unknown: ", errorBox(scrapers)));
  }
  if (!pools.size) app.append(el("p", { class: "muted" }, "No active targets."));

  const rows = []; // [{target, row, pool}]
  const sections = [];
  for (const [pool, targets] of pools) {
    const up = targets.filter((t) => t.health === "up").length;
    const count = el("span", { class: `count ${up === targets.length ? "ok" : "bad"}` }, `${up}/${targets.length} up`);
    const tbody = el("tbody");
    const section = el("details", { class: "pool targets-pool", open: true, dataset: { pool } },
      el("summary", {}, pool, count),
      el("table", {},
        el("thead", {}, el("tr", {}, ["Endpoint", "State", "Labels", "Scraper", "Last scrape", "Scrape duration",
          "Error"].map((h) => el("th", {}, h)))),
        tbody));
    for (const t of targets) {
      const scraper = nodes[t.scraper];
      const discovered = el("div", { class: "discovered", hidden: true },
        el("div", { class: "muted" }, "Before relabeling:"), labelBadges(t.discoveredLabels));
      const toggle = el("button", { type: "button", class: "linkish show-discovered" }, "show discovered labels");
      toggle.addEventListener("click", () => {
        discovered.hidden = !discovered.hidden;
        toggle.textContent = discovered.hidden ? "show discovered labels" : "hide discovered labels";
      });
      const row = el("tr", { class: "target", dataset: { url: t.scrapeUrl, health: t.health, pool } },
        el("td", {}, el("a", { href: t.scrapeUrl, rel: "noreferrer" }, t.scrapeUrl)),
        el("td", { class: "health" }, el("span", { class: `health-${t.health}` }, t.health.toUpperCase())),
        el("td", {}, labelBadges(t.labels), el("div", {}, toggle), discovered),
        el("td", { class: "scraper" }, t.scraper || "-",
          scraper ? el("div", { class: "muted" }, `node ${scraper.node_ip || "?"}`,
            scraper.state && scraper.state !== "running" ? ` (${scraper.state})` : "") : null),
        el("td", { title: t.lastScrape }, fmtAgo(t.lastScrape)),
        el("td", { class: "num" }, t.lastScrapeDuration ? fmtSeconds(t.lastScrapeDuration) : "-"),
        el("td", { class: "err" }, t.lastError || ""));
      tbody.append(row);
      rows.push({ target: t, row, pool });
    }
    sections.push({ section, pool, targets });
    app.append(section);
  }

  function apply() {
    let shown = 0;
    const visible = new Map();
    for (const { target: t, row, pool } of rows) {
      const ok = (!state.unhealthy || t.health !== "up") &&
        (!state.text || matchesText(state.text, t.scrapeUrl, labelTexts(t.labels)));
      row.hidden = !ok;
      if (ok) { shown++; visible.set(pool, (visible.get(pool) || 0) + 1); }
    }
    for (const { section, pool } of sections) section.hidden = !visible.get(pool);
    summary.textContent = `${shown} of ${rows.length} targets shown`;
    unhealthyBtn.classList.toggle("primary", state.unhealthy);
    allBtn.classList.toggle("primary", !state.unhealthy);
    const q = new URLSearchParams();
    if (state.unhealthy) q.set("health", "unhealthy");
    if (state.text) q.set("search", state.text);
    history.replaceState(null, "", q.toString() ? `?${q}` : location.pathname);
  }
  allBtn.addEventListener("click", () => { state.unhealthy = false; apply(); });
  unhealthyBtn.addEventListener("click", () => { state.unhealthy = true; apply(); });
  search.addEventListener("input", () => { state.text = search.value.trim(); apply(); });
  expand.addEventListener("click", () => {
    const open = expand.textContent === "Expand all";
    for (const { section } of sections) section.open = open;
    expand.textContent = open ? "Collapse all" : "Expand all";
  });
  apply();
});
