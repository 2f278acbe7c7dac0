//! `lrp perturb`: are the explanations faithful to the model? Word
//! deletion curves on labelled sentences (Arras et al. 2017) and ERASER's
//! comprehensiveness and sufficiency (DeYoung et al. 2020), for every
//! method side by side; and [`Methods`], the methods a comparison names,
//! which `lrp groundtruth` shares.

use std::collections::BTreeMap;
use std::io::Write;

use lrp_io::write_atomically;
use lrp_layers::{Composite, GATE_RULES};
use lrp_models::faithfulness::{
    accuracy_curve, aopc, check_deletions, deletion_order, deletion_variants, probability, random_order,
    rationale_size, select_positions, ERASER_FRACTIONS,
};
use lrp_models::{ForwardTrace, Method, Model};
use nalgebra::DMatrix;
use rayon::prelude::*;
use serde::Serialize;

use crate::eval::labelled_inputs;
use crate::plot::{curves_svg, CurvePanel, Series};
use crate::progress::{progress, Unit};
use crate::{print_json_line, CliError, Format, PerturbArgs, RuleArgs, Terminal};

/// The methods a comparison can name; `lrp:GATE` is LRP under another
/// gate rule (one of [`GATE_RULES`]), the other rules as the flags say.
const METHODS: [&str; 6] = ["lrp", "sa", "gi", "occlusion", "ig", "random"];

/// The methods of one comparison, each ready to run: the names as given,
/// and for each LRP variant its rules, built once.
pub(crate) struct Methods {
    entries: Vec<(String, Option<Composite<f64>>)>,
    ig_steps: usize,
}

impl Methods {
    /// The methods of a comma-separated list, checked; LRP runs under
    /// `rules` (for `lrp:GATE`, with that gate rule in place of theirs).
    pub(crate) fn parse(list: &str, rules: &RuleArgs, ig_steps: usize) -> Result<Self, CliError> {
        let names: Vec<String> = list
            .split(',')
            .map(|m| m.trim().to_string())
            .filter(|m| !m.is_empty())
            .collect();
        if names.is_empty() {
            return Err(CliError::Usage("--methods names no method".into()));
        }
        let mut entries = Vec::with_capacity(names.len());
        for name in names {
            if entries.iter().any(|(seen, _)| *seen == name) {
                return Err(CliError::Usage(format!("--methods names {name:?} twice")));
            }
            let rules = match name.split_once(':') {
                Some(("lrp", gate)) if GATE_RULES.contains(&gate) => Some(
                    lrp_app::RuleOptions {
                        gate_rule: gate.to_string(),
                        ..rules.options()
                    }
                    .composite::<f64>()?,
                ),
                _ if name == "lrp" => Some(rules.options().composite::<f64>()?),
                _ if METHODS.contains(&name.as_str()) => None,
                _ => {
                    return Err(CliError::Usage(format!(
                        "unknown method {name:?}; known: {}, and lrp:GATE with GATE one of {}",
                        METHODS.join(", "),
                        GATE_RULES.join(", ")
                    )))
                }
            };
            entries.push((name, rules));
        }
        Ok(Self { entries, ig_steps })
    }

    /// The names, in the order given.
    pub(crate) fn names(&self) -> impl Iterator<Item = &str> {
        self.entries.iter().map(|(name, _)| name.as_str())
    }

    pub(crate) fn len(&self) -> usize {
        self.entries.len()
    }

    /// Refuses an input (`what` names it) that one of the methods would
    /// cost more to explain than the `limits` allow, `cost` telling what a
    /// method costs on it.
    pub(crate) fn check_cost(
        &self,
        limits: &lrp_io::Limits,
        what: &str,
        cost: impl Fn(Method<'_, f64>) -> lrp_models::Cost,
    ) -> Result<(), CliError> {
        for (m, (name, _)) in self.entries.iter().enumerate() {
            if let Some(method) = self.method(m) {
                // A bad parameter is named as such, not as a cost.
                method.validate()?;
                limits.check_cost(&format!("{what} ({name})"), cost(method))?;
            }
        }
        Ok(())
    }

    /// Method `m`, ready to run (`None` for `random`, which is not a relevance).
    pub(crate) fn method(&self, m: usize) -> Option<Method<'_, f64>> {
        let (name, rules) = &self.entries[m];
        match (name.as_str(), rules) {
            (_, Some(rules)) => Some(Method::Lrp(rules)),
            ("sa", None) => Some(Method::Sensitivity),
            ("gi", None) => Some(Method::GradientTimesInput),
            ("occlusion", None) => Some(Method::Occlusion),
            ("ig", None) => Some(Method::IntegratedGradients { steps: self.ig_steps }),
            _ => None,
        }
    }

