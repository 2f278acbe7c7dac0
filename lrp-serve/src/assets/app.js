// The lrp explorer: one page over the server's JSON API (docs/serve.md).
// The state of the view lives in the URL's fragment, so that a link
// restores it. Data reaches the page through textContent only.

import { el, heatmap, legend, fmt, matrixTable, curves, series } from "./views.js";

const $ = (id) => document.getElementById(id);
const EXAMPLE = "a gorgeous , witty , seductive film .";

// `lrp explain`'s defaults: keys left at them stay out of the request
// and of the URL.
const DEFAULTS = {
  method: "lrp", composite: "epsilon", gate_rule: "signal-take-all", eps: "0.001",
  bias_factor: "0", rules: "", steps: "50", target: "", position: "", output_text: "",
};

const state = {
  models: [],
  corpusRows: null,
  view: "explain",
  panels: [],
  // The encoder–decoder's chosen output token (a row of its matrices).
  outputRow: 0,
  corpus: { id: "", offset: 0, sort: "line", descending: false, filter: "", predicted: "" },
};

/** POSTs or GETs JSON; a refusal throws its one-line message. */
async function api(path, body) {
  const response = await fetch(path, body === undefined ? {} : {
    method: "POST",
    headers: { "Content-Type": "application/json" },
    body: JSON.stringify(body),
  });
  const text = await response.text();
  let data;
  try { data = JSON.parse(text); } catch { data = null; }
  if (!response.ok) throw new Error(data && data.error ? data.error : `HTTP ${response.status}`);
  return data;
}

function model() {
  return state.models.find((m) => m.name === $("model").value) || state.models[0];
}

function setStatus(message, error = false) {
  $("status").textContent = message;
  $("status").className = error ? "error" : "";
}

// ---- the URL ------------------------------------------------------------

const FIELDS = {
  text: "text", method: "method", target: "target", position: "position", composite: "composite",
  gate_rule: "gate-rule", eps: "eps", bias_factor: "bias-factor", rules: "rules", steps: "steps",
  output_text: "output-text",
};

function writeUrl() {
  const p = new URLSearchParams();
  p.set("view", state.view);
  p.set("model", $("model").value);
  for (const [key, id] of Object.entries(FIELDS)) {
    const value = $(id).value;
    if (value !== "" && value !== DEFAULTS[key]) p.set(key, value);
  }
  if (state.view === "compare") p.set("panels", JSON.stringify(state.panels.map(panelState)));
  if (state.view === "explain" && state.outputRow > 0) p.set("output_row", String(state.outputRow));
  if (state.view === "corpus") {
    const c = state.corpus;
    for (const key of ["id", "offset", "sort", "descending", "filter", "predicted"]) {
      if (c[key] !== "" && c[key] !== false && c[key] !== 0 && !(key === "sort" && c[key] === "line")) p.set(`corpus_${key}`, String(c[key]));
    }
  }
  const hash = `#${p.toString()}`;
  history.replaceState(null, "", hash);
  $("permalink").href = hash;
}

function readUrl() {
  const p = new URLSearchParams(location.hash.slice(1));
  if (p.has("model") && state.models.some((m) => m.name === p.get("model"))) $("model").value = p.get("model");
  onModel();
  for (const [key, id] of Object.entries(FIELDS)) {
    $(id).value = p.has(key) ? p.get(key) : DEFAULTS[key];
  }
  if (!p.has("text")) $("text").value = model().kind === "text" ? EXAMPLE : "";
  if (p.has("panels")) {
    try {
      const panels = JSON.parse(p.get("panels"));
      if (Array.isArray(panels)) state.panels = panels.slice(0, 6).map((s) => newPanel(s));
    } catch { /* a broken link keeps the default panels */ }
  }
  state.outputRow = Math.max(0, Math.floor(Number(p.get("output_row")) || 0));
  const c = state.corpus;
  c.id = p.get("corpus_id") || "";
  c.offset = Number(p.get("corpus_offset")) || 0;
  c.sort = p.get("corpus_sort") || "line";
  c.descending = p.get("corpus_descending") === "true";
  c.filter = p.get("corpus_filter") || "";
  c.predicted = p.get("corpus_predicted") || "";
  $("corpus-filter").value = c.filter;
  showMethodOptions();
  return p.get("view") || "explain";
}

// ---- models -------------------------------------------------------------

