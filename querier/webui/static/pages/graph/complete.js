// The Query page's autocompletion: what the text before the caret asks for (a metric or function name, a
// label name, a label value) and a dropdown under the expression field (up/down, Enter or Tab, Escape,
// click). Names come from /api/v1/label/__name__/values, /api/v1/labels and /api/v1/label/<name>/values,
// each fetched once per page and shared by every panel.
"use strict";
window.ShardmonGraph = window.ShardmonGraph || {};
ShardmonGraph.complete = (() => {
  const { api, el } = Shardmon;
  const MAX_ITEMS = 50;

  const FUNCTIONS = ["abs", "absent", "absent_over_time", "avg_over_time", "ceil", "changes", "clamp", "clamp_max",
    "clamp_min", "count_over_time", "day_of_month", "day_of_week", "day_of_year", "days_in_month", "delta", "deriv",
    "exp", "floor", "histogram_quantile", "holt_winters", "hour", "idelta", "increase", "irate", "label_join",
    "label_replace", "last_over_time", "ln", "log10", "log2", "max_over_time", "min_over_time", "minute", "month",
    "predict_linear", "present_over_time", "quantile_over_time", "rate", "resets", "round", "scalar", "sgn", "sort",
    "sort_desc", "sqrt", "stddev_over_time", "stdvar_over_time", "sum_over_time", "time", "timestamp", "vector",
    "year", "acos", "acosh", "asin", "asinh", "atan", "atanh", "cos", "cosh", "deg", "pi", "rad", "sin", "sinh", "tan",
    "tanh"];
  const AGGREGATIONS = ["sum", "min", "max", "avg", "group", "stddev", "stdvar", "count", "count_values", "bottomk",
    "topk", "quantile"];
  const KEYWORDS = ["by", "without", "on", "ignoring", "group_left", "group_right", "offset", "bool", "and", "or",
    "unless"];
  const LABEL_LIST_KEYWORDS = new Set(["by", "without", "on", "ignoring", "group_left", "group_right"]);

  const cache = new Map(); // API path -> Promise of a list of strings
  function fetchList(path) {
    if (!cache.has(path)) {
      cache.set(path, api(path).then((data) => data || []).catch((err) => {
        cache.delete(path); // try again next time
        throw err;
      }));
    }
    return cache.get(path);
  }
  const metricNames = () => fetchList("/api/v1/label/__name__/values");
  const labelNames = () => fetchList("/api/v1/labels");
  const labelValues = (name) => fetchList(`/api/v1/label/${encodeURIComponent(name)}/values`);

  // What the text before the caret is in the middle of: {kind: "metric"|"label"|"value", prefix, label?}.
  function context(before) {
    let quote = null;
    let braceStart = -1;
    const parens = []; // for each open "(", the word before it
    for (let i = 0; i < before.length; i++) {
      const c = before[i];
      if (quote) {
        if (c === "\\") i++;
        else if (c === quote) quote = null;
      } else if (c === '"' || c === "'" || c === "`") quote = c;
      else if (c === "{") braceStart = i;
      else if (c === "}") braceStart = -1;
      else if (c === "(") parens.push((before.slice(0, i).match(/([a-z_]+)\s*$/i) || [])[1] || "");
      else if (c === ")") parens.pop();
      else if (c === "#") { // a comment runs to the end of the line
        const nl = before.indexOf("\n", i);
        if (nl < 0) return null;
        i = nl;
      }
    }
    if (braceStart >= 0) {
      const inside = before.slice(braceStart + 1);
      const value = inside.match(/([a-zA-Z_]\w*)\s*(?:=~|!~|!=|=)\s*(["'])((?:[^"'\\]|\\.)*)$/);
      if (value) return { kind: "value", label: value[1], prefix: value[3], quote: value[2] };
      if (quote) return null;
      const name = inside.match(/(?:^|,)\s*([a-zA-Z_]\w*)?$/);
      return name ? { kind: "label", prefix: name[1] || "" } : null;
    }
    if (quote) return null;
    if (parens.length && LABEL_LIST_KEYWORDS.has(parens[parens.length - 1].toLowerCase())) {
      const name = before.match(/(?:\(|,)\s*([a-zA-Z_]\w*)?$/);
      return name ? { kind: "label", prefix: name[1] || "" } : null;
    }
    const word = before.match(/([a-zA-Z_:][\w:]*)$/);
    if (!word || /[\d.]$/.test(before.slice(0, before.length - word[1].length))) return null;
    if (/\[[^\]]*$/.test(before)) return null; // a duration inside [...]
    return { kind: "metric", prefix: word[1] };
  }

  // The candidates for a context: prefix matches first, then those that contain it; at most MAX_ITEMS.
  async function candidates(ctx) {
    let pool;
    if (ctx.kind === "metric") {
      pool = [...(await metricNames()), ...FUNCTIONS, ...AGGREGATIONS, ...KEYWORDS];
    } else if (ctx.kind === "label") {
      pool = (await labelNames()).filter((n) => n !== "__name__");
    } else {
      pool = await labelValues(ctx.label);
    }
    const p = ctx.prefix.toLowerCase();
    const starts = [];
    const contains = [];
    for (const item of new Set(pool)) {
      const low = item.toLowerCase();
      if (item === ctx.prefix) continue; // already typed
      if (low.startsWith(p)) starts.push(item);
      else if (p && low.includes(p)) contains.push(item);
    }
    starts.sort();
    contains.sort();
    return [...starts, ...contains].slice(0, MAX_ITEMS);
  }

  // Attach a completion dropdown to the <textarea> `input` (its parent is position: relative). Returns
  // {isOpen(), close()} so the panel can tell whether Enter belongs to the dropdown.
  function attach(input) {
    const list = el("ul", { class: "completion", role: "listbox", hidden: true });
    input.after(list);
    let items = [];
    let active = -1;
    let ctx = null;
    let generation = 0;

    const isOpen = () => !list.hidden && items.length > 0;
    function close() {
      list.hidden = true;
      items = [];
      active = -1;
    }
    function highlight(i) {
      active = (i + items.length) % items.length;
      [...list.children].forEach((li, j) => li.classList.toggle("active", j === active));
      const li = list.children[active];
      if (li) li.scrollIntoView({ block: "nearest" });
    }
    function accept(i) {
      const item = items[i];
      if (item === undefined || !ctx) return;
      const pos = input.selectionStart;
      const start = pos - ctx.prefix.length;
      let text = item;
      if (ctx.kind === "value") {
        text = item.replace(/\\/g, "\\\\").replace(new RegExp(ctx.quote, "g"), `\\${ctx.quote}`);
        if (input.value[pos] !== ctx.quote) text += ctx.quote;
      }
      input.value = input.value.slice(0, start) + text + input.value.slice(pos);
      const caret = start + text.length;
      input.setSelectionRange(caret, caret);
      close();
      input.dispatchEvent(new Event("input", { bubbles: true }));
      input.focus();
    }
    async function update() {
      const mine = ++generation;
      const pos = input.selectionStart;
      ctx = pos === input.selectionEnd ? context(input.value.slice(0, pos)) : null;
      if (!ctx || (ctx.kind === "metric" && ctx.prefix === "")) return close();
      let found;
      try {
        found = await candidates(ctx);
      } catch (err) {
        return close(); // no completion when the label APIs fail; the query itself still runs
      }
      if (mine !== generation || document.activeElement !== input) return undefined;
      items = found;
      if (!items.length) return close();
      list.replaceChildren(...items.map((item, i) => el("li", {
        role: "option",
        class: "completion-item",
        onmousedown: (e) => { e.preventDefault(); accept(i); },
      }, item)));
      list.hidden = false;
      highlight(0);
      return undefined;
    }

    input.addEventListener("input", update);
    input.addEventListener("blur", () => setTimeout(close, 100));
    input.addEventListener("keydown", (e) => {
      if (!isOpen()) return;
      if (e.key === "ArrowDown") highlight(active + 1);
      else if (e.key === "ArrowUp") highlight(active - 1);
      else if ((e.key === "Enter" && !e.shiftKey) || e.key === "Tab") accept(active);
      else if (e.key === "Escape") close();
      else return;
      e.preventDefault();
      e.stopImmediatePropagation();
    });
    return { isOpen, close };
  }

  return { attach, context, candidates, metricNames };
})();