    /// What method `m` finds for `target`: relevance per position, or per
    /// position of input dimension `dimension` alone (`None` for `random`,
    /// which is not a relevance).
    pub(crate) fn relevance(
        &self,
        m: usize,
        model: &Model<f64>,
        trace: &ForwardTrace<f64>,
        target: usize,
        dimension: Option<usize>,
    ) -> Result<Option<Vec<f64>>, CliError> {
        let Some(method) = self.method(m) else {
            return Ok(None);
        };
        let Some(k) = dimension else {
            return Ok(Some(model.attribute(trace, target, method)?.per_position));
        };
        if let Method::Occlusion = method {
            // Occlusion of one dimension: that value alone set to zero.
            return occlusion_drops(model, trace, target, trace.len(), |t, v| v[(k, t)] = 0.0).map(Some);
        }
        let per_dimension = per_dimension(&self.entries[m].0, model, trace, target, method)?;
        Ok(Some(per_dimension.row(k).iter().copied().collect()))
    }

    /// What method `m` finds for `target` per input dimension (a channel of
    /// a time series): its relevance per dimension summed over positions;
    /// for occlusion, the drop of the score when the whole channel is set
    /// to zero (`None` for `random`, which is not a relevance).
    pub(crate) fn channel_relevance(
        &self,
        m: usize,
        model: &Model<f64>,
        trace: &ForwardTrace<f64>,
        target: usize,
    ) -> Result<Option<Vec<f64>>, CliError> {
        let Some(method) = self.method(m) else {
            return Ok(None);
        };
        if let Method::Occlusion = method {
            let channels = trace.input().nrows();
            return occlusion_drops(model, trace, target, channels, |c, v| v.row_mut(c).fill(0.0)).map(Some);
        }
        let per_dimension = per_dimension(&self.entries[m].0, model, trace, target, method)?;
        Ok(Some(per_dimension.row_iter().map(|row| row.sum()).collect()))
    }

    /// What method `m` finds for `target` in every cell `[E, T]` (input
    /// dimension, position), `None` for `random`. Occlusion scores each
    /// cell alone, `s(x) - s(x with x_{e,t} = 0)`: `E T` forward passes.
    pub(crate) fn cell_relevance(
        &self,
        m: usize,
        model: &Model<f64>,
        trace: &ForwardTrace<f64>,
        target: usize,
    ) -> Result<Option<DMatrix<f64>>, CliError> {
        let Some(method) = self.method(m) else {
            return Ok(None);
        };
        if let Method::Occlusion = method {
            let x = trace.input();
            let found = occlusion_drops(model, trace, target, x.len(), |i, v| v[i] = 0.0)?;
            return Ok(Some(DMatrix::from_vec(x.nrows(), x.ncols(), found)));
        }
        per_dimension(&self.entries[m].0, model, trace, target, method).map(Some)
    }
}

/// `method`'s relevance `[E, T]` per input dimension and position (`name`
/// names the method in the error of one that has none).
fn per_dimension(
    name: &str,
    model: &Model<f64>,
    trace: &ForwardTrace<f64>,
    target: usize,
    method: Method<'_, f64>,
) -> Result<DMatrix<f64>, CliError> {
    model
        .attribute(trace, target, method)?
        .per_dimension
        .ok_or_else(|| CliError::Usage(format!("{name} gives no relevance per dimension")))
}

/// Occlusion: `s(x) - s(x')` for `target`, for each of `count` copies `x'`
/// of `trace`'s input `[E, T]`, copy `k` blanked by `blank(k, x')` (a
/// value, a channel, a cell). The copies are made and run in batches of
/// [`Model::batch_size`], so memory does not grow with `count`.
fn occlusion_drops(
    model: &Model<f64>,
    trace: &ForwardTrace<f64>,
    target: usize,
    count: usize,
    blank: impl Fn(usize, &mut DMatrix<f64>),
) -> Result<Vec<f64>, CliError> {
    let full = trace.scores()[target];
    let x = trace.input();
    let mut found = Vec::with_capacity(count);
    let batch = model.batch_size(trace.len()).max(1);
    for start in (0..count).step_by(batch) {
        let variants = (start..count.min(start + batch))
            .map(|k| {
                let mut v = x.clone();
                blank(k, &mut v);
                v
            })
            .collect();
        for t in model.forward_batch(variants) {
            found.push(full - t?.scores()[target]);
        }
    }
    Ok(found)
}

/// The seed of the random baseline for input `k` of a run seeded `seed`.
pub(crate) fn input_seed(seed: u64, k: usize) -> u64 {
    seed ^ (k as u64).wrapping_mul(0x9E37_79B9)
}

