/// What can go wrong when building a model or explaining with it.
#[derive(Debug, thiserror::Error, Clone, PartialEq)]
#[non_exhaustive]
pub enum Error {
    /// A sequence is too short for a stage that shortens sequences (a
    /// convolution or pooling window longer than it).
    #[error("input: a sequence of {length} positions is too short for stage {stage} of {stages} ({name}), which would leave no position")]
    TooShort {
        /// The sequence's length.
        length: usize,
        /// The stage, counted from 1.
        stage: usize,
        /// The number of stages.
        stages: usize,
        /// The stage in messages.
        name: String,
    },
    /// A configuration key has a value the models do not support.
    #[error("config: {key}: {message}")]
    Config {
        /// The key, dotted (`encoder.hidden_size`).
        key: String,
        /// What is wrong with it.
        message: String,
    },
    /// The stages of a model do not fit together ([`crate::ModelBuilder`]):
    /// a stage does not read what the stage before it writes, or the
    /// chain does not end in a head.
    #[error("model: stage {stage} of {stages} ({name}) {problem}")]
    StagesDoNotFit {
        /// The stage's place in the chain, 1 for the first after the input
        /// (an embedding is not counted).
        stage: usize,
        /// Number of stages.
        stages: usize,
        /// The stage's name ([`crate::Stage::name`]).
        name: String,
        /// What does not fit (`"reads 5 values per position; the stage
        /// before it writes 6 values per position"`).
        problem: String,
    },
    /// A stage wrote a matrix of another shape than its [`crate::Port`]
    /// says: a bug in that stage. The batch it ran on fails.
    #[error("model: stage {stage} of {stages} ({name}) wrote a {rows}x{columns} matrix in its {pass}; its ports promise {expected_rows}x{expected_columns}")]
    StageShape {
        /// The stage's place in the chain, 1 for the first after the input.
        stage: usize,
        /// Number of stages.
        stages: usize,
        /// The stage's name ([`crate::Stage::name`]).
        name: String,
        /// `"forward pass"` (its output), `"lrp"` or `"gradient"` (what it
        /// sent to its input).
        pass: &'static str,
        /// Rows written.
        rows: usize,
        /// Columns written.
        columns: usize,
        /// Rows its port says (the output's width, or the input's for a
        /// backward pass).
        expected_rows: usize,
        /// Columns its port says (positions or sequences of the batch).
        expected_columns: usize,
    },
    /// Tensors the architecture needs are not in the weights.
    #[error("weights: missing tensors: {}", summary(names))]
    MissingTensors {
        /// The missing names.
        names: Vec<String>,
    },
    /// The weights hold tensors the architecture does not use.
    #[error(
        "weights: unexpected tensors (the config describes another model?): {}",
        summary(names)
    )]
    UnexpectedTensors {
        /// The unused names.
        names: Vec<String>,
    },
    /// A tensor has the wrong shape.
    #[error("weights: tensor {name}: expected shape {expected:?}, found {found:?}")]
    TensorShape {
        /// Tensor name.
        name: String,
        /// Shape the config implies.
        expected: Vec<usize>,
        /// Shape in the file.
        found: Vec<usize>,
    },
    /// A tensor holds NaN or an infinity.
    #[error("weights: tensor {name} holds a non-finite value ({value}) at flat index {index}")]
    NonFiniteWeight {
        /// Tensor name.
        name: String,
        /// Flat row-major index.
        index: usize,
        /// The value.
        value: f64,
    },
    /// The input vectors have the wrong width.
    #[error("input: vectors have {found} dimensions per position, the model reads {expected}")]
    InputWidth {
        /// The model's input size `E`.
        expected: usize,
        /// The width given.
        found: usize,
    },
    /// The input sequence has no positions.
    #[error("input: the sequence is empty (at least one position is needed)")]
    EmptySequence,
    /// An input value is NaN or infinite.
    #[error("input: non-finite value {value} at position {position}, dimension {dimension}")]
    NonFiniteInput {
        /// Position `t`.
        position: usize,
        /// Dimension `e`.
        dimension: usize,
        /// The value.
        value: f64,
    },
    /// Token ids were given to a model without an embedding.
    #[error("input: this model has no embedding; give vectors, not tokens")]
    NoEmbedding,
    /// A token id is past the end of the embedding.
    #[error("input: token id {id} at position {position} is outside the vocabulary of {vocab_size}")]
    TokenOutOfRange {
        /// Position.
        position: usize,
        /// The id.
        id: usize,
        /// Embedding rows.
        vocab_size: usize,
    },
    /// The explained class does not exist.
    #[error("target class {target} does not exist: the model has {}", class_range(*.classes))]
    TargetOutOfRange {
        /// The requested target.
        target: usize,
        /// Number of classes.
        classes: usize,
    },
    /// The forward pass overflowed to a non-finite score (f32 with huge inputs).
    #[error("numerics: the forward pass produced a non-finite score ({value}); inputs or weights are too large for this precision")]
    NonFiniteScore {
        /// The score.
        value: f64,
    },
    /// A pass overflowed (f32 with huge inputs or weights).
    #[error("numerics: the {pass} produced a non-finite value; inputs or weights are too large for this precision (try f64)")]
    NonFiniteResult {
        /// `"forward pass"` or `"gradient"`.
        pass: &'static str,
    },
    /// An attribution came out NaN or infinite: the input's values are too
    /// small or too large for the method's rules in this precision.
    #[error("{}", non_finite_message(.method, .stage, .rules, *.position))]
    NonFiniteRelevance {
        /// The method (`"lrp"`, `"sa"`, `"gi"`, `"occlusion"`, `"ig"`).
        method: &'static str,
        /// Where it was first seen: `"the head"`, `"the attention pooling"`,
        /// `"layer 1 of 2"`, ... for LRP; `"result"` for the other methods.
        stage: String,
        /// For LRP, the rules of that stage (`"zplus (projection), epsilon
        /// (accumulation), prop (gates)"`); empty otherwise.
        rules: String,
        /// The first sequence position holding a non-finite value, when the
        /// value belongs to a position.
        position: Option<usize>,
    },
    /// A trace was explained with a model other than the one that made it
    /// (traces carry the fingerprint of their model's configuration and
    /// weights).
    #[error("trace: this trace was made by another model (a trace can only be explained by the model whose forward pass made it, or an identical copy)")]
    TraceFromAnotherModel,
    /// Integrated gradients with a number of steps outside `1..=max`.
    #[error("integrated gradients: {steps} steps is out of range: use 1 to {max}")]
    StepsOutOfRange {
        /// The steps asked for.
        steps: usize,
        /// The largest number supported ([`crate::Method::MAX_IG_STEPS`]).
        max: usize,
    },
    /// A position past the end of a sequence (a deletion order naming a
    /// position the input does not have).
    #[error("position {position} is out of range: the sequence has {len} positions")]
    PositionOutOfRange {
        /// The position.
        position: usize,
        /// Number of positions.
        len: usize,
    },
    /// An output position asked of a model whose head gives one output per
    /// sequence.
    #[error("position: this model's head gives one output per sequence; an output position needs a per-step head (\"head\": {{\"input\": \"each\"}})")]
    NotPerStep,
    /// A deletion curve of more deletions than supported.
    #[error("deletion curve: {deletions} deletions is out of range: use 0 to {max}")]
    DeletionsOutOfRange {
        /// The deletions asked for.
        deletions: usize,
        /// The largest number supported ([`crate::faithfulness::MAX_DELETIONS`]).
        max: usize,
    },
    /// A part of a layer built in code does not fit the rest of it (a
    /// bias of another length than the weight's rows, an attention of
    /// another width than the encoder's output).
    #[error("shape: {part} is {found:?}; it must be {expected:?}")]
    PartShape {
        /// The part, and what it belongs to (`"the bias of a linear layer
        /// of weight [2, 3]"`).
        part: String,
        /// The shape the rest of the layer implies.
        expected: Vec<usize>,
        /// The shape given.
        found: Vec<usize>,
    },
    /// A tensor's values do not fill its shape.
    #[error("tensor: {found} values do not fill a matrix of shape {shape:?}")]
    ValueCount {
        /// The shape asked for.
        shape: Vec<usize>,
        /// The values given.
        found: usize,
    },
    /// A range of positions that is not within a sequence.
    #[error("span {start}..{end} is not within the sequence's {len} positions (0..{len})")]
    SpanOutOfRange {
        /// The first position of the span.
        start: usize,
        /// One past its last position.
        end: usize,
        /// Number of positions.
        len: usize,
    },
    /// A rule-level error (a rule parameter out of range).
    #[error(transparent)]
    Rule(#[from] lrp_core::Error),
}

