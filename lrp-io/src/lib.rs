//! File formats for lrp: model directories and input vectors.
//!
//! A model directory (`docs/model-format.md`) is `config.json`, a weights file
//! (`.safetensors` for layout `pytorch`, `.npz` for layout `reference`; f32
//! or f64) and optionally `vocab.txt`. [`load_model`] reads one into an
//! `lrp_models::Model` plus its [`Vocab`]; the readers turn every file into
//! `lrp_models::Tensors`, so the models never see a file format. Input
//! vectors come from `.npy` (one sequence `[T, E]`) or `.npz` (many, in
//! archive order) through [`read_sequences`].
//!
//! Every reader treats its file as untrusted: sizes are checked against the
//! file's length before anything is allocated from them, and paths named in
//! a config cannot leave the model directory.
#![deny(missing_docs)]

mod error;
mod labelled;
mod model_dir;
mod npy;
mod output;
mod safetensors_file;
mod text;

pub use error::Error;
pub use labelled::{read_labelled, LabelledSentence};
pub use model_dir::{load_model, model_from_parts, parse_config, ModelDir};
pub use npy::{parse_sequences, read_sequences, Sequence};
pub use output::write_atomically;
pub use text::{tokenize, Vocab};