/// Whether the model still gives `label` after each of the deletions
/// `variants` makes (the inputs of [`deletion_variants`], of length `len`),
/// `k_max + 1` answers: past the input's end nothing more can be deleted,
/// so the last answer repeats. The variants run a batch at a time, so
/// that memory grows with `len`, not `len²`.
pub(crate) fn kept_after_deletions(
    model: &Model<f64>,
    mut variants: impl Iterator<Item = nalgebra::DMatrix<f64>>,
    len: usize,
    label: usize,
    k_max: usize,
) -> Result<Vec<bool>, CliError> {
    let batch = model.batch_size(len);
    let mut hits = Vec::with_capacity(k_max + 1);
    loop {
        let some: Vec<_> = variants.by_ref().take(batch).collect();
        if some.is_empty() {
            break;
        }
        for t in model.forward_batch(some) {
            hits.push(t?.predicted() == label);
        }
    }
    let last = *hits.last().expect("at least the undeleted input");
    hits.resize(k_max + 1, last);
    Ok(hits)
}

/// One direction of a deletion experiment.
#[derive(Debug, Serialize)]
pub(crate) struct Curve {
    /// Accuracy after 0..K deletions.
    pub(crate) curve: Vec<f64>,
    /// Area over the perturbation curve.
    pub(crate) aopc: f64,
}

impl Curve {
    /// The accuracy curve of the inputs `kept` records (one record of
    /// `k_max + 1` answers per input, [`kept_after_deletions`]) and its
    /// AOPC, `falling` when deletion should lower the accuracy; zeros for
    /// no inputs.
    pub(crate) fn of(kept: &[&[bool]], k_max: usize, falling: bool) -> Self {
        let accuracy = if kept.is_empty() {
            vec![0.0; k_max + 1]
        } else {
            accuracy_curve(kept)
        };
        Curve {
            aopc: aopc(&accuracy, falling),
            curve: accuracy,
        }
    }
}

#[derive(Debug, Serialize)]
pub(crate) struct MethodCurves {
    /// Correctly classified inputs, most relevant positions deleted first.
    pub(crate) correct: Curve,
    /// Misclassified inputs, least relevant positions deleted first.
    pub(crate) misclassified: Curve,
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
    let full = probability(trace.scores().as_slice(), predicted)?;
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
            probability(t.scores().as_slice(), predicted)?
        });
    }
    Ok(probabilities
        .chunks(2)
        .map(|pair| (full - pair[0], full - pair[1]))
        .collect())
}

