//! `lrp groundtruth`: are the explanations right where the right answer is
//! known? Each case names what should carry the relevance, and every
//! method is scored on it side by side (docs/groundtruth.md has the format):
//!
//! - `marked` positions and their `values` (the adding task, Arras et al.
//!   2019): are the two most relevant positions the marked ones, and does
//!   their relevance follow their values? Also by the smaller marked value.
//! - a `point`, with optional `distractors` (the offending symbol of a
//!   white-box LSTM, Hao 2020; the subject of a verb, Poerner et al. 2018):
//!   is the most relevant position the point, or a distractor?
//! - a `neutral` span (a balanced prefix): how much net relevance does it
//!   carry?
//! - for an encoder–decoder, the `aligned` source position of each output
//!   token (sequence reversal): is the most relevant source token the
//!   aligned one, and what share of the source relevance does it carry?
//! - a `mask` of (position, input dimension) cells, the box of a time
//!   series that carries the class (Ismail et al. 2020): how well does the
//!   relevance of each cell pick the box out (AUP, AUR, AUPR, ROC AUC), and
//!   how fast does the accuracy fall when the most relevant cells are
//!   blanked?

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};

use lrp_io::{load_seq2seq, read_file_capped, read_sequences_with, write_atomically, LimitKind};
use lrp_models::faithfulness::{
    accuracy_curve, most_relevant, net_share, pearson, precision_recall_areas, random_order, rescaled_saliency,
    roc_auc, top_by_mass, top_two_hit, trapezoid, weighted_precision_recall, SALIENCY_MASS_FRACTIONS,
};
use lrp_models::seq2seq::MAX_TARGET_LENGTH;
use nalgebra::DMatrix;
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use crate::faithfulness::Methods;
use crate::plot::{bars_svg, BarPanel};
use crate::progress::{progress, Unit};
use crate::{print_json_line, CliError, Format, GroundtruthArgs, Terminal};
use lrp_app::{target_ids, ExplainInput};

/// Edges of the bins of the smaller marked value the top-2 accuracy is
/// also reported by: a small marked value is the hard case of the adding
/// task (its contribution to the sum is small for every method).
const SMALLER_VALUE_BINS: [f64; 6] = [0.0, 0.1, 0.2, 0.3, 0.5, 1.0];

/// One case: an input (an array of the archive by `name`, or `text`) and
/// what should carry the relevance of the model's output `output` (a
/// class, for a classifier). Other keys are ignored: the adding task's
/// files also hold each sequence's `target` sum and the `prediction`.
#[derive(Debug, Deserialize)]
struct Case {
    name: Option<String>,
    text: Option<String>,
    #[serde(default)]
    output: usize,
    marked: Option<[usize; 2]>,
    values: Option<[f64; 2]>,
    point: Option<usize>,
    #[serde(default)]
    distractors: Vec<usize>,
    neutral: Option<[usize; 2]>,
    /// Seq2seq: the reference output, teacher-forced.
    output_text: Option<String>,
    /// Seq2seq: per output token, the source position it is aligned with
    /// (`null`: none).
    aligned: Option<Vec<Option<usize>>>,
    /// The `[position, input dimension]` cells that carry the class (a
    /// time series' box of time steps and channels).
    mask: Option<Vec<[usize; 2]>>,
}

#[derive(Debug, Deserialize)]
struct Truth {
    sequences: Vec<Case>,
}

/// The top-2 accuracy of the cases whose smaller marked value lies in `[from, to)`.
#[derive(Debug, Serialize)]
struct ValueBin {
    from: f64,
    to: f64,
    n: usize,
    top2_accuracy: f64,
}

/// One method's scores; a measure is present when some case defines it.
#[derive(Debug, Default, Serialize)]
struct Scores {
    /// Share of the marked cases whose two most relevant positions are the marked ones.
    #[serde(skip_serializing_if = "Option::is_none")]
    top2_accuracy: Option<f64>,
    /// Pearson correlation of the marked positions' relevance with their values.
    #[serde(skip_serializing_if = "Option::is_none")]
    correlation: Option<f64>,
    /// The top-2 accuracy by the smaller marked value.
    #[serde(skip_serializing_if = "Option::is_none")]
    top2_by_smaller_value: Option<Vec<ValueBin>>,
    /// Share of the cases with a point whose single most relevant position is it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pointing_accuracy: Option<f64>,
    /// Share of the cases with distractors whose most relevant position is one.
    #[serde(skip_serializing_if = "Option::is_none")]
    distractor_rate: Option<f64>,
    /// Mean over the cases with a neutral span of its net share of the relevance.
    #[serde(skip_serializing_if = "Option::is_none")]
    neutral_share: Option<f64>,
    /// Seq2seq: share of the aligned output tokens whose most relevant
    /// source token is the aligned one.
    #[serde(skip_serializing_if = "Option::is_none")]
    alignment_accuracy: Option<f64>,
    /// Seq2seq: mean over the aligned output tokens of
    /// `|R_aligned| / sum_s |R_s|` over the source tokens.
    #[serde(skip_serializing_if = "Option::is_none")]
    aligned_share: Option<f64>,
    /// Seq2seq: mean over the aligned output tokens of the source's share of
    /// the relevance on the inputs, `sum_s |R_s| / (sum_s |R_s| + sum_i |R_i|)`
    /// with `i` the decoder's inputs (not for `attention` and `random`).
    #[serde(skip_serializing_if = "Option::is_none")]
    source_share: Option<f64>,
    /// Mask: the saliency-weighted precision at each fraction of the
    /// saliency mass (`SALIENCY_MASS_FRACTIONS`), mean over the cases.
    #[serde(skip_serializing_if = "Option::is_none")]
    mask_precision: Option<Vec<f64>>,
    /// Mask: the saliency-weighted recall at the same fractions.
    #[serde(skip_serializing_if = "Option::is_none")]
    mask_recall: Option<Vec<f64>>,
    /// Mask: area under `mask_precision` over the fractions.
    #[serde(skip_serializing_if = "Option::is_none")]
    aup: Option<f64>,
    /// Mask: area under `mask_recall` over the fractions.
    #[serde(skip_serializing_if = "Option::is_none")]
    aur: Option<f64>,
    /// Mask: area under `mask_precision` over `mask_recall`.
    #[serde(skip_serializing_if = "Option::is_none")]
    aupr: Option<f64>,
    /// Mask: mean over the cases of the ROC area of the saliency telling
    /// the mask's cells from the others.
    #[serde(skip_serializing_if = "Option::is_none")]
    roc_auc: Option<f64>,
    /// Mask: accuracy (the prediction is the case's `output`) with no
    /// cell blanked, the most salient cells of each fraction of the
    /// saliency mass blanked (`SALIENCY_MASS_FRACTIONS`), and every cell
    /// blanked; a blanked cell is 0.
    #[serde(skip_serializing_if = "Option::is_none")]
    masked_accuracy: Option<Vec<f64>>,
    /// Mask: area under `masked_accuracy` over the fractions 0, 0.1, ..., 1
    /// (lower: the accuracy falls sooner).
    #[serde(skip_serializing_if = "Option::is_none")]
    masked_accuracy_area: Option<f64>,
}

