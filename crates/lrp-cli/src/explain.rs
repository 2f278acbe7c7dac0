//! `lrp explain`.

use std::io::Write;

use lrp_core::Float;
use lrp_io::{load_model, read_sequences, tokenize, ModelDir};
use lrp_layers::Composite;
use nalgebra::DMatrix;
use serde::Serialize;

use crate::{print_json_line, CliError, ExplainArgs, Method, Precision};

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

pub(crate) fn run(args: &ExplainArgs, out: &mut dyn Write) -> Result<(), CliError> {
    match args.precision {
        Precision::F64 => run_in::<f64>(args, out),
        Precision::F32 => run_in::<f32>(args, out),
    }
}

fn run_in<T: Float>(args: &ExplainArgs, out: &mut dyn Write) -> Result<(), CliError> {
    let dir: ModelDir<T> = load_model(&args.model)?;
    let composite = Composite::<T>::epsilon(args.eps, args.bias_factor)?;
    let items = inputs(args, &dir)?;
    let mut out = std::io::BufWriter::new(out);
    let several = items.len() > 1
        || args
            .vectors
            .as_ref()
            .is_some_and(|p| p.extension().is_some_and(|e| e == "npz"));
    for item in &items {
        let x = item.vectors.map(T::of_f64);
        let trace = dir.model.forward(x)?;
        let target = args.target.unwrap_or_else(|| trace.predicted());
        let (method, per_dimension, initial, unexplained) = match args.method {
            Method::Lrp => {
                let e = dir.model.lrp(&trace, target, &composite)?;
                (
                    "lrp",
                    e.input_relevance.to_rows(),
                    Some(e.initial_state_relevance.as_f64()),
                    Some(e.unexplained_relevance.as_f64()),
                )
            }
            Method::Sa | Method::Gi => {
                let grad = dir.model.gradient(&trace, target)?;
                let sa = args.method == Method::Sa;
                let rows = (0..grad.ncols())
                    .map(|t| {
                        grad.column(t)
                            .iter()
                            .zip(trace.input.column(t).iter())
                            .map(|(&g, &x)| if sa { (g * g).as_f64() } else { (x * g).as_f64() })
                            .collect()
                    })
                    .collect();
                (if sa { "sa" } else { "gi" }, rows, None, None)
            }
        };
        let token_relevance = per_dimension.iter().map(|row: &Vec<f64>| row.iter().sum()).collect();
        let report = Report {
            name: if several { item.name.as_deref() } else { None },
            scores: trace.scores.iter().map(|v| v.as_f64()).collect(),
            predicted: trace.predicted(),
            target,
            method,
            token_relevance,
            initial_state_relevance: initial,
            unexplained_relevance: unexplained,
            input_relevance: args.per_dimension.then_some(per_dimension),
            attention: trace
                .attention_weights()
                .map(|a| a.iter().map(|v| v.as_f64()).collect()),
            tokens: item.tokens.as_deref(),
        };
        print_json_line(&mut out, &report)?;
    }
    out.flush()?;
    Ok(())
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
