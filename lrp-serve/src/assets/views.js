// Drawing helpers of the lrp explorer. Every text from data goes into the
// page through textContent or attributes set one by one: never innerHTML.

const SVG = "http://www.w3.org/2000/svg";

/** An element with attributes and children (strings become text nodes). */
export function el(tag, attributes = {}, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attributes)) {
    if (value === undefined || value === null || value === false) continue;
    if (name === "class") node.className = value;
    else if (name === "text") node.textContent = value;
    else if (name.startsWith("on")) node.addEventListener(name.slice(2), value);
    else node.setAttribute(name, value === true ? "" : String(value));
  }
  for (const child of children.flat()) {
    if (child === null || child === undefined) continue;
    node.append(typeof child === "string" ? document.createTextNode(child) : child);
  }
  return node;
}

function svg(tag, attributes = {}, ...children) {
  const node = document.createElementNS(SVG, tag);
  for (const [name, value] of Object.entries(attributes)) node.setAttribute(name, String(value));
  for (const child of children.flat()) {
    if (child === null || child === undefined) continue;
    node.append(typeof child === "string" ? document.createTextNode(child) : child);
  }
  return node;
}

// ColorBrewer PuOr, from the most negative to the most positive.
const NEGATIVE = [[247, 247, 247], [216, 218, 235], [178, 171, 210], [128, 115, 172], [84, 39, 136], [45, 0, 75]];
const POSITIVE = [[247, 247, 247], [254, 224, 182], [253, 184, 99], [224, 130, 20], [179, 88, 6], [127, 59, 8]];

/** The palette's colour of `value` on a scale whose ends are +-`extent`:
 * [background, text colour]. */
export function colour(value, extent) {
  const share = extent > 0 ? Math.min(1, Math.abs(value) / extent) : 0;
  const stops = value < 0 ? NEGATIVE : POSITIVE;
  const x = share * (stops.length - 1);
  const k = Math.min(stops.length - 2, Math.floor(x));
  const f = x - k;
  const rgb = stops[k].map((c, i) => Math.round(c + f * (stops[k + 1][i] - c)));
  return [`rgb(${rgb.join(",")})`, share > 0.6 ? "#fff" : "#1b1b1b"];
}

/** A number for people: 4 significant digits. */
export function fmt(value) {
  if (value === null || value === undefined) return "–";
  if (value === 0) return "0";
  const a = Math.abs(value);
  return a >= 1e4 || a < 1e-3 ? value.toExponential(3) : value.toPrecision(4);
}

/** The largest magnitude of a list (1 when all are zero). */
export function extentOf(values) {
  const m = Math.max(0, ...values.map((v) => Math.abs(v)));
  return m > 0 ? m : 1;
}

/** Tokens coloured by relevance, each focusable with its value in its
 * title; unknown words marked. The exact value is in data-relevance. */
export function heatmap(container, tokens, relevance, unknown = []) {
  const extent = extentOf(relevance);
  const unknownSet = new Set(unknown);
  container.replaceChildren();
  tokens.forEach((token, t) => {
    const [background, text] = colour(relevance[t], extent);
    const isUnknown = unknownSet.has(t);
    const title = `${token}: ${fmt(relevance[t])}${isUnknown ? " (not in the vocabulary: read as the unknown word)" : ""}`;
    const span = el("span", {
      class: isUnknown ? "token unknown" : "token",
      tabindex: 0,
      title,
      "aria-label": title,
      "data-position": t,
      "data-relevance": String(relevance[t]),
      text: token,
    });
    span.style.backgroundColor = background;
    span.style.color = text;
    container.append(span, " ");
  });
  return extent;
}

/** The legend of a heatmap whose ends are +-extent. */
export function legend(container, extent) {
  container.replaceChildren(
    el("span", { text: fmt(-extent) }),
    el("span", { class: "bar" }),
    el("span", { text: `+${fmt(extent)}` }),
    el("span", { text: "purple: against the target, orange: for it; dashed: unknown word" }),
  );
}

/** A matrix as a table, each cell coloured: rows and columns labelled;
 * `onRow(r)` when a row's header is clicked or activated. */