function labelOf(m, k) {
  return m.labels && m.labels[k] !== undefined ? `${k}: ${m.labels[k]}` : String(k);
}

function onModel() {
  const m = model();
  $("model-description").textContent = m.description || "(no description)";
  const target = $("target");
  target.replaceChildren(el("option", { value: "", text: m.kind === "seq2seq" ? "each step's token" : "predicted class" }));
  if (m.kind !== "seq2seq") {
    for (let k = 0; k < m.classes; k++) target.append(el("option", { value: String(k), text: labelOf(m, k) }));
  }
  $("position-label").hidden = !m.per_step;
  $("output-text-row").hidden = m.kind !== "seq2seq";
  $("text-label").textContent = m.kind === "vectors"
    ? `Input vectors: one time step a line, ${m.input_size} numbers each (Enter explains; Shift+Enter for a new line)`
    : "Text (Enter explains; Shift+Enter for a new line)";
  const predicted = $("corpus-predicted");
  predicted.replaceChildren(el("option", { value: "", text: "any" }));
  for (let k = 0; k < m.classes && m.kind !== "seq2seq"; k++) predicted.append(el("option", { value: String(k), text: labelOf(m, k) }));
  predicted.value = state.corpus.predicted;
}

function showMethodOptions() {
  const method = $("method").value;
  for (const node of document.querySelectorAll(".lrp-only")) node.hidden = method !== "lrp";
  for (const node of document.querySelectorAll(".ig-only")) node.hidden = method !== "ig";
}

// ---- the explain view ---------------------------------------------------

/** The request the form describes: only the keys not at their default. */
function requestFromForm(overrides = {}) {
  const m = model();
  const body = { model: m.name };
  const value = (key) => (key in overrides ? overrides[key] : $(FIELDS[key]).value);
  if (m.kind === "vectors") {
    body.vectors = parseVectors(value("text"), m.input_size);
    body.per_dimension = true;
  } else {
    body.text = value("text");
  }
  const method = value("method");
  if (method !== "lrp") body.method = method;
  if (value("target") !== "") body.target = Number(value("target"));
  if (m.per_step && value("position") !== "") body.position = Number(value("position"));
  if (method === "lrp") {
    if (value("composite") !== DEFAULTS.composite) body.composite = value("composite");
    if (value("gate_rule") !== DEFAULTS.gate_rule) body.gate_rule = value("gate_rule");
    if (value("eps") !== DEFAULTS.eps && value("eps") !== "") body.eps = Number(value("eps"));
    if (value("bias_factor") !== DEFAULTS.bias_factor) body.bias_factor = Number(value("bias_factor"));
    if (value("rules").trim() !== "") body.rules = value("rules").trim();
  }
  if (method === "ig" && value("steps") !== DEFAULTS.steps) body.steps = Number(value("steps"));
  if (m.kind === "seq2seq" && value("output_text").trim() !== "") body.output_text = value("output_text");
  return body;
}

function parseVectors(text, width) {
  const rows = text.split("\n").map((l) => l.trim()).filter((l) => l !== "");
  return rows.map((line, t) => {
    const numbers = line.split(/[\s,;]+/).filter((x) => x !== "").map(Number);
    if (numbers.length !== width || numbers.some((x) => !Number.isFinite(x))) {
      throw new Error(`line ${t + 1}: give ${width} numbers`);
    }
    return numbers;
  });
}

let explaining = 0;

/** Explains the form's input; `keepRow` keeps the chosen output token
 * (a link being restored), else a new explanation starts at the first. */
async function explain(keepRow = false) {
  if (keepRow !== true) state.outputRow = 0;
  writeUrl();
  const run = ++explaining;
  let body;
  try {
    body = requestFromForm();
  } catch (e) {
    setStatus(e.message, true);
    return;
  }
  setStatus("Explaining…");
  try {
    const report = await api("/api/explain", body);
    if (run !== explaining) return;
    $("result").hidden = false;
    if (Array.isArray(report)) showSeq2seq(report);
    else showReport(report, body);
    setStatus("");
  } catch (e) {
    if (run === explaining) setStatus(e.message, true);
  }
}

