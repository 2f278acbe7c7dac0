//! Human-readable explanations: the sentence coloured by relevance in a
//! terminal (red for evidence for the explained class, blue against,
//! stronger for larger magnitude), plain text elsewhere, and a standalone
//! HTML page.
//!
//! Words, class labels and names come from untrusted files: every view
//! shows their control characters escaped ([`printable`]), so no input
//! can move the cursor, retitle the window or hide text in a terminal.

use std::borrow::Cow;
use std::fmt::Write;

use crate::Colour;

/// What a human view shows of one explanation.
pub(crate) struct View<'a> {
    /// The words.
    pub tokens: &'a [String],
    /// Positions of the words the vocabulary does not hold (ascending).
    pub unknown: &'a [usize],
    /// Relevance per word.
    pub relevance: &'a [f64],
    /// Class scores.
    pub scores: &'a [f64],
    /// Predicted class.
    pub predicted: usize,
    /// Explained class.
    pub target: usize,
    /// Class names, when the model has them.
    pub labels: Option<&'a [String]>,
    /// `lrp`, `sa`, ...
    pub method: &'a str,
    /// The output position explained, for a per-step head.
    pub position: Option<usize>,
    /// Whether the outputs are a regression's (no predicted class).
    pub regression: bool,
}

impl View<'_> {
    fn label(&self, class: usize) -> String {
        match self.labels.and_then(|l| l.get(class)) {
            Some(name) => format!("{} ({class})", printable(name)),
            None => format!("class {class}"),
        }
    }

    /// The largest |relevance|, the scale of the colours (1 if all are 0).
    fn scale(&self) -> f64 {
        largest_magnitude(self.relevance.iter())
    }

    /// Background colour of a relevance, on the scale of the largest.
    fn colour(&self, r: f64) -> (u8, u8, u8) {
        relevance_colour(r, self.scale())
    }

    fn header(&self) -> String {
        let scores: Vec<String> = self
            .scores
            .iter()
            .enumerate()
            .map(|(k, s)| match self.labels.and_then(|l| l.get(k)) {
                Some(name) => format!("{} {s:.3}", printable(name)),
                None => format!("{k}: {s:.3}"),
            })
            .collect();
        let position = match self.position {
            Some(t) => format!("position: {t}\n"),
            None => String::new(),
        };
        if self.regression {
            return format!(
                "{position}outputs: {}\nrelevance for {} ({}; red: pushes it up, blue: down):\n",
                scores.join(", "),
                self.label(self.target),
                printable(self.method)
            );
        }
        format!(
            "{position}predicted: {}\nscores: {}\nrelevance for {} ({}; red: for, blue: against):\n",
            self.label(self.predicted),
            scores.join(", "),
            self.label(self.target),
            printable(self.method)
        )
    }

    fn is_unknown(&self, position: usize) -> bool {
        self.unknown.binary_search(&position).is_ok()
    }

    /// For a terminal: each word on a background of its colour (24-bit or
    /// the 256-colour palette; unknown words underlined), followed by the
    /// words with their relevance values (unknown words marked
    /// `[unknown]`, with a note).
    pub fn terminal(&self, colour: Colour) -> String {
        let mut out = self.header();
        if colour != Colour::None {
            for (t, (token, &r)) in self.tokens.iter().zip(self.relevance).enumerate() {
                let (foreground, background) = sgr_colours(colour, self.colour(r));
                let underline = if self.is_unknown(t) { ";4" } else { "" };
                let _ = write!(
                    out,
                    "\x1b[{foreground}{underline};{background}m {} \x1b[0m",
                    printable(token)
                );
            }
            out.push('\n');
        }
        let plain: Vec<String> = self
            .tokens
            .iter()
            .zip(self.relevance)
            .enumerate()
            .map(|(t, (token, r))| {
                let mark = if self.is_unknown(t) { " [unknown]" } else { "" };
                format!("{} {r:+.3}{mark}", printable(token))
            })
            .collect();
        out.push_str(&plain.join("  "));
        out.push('\n');
        if !self.unknown.is_empty() {
            out.push_str("([unknown]: not in the model's vocabulary, read as its unknown token)\n");
        }
        out
    }

    /// One `<section>` of the HTML page.
    pub fn html_section(&self) -> String {
        let mut words = String::new();
        for (t, (token, &r)) in self.tokens.iter().zip(self.relevance).enumerate() {
            let background = self.colour(r);
            let (mark, note) = if self.is_unknown(t) {
                (" data-unknown", " (not in the vocabulary)")
            } else {
                ("", "")
            };
            // The value printed under the word, so that it shows without
            // hovering (and on paper); the tooltip keeps 4 decimals.
            let _ = write!(
                words,
                "<span class=\"chip\"><span class=\"w\"{mark} style=\"{}\" title=\"{r:+.4}{note}\">{}</span><span class=\"v\">{r:+.3}</span></span> ",
                css_colours(background),
                escape(token)
            );
        }
        let rows: String = self
            .scores
            .iter()
            .enumerate()
            .map(|(k, s)| {
                let mark = if k == self.predicted {
                    " class=\"predicted\""
                } else {
                    ""
                };
                format!("<tr{mark}><td>{}</td><td>{s:.4}</td></tr>", escape(&self.label(k)))
            })
            .collect();
        format!(
            "<section>\n<p class=\"sentence\">{words}</p>\n<p>Predicted: <b>{}</b>. Relevance for <b>{}</b> ({}).</p>\n<table><tr><th>class</th><th>score</th></tr>{rows}</table>\n</section>\n",
            escape(&self.label(self.predicted)),
            escape(&self.label(self.target)),
            escape(self.method)
        )
    }
}

