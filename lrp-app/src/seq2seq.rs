//! The JSON form of an encoder–decoder's explanation (`docs/seq2seq.md`),
//! one [`StepReport`] per output token, and the reading of a reference
//! output text.

use lrp_core::Float;
use lrp_io::{tokenize_within, Limits, Seq2SeqDir};
use lrp_models::seq2seq::MAX_TARGET_LENGTH;
use serde::Serialize;

use crate::{Error, MethodName, RuleOptions};

/// One output token's explanation, one line of the output (keys are a
/// contract, as for the classifiers' reports). Values are f64 whatever
/// the precision.
#[derive(Debug, Serialize)]
pub struct StepReport<'a> {
    /// The decoder step `j`, from 0.
    pub step: usize,
    /// The output token of the step (teacher-forced or decoded).
    pub token: &'a str,
    /// The logits over the target vocabulary `[Vt]`.
    pub scores: Vec<f64>,
    /// The explained target id (the step's token unless `--target`).
    pub target: usize,
    /// The method's short name.
    pub method: &'static str,
    /// Relevance per source token `[S]`.
    pub source_relevance: Vec<f64>,
    /// Relevance per decoder input `[j + 1]`: the start token, then the
    /// output tokens before this step.
    pub target_relevance: Vec<f64>,
    /// LRP only: relevance that reached the initial states.
    pub initial_state_relevance: Option<f64>,
    /// LRP only: relevance dropped at zero denominators.
    pub unexplained_relevance: Option<f64>,
    /// The step's attention weights over the source `[S]`.
    pub attention: Vec<f64>,
    /// The source words.
    pub source_tokens: &'a [String],
    /// The decoder's inputs `[j + 1]`.
    pub target_tokens: &'a [String],
    /// Positions of source words read as the unknown token.
    #[serde(skip_serializing_if = "<[usize]>::is_empty")]
    pub unknown: &'a [usize],
}

impl StepReport<'_> {
    /// The report as one line of `lrp explain --format json` (without the
    /// line break), as [`crate::Report::json_line`].
    pub fn json_line(&self) -> Result<String, Error> {
        serde_json::to_string(self).map_err(|e| Error::Output(e.into()))
    }
}

/// What `lrp explain` asks of an encoder–decoder besides the source text
/// and the rules (its flags' defaults: greedy decoding of at most 50
/// tokens, each step's own token explained, LRP, 50 IG steps).
#[derive(Debug, Clone, Copy)]
pub struct Seq2SeqOptions<'a> {
    /// The output text to explain, teacher-forced (`--output-text`);
    /// `None` decodes greedily.
    pub output_text: Option<&'a str>,
    /// The most tokens greedy decoding produces (1 to
    /// [`MAX_TARGET_LENGTH`]).
    pub max_output_length: usize,
    /// The target id explained at every step (default: the step's token).
    pub target: Option<usize>,
    /// The method.
    pub method: MethodName,
    /// Steps of integrated gradients.
    pub steps: usize,
}

/// The words of an encoder–decoder's explanation: what the views around
/// the [`StepReport`]s show.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Seq2SeqWords {
    /// The source words.
    pub source: Vec<String>,
    /// Positions of the source words read as the unknown token.
    pub unknown: Vec<usize>,
    /// The output tokens, one per step.
    pub outputs: Vec<String>,
}