impl Scores {
    /// The mask's measures from what one method found on each case with a mask.
    fn set_mask(&mut self, found: &[&MaskFound]) {
        if found.is_empty() {
            return;
        }
        let n = found.len() as f64;
        let mean_curve = |curve: fn(&MaskFound) -> &[f64]| -> Vec<f64> {
            (0..SALIENCY_MASS_FRACTIONS.len())
                .map(|k| found.iter().map(|f| curve(f)[k]).sum::<f64>() / n)
                .collect()
        };
        let precision = mean_curve(|f| &f.precision);
        let recall = mean_curve(|f| &f.recall);
        let (aup, aur, aupr) = precision_recall_areas(&precision, &recall);
        let kept: Vec<&[bool]> = found.iter().map(|f| f.kept.as_slice()).collect();
        let accuracy = accuracy_curve(&kept);
        self.masked_accuracy_area = Some(trapezoid(&masked_fractions(), &accuracy));
        self.masked_accuracy = Some(accuracy);
        self.aup = Some(aup);
        self.aur = Some(aur);
        self.aupr = Some(aupr);
        self.roc_auc = Some(found.iter().map(|f| f.roc_auc).sum::<f64>() / n);
        self.mask_precision = Some(precision);
        self.mask_recall = Some(recall);
    }
}

/// The fractions of the saliency mass the masked accuracy is read at: 0
/// (nothing blanked), `SALIENCY_MASS_FRACTIONS`, and 1 (every cell blanked).
fn masked_fractions() -> Vec<f64> {
    std::iter::once(0.0)
        .chain(SALIENCY_MASS_FRACTIONS)
        .chain(std::iter::once(1.0))
        .collect()
}

/// How many cases define each measure.
#[derive(Debug, Serialize)]
struct Counts {
    marked: usize,
    point: usize,
    distractors: usize,
    neutral: usize,
    /// Seq2seq: output tokens with an aligned source position.
    #[serde(skip_serializing_if = "is_zero")]
    aligned: usize,
    /// Cases with a mask of cells.
    #[serde(skip_serializing_if = "is_zero")]
    mask: usize,
}

fn is_zero(n: &usize) -> bool {
    *n == 0
}

#[derive(Debug, Serialize)]
struct Report {
    n: usize,
    /// The input dimension read alone (`--dimension`), or none: the signed sum.
    dimension: Option<usize>,
    counts: Counts,
    methods: BTreeMap<String, Scores>,
}

/// On a case with marked positions: whether the top two are they, their
/// two (relevance, value) pairs, and the smaller value.
type MarkedFound = (bool, [(f64, f64); 2], f64);

/// A case and its input `[E, T]`.
type CaseInput = (Case, DMatrix<f64>);

/// What one method found on one case.
struct Found {
    marked: Option<MarkedFound>,
    /// The most relevant position is the point; it is a distractor.
    point: Option<(bool, bool)>,
    neutral: Option<f64>,
    mask: Option<MaskFound>,
}

/// What one method found on one case with a mask.
struct MaskFound {
    /// Saliency-weighted precision at each of `SALIENCY_MASS_FRACTIONS`.
    precision: Vec<f64>,
    /// Saliency-weighted recall at the same fractions.
    recall: Vec<f64>,
    /// The ROC area of the saliency telling the mask from the other cells.
    roc_auc: f64,
    /// Whether the prediction is still the case's output with the cells of
    /// each of `masked_fractions()` blanked.
    kept: Vec<bool>,
}

