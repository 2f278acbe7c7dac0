//! `lrp check`: does a model directory compute the scores its framework
//! computed, and if not, which common import mistake explains the
//! difference?
//!
//! A wrong gate order, a bias counted twice or a missing forget bias still
//! gives a model that runs; only its scores are wrong. `check` runs the
//! model on the given inputs and compares its scores with the expected
//! ones. On a mismatch it tries the likely mistakes on the loaded weights,
//! in memory (the directory is never written): every order of the gate
//! blocks, one bias instead of two, matrices whose values are transposed,
//! each gate's block of the matrices transposed, the directions swapped, the forget bias of 1, the other gate
//! activations, the other GRU reset convention, a head reading `last`
//! against `context`, and for two directions a head on the last output
//! (`out[:, -1]`, a per-step head at the last position) against one on the
//! final state (`h_n`). The change that makes the scores match is the
//! diagnosis.
//!
//! Before any of that, two mistakes that stop a model from loading at all
//! are undone: a matrix stored with its two dimensions swapped is
//! transposed, and a missing bias tensor of the encoder is read as zeros.
//! Both are reported as such.

use std::io::Write;
use std::path::{Path, PathBuf};

use lrp_io::{open_csv, read_model_parts, read_sequences_with, LimitKind, ModelParts};
use lrp_models::config::{CellKind, GruReset, HeadInput, Layout, RecurrentActivation};
use lrp_models::{tensor_manifest, Model, ModelConfig, Tensor, Tensors};
use serde::Serialize;

use crate::progress::{progress, Unit};
use crate::render::printable;
use crate::{print_json_line, CliError, Format, LimitArgs, Terminal};
use lrp_app::{scores_batch, ExplainInput};

/// Arguments of `lrp check`.
#[derive(Debug, clap::Args)]
#[command(group(clap::ArgGroup::new("inputs").required(true).args(["vectors", "text", "input"])))]
pub struct CheckArgs {
    /// Model directory to check.
    #[arg(long, value_name = "DIR")]
    pub model: PathBuf,
    /// Input vectors: `.npy` `[T, E]` (one input), `.npz` (one input per array, in archive order) or `.csv` (a header naming the channels, a time step a row: one input).
    #[arg(long, value_name = "FILE", conflicts_with = "text")]
    pub vectors: Option<PathBuf>,
    /// Input text (models with an embedding and a vocabulary).
    #[arg(long, value_name = "TEXT", allow_hyphen_values = true, conflicts_with = "input")]
    pub text: Option<String>,
    /// Input texts, one a line (blank lines skipped), matched line by line with the `--expect` file's lines.
    #[arg(long, value_name = "FILE", conflicts_with = "vectors")]
    pub input: Option<PathBuf>,
    /// The scores the model should compute: `{"scores": [...]}`, or one such object a line, one per input (for --input, line by line with its texts).
    #[arg(long, value_name = "SCORES.json")]
    pub expect: PathBuf,
    /// Largest difference that counts as a match, relative to max(1, the largest expected |score|).
    #[arg(long, value_name = "TOL", default_value_t = 1e-4)]
    pub tolerance: f64,
    /// Output format (`auto`: text on a terminal, else JSON).
    #[arg(long, value_enum, default_value_t = Format::Auto)]
    pub format: Format,
    /// Limits on untrusted input.
    #[command(flatten)]
    pub limits: LimitArgs,
}

/// One change tried, and how far its scores are from the expected ones.
#[derive(Debug, Clone, Serialize)]
struct Tried {
    /// What was changed, in words.
    name: String,
    /// What to do to the model directory if this is the mistake.
    fix: String,
    /// Largest difference to the expected scores (`null`: the changed
    /// model did not run).
    max_abs_diff: Option<f64>,
}

/// What `lrp check` prints.
#[derive(Debug, Serialize)]
struct CheckReport {
    /// The model directory computes the expected scores as it is.
    ok: bool,
    /// Largest difference between its scores and the expected ones (after
    /// the `prerequisites`).
    max_abs_diff: f64,
    /// The largest difference counted as a match.
    tolerance: f64,
    /// Inputs compared.
    inputs: usize,
    /// The finding, in one sentence.
    diagnosis: String,
    /// What to change, when a tried change makes the scores match.
    fix: Option<String>,
    /// What had to be undone before the model would load at all.
    prerequisites: Vec<String>,
    /// Every change tried, closest first (empty when the model matches).
    candidates: Vec<Tried>,
}

/// A change to try on the loaded model.
#[derive(Debug, Clone)]
enum Change {
    /// The file's gate blocks are in another order: block `j` of the
    /// layout's order is taken from file block `from[j]`.
    Gates { from: Vec<usize> },
    /// One bias tensor set to zero: the recurrent one, or the input one.
    DropBias { recurrent: bool },
    /// Matrices whose values are their transpose's, read in the shape of
    /// the original (a reshape where a transpose was meant).
    TransposedValues { head: bool },
    /// Each gate's block of the encoder's matrices stored transposed (a
    /// Keras `(H, G H)` kernel split into gate blocks without transposing
    /// each): the recurrent matrices' `H x H` blocks, the input matrices'
    /// blocks where they are square (`E == H`), or both; `only` names the
    /// one tensor changed (else every one).
    TransposedBlocks {
        recurrent: bool,
        input: bool,
        only: Option<String>,
    },
    /// The forward and backward directions' tensors exchanged.
    SwapDirections,
    /// A config value set (a JSON pointer into config.json, and the value).
    Config {
        pointer: &'static str,
        value: serde_json::Value,
    },
}

