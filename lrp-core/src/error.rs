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
    /// An entry of a rule specification that selects none of the model's
    /// sites (of its kind: linear steps for a linear rule, products for a
    /// gate rule).
    #[error("rule entry {entry:?} selects no site of this model; its sites: {sites}")]
    RuleSelectsNoSite {
        /// The entry, as given.
        entry: String,
        /// The model's sites of that kind, comma-separated (a capped list).
        sites: String,
    },
    /// An entry of a rule specification that can never apply: earlier
    /// entries (the first that selects a site wins) take every site it
    /// selects.
    #[error("rule entry {entry:?} never applies: {earlier} take every site it selects ({sites})")]
    RuleNeverApplies {
        /// The entry, as given.
        entry: String,
        /// The earlier entries that take its sites, as given.
        earlier: String,
        /// The sites it selects, comma-separated (a capped list).
        sites: String,
    },
}