/// Scores a relevance map `[E, T]` against the cells `inside` the mask
/// (indexed as the map's column-major slice, `e + E t`): the saliency
/// `rescaled_saliency` makes of it, its precision, recall and ROC area,
/// and the model's prediction on `trace`'s input with the most salient
/// cells of each fraction of the saliency mass blanked: set to `blank`'s
/// value of the cell (`[E, T]`, the input's shape), or to 0 without it.
fn score_mask(
    model: &lrp_models::Model<f64>,
    trace: &lrp_models::ForwardTrace<f64>,
    relevance: &DMatrix<f64>,
    inside: &[bool],
    output: usize,
    blank: Option<&DMatrix<f64>>,
) -> Result<MaskFound, CliError> {
    let saliency = rescaled_saliency(relevance.as_slice());
    let tops: Vec<Vec<usize>> = SALIENCY_MASS_FRACTIONS
        .iter()
        .map(|&f| top_by_mass(&saliency, f))
        .collect();
    let (precision, recall) = tops
        .iter()
        .map(|top| weighted_precision_recall(&saliency, inside, top))
        .unzip();
    let x = trace.input();
    let mut variants: Vec<DMatrix<f64>> = tops
        .iter()
        .map(|top| {
            let mut v = x.clone();
            for &i in top {
                v[i] = blank.map_or(0.0, |b| b[i]);
            }
            v
        })
        .collect();
    variants.push(blank.cloned().unwrap_or_else(|| DMatrix::zeros(x.nrows(), x.ncols())));
    let mut kept = vec![trace.predicted() == output];
    let batch = model.batch_size(trace.len());
    while !variants.is_empty() {
        let rest = variants.split_off(batch.min(variants.len()));
        for t in model.forward_batch(std::mem::replace(&mut variants, rest)) {
            kept.push(t?.predicted() == output);
        }
    }
    Ok(MaskFound {
        precision,
        recall,
        // Both groups are non-empty (check_case).
        roc_auc: roc_auc(&saliency, inside).unwrap_or(f64::NAN),
        kept,
    })
}

/// The truth file beside an archive: `X.npz` -> `X.json`.
fn truth_path(data: &Path) -> PathBuf {
    data.with_extension("json")
}

/// The cases of a truth file.
fn read_truth(path: &Path, max_bytes: u64) -> Result<Vec<Case>, CliError> {
    let text = read_file_capped(path, max_bytes, LimitKind::DataBytes)?;
    let truth: Truth = serde_json::from_slice(&text).map_err(|e| lrp_io::Error::Format {
        path: path.to_path_buf(),
        message: e.to_string(),
    })?;
    if truth.sequences.is_empty() {
        return Err(CliError::Usage(format!("{}: no cases", path.display())));
    }
    Ok(truth.sequences)
}

/// Checks one case against its input's length `len`, its input dimensions
/// `dims` and the model's outputs.
fn check_case(case: &Case, len: usize, dims: usize, outputs: usize) -> Result<(), String> {
    let position = |what: &str, t: usize| {
        if t < len {
            Ok(())
        } else {
            Err(format!("{what} {t} is past the last position ({len} positions)"))
        }
    };
    if case.output >= outputs {
        return Err(format!(
            "output {} is not an output of this model (0..{outputs})",
            case.output
        ));
    }
    if case.aligned.is_some() || case.output_text.is_some() {
        return Err("aligned and output_text are for seq2seq models; this model is a classifier".into());
    }
    if case.marked.is_none() && case.point.is_none() && case.neutral.is_none() && case.mask.is_none() {
        return Err("names no ground truth (marked, point, neutral or mask)".into());
    }
    if let Some(mask) = &case.mask {
        let mut seen = vec![false; len * dims];
        for &[t, c] in mask {
            if t >= len || c >= dims {
                return Err(format!(
                    "mask cell [{t}, {c}] is outside the input ({len} positions x {dims} dimensions)"
                ));
            }
            if std::mem::replace(&mut seen[c + dims * t], true) {
                return Err(format!("mask cell [{t}, {c}] is listed twice"));
            }
        }
        if mask.is_empty() || mask.len() == len * dims {
            return Err(format!(
                "the mask has {} of the {} cells; it needs some cells inside and some outside",
                mask.len(),
                len * dims
            ));
        }
    }
    if let Some([a, b]) = case.marked {
        position("marked position", a)?;
        position("marked position", b)?;
        if a == b {
            return Err("the two marked positions are the same".into());
        }
        if case.values.is_none() {
            return Err("marked positions without their values".into());
        }
    }
    if let Some(p) = case.point {
        position("point", p)?;
        for &d in &case.distractors {
            position("distractor", d)?;
            if d == p {
                return Err(format!("position {p} is both the point and a distractor"));
            }
        }
    } else if !case.distractors.is_empty() {
        return Err("distractors without a point".into());
    }
    if let Some([start, end]) = case.neutral {
        if start >= end || end > len {
            return Err(format!(
                "neutral span [{start}, {end}) is empty or past the end ({len} positions)"
            ));
        }
    }
    Ok(())
}

