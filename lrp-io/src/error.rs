use std::path::PathBuf;

use crate::message::{shown, shown_path, thousands};
use crate::LimitKind;

/// What can go wrong reading model directories and input files. Every
/// message is one line: echoed names, paths and values are cut to 200
/// characters with control characters escaped.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A file could not be read.
    #[error("cannot read {}: {source}", shown_path(path))]
    Read {
        /// The file.
        path: PathBuf,
        /// The operating system's reason.
        source: std::io::Error,
    },
    /// A path names a device, FIFO, socket or directory where a file is
    /// expected (such a "file" may never end, or never answer).
    #[error("cannot read {}: it is a {found}, not a regular file", shown_path(path))]
    NotRegularFile {
        /// The path.
        path: PathBuf,
        /// What it is instead (`directory`, `FIFO`, `character device` ...).
        found: &'static str,
    },
    /// An input exceeds one of the [`Limits`](crate::Limits).
    #[error("{}{}: more than the {} {kind} allowed (raise the limit with {})", shown_path(path), at_line(*line), thousands(*limit as usize), kind.flag())]
    Limit {
        /// The file (`-` for standard input).
        path: PathBuf,
        /// The line (1-based) for a limit on one line of a text input.
        line: Option<usize>,
        /// Which limit.
        kind: LimitKind,
        /// Its value.
        limit: u64,
    },
    /// Explaining an input would cost more than one of the
    /// [`Limits`](crate::Limits) on cost allows
    /// ([`Limits::check_cost`](crate::Limits::check_cost)).
    #[error("{}: explaining it needs about {} {kind}, more than the {} allowed (raise the limit with {})", shown(input), thousands(*needed as usize), thousands(*limit as usize), kind.flag())]
    Cost {
        /// What is explained: a file, `TEXT`, an array or a line of a file.
        input: String,
        /// Which limit: [`LimitKind::MemoryBytes`] or [`LimitKind::Work`].
        kind: LimitKind,
        /// The estimate.
        needed: u64,
        /// The limit.
        limit: u64,
    },
    /// An output file could not be written.
    #[error("cannot write {}: {source}", shown_path(path))]
    Write {
        /// The file.
        path: PathBuf,
        /// The operating system's reason.
        source: std::io::Error,
    },
    /// An output path names one of the run's inputs, which writing would
    /// replace ([`refuse_output_over_input`](crate::refuse_output_over_input)).
    #[error(
        "cannot write {} ({flag}): it is the same file as {input}, an input of this run",
        shown_path(path)
    )]
    OutputIsInput {
        /// The output path.
        path: PathBuf,
        /// Its flag (`--out`, `--plot` ...).
        flag: String,
        /// The input it names (`--data`, `the model's weights` ...).
        input: String,
    },
    /// The output path names something other than a regular file, which
    /// writing would replace.
    #[error(
        "cannot write {}: it is a {found}; only a regular file is replaced",
        shown_path(path)
    )]
    NotRegularOutput {
        /// The path.
        path: PathBuf,
        /// What it is (`symbolic link`, `directory`, `character device` ...).
        found: &'static str,
    },
    /// The output directory names something other than a directory (a
    /// symbolic link, even to a directory, a file, a device): writing into
    /// it would write somewhere else than it says.
    #[error(
        "cannot write into {}: it is a {found}; only a directory (or nothing, which is created) is written into",
        shown_path(path)
    )]
    NotDirectoryOutput {
        /// The path.
        path: PathBuf,
        /// What it is (`symbolic link`, `regular file`, `FIFO` ...).
        found: &'static str,
    },
    /// `config.json` is not valid JSON or not a valid config.
    #[error("{}: {}", shown_path(path), shown(message))]
    Config {
        /// The config file.
        path: PathBuf,
        /// What is wrong, with line and column where JSON gives them.
        message: String,
    },
    /// A path in the config points outside the model directory.
    #[error(
        "config: {key} = {:?} must be a file name inside the model directory (no absolute paths, no '..')",
        shown(value)
    )]
    UnsafePath {
        /// The config key (`weights`, `vocab`).
        key: &'static str,
        /// The offending value.
        value: String,
    },
    /// A path in the config resolves, through symbolic links, to a file
    /// outside the model directory.
    #[error(
        "config: {key} = {:?} resolves to {}, outside the model directory",
        shown(value),
        shown_path(resolved)
    )]
    OutsideModelDir {
        /// The config key (`weights`, `vocab`).
        key: &'static str,
        /// The value in the config.
        value: String,
        /// Where it leads.
        resolved: PathBuf,
    },
    /// A file is malformed.
    #[error("{}: {}", shown_path(path), shown(message))]
    Format {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
    /// An archive or weights file holds two arrays or tensors of one name.
    #[error("{}: the name {:?} appears twice", shown_path(path), shown(name))]
    DuplicateName {
        /// The file.
        path: PathBuf,
        /// The repeated name.
        name: String,
    },
    /// A CSV file of time series is malformed at one line: its header,
    /// one of its rows, or one cell of a row.
    #[error("{}{}{}: {}", shown_path(path), at_line(Some(*line)), in_column(column.as_deref()), shown(message))]
    Csv {
        /// The file.
        path: PathBuf,
        /// The line (1-based) of the row, or where the problem starts.
        line: usize,
        /// The header's name of the cell's column, for a problem in one cell.
        column: Option<String>,
        /// What is wrong.
        message: String,
    },
    /// An array or tensor has an element type lrp does not read.
    #[error(
        "{}: {} has element type {}; only {supported} are supported",
        shown_path(path),
        shown(name),
        shown(dtype)
    )]
    Dtype {
        /// The element types read there (`"float32 and float64"`).
        supported: &'static str,
        /// The file.
        path: PathBuf,
        /// The array or tensor.
        name: String,
        /// Its element type as the file names it.
        dtype: String,
    },
    /// An input array does not have the shape `[T, E]` with `T, E >= 1`.
    #[error(
        "{}: array {} has shape {found:?}; input vectors must be 2-D [T, E] with T >= 1 and E >= 1",
        shown_path(path),
        shown(name)
    )]
    InputShape {
        /// The file.
        path: PathBuf,
        /// The array.
        name: String,
        /// Its shape.
        found: Vec<u64>,
    },
    /// The vocabulary does not match the embedding.
    #[error("{}: {found} tokens, but the config says vocab_size = {expected}", shown_path(path))]
    VocabSize {
        /// The vocabulary file.
        path: PathBuf,
        /// `vocab_size`.
        expected: usize,
        /// Lines in the file.
        found: usize,
    },
    /// The model reads text but has no vocabulary file.
    #[error("the model has no vocab file (config key \"vocab\"), so it cannot read text; give --vectors")]
    NoVocab,
    /// The config's unknown-token is not in the vocabulary.
    #[error("unk_token {:?} is not in the vocabulary", shown(token))]
    UnkNotInVocab {
        /// The token.
        token: String,
    },
    /// A word is not in the vocabulary and the model has no unknown token.
    #[error(
        "word {:?} (position {position}) is not in the vocabulary, and the model's config names no unk_token",
        shown(word)
    )]
    UnknownWord {
        /// The word.
        word: String,
        /// Its position in the token sequence.
        position: usize,
    },
    /// An imported graph holds a node, or a use of one, that lrp does not
    /// translate.
    #[error(
        "{}: unsupported node {} {:?}: {}",
        shown_path(path),
        shown(op),
        shown(name),
        shown(reason)
    )]
    Unsupported {
        /// The graph file.
        path: PathBuf,
        /// The node's operator (`Softmax`, `LSTM` ...).
        op: String,
        /// The node's name in the graph.
        name: String,
        /// Why it cannot be translated.
        reason: String,
    },
    /// The model directory describes an invalid model.
    #[error("{}: {source}", shown_path(dir))]
    Model {
        /// The model directory.
        dir: PathBuf,
        /// What the model builder found.
        source: lrp_models::Error,
    },
}

/// `, column "name"` for a message about one cell.
fn in_column(column: Option<&str>) -> String {
    column
        .map(|name| format!(", column {:?}", shown(name)))
        .unwrap_or_default()
}

/// `, line 12` for a message about one line.
fn at_line(line: Option<usize>) -> String {
    line.map(|n| format!(", line {}", thousands(n))).unwrap_or_default()
}
