//! `lrp explain`.

use std::io::Write;

use lrp_core::Float;
use lrp_io::{load_model, read_sequences, tokenize, write_atomically, ModelDir};
use lrp_layers::{gate_rule, Composite, RuleParameters};
use lrp_models::{ForwardTrace, Method};
use nalgebra::DMatrix;
use rayon::prelude::*;
use serde::Serialize;

use crate::{print_json_line, CliError, ExplainArgs, MethodName, Precision};

/// One line of output (the CLI contract; keys are stable).
#[derive(Debug, Serialize)]
struct Report<'a> {
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
}

/// One sequence to explain.
struct Item {
    name: Option<String>,
    tokens: Option<Vec<String>>,
    vectors: DMatrix<f64>,
}

pub(crate) fn run(args: &ExplainArgs, stdout: &mut dyn Write) -> Result<(), CliError> {
    let mut buffer = Vec::new();
    let out: &mut dyn Write = if args.out.is_some() { &mut buffer } else { stdout };
    match args.precision {
        Precision::F64 => run_in::<f64>(args, out)?,
        Precision::F32 => run_in::<f32>(args, out)?,
    }
    if let Some(path) = &args.out {
        write_atomically(path, &buffer)?;
    }
    Ok(())
}

fn run_in<T: Float>(args: &ExplainArgs, out: &mut dyn Write) -> Result<(), CliError> {
    let dir: ModelDir<T> = load_model(&args.model)?;
    let rules = composite::<T>(args)?;
    let method = match args.method {
        MethodName::Lrp => Method::Lrp(&rules),
        MethodName::Sa => Method::Sensitivity,
        MethodName::Gi => Method::GradientTimesInput,
        MethodName::Occlusion => Method::Occlusion,
        MethodName::Ig => Method::IntegratedGradients { steps: args.steps },
    };
    let items = inputs(args, &dir)?;
    let several = items.len() > 1
        || args
            .vectors
            .as_ref()
            .is_some_and(|p| p.extension().is_some_and(|e| e == "npz"));
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
            members
                .iter()
                .zip(traces)
                .map(|(&k, trace)| (k, explain_one(&dir, &items[k], trace, method, args, several)))
                .collect()
        })
        .collect();
    for (k, report) in done.into_iter().flatten() {
        reports[k] = Some(report);
    }
    let reports: Vec<Result<Report<'_>, CliError>> =
        reports.into_iter().map(|r| r.expect("every item explained")).collect();
    let mut out = std::io::BufWriter::new(out);
    let reports = reports.into_iter().collect::<Result<Vec<_>, _>>()?;
    for report in &reports {
        print_json_line(&mut out, report)?;
    }
    out.flush()?;
    Ok(())
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
        name: if several { item.name.as_deref() } else { None },
        scores: to_f64(trace.scores.as_slice()),
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
    })
}

/// The LRP rules the flags ask for: a preset, or one rule everywhere, plus
/// the gate rule.
fn composite<T: Float>(args: &ExplainArgs) -> Result<Composite<T>, CliError> {
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
    Ok(rules.with_boxed_gate_rule(gate_rule(&args.gate_rule)?))
}

fn inputs<T: Float>(args: &ExplainArgs, dir: &ModelDir<T>) -> Result<Vec<Item>, CliError> {
    if let Some(path) = &args.vectors {
        return Ok(read_sequences(path)?
            .into_iter()
            .map(|s| Item {
                name: Some(s.name),
                tokens: None,
                vectors: s.vectors,
            })
            .collect());
    }
    let text = args
        .text
        .as_deref()
        .ok_or_else(|| CliError::Usage("give --vectors FILE or --text TEXT".into()))?;
    let tokens = tokenize(text);
    let ids = dir.vocab()?.ids(&tokens)?;
    let vectors = dir.model.embed(&ids)?.map(|v| v.as_f64());
    Ok(vec![Item {
        name: None,
        tokens: Some(tokens),
        vectors,
    }])
}
