//! File formats for lrp: model directories and input vectors.
//!
//! A model directory (`docs/model-format.md`) is `config.json`, a weights file
//! (`.safetensors` for layout `pytorch`, `.npz` for layout `reference`; f32
//! or f64) and optionally `vocab.txt`. [`load_model`] reads one into an
//! `lrp_models::Model` plus its [`Vocab`]; the readers turn every file into
//! `lrp_models::Tensors`, so the models never see a file format. Input
//! vectors come from `.npy` (one sequence `[T, E]`) or `.npz` (many, in
//! archive order) through [`read_sequences`], or from a CSV file of time
//! series (a header naming the channels, one row per time step, optionally
//! many series) through [`open_csv`].
//!
//! Every reader treats its file as untrusted: it reads only regular files,
//! through one capped reader ([`read_file_capped`]); every size in a file is
//! checked against the [`Limits`] and the file's length before anything is
//! allocated from it; paths named in a config cannot leave the model
//! directory, even through symbolic links; and every error is one line,
//! its echoed values cut short and escaped.
#![deny(missing_docs)]

mod csv_input;
mod error;
mod hugging_face;
mod labelled;
mod limits;
mod message;
mod model_dir;
mod npy;
pub mod onnx;
mod output;
mod read;
mod safetensors_file;
mod seq2seq;
mod text;
mod text_input;

pub use csv_input::{open_csv, CsvSeries, Series};
pub use error::Error;
pub use hugging_face::{hugging_face_config, is_hugging_face, HfTokenizer, HuggingFaceConfig};
pub use labelled::{read_labelled, read_labelled_with, LabelledSentence};
pub use limits::{LimitKind, Limits};
/// Re-exported from `lrp-core`, where every crate that echoes input finds it.
pub use lrp_core::printable;
pub use model_dir::{
    load_model, load_model_with, model_files, model_from_parts, model_from_parts_with, model_from_tensors,
    parse_config, read_model_parts, read_weights, stage_model_dir, ModelDir, ModelParts, StagedModelDir,
};
pub use npy::{
    open_sequences, parse_sequences, parse_sequences_with, read_sequences, read_sequences_with, Sequence, Sequences,
};
pub use output::{refuse_output_over_input, remove_pending_temporary_files, write_atomically, AtomicFile};
pub use read::{read_file_capped, read_stdin_capped};
pub use seq2seq::{is_seq2seq, load_seq2seq, Seq2SeqDir};
pub use text::{tokenize, Vocab};
pub use text_input::{read_text, read_text_lines, split_within, tokenize_lines, tokenize_within, TextLines};
