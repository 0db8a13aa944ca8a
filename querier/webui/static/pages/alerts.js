// The Alerts page (as Prometheus's /alerts): every alerting rule of /api/v1/rules?type=alert by group, in its
// state (inactive, pending, firing; the counts per state as Prometheus counts rules), with its definition and
// its active alerts (labels, state, active since, value, annotations); filters by state and text. The line
// above them sums /api/v1/alerts, what an Alertmanager would be sent.
"use strict";
Shardmon.mount(async (app) => {
  const { api, el, labelBadges, fmtTime, fmtAgo, ruleDefinition, matchesText, labelTexts } = Shardmon;
  const [rules, alerts] = await Promise.all([api("/api/v1/rules", { type: "alert" }), api("/api/v1/alerts")]);
  const groups = rules.groups || [];
  const STATES = ["inactive", "pending", "firing"];
  const counts = { inactive: 0, pending: 0, firing: 0 };
  for (const g of groups) for (const r of g.rules) counts[r.state] = (counts[r.state] || 0) + 1;
  const active = alerts.alerts || [];

  const show = { inactive: true, pending: true, firing: true, annotations: false, text: "" };
  const boxes = STATES.map((s) => {
    const box = el("input", { type: "checkbox", id: `show-${s}`, checked: true });
    box.addEventListener("change", () => { show[s] = box.checked; apply(); });
    return el("label", { class: `filter-${s}` }, box, " ",
      el("span", { class: `state-${s}`, id: `count-${s}` }, `${s[0].toUpperCase()}${s.slice(1)} (${counts[s] || 0})`));
  });
  const annBox = el("input", { type: "checkbox", id: "show-annotations" });
  annBox.addEventListener("change", () => { show.annotations = annBox.checked; apply(); });
  const search = el("input", { type: "search", id: "filter-text", placeholder: "Filter by name or labels", size: 30 });
  search.addEventListener("input", () => { show.text = search.value.trim(); apply(); });
  const firing = active.filter((a) => a.state === "firing").length;
  app.append(el("h1", {}, "Alerts"),
    el("div", { class: "toolbar" }, ...boxes, search, el("label", {}, annBox, " Show annotations")),
    el("p", { class: "muted", id: "alerts-summary" },
      `${active.length} active alerts (${firing} firing, ${active.length - firing} pending)`));
  if (!groups.length) app.append(el("p", { class: "muted" }, "No alerting rules are loaded."));

  const panels = []; // [{panel, rule, groupSection, annotationCells}]
  const sections = [];
  for (const g of groups) {
    const section = el("div", { class: "alert-group", dataset: { group: g.name } },
      el("h2", {}, `${g.file} > ${g.name}`));
    for (const r of g.rules) {
      const annCells = [];
      const alertRows = (r.alerts || []).map((a) => {
        const ann = el("td", { class: "annotations", hidden: true },
          Object.entries(a.annotations || {}).map(([k, v]) => el("div", {}, el("strong", {}, `${k}: `), v)));
        annCells.push(ann);
        return el("tr", { class: "alert", dataset: { state: a.state } },
          el("td", {}, labelBadges(a.labels)),
          el("td", {}, el("span", { class: `state-${a.state}` }, a.state.toUpperCase())),
          el("td", { title: fmtAgo(a.activeAt) }, fmtTime(a.activeAt)),
          el("td", { class: "num" }, a.value),
          ann);
      });
      const annHead = el("th", { hidden: true }, "Annotations");
      annCells.push(annHead);
      const n = (r.alerts || []).length;
      const panel = el("details", { class: "rule", dataset: { name: r.name, state: r.state } },
        el("summary", {}, el("span", { class: `state-${r.state}` }, r.name),
          el("span", { class: "count" }, `${r.state} · ${n} active`)),
        el("div", { class: "body" },
          el("div", { class: "code" }, ruleDefinition(r)),
          n ? el("table", {},
            el("thead", {}, el("tr", {}, ["Labels", "State", "Active Since", "Value"].map((h) => el("th", {}, h)), annHead)),
            el("tbody", {}, alertRows)) : null));
      if (r.state !== "inactive") panel.open = true;
      section.append(panel);
      panels.push({ panel, rule: r, section, annCells });
    }
    sections.push(section);
    app.append(section);
  }

  function apply() {
    const visible = new Set();
    for (const { panel, rule, section, annCells } of panels) {
      const texts = [rule.name, labelTexts(rule.labels), (rule.alerts || []).map((a) => labelTexts(a.labels))];
      const ok = show[rule.state] && (!show.text || matchesText(show.text, texts));
      panel.hidden = !ok;
      if (ok) visible.add(section);
      for (const cell of annCells) cell.hidden = !show.annotations;
    }
    for (const section of sections) section.hidden = !visible.has(section);
  }
  apply();
});