function showReport(report, body) {
  const m = model();
  $("seq2seq").replaceChildren();
  const tokens = report.tokens || report.token_relevance.map((_, t) => `#${t}`);
  if (m.kind === "vectors" && report.input_relevance) {
    $("heatmap").replaceChildren();
    $("legend").replaceChildren();
    const values = Array.from({ length: m.input_size }, (_, e) => body.vectors.map((row) => row[e]));
    const channels = values.map((_, e) => `channel ${e}`);
    series($("series"), channels, values, report.input_relevance);
  } else {
    $("series").replaceChildren();
    const extent = heatmap($("heatmap"), tokens, report.token_relevance, report.unknown || []);
    legend($("legend"), extent);
  }
  showScores(report);
  showConservation(report, body);
  showDeletion(body, report);
}

function showScores(report) {
  const m = model();
  const table = $("scores");
  table.replaceChildren(el("tr", {}, el("th", { text: "class" }), el("th", { text: "score" })));
  report.scores.forEach((score, k) => {
    const classes = [k === report.predicted ? "predicted" : "", k === report.target ? "target" : ""].join(" ").trim();
    const name = labelOf(m, k) + (k === report.predicted ? " (predicted)" : "") + (k === report.target ? " (explained)" : "");
    table.append(el("tr", { class: classes || undefined }, el("td", { text: name }), el("td", { class: "num", text: fmt(score) })));
  });
}

/** input + initial state + unexplained against the score: green when
 * they agree, amber when the rules absorb relevance by design (bias
 * factor 0, eps > 0), red when rules that should conserve do not. */
function showConservation(report, body) {
  const node = $("conservation");
  const score = report.scores[report.target];
  const input = report.token_relevance.reduce((a, b) => a + b, 0);
  if (report.method !== "lrp") {
    node.className = "";
    node.textContent = `Sum of the relevance ${fmt(input)}, score ${fmt(score)} (${report.method} does not set out to conserve the score).`;
    return;
  }
  const initial = report.initial_state_relevance || 0;
  const unexplained = report.unexplained_relevance || 0;
  const total = input + initial + unexplained;
  const gap = score - total;
  const conserved = Math.abs(gap) <= 1e-6 * Math.max(1, Math.abs(score));
  const absorbing = (body.bias_factor ?? 0) === 0 || (body.eps ?? 0.001) > 0;
  node.className = conserved ? "ok" : absorbing ? "absorbed" : "broken";
  const sums = `input ${fmt(input)} + initial state ${fmt(initial)} + unexplained ${fmt(unexplained)} = ${fmt(total)}; score ${fmt(score)}`;
  node.textContent = conserved
    ? `Conserved: ${sums}.`
    : absorbing
      ? `Not conserved, as these rules intend (with bias factor 0 or eps > 0 the score and the sum differ by ${fmt(gap)}): ${sums}.`
      : `Conservation is broken: ${sums} (off by ${fmt(gap)}).`;
}

async function showDeletion(body, report) {
  const node = $("deletion");
  node.replaceChildren();
  try {
    const curve = await api("/api/deletion", { ...body, per_dimension: undefined, target: report.target });
    node.replaceChildren(curves([{ name: report.method, values: curve.scores }], { xLabel: "words deleted", yLabel: "deletion curve" }));
    const order = curve.order.map((t) => (curve.tokens ? curve.tokens[t] : `#${t}`));
    node.append(el("p", { class: "hint", text: `Deleted in this order: ${order.join(", ")}` }));
  } catch (e) {
    node.append(el("p", { class: "hint", text: e.message }));
  }
}

function showSeq2seq(steps) {
  $("heatmap").replaceChildren();
  $("series").replaceChildren();
  $("scores").replaceChildren();
  $("deletion").replaceChildren(el("p", { class: "hint", text: "Deletion curves are drawn for classifiers." }));
  const source = steps[0].source_tokens;
  const outputs = steps.map((s) => s.token);
  const relevance = steps.map((s) => s.source_relevance);
  const attention = steps.map((s) => s.attention);
  const choose = (row) => {
    const step = steps[row];
    const extent = heatmap($("heatmap"), source, step.source_relevance, step.unknown || []);
    legend($("legend"), extent);
    const prefix = step.target_relevance.reduce((a, b) => a + b, 0);
    const input = step.source_relevance.reduce((a, b) => a + b, 0);
    const total = input + prefix + (step.initial_state_relevance || 0) + (step.unexplained_relevance || 0);
    const score = step.scores[step.target];
    const node = $("conservation");
    node.className = step.method === "lrp" && Math.abs(score - total) <= 1e-6 * Math.max(1, Math.abs(score)) ? "ok" : "";
    state.outputRow = row;
    writeUrl();
    node.textContent = `Output token ${row} "${step.token}": source ${fmt(input)} + target prefix ${fmt(prefix)} + initial state ${fmt(step.initial_state_relevance || 0)} + unexplained ${fmt(step.unexplained_relevance || 0)} = ${fmt(total)}; logit ${fmt(score)}.`;
    draw(row);
  };
  const draw = (chosen) => {
    $("seq2seq").replaceChildren(
      el("p", { class: "hint", text: "Click an output token (a row) to see its relevance over the source above." }),
      el("div", { class: "matrices" },
        el("div", {}, el("h2", { text: "Relevance: output token × source token" }),
          matrixTable(relevance, outputs, source, { onRow: choose, chosen, id: "relevance-matrix" })),
        el("div", {}, el("h2", { text: "Attention weights" }),
          matrixTable(attention, outputs, source, { onRow: choose, chosen, id: "attention-matrix" }))),
    );
  };
  choose(Math.min(state.outputRow, steps.length - 1));
}