pub(crate) fn run(args: &CheckArgs, out: &mut dyn Write, terminal: Terminal) -> Result<(), CliError> {
    if !args.tolerance.is_finite() || args.tolerance < 0.0 {
        return Err(CliError::Usage(format!(
            "--tolerance must be a number >= 0, found {}",
            args.tolerance
        )));
    }
    let limits = args.limits.limits();
    let parts = read_model_parts(&args.model, &limits)?;
    let inputs = match (&args.vectors, &args.text, &args.input) {
        (Some(path), _, _) if path.extension().is_some_and(|e| e.eq_ignore_ascii_case("csv")) => {
            open_csv(path, None, None, None, &limits)?
                .map(|s| s.map(|s| ExplainInput::vectors(s.name, s.vectors)))
                .collect::<Result<Vec<_>, _>>()?
        }
        (Some(path), _, _) => read_sequences_with(path, &limits)?
            .into_iter()
            .map(|s| ExplainInput::vectors(Some(s.name), s.vectors))
            .collect(),
        (None, Some(text), _) => {
            let vocab = parts.vocab.as_ref().ok_or(lrp_io::Error::NoVocab)?;
            vec![ExplainInput::text(vocab, "--text", text, &limits)?]
        }
        (None, None, Some(path)) => read_texts(path, &parts, &limits)?,
        (None, None, None) => return Err(CliError::Usage("give --vectors, --text or --input".into())),
    };
    let (expected, lines) = read_expected(&args.expect, &limits)?;
    let expect_name = printable(&args.expect.display().to_string()).into_owned();
    if expected.len() != inputs.len() {
        // Matched line by line: the first line without a partner is named.
        let unmatched = match (inputs.get(expected.len()), lines.get(inputs.len())) {
            (Some(input), _) => input
                .line()
                .map(|l| format!(": line {l} of the input has no line of scores"))
                .unwrap_or_default(),
            (None, Some(line)) => format!(": line {line} of {expect_name} has no input"),
            _ => String::new(),
        };
        return Err(CliError::Usage(format!(
            "{expect_name} holds {} score lists for {} inputs{unmatched}",
            expected.len(),
            inputs.len()
        )));
    }
    let classes = parts.config.head.num_classes;
    if let Some((k, e)) = expected.iter().enumerate().find(|(_, e)| e.len() != classes) {
        return Err(CliError::Usage(format!(
            "expected scores {} (line {} of {expect_name}) have {} values, but the model has {classes} classes",
            k + 1,
            lines[k],
            e.len()
        )));
    }
    let scale = expected.iter().flatten().fold(1.0f64, |m, v| m.max(v.abs()));
    let tolerance = args.tolerance * scale;

    let (base, prerequisites) = prepare(&parts);
    let model =
        Model::<f64>::from_config(parts.config.clone(), base.clone()).map_err(|source| lrp_io::Error::Model {
            dir: args.model.clone(),
            source,
        })?;
    let diff = max_abs_diff(&scores_batch(&model, &inputs)?, &expected);
    drop(model);
    let undone = prerequisites.join("; ");
    let mut report = CheckReport {
        ok: diff <= tolerance && prerequisites.is_empty(),
        max_abs_diff: diff,
        tolerance,
        inputs: inputs.len(),
        diagnosis: String::new(),
        fix: None,
        prerequisites: prerequisites.clone(),
        candidates: Vec::new(),
    };
    if diff <= tolerance {
        report.diagnosis = if prerequisites.is_empty() {
            format!("scores match ({})", short(diff))
        } else {
            format!("scores match ({}) once {undone}", short(diff))
        };
        if !prerequisites.is_empty() {
            report.fix = Some(format!("rewrite the weights file: {undone}"));
        }
    } else {
        let mut tried: Vec<Tried> = Vec::new();
        let changes = changes(&parts.config);
        let bar = progress(
            terminal,
            "check",
            Some(changes.len() as u64),
            Unit::Items("changes tried"),
        );
        for (name, fix, change) in changes {
            bar.inc(1);
            let Some((config, tensors)) = apply(&change, &parts.config, &base) else {
                continue;
            };
            let scores = Model::<f64>::from_config(config, tensors)
                .ok()
                .and_then(|m| scores_batch(&m, &inputs).ok());
            tried.push(Tried {
                name,
                fix,
                max_abs_diff: scores.map(|s| max_abs_diff(&s, &expected)).filter(|d| d.is_finite()),
            });
        }
        bar.finish_and_clear();
        tried.sort_by(|a, b| {
            let key = |t: &Tried| t.max_abs_diff.unwrap_or(f64::INFINITY);
            key(a).total_cmp(&key(b))
        });
        let fitting: Vec<&Tried> = tried
            .iter()
            .filter(|t| t.max_abs_diff.is_some_and(|d| d <= tolerance))
            .collect();
        let first = if prerequisites.is_empty() {
            String::new()
        } else {
            format!("{undone}, and ")
        };
        report.diagnosis = match fitting.first() {
            Some(best) => {
                let mut text = format!(
                    "scores match ({}) if {first}{}; {}",
                    short(best.max_abs_diff.unwrap_or(0.0)),
                    best.name,
                    best.fix
                );
                if fitting.len() > 1 {
                    let others: Vec<&str> = fitting[1..].iter().map(|t| t.name.as_str()).collect();
                    text.push_str(&format!(" (as they also do if {})", others.join("; or if ")));
                }
                report.fix = Some(best.fix.clone());
                text
            }
            None => {
                let closest = tried
                    .first()
                    .map(|t| {
                        format!(
                            "; the closest: {} ({})",
                            t.name,
                            t.max_abs_diff.map_or("did not run".to_string(), short)
                        )
                    })
                    .unwrap_or_default();
                format!(
                    "scores differ by up to {}{}; none of the {} changes tried explains it{closest}",
                    short(diff),
                    if prerequisites.is_empty() {
                        String::new()
                    } else {
                        format!(" (after {undone})")
                    },
                    tried.len()
                )
            }
        };
        report.candidates = tried;
    }
    let as_text = args.format == Format::Text || (args.format == Format::Auto && terminal.stdout);
    if as_text {
        out.write_all(describe(&report).as_bytes())?;
    } else {
        print_json_line(out, &report)?;
    }
    Ok(())
}

