// The Query page (/graph), Prometheus 2.42's expression browser: panels (static/pages/graph/panel.js) read
// from Prometheus's URL parameters (g<N>.expr, g<N>.tab, ...: static/pages/graph/params.js) at load and
// written back with history.replaceState as they change; "Add Panel"; "Use local time" for the axes and
// time inputs (kept in localStorage, as Prometheus keeps its settings).
"use strict";
Shardmon.mount(async (app) => {
  const { el } = Shardmon;
  const P = ShardmonGraph.params;
  const LOCAL_TIME_KEY = "shardmon.useLocalTime";
  const settings = { localTime: localStorage.getItem(LOCAL_TIME_KEY) === "true" };
  const panels = [];
  const list = el("div", { class: "query-panels" });

  const writeUrl = () => {
    const url = `${location.pathname}${P.encode(panels.map((p) => p.options))}`;
    if (url !== `${location.pathname}${location.search}`) history.replaceState(null, "", url);
  };

  function add(options, run) {
    const panel = new ShardmonGraph.Panel(options, {
      settings,
      onChange: writeUrl,
      onRemove: (p) => {
        if (p.abort) p.abort.abort();
        if (p.chart) p.chart.destroy();
        panels.splice(panels.indexOf(p), 1);
        p.root.remove();
        writeUrl();
      },
    });
    panels.push(panel);
    list.append(panel.root);
    panel.fit();
    if (run && panel.options.expr.trim() !== "") panel.execute();
    return panel;
  }

  const localTime = el("input", { type: "checkbox", id: "use-local-time" });
  localTime.checked = settings.localTime;
  localTime.addEventListener("change", () => {
    settings.localTime = localTime.checked;
    localStorage.setItem(LOCAL_TIME_KEY, String(settings.localTime));
    for (const p of panels) p.renderTab();
  });

  app.append(
    el("div", { class: "toolbar page-settings" },
      el("label", {}, localTime, " Use local time")),
    list,
    el("button", { type: "button", class: "add-panel", onclick: () => {
      add({}, false).input.focus();
      writeUrl();
    } }, "Add Panel"));

  const fromUrl = P.decode(location.search);
  if (fromUrl.length) {
    fromUrl.forEach((o) => add(o, true));
    writeUrl(); // in full, as Prometheus writes it
  } else {
    add({}, false); // the URL stays /graph until the panel changes
  }

  let resizeTimer = null;
  window.addEventListener("resize", () => {
    clearTimeout(resizeTimer);
    resizeTimer = setTimeout(() => panels.forEach((p) => p.resize()), 150);
  });
});
