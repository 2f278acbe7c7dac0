//! `lrp explain`.

use std::io::Write;

use indicatif::ProgressBar;
use lrp_core::Float;
use lrp_io::{read_sequences_with, read_text, tokenize_lines, tokenize_within, write_atomically, ModelDir};
use lrp_layers::{gate_rule, Composite, RuleParameters};
use lrp_models::{ForwardTrace, Method};
use nalgebra::DMatrix;
use rayon::prelude::*;
use serde::Serialize;

use crate::render::{html_page, View};
use crate::{
    default_model, print_json_line, CliError, Colour, ExplainArgs, ExplainFormat, MethodName, Precision, RuleArgs,
    Terminal,
};

/// One line of output (the CLI contract; keys are stable).
#[derive(Debug, Serialize)]
struct Report<'a> {
    /// The input file's line (1-based, blank lines counted) for `--input`.
    #[serde(skip_serializing_if = "Option::is_none")]
    line: Option<usize>,
    #[serde(skip_serializing_if = "Option::is_none")]
    name: Option<&'a str>,
    scores: Vec<f64>,
    predicted: usize,
    target: usize,
    method: &'static str,
    token_relevance: Vec<f64>,
    initial_state_relevance: Option<f64>,
    unexplained_relevance: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    input_relevance: Option<Vec<Vec<f64>>>,
    attention: Option<Vec<f64>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    tokens: Option<&'a [String]>,
    /// Positions of the tokens the vocabulary does not hold (read as its
    /// unknown token), for text input.
    #[serde(skip_serializing_if = "Option::is_none")]
    unknown: Option<&'a [usize]>,
}

/// One sequence to explain.
struct Item {
    name: Option<String>,
    /// The line of the `--input` file it came from (1-based).
    line: Option<usize>,
    /// The words, for text input.
    tokens: Option<Vec<String>>,
    /// Positions of out-of-vocabulary words, for text input.
    unknown: Option<Vec<usize>>,
    /// What a human view shows per position: the words, or `#t`.
    display: Vec<String>,
    vectors: DMatrix<f64>,
}

pub(crate) fn run(args: &ExplainArgs, stdout: &mut dyn Write, terminal: Terminal) -> Result<(), CliError> {
    // `--out -` and `--out /dev/stdout` mean standard output: replacing
    // /dev/stdout by a file would fail, or clobber a device.
    let out_file = args
        .out
        .as_deref()
        .filter(|p| *p != std::path::Path::new("-") && *p != std::path::Path::new("/dev/stdout"));
    let mut buffer = Vec::new();
    let out: &mut dyn Write = if out_file.is_some() { &mut buffer } else { stdout };
    match args.precision {
        Precision::F64 => run_in::<f64>(args, out, terminal)?,
        Precision::F32 => run_in::<f32>(args, out, terminal)?,
    }
    if let Some(path) = out_file {
        write_atomically(path, &buffer)?;
    }
    Ok(())
}

