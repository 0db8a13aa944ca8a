// One panel of the Query page: the expression field (with completion; Enter runs it, Shift+Enter a new
// line), the API's error (a parse error's position marked by a caret under the expression), the Table tab
// (an instant query at the evaluation time) and the Graph tab (a range query: range, end time, resolution,
// lines or stacked), and the query's stats. `onChange` is called whenever the panel's options change.
"use strict";
window.ShardmonGraph = window.ShardmonGraph || {};
ShardmonGraph.Panel = (() => {
  const { api, el, ApiError } = Shardmon;
  const P = ShardmonGraph.params;

  // "1:5: parse error: ..." anywhere in an error text -> {line, column} (1-based), else null.
  function errorPosition(message) {
    const m = String(message).match(/(?:^|\s|")(\d+):(\d+): parse error/);
    return m ? { line: parseInt(m[1], 10), column: parseInt(m[2], 10) } : null;
  }

  // The expression's line with a caret under the position's column.
  function caret(expr, pos) {
    const lines = expr.split("\n");
    const text = lines[pos.line - 1] === undefined ? "" : lines[pos.line - 1];
    const col = Math.max(0, Math.min(pos.column - 1, text.length));
    return el("pre", { class: "error-caret", dataset: { line: pos.line, column: pos.column } },
      text, "\n", " ".repeat(col), el("span", { class: "caret-mark" }, "^"));
  }

  class Panel {
    constructor(options, { onChange, onRemove, settings }) {
      this.options = { ...P.defaults(), ...options };
      this.onChange = onChange;
      this.settings = settings; // {localTime}
      this.chart = null;
      this.abort = null;
      this.data = null;
      this.lastRange = null;
      this.root = this.build(onRemove);
    }

    build(onRemove) {
      this.input = el("textarea", {
        class: "expr-input", rows: 1, spellcheck: "false", autocomplete: "off",
        placeholder: "Expression (press Shift+Enter for newlines)", "aria-label": "Expression",
      });
      this.input.value = this.options.expr;
      const wrap = el("div", { class: "expr-wrap" }, this.input);
      this.completion = ShardmonGraph.complete.attach(this.input); // its keydown handler runs first
      this.input.addEventListener("keydown", (e) => {
        if (e.key === "Enter" && !e.shiftKey) {
          e.preventDefault();
          this.execute();
        }
      });
      this.input.addEventListener("input", () => this.fit());
      this.message = el("div", { class: "query-error" });
      this.stats = el("span", { class: "query-stats muted" });
      this.tabs = [
        el("button", { type: "button", class: "tab", dataset: { tab: "1" }, onclick: () => this.setTab(1) }, "Table"),
        el("button", { type: "button", class: "tab", dataset: { tab: "0" }, onclick: () => this.setTab(0) }, "Graph"),
      ];
      this.body = el("div", { class: "tab-body" });
      const root = el("section", { class: "panel query-panel" },
        el("div", { class: "expr-row" },
          wrap,
          el("button", { type: "button", class: "primary execute", onclick: () => this.execute() }, "Execute")),
        this.message,
        el("div", { class: "tabs" }, this.tabs, this.stats),
        this.body,
        el("div", { class: "panel-footer" },
          el("button", { type: "button", class: "remove-panel", onclick: () => onRemove(this) }, "Remove Panel")));
      this.renderTab();
      return root;
    }

    fit() {
      this.input.rows = Math.min(Math.max(this.input.value.split("\n").length, 1), 12);
    }

    setOptions(change, rerun = true) {
      Object.assign(this.options, change);
      this.onChange();
      if (rerun) this.execute();
    }

    setTab(tab) {
      if (tab === this.options.tab) return;
      this.options.tab = tab;
      this.data = null;
      this.renderTab();
      this.setOptions({}, true);
    }

    // The time input (end time / evaluation time) with a step back and forward by the range, as 2.42's.
    timeInput(placeholder) {
      const local = this.settings.localTime;
      const input = el("input", { type: "text", class: "time-input", placeholder, "aria-label": placeholder,
        title: `YYYY-MM-DD HH:mm:ss (${local ? "local time" : "UTC"}); empty for now` });
      input.value = this.options.endTime === null ? "" : P.formatTime(this.options.endTime, local);
      const set = (t) => {
        input.value = t === null ? "" : P.formatTime(t, local);
        input.classList.remove("invalid");
        this.setOptions({ endTime: t });
      };
      const commit = () => {
        const text = input.value.trim();
        if (text === "") return this.options.endTime === null ? undefined : set(null);
        const t = P.parseTime(text, local);
        if (isNaN(t)) return input.classList.add("invalid");
        return t === this.options.endTime ? undefined : set(t);
      };
      input.addEventListener("change", commit);
      input.addEventListener("keydown", (e) => { if (e.key === "Enter") commit(); });
      const shift = (sign) => set((this.options.endTime === null ? Date.now() : this.options.endTime)
        + sign * this.options.range / 2);
      return el("span", { class: "input-group" },
        el("button", { type: "button", title: "Earlier", onclick: () => shift(-1) }, "\u2039"),
        input,
        el("button", { type: "button", title: "Later", onclick: () => shift(1) }, "\u203a"),
        el("button", { type: "button", title: "Now", class: "clear-time", onclick: () => set(null) }, "\u00d7"));
    }

    graphControls() {
      const range = el("input", { type: "text", class: "range-input", "aria-label": "Range", size: 6 });
      range.value = P.formatDuration(this.options.range);
      const setRange = (ms) => {
        range.value = P.formatDuration(ms);
        range.classList.remove("invalid");
        if (ms === this.options.range) return;
        res.placeholder = `Res. (s): ${P.step({ ...this.options, range: ms, resolution: null })}`;
        this.setOptions({ range: ms });
      };
      const commitRange = () => {
        const ms = P.parseDuration(range.value);
        if (ms === null || ms <= 0) range.classList.add("invalid");
        else setRange(ms);
      };
      range.addEventListener("change", commitRange);
      range.addEventListener("keydown", (e) => { if (e.key === "Enter") commitRange(); });
      const res = el("input", { type: "text", class: "resolution-input", "aria-label": "Resolution", size: 8,
        placeholder: `Res. (s): ${P.step({ ...this.options, resolution: null })}` });
      res.value = this.options.resolution ? String(this.options.resolution) : "";
      res.addEventListener("change", () => {
        const v = parseInt(res.value, 10);
        this.setOptions({ resolution: v > 0 ? v : null });
        res.value = v > 0 ? String(v) : "";
      });
      const stackButton = (stacked, label) => el("button", {
        type: "button", class: `stack-toggle${this.options.stacked === stacked ? " active" : ""}`,
        dataset: { stacked: stacked ? "1" : "0" },
        onclick: () => {
          if (this.options.stacked === stacked) return;
          this.setOptions({ stacked }, false);
          for (const b of this.body.querySelectorAll(".stack-toggle")) {
            b.classList.toggle("active", b.dataset.stacked === (stacked ? "1" : "0"));
          }
          this.renderResult();
        },
      }, label);
      return el("div", { class: "toolbar graph-controls" },
        el("span", { class: "input-group" },
          el("button", { type: "button", title: "Decrease range", onclick: () => setRange(P.narrowerRange(this.options.range)) }, "\u2212"),
          range,
          el("button", { type: "button", title: "Increase range", onclick: () => setRange(P.widerRange(this.options.range)) }, "+")),
        this.timeInput("End time"),
        res,
        el("span", { class: "input-group" }, stackButton(false, "Lines"), stackButton(true, "Stacked")));
    }

    // The tab's controls and its result (after a change of tab or of the time zone setting).
    renderTab() {
      for (const b of this.tabs) b.classList.toggle("active", b.dataset.tab === String(this.options.tab));
      this.resultBox = el("div", { class: this.options.tab === 1 ? "table-result" : "graph-chart" });
      this.body.replaceChildren(this.options.tab === 1
        ? el("div", { class: "toolbar table-controls" }, this.timeInput("Evaluation time"))
        : this.graphControls(), this.resultBox);
      this.renderResult();
    }

    // The result alone (after a query), leaving the controls as they are.
    renderResult() {
      if (this.chart) {
        this.chart.destroy();
        this.chart = null;
      }
      if (this.options.tab === 1) this.resultBox.replaceChildren(ShardmonGraph.table.render(this.data, this.settings));
      else this.drawGraph();
    }

    drawGraph() {
      this.chartBox = this.resultBox;
      this.chartBox.replaceChildren();
      if (!this.data || !this.lastRange) {
        this.chartBox.append(el("div", { class: "muted" }, "No data queried yet"));
        return;
      }
      if (this.data.resultType !== "matrix") {
        this.chartBox.append(el("div", { class: "muted" }, `A ${this.data.resultType} has no graph.`));
        return;
      }
      if (!this.data.result.length) {
        this.chartBox.append(el("div", { class: "muted empty-result" }, "Empty query result"));
        return;
      }
      const width = Math.max(300, this.body.clientWidth || this.root.clientWidth - 30);
      this.chart = ShardmonGraph.chart.draw(this.chartBox, this.data.result, {
        ...this.lastRange, stacked: this.options.stacked, localTime: this.settings.localTime, width,
      });
    }

    resize() {
      if (this.chart) this.chart.setSize({ width: Math.max(300, this.body.clientWidth), height: this.chart.height });
    }

    showError(err) {
      const text = err instanceof ApiError ? err.message : String(err && err.message || err);
      const pos = errorPosition(text);
      this.message.replaceChildren(
        pos ? caret(this.input.value, pos) : "",
        el("div", { class: "error", role: "alert" }, `Error executing query: ${text}`));
    }

    async execute() {
      this.options.expr = this.input.value;
      this.completion.close();
      this.onChange();
      if (this.abort) this.abort.abort();
      this.message.replaceChildren();
      this.stats.textContent = "";
      const expr = this.options.expr;
      if (expr.trim() === "") {
        this.data = null;
        this.renderResult();
        return;
      }
      const abort = new AbortController();
      this.abort = abort;
      const end = (this.options.endTime === null ? Date.now() : this.options.endTime) / 1000;
      const started = performance.now();
      const graph = this.options.tab === 0;
      const step = P.step(this.options);
      const start = end - this.options.range / 1000;
      this.root.classList.add("loading");
      try {
        const how = { method: "POST", signal: abort.signal, whole: true };
        const doc = graph
          ? await api("/api/v1/query_range", { query: expr, start, end, step }, how)
          : await api("/api/v1/query", { query: expr, time: end }, how);
        if (abort.signal.aborted) return;
        const data = doc.data;
        this.data = data;
        this.message.replaceChildren(...(doc.warnings || []).map((w) => el("div", { class: "warning" }, w)));
        this.lastRange = { start, end, step };
        const took = (performance.now() - started) / 1000;
        const parts = [`Load time: ${Shardmon.fmtDuration(took)}`];
        if (graph) parts.push(`Resolution: ${step}s`);
        parts.push(`Result series: ${ShardmonGraph.table.count(data)}`);
        this.stats.textContent = parts.join("   ");
        this.renderResult();
      } catch (err) {
        if (err && err.name === "AbortError") return;
        this.data = null;
        this.renderResult();
        this.showError(err);
      } finally {
        if (this.abort === abort) this.abort = null;
        this.root.classList.remove("loading");
      }
    }
  }

  Panel.errorPosition = errorPosition;
  return Panel;
})();
