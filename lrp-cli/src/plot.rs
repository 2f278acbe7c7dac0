//! The benchmarks' figures, one SVG each, in one style: `perturb --plot`
//! (word deletion curves), `perturb --eraser-plot` (ERASER by rationale
//! size) and `groundtruth --plot` (bars per method and measure). Every
//! panel has its legend or its labels beside the axes, best first; a
//! method keeps its colour in every figure, and LRP is drawn thicker.

use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::RGBColor;

use crate::CliError;

/// Width of one panel: its axes and its legend.
const PANEL_WIDTH: u32 = 560;
/// Width of the axes within a panel.
const PLOT_WIDTH: u32 = 400;
/// Height of a figure.
const HEIGHT: u32 = 470;

/// Colour of a method: the Okabe-Ito palette (told apart with the common
/// forms of colour blindness; its yellow, weak on white, is left out).
/// LRP under another gate rule (`lrp:prop`, ...) is a darker or lighter
/// vermillion, so that the LRP family reads as one.
pub(crate) fn method_colour(name: &str) -> RGBColor {
    match name {
        "lrp" | "lrp:all" | "lrp:signal-take-all" => RGBColor(0xD5, 0x5E, 0x00), // vermillion
        "lrp:prop" => RGBColor(0x8C, 0x3B, 0x00),
        "lrp:abs" => RGBColor(0xB3, 0x6B, 0x3D),
        "lrp:half" | "lrp:uniform" => RGBColor(0xE8, 0x9A, 0x6A),
        "ig" => RGBColor(0x00, 0x72, 0xB2),        // blue
        "occlusion" => RGBColor(0x00, 0x9E, 0x73), // bluish green
        "gi" => RGBColor(0xE6, 0x9F, 0x00),        // orange
        "sa" => RGBColor(0xCC, 0x79, 0xA7),        // reddish purple
        "random" => RGBColor(0x55, 0x55, 0x55),    // grey
        _ => RGBColor(0x56, 0xB4, 0xE9),           // sky blue
    }
}

/// Line width of a method: LRP (under any gate rule) stands out.
fn method_width(name: &str) -> u32 {
    if name == "lrp" || name.starts_with("lrp:") {
        4
    } else {
        2
    }
}

/// One method's curve in a [`CurvePanel`], with the number its legend shows.
pub(crate) struct Series {
    pub name: String,
    /// The curve's values at the panel's x ticks.
    pub values: Vec<f64>,
    /// What the legend ranks by and shows (an AOPC).
    pub summary: f64,
}

/// One panel of curves: methods over a few x ticks.
pub(crate) struct CurvePanel {
    pub caption: String,
    /// The label of each x position, in order.
    pub ticks: Vec<String>,
    pub x_desc: String,
    pub y_desc: String,
    /// The legend's heading.
    pub legend: String,
    /// Whether a larger summary is better (it decides the legend's order).
    pub higher_is_better: bool,
    /// The y axis: `None` fits the values (rounded out to tenths).
    pub y_range: Option<(f64, f64)>,
    pub series: Vec<Series>,
}

/// One panel of bars: one bar per method for one measure.
pub(crate) struct BarPanel {
    pub caption: String,
    pub x_desc: String,
    /// The value axis.
    pub range: (f64, f64),
    /// Whether a larger value is better (it decides the order of the bars).
    pub higher_is_better: bool,
    /// `(method, value)`; a NaN value (undefined) is drawn as no bar.
    pub bars: Vec<(String, f64)>,
}

fn failed(e: &dyn std::fmt::Display) -> CliError {
    CliError::Usage(format!("cannot draw the plot: {e}"))
}

