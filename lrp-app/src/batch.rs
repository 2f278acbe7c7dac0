//! Batches of inputs to explanations: [`ExplainInput`]s (text looked up
//! in a vocabulary, or vectors) explained together on all cores into
//! [`Report`]s, the JSON form of an explanation.

use lrp_core::Float;
use lrp_io::{tokenize_within, Vocab};
use lrp_models::config::Task;
use lrp_models::{ForwardTrace, Method, Model};
use nalgebra::DMatrix;
use rayon::prelude::*;
use serde::Serialize;

use crate::Error;

/// One explanation as `lrp explain` prints it: serialised, one line of
/// its JSON output (the CLI contract; keys are stable). Values are f64
/// whatever the precision (an f32 value widens exactly).
#[derive(Debug, Clone, Serialize)]
pub struct Report<'a> {
    /// The input file's line (1-based, blank lines counted) for `--input`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub line: Option<usize>,
    /// The array's name, for an npz archive of several arrays.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<&'a str>,
    /// The class scores `[C]`.
    pub scores: Vec<f64>,
    /// The class with the highest score (for a regression head, the
    /// largest output).
    pub predicted: usize,
    /// The class explained.
    pub target: usize,
    /// The output position explained, for a per-step head (`scores` are
    /// that position's outputs).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub position: Option<usize>,
    /// The method's short name (`lrp`, `sa`, `gi`, `occlusion`, `ig`).
    pub method: &'static str,
    /// Relevance per position `[T]`.
    pub token_relevance: Vec<f64>,
    /// LRP only: relevance that reached the initial states.
    pub initial_state_relevance: Option<f64>,
    /// LRP only: relevance dropped at zero denominators.
    pub unexplained_relevance: Option<f64>,
    /// Relevance per position and input dimension `[T][E]`, when asked for.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub input_relevance: Option<Vec<Vec<f64>>>,
    /// The attention weights `[T]`, for a head that reads the context.
    pub attention: Option<Vec<f64>>,
    /// The words, for text input.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tokens: Option<&'a [String]>,
    /// Positions of the tokens the vocabulary does not hold (read as its
    /// unknown token), for text input.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub unknown: Option<&'a [usize]>,
}

impl Report<'_> {
    /// The report as one line of `lrp explain --format json` (without the
    /// line break): the one place that writes a report's JSON, used by the
    /// command and by `lrp serve`'s `POST /api/explain`, which therefore
    /// answer alike by construction.
    pub fn json_line(&self) -> Result<String, Error> {
        serde_json::to_string(self).map_err(|e| Error::Output(e.into()))
    }
}

/// What to report besides the method: the flags of `lrp explain` that
/// shape each [`Report`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ReportOptions {
    /// The class to explain (default: the predicted class, or output 0 of
    /// a regression head).
    pub target: Option<usize>,
    /// The output position to explain, for a per-step head (default: the
    /// last position).
    pub position: Option<usize>,
    /// Also report `input_relevance` `[T][E]`.
    pub per_dimension: bool,
    /// The inputs are the arrays of an archive: reports and errors name
    /// their array.
    pub several: bool,
}

/// One sequence to explain: text looked up in a vocabulary, or vectors.
#[derive(Debug, Clone)]
pub struct ExplainInput {
    /// The array's name, for vectors.
    name: Option<String>,
    /// The line of the input file it came from (1-based).
    line: Option<usize>,
    /// The words, for text input.
    tokens: Option<Vec<String>>,
    /// Positions of out-of-vocabulary words, for text input.
    unknown: Option<Vec<usize>>,
    input: Input,
    /// What reading it advanced a progress count by (for `lrp explain`,
    /// bytes of a text file; else 1).
    progress: u64,
}

/// What the model reads for one item.
#[derive(Debug, Clone)]
enum Input {
    /// Embedding rows, for text: embedded when explained, so that a window
    /// of text holds words, not vectors.
    Ids(Vec<usize>),
    /// Vectors `[E, T]`.
    Vectors(DMatrix<f64>),
}

impl ExplainInput {
    /// Text: tokenised as `lrp explain --text` does (within `limits`;
    /// `what` names it in messages) and looked up in `vocab`.
    pub fn text(vocab: &Vocab, what: &str, text: &str, limits: &lrp_io::Limits) -> Result<Self, Error> {
        let tokens = tokenize_within(what, text, limits)?;
        Self::words(vocab, tokens)
    }