/// The cases and their inputs `[E, T]`: an archive's arrays matched by name
/// with the truth file beside it, or the texts of a truth file.
fn cases_and_inputs(
    args: &GroundtruthArgs,
    dir: &lrp_io::ModelDir<f64>,
    limits: &lrp_io::Limits,
) -> Result<(PathBuf, Vec<CaseInput>), CliError> {
    let mut pairs = Vec::new();
    if args.data.extension().is_some_and(|e| e == "json") {
        let cases = read_truth(&args.data, limits.max_data_bytes)?;
        if cases.len() > limits.max_sequences {
            return Err(CliError::Usage(format!(
                "{}: {} cases, more than the limit of {} (--max-sequences)",
                args.data.display(),
                cases.len(),
                limits.max_sequences
            )));
        }
        let vocab = dir.vocab()?;
        for (k, case) in cases.into_iter().enumerate() {
            let what = format!("{}: case {}", args.data.display(), k + 1);
            let text = case
                .text
                .as_deref()
                .ok_or_else(|| CliError::Usage(format!("{what}: no text")))?;
            let input = ExplainInput::text(vocab, &what, text, limits)?.input(&dir.model)?;
            pairs.push((case, input));
        }
        return Ok((args.data.clone(), pairs));
    }
    let sequences = read_sequences_with(&args.data, limits)?;
    let truth_file = truth_path(&args.data);
    let mut by_name: BTreeMap<String, Case> = BTreeMap::new();
    for case in read_truth(&truth_file, limits.max_data_bytes)? {
        let name = case
            .name
            .clone()
            .ok_or_else(|| CliError::Usage(format!("{}: a case without a name", truth_file.display())))?;
        if by_name.insert(name.clone(), case).is_some() {
            return Err(CliError::Usage(format!(
                "{}: two cases named {name}",
                truth_file.display()
            )));
        }
    }
    for s in sequences {
        let case = by_name
            .remove(&s.name)
            .ok_or_else(|| CliError::Usage(format!("{}: no ground truth for {}", truth_file.display(), s.name)))?;
        pairs.push((case, s.vectors));
    }
    Ok((truth_file, pairs))
}

/// The values of `--blank-with` (`[E, T]`), when given: one array of the
/// shape of every case with a mask.
fn blank_values(
    args: &GroundtruthArgs,
    pairs: &[CaseInput],
    limits: &lrp_io::Limits,
) -> Result<Option<DMatrix<f64>>, CliError> {
    let Some(path) = &args.blank_with else {
        return Ok(None);
    };
    let mut arrays = read_sequences_with(path, limits)?;
    if arrays.len() != 1 {
        return Err(CliError::Usage(format!(
            "--blank-with {}: {} arrays; it takes one [T, E] array",
            path.display(),
            arrays.len()
        )));
    }
    let blank = arrays.remove(0).vectors;
    if pairs.iter().all(|(case, _)| case.mask.is_none()) {
        return Err(CliError::Usage(format!(
            "--blank-with {}: no case has a mask, and only a mask's cells are blanked",
            path.display()
        )));
    }
    for (k, (case, input)) in pairs.iter().enumerate().filter(|(_, (case, _))| case.mask.is_some()) {
        if input.shape() != blank.shape() {
            let label = case.name.clone().unwrap_or_else(|| format!("case {}", k + 1));
            return Err(CliError::Usage(format!(
                "--blank-with {}: [{}, {}] (positions x dimensions), but {label} is [{}, {}]",
                path.display(),
                blank.ncols(),
                blank.nrows(),
                input.ncols(),
                input.nrows()
            )));
        }
    }
    Ok(Some(blank))
}