/// Explains every output token of an encoder–decoder for the source
/// `text`, as `lrp explain --model SEQ2SEQ` does: checks the options,
/// decodes (or forces `output_text`), then hands each step's report to
/// `each` in order, with the number of steps. The command prints each as a JSON line (or gathers
/// the matrices of its views); `lrp serve` answers them as one array.
///
/// ```
/// use lrp_app::{explain_seq2seq, MethodName, RuleOptions, Seq2SeqOptions};
///
/// let limits = lrp_io::Limits::default();
/// let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures/seq2seq-reverse/model");
/// let model = lrp_io::load_seq2seq::<f64>(&dir, &limits)?;
/// let options = Seq2SeqOptions {
///     output_text: None,
///     max_output_length: 10,
///     target: None,
///     method: MethodName::Lrp,
///     steps: 50,
/// };
/// let mut tokens = Vec::new();
/// let words = explain_seq2seq(&model, "a b c", &RuleOptions::default(), options, &limits, &mut |step, _| {
///     tokens.push(step.token.to_string());
///     Ok(())
/// })?;
/// assert_eq!(words.outputs, tokens);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn explain_seq2seq<T: Float>(
    dir: &Seq2SeqDir<T>,
    text: &str,
    rule_options: &RuleOptions,
    options: Seq2SeqOptions<'_>,
    limits: &Limits,
    each: &mut dyn FnMut(&StepReport<'_>, usize) -> Result<(), Error>,
) -> Result<Seq2SeqWords, Error> {
    let usage = |m: &str| Err(Error::Usage(m.to_string()));
    let (Some(source_vocab), Some(target_vocab)) = (&dir.source_vocab, &dir.target_vocab) else {
        return usage("this seq2seq model has no source_vocab or target_vocab, so it cannot read text");
    };
    let model = &dir.model;
    let words = tokenize_within("TEXT", text, limits)?;
    if words.is_empty() {
        return usage("the source text is empty");
    }
    let (source, unknown) = source_vocab.lookup(&words)?;
    let forced = match options.output_text {
        Some(output) => Some(target_ids(target_vocab, output, "--output-text", limits)?),
        None => None,
    };
    let rules = rule_options.composite_for::<T>(&model.sites())?;
    let method = options.method.method(&rules, options.steps);
    method.validate()?;
    // Refused before decoding: greedy decoding may run to its most steps.
    let steps = forced.as_ref().map_or(options.max_output_length, Vec::len);
    limits.check_cost("TEXT", model.cost(method, source.len(), steps))?;
    let trace = match &forced {
        Some(ids) => model.forward(&source, ids)?,
        None => model.greedy(&source, options.max_output_length)?,
    };
    if let Some(k) = options.target {
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
    for step in 0..trace.steps() {
        let target = options.target.unwrap_or(trace.target()[step]);
        let a = model.attribute(&trace, step, target, method)?;
        each(
            &StepReport {
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
            },
            trace.steps(),
        )?;
    }
    Ok(Seq2SeqWords {
        source: words,
        unknown,
        outputs,
    })
}

/// The ids of a reference output `text` (`what` names it in errors): split
/// on whitespace only, so target tokens such as `</s>` stay whole, within
/// the `limits` of one line; every word must be in the target vocabulary.
pub fn target_ids(
    target_vocab: &lrp_io::Vocab,
    text: &str,
    what: &str,
    limits: &lrp_io::Limits,
) -> Result<Vec<usize>, Error> {
    let words = lrp_io::split_within(what, text, limits)?;
    if words.is_empty() {
        return Err(Error::Usage(format!("{what} is empty")));
    }
    if words.len() > MAX_TARGET_LENGTH {
        return Err(Error::Usage(format!(
            "{what} has {} tokens, more than the {MAX_TARGET_LENGTH} supported",
            words.len()
        )));
    }
    let mut ids = Vec::with_capacity(words.len());
    for (position, word) in words.iter().enumerate() {
        match target_vocab.ids(&[word]) {
            Ok(id) => ids.extend(id),
            Err(_) => {
                return Err(Error::Usage(format!(
                    "{what}: word {:?} (position {position}) is not in the target vocabulary",
                    lrp_io::printable(word, 100)
                )))
            }
        }
    }
    Ok(ids)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_reference_output_is_split_on_whitespace_and_looked_up_whole() {
        let vocab = lrp_io::Vocab::parse("<s>\n</s>\nla\nmaison\n", None, false).unwrap();
        let limits = lrp_io::Limits::default();
        assert_eq!(
            target_ids(&vocab, " la maison </s>", "out", &limits).unwrap(),
            [2, 3, 1]
        );
        let e = target_ids(&vocab, "la chaise", "out", &limits).unwrap_err();
        assert_eq!(
            e.to_string(),
            "out: word \"chaise\" (position 1) is not in the target vocabulary"
        );
        assert_eq!(
            target_ids(&vocab, "  ", "out", &limits).unwrap_err().to_string(),
            "out is empty"
        );
    }
}