    /// Words already split (`lrp_io::tokenize_within`), looked up in
    /// `vocab`.
    pub fn words(vocab: &Vocab, tokens: Vec<String>) -> Result<Self, Error> {
        let (ids, unknown) = vocab.lookup(&tokens)?;
        Ok(Self {
            name: None,
            line: None,
            tokens: Some(tokens),
            unknown: Some(unknown),
            input: Input::Ids(ids),
            progress: 1,
        })
    }

    /// Token ids (`lrp explain --ids`), shown as their numbers; checked
    /// against the vocabulary when explained.
    pub fn ids(ids: Vec<usize>) -> Self {
        Self {
            name: None,
            line: None,
            tokens: Some(ids.iter().map(usize::to_string).collect()),
            unknown: Some(Vec::new()),
            input: Input::Ids(ids),
            progress: 1,
        }
    }

    /// Token ids with their tokens' strings (text read by a Hugging Face
    /// tokenizer), shown as those strings.
    pub fn tokenized(ids: Vec<usize>, tokens: Vec<String>) -> Self {
        Self {
            tokens: Some(tokens),
            ..Self::ids(ids)
        }
    }

    /// The same input, from `line` (1-based) of an input file: its
    /// [`Report`] names the line.
    pub fn with_line(self, line: usize) -> Self {
        Self {
            line: Some(line),
            ..self
        }
    }

    /// The same input, advancing a progress count by `progress` when
    /// explained (see [`explain_batch_with_progress`]; default 1).
    pub fn with_progress(self, progress: u64) -> Self {
        Self { progress, ..self }
    }

    /// The array's name, for vectors.
    pub fn name(&self) -> Option<&str> {
        self.name.as_deref()
    }

    /// The line of the input file it came from, if it came from one.
    pub fn line(&self) -> Option<usize> {
        self.line
    }

    /// The words, for text.
    pub fn tokens(&self) -> Option<&[String]> {
        self.tokens.as_deref()
    }

    /// Positions of the words not in the vocabulary, for text.
    pub fn unknown(&self) -> Option<&[usize]> {
        self.unknown.as_deref()
    }

    /// Input vectors `[E, T]` (column `t` is position `t`), with the name
    /// reports give them when explained as [`ReportOptions::several`].
    pub fn vectors(name: Option<String>, vectors: DMatrix<f64>) -> Self {
        Self {
            name,
            line: None,
            tokens: None,
            unknown: None,
            input: Input::Vectors(vectors),
            progress: 1,
        }
    }

    /// Positions, `T`.
    pub fn len(&self) -> usize {
        match &self.input {
            Input::Ids(ids) => ids.len(),
            Input::Vectors(vectors) => vectors.ncols(),
        }
    }

    /// Whether it has no positions (the explainers refuse such an input).
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The model's input `[E, T]`.
    pub fn input<T: Float>(&self, model: &Model<T>) -> Result<DMatrix<T>, lrp_models::Error> {
        match &self.input {
            Input::Ids(ids) => model.embed(ids),
            Input::Vectors(vectors) => Ok(vectors.map(T::of_f64)),
        }
    }
}

/// Explains a batch of inputs on the current rayon pool's cores, as `lrp
/// explain` explains each window of its input: sorted by length, in
/// chunks of similar length (at most 64), each chunk one packed batch (one
/// matrix product per step and direction for all its sequences, forward and
/// backward). Returns the reports in input order, or the first failure in
/// that order.
pub fn explain_batch<'w, T: Float>(
    model: &Model<T>,
    inputs: &'w [ExplainInput],
    method: Method<'_, T>,
    options: ReportOptions,
) -> Result<Vec<Report<'w>>, Error> {
    explain_batch_with_progress(model, inputs, method, options, &|_| {})
}

/// The class scores of a batch of inputs, in input order, computed as
/// [`explain_batch`] runs them (sorted by length, packed batches of at
/// most 64 on all cores); or the first failure in input order.
pub fn scores_batch<T: Float>(model: &Model<T>, inputs: &[ExplainInput]) -> Result<Vec<Vec<f64>>, Error> {
    in_chunks(model, inputs, |traced| {
        traced
            .into_iter()
            .map(|(k, trace)| {
                let scores = trace.map(|t| t.scores().iter().map(|v| v.as_f64()).collect());
                (k, scores.map_err(Error::from))
            })
            .collect()
    })
    .into_iter()
    .collect()
}