pub(crate) fn groundtruth(args: &GroundtruthArgs, out: &mut dyn Write, terminal: Terminal) -> Result<(), CliError> {
    let limits = args.limits.limits();
    if let Some(plot) = &args.plot {
        let truth = Some(truth_path(&args.data));
        let inputs = [
            ("--data", &Some(args.data.clone())),
            ("the truth file", &truth),
            ("--blank-with", &args.blank_with),
        ];
        crate::refuse_output_over_inputs(("--plot", plot), &Some(args.model.clone()), &inputs, &limits)?;
    }
    if lrp_io::is_seq2seq(&args.model, &limits) {
        if args.blank_with.is_some() {
            return Err(CliError::Usage(
                "--blank-with: a seq2seq model's cases have no mask, and only a mask's cells are blanked".into(),
            ));
        }
        return groundtruth_seq2seq(args, &limits, out, terminal);
    }
    let methods = Methods::parse(&args.methods, &args.rules, args.ig_steps)?;
    let dir = lrp_app::load_model::<f64>(Some(&args.model), &limits)?;
    args.rules.options().check_sites(&dir.model.sites())?;
    let (truth_file, pairs) = cases_and_inputs(args, &dir, &limits)?;
    let blank = blank_values(args, &pairs, &limits)?;
    let outputs = dir.model.num_classes();
    for (k, (case, input)) in pairs.iter().enumerate() {
        let label = case.name.clone().unwrap_or_else(|| format!("case {}", k + 1));
        check_case(case, input.ncols(), input.nrows(), outputs)
            .map_err(|e| CliError::Usage(format!("{}: {label}: {e}", truth_file.display())))?;
        if let Some(k) = args.dimension.filter(|&k| k >= input.nrows()) {
            return Err(CliError::Usage(format!(
                "--dimension {k}: the inputs have {} dimensions",
                input.nrows()
            )));
        }
        if args.dimension.is_some() && case.mask.is_some() {
            return Err(CliError::Usage(format!(
                "{}: {label}: --dimension reads one dimension, but a mask scores every cell",
                truth_file.display()
            )));
        }
        let what = format!("{}: {label}", truth_file.display());
        methods.check_cost(&limits, &what, |method| {
            let cost = dir.model.cost(method, input.ncols());
            match method {
                // A mask's occlusion blanks one cell at a time, not one position.
                lrp_models::Method::Occlusion if case.mask.is_some() => lrp_models::Cost {
                    work: cost.work.saturating_mul(input.nrows() as u64),
                    ..cost
                },
                _ => cost,
            }
        })?;
    }

    let bar = progress(terminal, "groundtruth", Some(pairs.len() as u64), Unit::Items("cases"));
    let results: Vec<Vec<Found>> = pairs
        .par_iter()
        .enumerate()
        .map(|(k, (case, input))| {
            let trace = dir.model.forward(input.clone())?;
            (0..methods.len())
                .map(|m| {
                    let by_position = case.marked.is_some() || case.point.is_some() || case.neutral.is_some();
                    let r = match by_position
                        .then(|| methods.relevance(m, &dir.model, &trace, case.output, args.dimension))
                        .transpose()?
                    {
                        // A case with a mask alone scores cells, not positions.
                        None => Vec::new(),
                        Some(Some(r)) => r,
                        Some(None) => {
                            // Random relevance: a random permutation's ranks.
                            let order = random_order(trace.len(), args.seed ^ (k as u64).wrapping_mul(0x9E37_79B9));
                            let mut r = vec![0.0; trace.len()];
                            for (rank, &t) in order.iter().enumerate() {
                                r[t] = (trace.len() - rank) as f64;
                            }
                            r
                        }
                    };
                    let marked = case
                        .marked
                        .zip(case.values)
                        .map(|([a, b], [va, vb])| (top_two_hit(&r, [a, b]), [(r[a], va), (r[b], vb)], va.min(vb)));
                    let point = case.point.map(|p| {
                        let top = most_relevant(&r);
                        (top == Some(p), top.is_some_and(|t| case.distractors.contains(&t)))
                    });
                    let neutral = case.neutral.map(|[start, end]| net_share(&r, start..end)).transpose()?;
                    let mask = match &case.mask {
                        None => None,
                        Some(cells) => {
                            let (dims, len) = input.shape();
                            let mut inside = vec![false; dims * len];
                            for &[t, c] in cells {
                                inside[c + dims * t] = true;
                            }
                            let relevance = match methods.cell_relevance(m, &dir.model, &trace, case.output)? {
                                Some(r) => r,
                                None => {
                                    // Random relevance: a random permutation's ranks over the cells.
                                    let n = dims * len;
                                    let seed = args.seed ^ (k as u64).wrapping_mul(0x9E37_79B9) ^ 0x6D61_736B;
                                    let mut r = DMatrix::zeros(dims, len);
                                    for (rank, &i) in random_order(n, seed).iter().enumerate() {
                                        r[i] = (n - rank) as f64;
                                    }
                                    r
                                }
                            };
                            Some(score_mask(
                                &dir.model,
                                &trace,
                                &relevance,
                                &inside,
                                case.output,
                                blank.as_ref(),
                            )?)
                        }
                    };
                    Ok(Found {
                        marked,
                        point,
                        neutral,
                        mask,
                    })
                })
                .collect::<Result<Vec<_>, CliError>>()
                .inspect(|_| bar.inc(1))
        })
        .collect::<Result<_, CliError>>()?;
    bar.finish_and_clear();

    let with_distractors = |k: usize| pairs[k].0.point.is_some() && !pairs[k].0.distractors.is_empty();
    let counts = Counts {
        marked: results.iter().filter(|r| r[0].marked.is_some()).count(),
        point: results.iter().filter(|r| r[0].point.is_some()).count(),
        distractors: (0..pairs.len()).filter(|&k| with_distractors(k)).count(),
        neutral: results.iter().filter(|r| r[0].neutral.is_some()).count(),
        aligned: 0,
        mask: results.iter().filter(|r| r[0].mask.is_some()).count(),
    };
    let share = |hits: usize, n: usize| (n > 0).then(|| hits as f64 / n as f64);
    let mut scores = BTreeMap::new();
    for (m, name) in methods.names().enumerate() {
        let marked: Vec<_> = results.iter().filter_map(|r| r[m].marked).collect();
        let (rel, val): (Vec<f64>, Vec<f64>) = marked.iter().flat_map(|f| f.1).unzip();
        let bins = (!marked.is_empty()).then(|| {
            SMALLER_VALUE_BINS
                .windows(2)
                .enumerate()
                .map(|(b, edge)| {
                    // The last bin takes its upper edge too.
                    let last = b + 2 == SMALLER_VALUE_BINS.len();
                    let inside: Vec<bool> = marked
                        .iter()
                        .filter(|f| f.2 >= edge[0] && (f.2 < edge[1] || (last && f.2 <= edge[1])))
                        .map(|f| f.0)
                        .collect();
                    ValueBin {
                        from: edge[0],
                        to: edge[1],
                        n: inside.len(),
                        top2_accuracy: share(inside.iter().filter(|&&h| h).count(), inside.len()).unwrap_or(f64::NAN),
                    }
                })
                .collect()
        });
        let pointed: Vec<(bool, bool)> = results.iter().filter_map(|r| r[m].point).collect();
        let distracted = (0..pairs.len())
            .filter(|&k| with_distractors(k) && results[k][m].point.is_some_and(|p| p.1))
            .count();
        let neutral: Vec<f64> = results.iter().filter_map(|r| r[m].neutral).collect();
        let masked: Vec<&MaskFound> = results.iter().filter_map(|r| r[m].mask.as_ref()).collect();
        let mut method_scores = Scores {
            top2_accuracy: share(marked.iter().filter(|f| f.0).count(), marked.len()),
            correlation: (!marked.is_empty()).then(|| pearson(&rel, &val)),
            top2_by_smaller_value: bins,
            pointing_accuracy: share(pointed.iter().filter(|p| p.0).count(), pointed.len()),
            distractor_rate: share(distracted, counts.distractors),
            neutral_share: (!neutral.is_empty()).then(|| neutral.iter().sum::<f64>() / neutral.len() as f64),
            alignment_accuracy: None,
            aligned_share: None,
            source_share: None,
            ..Scores::default()
        };
        method_scores.set_mask(&masked);
        scores.insert(name.to_string(), method_scores);
    }
    let report = Report {
        n: results.len(),
        dimension: args.dimension,
        counts,
        methods: scores,
    };
    emit(&report, args, out, terminal)
}

