//! `lrp perturb` and `lrp groundtruth`: are the explanations right?
//! Word deletion curves on labelled sentences (Arras et al. 2017), ERASER's
//! comprehensiveness and sufficiency (DeYoung et al. 2020) and the two
//! marked positions of the adding task (Arras et al. 2019), for every
//! method side by side.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};

use lrp_io::{read_file_capped, read_sequences_with, write_atomically, LimitKind};
use lrp_layers::Composite;
use lrp_models::faithfulness::{
    accuracy_curve, aopc, check_deletions, deletion_order, deletion_variants, pearson, probability, random_order,
    rationale_size, select_positions, top_two_hit, ERASER_FRACTIONS,
};
use lrp_models::{ForwardTrace, Method, Model};
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use crate::eval::labelled_inputs;
use crate::explain::composite;
use crate::{default_model, print_json_line, CliError, Format, GroundtruthArgs, PerturbArgs, Terminal};

/// The methods a comparison can name.
const METHODS: [&str; 6] = ["lrp", "sa", "gi", "occlusion", "ig", "random"];

/// The methods of a comma-separated list, checked.
fn method_names(list: &str) -> Result<Vec<String>, CliError> {
    let names: Vec<String> = list
        .split(',')
        .map(|m| m.trim().to_string())
        .filter(|m| !m.is_empty())
        .collect();
    if names.is_empty() {
        return Err(CliError::Usage("--methods names no method".into()));
    }
    if let Some(bad) = names.iter().find(|m| !METHODS.contains(&m.as_str())) {
        return Err(CliError::Usage(format!(
            "unknown method {bad:?}; known: {}",
            METHODS.join(", ")
        )));
    }
    Ok(names)
}

/// Relevance per position by a named method (`None` for `random`).
fn relevance(
    model: &Model<f64>,
    trace: &ForwardTrace<f64>,
    target: usize,
    name: &str,
    rules: &Composite<f64>,
    ig_steps: usize,
) -> Result<Option<Vec<f64>>, CliError> {
    let method = match name {
        "lrp" => Method::Lrp(rules),
        "sa" => Method::Sensitivity,
        "gi" => Method::GradientTimesInput,
        "occlusion" => Method::Occlusion,
        "ig" => Method::IntegratedGradients { steps: ig_steps },
        _ => return Ok(None),
    };
    Ok(Some(model.attribute(trace, target, method)?.per_position))
}

/// One direction of a deletion experiment.
#[derive(Debug, Serialize)]
struct Curve {
    /// Accuracy after 0..K deletions.
    curve: Vec<f64>,
    /// Area over the perturbation curve.
    aopc: f64,
}

#[derive(Debug, Serialize)]
struct MethodCurves {
    /// Correctly classified sentences, most relevant words deleted first.
    correct: Curve,
    /// Misclassified sentences, least relevant words deleted first.
    misclassified: Curve,
}

/// ERASER's measures of one method (DeYoung et al. 2020), means over all
/// sentences, for the predicted class: per fraction of the tokens taken as
/// the rationale (the most relevant first), `p(y|x) - p(y|x without it)`
/// (comprehensiveness, higher is better) and `p(y|x) - p(y|it alone)`
/// (sufficiency, lower is better), and each one's mean over the fractions.
#[derive(Debug, Serialize)]
struct Eraser {
    comprehensiveness: Vec<f64>,
    sufficiency: Vec<f64>,
    comprehensiveness_aopc: f64,
    sufficiency_aopc: f64,
}

#[derive(Debug, Serialize)]
struct EraserReport {
    fractions: Vec<f64>,
    methods: BTreeMap<String, Eraser>,
}

#[derive(Debug, Serialize)]
struct PerturbReport {
    n: usize,
    correct: usize,
    misclassified: usize,
    steps: usize,
    methods: BTreeMap<String, MethodCurves>,
    eraser: EraserReport,
}