/// One input's forward pass, by its index in the batch.
type Traced<T> = (usize, Result<ForwardTrace<T>, lrp_models::Error>);

/// Runs a batch through the model as `lrp explain` runs a window: sorted
/// by length, in chunks of similar length on all cores, each chunk's
/// inputs one packed forward batch. `each` turns a chunk's traces (an
/// input that cannot be embedded keeps its error) into one result per
/// input; the results come back in input order.
///
/// The chunks hold at most 64: products wide enough to pay, traces small
/// enough (about 15 MB for SST sentences) for the free lists to keep, and
/// several chunks per core.
fn in_chunks<T: Float, R: Send>(
    model: &Model<T>,
    inputs: &[ExplainInput],
    each: impl Fn(Vec<Traced<T>>) -> Vec<(usize, R)> + Sync,
) -> Vec<R> {
    let mut order: Vec<usize> = (0..inputs.len()).collect();
    order.sort_by_key(|&k| inputs[k].len());
    let chunk = inputs.len().div_ceil(4 * rayon::current_num_threads()).clamp(1, 64);
    let done: Vec<Vec<(usize, R)>> = order
        .par_chunks(chunk)
        .map(|members| {
            let mut ready = Vec::with_capacity(members.len());
            let mut failed = Vec::with_capacity(members.len());
            for &k in members {
                match inputs[k].input(model) {
                    Ok(x) => {
                        ready.push(x);
                        failed.push(None);
                    }
                    Err(e) => failed.push(Some(e)),
                }
            }
            let mut traces = model.forward_batch(ready).into_iter();
            let traced = members
                .iter()
                .zip(failed)
                .map(|(&k, failure)| match failure {
                    Some(e) => (k, Err(e)),
                    None => (k, traces.next().expect("one trace per embedded input")),
                })
                .collect();
            each(traced)
        })
        .collect();
    let mut results: Vec<Option<R>> = inputs.iter().map(|_| None).collect();
    for (k, result) in done.into_iter().flatten() {
        results[k] = Some(result);
    }
    results
        .into_iter()
        .map(|r| r.expect("every input of the batch run"))
        .collect()
}

/// Whether the model's head is a regression (a model built in code,
/// without a configuration, is read as a classifier).
pub fn is_regression<T: Float>(model: &Model<T>) -> bool {
    model
        .config()
        .is_some_and(|config| config.head.task == Task::Regression)
}

/// [`explain_batch`], telling `progress` what each chunk done advances a
/// progress count by: the sum of its inputs' progress
/// ([`ExplainInput::with_progress`]). Called from the worker threads.
pub fn explain_batch_with_progress<'w, T: Float>(
    model: &Model<T>,
    window: &'w [ExplainInput],
    method: Method<'_, T>,
    options: ReportOptions,
    progress: &(dyn Fn(u64) + Sync),
) -> Result<Vec<Report<'w>>, Error> {
    let regression = is_regression(model);
    in_chunks(model, window, |traced| {
        // A per-step head's traces look at the asked-for position.
        let traced: Vec<Traced<T>> = traced
            .into_iter()
            .map(|(k, trace)| match (trace, options.position) {
                (Ok(trace), Some(t)) => (k, trace.at_position(t)),
                (other, _) => (k, other),
            })
            .collect();
        // Failed inputs keep their error; the others are explained
        // together, one backward pass for the chunk.
        let requests: Vec<(&ForwardTrace<T>, usize)> = traced
            .iter()
            .filter_map(|(_, t)| t.as_ref().ok())
            .map(|t| (t, default_target(options, t, regression)))
            .collect();
        let mut found = model.attribute_batch(&requests, method).into_iter();
        let explained: Vec<(usize, Result<Report<'w>, Error>)> = traced
            .into_iter()
            .map(|(k, trace)| {
                let found = match &trace {
                    Ok(_) => found.next().expect("one attribution per trace"),
                    Err(e) => Err(e.clone()),
                };
                (k, explain_one(&window[k], trace, found, method, options, regression))
            })
            .collect();
        progress(explained.iter().map(|(k, _)| window[*k].progress).sum());
        explained
    })
    .into_iter()
    .collect()
}

