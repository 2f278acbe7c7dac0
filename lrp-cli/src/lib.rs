//! The `lrp` command as a library: [`run`] parses arguments and writes to
//! the given streams, so tests drive exactly what the binary does.
//!
//! `lrp explain` runs a model directory on input vectors
//! or text and prints, as JSON, the scores and the relevance of every
//! position (LRP) or a gradient baseline (SA, gradient x input).
//!
//! The JSON keys and flags are a contract that scripts depend on (README,
//! "CLI contract"); extend, never rename. Every failure is one line on
//! stderr and a non-zero exit; a panic is caught and reported the same way.

#![deny(missing_docs)]

mod default_model;
mod eval;
mod explain;
mod faithfulness;
mod limits;
mod message;
mod model_info;
mod render;

pub use limits::{ByteSize, LimitArgs};

use std::io::Write;
use std::path::PathBuf;

use clap::{Parser, Subcommand, ValueEnum};
pub use model_info::{InfoFormat, ModelInfoArgs};

/// Explain recurrent neural network predictions with Layer-wise Relevance Propagation.
#[derive(Debug, Parser)]
#[command(name = "lrp", version, about)]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Explain a model's prediction for text or input vectors.
    Explain(Box<ExplainArgs>),
    /// Accuracy of a model on labelled sentences (SST trees or `label<TAB>text` lines).
    Eval(EvalArgs),
    /// Word deletion curves (Arras et al. 2017): how fast each method's most relevant words change the prediction.
    Perturb(Box<PerturbArgs>),
    /// Ground truth (Arras et al. 2019): how often each method finds the two positions that matter.
    Groundtruth(Box<GroundtruthArgs>),
    /// A model's architecture and the tensors (names, shapes) its weights file must hold.
    ModelInfo(ModelInfoArgs),
}

/// How to attribute the score.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum MethodName {
    /// Layer-wise Relevance Propagation (rules from --composite, --rule, --gate-rule).
    Lrp,
    /// Sensitivity analysis: ||d s / d x_t||^2 per position.
    Sa,
    /// Gradient x input: sum_e x_te d s / d x_te per position.
    Gi,
    /// Occlusion: s(x) - s(x with x_t = 0) per position.
    Occlusion,
    /// Integrated gradients from the zero baseline (--steps).
    Ig,
}

/// Output format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Format {
    /// `text` when printing text input to a terminal, else `json`.
    Auto,
    /// One JSON object per input (JSON Lines for several).
    Json,
    /// The sentence coloured by relevance (plain when not a terminal or NO_COLOR is set).
    Text,
    /// A standalone HTML page with the heatmap (use with --out).
    Html,
}

/// Arithmetic precision.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Precision {
    /// 64-bit floats (exact checks).
    F64,
    /// 32-bit floats (throughput).
    F32,
}

/// Arguments of `lrp explain`.
#[derive(Debug, clap::Args)]
#[command(group(clap::ArgGroup::new("source").required(true).args(["sentence", "text", "vectors", "input"])))]
pub struct ExplainArgs {
    /// Text to explain (with the default model, or a model with a vocabulary).
    #[arg(value_name = "TEXT", conflicts_with_all = ["text", "vectors", "input"])]
    pub sentence: Option<String>,
    /// Model directory (config.json, weights, optional vocab.txt); default: the built-in SST model.
    #[arg(long, value_name = "DIR")]
    pub model: Option<PathBuf>,
    /// Input vectors: `.npy` `[T, E]` (one object) or `.npz` of many arrays (JSON Lines, archive order).
    #[arg(long, value_name = "FILE", conflicts_with_all = ["text", "input"])]
    pub vectors: Option<PathBuf>,
    /// Input text (models with an embedding and a vocabulary).
    #[arg(long, value_name = "TEXT", conflicts_with = "input")]
    pub text: Option<String>,
    /// A file of texts, one a line (blank lines skipped): JSON Lines in input order.
    #[arg(long, value_name = "FILE")]
    pub input: Option<PathBuf>,
    /// Class to explain (default: the predicted class).
    #[arg(long, value_name = "K")]
    pub target: Option<usize>,
    /// Attribution method.
    #[arg(long, value_enum, default_value_t = MethodName::Lrp)]
    pub method: MethodName,
    /// The LRP rules.
    #[command(flatten)]
    pub rules: RuleArgs,
    /// Steps of integrated gradients (>= 1).
    #[arg(long, value_name = "M", default_value_t = 50)]
    pub steps: usize,
    /// Also print `input_relevance` `[T][E]`.
    #[arg(long)]
    pub per_dimension: bool,
    /// Output format.
    #[arg(long, value_enum, default_value_t = Format::Auto)]
    pub format: Format,
    /// Arithmetic precision.
    #[arg(long, value_enum, default_value_t = Precision::F64)]
    pub precision: Precision,
    /// Write the output to FILE (atomically: complete or not at all) instead of stdout.
    #[arg(long, value_name = "FILE")]
    pub out: Option<PathBuf>,
    /// Limits on untrusted input.
    #[command(flatten)]
    pub limits: LimitArgs,
}