/// Best first by `key`, ties by name; NaN last.
fn ranked<T>(items: &[T], key: impl Fn(&T) -> f64, name: impl Fn(&T) -> &str, higher: bool) -> Vec<&T> {
    let mut order: Vec<&T> = items.iter().collect();
    order.sort_by(|a, b| {
        let (x, y) = (key(a), key(b));
        let by_value = match (x.is_nan(), y.is_nan()) {
            (true, true) => std::cmp::Ordering::Equal,
            (true, false) => std::cmp::Ordering::Greater,
            (false, true) => std::cmp::Ordering::Less,
            _ if higher => y.total_cmp(&x),
            _ => x.total_cmp(&y),
        };
        by_value.then_with(|| name(a).cmp(name(b)))
    });
    order
}

/// The range `[lo, hi]` of `values`, rounded out to tenths (at least 0.1 wide).
fn fitted_range(values: impl Iterator<Item = f64>) -> (f64, f64) {
    let (lo, hi) = values
        .filter(|v| v.is_finite())
        .fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), v| (lo.min(v), hi.max(v)));
    if lo > hi {
        return (0.0, 1.0);
    }
    let (lo, hi) = ((lo * 10.0).floor() / 10.0, (hi * 10.0).ceil() / 10.0);
    (lo, if hi - lo < 0.1 { lo + 0.1 } else { hi })
}

/// A figure of `count` panels side by side under `title`; `draw` fills
/// panel `k` in its area, and may place labels in the whole figure's
/// pixels (`root`).
fn figure(
    title: &str,
    count: usize,
    mut draw: impl FnMut(
        usize,
        DrawingArea<SVGBackend<'_>, Shift>,
        &DrawingArea<SVGBackend<'_>, Shift>,
    ) -> Result<(), CliError>,
) -> Result<String, CliError> {
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (PANEL_WIDTH * count.max(1) as u32, HEIGHT)).into_drawing_area();
        root.fill(&WHITE).map_err(|e| failed(&e))?;
        let body = root.titled(title, ("sans-serif", 18)).map_err(|e| failed(&e))?;
        for (k, area) in body.split_evenly((1, count.max(1))).into_iter().enumerate().take(count) {
            draw(k, area, &root)?;
        }
        root.present().map_err(|e| failed(&e))?;
    }
    Ok(svg)
}

/// Curves side by side, each panel with its legend beside the axes, best
/// summary first; the best curve is drawn last, on top.
pub(crate) fn curves_svg(title: &str, panels: &[CurvePanel]) -> Result<String, CliError> {
    figure(title, panels.len(), |k, area, _root| {
        let panel = &panels[k];
        let (area, legend) = area.split_horizontally(PLOT_WIDTH);
        let last = panel.ticks.len().saturating_sub(1).max(1) as i32;
        let (lo, hi) = panel
            .y_range
            .unwrap_or_else(|| fitted_range(panel.series.iter().flat_map(|s| s.values.iter().copied())));
        let mut chart = ChartBuilder::on(&area)
            .caption(&panel.caption, ("sans-serif", 15))
            .margin(10)
            .x_label_area_size(36)
            .y_label_area_size(46)
            .build_cartesian_2d(0i32..last, lo..hi)
            .map_err(|e| failed(&e))?;
        let ticks = panel.ticks.clone();
        chart
            .configure_mesh()
            .x_labels(ticks.len())
            .x_label_formatter(&|x| ticks.get(*x as usize).cloned().unwrap_or_default())
            .y_labels(6)
            .y_label_formatter(&|y| format!("{y:.1}"))
            .bold_line_style(RGBColor(0xDD, 0xDD, 0xDD))
            .light_line_style(RGBColor(0xF2, 0xF2, 0xF2))
            .x_max_light_lines(1)
            .y_max_light_lines(2)
            .x_desc(panel.x_desc.as_str())
            .y_desc(panel.y_desc.as_str())
            .draw()
            .map_err(|e| failed(&e))?;

        let order = ranked(&panel.series, |s| s.summary, |s| &s.name, panel.higher_is_better);
        for series in order.iter().rev() {
            let width = method_width(&series.name);
            let style = method_colour(&series.name).stroke_width(width);
            let points: Vec<(i32, f64)> = series.values.iter().enumerate().map(|(x, &y)| (x as i32, y)).collect();
            chart
                .draw_series(LineSeries::new(points.iter().copied(), style))
                .map_err(|e| failed(&e))?;
            chart
                .draw_series(points.iter().map(|&p| Circle::new(p, width + 1, style.filled())))
                .map_err(|e| failed(&e))?;
        }

        // The legend, outside the axes: a line sample, the method, its summary.
        let header = ("sans-serif", 14).into_font().style(FontStyle::Bold);
        legend
            .draw(&Text::new(panel.legend.as_str(), (4, 52), header))
            .map_err(|e| failed(&e))?;
        for (row, series) in order.iter().enumerate() {
            let y = 80 + 24 * row as i32;
            let style = method_colour(&series.name).stroke_width(method_width(&series.name));
            legend
                .draw(&PathElement::new(vec![(4, y), (30, y)], style))
                .map_err(|e| failed(&e))?;
            legend
                .draw(&Text::new(series.name.clone(), (38, y - 7), ("sans-serif", 13)))
                .map_err(|e| failed(&e))?;
            legend
                .draw(&Text::new(
                    format!("{:.3}", series.summary),
                    (118, y - 7),
                    ("sans-serif", 13),
                ))
                .map_err(|e| failed(&e))?;
        }
        Ok(())
    })
}