/// The output to explain: `--target`, else the predicted class, else (a
/// regression head, whose largest output means nothing) output 0.
fn default_target<T: Float>(options: ReportOptions, trace: &ForwardTrace<T>, regression: bool) -> usize {
    match options.target {
        Some(k) => k,
        None if regression => 0,
        None => trace.predicted(),
    }
}

/// Attributes the target score of one item, given its forward pass.
fn explain_one<'a, T: Float>(
    item: &'a ExplainInput,
    trace: Result<ForwardTrace<T>, lrp_models::Error>,
    found: Result<lrp_models::Attribution<T>, lrp_models::Error>,
    method: Method<'_, T>,
    options: ReportOptions,
    regression: bool,
) -> Result<Report<'a>, Error> {
    let in_item = |e: lrp_models::Error| match &item.name {
        Some(name) if options.several => Error::Item {
            name: name.clone(),
            source: e,
        },
        _ => Error::Model(e),
    };
    let trace = trace.map_err(in_item)?;
    let target = default_target(options, &trace, regression);
    let found = found.map_err(in_item)?;
    let to_f64 = |v: &[T]| v.iter().map(|x| x.as_f64()).collect::<Vec<_>>();
    Ok(Report {
        line: item.line,
        name: if options.several { item.name.as_deref() } else { None },
        scores: to_f64(trace.scores().as_slice()),
        predicted: trace.predicted(),
        target,
        position: trace.position(),
        method: method.name(),
        token_relevance: to_f64(&found.per_position),
        initial_state_relevance: found.initial_state_relevance.map(|v| v.as_f64()),
        unexplained_relevance: found.unexplained_relevance.map(|v| v.as_f64()),
        input_relevance: if options.per_dimension {
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

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicU64, Ordering};

    use super::*;
    use crate::{load_model, MethodName, RuleOptions};

    #[test]
    fn a_batch_reports_in_input_order_as_each_input_alone() {
        let limits = lrp_io::Limits::default();
        let dir = load_model::<f64>(None, &limits).unwrap();
        let vocab = dir.vocab().unwrap();
        let long = ExplainInput::text(vocab, "a", "a gorgeous , witty film .", &limits).unwrap();
        let short = ExplainInput::text(vocab, "b", "dull", &limits)
            .unwrap()
            .with_line(7)
            .with_progress(5);
        let rules = RuleOptions::default().composite::<f64>().unwrap();
        let method = MethodName::Lrp.method(&rules, 50);
        let done = AtomicU64::new(0);
        let batch = [long.clone(), short.clone()];
        let reports = explain_batch_with_progress(&dir.model, &batch, method, ReportOptions::default(), &|n| {
            done.fetch_add(n, Ordering::Relaxed);
        })
        .unwrap();
        let lengths: Vec<usize> = reports.iter().map(|r| r.token_relevance.len()).collect();
        assert_eq!(lengths, [6, 1]);
        assert_eq!((reports[0].line, reports[1].line), (None, Some(7)));
        assert_eq!(done.load(Ordering::Relaxed), 1 + 5, "each input's progress, once");
        let alone = explain_batch(&dir.model, &batch[1..], method, ReportOptions::default()).unwrap();
        assert_eq!(alone[0].token_relevance, reports[1].token_relevance);
        assert_eq!(scores_batch(&dir.model, &batch).unwrap()[1], reports[1].scores);
    }

    #[test]
    fn a_failing_array_of_several_is_named() {
        let dir = load_model::<f64>(None, &lrp_io::Limits::default()).unwrap();
        let rules = RuleOptions::default().composite::<f64>().unwrap();
        let method = MethodName::Sa.method(&rules, 50);
        let wrong_width = ExplainInput::vectors(Some("x".into()), DMatrix::zeros(3, 2));
        let several = ReportOptions {
            several: true,
            ..ReportOptions::default()
        };
        let error = explain_batch(&dir.model, &[wrong_width], method, several).unwrap_err();
        assert!(matches!(&error, Error::Item { name, .. } if name == "x"), "{error}");
    }
}
