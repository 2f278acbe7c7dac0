/// What can go wrong at the level of rules and relevance buffers.
#[derive(Debug, thiserror::Error, Clone, PartialEq)]
#[non_exhaustive]
pub enum Error {
    /// A buffer or tensor does not have the shape an operation needs.
    #[error("{what}: expected shape {expected:?}, found {found:?}")]
    ShapeMismatch {
        /// What was being checked, e.g. `"input vectors"`.
        what: String,
        /// The shape that was needed.
        expected: Vec<usize>,
        /// The shape that was given.
        found: Vec<usize>,
    },
    /// A position past the end of a relevance board.
    #[error("position {position} is out of range: the sequence has {len} positions")]
    PositionOutOfRange {
        /// The position asked for.
        position: usize,
        /// Number of positions.
        len: usize,
    },
    /// A rule parameter is outside the range where the rule is defined.
    #[error("invalid value {value} for {name}: {reason}")]
    InvalidParameter {
        /// The parameter's name, e.g. `"eps"`.
        name: &'static str,
        /// The value that was given.
        value: f64,
        /// Why it is rejected.
        reason: &'static str,
    },
    /// A rule, gate rule or composite name that does not exist.
    #[error("unknown {what} {name:?}; known: {known}")]
    UnknownName {
        /// What kind of name (`"rule"`, `"gate rule"`, `"composite"`).
        what: &'static str,
        /// The name given.
        name: String,
        /// The names that exist, comma-separated.
        known: String,
    },
    /// A part of a rule specification (`--rules`, or a preset written in
    /// that syntax) that is not understood.
    #[error("bad rule specification {part:?}: {reason}")]
    BadRuleSpec {
        /// The part that is not understood, as given.
        part: String,
        /// What is wrong with it.
        reason: &'static str,
    },
}