pub(crate) fn perturb(args: &PerturbArgs, out: &mut dyn Write, terminal: Terminal) -> Result<(), CliError> {
    let methods = Methods::parse(&args.methods, &args.rules, args.ig_steps)?;
    // Before anything is loaded or allocated for the curves.
    check_deletions(args.steps)?;
    if let Some(vectors) = &args.vectors {
        return crate::series_faithfulness::perturb(args, vectors, &methods, out, terminal);
    }
    let Some(data_path) = &args.data else {
        return Err(CliError::Usage("give --data FILE or --vectors FILE.csv".into()));
    };
    let limits = args.limits.limits();
    let data = Some(data_path.clone());
    for (flag, path) in [("--plot", &args.plot), ("--eraser-plot", &args.eraser_plot)] {
        if let Some(path) = path {
            crate::refuse_output_over_inputs((flag, path), &args.model, &[("--data", &data)], &limits)?;
        }
    }
    let dir = lrp_app::load_model::<f64>(args.model.as_deref(), &limits)?;
    args.rules.options().check_sites(&dir.model.sites())?;
    let (sentences, inputs) = labelled_inputs(&dir, data_path, &limits)?;
    for (k, input) in inputs.iter().enumerate() {
        let what = format!("{}: sentence {}", data_path.display(), k + 1);
        methods.check_cost(&limits, &what, |method| dir.model.cost(method, input.ncols()))?;
    }
    let k_max = args.steps;
    let bar = progress(terminal, "perturb", Some(inputs.len() as u64), Unit::Items("sentences"));

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
            let mut kept = Vec::with_capacity(methods.len());
            let mut eraser = Vec::with_capacity(methods.len());
            for m in 0..methods.len() {
                let seed = input_seed(args.seed, k);
                let for_label = methods.relevance(m, &dir.model, &trace, label, None)?;
                // ERASER reads the rationale of the predicted class.
                let for_predicted = if correct {
                    for_label.clone()
                } else {
                    methods.relevance(m, &dir.model, &trace, predicted, None)?
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
                let variants = deletion_variants(&inputs[k], &order, k_max)?;
                kept.push(kept_after_deletions(&dir.model, variants, trace.len(), label, k_max)?);
            }
            bar.inc(1);
            Ok((correct, kept, eraser))
        })
        .collect::<Result<_, CliError>>()?;
    bar.finish_and_clear();

    let n_correct = per_sentence.iter().filter(|(c, _, _)| *c).count();
    let n_wrong = per_sentence.len() - n_correct;
    let mut curves = BTreeMap::new();
    for (m, name) in methods.names().enumerate() {
        let curve = |correct: bool| {
            let kept: Vec<&[bool]> = per_sentence
                .iter()
                .filter(|(c, _, _)| *c == correct)
                .map(|(_, kept, _)| kept[m].as_slice())
                .collect();
            Curve::of(&kept, k_max, correct)
        };
        curves.insert(
            name.to_string(),
            MethodCurves {
                correct: curve(true),
                misclassified: curve(false),
            },
        );
    }
    let mut eraser = BTreeMap::new();
    for (m, name) in methods.names().enumerate() {
        let mean = |f: usize, part: fn(&(f64, f64)) -> f64| {
            per_sentence.iter().map(|(_, _, e)| part(&e[m][f])).sum::<f64>() / per_sentence.len().max(1) as f64
        };
        let comprehensiveness: Vec<f64> = (0..ERASER_FRACTIONS.len()).map(|f| mean(f, |d| d.0)).collect();
        let sufficiency: Vec<f64> = (0..ERASER_FRACTIONS.len()).map(|f| mean(f, |d| d.1)).collect();
        let average = |v: &[f64]| v.iter().sum::<f64>() / v.len() as f64;
        eraser.insert(
            name.to_string(),
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
        methods: curves,
        eraser: EraserReport {
            fractions: ERASER_FRACTIONS.to_vec(),
            methods: eraser,
        },
    };
    if let Some(path) = &args.plot {
        write_atomically(path, deletion_plot(&report)?.as_bytes())?;
    }
    if let Some(path) = &args.eraser_plot {
        write_atomically(path, eraser_plot(&report)?.as_bytes())?;
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

/// The deletion curves as an SVG: correct sentences left, misclassified
/// right, each legend ordered by AOPC.
fn deletion_plot(report: &PerturbReport) -> Result<String, CliError> {
    let panel = |correct: bool| {
        let caption = if correct {
            format!("{} correct: most relevant deleted first", report.correct)
        } else {
            format!("{} misclassified: least relevant first", report.misclassified)
        };
        let curves = report.methods.iter().map(|(name, c)| {
            let curve = if correct { &c.correct } else { &c.misclassified };
            (name.as_str(), curve)
        });
        deletion_panel(caption, "words deleted", report.steps, curves)
    };
    let title = format!(
        "Word deletion on {} sentences: accuracy after 0..{} deletions (AOPC: higher is better)",
        report.n, report.steps
    );
    curves_svg(&title, &[panel(true), panel(false)])
}

/// A panel of accuracy curves after 0..`deletions` deletions, one per
/// method, the legend ordered by AOPC, best first.
pub(crate) fn deletion_panel<'a>(
    caption: String,
    x_desc: &str,
    deletions: usize,
    curves: impl Iterator<Item = (&'a str, &'a Curve)>,
) -> CurvePanel {
    CurvePanel {
        caption,
        ticks: (0..=deletions.max(1)).map(|d| d.to_string()).collect(),
        x_desc: x_desc.into(),
        y_desc: "accuracy".into(),
        legend: "AOPC, best first".into(),
        higher_is_better: true,
        y_range: Some((0.0, 1.0)),
        series: curves
            .map(|(name, curve)| Series {
                name: name.to_string(),
                values: curve.curve.clone(),
                summary: curve.aopc,
            })
            .collect(),
    }
}

/// ERASER's measures as an SVG: comprehensiveness left, sufficiency right,
/// by the rationale's share of the tokens, each legend ordered by AOPC.
fn eraser_plot(report: &PerturbReport) -> Result<String, CliError> {
    let eraser = &report.eraser;
    let panel = |comprehensiveness: bool| CurvePanel {
        caption: if comprehensiveness {
            "comprehensiveness: p(y) drop without the rationale".to_string()
        } else {
            "sufficiency: p(y) drop with the rationale alone".to_string()
        },
        ticks: eraser.fractions.iter().map(|f| format!("{}%", f * 100.0)).collect(),
        x_desc: "rationale: top share of the tokens".into(),
        y_desc: "mean probability difference".into(),
        legend: if comprehensiveness {
            "AOPC, highest first".into()
        } else {
            "AOPC, lowest first".into()
        },
        higher_is_better: comprehensiveness,
        y_range: None,
        series: eraser
            .methods
            .iter()
            .map(|(name, e)| Series {
                name: name.clone(),
                values: if comprehensiveness {
                    e.comprehensiveness.clone()
                } else {
                    e.sufficiency.clone()
                },
                summary: if comprehensiveness {
                    e.comprehensiveness_aopc
                } else {
                    e.sufficiency_aopc
                },
            })
            .collect(),
    };
    let title = format!(
        "ERASER on {} sentences, predicted class (DeYoung et al. 2020)",
        report.n
    );
    curves_svg(&title, &[panel(true), panel(false)])
}
