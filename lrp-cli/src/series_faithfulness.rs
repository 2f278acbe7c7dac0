//! `lrp perturb --vectors FILE.csv`: deletion curves for time series.
//! As for words (Arras et al. 2017), the inputs the explanation calls most
//! relevant are deleted first and the accuracy recorded after each
//! deletion, but along two axes, each its own curve: time steps (every
//! channel of a step at once) and whole channels (every step of a
//! channel at once).
//!
//! Deleting sets the values to zero: the baseline that occlusion and
//! integrated gradients measure against and that LRP's rules decompose
//! towards, so the curves test each method on the question it answers,
//! and the same baseline the word curves use (a zero embedding). For
//! sensors centred on rest, as BasicMotions' accelerometer and gyroscope,
//! zero also reads as "no motion"; for other data a user can centre the
//! CSV's channels first.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::Path;

use lrp_io::write_atomically;
use lrp_models::faithfulness::{deletion_order, deletion_variants, random_order};
use rayon::prelude::*;
use serde::Serialize;

use crate::eval::check_classifier;
use crate::explain::open_csv_for;
use crate::faithfulness::{deletion_panel, input_seed, kept_after_deletions, Curve, MethodCurves, Methods};
use crate::plot::curves_svg;
use crate::progress::{progress, Unit};
use crate::{print_json_line, CliError, Format, PerturbArgs, Terminal};

/// One method's curves along both axes.
#[derive(Debug, Serialize)]
struct AxesCurves {
    /// Time steps deleted, 0..K.
    time_steps: MethodCurves,
    /// Whole channels deleted, 0..C.
    channels: MethodCurves,
}

#[derive(Debug, Serialize)]
struct SeriesReport {
    n: usize,
    correct: usize,
    misclassified: usize,
    /// Time steps deleted at most (`--steps`).
    steps: usize,
    /// The channels, in the CSV's order.
    channels: Vec<String>,
    /// What a deleted value becomes.
    baseline: f64,
    methods: BTreeMap<String, AxesCurves>,
}

/// The class a label cell names: one of the model's class names, else a
/// class index from 0; `None` when it is neither.
pub(crate) fn class_of(label: &str, names: Option<&[String]>, classes: usize) -> Option<usize> {
    if let Some(k) = names.and_then(|names| names.iter().position(|n| n == label)) {
        return Some(k);
    }
    label.parse::<usize>().ok().filter(|&k| k < classes)
}

/// One labelled series: its class and its values `[C, T]`.
struct Labelled {
    label: usize,
    x: nalgebra::DMatrix<f64>,
}

/// Per series: whether it starts correct, and for each method whether it
/// keeps its class after each number of deleted time steps and channels.
struct Kept {
    correct: bool,
    time_steps: Vec<Vec<bool>>,
    channels: Vec<Vec<bool>>,
}

pub(crate) fn perturb(
    args: &PerturbArgs,
    path: &Path,
    methods: &Methods,
    out: &mut dyn Write,
    terminal: Terminal,
) -> Result<(), CliError> {
    // Labels come from a column, which only a CSV file has.
    if !path.extension().is_some_and(|e| e.eq_ignore_ascii_case("csv")) {
        return Err(CliError::Usage(format!(
            "{}: perturb --vectors reads a CSV file (a header, the labels in --label-column)",
            path.display()
        )));
    }
    let limits = args.limits.limits();
    let vectors = Some(path.to_path_buf());
    if let Some(plot) = &args.plot {
        crate::refuse_output_over_inputs(("--plot", plot), &args.model, &[("--vectors", &vectors)], &limits)?;
    }
    let dir = lrp_app::load_model::<f64>(args.model.as_deref(), &limits)?;
    args.rules.options().check_sites(&dir.model.sites())?;
    check_classifier(&dir, "series", "series")?;
    let reader = open_csv_for(
        path,
        [
            args.time_column.as_deref(),
            args.series_column.as_deref(),
            args.label_column.as_deref(),
        ],
        dir.model.input_size(),
        &limits,
    )?;
    let channels = reader.channels().to_vec();
    let names = dir.model.config().and_then(|config| config.labels.as_deref());
    let classes = dir.model.num_classes();
    let mut all = Vec::new();
    for series in reader {
        let series = series?;
        let name = series.name.unwrap_or_else(|| format!("line {}", series.line));
        let label = series.label.unwrap_or_default();
        let Some(class) = class_of(&label, names, classes) else {
            let known = match names {
                Some(names) => format!("one of {} or an index 0..{classes}", names.join(", ")),
                None => format!("an index 0..{classes}"),
            };
            return Err(CliError::Usage(format!(
                "{}: series {name}: the label {label:?} is not a class of this model ({known})",
                path.display()
            )));
        };
        let what = format!("{}: series {name}", path.display());
        methods.check_cost(&limits, &what, |method| dir.model.cost(method, series.vectors.ncols()))?;
        all.push(Labelled {
            label: class,
            x: series.vectors,
        });
    }
    if all.is_empty() {
        return Err(CliError::Usage(format!("{} holds no series", path.display())));
    }
    let (k_max, c_max) = (args.steps, channels.len());
    let bar = progress(terminal, "perturb", Some(all.len() as u64), Unit::Items("series"));
    let per_series: Vec<Kept> = all
        .par_iter()
        .enumerate()
        .map(|(k, series)| {
            let (label, x) = (series.label, &series.x);
            let trace = dir.model.forward(x.clone())?;
            let correct = trace.predicted() == label;
            let seed = input_seed(args.seed, k);
            let order = |relevance: Option<Vec<f64>>, len: usize| match relevance {
                Some(r) => deletion_order(&r, correct),
                None => random_order(len, seed),
            };
            let (mut time_steps, mut by_channel) = (Vec::new(), Vec::new());
            for m in 0..methods.len() {
                let steps = order(methods.relevance(m, &dir.model, &trace, label, None)?, x.ncols());
                let variants = deletion_variants(x, &steps, k_max)?;
                time_steps.push(kept_after_deletions(&dir.model, variants, x.ncols(), label, k_max)?);
                // Channels are the rows of `x`: deleting the columns of its
                // transpose deletes them.
                let rows = order(methods.channel_relevance(m, &dir.model, &trace, label)?, x.nrows());
                let transposed = x.transpose();
                let variants = deletion_variants(&transposed, &rows, c_max)?.map(|v| v.transpose());
                by_channel.push(kept_after_deletions(&dir.model, variants, x.ncols(), label, c_max)?);
            }
            bar.inc(1);
            Ok(Kept {
                correct,
                time_steps,
                channels: by_channel,
            })
        })
        .collect::<Result<_, CliError>>()?;
    bar.finish_and_clear();

    let n_correct = per_series.iter().filter(|s| s.correct).count();
    let mut curves = BTreeMap::new();
    for (m, name) in methods.names().enumerate() {
        let axis = |of: fn(&Kept) -> &Vec<Vec<bool>>, deletions: usize| {
            let curve = |correct: bool| {
                let kept: Vec<&[bool]> = per_series
                    .iter()
                    .filter(|s| s.correct == correct)
                    .map(|s| of(s)[m].as_slice())
                    .collect();
                Curve::of(&kept, deletions, correct)
            };
            MethodCurves {
                correct: curve(true),
                misclassified: curve(false),
            }
        };
        curves.insert(
            name.to_string(),
            AxesCurves {
                time_steps: axis(|s| &s.time_steps, k_max),
                channels: axis(|s| &s.channels, c_max),
            },
        );
    }
    let report = SeriesReport {
        n: all.len(),
        correct: n_correct,
        misclassified: all.len() - n_correct,
        steps: k_max,
        channels,
        baseline: 0.0,
        methods: curves,
    };
    if let Some(plot) = &args.plot {
        write_atomically(plot, deletion_plot(&report)?.as_bytes())?;
    }
    if matches!(args.format, Format::Text) || (args.format == Format::Auto && terminal.stdout) {
        write_text(&report, out)?;
    } else {
        print_json_line(out, &report)?;
    }
    Ok(())
}