/// Horizontal bars side by side, one panel per measure: the methods best
/// first from the top, each bar labelled with its method and its value.
pub(crate) fn bars_svg(title: &str, panels: &[BarPanel]) -> Result<String, CliError> {
    figure(title, panels.len(), |k, area, root| {
        let panel = &panels[k];
        let order = ranked(&panel.bars, |b| b.1, |b| &b.0, panel.higher_is_better);
        let rows = order.len().max(1) as f64;
        let (lo, hi) = panel.range;
        let mut chart = ChartBuilder::on(&area)
            .caption(&panel.caption, ("sans-serif", 15))
            .margin(10)
            .margin_right(70)
            .x_label_area_size(36)
            .y_label_area_size(90)
            .build_cartesian_2d(lo..hi, 0f64..rows)
            .map_err(|e| failed(&e))?;
        chart
            .configure_mesh()
            .disable_y_mesh()
            .y_labels(0)
            .x_labels(6)
            .x_label_formatter(&|x| format!("{x:.1}"))
            .bold_line_style(RGBColor(0xDD, 0xDD, 0xDD))
            .light_line_style(RGBColor(0xF2, 0xF2, 0xF2))
            .x_max_light_lines(1)
            .x_desc(panel.x_desc.as_str())
            .draw()
            .map_err(|e| failed(&e))?;
        // Row 0 (the best) at the top.
        let top = |row: usize| rows - row as f64;
        let base = 0f64.clamp(lo, hi);
        for (row, (name, value)) in order.iter().enumerate() {
            let colour = method_colour(name);
            if value.is_finite() {
                let end = value.clamp(lo, hi);
                chart
                    .draw_series(std::iter::once(Rectangle::new(
                        [(base, top(row) - 0.15), (end, top(row) - 0.85)],
                        colour.filled(),
                    )))
                    .map_err(|e| failed(&e))?;
            }
            // The labels beside the axes, in the figure's pixels (where
            // `backend_coord` puts them): the method left, the value right.
            let (x0, y) = chart.backend_coord(&(lo, top(row) - 0.5));
            let (x1, _) = chart.backend_coord(&(hi, top(row) - 0.5));
            let weight = if method_width(name) > 2 {
                FontStyle::Bold
            } else {
                FontStyle::Normal
            };
            let font = ("sans-serif", 13).into_font().style(weight);
            root.draw(&Text::new(name.to_string(), (x0 - 84, y - 7), font.clone()))
                .map_err(|e| failed(&e))?;
            let shown = if value.is_finite() {
                format!("{value:.3}")
            } else {
                "n/a".to_string()
            };
            root.draw(&Text::new(shown, (x1 + 6, y - 7), font))
                .map_err(|e| failed(&e))?;
        }
        Ok(())
    })
}