/// A difference in three significant digits.
fn short(value: f64) -> String {
    format!("{value:.2e}")
}

/// The texts of `--input`, one a non-blank line, each knowing its line
/// (errors name it).
fn read_texts(path: &Path, parts: &ModelParts, limits: &lrp_io::Limits) -> Result<Vec<ExplainInput>, CliError> {
    let vocab = parts.vocab.as_ref().ok_or(lrp_io::Error::NoVocab)?;
    let name = printable(&path.display().to_string()).into_owned();
    let mut texts = Vec::new();
    for line in lrp_io::read_text_lines(path, limits)? {
        let (number, tokens) = line?;
        let text = ExplainInput::words(vocab, tokens)
            .map_err(|e| CliError::Usage(format!("{name} line {number}: {}", lrp_app::error_line(&e))))?;
        texts.push(text.with_line(number));
    }
    Ok(texts)
}

/// The expected scores: one JSON object `{"scores": [...]}` or one a line;
/// and the line each list is on.
fn read_expected(path: &Path, limits: &lrp_io::Limits) -> Result<(Vec<Vec<f64>>, Vec<usize>), CliError> {
    #[derive(serde::Deserialize)]
    struct Expected {
        scores: Vec<f64>,
    }
    let bytes = lrp_io::read_file_capped(path, limits.max_data_bytes, LimitKind::DataBytes)?;
    let bad = |message: String| {
        CliError::Io(lrp_io::Error::Format {
            path: path.to_path_buf(),
            message,
        })
    };
    let text = std::str::from_utf8(&bytes).map_err(|e| bad(format!("not UTF-8 text: {e}")))?;
    if let Ok(one) = serde_json::from_str::<Expected>(text) {
        let line = text.lines().position(|l| !l.trim().is_empty()).unwrap_or(0) + 1;
        return Ok((vec![one.scores], vec![line]));
    }
    let mut all = Vec::new();
    let mut lines = Vec::new();
    for (k, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let one: Expected = serde_json::from_str(line)
            .map_err(|e| bad(format!("line {}: expected {{\"scores\": [numbers]}}: {e}", k + 1)))?;
        all.push(one.scores);
        lines.push(k + 1);
    }
    if all.is_empty() {
        return Err(bad("holds no scores".into()));
    }
    Ok((all, lines))
}

/// The largest absolute difference over every input and class.
fn max_abs_diff(got: &[Vec<f64>], want: &[Vec<f64>]) -> f64 {
    got.iter()
        .zip(want)
        .flat_map(|(g, w)| g.iter().zip(w).map(|(a, b)| (a - b).abs()))
        .fold(
            0.0,
            |m: f64, d| if m.is_nan() || d.is_nan() { f64::NAN } else { m.max(d) },
        )
}

/// One tensor of the encoder that holds gate blocks.
struct GateTensor {
    name: String,
    /// A bias (else a matrix).
    bias: bool,
    /// Whether it belongs to the recurrent product (`Some(true)`), the
    /// input product (`Some(false)`) or holds both (`None`: an ONNX `B`, a
    /// Keras GRU's two-row bias, a TF1 kernel over `[x; h]`).
    recurrent: Option<bool>,
    /// Whether it is the backward direction's; `None`: it holds both,
    /// stacked along its first dimension (ONNX).
    reverse: Option<bool>,
}