/// The flags that choose LRP rules (shared by every command that explains).
#[derive(Debug, Clone, clap::Args)]
pub struct RuleArgs {
    /// LRP rule preset: epsilon, epsilon-flat, epsilon-wsquare, zplus, alpha2-beta1, gamma.
    #[arg(long, value_name = "NAME", default_value = "epsilon", conflicts_with = "rule")]
    pub composite: String,
    /// One LRP rule for every linear step: epsilon, zplus, gamma, alpha-beta, wsquare, flat.
    #[arg(long, value_name = "NAME")]
    pub rule: Option<String>,
    /// Rule for gate x signal products: signal-take-all (all), prop, abs, half (uniform).
    #[arg(long, value_name = "NAME", default_value = "signal-take-all")]
    pub gate_rule: String,
    /// Gamma of the gamma rule (>= 0).
    #[arg(long, value_name = "G", default_value_t = 0.25, allow_negative_numbers = true)]
    pub gamma: f64,
    /// Alpha of the alpha-beta rule (beta = alpha - 1).
    #[arg(long, value_name = "A", default_value_t = 2.0, allow_negative_numbers = true)]
    pub alpha: f64,
    /// Epsilon stabiliser of the LRP rule (>= 0).
    #[arg(long, value_name = "E", default_value_t = 0.001, allow_negative_numbers = true)]
    pub eps: f64,
    /// Bias factor: 0 (explanation) or 1 (conservation check).
    #[arg(long, value_name = "B", default_value_t = 0.0, allow_negative_numbers = true)]
    pub bias_factor: f64,
}

/// Arguments of `lrp perturb`.
#[derive(Debug, clap::Args)]
pub struct PerturbArgs {
    /// Model directory; default: the built-in SST model.
    #[arg(long, value_name = "DIR")]
    pub model: Option<PathBuf>,
    /// Labelled sentences: SST tree lines, or `label<TAB>text` lines.
    #[arg(long, value_name = "FILE")]
    pub data: PathBuf,
    /// Methods to compare, comma-separated: lrp, sa, gi, occlusion, ig, random.
    #[arg(long, value_name = "LIST", default_value = "lrp,sa,gi,occlusion,ig,random")]
    pub methods: String,
    /// Deletions: the curves run from 0 to K deleted tokens.
    #[arg(long, value_name = "K", default_value_t = 5)]
    pub steps: usize,
    /// Steps of integrated gradients (20 here: IG is most of the cost of a
    /// comparison, and 20 steps keep the SST test set under a minute).
    #[arg(long, value_name = "M", default_value_t = 20)]
    pub ig_steps: usize,
    /// Seed of the random baseline.
    #[arg(long, default_value_t = 2017)]
    pub seed: u64,
    /// The LRP rules.
    #[command(flatten)]
    pub rules: RuleArgs,
    /// Also draw the curves into this SVG file.
    #[arg(long, value_name = "FILE.svg")]
    pub plot: Option<PathBuf>,
    /// Output format (`auto`: text on a terminal, else JSON).
    #[arg(long, value_enum, default_value_t = Format::Auto)]
    pub format: Format,
    /// Limits on untrusted input.
    #[command(flatten)]
    pub limits: LimitArgs,
}

/// Arguments of `lrp groundtruth`.
#[derive(Debug, clap::Args)]
pub struct GroundtruthArgs {
    /// Model directory (a regression model with one output, e.g. the adding task's).
    #[arg(long, value_name = "DIR")]
    pub model: PathBuf,
    /// Sequences (`.npz`, one [T, E] array each); their marked positions in the `.json` beside it.
    #[arg(long, value_name = "FILE.npz")]
    pub data: PathBuf,
    /// Methods to compare, comma-separated: lrp, sa, gi, occlusion, ig, random.
    #[arg(long, value_name = "LIST", default_value = "lrp,sa,gi,occlusion,ig,random")]
    pub methods: String,
    /// Steps of integrated gradients.
    #[arg(long, value_name = "M", default_value_t = 50)]
    pub ig_steps: usize,
    /// Seed of the random baseline.
    #[arg(long, default_value_t = 2019)]
    pub seed: u64,
    /// The LRP rules.
    #[command(flatten)]
    pub rules: RuleArgs,
    /// Output format (`auto`: text on a terminal, else JSON).
    #[arg(long, value_enum, default_value_t = Format::Auto)]
    pub format: Format,
    /// Limits on untrusted input.
    #[command(flatten)]
    pub limits: LimitArgs,
}