/// The cells a vector input's terminal view lists, at most.
const TOP_CELLS: usize = 10;

/// What the human views show of a vector input (a time series): its
/// channels' names, the time of each step, and the relevance of each cell.
pub(crate) struct SeriesView<'a> {
    /// The scores, the class and the method, as for text ([`View`]; its
    /// `tokens` are not shown).
    pub view: View<'a>,
    /// The input's name (a series column's value, an npz array's name),
    /// shown first.
    pub name: Option<&'a str>,
    /// The channels' names `[C]` (from a CSV header, else their indices).
    pub channels: &'a [String],
    /// The time of each step `[T]`, when the input has a time column.
    pub time: Option<&'a [f64]>,
    /// The relevance of each cell `[T][C]`, when the method gives it
    /// (occlusion gives one value per step).
    pub cells: Option<&'a [Vec<f64>]>,
}

impl SeriesView<'_> {
    /// A step's time: the time column's value, else its index.
    fn time_of(&self, t: usize) -> String {
        match self.time.and_then(|time| time.get(t)) {
            Some(value) => value.to_string(),
            None => t.to_string(),
        }
    }

    /// For a terminal: the header, each channel's total relevance (in
    /// channel order) and the [`TOP_CELLS`] cells of largest |relevance|
    /// (ties in time, then channel order), each value on its colour when
    /// `colour` allows: channels on the scale of the largest total, cells
    /// on the largest cell's.
    pub fn terminal(&self, colour: Colour) -> String {
        let mut out = match self.name {
            Some(name) => format!("name: {}\n", printable(name)),
            None => String::new(),
        };
        out.push_str(&self.view.header());
        let value = |r: f64, scale: f64| {
            let text = format!("{r:+.4}");
            match colour {
                Colour::None => text,
                _ => {
                    let (foreground, background) = sgr_colours(colour, relevance_colour(r, scale));
                    format!("\x1b[{foreground};{background}m{text}\x1b[0m")
                }
            }
        };
        let Some(cells) = self.cells else {
            // Relevance per step only: the steps of largest |relevance|.
            let steps = self.view.relevance;
            let _ = writeln!(
                out,
                "(no relevance per channel from {}: the {} steps of largest |relevance|)",
                printable(self.view.method),
                TOP_CELLS.min(steps.len())
            );
            let scale = largest_magnitude(steps.iter());
            let names: Vec<String> = (0..steps.len()).map(|t| self.time_of(t)).collect();
            let width = names.iter().map(String::len).max().unwrap_or(0).max("time".len());
            let _ = writeln!(out, "  {}  relevance", pad("time", width));
            for t in largest(steps.iter().copied(), TOP_CELLS) {
                let _ = writeln!(out, "  {}  {}", pad(&names[t], width), value(steps[t], scale));
            }
            return out;
        };
        let channels = self.channels.len();
        let totals: Vec<f64> = (0..channels)
            .map(|c| cells.iter().map(|row| row.get(c).copied().unwrap_or(0.0)).sum())
            .collect();
        let names: Vec<Cow<'_, str>> = self.channels.iter().map(|n| printable(n)).collect();
        let name_width = names
            .iter()
            .map(|n| n.chars().count())
            .max()
            .unwrap_or(0)
            .max("channel".len());
        let _ = writeln!(out, "each channel's total:");
        let scale = largest_magnitude(totals.iter());
        for (name, &total) in names.iter().zip(&totals) {
            let _ = writeln!(out, "  {}  {}", pad(name, name_width), value(total, scale));
        }
        let flat = cells
            .iter()
            .flat_map(|row| (0..channels).map(|c| row.get(c).copied().unwrap_or(0.0)));
        let top = largest(flat, TOP_CELLS);
        let _ = writeln!(out, "the {} cells of largest |relevance|:", top.len());
        let times: Vec<String> = top.iter().map(|&k| self.time_of(k / channels.max(1))).collect();
        let time_width = times.iter().map(String::len).max().unwrap_or(0).max("time".len());
        let _ = writeln!(
            out,
            "  {}  {}  relevance",
            pad("time", time_width),
            pad("channel", name_width)
        );
        let scale = largest_magnitude(cells.iter().flatten());
        for (&k, time) in top.iter().zip(&times) {
            let (t, c) = (k / channels.max(1), k % channels.max(1));
            let r = cells[t].get(c).copied().unwrap_or(0.0);
            let _ = writeln!(
                out,
                "  {}  {}  {}",
                pad(time, time_width),
                pad(&names[c], name_width),
                value(r, scale)
            );
        }
        out
    }
}