/// The encoder's gate tensors in the config's layout, and the layout's
/// gate order in the cells' letters (LSTM i, f, g, o; GRU r, z, n).
fn gate_tensors(config: &ModelConfig) -> Option<(Vec<GateTensor>, Vec<&'static str>)> {
    let e = &config.encoder;
    // A min cell's one input projection has no gate order to get wrong
    // between frameworks: it is only ever stored in lrp's own layout.
    if e.cell.is_min() {
        return None;
    }
    let lstm = e.cell == CellKind::Lstm;
    let mut all = Vec::new();
    let mut push = |name: String, bias, recurrent, reverse| {
        all.push(GateTensor {
            name,
            bias,
            recurrent,
            reverse,
        })
    };
    let sides = [false, true].into_iter().take(if e.bidirectional { 2 } else { 1 });
    let order = match config.layout {
        Layout::Pytorch => {
            for k in 0..e.num_layers {
                for reverse in sides.clone() {
                    let suffix = if reverse { "_reverse" } else { "" };
                    push(
                        format!("encoder.weight_ih_l{k}{suffix}"),
                        false,
                        Some(false),
                        Some(reverse),
                    );
                    push(
                        format!("encoder.weight_hh_l{k}{suffix}"),
                        false,
                        Some(true),
                        Some(reverse),
                    );
                    push(
                        format!("encoder.bias_ih_l{k}{suffix}"),
                        true,
                        Some(false),
                        Some(reverse),
                    );
                    push(format!("encoder.bias_hh_l{k}{suffix}"), true, Some(true), Some(reverse));
                }
            }
            if lstm {
                vec!["i", "f", "g", "o"]
            } else {
                vec!["r", "z", "n"]
            }
        }
        Layout::Reference => {
            for (side, reverse) in [("Left", false), ("Right", true)] {
                push(format!("Wxh_{side}"), false, Some(false), Some(reverse));
                push(format!("Whh_{side}"), false, Some(true), Some(reverse));
                push(format!("bxh_{side}"), true, Some(false), Some(reverse));
                push(format!("bhh_{side}"), true, Some(true), Some(reverse));
            }
            vec!["i", "g", "f", "o"]
        }
        Layout::Keras | Layout::Tf1 => {
            let keras = config.layout == Layout::Keras;
            for k in 0..e.num_layers {
                for reverse in sides.clone() {
                    let prefix = format!("encoder.l{k}.{}", if reverse { "backward" } else { "forward" });
                    if keras {
                        push(format!("{prefix}.kernel"), false, Some(false), Some(reverse));
                        push(format!("{prefix}.recurrent_kernel"), false, Some(true), Some(reverse));
                    } else {
                        push(format!("{prefix}.kernel"), false, None, Some(reverse));
                    }
                    push(format!("{prefix}.bias"), true, None, Some(reverse));
                }
            }
            match (keras, lstm) {
                (true, true) => vec!["i", "f", "g", "o"],
                (true, false) => vec!["z", "r", "n"],
                _ => vec!["i", "g", "f", "o"],
            }
        }
        Layout::Onnx => {
            for k in 0..e.num_layers {
                push(format!("encoder.l{k}.W"), false, Some(false), None);
                push(format!("encoder.l{k}.R"), false, Some(true), None);
                push(format!("encoder.l{k}.B"), true, None, None);
            }
            if lstm {
                vec!["i", "o", "f", "g"]
            } else {
                vec!["z", "r", "n"]
            }
        }
        _ => return None,
    };
    Some((all, order))
}

/// Values in one gate block of a gate tensor, before the next block: the
/// gate blocks run along the first dimension in `pytorch` and `reference`
/// (`[G H, ...]`), the last in `keras` and `tf1` (`[..., G H]`), the second
/// in `onnx` (`[dirs, G H, ...]`, the bias `[dirs, 2 G H]`).
fn block_size(layout: Layout, shape: &[usize], h: usize) -> usize {
    match layout {
        Layout::Pytorch | Layout::Reference => h * shape.iter().skip(1).product::<usize>(),
        Layout::Onnx => h * shape.iter().skip(2).product::<usize>(),
        _ => h,
    }
}

/// Undoes what keeps the model from loading: a matrix stored with its
/// dimensions swapped is transposed, a missing encoder bias is zeros.
/// Returns the tensors and what was undone.
fn prepare(parts: &ModelParts) -> (Tensors, Vec<String>) {
    let mut tensors = parts.tensors.clone();
    let mut undone = Vec::new();
    let Ok(manifest) = tensor_manifest(&parts.config) else {
        return (tensors, undone);
    };
    let biases: Vec<String> = gate_tensors(&parts.config)
        .map(|(all, _)| {
            all.into_iter()
                .filter(|t| t.bias && t.recurrent.is_some())
                .map(|t| t.name)
                .collect()
        })
        .unwrap_or_default();
    let mut transposed = Vec::new();
    let mut missing = Vec::new();
    for (name, shape) in &manifest {
        match tensors.get(name) {
            Some(t)
                if t.shape.len() == 2 && shape.len() == 2 && t.shape != *shape && t.shape == [shape[1], shape[0]] =>
            {
                // A tensor whose values do not fill its shape is left for
                // the load to report.
                if let Ok(fixed) = Tensor::transpose_of(&t.values, t.shape[0], t.shape[1]) {
                    tensors.insert(name.clone(), fixed);
                    transposed.push(name.clone());
                }
            }
            None if biases.contains(name) => {
                let count = shape.iter().product();
                tensors.insert(
                    name.clone(),
                    Tensor {
                        shape: shape.clone(),
                        values: vec![0.0; count],
                    },
                );
                missing.push(name.clone());
            }
            _ => {}
        }
    }
    if !transposed.is_empty() {
        undone.push(format!(
            "the matrices stored transposed are transposed ({})",
            transposed.join(", ")
        ));
    }
    if !missing.is_empty() {
        undone.push(format!("the missing biases are zeros ({})", missing.join(", ")));
    }
    (tensors, undone)
}

/// Known frameworks' gate orders, in the cells' letters: who uses the
/// order, how they write it, and the layout that reads it.
fn known_order(cell: CellKind, order: &[&str]) -> Option<(&'static str, &'static str, &'static str)> {
    let named = match cell {
        CellKind::Lstm => [
            (
                ["i", "f", "g", "o"].as_slice(),
                "PyTorch and Keras order",
                "i, f, g, o (Keras: i, f, c, o)",
                "pytorch",
            ),
            (["i", "o", "f", "g"].as_slice(), "ONNX order", "i, o, f, c", "onnx"),
            (
                ["i", "g", "f", "o"].as_slice(),
                "TensorFlow 1 order",
                "i, j, f, o",
                "tf1",
            ),
        ]
        .to_vec(),
        _ => [
            (["r", "z", "n"].as_slice(), "PyTorch order", "r, z, n", "pytorch"),
            (["z", "r", "n"].as_slice(), "Keras and ONNX order", "z, r, h", "keras"),
        ]
        .to_vec(),
    };
    named
        .into_iter()
        .find(|(o, ..)| *o == order)
        .map(|(_, who, letters, layout)| (who, letters, layout))
}

