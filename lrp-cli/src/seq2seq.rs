//! `lrp explain` on an encoder–decoder model (`docs/seq2seq.md`): each
//! step's logit explained back to the source tokens, the target prefix and
//! the initial states; shown as one JSON line per output token, a text view
//! (the default on a terminal) or an HTML page.

use std::io::Write;

use lrp_app::{explain_seq2seq, Seq2SeqOptions, Seq2SeqWords};
use lrp_core::Float;
use lrp_io::load_seq2seq;
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
    let text = args.text.as_deref().or(args.sentence.as_deref()).unwrap_or("");
    let options = Seq2SeqOptions {
        output_text: args.output_text.as_deref(),
        max_output_length: args.max_output_length,
        target: args.target,
        method: lrp_app::MethodName::from(args.method),
        steps: args.steps,
    };
    // As for a classifier's text: the text view on a terminal, JSON Lines
    // in a pipe or a file.
    let (format, colour) = crate::explain::format_and_colour(args, terminal, true);
    let json = format == ExplainFormat::Json;
    let (mut relevance, mut prefix, mut attention) = (Vec::new(), Vec::new(), Vec::new());
    let mut out = std::io::BufWriter::new(out);
    // The bar counts output tokens, whose number is known once decoded.
    let bar = progress(
        terminal,
        "explain",
        Some(args.max_output_length as u64),
        Unit::Items("output tokens"),
    );
    let mut method = "";
    let words = explain_seq2seq(
        &loaded,
        text,
        &args.rules.options(),
        options,
        &limits,
        &mut |report, steps| {
            bar.set_length(steps as u64);
            method = report.method;
            if json {
                bar.suspend(|| print_json_line(&mut out, report))?;
            } else {
                relevance.push(report.source_relevance.clone());
                prefix.push(report.target_relevance.iter().sum::<f64>());
                attention.push(report.attention.clone());
            }
            bar.inc(1);
            Ok(())
        },
    )?;
    bar.finish_and_clear();
    let Seq2SeqWords {
        source: words,
        unknown,
        outputs,
    } = words;
    let relevance = Matrix {
        kind: "relevance",
        caption: format!(
            "Relevance of each output token's logit ({method}) per source token; last column: the target prefix's"
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
        let view = seq2seq_terminal(&words, &unknown, &outputs, &relevance, method, colour);
        out.write_all(view.as_bytes())?;
    }
    out.flush()?;
    Ok(())
}
