use std::path::PathBuf;

/// What can go wrong reading model directories and input files.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A file could not be read.
    #[error("cannot read {}: {source}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// The operating system's reason.
        source: std::io::Error,
    },
    /// An output file could not be written.
    #[error("cannot write {}: {source}", path.display())]
    Write {
        /// The file.
        path: PathBuf,
        /// The operating system's reason.
        source: std::io::Error,
    },
    /// `config.json` is not valid JSON or not a valid config.
    #[error("{}: {message}", path.display())]
    Config {
        /// The config file.
        path: PathBuf,
        /// What is wrong, with line and column where JSON gives them.
        message: String,
    },
    /// A path in the config points outside the model directory.
    #[error("config: {key} = {value:?} must be a file name inside the model directory (no absolute paths, no '..')")]
    UnsafePath {
        /// The config key (`weights`, `vocab`).
        key: &'static str,
        /// The offending value.
        value: String,
    },
    /// A file is malformed.
    #[error("{}: {message}", path.display())]
    Format {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
    /// An array or tensor has an element type lrp does not read.
    #[error("{}: {name} has element type {dtype}; only float32 and float64 are supported", path.display())]
    Dtype {
        /// The file.
        path: PathBuf,
        /// The array or tensor.
        name: String,
        /// Its element type as the file names it.
        dtype: String,
    },
    /// An input array does not have the shape `[T, E]`.
    #[error("{}: array {name} has shape {found:?}; input vectors must be 2-D [T, E]", path.display())]
    InputShape {
        /// The file.
        path: PathBuf,
        /// The array.
        name: String,
        /// Its shape.
        found: Vec<u64>,
    },
    /// The vocabulary does not match the embedding.
    #[error("{}: {found} tokens, but the config says vocab_size = {expected}", path.display())]
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
    #[error("unk_token {token:?} is not in the vocabulary")]
    UnkNotInVocab {
        /// The token.
        token: String,
    },
    /// A word is not in the vocabulary and the model has no unknown token.
    #[error("word {word:?} (position {position}) is not in the vocabulary, and the model's config names no unk_token")]
    UnknownWord {
        /// The word.
        word: String,
        /// Its position in the token sequence.
        position: usize,
    },
    /// The model directory describes an invalid model.
    #[error("{}: {source}", dir.display())]
    Model {
        /// The model directory.
        dir: PathBuf,
        /// What the model builder found.
        source: lrp_models::Error,
    },
}

pub(crate) fn read_file(path: &std::path::Path) -> Result<Vec<u8>, Error> {
    std::fs::read(path).map_err(|source| Error::Read {
        path: path.to_path_buf(),
        source,
    })
}
