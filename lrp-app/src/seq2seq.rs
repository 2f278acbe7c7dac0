//! The JSON form of an encoder–decoder's explanation (`docs/seq2seq.md`),
//! one [`StepReport`] per output token, and the reading of a reference
//! output text.

use lrp_models::seq2seq::MAX_TARGET_LENGTH;
use serde::Serialize;

use crate::Error;

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