/// The report as text or JSON, and its plot when asked for.
fn emit(report: &Report, args: &GroundtruthArgs, out: &mut dyn Write, terminal: Terminal) -> Result<(), CliError> {
    if let Some(path) = &args.plot {
        write_atomically(path, plot(report, &plot_title(report))?.as_bytes())?;
    }
    if matches!(args.format, Format::Text) || (args.format == Format::Auto && terminal.stdout) {
        write_text(report, out)?;
    } else {
        print_json_line(out, report)?;
    }
    Ok(())
}

/// What one method found on one aligned output token.
struct AlignedFound {
    /// The most relevant source token is the aligned one.
    hit: bool,
    /// `|R_aligned| / sum_s |R_s|`.
    share: f64,
    /// The source's share of the relevance on the inputs.
    source_share: Option<f64>,
}

/// One seq2seq case: source ids, reference output ids, aligned positions.
type AlignedCase = (Vec<usize>, Vec<usize>, Vec<Option<usize>>);

/// The cases of a seq2seq truth file, checked: each has a `text`, an
/// `output_text` and one `aligned` entry per output token.
fn seq2seq_cases(
    args: &GroundtruthArgs,
    dir: &lrp_io::Seq2SeqDir<f64>,
    limits: &lrp_io::Limits,
) -> Result<Vec<AlignedCase>, CliError> {
    let usage = |m: String| CliError::Usage(m);
    if args.data.extension().is_none_or(|e| e != "json") {
        return Err(usage(
            "a seq2seq model reads a .json set whose cases carry text, output_text and aligned".into(),
        ));
    }
    if args.dimension.is_some() {
        return Err(usage("--dimension is not supported for seq2seq models".into()));
    }
    let (Some(source_vocab), Some(target_vocab)) = (&dir.source_vocab, &dir.target_vocab) else {
        return Err(usage(
            "this seq2seq model has no source_vocab or target_vocab, so it cannot read text".into(),
        ));
    };
    let cases = read_truth(&args.data, limits.max_data_bytes)?;
    if cases.len() > limits.max_sequences {
        return Err(usage(format!(
            "{}: {} cases, more than the limit of {} (--max-sequences)",
            args.data.display(),
            cases.len(),
            limits.max_sequences
        )));
    }
    let mut checked = Vec::with_capacity(cases.len());
    for (k, case) in cases.into_iter().enumerate() {
        let label = case.name.clone().unwrap_or_else(|| format!("case {}", k + 1));
        let what = format!("{}: {label}", args.data.display());
        let fail = |m: &str| CliError::Usage(format!("{what}: {m}"));
        if case.marked.is_some() || case.point.is_some() || case.neutral.is_some() {
            return Err(fail(
                "marked, point and neutral are for classifiers; a seq2seq case names aligned",
            ));
        }
        let text = case.text.as_deref().ok_or_else(|| fail("no text"))?;
        let output_text = case.output_text.as_deref().ok_or_else(|| fail("no output_text"))?;
        let aligned = case.aligned.ok_or_else(|| fail("no aligned positions"))?;
        let words = lrp_io::tokenize_within(&what, text, limits)?;
        if words.is_empty() {
            return Err(fail("the text is empty"));
        }
        let (source, _) = source_vocab.lookup(&words)?;
        let target = target_ids(target_vocab, output_text, &format!("{what}: output_text"), limits)?;
        if aligned.len() != target.len() {
            return Err(fail(&format!(
                "{} aligned entries for {} output tokens",
                aligned.len(),
                target.len()
            )));
        }
        if let Some(p) = aligned.iter().flatten().find(|&&p| p >= source.len()) {
            return Err(fail(&format!(
                "aligned position {p} is past the last source position ({} positions)",
                source.len()
            )));
        }
        if aligned.iter().all(Option::is_none) {
            return Err(fail("no output token has an aligned position"));
        }
        checked.push((source, target, aligned));
    }
    Ok(checked)
}