// ---- the compare view ---------------------------------------------------

function newPanel(settings = {}) {
  const panel = {
    text: el("textarea", { rows: 2, "aria-label": "Text of this panel", spellcheck: "false" }),
    method: el("select", { "aria-label": "Method of this panel" },
      ["lrp", "sa", "gi", "occlusion", "ig"].map((m) => el("option", { value: m, text: m }))),
    composite: el("select", { "aria-label": "Preset of this panel" },
      ["epsilon", "epsilon-flat", "epsilon-wsquare", "zplus", "alpha2-beta1", "gamma"].map((c) => el("option", { value: c, text: c }))),
    eps: el("input", { type: "number", min: "0", step: "any", "aria-label": "eps of this panel" }),
    rules: el("input", { type: "text", "aria-label": "Rules by site of this panel", placeholder: "e.g. head=gamma:0.5" }),
    output: el("div", { class: "heatmap" }),
    error: el("p", { class: "error", role: "status" }),
    curve: null,
  };
  panel.text.value = settings.text ?? $("text").value;
  panel.method.value = settings.method || "lrp";
  panel.composite.value = settings.composite || "epsilon";
  panel.eps.value = settings.eps || DEFAULTS.eps;
  panel.rules.value = settings.rules || "";
  const lrpOnly = () => { for (const node of [panel.composite, panel.eps, panel.rules]) node.closest("label")?.toggleAttribute("hidden", panel.method.value !== "lrp"); };
  panel.method.addEventListener("change", lrpOnly);
  panel.showOptions = lrpOnly;
  panel.text.addEventListener("keydown", (e) => {
    if (e.key === "Enter" && !e.shiftKey) { e.preventDefault(); runCompare(); }
  });
  return panel;
}

function panelState(p) {
  const s = { text: p.text.value, method: p.method.value, composite: p.composite.value };
  if (p.eps.value !== DEFAULTS.eps) s.eps = p.eps.value;
  if (p.rules.value) s.rules = p.rules.value;
  return s;
}

function drawPanels() {
  const box = $("panels");
  box.replaceChildren();
  state.panels.forEach((p, k) => {
    const remove = el("button", { type: "button", text: "Remove", "aria-label": `Remove panel ${k + 1}` });
    remove.addEventListener("click", () => { state.panels.splice(k, 1); drawPanels(); writeUrl(); });
    box.append(el("div", { class: "panel", "data-panel": k },
      el("h2", { text: `Panel ${k + 1}` }), p.text,
      el("div", { class: "controls" }, el("label", {}, "Method", p.method), el("label", {}, "Preset", p.composite),
        el("label", {}, "eps", p.eps), el("label", { class: "wide" }, "Rules by site", p.rules), remove),
      p.output, p.error));
    p.showOptions();
  });
}