/// The most steps an HTML figure draws; longer inputs are averaged down
/// to it, bins of consecutive steps (the caption says so).
pub(crate) const MOST_DRAWN_STEPS: usize = 2000;

/// Pixels of the figure: its width, one channel's height, the left margin
/// for the channels' names, the bottom margin for the time axis.
const FIGURE_WIDTH: f64 = 880.0;
const CHANNEL_HEIGHT: f64 = 70.0;
const NAME_MARGIN: f64 = 110.0;
const AXIS_MARGIN: f64 = 28.0;

impl SeriesView<'_> {
    /// One `<section>` of the HTML page: the outputs, then a figure of
    /// the channels stacked on one time axis, each its values' curve over
    /// a band of its cells' relevance (red for, blue against, by
    /// magnitude relative to the largest cell). Over [`MOST_DRAWN_STEPS`]
    /// steps, each point is the mean of a bin of consecutive steps' values
    /// and its band the sum of their relevance, as the caption says.
    /// `values` are the input's `[C, T]`.
    pub fn html_section(&self, values: &nalgebra::DMatrix<f64>) -> String {
        let (svg, caption) = self.figure(values, false);
        let name = match self.name {
            Some(name) => format!("<h2>{}</h2>\n", escape(name)),
            None => String::new(),
        };
        let (verb, outcome, target) = self.headline();
        format!(
            "<section>\n{name}<p>{verb}: <b>{}</b>. Relevance for <b>{}</b> ({}).</p>\n<figure>\n{svg}<figcaption class=\"note\">{caption}</figcaption>\n</figure>\n</section>\n",
            escape(&outcome),
            escape(&target),
            escape(self.view.method)
        )
    }

    /// What the figure explains: `Predicted` and the predicted class (or
    /// `Outputs` and a regression's outputs), and the class explained.
    fn headline(&self) -> (&'static str, String, String) {
        let target = self.view.label(self.view.target);
        if self.view.regression {
            let scores: Vec<String> = self.view.scores.iter().map(|s| format!("{s:.4}")).collect();
            ("Outputs", scores.join(", "), target)
        } else {
            ("Predicted", self.view.label(self.view.predicted), target)
        }
    }

    /// The figure of [`SeriesView::html_section`] as an SVG document, its
    /// caption written under it (`lrp explain --plot`).
    pub fn svg(&self, values: &nalgebra::DMatrix<f64>) -> String {
        self.figure(values, true).0
    }

    /// The figure (SVG) and its caption (HTML text); with `caption_inside`
    /// the caption is also drawn in the figure, under the time axis.
    fn figure(&self, values: &nalgebra::DMatrix<f64>, caption_inside: bool) -> (String, String) {
        let (channels, steps) = (values.nrows(), values.ncols());
        let bin = steps.div_ceil(MOST_DRAWN_STEPS).max(1);
        let drawn = steps.div_ceil(bin);
        // Relevance per cell (occlusion: the step's, in every channel).
        let cell = |t: usize, c: usize| match self.cells {
            Some(cells) => cells.get(t).and_then(|row| row.get(c)).copied().unwrap_or(0.0),
            None => self.view.relevance.get(t).copied().unwrap_or(0.0),
        };
        let binned = |k: usize, f: &dyn Fn(usize) -> f64| (k * bin..((k + 1) * bin).min(steps)).map(f).sum::<f64>();
        let bands: Vec<Vec<f64>> = (0..channels)
            .map(|c| (0..drawn).map(|k| binned(k, &|t| cell(t, c))).collect())
            .collect();
        let scale = largest_magnitude(bands.iter().flatten());
        let plot_width = FIGURE_WIDTH - NAME_MARGIN;
        let step_width = plot_width / drawn as f64;
        // The SVG alone says what it explains in its first caption line.
        let caption_lines = if caption_inside { 4.0 } else { 0.0 };
        let height = CHANNEL_HEIGHT * channels as f64 + AXIS_MARGIN + 16.0 * caption_lines;
        let mut svg = format!(
            "<svg class=\"series\" xmlns=\"http://www.w3.org/2000/svg\" width=\"{FIGURE_WIDTH}\" height=\"{height}\" viewBox=\"0 0 {FIGURE_WIDTH} {height}\" font-family=\"sans-serif\" font-size=\"12\">\n"
        );
        for (c, band) in bands.iter().enumerate() {
            let name = self.channels.get(c).map_or_else(|| c.to_string(), |n| n.clone());
            let top = CHANNEL_HEIGHT * c as f64;
            let _ = write!(svg, "<g class=\"band\" data-channel=\"{}\">", escape(&name));
            for (k, &r) in band.iter().enumerate() {
                let (red, green, blue) = relevance_colour(r, scale);
                let _ = write!(
                    svg,
                    "<rect x=\"{:.2}\" y=\"{top:.2}\" width=\"{:.2}\" height=\"{:.2}\" fill=\"rgb({red},{green},{blue})\"><title>{r:+.4}</title></rect>",
                    NAME_MARGIN + step_width * k as f64,
                    step_width + 0.02,
                    CHANNEL_HEIGHT - 4.0
                );
            }
            svg.push_str("</g>\n");
            let curve: Vec<f64> = (0..drawn)
                .map(|k| binned(k, &|t| values[(c, t)]) / (((k + 1) * bin).min(steps) - k * bin) as f64)
                .collect();
            let (lo, hi) = curve.iter().fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), &v| {
                (lo.min(v), hi.max(v))
            });
            let span = if hi > lo { hi - lo } else { 1.0 };
            let points: Vec<String> = curve
                .iter()
                .enumerate()
                .map(|(k, &v)| {
                    let x = NAME_MARGIN + step_width * (k as f64 + 0.5);
                    let y = top + 6.0 + (CHANNEL_HEIGHT - 16.0) * (1.0 - (v - lo) / span);
                    format!("{x:.2},{y:.2}")
                })
                .collect();
            let _ = writeln!(
                svg,
                "<polyline class=\"curve\" fill=\"none\" stroke=\"#111\" stroke-width=\"1.2\" points=\"{}\"/>",
                points.join(" ")
            );
            let _ = writeln!(
                svg,
                "<text x=\"4\" y=\"{:.2}\">{}</text>",
                top + CHANNEL_HEIGHT / 2.0 + 4.0,
                escape(&name)
            );
        }
        // The shared time axis: the first, middle and last step's time.
        let axis = CHANNEL_HEIGHT * channels as f64 + 16.0;
        for (t, anchor) in [(0, "start"), (steps / 2, "middle"), (steps - 1, "end")] {
            let x = NAME_MARGIN + plot_width * (t as f64 + 0.5) / steps as f64;
            let _ = writeln!(
                svg,
                "<text class=\"time\" x=\"{x:.2}\" y=\"{axis:.2}\" text-anchor=\"{anchor}\">{}</text>",
                escape(&self.time_of(t))
            );
        }
        let time = if self.time.is_some() { "time" } else { "step" };
        let mut lines = vec![format!(
            "Each channel's values (curve, scaled to its own range) over its relevance (band; red: for, blue: against, by |relevance| relative to the largest); {time} runs left to right."
        )];
        if bin > 1 {
            lines.push(format!(
                "Downsampled: {drawn} points for {steps} steps, each the mean of up to {bin} consecutive steps' values, its band the sum of their relevance."
            ));
        }
        if self.cells.is_none() {
            lines.push(format!(
                "{} gives relevance per step only: every channel's band shows the step's.",
                self.view.method
            ));
        }
        let caption: Vec<String> = lines.iter().map(|l| escape(l)).collect();
        if caption_inside {
            let (verb, outcome, target) = self.headline();
            lines.insert(
                0,
                format!("{verb}: {outcome}. Relevance for {target} ({}).", self.view.method),
            );
            for (k, line) in lines.iter().enumerate() {
                let _ = writeln!(
                    svg,
                    "<text class=\"caption\" x=\"4\" y=\"{:.2}\" font-size=\"11\">{}</text>",
                    axis + 18.0 + 16.0 * k as f64,
                    escape(line)
                );
            }
        }
        svg.push_str("</svg>\n");
        (svg, caption.join(" "))
    }
}

