// The Cardinality page (placeholder until it is built).
"use strict";
Shardmon.mount(async (app) => {
  app.append(Shardmon.el("h1", {}, "Cardinality"), Shardmon.el("p", {class: "muted"}, "Not built yet."));
});
