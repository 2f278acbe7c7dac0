//! The application layer of lrp: what a front end needs to explain
//! recurrent models beyond the library crates, shared by the `lrp` command
//! (`lrp-cli`) and the Python package (`lrp-py`) so that both give the same
//! numbers for the same options. It sits on `lrp-io` (files, text) and
//! `lrp-models` (models and their explainers); the front ends above it keep
//! only their own concerns: argument parsing, rendering, exit codes,
//! signals and progress bars. [`explain_batch`] and [`scores_batch`] run a
//! batch of [`ExplainInput`]s on all cores into [`Report`]s, the JSON form
//! of an explanation ([`StepReport`] for an encoder–decoder's output step);
//! [`RuleOptions`], [`MethodName`] and [`Precision`] are the options, plain
//! values whose defaults are `lrp explain`'s; [`load_model`] reads a model
//! directory or the built-in SST model; every failure is one [`Error`],
//! which [`error_line`] words as one line ([`internal_error`] a panic).
//!
//! Explaining a sentence with the built-in model, under rules that
//! conserve the score (bias factor 1, epsilon 0):
//!
//! ```
//! use lrp_app::{explain_batch, load_model, ExplainInput, MethodName, ReportOptions, RuleOptions};
//!
//! let limits = lrp_io::Limits::default();
//! let dir = load_model::<f64>(None, &limits)?;
//! let sentence = ExplainInput::text(dir.vocab()?, "TEXT", "a gorgeous , witty film .", &limits)?;
//! let options = RuleOptions { eps: 0.0, bias_factor: 1.0, ..RuleOptions::default() };
//! let rules = options.composite::<f64>()?;
//! let method = MethodName::Lrp.method(&rules, 50);
//! let batch = [sentence];
//! let reports = explain_batch(&dir.model, &batch, method, ReportOptions::default())?;
//! let report = &reports[0];
//! assert_eq!((report.scores.len(), report.token_relevance.len()), (5, 6));
//! // The score explained is all accounted for: by the words, the initial
//! // states and the zero denominators.
//! let score = report.scores[report.target];
//! let accounted = report.token_relevance.iter().sum::<f64>()
//!     + report.initial_state_relevance.unwrap()
//!     + report.unexplained_relevance.unwrap();
//! assert!((accounted - score).abs() <= 1e-9 * score.abs());
//! // Its JSON form is the line `lrp explain --format json` prints.
//! let line = serde_json::to_string(report)?;
//! assert!(line.starts_with(r#"{"scores":["#) && line.contains(r#""tokens":["a","gorgeous","#));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

#![deny(missing_docs)]

mod batch;
mod error;
mod message;
mod model;
mod options;
mod seq2seq;

pub use batch::{
    explain_batch, explain_batch_with_progress, is_regression, scores_batch, ExplainInput, Report, ReportOptions,
};
pub use error::Error;
pub use message::{error_line, internal_error};
pub use model::{builtin_config, load_model};
pub use options::{class_index, Choice, MethodName, Precision, RuleOptions};
pub use seq2seq::{explain_seq2seq, target_ids, Seq2SeqOptions, Seq2SeqWords, StepReport};