/// Arguments of `lrp eval`.
#[derive(Debug, clap::Args)]
pub struct EvalArgs {
    /// Model directory; default: the built-in SST model.
    #[arg(long, value_name = "DIR")]
    pub model: Option<PathBuf>,
    /// Labelled sentences: SST tree lines, or `label<TAB>text` lines.
    #[arg(long, value_name = "FILE")]
    pub data: PathBuf,
    /// Output format (`auto`: text on a terminal, else JSON with `accuracy` and `n`).
    #[arg(long, value_enum, default_value_t = Format::Auto)]
    pub format: Format,
    /// Arithmetic precision.
    #[arg(long, value_enum, default_value_t = Precision::F64)]
    pub precision: Precision,
    /// Limits on untrusted input.
    #[command(flatten)]
    pub limits: LimitArgs,
}

/// What the streams `lrp` writes to are connected to.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Terminal {
    /// Standard output is a terminal (text output, colours).
    pub stdout: bool,
    /// Standard error is a terminal (progress bars).
    pub stderr: bool,
}

impl Terminal {
    /// The process's real streams.
    pub fn detect() -> Self {
        use std::io::IsTerminal;
        Self {
            stdout: std::io::stdout().is_terminal(),
            stderr: std::io::stderr().is_terminal(),
        }
    }
}

/// Runs `lrp` with `args` (the program name first), writing results to
/// `stdout` and failures to `stderr`, one line each, as when neither is a
/// terminal. Returns the exit code: 0 success, 1 bad input or failure, 2 bad
/// arguments, 70 internal error.
pub fn run<I, S>(args: I, stdout: &mut dyn Write, stderr: &mut dyn Write) -> u8
where
    I: IntoIterator<Item = S>,
    S: Into<std::ffi::OsString> + Clone,
{
    run_with(args, stdout, stderr, Terminal::default())
}

/// [`run`], told which streams are terminals.
pub fn run_with<I, S>(args: I, stdout: &mut dyn Write, stderr: &mut dyn Write, terminal: Terminal) -> u8
where
    I: IntoIterator<Item = S>,
    S: Into<std::ffi::OsString> + Clone,
{
    let cli = match Cli::try_parse_from(args) {
        Ok(cli) => cli,
        Err(e) if !e.use_stderr() => {
            // --help and --version
            let _ = write!(stdout, "{e}");
            return 0;
        }
        Err(e) => {
            let _ = writeln!(stderr, "{}", one_line(&e.to_string()));
            return 2;
        }
    };
    // A panic is a bug; it is reported below as one line (the binary
    // silences the default hook so no backtrace note is printed).
    let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| match &cli.command {
        Command::Explain(args) => explain::run(args, &mut *stdout, terminal),
        Command::Eval(args) => eval::run(args, &mut *stdout, terminal),
        Command::Perturb(args) => faithfulness::perturb(args, &mut *stdout, terminal),
        Command::Groundtruth(args) => faithfulness::groundtruth(args, &mut *stdout, terminal),
        Command::ModelInfo(args) => model_info::run(args, &mut *stdout, terminal),
    }));
    match result {
        Ok(Ok(())) => 0,
        Ok(Err(e)) if e.is_broken_pipe() => 1,
        Ok(Err(e)) => {
            let _ = writeln!(stderr, "error: {}", message::error_line(&e));
            1
        }
        Err(panic) => {
            let what = panic
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| panic.downcast_ref::<String>().cloned())
                .unwrap_or_default();
            let what = message::error_line(&what);
            let _ = writeln!(stderr, "error: internal error ({what}); please report this");
            70
        }
    }
}

/// Folds clap's multi-line message (error, details, usage, hint) into the
/// error and its details on one line.
fn one_line(message: &str) -> String {
    message
        .lines()
        .take_while(|l| !l.starts_with("Usage:") && !l.starts_with("For more information"))
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect::<Vec<_>>()
        .join(" ")
}

/// Everything `lrp` reports as a failure.
#[derive(Debug, thiserror::Error)]
pub enum CliError {
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
    /// A flag combination that makes no sense.
    #[error("{0}")]
    Usage(String),
    /// Writing the output.
    #[error("cannot write the output: {0}")]
    Output(#[from] std::io::Error),
}

impl CliError {
    fn is_broken_pipe(&self) -> bool {
        matches!(self, CliError::Output(e) if e.kind() == std::io::ErrorKind::BrokenPipe)
    }
}

/// Writes one JSON value as a line to stdout.
pub(crate) fn print_json_line(out: &mut dyn Write, value: &impl serde::Serialize) -> Result<(), CliError> {
    serde_json::to_writer(&mut *out, value).map_err(std::io::Error::from)?;
    out.write_all(b"\n")?;
    Ok(())
}
