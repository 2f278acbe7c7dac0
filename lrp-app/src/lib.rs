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
//! Explaining a sentence with the built-in model:
//!
//! ```
//! use lrp_app::{explain_batch, load_model, ExplainInput, MethodName, ReportOptions, RuleOptions};
//!
//! let limits = lrp_io::Limits::default();
//! let dir = load_model::<f64>(None, &limits)?;
//! let sentence = ExplainInput::text(dir.vocab()?, "TEXT", "a gorgeous , witty film .", &limits)?;
//! let rules = RuleOptions::default().composite::<f64>()?;
//! let method = MethodName::Lrp.method(&rules, 50);
//! let reports = explain_batch(&dir.model, &[sentence], method, ReportOptions::default())?;
//! let report = &reports[0];
//! assert_eq!(report.token_relevance.len(), 6);
//! assert_eq!(report.scores.len(), 5);
//! // With bias factor 0, the positions' relevance and what reached the
//! // initial states add up to at most the explained score.
//! let explained: f64 = report.token_relevance.iter().sum::<f64>() + report.initial_state_relevance.unwrap();
//! assert!(explained.is_finite());
//! // The line `lrp explain --format json` prints for it.
//! let line = serde_json::to_string(report)?;
//! assert!(line.starts_with("{\"scores\":["));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

#![deny(missing_docs)]

mod batch;
mod error;
mod message;
mod model;
mod options;
mod seq2seq;

pub use batch::{explain_batch, explain_batch_with_progress, scores_batch, ExplainInput, Report, ReportOptions};
pub use error::Error;
pub use message::{error_line, internal_error};
pub use model::load_model;
pub use options::{class_index, Choice, MethodName, Precision, RuleOptions};
pub use seq2seq::{target_ids, StepReport};