async function runCompare() {
  writeUrl();
  const m = model();
  const results = await Promise.all(state.panels.map(async (p) => {
    p.error.textContent = "";
    const body = { model: m.name, text: p.text.value };
    if (p.method.value !== "lrp") body.method = p.method.value;
    else {
      if (p.composite.value !== "epsilon") body.composite = p.composite.value;
      if (p.eps.value !== "" && p.eps.value !== DEFAULTS.eps) body.eps = Number(p.eps.value);
      if (p.rules.value.trim()) body.rules = p.rules.value.trim();
    }
    try {
      const report = await api("/api/explain", body);
      heatmap(p.output, report.tokens || report.token_relevance.map((_, t) => `#${t}`), report.token_relevance, report.unknown || []);
      const curve = await api("/api/deletion", { ...body, target: report.target });
      const rules = body.rules ? `, ${body.rules}` : "";
      const name = `${p.method.value}${p.method.value === "lrp" ? ` (${p.composite.value}${rules})` : ""}: ${p.text.value.slice(0, 24)}`;
      return { name, values: curve.scores };
    } catch (e) {
      p.error.textContent = e.message;
      return null;
    }
  }));
  const drawn = results.filter((r) => r !== null);
  $("compare-deletion").replaceChildren(drawn.length ? curves(drawn, { xLabel: "words deleted", yLabel: "deletion curves" }) : "");
}

// ---- the corpus view ----------------------------------------------------

const CORPUS_COLUMNS = [["line", "line"], ["text", "text"], ["label", "label"], ["predicted", "predicted"], ["score", "score"], [null, "top words"]];
const PAGE = 50;

function corpusQuery(extra = {}) {
  const c = state.corpus;
  const p = new URLSearchParams({ sort: c.sort, descending: String(c.descending), ...extra });
  if (c.id) p.set("corpus", c.id);
  if (c.filter) p.set("filter", c.filter);
  if (c.predicted !== "") p.set("predicted", c.predicted);
  return p;
}

/** Whether there are rows to show: `--corpus`'s, or a file's opened here. */
function hasCorpus() {
  return state.corpusRows !== null || state.corpus.id !== "";
}

async function loadCorpus() {
  writeUrl();
  const c = state.corpus;
  if (!hasCorpus()) {
    $("corpus-table").replaceChildren();
    $("corpus-status").textContent = "No corpus yet: open a file above.";
    $("corpus-prev").disabled = true;
    $("corpus-next").disabled = true;
    $("corpus-export").disabled = true;
    return;
  }
  $("corpus-export").disabled = false;
  try {
    const page = await api(`/api/corpus?${corpusQuery({ offset: c.offset, limit: PAGE })}`);
    const m = state.models.find((x) => x.name === page.model) || model();
    const table = $("corpus-table");
    const head = el("tr", {}, CORPUS_COLUMNS.map(([key, name]) => {
      if (!key) return el("th", { scope: "col", text: name });
      const marker = c.sort === key ? (c.descending ? " ▼" : " ▲") : "";
      const button = el("button", { type: "button", "data-sort": key, text: name + marker, "aria-label": `Sort by ${name}` });
      button.addEventListener("click", () => {
        c.descending = c.sort === key ? !c.descending : false;
        c.sort = key;
        c.offset = 0;
        loadCorpus();
      });
      return el("th", { scope: "col", "aria-sort": c.sort === key ? (c.descending ? "descending" : "ascending") : undefined }, button);
    }));
    const rows = page.rows.map((row) => {
      const tr = el("tr", { tabindex: 0, "data-line": row.line, title: "Open its explanation" },
        el("td", { class: "num", text: String(row.line) }),
        el("td", { class: "text", text: row.text }),
        el("td", { text: row.label === undefined ? "" : String(row.label) }),
        el("td", { text: labelOf(m, row.predicted) }),
        el("td", { class: "num", text: fmt(row.score) }),
        el("td", { text: row.top.join(", ") }));
      const open = () => {
        $("text").value = row.text;
        $("target").value = "";
        showView("explain");
        explain();
      };
      tr.addEventListener("click", open);
      tr.addEventListener("keydown", (e) => { if (e.key === "Enter") open(); });
      return tr;
    });
    table.replaceChildren(el("thead", {}, head), el("tbody", {}, rows));
    const last = Math.min(page.offset + PAGE, page.matched);
    $("corpus-status").textContent = page.matched === 0
      ? `No rows match (of ${page.total}).`
      : `Rows ${page.offset + 1}–${last} of ${page.matched} matching (${page.total} in ${page.source}, explained with ${page.model}).`;
    $("corpus-prev").disabled = page.offset === 0;
    $("corpus-next").disabled = last >= page.matched;
  } catch (e) {
    $("corpus-status").textContent = e.message;
  }
}

