// The Status page (Prometheus's /status, /config and /flags on one page): build information
// (/api/v1/status/buildinfo), runtime information (/api/v1/status/runtimeinfo), the loaded configuration with
// its secrets shown as <secret> (/api/v1/status/config) and the flag-equivalent settings (/api/v1/status/flags).
"use strict";
Shardmon.mount(async (app) => {
  const { api, el, fmtTime, errorBox } = Shardmon;
  // Each section loads on its own: one API failing leaves the others shown.
  const [build, runtime, config, flags] = await Promise.all(
    ["/api/v1/status/buildinfo", "/api/v1/status/runtimeinfo", "/api/v1/status/config", "/api/v1/status/flags"]
      .map((path) => api(path).catch((err) => ({ error: err }))));

  const table = (id, rows) => el("table", { id, class: "kv" },
    el("tbody", {}, rows.map(([k, v]) => el("tr", {}, el("th", { style: "width:30%" }, k), el("td", {}, v)))));
  const section = (id, title, body) => el("section", { id }, el("h2", {}, title), body);
  const or = (data, fn) => (data && data.error ? errorBox(data.error) : fn(data));

  app.append(el("h1", {}, "Status"));
  app.append(section("runtime", "Runtime Information", or(runtime, (r) => table("runtime-table", [
    ["Start time", fmtTime(r.startTime)],
    ["Working directory", r.CWD],
    ["Configuration reload", r.reloadConfigSuccess ? "Successful" : "Unsuccessful"],
    ["Last successful configuration reload", fmtTime(r.lastConfigTime)],
    ["WAL corruptions", String(r.corruptionCount)],
    ["Threads (goroutineCount)", String(r.goroutineCount)],
    ["Cores (GOMAXPROCS)", String(r.GOMAXPROCS)],
    ["GC thresholds (GOGC)", r.GOGC],
    ["GODEBUG", r.GODEBUG],
    ["Storage retention", r.storageRetention],
  ]))));
  app.append(section("build", "Build Information", or(build, (b) => table("build-table",
    [["Version", b.version], ["Revision", b.revision], ["Branch", b.branch], ["BuildUser", b.buildUser],
      ["BuildDate", b.buildDate], ["GoVersion", b.goVersion]]))));

  app.append(section("config", "Configuration", or(config, (c) => {
    const pre = el("pre", { class: "code", id: "config-yaml" }, c.yaml);
    const copy = el("button", { type: "button" }, "Copy to clipboard");
    copy.addEventListener("click", async () => {
      try {
        await navigator.clipboard.writeText(c.yaml);
        copy.textContent = "Copied";
      } catch (err) {
        copy.textContent = "Copying is not allowed here";
      }
    });
    return el("div", {}, el("div", { class: "toolbar" }, copy,
      el("span", { class: "muted" }, "Secrets are shown as <secret>.")), pre);
  })));

  app.append(section("flags", "Command-Line Flags (Shardmon's equivalent settings)", or(flags, (f) => {
    const search = el("input", { type: "search", id: "filter-flags", placeholder: "Filter by flag name or value", size: 40 });
    const rows = Object.keys(f).sort().map((k) => [k, el("tr", {}, el("th", { style: "width:30%" }, k), el("td", {}, f[k]))]);
    search.addEventListener("input", () => {
      const q = search.value.trim().toLowerCase();
      for (const [k, row] of rows) row.hidden = !!q && !`${k} ${f[k]}`.toLowerCase().includes(q);
    });
    return el("div", {}, el("div", { class: "toolbar" }, search),
      el("table", { id: "flags-table" }, el("tbody", {}, rows.map(([, row]) => row))));
  })));
});