/// Every order of `items`.
fn permutations(items: &[&'static str]) -> Vec<Vec<&'static str>> {
    if items.len() <= 1 {
        return vec![items.to_vec()];
    }
    let mut all = Vec::new();
    for k in 0..items.len() {
        let mut rest = items.to_vec();
        let first = rest.remove(k);
        for mut tail in permutations(&rest) {
            tail.insert(0, first);
            all.push(tail);
        }
    }
    all
}

/// The changes to try on a model of `config`: (what, the fix, the change).
fn changes(config: &ModelConfig) -> Vec<(String, String, Change)> {
    let mut all = Vec::new();
    let e = &config.encoder;
    let layout = config.layout.name();
    if let Some((_, order)) = gate_tensors(config) {
        for actual in permutations(&order) {
            if actual == order {
                continue;
            }
            let from: Vec<usize> = order
                .iter()
                .map(|g| actual.iter().position(|a| a == g).unwrap_or(0))
                .collect();
            let letters = actual.join(", ");
            let own = order.join(", ");
            let (name, fix) = match known_order(e.cell, &actual) {
                Some((who, written, target)) => (
                    format!("the gates are read in {who} {written}"),
                    format!(
                        "the file holds the gate blocks in {who} {written}, where layout {layout} reads {own}: reorder the blocks to {own}{}",
                        if target != layout {
                            format!(", or write the tensors in layout {target}")
                        } else {
                            String::new()
                        }
                    ),
                ),
                None => (
                    format!("the gates are read in the order {letters}"),
                    format!("the file holds the gate blocks in the order {letters}, where layout {layout} reads {own}: reorder the blocks to {own}"),
                ),
            };
            all.push((name, fix, Change::Gates { from }));
        }
        all.push((
            "the recurrent bias is dropped".to_string(),
            "the model has one bias per gate, not two: keep it once (set the recurrent bias to zero); it was counted twice, or the framework has no recurrent bias".to_string(),
            Change::DropBias { recurrent: true },
        ));
        all.push((
            "the input bias is dropped".to_string(),
            "the model has only the recurrent bias: set the input bias to zero".to_string(),
            Change::DropBias { recurrent: false },
        ));
        all.push((
            "the recurrent layers' matrices are transposed".to_string(),
            "the matrices' values are in transposed order (reshaped where they should have been transposed): transpose them before writing".to_string(),
            Change::TransposedValues { head: false },
        ));
        all.extend(transposed_block_changes(config));
        all.push((
            "every matrix is transposed".to_string(),
            "the matrices' values, the head's too, are in transposed order: transpose them before writing".to_string(),
            Change::TransposedValues { head: true },
        ));
        if e.bidirectional {
            all.push((
                "the directions are swapped".to_string(),
                "the forward direction's tensors hold the backward direction's and the other way round: swap them"
                    .to_string(),
                Change::SwapDirections,
            ));
        }
    }
    if e.cell == CellKind::Lstm {
        if e.forget_bias() == 0.0 {
            all.push((
                "a forget bias of 1 is added".to_string(),
                "set encoder.forget_bias to 1 (TensorFlow 1's LSTMCell adds forget_bias = 1.0 at run time; the checkpoint does not hold it)".to_string(),
                Change::Config {
                    pointer: "/encoder/forget_bias",
                    value: 1.0.into(),
                },
            ));
        } else {
            all.push((
                "the forget bias is left out".to_string(),
                "remove encoder.forget_bias (the weights' bias already includes it)".to_string(),
                Change::Config {
                    pointer: "/encoder/forget_bias",
                    value: serde_json::Value::Null,
                },
            ));
        }
    }
    for activation in [
        RecurrentActivation::Sigmoid,
        RecurrentActivation::HardSigmoidKeras2,
        RecurrentActivation::HardSigmoidKeras3,
    ] {
        if activation == e.recurrent_activation() {
            continue;
        }
        let what = match activation {
            RecurrentActivation::HardSigmoidKeras2 => "Keras 2's hard sigmoid clip(0.2 x + 0.5, 0, 1)",
            RecurrentActivation::HardSigmoidKeras3 => "Keras 3's hard sigmoid relu6(x + 3) / 6",
            _ => "the logistic sigmoid",
        };
        all.push((
            format!("the gates use {what}"),
            format!("set encoder.recurrent_activation to \"{}\"", activation.name()),
            Change::Config {
                pointer: "/encoder/recurrent_activation",
                value: activation.name().into(),
            },
        ));
    }
    if e.cell == CellKind::Gru {
        let (other, why) = match e.gru_reset() {
            GruReset::After => (
                GruReset::Before,
                "the reset gate multiplies h before the recurrent product (Keras reset_after=False, ONNX linear_before_reset=0)",
            ),
            _ => (
                GruReset::After,
                "the reset gate multiplies the recurrent product (PyTorch, Keras reset_after=True, ONNX linear_before_reset=1)",
            ),
        };
        all.push((
            why.to_string(),
            format!("set encoder.gru_reset to \"{}\"", other.name()),
            Change::Config {
                pointer: "/encoder/gru_reset",
                value: other.name().into(),
            },
        ));
    }
    // A bidirectional top layer's output at the last position is not its
    // final state: its backward half has seen only the last position
    // (PyTorch's out[:, -1] against h_n). A per-step head explained at the
    // last position reads that output.
    if e.bidirectional && config.attention.is_none() {
        let other = match config.head.input {
            HeadInput::Last => Some((
                HeadInput::Each,
                "the head reads the last output, not the final state",
                "the scores come from a head on out[:, -1], the top layer's output at the last position (its backward half has seen only the last position), not on h_n: set head.input to \"each\" (lrp explains the last position), or export the model with its head on h_n",
            )),
            HeadInput::Each => Some((
                HeadInput::Last,
                "the head reads the final state, not the last output",
                "the scores come from a head on h_n, the top layer's final state, not on its output at the last position: set head.input to \"last\"",
            )),
            _ => None,
        };
        if let Some((other, name, fix)) = other {
            all.push((
                name.to_string(),
                fix.to_string(),
                Change::Config {
                    pointer: "/head/input",
                    value: other.name().into(),
                },
            ));
        }
    }
    if config.attention.is_some() {
        let other = match config.head.input {
            HeadInput::Last => Some(HeadInput::Context),
            HeadInput::Context => Some(HeadInput::Last),
            _ => None,
        };
        if let Some(other) = other {
            all.push((
                format!("the head reads {}", other.name()),
                format!("set head.input to \"{}\"", other.name()),
                Change::Config {
                    pointer: "/head/input",
                    value: other.name().into(),
                },
            ));
        }
    }
    all
}

/// Trying each gate's block transposed: in the recurrent matrices, in the
/// input matrices, in both, and when there are several recurrent matrices
/// (layers, directions), in each one alone. An input matrix's blocks are
/// `H x E`: transposing one in place only exists when `E == H` (layer 0
/// with `input_size == hidden_size`, or a unidirectional layer above);
/// elsewhere [`apply`] leaves the tensor alone, and a change that leaves
/// every tensor alone is not tried.
fn transposed_block_changes(config: &ModelConfig) -> Vec<(String, String, Change)> {
    let Some((tensors, order)) = gate_tensors(config) else {
        return Vec::new();
    };
    let g = order.len();
    let fix = |which: &str| {
        format!(
            "each of the {g} gate blocks of {which} is stored transposed (a Keras (H, {g}H) kernel split into gate blocks without transposing each): transpose every gate block, not the whole matrix"
        )
    };
    let mut all = vec![
        (
            "each gate block of the recurrent matrices is transposed".to_string(),
            fix("the recurrent matrices (weight_hh, recurrent_kernel, R)"),
            Change::TransposedBlocks {
                recurrent: true,
                input: false,
                only: None,
            },
        ),
        (
            "each gate block of the input matrices is transposed".to_string(),
            fix("the input matrices (weight_ih, kernel, W; square only where input width = hidden size)"),
            Change::TransposedBlocks {
                recurrent: false,
                input: true,
                only: None,
            },
        ),
        (
            "each gate block of the input and recurrent matrices is transposed".to_string(),
            fix("the input and the recurrent matrices"),
            Change::TransposedBlocks {
                recurrent: true,
                input: true,
                only: None,
            },
        ),
    ];
    let recurrent: Vec<&GateTensor> = tensors
        .iter()
        .filter(|t| !t.bias && t.recurrent != Some(false))
        .collect();
    if recurrent.len() > 1 {
        for t in recurrent {
            all.push((
                format!("each gate block of {} is transposed", t.name),
                fix(&format!("the recurrent part of {}", t.name)),
                Change::TransposedBlocks {
                    recurrent: true,
                    input: false,
                    only: Some(t.name.clone()),
                },
            ));
        }
    }
    all
}

/// `values` with each gate's square block of the part of matrix `gate` that
/// `recurrent` says transposed, or `None` where that part's blocks are not
/// square or the shape is not the layout's. A block is `H x W` (gate units
/// by inputs), at `(k H + r) W + c` in `pytorch` and `reference`
/// (`[G H, W]`) and per direction in `onnx` (`[dirs, G H, W]`), at
/// `(offset + c) G H + k H + r` in `keras` and `tf1` (`[W, G H]`; a `tf1`
/// kernel stacks `[x; h]`, the recurrent part from row `E`).
fn transpose_blocks(
    layout: Layout,
    gate: &GateTensor,
    t: &Tensor,
    h: usize,
    g: usize,
    recurrent: bool,
) -> Option<Vec<f64>> {
    if gate.bias || h == 0 {
        return None;
    }
    match gate.recurrent {
        Some(part) if part != recurrent => return None,
        _ => {}
    }
    let mut values = t.values.clone();
    let mut swap_within = |index: &dyn Fn(usize, usize, usize, usize) -> usize, runs: usize| {
        for run in 0..runs {
            for k in 0..g {
                for r in 0..h {
                    for c in (r + 1)..h {
                        values.swap(index(run, k, r, c), index(run, k, c, r));
                    }
                }
            }
        }
    };
    match (layout, &t.shape[..]) {
        (Layout::Pytorch | Layout::Reference, &[rows, w]) if rows == g * h && w == h => {
            swap_within(&|_, k, r, c| (k * h + r) * w + c, 1)
        }
        (Layout::Onnx, &[dirs, rows, w]) if rows == g * h && w == h => {
            swap_within(&|run, k, r, c| ((run * rows) + k * h + r) * w + c, dirs)
        }
        (Layout::Keras, &[w, cols]) if cols == g * h && w == h => swap_within(&|_, k, r, c| c * cols + k * h + r, 1),
        (Layout::Tf1, &[rows, cols]) if cols == g * h && rows > h => {
            // [x; h]: the input part is rows 0..E, the recurrent part E..E+H.
            let e = rows - h;
            let offset = if recurrent { e } else { 0 };
            if !recurrent && e != h {
                return None;
            }
            swap_within(&|_, k, r, c| (offset + c) * cols + k * h + r, 1)
        }
        _ => return None,
    }
    Some(values)
}

/// The config and tensors with `change` made, or `None` when it does not
/// apply (a config value this model cannot take, a layout with one bias).
fn apply(change: &Change, config: &ModelConfig, tensors: &Tensors) -> Option<(ModelConfig, Tensors)> {
    let mut tensors = tensors.clone();
    let gates = gate_tensors(config).map(|(all, _)| all).unwrap_or_default();
    let h = config.encoder.hidden_size;
    let g = match config.encoder.cell {
        CellKind::Lstm => 4,
        _ => 3,
    };
    let mut changed = false;
    let mut put = |tensors: &mut Tensors, name: &str, shape: Vec<usize>, values: Vec<f64>| {
        tensors.insert(name.to_string(), Tensor { shape, values });
        changed = true;
    };
    match change {
        Change::Gates { from } => {
            for gate in &gates {
                let t = tensors.get(&gate.name)?;
                let block = block_size(config.layout, &t.shape, h);
                // Each run of G blocks (one per row, direction or bias half)
                // is reordered.
                if block == 0 || t.values.len() % (block * g) != 0 {
                    return None;
                }
                let values = t
                    .values
                    .chunks(block * g)
                    .flat_map(|run| {
                        from.iter()
                            .flat_map(move |&k| run[k * block..(k + 1) * block].iter().copied())
                    })
                    .collect();
                let shape = t.shape.clone();
                put(&mut tensors, &gate.name, shape, values);
            }
        }
        Change::DropBias { recurrent } => {
            for gate in gates.iter().filter(|t| t.bias) {
                let t = tensors.get(&gate.name)?;
                let values = match gate.recurrent {
                    Some(r) if r == *recurrent => vec![0.0; t.values.len()],
                    Some(_) => continue,
                    // Input and recurrent halves alternate, G H each (ONNX's
                    // B per direction, a Keras GRU's two rows); one half alone
                    // has no other to drop.
                    None if t.values.len() % (2 * g * h) == 0 => t
                        .values
                        .chunks(g * h)
                        .enumerate()
                        .flat_map(|(k, run)| {
                            let drop = (k % 2 == 1) == *recurrent;
                            run.iter().map(move |v| if drop { 0.0 } else { *v })
                        })
                        .collect(),
                    None => continue,
                };
                let shape = t.shape.clone();
                put(&mut tensors, &gate.name, shape, values);
            }
        }
        Change::TransposedValues { head } => {
            let mut names: Vec<String> = gates.iter().filter(|t| !t.bias).map(|t| t.name.clone()).collect();
            if *head {
                names.extend(
                    tensors
                        .names()
                        .filter(|n| matches!(*n, "head.weight" | "head.kernel") || n.starts_with("Why_"))
                        .map(str::to_string)
                        .collect::<Vec<_>>(),
                );
            }
            for name in names {
                let t = tensors.get(&name)?;
                if let [rows, cols] = t.shape[..] {
                    // The values are those of the [cols, rows] transpose.
                    let fixed = Tensor::transpose_of(&t.values, cols, rows).ok()?;
                    put(&mut tensors, &name, vec![rows, cols], fixed.values);
                }
            }
        }
        Change::TransposedBlocks { recurrent, input, only } => {
            // Both parts asked for: without a square input block this is
            // the recurrent change alone, tried already.
            let mut input_touched = false;
            for gate in &gates {
                if only.as_ref().is_some_and(|name| *name != gate.name) {
                    continue;
                }
                let mut t = tensors.get(&gate.name)?.clone();
                let mut touched = false;
                for (part, wanted) in [(true, *recurrent), (false, *input)] {
                    if !wanted {
                        continue;
                    }
                    if let Some(values) = transpose_blocks(config.layout, gate, &t, h, g, part) {
                        t.values = values;
                        touched = true;
                        input_touched |= !part;
                    }
                }
                if touched {
                    put(&mut tensors, &gate.name, t.shape, t.values);
                }
            }
            if *recurrent && *input && !input_touched {
                return None;
            }
        }
        Change::SwapDirections => {
            let forward: Vec<&GateTensor> = gates.iter().filter(|t| t.reverse == Some(false)).collect();
            let backward: Vec<&GateTensor> = gates.iter().filter(|t| t.reverse == Some(true)).collect();
            for (f, b) in forward.iter().zip(&backward) {
                let (tf, tb) = (tensors.get(&f.name)?.clone(), tensors.get(&b.name)?.clone());
                if tf.shape != tb.shape {
                    return None;
                }
                put(&mut tensors, &f.name, tb.shape, tb.values);
                put(&mut tensors, &b.name, tf.shape, tf.values);
            }
            // Both directions in one tensor: its two halves exchanged.
            for gate in gates.iter().filter(|t| t.reverse.is_none()) {
                let t = tensors.get(&gate.name)?;
                let half = t.values.len() / 2;
                let values = t.values[half..].iter().chain(&t.values[..half]).copied().collect();
                let shape = t.shape.clone();
                put(&mut tensors, &gate.name, shape, values);
            }
        }
        Change::Config { pointer, value } => {
            let mut json = serde_json::to_value(config).ok()?;
            let (parent, key) = pointer.rsplit_once('/')?;
            let object = json.pointer_mut(parent)?.as_object_mut()?;
            if value.is_null() {
                object.remove(key);
            } else {
                object.insert(key.to_string(), value.clone());
            }
            let changed: ModelConfig = serde_json::from_value(json).ok()?;
            changed.validate().ok()?;
            return Some((changed, tensors));
        }
    }
    changed.then(|| (config.clone(), tensors))
}

/// The text view.
fn describe(report: &CheckReport) -> String {
    let mut lines = vec![
        ("ok", if report.ok { "yes".to_string() } else { "no".to_string() }),
        (
            "compared",
            format!(
                "{} input{}, largest difference {} (tolerance {})",
                report.inputs,
                if report.inputs == 1 { "" } else { "s" },
                short(report.max_abs_diff),
                short(report.tolerance)
            ),
        ),
        ("diagnosis", report.diagnosis.clone()),
    ];
    if let Some(fix) = &report.fix {
        lines.push(("fix", fix.clone()));
    }
    let mut text = String::new();
    for (key, value) in lines {
        text.push_str(&format!("{key:<10} {}\n", printable(&value)));
    }
    if !report.candidates.is_empty() {
        text.push_str(&format!(
            "tried      {} changes; the closest:\n",
            report.candidates.len()
        ));
        for t in report.candidates.iter().take(5) {
            let diff = t.max_abs_diff.map_or("did not run".to_string(), short);
            text.push_str(&format!("  {diff:>10}  {}\n", printable(&t.name)));
        }
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn there_are_24_lstm_and_6_gru_orders_and_the_known_ones_are_named() {
        assert_eq!(permutations(&["i", "f", "g", "o"]).len(), 24);
        assert_eq!(permutations(&["r", "z", "n"]).len(), 6);
        let onnx = known_order(CellKind::Lstm, &["i", "o", "f", "g"]).unwrap();
        assert_eq!((onnx.1, onnx.2), ("i, o, f, c", "onnx"));
        assert_eq!(known_order(CellKind::Gru, &["z", "r", "n"]).unwrap().2, "keras");
        assert!(known_order(CellKind::Lstm, &["o", "i", "f", "g"]).is_none());
    }

    /// A gate block transposed in place in each layout's arrangement, and
    /// input blocks that are not square left alone.
    #[test]
    fn gate_blocks_transpose_where_they_are_square() {
        let (h, g) = (2, 3);
        let matrix = |recurrent| GateTensor {
            name: "m".into(),
            bias: false,
            recurrent,
            reverse: Some(false),
        };
        let tensor = |shape: Vec<usize>| Tensor {
            values: (0..shape.iter().product::<usize>()).map(|v| v as f64).collect(),
            shape,
        };
        // pytorch [G H, H]: block k rows kH..(k+1)H; (k=1, r=0, c=1) <-> (k=1, r=1, c=0).
        let t = tensor(vec![g * h, h]);
        let got = transpose_blocks(Layout::Pytorch, &matrix(Some(true)), &t, h, g, true).unwrap();
        assert_eq!(got, [0.0, 2.0, 1.0, 3.0, 4.0, 6.0, 5.0, 7.0, 8.0, 10.0, 9.0, 11.0]);
        // keras [H, G H]: block k columns kH..(k+1)H; element (r, c) at c G H + k H + r.
        let t = tensor(vec![h, g * h]);
        let got = transpose_blocks(Layout::Keras, &matrix(Some(true)), &t, h, g, true).unwrap();
        assert_eq!(got, [0.0, 6.0, 2.0, 8.0, 4.0, 10.0, 1.0, 7.0, 3.0, 9.0, 5.0, 11.0]);
        // onnx [dirs, G H, H]: each direction as pytorch.
        let t = tensor(vec![2, g * h, h]);
        let got = transpose_blocks(Layout::Onnx, &matrix(Some(true)), &t, h, g, true).unwrap();
        assert_eq!(&got[12..16], [12.0, 14.0, 13.0, 15.0]);
        // Input blocks H x E with E != H: no transposed block exists.
        let t = tensor(vec![g * h, 3]);
        assert!(transpose_blocks(Layout::Pytorch, &matrix(Some(false)), &t, h, g, false).is_none());
        // The recurrent change leaves input matrices alone, and the other way round.
        let t = tensor(vec![g * h, h]);
        assert!(transpose_blocks(Layout::Pytorch, &matrix(Some(false)), &t, h, g, true).is_none());
        // tf1 [E + H, G H] with E = 3: the recurrent part from row 3; the input part is not square.
        let t = tensor(vec![3 + h, g * h]);
        let got = transpose_blocks(Layout::Tf1, &matrix(None), &t, h, g, true).unwrap();
        assert_eq!((got[3 * 6 + 1], got[4 * 6]), (t.values[4 * 6], t.values[3 * 6 + 1]));
        assert_eq!(got[..18], t.values[..18]);
        assert!(transpose_blocks(Layout::Tf1, &matrix(None), &t, h, g, false).is_none());
    }

    #[test]
    fn differences_are_the_largest_and_nan_wins() {
        assert_eq!(max_abs_diff(&[vec![1.0, 2.0]], &[vec![1.5, 2.0]]), 0.5);
        assert!(max_abs_diff(&[vec![f64::NAN, 2.0]], &[vec![1.0, 2.0]]).is_nan());
    }
}
