//! `lrp eval`: the accuracy of a model on labelled sentences, the check a
//! user runs after importing a model.

use std::io::Write;

use lrp_core::Float;
use std::path::Path;

use lrp_io::{read_labelled_with, LabelledSentence, Limits, ModelDir};
use nalgebra::DMatrix;
use rayon::prelude::*;
use serde::Serialize;

use crate::progress::{progress, Unit};
use crate::{print_json_line, CliError, EvalArgs, Format, Precision, Terminal};

#[derive(Debug, Serialize)]
struct Accuracy {
    accuracy: f64,
    n: usize,
    correct: usize,
}

pub(crate) fn run(args: &EvalArgs, out: &mut dyn Write, terminal: Terminal) -> Result<(), CliError> {
    match args.precision {
        Precision::F64 => run_in::<f64>(args, out, terminal),
        Precision::F32 => run_in::<f32>(args, out, terminal),
    }
}

/// Refuses a model that does not give one class per sequence, which the
/// accuracy and the deletion curves need: a regression or a per-step
/// head (`what` and `each` name the labelled inputs and one of them in
/// the message).
pub(crate) fn check_classifier<T: Float>(dir: &ModelDir<T>, what: &str, each: &str) -> Result<(), CliError> {
    if lrp_app::is_regression(&dir.model) {
        return Err(CliError::Usage(format!(
            "this model's head is a regression (\"task\": \"regression\"): labelled {what} need class scores"
        )));
    }
    if dir.model.is_per_step() {
        return Err(CliError::Usage(format!(
            "this model's head gives outputs per position (\"input\": \"each\"): labelled {what} need one output per {each}"
        )));
    }
    Ok(())
}

/// Labelled sentences from `path` and their embedded inputs `[E, T]`,
/// checked against the model's classes and vocabulary; read within `limits`.
pub(crate) fn labelled_inputs<T: Float>(
    dir: &ModelDir<T>,
    path: &Path,
    limits: &Limits,
) -> Result<(Vec<LabelledSentence>, Vec<DMatrix<T>>), CliError> {
    check_classifier(dir, "sentences", "sentence")?;
    let vocab = dir.vocab()?;
    let sentences = read_labelled_with(path, limits)?;
    if sentences.is_empty() {
        return Err(CliError::Usage(format!(
            "{} holds no labelled sentences",
            path.display()
        )));
    }
    let classes = dir.model.num_classes();
    if let Some(bad) = sentences.iter().find(|s| s.label >= classes) {
        return Err(CliError::Usage(format!(
            "label {} is not a class of this model (0..{classes})",
            bad.label
        )));
    }
    let inputs = sentences
        .iter()
        .map(|s| Ok(dir.model.embed(&vocab.ids(&s.tokens)?)?))
        .collect::<Result<Vec<_>, CliError>>()?;
    Ok((sentences, inputs))
}

fn run_in<T: Float>(args: &EvalArgs, out: &mut dyn Write, terminal: Terminal) -> Result<(), CliError> {
    let limits = args.limits.limits();
    let dir = lrp_app::load_model::<T>(args.model.as_deref(), &limits)?;
    let (sentences, inputs) = labelled_inputs(&dir, &args.data, &limits)?;
    // Chunks of equal-length sentences share the encoder's products.
    let mut order: Vec<usize> = (0..inputs.len()).collect();
    order.sort_by_key(|&k| inputs[k].ncols());
    let bar = progress(terminal, "eval", Some(inputs.len() as u64), Unit::Items("sentences"));
    let correct = order
        .par_chunks(32)
        .map(|members| {
            let traces = dir
                .model
                .forward_batch(members.iter().map(|&k| inputs[k].clone()).collect());
            bar.inc(members.len() as u64);
            members.iter().zip(traces).try_fold(0usize, |hits, (&k, trace)| {
                Ok::<_, CliError>(hits + usize::from(trace?.predicted() == sentences[k].label))
            })
        })
        .collect::<Result<Vec<usize>, CliError>>()?
        .into_iter()
        .sum::<usize>();
    bar.finish_and_clear();
    let result = Accuracy {
        accuracy: correct as f64 / sentences.len() as f64,
        n: sentences.len(),
        correct,
    };
    let as_text = matches!(args.format, Format::Text) || (args.format == Format::Auto && terminal.stdout);
    if as_text {
        writeln!(
            out,
            "accuracy {:.4} on {} sentences ({} correct)",
            result.accuracy, result.n, result.correct
        )?;
    } else {
        print_json_line(out, &result)?;
    }
    Ok(())
}