/// `lrp groundtruth` on an encoder–decoder: each case's output is
/// teacher-forced, and every output token with an aligned source position
/// is explained (the logit of the reference token) by every method, and by
/// the attention weights (method `attention`, always scored).
fn groundtruth_seq2seq(
    args: &GroundtruthArgs,
    limits: &lrp_io::Limits,
    out: &mut dyn Write,
    terminal: Terminal,
) -> Result<(), CliError> {
    let listed: Vec<&str> = args
        .methods
        .split(',')
        .map(str::trim)
        .filter(|m| !m.is_empty() && *m != "attention")
        .collect();
    let methods = if listed.is_empty() {
        None
    } else {
        Some(Methods::parse(&listed.join(","), &args.rules, args.ig_steps)?)
    };
    let n_methods = methods.as_ref().map_or(0, Methods::len);
    let dir = load_seq2seq::<f64>(&args.model, limits)?;
    args.rules.options().check_sites(&dir.model.sites())?;
    let cases = seq2seq_cases(args, &dir, limits)?;
    let model = &dir.model;
    if let Some(methods) = &methods {
        for (k, (source, target, _)) in cases.iter().enumerate() {
            let what = format!("{}: case {}", args.data.display(), k + 1);
            methods.check_cost(limits, &what, |method| model.cost(method, source.len(), target.len()))?;
        }
    }
    // case -> method (the attention last) -> aligned output token
    let bar = progress(terminal, "groundtruth", Some(cases.len() as u64), Unit::Items("cases"));
    let results: Vec<Vec<Vec<AlignedFound>>> = cases
        .par_iter()
        .enumerate()
        .map(|(k, (source, target, aligned))| {
            let trace = model.forward(source, target)?;
            (0..=n_methods)
                .map(|m| {
                    aligned
                        .iter()
                        .enumerate()
                        .filter_map(|(j, p)| p.map(|p| (j, p)))
                        .map(|(j, p)| {
                            let method = methods.as_ref().filter(|_| m < n_methods).and_then(|ms| ms.method(m));
                            let (r, prefix) = if m == n_methods {
                                (trace.attention(j).to_vec(), None)
                            } else if let Some(method) = method {
                                let a = model.attribute(&trace, j, target[j], method)?;
                                (a.source, Some(a.target))
                            } else {
                                // Random relevance: a random permutation's ranks.
                                let s = source.len();
                                let seed = args.seed ^ ((k * MAX_TARGET_LENGTH + j) as u64).wrapping_mul(0x9E37_79B9);
                                let mut r = vec![0.0; s];
                                for (rank, &t) in random_order(s, seed).iter().enumerate() {
                                    r[t] = (s - rank) as f64;
                                }
                                (r, None)
                            };
                            let total: f64 = r.iter().map(|v| v.abs()).sum();
                            let share = if total > 0.0 { r[p].abs() / total } else { 0.0 };
                            let source_share = prefix.map(|t| {
                                let all = total + t.iter().map(|v| v.abs()).sum::<f64>();
                                if all > 0.0 {
                                    total / all
                                } else {
                                    0.0
                                }
                            });
                            Ok(AlignedFound {
                                hit: most_relevant(&r) == Some(p),
                                share,
                                source_share,
                            })
                        })
                        .collect::<Result<Vec<_>, CliError>>()
                })
                .collect::<Result<Vec<_>, CliError>>()
                .inspect(|_| bar.inc(1))
        })
        .collect::<Result<_, CliError>>()?;
    bar.finish_and_clear();

    let tokens: usize = cases.iter().map(|c| c.2.iter().flatten().count()).sum();
    let mut names: Vec<String> = methods.iter().flat_map(|ms| ms.names()).map(str::to_string).collect();
    names.push("attention".into());
    let mut scores = BTreeMap::new();
    for (m, name) in names.into_iter().enumerate() {
        let found: Vec<&AlignedFound> = results.iter().flat_map(|r| &r[m]).collect();
        let shares: Vec<f64> = found.iter().filter_map(|f| f.source_share).collect();
        let n = found.len() as f64;
        scores.insert(
            name,
            Scores {
                top2_accuracy: None,
                correlation: None,
                top2_by_smaller_value: None,
                pointing_accuracy: None,
                distractor_rate: None,
                neutral_share: None,
                alignment_accuracy: Some(found.iter().filter(|f| f.hit).count() as f64 / n),
                aligned_share: Some(found.iter().map(|f| f.share).sum::<f64>() / n),
                source_share: (!shares.is_empty()).then(|| shares.iter().sum::<f64>() / shares.len() as f64),
                ..Scores::default()
            },
        );
    }
    let report = Report {
        n: cases.len(),
        dimension: None,
        counts: Counts {
            marked: 0,
            point: 0,
            distractors: 0,
            neutral: 0,
            aligned: tokens,
            mask: 0,
        },
        methods: scores,
    };
    emit(&report, args, out, terminal)
}

/// The measures a report holds: (the figure's axis label, column heading,
/// value axis, higher is better, the method's value).
type Measure = (&'static str, &'static str, (f64, f64), bool, fn(&Scores) -> Option<f64>);

const MEASURES: [Measure; 13] = [
    (
        "share of cases whose two most relevant positions are the marked ones",
        "top-2 accuracy",
        (0.0, 1.0),
        true,
        |s| s.top2_accuracy,
    ),
    (
        "correlation of the marked positions' relevance with their values",
        "correlation",
        (-1.0, 1.0),
        true,
        |s| s.correlation,
    ),
    (
        "share of cases whose most relevant position is the one that decides",
        "pointing acc.",
        (0.0, 1.0),
        true,
        |s| s.pointing_accuracy,
    ),
    (
        "share of cases whose most relevant position is a distractor",
        "distractor rate",
        (0.0, 1.0),
        false,
        |s| s.distractor_rate,
    ),
    (
        "net share of the relevance on the neutral span",
        "neutral share",
        (0.0, 1.0),
        false,
        |s| s.neutral_share,
    ),
    (
        "share of output tokens whose most relevant source token is aligned",
        "alignment",
        (0.0, 1.0),
        true,
        |s| s.alignment_accuracy,
    ),
    (
        "share of the source relevance on the aligned token",
        "aligned share",
        (0.0, 1.0),
        true,
        |s| s.aligned_share,
    ),
    (
        "share of the relevance on the source, not the output so far",
        "source share",
        (0.0, 1.0),
        true,
        |s| s.source_share,
    ),
    (
        "area under the saliency-weighted precision over 10%..90% of the saliency mass (at most 0.8)",
        "AUP",
        (0.0, 0.8),
        true,
        |s| s.aup,
    ),
    (
        "area under the saliency-weighted recall over 10%..90% of the saliency mass (at most 0.8)",
        "AUR",
        (0.0, 0.8),
        true,
        |s| s.aur,
    ),
    (
        "area under the saliency-weighted precision over the recall",
        "AUPR",
        (0.0, 1.0),
        true,
        |s| s.aupr,
    ),
    (
        "ROC area of the saliency telling the mask's cells from the others",
        "ROC AUC",
        (0.0, 1.0),
        true,
        |s| s.roc_auc,
    ),
    (
        "area under the accuracy as the most salient cells are blanked",
        "masked acc area",
        (0.0, 1.0),
        false,
        |s| s.masked_accuracy_area,
    ),
];