/// One sentence's ERASER differences for one method, per fraction:
/// `(comprehensiveness, sufficiency)`. `order` puts the positions most
/// relevant for the predicted class first.
fn eraser_differences(
    model: &Model<f64>,
    x: &nalgebra::DMatrix<f64>,
    trace: &ForwardTrace<f64>,
    order: &[usize],
) -> Result<Vec<(f64, f64)>, CliError> {
    let predicted = trace.predicted();
    let full = probability(trace.scores().as_slice(), predicted);
    let mut variants = Vec::with_capacity(2 * ERASER_FRACTIONS.len());
    for fraction in ERASER_FRACTIONS {
        let rationale = &order[..rationale_size(order.len(), fraction)];
        variants.push(select_positions(x, |t| !rationale.contains(&t)));
        variants.push(select_positions(x, |t| rationale.contains(&t)));
    }
    // A sentence without its rationale can be empty (half of a short
    // sentence is all of it): nothing is left to say the class, which
    // counts as probability 0.
    let runnable: Vec<_> = variants.iter().filter(|v| v.ncols() > 0).cloned().collect();
    let mut traces = model.forward_batch(runnable).into_iter();
    let mut probabilities = Vec::with_capacity(variants.len());
    for v in &variants {
        probabilities.push(if v.ncols() == 0 {
            0.0
        } else {
            let t = traces.next().expect("one trace per runnable variant")?;
            probability(t.scores().as_slice(), predicted)
        });
    }
    Ok(probabilities
        .chunks(2)
        .map(|pair| (full - pair[0], full - pair[1]))
        .collect())
}

pub(crate) fn perturb(args: &PerturbArgs, out: &mut dyn Write, terminal: Terminal) -> Result<(), CliError> {
    let names = method_names(&args.methods)?;
    let rules = composite::<f64>(&args.rules)?;
    // Before anything is loaded or allocated for the curves.
    check_deletions(args.steps)?;
    let limits = args.limits.limits();
    let dir = default_model::load::<f64>(&args.model, &limits)?;
    let (sentences, inputs) = labelled_inputs(&dir, &args.data, &limits)?;
    let k_max = args.steps;

    // Per sentence: whether it starts correct, and for each method how many
    // of its 0..K deletion variants keep the true class.
    #[allow(clippy::type_complexity)]
    let per_sentence: Vec<(bool, Vec<Vec<bool>>, Vec<Vec<(f64, f64)>>)> = (0..inputs.len())
        .into_par_iter()
        .map(|k| {
            let label = sentences[k].label;
            let trace = dir.model.forward(inputs[k].clone())?;
            let predicted = trace.predicted();
            let correct = predicted == label;
            let mut kept = Vec::with_capacity(names.len());
            let mut eraser = Vec::with_capacity(names.len());
            for name in &names {
                let seed = args.seed ^ (k as u64).wrapping_mul(0x9E37_79B9);
                let for_label = relevance(&dir.model, &trace, label, name, &rules, args.ig_steps)?;
                // ERASER reads the rationale of the predicted class.
                let for_predicted = if correct {
                    for_label.clone()
                } else {
                    relevance(&dir.model, &trace, predicted, name, &rules, args.ig_steps)?
                };
                let rationale_order = match for_predicted {
                    Some(r) => deletion_order(&r, true),
                    None => random_order(trace.len(), seed),
                };
                eraser.push(eraser_differences(&dir.model, &inputs[k], &trace, &rationale_order)?);
                let order = match for_label {
                    Some(r) => deletion_order(&r, correct),
                    None => random_order(trace.len(), seed),
                };
                // A few variants at a time: memory grows with T, not T².
                let mut variants = deletion_variants(&inputs[k], &order, k_max)?;
                let batch = dir.model.batch_size(trace.len());
                let mut hits = Vec::with_capacity(k_max + 1);
                loop {
                    let some: Vec<_> = variants.by_ref().take(batch).collect();
                    if some.is_empty() {
                        break;
                    }
                    for t in dir.model.forward_batch(some) {
                        hits.push(t?.predicted() == label);
                    }
                }
                // Past the sentence's length nothing more can be deleted.
                let last = *hits.last().expect("at least the undeleted input");
                hits.resize(k_max + 1, last);
                kept.push(hits);
            }
            Ok((correct, kept, eraser))
        })
        .collect::<Result<_, CliError>>()?;

    let n_correct = per_sentence.iter().filter(|(c, _, _)| *c).count();
    let n_wrong = per_sentence.len() - n_correct;
    let mut methods = BTreeMap::new();
    for (m, name) in names.iter().enumerate() {
        let curve = |correct: bool| {
            let kept: Vec<&[bool]> = per_sentence
                .iter()
                .filter(|(c, _, _)| *c == correct)
                .map(|(_, kept, _)| kept[m].as_slice())
                .collect();
            let accuracy = if kept.is_empty() {
                vec![0.0; k_max + 1]
            } else {
                accuracy_curve(&kept)
            };
            Curve {
                aopc: aopc(&accuracy, correct),
                curve: accuracy,
            }
        };
        methods.insert(
            name.clone(),
            MethodCurves {
                correct: curve(true),
                misclassified: curve(false),
            },
        );
    }
    let mut eraser = BTreeMap::new();
    for (m, name) in names.iter().enumerate() {
        let mean = |f: usize, part: fn(&(f64, f64)) -> f64| {
            per_sentence.iter().map(|(_, _, e)| part(&e[m][f])).sum::<f64>() / per_sentence.len().max(1) as f64
        };
        let comprehensiveness: Vec<f64> = (0..ERASER_FRACTIONS.len()).map(|f| mean(f, |d| d.0)).collect();
        let sufficiency: Vec<f64> = (0..ERASER_FRACTIONS.len()).map(|f| mean(f, |d| d.1)).collect();
        let average = |v: &[f64]| v.iter().sum::<f64>() / v.len() as f64;
        eraser.insert(
            name.clone(),
            Eraser {
                comprehensiveness_aopc: average(&comprehensiveness),
                sufficiency_aopc: average(&sufficiency),
                comprehensiveness,
                sufficiency,
            },
        );
    }
    let report = PerturbReport {
        n: sentences.len(),
        correct: n_correct,
        misclassified: n_wrong,
        steps: k_max,
        methods,
        eraser: EraserReport {
            fractions: ERASER_FRACTIONS.to_vec(),
            methods: eraser,
        },
    };
    if let Some(path) = &args.plot {
        write_atomically(path, plot(&report)?.as_bytes())?;
    }
    if matches!(args.format, Format::Text) || (args.format == Format::Auto && terminal.stdout) {
        writeln!(
            out,
            "{} sentences: {} correct, {} misclassified; 0..{} deletions",
            report.n, n_correct, n_wrong, k_max
        )?;
        writeln!(
            out,
            "{:<10} {:>12} {:>16}   accuracy (correct) / accuracy (misclassified)",
            "method", "AOPC correct", "AOPC misclass."
        )?;
        for (name, c) in &report.methods {
            let fmt = |v: &[f64]| v.iter().map(|a| format!("{a:.3}")).collect::<Vec<_>>().join(" ");
            writeln!(
                out,
                "{name:<10} {:>12.4} {:>16.4}   {} / {}",
                c.correct.aopc,
                c.misclassified.aopc,
                fmt(&c.correct.curve),
                fmt(&c.misclassified.curve)
            )?;
        }
        writeln!(
            out,
            "ERASER, predicted class, rationale the top 1/5/10/20/50% of tokens: comprehensiveness (higher is better) / sufficiency (lower is better)"
        )?;
        writeln!(
            out,
            "{:<10} {:>12} {:>16}   by fraction",
            "method", "AOPC compreh.", "AOPC suffic."
        )?;
        for (name, e) in &report.eraser.methods {
            let fmt = |v: &[f64]| v.iter().map(|a| format!("{a:.3}")).collect::<Vec<_>>().join(" ");
            writeln!(
                out,
                "{name:<10} {:>12.4} {:>16.4}   {} / {}",
                e.comprehensiveness_aopc,
                e.sufficiency_aopc,
                fmt(&e.comprehensiveness),
                fmt(&e.sufficiency)
            )?;
        }
    } else {
        print_json_line(out, &report)?;
    }
    Ok(())
}