/// The indices of the `n` values of largest magnitude, largest first
/// (ties: the lower index first).
fn largest(values: impl Iterator<Item = f64>, n: usize) -> Vec<usize> {
    let values: Vec<f64> = values.collect();
    let mut order: Vec<usize> = (0..values.len()).collect();
    order.sort_by(|&a, &b| values[b].abs().total_cmp(&values[a].abs()).then(a.cmp(&b)));
    order.truncate(n);
    order
}

/// The start of a standalone page of classifier explanations, with its
/// colour legend: the sections ([`View::html_section`]) follow it, then
/// [`html_footer`].
pub(crate) fn html_header() -> String {
    page_start(
        "lrp explanation",
        r#"<div class="legend"><span>against the class</span><div class="bar"></div><span>for the class</span></div>
<p class="note">Colour strength: |relevance| relative to the sentence's largest. Each word's relevance is printed under it (hover for 4 decimals);
<span class="unknown">dotted underline</span>: not in the model's vocabulary, read as its unknown token.</p>
"#,
    )
}

/// The start of a standalone page of time-series explanations (vector
/// inputs), with its colour legend: the sections
/// ([`SeriesView::html_section`]) follow it, then [`html_footer`].
pub(crate) fn series_html_header() -> String {
    page_start(
        "lrp explanation: time series",
        r#"<div class="legend"><span>against the output</span><div class="bar"></div><span>for the output</span></div>
<p class="note">Each channel's values are drawn as a curve over a band of its relevance at each time step;
colour strength: |relevance| relative to the input's largest (hover over a band for its value).</p>
"#,
    )
}

