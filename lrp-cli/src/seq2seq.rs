//! `lrp explain` on an encoder–decoder model (`docs/seq2seq.md`): each
//! step's logit explained back to the source tokens, the target prefix and
//! the initial states; shown as one JSON line per output token, a text view
//! (the default on a terminal) or an HTML page.

use std::io::Write;

use lrp_app::{target_ids, StepReport};
use lrp_core::Float;
use lrp_io::{load_seq2seq, tokenize_within};
use lrp_models::seq2seq::MAX_TARGET_LENGTH;

use crate::progress::{progress, Unit};
use crate::render::{seq2seq_html, seq2seq_terminal, Matrix};
use crate::{print_json_line, CliError, ExplainArgs, ExplainFormat, Terminal};

/// Parses `--max-output-length`: 1 to [`MAX_TARGET_LENGTH`].
pub(crate) fn output_length(value: &str) -> Result<usize, String> {
    match value.parse::<usize>() {
        Ok(n) if (1..=MAX_TARGET_LENGTH).contains(&n) => Ok(n),
        _ => Err(format!("{value:?} is not a length from 1 to {MAX_TARGET_LENGTH}")),
    }
}

/// Explains `args` with the seq2seq model in `args.model`, in precision `T`
/// (`terminal`: what stdout and stderr are, for the default format, the
/// colours and the progress bar).
pub(crate) fn run_in<T: Float>(args: &ExplainArgs, out: &mut dyn Write, terminal: Terminal) -> Result<(), CliError> {
    let usage = |m: &str| Err(CliError::Usage(m.to_string()));
    let Some(dir) = &args.model else {
        return usage("a seq2seq model needs --model DIR");
    };
    if args.vectors.is_some() || args.input.is_some() {
        return usage("a seq2seq model reads --text (or TEXT), not --vectors or --input");
    }
    if args.per_dimension {
        return usage("--per-dimension is not supported for seq2seq models");
    }
    if args.position.is_some() {
        // Each output step is explained; there is no one position to pick.
        return Err(lrp_models::Error::NotPerStep.into());
    }
    let limits = args.limits.limits();
    let loaded = load_seq2seq::<T>(dir, &limits)?;
    let (Some(source_vocab), Some(target_vocab)) = (&loaded.source_vocab, &loaded.target_vocab) else {
        return usage("this seq2seq model has no source_vocab or target_vocab, so it cannot read text");
    };
    let model = &loaded.model;
    let text = args.text.as_deref().or(args.sentence.as_deref()).unwrap_or("");
    let words = tokenize_within("TEXT", text, &limits)?;
    if words.is_empty() {
        return usage("the source text is empty");
    }
    let (source, unknown) = source_vocab.lookup(&words)?;
    let forced = match &args.output_text {
        Some(output) => Some(target_ids(target_vocab, output, "--output-text", &limits)?),
        None => None,
    };
    let rule_options = args.rules.options();
    rule_options.check_sites(&model.sites())?;
    let rules = rule_options.composite::<T>()?;
    let method = lrp_app::MethodName::from(args.method).method(&rules, args.steps);
    method.validate()?;
    // Refused before decoding: greedy decoding may run to its most steps.
    let steps = forced.as_ref().map_or(args.max_output_length, Vec::len);
    limits.check_cost("TEXT", model.cost(method, source.len(), steps))?;
    let trace = match &forced {
        Some(ids) => model.forward(&source, ids)?,
        None => model.greedy(&source, args.max_output_length)?,
    };
    if let Some(k) = args.target {
        if k >= model.target_vocab_size() {
            return Err(lrp_models::Error::TargetOutOfRange {
                target: k,
                classes: model.target_vocab_size(),
            }
            .into());
        }
    }
    let name = |id: usize| target_vocab.token(id).unwrap_or("?").to_string();
    let start = model.config().target_start;
    let inputs: Vec<String> = trace.decoder_inputs(start).into_iter().map(name).collect();
    let outputs: Vec<String> = trace.target().iter().map(|&id| name(id)).collect();
    let widen = |v: &[T]| v.iter().map(|x| x.as_f64()).collect::<Vec<f64>>();
    // As for a classifier's text: the text view on a terminal, JSON Lines
    // in a pipe or a file.
    let (format, colour) = crate::explain::format_and_colour(args, terminal, true);
    let json = format == ExplainFormat::Json;
    let (mut relevance, mut prefix, mut attention) = (Vec::new(), Vec::new(), Vec::new());
    let mut out = std::io::BufWriter::new(out);
    let bar = progress(
        terminal,
        "explain",
        Some(trace.steps() as u64),
        Unit::Items("output tokens"),
    );
    for step in 0..trace.steps() {
        let target = args.target.unwrap_or(trace.target()[step]);
        let a = model.attribute(&trace, step, target, method)?;
        let report = StepReport {
            step,
            token: &outputs[step],
            scores: widen(trace.logits(step)),
            target,
            method: method.name(),
            source_relevance: widen(&a.source),
            target_relevance: widen(&a.target),
            initial_state_relevance: a.initial_state_relevance.map(|v| v.as_f64()),
            unexplained_relevance: a.unexplained_relevance.map(|v| v.as_f64()),
            attention: widen(trace.attention(step)),
            source_tokens: &words,
            target_tokens: &inputs[..=step],
            unknown: &unknown,
        };
        if json {
            bar.suspend(|| print_json_line(&mut out, &report))?;
        } else {
            relevance.push(report.source_relevance);
            prefix.push(report.target_relevance.iter().sum::<f64>());
            attention.push(report.attention);
        }
        bar.inc(1);
    }
    bar.finish_and_clear();
    let relevance = Matrix {
        kind: "relevance",
        caption: format!(
            "Relevance of each output token's logit ({}) per source token; last column: the target prefix's",
            method.name()
        ),
        rows: &relevance,
        extra: Some(("target prefix", &prefix)),
    };
    if format == ExplainFormat::Html {
        let attention = Matrix {
            kind: "attention",
            caption: "Attention weights".to_string(),
            rows: &attention,
            extra: None,
        };
        out.write_all(seq2seq_html(&words, &unknown, &outputs, &[relevance, attention]).as_bytes())?;
    } else if format == ExplainFormat::Text {
        // The prefix's column, narrow: the caption above the matrix names it.
        let relevance = Matrix {
            caption: "relevance per output token (row) and source token (column), then the target prefix".into(),
            extra: Some(("prefix", &prefix)),
            ..relevance
        };
        let view = seq2seq_terminal(&words, &unknown, &outputs, &relevance, method.name(), colour);
        out.write_all(view.as_bytes())?;
    }
    out.flush()?;
    Ok(())
}