/// The first few names of a list, each cut to 100 characters with control
/// characters escaped, and how many more there are: a weights file may
/// hold half a million names, and any bytes in them.
fn summary(names: &[String]) -> String {
    const SHOWN: usize = 10;
    let mut out: Vec<String> = names
        .iter()
        .take(SHOWN)
        .map(|name| lrp_core::printable(name, 100))
        .collect();
    if names.len() > SHOWN {
        out.push(format!("and {} more", lrp_core::thousands(names.len() - SHOWN)));
    }
    out.join(", ")
}

/// `"5 classes (0 to 4)"`, `"1 class (0)"`.
fn class_range(classes: usize) -> String {
    match classes {
        0 => "no classes".into(),
        1 => "1 class (0)".into(),
        c => format!("{c} classes (0 to {})", c - 1),
    }
}

/// The message of [`Error::NonFiniteRelevance`].
fn non_finite_message(method: &str, stage: &str, rules: &str, position: Option<usize>) -> String {
    let at = match position {
        Some(p) => format!(" at position {p}"),
        None => String::new(),
    };
    let (after, these) = if rules.is_empty() {
        (String::new(), "this method")
    } else {
        (format!(" after {stage} (rules: {rules})"), "these rules")
    };
    format!(
        "numerics: {method} relevance is not finite{at}{after}; the input's values are too small or too large for {these} in this precision"
    )
}