fn run_in<T: Float>(args: &ExplainArgs, out: &mut dyn Write, terminal: Terminal) -> Result<(), CliError> {
    let limits = args.limits.limits();
    let dir: ModelDir<T> = default_model::load(&args.model, &limits)?;
    let rules = composite::<T>(&args.rules)?;
    let method = match args.method {
        MethodName::Lrp => Method::Lrp(&rules),
        MethodName::Sa => Method::Sensitivity,
        MethodName::Gi => Method::GradientTimesInput,
        MethodName::Occlusion => Method::Occlusion,
        MethodName::Ig => Method::IntegratedGradients { steps: args.steps },
    };
    let items = inputs(args, &dir, &limits)?;
    let several = items.len() > 1
        || args
            .vectors
            .as_ref()
            .is_some_and(|p| p.extension().is_some_and(|e| e == "npz"));
    let progress = if terminal.stderr && items.len() > 1 {
        ProgressBar::new(items.len() as u64)
    } else {
        ProgressBar::hidden()
    };
    // Sentences are independent: spread them over the cores in chunks of
    // similar length (so each chunk's equal-length sequences share the
    // encoder's matrix products), keep the input order, and report the
    // first failure in that order.
    let mut order: Vec<usize> = (0..items.len()).collect();
    order.sort_by_key(|&k| items[k].vectors.ncols());
    let chunk = items.len().div_ceil(8 * rayon::current_num_threads()).clamp(1, 32);
    let mut reports: Vec<Option<Result<Report<'_>, CliError>>> = items.iter().map(|_| None).collect();
    let done: Vec<Vec<(usize, Result<Report<'_>, CliError>)>> = order
        .par_chunks(chunk)
        .map(|members| {
            let xs = members.iter().map(|&k| items[k].vectors.map(T::of_f64)).collect();
            let traces = dir.model.forward_batch(xs);
            let explained = members
                .iter()
                .zip(traces)
                .map(|(&k, trace)| (k, explain_one(&dir, &items[k], trace, method, args, several)))
                .collect();
            progress.inc(members.len() as u64);
            explained
        })
        .collect();
    progress.finish_and_clear();
    for (k, report) in done.into_iter().flatten() {
        reports[k] = Some(report);
    }
    let reports = reports
        .into_iter()
        .map(|r| r.expect("every item explained"))
        .collect::<Result<Vec<Report<'_>>, CliError>>()?;

    let text_input = args.sentence.is_some() || args.text.is_some();
    let format = match args.format {
        ExplainFormat::Auto if text_input && terminal.stdout && args.out.is_none() => ExplainFormat::Text,
        ExplainFormat::Auto => ExplainFormat::Json,
        other => other,
    };
    let labels = dir.model.config().labels.as_deref();
    let mut out = std::io::BufWriter::new(out);
    match format {
        ExplainFormat::Json | ExplainFormat::Auto => {
            for report in &reports {
                print_json_line(&mut out, report)?;
            }
        }
        ExplainFormat::Text => {
            let colour = if args.out.is_none() {
                terminal.colour
            } else {
                Colour::None
            };
            for (k, (report, item)) in reports.iter().zip(&items).enumerate() {
                if k > 0 {
                    out.write_all(b"\n")?;
                }
                out.write_all(view(report, item, labels).terminal(colour).as_bytes())?;
            }
        }
        ExplainFormat::Html => {
            let sections: Vec<String> = reports
                .iter()
                .zip(&items)
                .map(|(report, item)| view(report, item, labels).html_section())
                .collect();
            out.write_all(html_page(&sections).as_bytes())?;
        }
    }
    out.flush()?;
    Ok(())
}

/// The human view of a report; vector inputs show positions as `#t`.
fn view<'a>(report: &'a Report<'_>, item: &'a Item, labels: Option<&'a [String]>) -> View<'a> {
    View {
        tokens: &item.display,
        unknown: item.unknown.as_deref().unwrap_or_default(),
        relevance: &report.token_relevance,
        scores: &report.scores,
        predicted: report.predicted,
        target: report.target,
        labels,
        method: report.method,
    }
}

/// Attributes the target score of one item, given its forward pass.
fn explain_one<'a, T: Float>(
    dir: &ModelDir<T>,
    item: &'a Item,
    trace: Result<ForwardTrace<T>, lrp_models::Error>,
    method: Method<'_, T>,
    args: &ExplainArgs,
    several: bool,
) -> Result<Report<'a>, CliError> {
    let in_item = |e: lrp_models::Error| match &item.name {
        Some(name) if several => CliError::Item {
            name: name.clone(),
            source: e,
        },
        _ => CliError::Model(e),
    };
    let trace = trace.map_err(in_item)?;
    let target = args.target.unwrap_or_else(|| trace.predicted());
    let found = dir.model.attribute(&trace, target, method).map_err(in_item)?;
    let to_f64 = |v: &[T]| v.iter().map(|x| x.as_f64()).collect::<Vec<_>>();
    Ok(Report {
        line: item.line,
        name: if several { item.name.as_deref() } else { None },
        scores: to_f64(trace.scores().as_slice()),
        predicted: trace.predicted(),
        target,
        method: method.name(),
        token_relevance: to_f64(&found.per_position),
        initial_state_relevance: found.initial_state_relevance.map(|v| v.as_f64()),
        unexplained_relevance: found.unexplained_relevance.map(|v| v.as_f64()),
        input_relevance: if args.per_dimension {
            found.per_dimension.map(|m| {
                m.column_iter()
                    .map(|c| c.iter().map(|v| v.as_f64()).collect())
                    .collect()
            })
        } else {
            None
        },
        attention: trace.attention_weights().map(to_f64),
        tokens: item.tokens.as_deref(),
        unknown: item.unknown.as_deref(),
    })
}

/// The LRP rules the flags ask for: a preset, or one rule everywhere, plus
/// the gate rule, refined by the rules by site of `--rules`.
pub(crate) fn composite<T: Float>(args: &RuleArgs) -> Result<Composite<T>, CliError> {
    let p = RuleParameters {
        eps: args.eps,
        bias_factor: args.bias_factor,
        gamma: args.gamma,
        alpha: args.alpha,
    };
    let rules = match &args.rule {
        Some(name) => Composite::with_every_rule(name, &p)?,
        None => Composite::preset(&args.composite, &p)?,
    };
    let rules = rules.with_boxed_gate_rule(gate_rule(&args.gate_rule)?);
    Ok(match &args.rules {
        Some(spec) => rules.with_rules(spec, &p)?,
        None => rules,
    })
}

fn inputs<T: Float>(args: &ExplainArgs, dir: &ModelDir<T>, limits: &lrp_io::Limits) -> Result<Vec<Item>, CliError> {
    if let Some(path) = &args.vectors {
        return Ok(read_sequences_with(path, limits)?
            .into_iter()
            .map(|s| {
                let display = (0..s.vectors.ncols()).map(|t| format!("#{t}")).collect();
                Item {
                    name: Some(s.name),
                    line: None,
                    tokens: None,
                    unknown: None,
                    display,
                    vectors: s.vectors,
                }
            })
            .collect());
    }
    // Each text's tokens, with its line in the input file (1-based), if any.
    let lines: Vec<(Option<usize>, Vec<String>)> = match (&args.sentence, &args.text, &args.input) {
        (Some(text), _, _) | (None, Some(text), _) => vec![(None, tokenize_within("TEXT", text, limits)?)],
        // `-` is standard input, as for most Unix tools.
        (None, None, Some(path)) => tokenize_lines(path, &read_text(path, limits)?, limits)?
            .into_iter()
            .map(|(line, tokens)| (Some(line), tokens))
            .collect(),
        (None, None, None) => {
            return Err(CliError::Usage(
                "give a TEXT, --text TEXT, --input FILE or --vectors FILE".into(),
            ))
        }
    };
    let vocab = dir.vocab()?;
    lines
        .into_iter()
        .map(|(line, tokens)| {
            let (ids, unknown) = vocab.lookup(&tokens)?;
            let vectors = dir.model.embed(&ids)?.map(|v| v.as_f64());
            Ok(Item {
                name: None,
                line,
                display: tokens.clone(),
                tokens: Some(tokens),
                unknown: Some(unknown),
                vectors,
            })
        })
        .collect()
}