export function matrixTable(rows, rowLabels, columnLabels, { caption, onRow, chosen, id } = {}) {
  const extent = extentOf(rows.flat());
  const table = el("table", { class: "matrix", id });
  if (caption) table.append(el("caption", { text: caption }));
  table.append(el("tr", {}, el("th", {}), columnLabels.map((c) => el("th", { scope: "col", text: c }))));
  rows.forEach((row, r) => {
    const head = el("th", {
      scope: "row",
      class: onRow ? "row" : undefined,
      tabindex: onRow ? 0 : undefined,
      text: rowLabels[r],
    });
    if (onRow) {
      head.addEventListener("click", () => onRow(r));
      head.addEventListener("keydown", (e) => {
        if (e.key === "Enter" || e.key === " ") {
          e.preventDefault();
          onRow(r);
        }
      });
    }
    const tr = el("tr", { class: r === chosen ? "chosen" : undefined, "data-row": r }, head);
    row.forEach((value, c) => {
      const [background, text] = colour(value, extent);
      const td = el("td", { title: `${rowLabels[r]} × ${columnLabels[c]}: ${fmt(value)}`, "data-value": String(value) }, fmt(value));
      td.style.backgroundColor = background;
      td.style.color = text;
      tr.append(td);
    });
    table.append(tr);
  });
  return table;
}

const CURVE_COLOURS = ["#1b9e77", "#d95f02", "#7570b3", "#e7298a", "#66a61e", "#e6ab02"];

/** Line chart of several curves [{name, values}] over 0..n: an SVG with
 * axes and a legend. */
export function curves(series, { xLabel, yLabel, width = 420, height = 220 } = {}) {
  const pad = { left: 52, right: 12, top: 10, bottom: 34 };
  const all = series.flatMap((s) => s.values);
  let lo = Math.min(...all);
  let hi = Math.max(...all);
  if (!(hi > lo)) { lo -= 1; hi += 1; }
  const n = Math.max(1, ...series.map((s) => s.values.length - 1));
  const x = (i) => pad.left + (i / n) * (width - pad.left - pad.right);
  const y = (v) => pad.top + (1 - (v - lo) / (hi - lo)) * (height - pad.top - pad.bottom);
  const chart = svg("svg", { viewBox: `0 0 ${width} ${height + 18 * series.length}`, width: "100%", role: "img", "aria-label": yLabel || "chart" });
  chart.style.maxWidth = `${width}px`;
  chart.append(svg("line", { x1: pad.left, y1: y(lo), x2: width - pad.right, y2: y(lo), stroke: "#888" }));
  chart.append(svg("line", { x1: pad.left, y1: pad.top, x2: pad.left, y2: y(lo), stroke: "#888" }));
  for (const v of [lo, (lo + hi) / 2, hi]) {
    chart.append(svg("text", { x: pad.left - 4, y: y(v) + 4, "text-anchor": "end" }, fmt(v)));
  }
  for (let i = 0; i <= n; i++) {
    chart.append(svg("text", { x: x(i), y: height - pad.bottom + 14, "text-anchor": "middle" }, String(i)));
  }
  if (xLabel) chart.append(svg("text", { x: (width + pad.left) / 2, y: height - 4, "text-anchor": "middle" }, xLabel));
  series.forEach((s, k) => {
    const stroke = CURVE_COLOURS[k % CURVE_COLOURS.length];
    const points = s.values.map((v, i) => `${x(i)},${y(v)}`).join(" ");
    chart.append(svg("polyline", { points, fill: "none", stroke, "stroke-width": 2, "data-name": s.name }));
    s.values.forEach((v, i) => {
      chart.append(svg("circle", { cx: x(i), cy: y(v), r: 3, fill: stroke }, svg("title", {}, `${s.name}, ${i} deleted: ${fmt(v)}`)));
    });
    const ly = height + 14 + 18 * k;
    chart.append(svg("line", { x1: pad.left, y1: ly - 4, x2: pad.left + 24, y2: ly - 4, stroke, "stroke-width": 3 }));
    chart.append(svg("text", { x: pad.left + 30, y: ly }, s.name));
  });
  return chart;
}

/** A vector input: the channel × time relevance heatmap, and beneath it
 * each channel's values over time. `values[e][t]`, `cells[t][e]`. */
export function series(container, channels, values, cells) {
  container.replaceChildren();
  const T = values[0] ? values[0].length : 0;
  const rows = channels.map((_, e) => cells.map((row) => row[e]));
  const times = Array.from({ length: T }, (_, t) => String(t));
  container.append(el("h2", { text: "Relevance per channel and time step" }));
  container.append(el("div", { class: "series-cells" }, matrixTable(rows, channels, times, { id: "series-matrix" })));
  container.append(el("h2", { text: "The input" }));
  container.append(curves(channels.map((name, e) => ({ name, values: values[e] })), { xLabel: "time step", yLabel: "input values", width: Math.max(420, 24 * T) }));
}
