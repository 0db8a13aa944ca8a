// The Rules page (as Prometheus's /rules): every rule group of /api/v1/rules (file, interval, last evaluation,
// evaluation time) and each rule's definition, health, last error, last evaluation and evaluation time.
"use strict";
Shardmon.mount(async (app) => {
  const { api, el, fmtAgo, fmtDuration, fmtSeconds, ruleDefinition, matchesText, labelTexts } = Shardmon;
  const data = await api("/api/v1/rules");
  const groups = data.groups || [];
  const search = el("input", { type: "search", id: "filter-text", placeholder: "Filter by name, expression or labels",
    size: 40 });
  const nRules = groups.reduce((n, g) => n + g.rules.length, 0);
  const nBad = groups.reduce((n, g) => n + g.rules.filter((r) => r.health === "err").length, 0);
  app.append(el("h1", {}, "Rules"),
    el("p", { id: "rules-summary" }, `${groups.length} groups, ${nRules} rules`,
      nBad ? el("span", { class: "count bad" }, `${nBad} with errors`) : null),
    el("div", { class: "toolbar" }, search));
  if (!groups.length) app.append(el("p", { class: "muted" }, "No rule groups are loaded."));

  const rows = [];
  for (const g of groups) {
    const tbody = el("tbody");
    for (const r of g.rules) {
      const row = el("tr", { class: "rule", dataset: { name: r.name, health: r.health, type: r.type } },
        el("td", {}, ruleDefinition(r)),
        el("td", {}, el("span", { class: `health-${r.health}` }, r.health.toUpperCase())),
        el("td", { class: "err" }, r.lastError || ""),
        el("td", { title: r.lastEvaluation }, fmtAgo(r.lastEvaluation)),
        el("td", { class: "num" }, fmtSeconds(r.evaluationTime)));
      tbody.append(row);
      rows.push({ row, texts: [r.name, r.query, labelTexts(r.labels)] });
    }
    app.append(el("details", { class: "group", open: true, id: `group-${g.file}-${g.name}`, dataset: { group: g.name } },
      el("summary", {}, g.name,
        el("span", { class: "muted", style: "font-weight:normal" },
          ` ${g.file} · every ${fmtDuration(g.interval)} · last evaluation ${fmtAgo(g.lastEvaluation)}`,
          ` · took ${fmtSeconds(g.evaluationTime)}`)),
      el("table", {},
        el("thead", {}, el("tr", {}, ["Rule", "State", "Error", "Last evaluation", "Evaluation time"]
          .map((h) => el("th", {}, h)))),
        tbody)));
  }
  search.addEventListener("input", () => {
    const q = search.value.trim();
    for (const { row, texts } of rows) row.hidden = !!q && !matchesText(q, texts);
  });
});
