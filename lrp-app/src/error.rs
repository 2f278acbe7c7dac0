//! What the application layer reports.

/// Everything explaining through this crate can fail with, and what a
/// front end reports: each is one line (see [`crate::error_line`]).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// Reading a model or input file.
    #[error(transparent)]
    Io(#[from] lrp_io::Error),
    /// Running or explaining the model.
    #[error(transparent)]
    Model(#[from] lrp_models::Error),
    /// Running or explaining one array of a batch.
    #[error("array {name}: {source}")]
    Item {
        /// The array's name in the npz archive.
        name: String,
        /// What went wrong.
        source: lrp_models::Error,
    },
    /// A rule parameter.
    #[error(transparent)]
    Rule(#[from] lrp_core::Error),
    /// A value of one of the named options ([`crate::Choice`]) that is
    /// none of its names.
    #[error("invalid value '{value}' for {option} [possible values: {possible}]")]
    Choice {
        /// The option (`method`, `precision`).
        option: String,
        /// The value given, printable and cut to 200 characters.
        value: String,
        /// The option's names, comma-separated.
        possible: String,
    },
    /// A combination of options, or an input, that makes no sense.
    #[error("{0}")]
    Usage(String),
    /// Writing the output.
    #[error("cannot write the output: {0}")]
    Output(#[from] std::io::Error),
}

impl Error {
    /// Whether it is a write to a closed pipe (`lrp explain ... | head`),
    /// which a command ends on quietly.
    pub fn is_broken_pipe(&self) -> bool {
        matches!(self, Error::Output(e) if e.kind() == std::io::ErrorKind::BrokenPipe)
    }
}