/// Colour of a method's curve: the Okabe-Ito palette (told apart with the
/// common forms of colour blindness; its yellow, weak on white, is left
/// out), the same colour for a method in both panels.
fn method_colour(name: &str) -> plotters::style::RGBColor {
    use plotters::style::RGBColor;
    match name {
        "lrp" => RGBColor(0xD5, 0x5E, 0x00),       // vermillion
        "ig" => RGBColor(0x00, 0x72, 0xB2),        // blue
        "occlusion" => RGBColor(0x00, 0x9E, 0x73), // bluish green
        "gi" => RGBColor(0xE6, 0x9F, 0x00),        // orange
        "sa" => RGBColor(0xCC, 0x79, 0xA7),        // reddish purple
        "random" => RGBColor(0x55, 0x55, 0x55),    // grey
        _ => RGBColor(0x56, 0xB4, 0xE9),           // sky blue
    }
}

/// The curves as an SVG: correct sentences left, misclassified right, each
/// with its legend beside the axes, best AOPC first. LRP is drawn thicker.
fn plot(report: &PerturbReport) -> Result<String, CliError> {
    use plotters::prelude::*;
    use plotters::style::RGBColor;
    const PANEL_WIDTH: u32 = 560;
    const PLOT_WIDTH: u32 = 400;
    let mut svg = String::new();
    let failed = |e: &dyn std::fmt::Display| CliError::Usage(format!("cannot draw the plot: {e}"));
    let steps = report.steps.max(1) as i32;
    {
        let root = SVGBackend::with_string(&mut svg, (2 * PANEL_WIDTH, 470)).into_drawing_area();
        root.fill(&WHITE).map_err(|e| failed(&e))?;
        let title = format!(
            "Word deletion on {} sentences: accuracy after 0..{} deletions (AOPC: higher is better)",
            report.n, report.steps
        );
        let body = root.titled(&title, ("sans-serif", 18)).map_err(|e| failed(&e))?;
        let (left, right) = body.split_horizontally(PANEL_WIDTH);
        for (panel, correct) in [(left, true), (right, false)] {
            let (area, legend) = panel.split_horizontally(PLOT_WIDTH);
            let caption = if correct {
                format!("{} correct: most relevant deleted first", report.correct)
            } else {
                format!("{} misclassified: least relevant first", report.misclassified)
            };
            let mut chart = ChartBuilder::on(&area)
                .caption(caption, ("sans-serif", 15))
                .margin(10)
                .x_label_area_size(36)
                .y_label_area_size(46)
                .build_cartesian_2d(0i32..steps, 0f64..1f64)
                .map_err(|e| failed(&e))?;
            chart
                .configure_mesh()
                .x_labels(steps as usize + 1)
                .x_label_formatter(&|x| x.to_string())
                .y_labels(6)
                .y_label_formatter(&|y| format!("{y:.1}"))
                .bold_line_style(RGBColor(0xDD, 0xDD, 0xDD))
                .light_line_style(RGBColor(0xF2, 0xF2, 0xF2))
                .x_max_light_lines(1)
                .y_max_light_lines(2)
                .x_desc("words deleted")
                .y_desc("accuracy")
                .draw()
                .map_err(|e| failed(&e))?;

            // Best first in the legend, and drawn last so it lies on top.
            let mut ranked: Vec<(&String, &Curve)> = report
                .methods
                .iter()
                .map(|(name, c)| (name, if correct { &c.correct } else { &c.misclassified }))
                .collect();
            ranked.sort_by(|a, b| b.1.aopc.total_cmp(&a.1.aopc).then_with(|| a.0.cmp(b.0)));
            let width = |name: &str| if name == "lrp" { 4 } else { 2 };
            for (name, curve) in ranked.iter().rev() {
                let style = method_colour(name).stroke_width(width(name));
                let points: Vec<(i32, f64)> = curve.curve.iter().enumerate().map(|(d, &a)| (d as i32, a)).collect();
                chart
                    .draw_series(LineSeries::new(points.iter().copied(), style))
                    .map_err(|e| failed(&e))?;
                chart
                    .draw_series(points.iter().map(|&p| Circle::new(p, width(name) + 1, style.filled())))
                    .map_err(|e| failed(&e))?;
            }

            // The legend, outside the axes: a line sample, the method, its AOPC.
            let header = ("sans-serif", 14).into_font().style(FontStyle::Bold);
            legend
                .draw(&Text::new("AOPC, best first", (4, 52), header))
                .map_err(|e| failed(&e))?;
            for (row, (name, curve)) in ranked.iter().enumerate() {
                let y = 80 + 24 * row as i32;
                let style = method_colour(name).stroke_width(width(name));
                legend
                    .draw(&PathElement::new(vec![(4, y), (30, y)], style))
                    .map_err(|e| failed(&e))?;
                legend
                    .draw(&Text::new(name.to_string(), (38, y - 7), ("sans-serif", 13)))
                    .map_err(|e| failed(&e))?;
                legend
                    .draw(&Text::new(
                        format!("{:.3}", curve.aopc),
                        (118, y - 7),
                        ("sans-serif", 13),
                    ))
                    .map_err(|e| failed(&e))?;
            }
        }
        root.present().map_err(|e| failed(&e))?;
    }
    Ok(svg)
}