/// The measures some method of the report has.
fn present(report: &Report) -> Vec<&'static Measure> {
    MEASURES
        .iter()
        .filter(|m| report.methods.values().any(|s| (m.4)(s).is_some()))
        .collect()
}

fn write_text(report: &Report, out: &mut dyn Write) -> Result<(), CliError> {
    let measures = present(report);
    let dimension = match report.dimension {
        Some(k) => format!("relevance of input dimension {k}"),
        None if report.counts.aligned > 0 => format!(
            "{} aligned output tokens, teacher-forced; relevance summed over each token's dimensions",
            report.counts.aligned
        ),
        None if report.counts.mask == report.n => "relevance of each cell (position, input dimension)".to_string(),
        None if report.counts.mask > 0 => format!(
            "relevance summed over each position's dimensions; of each cell for the {} cases with a mask",
            report.counts.mask
        ),
        None => "relevance summed over each position's dimensions".to_string(),
    };
    writeln!(out, "{} sequences; {dimension}", report.n)?;
    write!(out, "{:<10}", "method")?;
    for m in &measures {
        write!(out, " {:>15}", m.1)?;
    }
    writeln!(out)?;
    for (name, s) in &report.methods {
        write!(out, "{name:<10}")?;
        for m in &measures {
            write!(out, " {:>15.3}", (m.4)(s).unwrap_or(f64::NAN))?;
        }
        writeln!(out)?;
    }
    if report.counts.mask > 0 {
        writeln!(
            out,
            "accuracy with the most salient cells blanked, by fraction of the saliency mass:"
        )?;
        write!(out, "{:<10}", "method")?;
        for f in masked_fractions() {
            write!(out, " {:>5}", format!("{:.0}%", 100.0 * f))?;
        }
        writeln!(out)?;
        for (name, s) in &report.methods {
            write!(out, "{name:<10}")?;
            for a in s.masked_accuracy.iter().flatten() {
                write!(out, " {a:>5.2}")?;
            }
            writeln!(out)?;
        }
    }
    if let Some(first) = report.methods.values().find_map(|s| s.top2_by_smaller_value.as_ref()) {
        writeln!(out, "top-2 accuracy by the smaller marked value:")?;
        write!(out, "{:<10}", "method")?;
        for bin in first {
            write!(out, " {:>12}", format!("{:.1}-{:.1} ({})", bin.from, bin.to, bin.n))?;
        }
        writeln!(out)?;
        for (name, s) in &report.methods {
            write!(out, "{name:<10}")?;
            for bin in s.top2_by_smaller_value.iter().flatten() {
                write!(out, " {:>12.3}", bin.top2_accuracy)?;
            }
            writeln!(out)?;
        }
    }
    Ok(())
}

/// The figure's title, in words: what the cases ask and how many there
/// are (not the files they came from).
fn plot_title(report: &Report) -> String {
    let c = &report.counts;
    let mut questions = Vec::new();
    if c.marked > 0 {
        questions.push("do the marked positions get the most relevance?");
    }
    if c.point > 0 {
        questions.push("is the most relevant position the one that decides?");
    }
    if c.neutral > 0 {
        questions.push("does a neutral span get none?");
    }
    if c.aligned > 0 {
        questions.push("is the relevance on the aligned source token?");
    }
    if c.mask > 0 {
        questions.push("does the relevance pick out the masked cells?");
    }
    let mut title = format!("Ground truth: {} ({} cases", questions.join(" "), report.n);
    if c.aligned > 0 {
        title.push_str(&format!(", {} output tokens", c.aligned));
    }
    if let Some(k) = report.dimension {
        title.push_str(&format!(", relevance of input dimension {k}"));
    }
    title.push(')');
    title
}

/// The scores as an SVG: one panel of bars per measure, best first.
fn plot(report: &Report, title: &str) -> Result<String, CliError> {
    let panels: Vec<BarPanel> = present(report)
        .into_iter()
        .map(|m| BarPanel {
            caption: format!("{} ({})", m.1, if m.3 { "higher is better" } else { "lower is better" }),
            x_desc: m.0.to_string(),
            range: m.2,
            higher_is_better: m.3,
            bars: report
                .methods
                .iter()
                .map(|(name, s)| (name.clone(), (m.4)(s).unwrap_or(f64::NAN)))
                .collect(),
        })
        .collect();
    bars_svg(title, &panels)
}
