// The Service discovery page (placeholder until it is built).
"use strict";
Shardmon.mount(async (app) => {
  app.append(Shardmon.el("h1", {}, "Service discovery"), Shardmon.el("p", {class: "muted"}, "Not built yet."));
});