fn write_text(report: &SeriesReport, out: &mut dyn Write) -> Result<(), CliError> {
    writeln!(
        out,
        "{} series: {} correct, {} misclassified; deleted (set to 0): 0..{} time steps, 0..{} channels ({})",
        report.n,
        report.correct,
        report.misclassified,
        report.steps,
        report.channels.len(),
        report.channels.join(", ")
    )?;
    writeln!(
        out,
        "{:<10} {:>12} {:>12} {:>14} {:>14}   accuracy (correct): time steps / channels",
        "method", "AOPC steps", "AOPC chann.", "misclass.steps", "misclass.chan."
    )?;
    let fmt = |v: &[f64]| v.iter().map(|a| format!("{a:.3}")).collect::<Vec<_>>().join(" ");
    for (name, c) in &report.methods {
        writeln!(
            out,
            "{name:<10} {:>12.4} {:>12.4} {:>14.4} {:>14.4}   {} / {}",
            c.time_steps.correct.aopc,
            c.channels.correct.aopc,
            c.time_steps.misclassified.aopc,
            c.channels.misclassified.aopc,
            fmt(&c.time_steps.correct.curve),
            fmt(&c.channels.correct.curve)
        )?;
    }
    Ok(())
}

/// The curves of the correctly classified series as an SVG: time steps
/// left, channels right, each legend ordered by AOPC (the misclassified
/// series' curves are in the JSON and the text).
fn deletion_plot(report: &SeriesReport) -> Result<String, CliError> {
    let panel = |channels: bool| {
        let (axis, deletions, x_desc) = if channels {
            ("channels", report.channels.len(), "whole channels deleted (set to 0)")
        } else {
            ("time steps", report.steps, "time steps deleted (set to 0)")
        };
        let caption = format!("{} correct: most relevant {axis} deleted first", report.correct);
        let curves = report.methods.iter().map(|(name, c)| {
            let curve = if channels {
                &c.channels.correct
            } else {
                &c.time_steps.correct
            };
            (name.as_str(), curve)
        });
        deletion_panel(caption, x_desc, deletions, curves)
    };
    let title = format!(
        "Deletion on {} series: accuracy after 0..{} time steps and 0..{} channels (AOPC: higher is better)",
        report.n,
        report.steps,
        report.channels.len()
    );
    curves_svg(&title, &[panel(false), panel(true)])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_label_names_a_class_or_gives_its_index() {
        let names = ["standing".to_string(), "running".to_string()];
        assert_eq!(class_of("running", Some(&names), 2), Some(1));
        assert_eq!(class_of("0", Some(&names), 2), Some(0));
        assert_eq!(class_of("2", Some(&names), 2), None, "past the classes");
        assert_eq!(class_of("walking", Some(&names), 2), None);
        assert_eq!(class_of("1", None, 2), Some(1));
        assert_eq!(class_of("-1", None, 2), None);
    }
}