/** Sends the chosen file to the server, which explains every row. */
async function openCorpusFile() {
  const file = $("corpus-file").files[0];
  if (!file) return;
  const m = model();
  const format = file.name.toLowerCase().endsWith(".txt") ? "lines" : "jsonl";
  const query = new URLSearchParams({ model: m.name, format, name: file.name });
  $("corpus-status").textContent = `Explaining the rows of ${file.name} with ${m.name}…`;
  try {
    const response = await fetch(`/api/corpus?${query}`, { method: "POST", headers: { "Content-Type": "application/octet-stream" }, body: file });
    const data = await response.json().catch(() => null);
    if (!response.ok) throw new Error(data && data.error ? data.error : `HTTP ${response.status}`);
    Object.assign(state.corpus, { id: data.corpus, offset: 0, sort: "line", descending: false, filter: "", predicted: "" });
    $("corpus-filter").value = "";
    $("corpus-predicted").value = "";
    loadCorpus();
  } catch (e) {
    $("corpus-status").textContent = e.message;
  } finally {
    $("corpus-file").value = "";
  }
}

async function exportCorpus() {
  const response = await fetch(`/api/corpus?${corpusQuery({ format: "jsonl" })}`);
  const blob = await response.blob();
  const link = el("a", { href: URL.createObjectURL(blob), download: "corpus-filtered.jsonl" });
  document.body.append(link);
  link.click();
  link.remove();
}

// ---- views and start ----------------------------------------------------

function showView(view) {
  if (view === "corpus" && $("tab-corpus").hidden) view = "explain";
  state.view = view;
  for (const v of ["explain", "compare", "corpus"]) {
    $(`view-${v}`).hidden = v !== view;
    $(`tab-${v}`).setAttribute("aria-current", v === view ? "page" : "false");
  }
  if (view === "compare") {
    if (state.panels.length === 0) state.panels = [newPanel({ method: "lrp" }), newPanel({ method: "gi" })];
    drawPanels();
  }
  if (view === "corpus") loadCorpus();
  writeUrl();
}

async function start() {
  const info = await api("/api/info");
  state.models = info.models;
  state.corpusRows = info.corpus_rows;
  $("tab-corpus").hidden = state.corpusRows === null && !state.models.some((m) => m.kind === "text");
  $("model").replaceChildren(...state.models.map((m) => el("option", { value: m.name, text: `${m.name} (${m.kind})` })));
  $("model-details").hidden = false;
  const view = readUrl();

  $("model").addEventListener("change", () => {
    onModel();
    $("result").hidden = true;
    if (model().kind === "text" && $("text").value === "") $("text").value = EXAMPLE;
    writeUrl();
  });
  $("method").addEventListener("change", () => { showMethodOptions(); explain(); });
  for (const id of ["target", "composite", "gate-rule", "bias-factor"]) $(id).addEventListener("change", explain);
  $("explain-form").addEventListener("submit", (e) => { e.preventDefault(); explain(); });
  $("text").addEventListener("keydown", (e) => {
    if (e.key === "Enter" && !e.shiftKey) { e.preventDefault(); explain(); }
  });
  for (const tab of document.querySelectorAll(".tab")) tab.addEventListener("click", () => showView(tab.dataset.view));
  $("add-panel").addEventListener("click", () => { state.panels.push(newPanel()); drawPanels(); writeUrl(); });
  $("run-compare").addEventListener("click", runCompare);
  let typing;
  $("corpus-filter").addEventListener("input", () => {
    clearTimeout(typing);
    typing = setTimeout(() => { state.corpus.filter = $("corpus-filter").value; state.corpus.offset = 0; loadCorpus(); }, 250);
  });
  $("corpus-predicted").addEventListener("change", () => { state.corpus.predicted = $("corpus-predicted").value; state.corpus.offset = 0; loadCorpus(); });
  $("corpus-prev").addEventListener("click", () => { state.corpus.offset = Math.max(0, state.corpus.offset - PAGE); loadCorpus(); });
  $("corpus-next").addEventListener("click", () => { state.corpus.offset += PAGE; loadCorpus(); });
  $("corpus-export").addEventListener("click", exportCorpus);
  $("corpus-file").addEventListener("change", openCorpusFile);

  showView(view);
  const hasInput = new URLSearchParams(location.hash.slice(1)).has("text");
  if (view === "explain" && hasInput) explain(true);
  if (view === "compare" && new URLSearchParams(location.hash.slice(1)).has("panels")) runCompare();
  document.body.dataset.ready = "true";
}

start().catch((e) => setStatus(`Cannot start: ${e.message}`, true));
