// The Status page (placeholder until it is built).
"use strict";
Shardmon.mount(async (app) => {
  app.append(Shardmon.el("h1", {}, "Status"), Shardmon.el("p", {class: "muted"}, "Not built yet."));
});