/// The start of a page: the style, the heading and `legend` (HTML of our
/// own). The legend's rows never wrap: their labels keep to one line and
/// the gradient shrinks instead; the notes under them wrap as text does.
fn page_start(title: &str, legend: &str) -> String {
    format!(
        r#"<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>{title}</title>
<style>
body {{ font-family: system-ui, sans-serif; margin: 2em; max-width: 60em; color: #111; }}
.sentence {{ font-size: 1.4em; line-height: 1.6em; }}
.chip {{ display: inline-flex; flex-direction: column; align-items: center; vertical-align: top; margin: 0 0.05em 0.3em; }}
.chip .v {{ font-size: 0.55em; line-height: 1.4em; color: #444; font-variant-numeric: tabular-nums; }}
.w {{ padding: 0.15em 0.3em; border-radius: 0.25em; }}
.w[data-unknown], .unknown {{ text-decoration: underline dotted; }}
table {{ border-collapse: collapse; margin-bottom: 2em; }}
td, th {{ padding: 0.2em 0.8em; border-bottom: 1px solid #ddd; text-align: left; }}
tr.predicted td {{ font-weight: bold; }}
.legend {{ display: flex; flex-wrap: nowrap; align-items: center; gap: 0.6em; margin: 1em 0 0.4em; white-space: nowrap; }}
.legend .bar {{ flex: 0 1 16em; min-width: 3em; height: 1em; border: 1px solid #999; background: linear-gradient(to right, rgb(0,0,255), rgb(255,255,255), rgb(255,0,0)); }}
.legend .bar.weights {{ background: linear-gradient(to right, rgb(255,255,255), rgb(255,0,0)); }}
.note {{ color: #444; margin: 0 0 2em; }}
.matrix td, .matrix th {{ text-align: center; font-size: 0.9em; border: 1px solid #eee; }}
.matrix td {{ font-variant-numeric: tabular-nums; }}
.matrix td.extra, .matrix th.extra {{ border-left: 2px solid #999; }}
</style>
</head>
<body>
<h1>Layer-wise Relevance Propagation</h1>
{legend}"#
    )
}

/// The end of the page [`html_header`] starts.
pub(crate) fn html_footer() -> &'static str {
    "</body>\n</html>\n"
}

/// One matrix of a seq2seq page: rows are output tokens, columns source
/// tokens.
pub(crate) struct Matrix<'a> {
    /// `relevance` or `attention`: the table's `data-matrix`.
    pub kind: &'a str,
    /// The heading above the table.
    pub caption: String,
    /// One row per output token, one value per source token.
    pub rows: &'a [Vec<f64>],
    /// Per row, an extra value after the source columns (the relevance of
    /// the target prefix), or none.
    pub extra: Option<(&'a str, &'a [f64])>,
}

/// A standalone HTML page of a seq2seq explanation, with its own legend:
/// each matrix as a table (rows: `outputs`, columns: `sources`), each cell
/// coloured as the classifier view colours a word (red positive, blue
/// negative, by magnitude relative to the row's largest, the extra column
/// included) and showing its value.
pub(crate) fn seq2seq_html(
    sources: &[String],
    unknown: &[usize],
    outputs: &[String],
    matrices: &[Matrix<'_>],
) -> String {
    let mut page = page_start(
        "lrp explanation: encoder–decoder",
        r#"<div class="legend"><span>relevance: against</span><div class="bar"></div><span>for the output token</span></div>
<div class="legend"><span>attention: none</span><div class="bar weights"></div><span>the row's largest</span></div>
<p class="note">Rows: the output tokens; columns: the source tokens (for relevance, then the target prefix: the tokens the decoder had read, summed).
Colour strength: |value| relative to the row's largest. Each cell shows its value (hover for 4 decimals);
<span class="unknown">dotted underline</span>: a source word not in the vocabulary, read as its unknown token.</p>
"#,
    );
    page.push_str("<section>\n<p class=\"sentence\">Source: ");
    for (s, token) in sources.iter().enumerate() {
        let mark = if unknown.binary_search(&s).is_ok() {
            " data-unknown"
        } else {
            ""
        };
        let _ = write!(page, "<span class=\"w\"{mark}>{}</span> ", escape(token));
    }
    page.push_str("</p>\n<p class=\"sentence\">Output: ");
    for token in outputs {
        let _ = write!(page, "<span class=\"w\">{}</span> ", escape(token));
    }
    page.push_str("</p>\n");
    for m in matrices {
        let _ = write!(
            page,
            "<h2>{}</h2>\n<table class=\"matrix\" data-matrix=\"{}\">\n<tr><th>output \\ source</th>",
            escape(&m.caption),
            escape(m.kind)
        );
        for token in sources {
            let _ = write!(page, "<th>{}</th>", escape(token));
        }
        if let Some((name, _)) = m.extra {
            let _ = write!(page, "<th class=\"extra\">{}</th>", escape(name));
        }
        page.push_str("</tr>\n");
        for (j, (token, row)) in outputs.iter().zip(m.rows).enumerate() {
            let extra = m.extra.map(|(_, v)| v[j]);
            let scale = largest_magnitude(row.iter().chain(&extra));
            let cell = |class: &str, r: f64| {
                format!(
                    "<td class=\"{class}\" style=\"{}\" title=\"{r:+.4}\">{r:+.3}</td>",
                    css_colours(relevance_colour(r, scale))
                )
            };
            let _ = write!(page, "<tr><th>{}</th>", escape(token));
            for &r in row {
                page.push_str(&cell("c", r));
            }
            if let Some(r) = extra {
                page.push_str(&cell("extra", r));
            }
            page.push_str("</tr>\n");
        }
        page.push_str("</table>\n");
    }
    page.push_str("</section>\n");
    page.push_str(html_footer());
    page
}

/// The source words most relevant for each output token, at most.
const TOP_SOURCE_WORDS: usize = 3;

/// The widest a token is shown in the terminal's matrix (longer ones are
/// cut, with `…`).
const CELL_TOKEN_CHARS: usize = 8;

/// A seq2seq explanation for a terminal: the source and the output, each
/// output token's most relevant source words (highest relevance first,
/// with their values), and the `relevance` matrix under its caption (rows:
/// `outputs`, columns: `sources`, then its extra column), each cell's value
/// on the colour the HTML page gives it when `colour` allows (plain
/// otherwise).
pub(crate) fn seq2seq_terminal(
    sources: &[String],
    unknown: &[usize],
    outputs: &[String],
    relevance: &Matrix<'_>,
    method: &str,
    colour: Colour,
) -> String {
    let is_unknown = |s: usize| unknown.binary_search(&s).is_ok();
    let source_line: Vec<String> = sources
        .iter()
        .enumerate()
        .map(|(s, token)| {
            let mark = if is_unknown(s) { " [unknown]" } else { "" };
            format!("{}{mark}", printable(token))
        })
        .collect();
    let shown: Vec<Cow<'_, str>> = outputs.iter().map(|t| printable(t)).collect();
    let mut out = format!("source: {}\noutput: {}\n", source_line.join(" "), shown.join(" "));
    if !unknown.is_empty() {
        out.push_str("([unknown]: not in the model's source vocabulary, read as its unknown token)\n");
    }
    let _ = writeln!(
        out,
        "\nmost relevant source words for each output token ({}; + for the token, - against):",
        printable(method)
    );
    let label_width = shown.iter().map(|t| t.chars().count()).max().unwrap_or(0);
    let tops: Vec<Vec<String>> = relevance
        .rows
        .iter()
        .map(|row| {
            let mut order: Vec<usize> = (0..row.len()).collect();
            order.sort_by(|&a, &b| row[b].total_cmp(&row[a]).then(a.cmp(&b)));
            order
                .iter()
                .take(TOP_SOURCE_WORDS)
                .map(|&s| format!("{} {:+.3}", printable(&sources[s]), row[s]))
                .collect()
        })
        .collect();
    // In columns: every entry as wide as the widest.
    let entry_width = tops.iter().flatten().map(|e| e.chars().count()).max().unwrap_or(0);
    for (token, top) in shown.iter().zip(&tops) {
        let entries: Vec<String> = top.iter().map(|e| pad(e, entry_width)).collect();
        let line = format!("  {} {}", pad(token, label_width), entries.join("   "));
        let _ = writeln!(out, "{}", line.trim_end());
    }
    let _ = writeln!(out, "\n{}; red: for, blue: against:", relevance.caption);
    let headers: Vec<String> = sources
        .iter()
        .map(|t| cut(&printable(t), CELL_TOKEN_CHARS))
        .chain(relevance.extra.map(|(name, _)| cut(name, CELL_TOKEN_CHARS)))
        .collect();
    let value = |r: f64| format!("{r:+.3}");
    // Every column as wide as the widest header or value.
    let width = headers
        .iter()
        .map(|h| h.chars().count())
        .chain(
            relevance
                .rows
                .iter()
                .flatten()
                .chain(relevance.extra.iter().flat_map(|e| e.1))
                .map(|&r| value(r).len()),
        )
        .max()
        .unwrap_or(0);
    let row_labels: Vec<String> = shown.iter().map(|t| cut(t, CELL_TOKEN_CHARS)).collect();
    let label_width = row_labels.iter().map(|t| t.chars().count()).max().unwrap_or(0);
    let _ = write!(out, "  {}", " ".repeat(label_width));
    for header in &headers {
        let _ = write!(out, " {}", pad_left(header, width));
    }
    out.push('\n');
    for (j, (label, row)) in row_labels.iter().zip(relevance.rows).enumerate() {
        let extra = relevance.extra.map(|(_, v)| v[j]);
        let scale = largest_magnitude(row.iter().chain(&extra));
        let _ = write!(out, "  {}", pad(label, label_width));
        for &r in row.iter().chain(&extra) {
            let value = pad_left(&value(r), width);
            match colour {
                Colour::None => {
                    let _ = write!(out, " {value}");
                }
                _ => {
                    let (foreground, background) = sgr_colours(colour, relevance_colour(r, scale));
                    let _ = write!(out, " \x1b[{foreground};{background}m{value}\x1b[0m");
                }
            }
        }
        out.push('\n');
    }
    out
}

/// `text` padded with spaces on the right to `width` characters.
fn pad(text: &str, width: usize) -> String {
    format!("{text}{}", " ".repeat(width.saturating_sub(text.chars().count())))
}

/// `text` padded with spaces on the left to `width` characters.
fn pad_left(text: &str, width: usize) -> String {
    format!("{}{text}", " ".repeat(width.saturating_sub(text.chars().count())))
}

/// `text` cut to `chars` characters, the last one `…` when cut.
fn cut(text: &str, chars: usize) -> String {
    if text.chars().count() <= chars {
        return text.to_string();
    }
    let mut kept: String = text.chars().take(chars.saturating_sub(1)).collect();
    kept.push('…');
    kept
}

/// The largest |value| (1 if all are 0): the scale of the colours.
fn largest_magnitude<'a>(values: impl Iterator<Item = &'a f64>) -> f64 {
    let largest = values.fold(0.0f64, |m, r| m.max(r.abs()));
    if largest > 0.0 {
        largest
    } else {
        1.0
    }
}

/// Background colour of relevance `r` on a `scale` (the largest
/// magnitude): white to red (positive) or blue (negative), stronger for
/// larger magnitude.
fn relevance_colour(r: f64, scale: f64) -> (u8, u8, u8) {
    let fade = (255.0 * (1.0 - (r.abs() / scale).min(1.0))).round() as u8;
    if r >= 0.0 {
        (255, fade, fade)
    } else {
        (fade, fade, 255)
    }
}

/// Whether text on `background` is legible in white rather than black: the
/// one with the higher contrast ratio by WCAG 2's relative luminance, which
/// is white exactly when the luminance is below about 0.18 (strong blue
/// gets white; white, pale colours and red, bright enough, get black).
fn white_text_on((red, green, blue): (u8, u8, u8)) -> bool {
    let linear = |c: u8| {
        let c = f64::from(c) / 255.0;
        if c <= 0.04045 {
            c / 12.92
        } else {
            ((c + 0.055) / 1.055).powf(2.4)
        }
    };
    let luminance = 0.2126 * linear(red) + 0.7152 * linear(green) + 0.0722 * linear(blue);
    // Contrast with white (1.05 / (L + 0.05)) beats contrast with black
    // ((L + 0.05) / 0.05).
    1.05 / (luminance + 0.05) > (luminance + 0.05) / 0.05
}

/// The CSS of a coloured chip or cell: its background and a legible text
/// colour.
fn css_colours(background: (u8, u8, u8)) -> String {
    let (red, green, blue) = background;
    let text = if white_text_on(background) { "#fff" } else { "#000" };
    format!("background: rgb({red}, {green}, {blue}); color: {text}")
}

/// The SGR parameters of text on `background` in a terminal of `colour`:
/// the foreground (black or white, whichever is legible) and the background
/// (24-bit, or the 256-colour palette's nearest).
fn sgr_colours(colour: Colour, background: (u8, u8, u8)) -> (&'static str, String) {
    let white = white_text_on(background);
    match colour {
        Colour::TrueColour => {
            let (red, green, blue) = background;
            let foreground = if white { "38;2;255;255;255" } else { "38;2;0;0;0" };
            (foreground, format!("48;2;{red};{green};{blue}"))
        }
        _ => {
            let foreground = if white { "38;5;231" } else { "38;5;16" };
            (foreground, format!("48;5;{}", palette_256(background)))
        }
    }
}

/// The 256-colour palette's nearest entry of the 6 x 6 x 6 cube (16..=231).
fn palette_256((red, green, blue): (u8, u8, u8)) -> u8 {
    let level = |c: u8| (u16::from(c) * 5 + 127) / 255;
    (16 + 36 * level(red) + 6 * level(green) + level(blue)) as u8
}

/// `text` with every character of [`lrp_core::needs_escape`] written as a
/// visible escape (`\u{1b}`, `\n`); unchanged text is borrowed.
pub(crate) fn printable(text: &str) -> Cow<'_, str> {
    if text.chars().any(lrp_core::needs_escape) {
        Cow::Owned(lrp_core::printable(text, usize::MAX))
    } else {
        Cow::Borrowed(text)
    }
}

/// HTML text (and attribute values in double quotes), control characters
/// escaped as in the terminal view.
fn escape(text: &str) -> String {
    printable(text)
        .replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn control_and_bidi_characters_are_escaped() {
        assert!(matches!(printable("well-drawn ünïcode"), Cow::Borrowed(_)));
        assert_eq!(printable("a\x1b[2Jb\n\u{202e}c\u{9b}"), r"a\u{1b}[2Jb\n\u{202e}c\u{9b}");
        assert_eq!(escape("<b>\x07&"), r"&lt;b&gt;\u{7}&amp;");
    }

    #[test]
    fn the_palette_keeps_white_red_and_blue() {
        assert_eq!(palette_256((255, 255, 255)), 231);
        assert_eq!(palette_256((255, 0, 0)), 196);
        assert_eq!(palette_256((0, 0, 255)), 21);
        assert_eq!(palette_256((255, 128, 128)), 16 + 36 * 5 + 6 * 3 + 3);
    }

    #[test]
    fn text_is_white_on_strong_colours_and_black_on_light_ones() {
        // Both ends of each side of the scale, and black itself.
        assert!(!white_text_on((255, 255, 255)));
        assert!(white_text_on((0, 0, 255)));
        assert!(white_text_on((0, 0, 0)));
        assert!(!white_text_on((200, 200, 255)));
        // Full red is bright enough for black (contrast 5.3 against 4.0).
        assert!(!white_text_on((255, 0, 0)));
        // Along the blue side, white takes over past two thirds of the scale.
        assert!(!white_text_on(relevance_colour(-0.6, 1.0)));
        assert!(white_text_on(relevance_colour(-0.7, 1.0)));
        assert_eq!(css_colours((0, 0, 255)), "background: rgb(0, 0, 255); color: #fff");
        assert_eq!(
            css_colours((255, 255, 255)),
            "background: rgb(255, 255, 255); color: #000"
        );
        assert_eq!(
            sgr_colours(Colour::Palette256, (0, 0, 255)),
            ("38;5;231", "48;5;21".to_string())
        );
        assert_eq!(
            sgr_colours(Colour::TrueColour, (255, 250, 250)),
            ("38;2;0;0;0", "48;2;255;250;250".to_string())
        );
    }

    #[test]
    fn the_pages_print_values_and_have_their_own_legends() {
        let tokens = ["good".to_string(), "bad".to_string()];
        let view = View {
            tokens: &tokens,
            unknown: &[],
            relevance: &[0.5, -0.5],
            scores: &[0.1, 0.9],
            predicted: 1,
            target: 1,
            labels: None,
            method: "lrp",
            position: None,
            regression: false,
        };
        let html = view.html_section();
        // The value under each word, and white on the strong blue.
        assert!(
            html.contains("color: #000\" title=\"+0.5000\">good</span><span class=\"v\">+0.500</span>"),
            "{html}"
        );
        assert!(
            html.contains("color: #fff\" title=\"-0.5000\">bad</span><span class=\"v\">-0.500</span>"),
            "{html}"
        );
        let page = html_header();
        assert!(page.contains("<span>against the class</span>") && page.contains("white-space: nowrap"));
        let rows = [vec![0.5, -1.0]];
        let matrix = Matrix {
            kind: "relevance",
            caption: "relevance".into(),
            rows: &rows,
            extra: Some(("target prefix", &[0.25])),
        };
        let page = seq2seq_html(&tokens, &[], &["out".to_string()], &[matrix]);
        assert!(!page.contains("against the class"), "{page}");
        assert!(page.contains("<span>relevance: against</span>") && page.contains("<span>attention: none</span>"));
        assert!(page.contains("color: #fff\" title=\"-1.0000\">-1.000</td>"), "{page}");
    }

    #[test]
    fn unknown_words_are_marked_and_labels_escaped() {
        let tokens = ["a".to_string(), "zzyzx".to_string()];
        let labels = ["bad\x1b]0;t\x07".to_string(), "good".to_string()];
        let view = View {
            tokens: &tokens,
            unknown: &[1],
            relevance: &[0.5, -0.25],
            scores: &[0.1, 0.9],
            predicted: 1,
            target: 0,
            labels: Some(&labels),
            method: "lrp",
            position: None,
            regression: false,
        };
        let plain = view.terminal(Colour::None);
        assert!(
            plain.contains("a +0.500  zzyzx -0.250 [unknown]\n([unknown]: not in the model's vocabulary"),
            "{plain}"
        );
        assert!(
            plain.contains(r"relevance for bad\u{1b}]0;t\u{7} (0)") && !plain.contains('\x1b'),
            "{plain}"
        );
        let coloured = view.terminal(Colour::Palette256);
        assert!(coloured.contains("\x1b[38;5;16;48;5;196m a \x1b[0m"), "{coloured}");
        assert!(coloured.contains("\x1b[38;5;16;4;48;5;"), "{coloured}");
        let html = view.html_section();
        assert_eq!(
            html.matches("<span class=\"w\" data-unknown style=").count(),
            1,
            "{html}"
        );
        assert_eq!(html.matches("<span class=\"w\"").count(), 2);
    }
}