/// One sequence of a ground-truth set: its two marked positions and values.
#[derive(Debug, Deserialize)]
struct Marked {
    name: String,
    marked: [usize; 2],
    values: [f64; 2],
}

#[derive(Debug, Deserialize)]
struct Truth {
    sequences: Vec<Marked>,
}

#[derive(Debug, Serialize)]
struct GroundtruthScore {
    /// Share of sequences whose two most relevant positions are the marked ones.
    top2_accuracy: f64,
    /// Pearson correlation of the marked positions' relevance with their values.
    correlation: f64,
}

#[derive(Debug, Serialize)]
struct GroundtruthReport {
    n: usize,
    methods: BTreeMap<String, GroundtruthScore>,
}

/// What one method found on one sequence: whether its top two are the
/// marked positions, and the (relevance, value) pair of each marked one.
type Found = (bool, [(f64, f64); 2]);

/// The truth file beside the data: `X.npz` -> `X.json`.
fn truth_path(data: &Path) -> PathBuf {
    data.with_extension("json")
}

pub(crate) fn groundtruth(args: &GroundtruthArgs, out: &mut dyn Write, terminal: Terminal) -> Result<(), CliError> {
    let names = method_names(&args.methods)?;
    let rules = composite::<f64>(&args.rules)?;
    let limits = args.limits.limits();
    let dir = default_model::load::<f64>(&Some(args.model.clone()), &limits)?;
    let sequences = read_sequences_with(&args.data, &limits)?;
    let truth_file = truth_path(&args.data);
    let text = read_file_capped(&truth_file, limits.max_data_bytes, LimitKind::DataBytes)?;
    let truth: Truth = serde_json::from_slice(&text).map_err(|e| lrp_io::Error::Format {
        path: truth_file.clone(),
        message: e.to_string(),
    })?;
    let marked: BTreeMap<&str, &Marked> = truth.sequences.iter().map(|m| (m.name.as_str(), m)).collect();
    let mut pairs = Vec::with_capacity(sequences.len());
    for s in &sequences {
        let m = marked
            .get(s.name.as_str())
            .ok_or_else(|| CliError::Usage(format!("{}: no marked positions for {}", truth_file.display(), s.name)))?;
        if m.marked.iter().any(|&t| t >= s.vectors.ncols()) || m.marked[0] == m.marked[1] {
            return Err(CliError::Usage(format!(
                "{}: {}: marked positions out of range",
                truth_file.display(),
                s.name
            )));
        }
        pairs.push((s, *m));
    }
    // Per sequence and method: top-2 hit, and the two (relevance, value) pairs.
    let results: Vec<Vec<Found>> = pairs
        .par_iter()
        .enumerate()
        .map(|(k, (s, m))| {
            let trace = dir.model.forward(s.vectors.clone())?;
            names
                .iter()
                .map(|name| {
                    let r = match relevance(&dir.model, &trace, 0, name, &rules, args.ig_steps)? {
                        Some(r) => r,
                        None => {
                            // Random relevance: a random permutation's ranks.
                            let order = random_order(trace.len(), args.seed ^ (k as u64).wrapping_mul(0x9E37_79B9));
                            let mut r = vec![0.0; trace.len()];
                            for (rank, &t) in order.iter().enumerate() {
                                r[t] = (trace.len() - rank) as f64;
                            }
                            r
                        }
                    };
                    let [a, b] = m.marked;
                    Ok((top_two_hit(&r, m.marked), [(r[a], m.values[0]), (r[b], m.values[1])]))
                })
                .collect::<Result<Vec<_>, CliError>>()
        })
        .collect::<Result<_, CliError>>()?;
    let mut methods = BTreeMap::new();
    for (j, name) in names.iter().enumerate() {
        let hits = results.iter().filter(|r| r[j].0).count();
        let (rel, val): (Vec<f64>, Vec<f64>) = results.iter().flat_map(|r| r[j].1).unzip();
        methods.insert(
            name.clone(),
            GroundtruthScore {
                top2_accuracy: hits as f64 / results.len() as f64,
                correlation: pearson(&rel, &val),
            },
        );
    }
    let report = GroundtruthReport {
        n: results.len(),
        methods,
    };
    if matches!(args.format, Format::Text) || (args.format == Format::Auto && terminal.stdout) {
        writeln!(out, "{} sequences", report.n)?;
        writeln!(out, "{:<10} {:>14} {:>12}", "method", "top-2 accuracy", "correlation")?;
        for (name, s) in &report.methods {
            writeln!(out, "{name:<10} {:>14.3} {:>12.3}", s.top2_accuracy, s.correlation)?;
        }
    } else {
        print_json_line(out, &report)?;
    }
    Ok(())
}
