//! The `lrp` command as a library: [`run`] parses arguments and writes to
//! the given streams, so tests drive exactly what the binary does.
//!
//! `lrp explain` runs a model directory on input vectors
//! or text and prints, as JSON, the scores and the relevance of every
//! position (LRP) or a gradient baseline (SA, gradient x input).
//!
//! The JSON keys and flags are a contract that scripts depend on (`docs/cli.md`,
//! "The contract"); extend, never rename. Every failure is one line on
//! stderr and a non-zero exit; a panic is caught and reported the same way.
//!
//! What the command shares with the Python package `lrp-py` (batches of
//! inputs to reports, the options without their flags, model loading, the
//! JSON form, the wording of failures) is the crate `lrp-app`, which this
//! one calls; the flags here convert into its options ([`RuleArgs::options`],
//! `From<MethodName>`, `From<Precision>`). This crate keeps what only a
//! command has: parsing, rendering, exit codes, signals, progress bars.

#![deny(missing_docs)]

mod check;
mod eval;
mod explain;
mod faithfulness;
mod groundtruth;
mod import;
mod limits;
mod model_info;
mod plot;
mod progress;
mod render;
mod seq2seq;
mod series_faithfulness;
mod serve;

pub use limits::{ByteSize, LimitArgs};

use std::io::Write;
use std::path::PathBuf;

pub use check::CheckArgs;
use clap::{Parser, Subcommand, ValueEnum};
pub use import::ImportArgs;
use lrp_app::class_index;
use lrp_app::{error_line, internal_error, RuleOptions};
pub use model_info::{InfoFormat, ModelInfoArgs};
pub use serve::ServeArgs;

/// Explain recurrent neural network predictions with Layer-wise Relevance Propagation.
#[derive(Debug, Parser)]
#[command(name = "lrp", version, about, arg_required_else_help = true)]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
#[non_exhaustive]
pub enum Command {
    /// Explain a model's prediction for text or input vectors.
    Explain(Box<ExplainArgs>),
    /// Accuracy of a model on labelled sentences (SST trees or `label<TAB>text` lines).
    Eval(EvalArgs),
    /// Word deletion curves (Arras et al. 2017) and ERASER comprehensiveness and sufficiency (DeYoung et al. 2020): how much each method's most relevant words decide the prediction.
    Perturb(Box<PerturbArgs>),
    /// Ground truth: how often each method finds the positions that matter (the adding task, white-box LSTMs, subject-verb agreement).
    Groundtruth(Box<GroundtruthArgs>),
    /// A model's architecture and the tensors (names, shapes) its weights file must hold.
    ModelInfo(ModelInfoArgs),
    /// Read an ONNX graph (embedding, LSTM/GRU layers, linear head) into an lrp model directory.
    Import(Box<ImportArgs>),
    /// Compare a model's scores with the ones its framework computed, and name the import mistake that explains a difference.
    Check(Box<CheckArgs>),
    /// The explorer in the browser, and its JSON API: serve models on loopback and print the URL (docs/serve.md).
    Serve(Box<ServeArgs>),
}

/// How to attribute the score.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
#[non_exhaustive]
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

impl From<MethodName> for lrp_app::MethodName {
    fn from(name: MethodName) -> Self {
        match name {
            MethodName::Lrp => lrp_app::MethodName::Lrp,
            MethodName::Sa => lrp_app::MethodName::Sa,
            MethodName::Gi => lrp_app::MethodName::Gi,
            MethodName::Occlusion => lrp_app::MethodName::Occlusion,
            MethodName::Ig => lrp_app::MethodName::Ig,
        }
    }
}

/// Output format of `lrp explain`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
#[non_exhaustive]
pub enum ExplainFormat {
    /// `text` when printing text input to a terminal, else `json`.
    Auto,
    /// One JSON object per input (JSON Lines for several).
    Json,
    /// The sentence coloured by relevance (plain when not a colour terminal or NO_COLOR is set);
    /// for an encoder–decoder, each output token's top source words and the relevance matrix.
    Text,
    /// A standalone HTML page with the heatmap (use with --out).
    Html,
}

/// Output format of the summaries (`lrp eval`, `perturb`, `groundtruth`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
#[non_exhaustive]
pub enum Format {
    /// `text` on a terminal, else `json`.
    Auto,
    /// One JSON object.
    Json,
    /// A few lines for a human.
    Text,
}

/// Arithmetic precision.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
#[non_exhaustive]
pub enum Precision {
    /// 64-bit floats (exact checks).
    F64,
    /// 32-bit floats (throughput).
    F32,
}

impl From<Precision> for lrp_app::Precision {
    fn from(precision: Precision) -> Self {
        match precision {
            Precision::F64 => lrp_app::Precision::F64,
            Precision::F32 => lrp_app::Precision::F32,
        }
    }
}

/// Arguments of `lrp explain`.
#[derive(Debug, clap::Args)]
#[command(group(clap::ArgGroup::new("source").required(true).args(["sentence", "text", "vectors", "input", "ids"])))]
pub struct ExplainArgs {
    /// Text to explain (with the default model, or a model with a vocabulary); after `--` it may start with `-`.
    #[arg(value_name = "TEXT", conflicts_with_all = ["text", "vectors", "input", "ids"])]
    pub sentence: Option<String>,
    /// Token ids to explain, comma-separated (`3,17,5`), for a model that reads tokens (such as a Hugging Face model without a vocabulary).
    #[arg(long, value_name = "IDS", conflicts_with_all = ["text", "vectors", "input"])]
    pub ids: Option<String>,
    /// Model directory (config.json, weights, optional vocab.txt; or a Hugging Face `save_pretrained` directory of a Mamba or xLSTM model); default: the built-in SST model.
    #[arg(long, value_name = "DIR")]
    pub model: Option<PathBuf>,
    /// Input vectors: `.npy` `[T, E]` (one object), `.npz` of many arrays (JSON Lines, archive order), or `.csv` (a header naming the channels, one row per time step).
    #[arg(long, value_name = "FILE", conflicts_with_all = ["text", "input"])]
    pub vectors: Option<PathBuf>,
    /// With `--vectors FILE.csv`: the column that holds each row's time (increasing), not a channel.
    #[arg(long, value_name = "NAME", requires = "vectors")]
    pub time_column: Option<String>,
    /// With `--vectors FILE.csv`: the column that names each row's series; each series is explained on its own, in file order.
    #[arg(long, value_name = "NAME", requires = "vectors")]
    pub series_column: Option<String>,
    /// With `--vectors FILE.csv`: a column that holds each series' true class, not a channel (left out here; `lrp perturb` reads it).
    #[arg(long, value_name = "NAME", requires = "vectors")]
    pub label_column: Option<String>,
    /// Input text (models with an embedding and a vocabulary); may start with `-`.
    #[arg(long, value_name = "TEXT", conflicts_with = "input", allow_hyphen_values = true)]
    pub text: Option<String>,
    /// A file of texts, one a line (blank lines skipped; `-`: standard input): JSON Lines in input order, each with its `line`.
    #[arg(long, value_name = "FILE")]
    pub input: Option<PathBuf>,
    /// Class to explain, an index from 0 (default: the predicted class; output 0 of a regression head).
    #[arg(long, value_name = "K", value_parser = class_index, allow_negative_numbers = true)]
    pub target: Option<usize>,
    /// Output position to explain, from 0, for a per-step head (default: the last position).
    #[arg(long, value_name = "T", value_parser = position_index, allow_negative_numbers = true)]
    pub position: Option<usize>,
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
    #[arg(long, value_enum, default_value_t = ExplainFormat::Auto)]
    pub format: ExplainFormat,
    /// Arithmetic precision.
    #[arg(long, value_enum, default_value_t = Precision::F64)]
    pub precision: Precision,
    /// Write the output to FILE (atomically: complete or not at all) instead of stdout.
    #[arg(long, value_name = "FILE")]
    pub out: Option<PathBuf>,
    /// Also draw one vector input (one array or series) into this SVG file: each channel over its relevance.
    #[arg(long, value_name = "FILE.svg", requires = "vectors")]
    pub plot: Option<PathBuf>,
    /// Limits on untrusted input.
    #[command(flatten)]
    pub limits: LimitArgs,
    /// Worker threads.
    #[command(flatten)]
    pub threads: ThreadArgs,
    /// Seq2seq models: the output text to explain, teacher-forced (default: greedy decoding).
    #[arg(long, value_name = "TARGET", allow_hyphen_values = true)]
    pub output_text: Option<String>,
    /// Seq2seq models: the most tokens greedy decoding produces (1 to 1024), stopping earlier at the end token.
    #[arg(long, value_name = "N", default_value_t = 50, value_parser = seq2seq::output_length)]
    pub max_output_length: usize,
    /// Inputs explained per window of the stream, at most (default 4096;
    /// hidden: tests use small windows to cross window boundaries).
    #[arg(long, value_name = "N", hide = true, value_parser = clap::value_parser!(u32).range(1..))]
    pub window: Option<u32>,
}

/// The size of the worker pool (every command that runs inputs in parallel).
#[derive(Debug, Clone, Copy, clap::Args)]
pub struct ThreadArgs {
    /// Worker threads, 1 to 1024 (default: RAYON_NUM_THREADS, else one per core).
    #[arg(long, value_name = "N", value_parser = thread_count, allow_negative_numbers = true)]
    pub threads: Option<usize>,
}

/// The most worker threads `--threads` accepts.
pub const MAX_THREADS: usize = 1024;

/// The flags that choose LRP rules (shared by every command that explains),
/// whose defaults are [`RuleOptions::default`]'s.
#[derive(Debug, Clone, clap::Args)]
pub struct RuleArgs {
    /// LRP rule preset: epsilon, epsilon-flat, epsilon-wsquare, zplus, alpha2-beta1, gamma.
    #[arg(long, value_name = "NAME", default_value_t = RuleOptions::default().composite, conflicts_with = "rule")]
    pub composite: String,
    /// One LRP rule for every linear step: epsilon, zplus, gamma, alpha-beta, wsquare, flat.
    #[arg(long, value_name = "NAME")]
    pub rule: Option<String>,
    /// Rule for gate x signal products: signal-take-all (all), prop, abs, half (uniform).
    #[arg(long, value_name = "NAME", default_value_t = RuleOptions::default().gate_rule)]
    pub gate_rule: String,
    /// Gamma of the gamma rule (>= 0).
    #[arg(long, value_name = "G", default_value_t = RuleOptions::default().gamma, allow_negative_numbers = true)]
    pub gamma: f64,
    /// Alpha of the alpha-beta rule (beta = alpha - 1).
    #[arg(long, value_name = "A", default_value_t = RuleOptions::default().alpha, allow_negative_numbers = true)]
    pub alpha: f64,
    /// Epsilon stabiliser of the LRP rule (>= 0).
    #[arg(long, value_name = "E", default_value_t = RuleOptions::default().eps, allow_negative_numbers = true)]
    pub eps: f64,
    /// Stabiliser of the prop gate rule (>= 0; 0 is the unstabilised rule).
    #[arg(long, value_name = "E", default_value_t = RuleOptions::default().prop_eps, allow_negative_numbers = true)]
    pub prop_eps: f64,
    /// Bias factor: 0 (explanation) or 1 (conservation check).
    #[arg(long, value_name = "B", default_value_t = RuleOptions::default().bias_factor, allow_negative_numbers = true)]
    pub bias_factor: f64,
    /// Rules by site over --composite/--rule, first match wins: `KEY=RULE[:N],...`
    /// e.g. 'input=flat,layer1.backward=zplus,head=gamma:0.5,*=epsilon'.
    #[arg(long, value_name = "SPEC")]
    pub rules: Option<String>,
}

impl RuleArgs {
    /// The options these flags set.
    pub fn options(&self) -> RuleOptions {
        RuleOptions::from(self)
    }
}

impl From<&RuleArgs> for RuleOptions {
    fn from(args: &RuleArgs) -> Self {
        RuleOptions {
            composite: args.composite.clone(),
            rule: args.rule.clone(),
            gate_rule: args.gate_rule.clone(),
            gamma: args.gamma,
            alpha: args.alpha,
            eps: args.eps,
            prop_eps: args.prop_eps,
            bias_factor: args.bias_factor,
            rules: args.rules.clone(),
        }
    }
}

/// Arguments of `lrp perturb`.
#[derive(Debug, clap::Args)]
#[command(group(clap::ArgGroup::new("labelled").required(true).args(["data", "vectors"])))]
pub struct PerturbArgs {
    /// Model directory; default: the built-in SST model.
    #[arg(long, value_name = "DIR")]
    pub model: Option<PathBuf>,
    /// Labelled sentences: SST tree lines, or `label<TAB>text` lines.
    #[arg(long, value_name = "FILE")]
    pub data: Option<PathBuf>,
    /// Labelled time series instead of sentences: a CSV file (a header naming the channels, one row per
    /// time step) whose --label-column holds each series' true class; time steps and whole channels
    /// are deleted (set to 0).
    #[arg(long, value_name = "FILE.csv", conflicts_with_all = ["data", "eraser_plot"], requires = "label_column")]
    pub vectors: Option<PathBuf>,
    /// With `--vectors`: the column of each series' true class (a class name of the model's labels, or an index from 0).
    #[arg(long, value_name = "NAME", requires = "vectors")]
    pub label_column: Option<String>,
    /// With `--vectors`: the column that names each row's series (without it the file is one series).
    #[arg(long, value_name = "NAME", requires = "vectors")]
    pub series_column: Option<String>,
    /// With `--vectors`: the column that holds each row's time (increasing), not a channel.
    #[arg(long, value_name = "NAME", requires = "vectors")]
    pub time_column: Option<String>,
    /// Methods to compare, comma-separated: lrp, sa, gi, occlusion, ig, random;
    /// lrp:GATE is LRP under another gate rule (lrp:prop, lrp:abs, lrp:half).
    #[arg(long, value_name = "LIST", default_value = "lrp,sa,gi,occlusion,ig,random")]
    pub methods: String,
    /// Deletions: the curves run from 0 to K deleted tokens (with `--vectors`: time steps; the channel
    /// curves always run from 0 to every channel).
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
    /// Also draw the deletion curves into this SVG file.
    #[arg(long, value_name = "FILE.svg")]
    pub plot: Option<PathBuf>,
    /// Also draw ERASER's comprehensiveness and sufficiency into this SVG file.
    #[arg(long, value_name = "FILE.svg")]
    pub eraser_plot: Option<PathBuf>,
    /// Output format (`auto`: text on a terminal, else JSON).
    #[arg(long, value_enum, default_value_t = Format::Auto)]
    pub format: Format,
    /// Limits on untrusted input.
    #[command(flatten)]
    pub limits: LimitArgs,
    /// Worker threads.
    #[command(flatten)]
    pub threads: ThreadArgs,
}

/// Arguments of `lrp groundtruth`.
#[derive(Debug, clap::Args)]
pub struct GroundtruthArgs {
    /// Model directory (e.g. tests/fixtures/adding/model).
    #[arg(long, value_name = "DIR")]
    pub model: PathBuf,
    /// The cases: `X.npz` (one [T, E] array each) with their ground truth in
    /// `X.json` beside it, or a `.json` whose cases carry their `text` (for
    /// a seq2seq model also `output_text` and `aligned`; docs/groundtruth.md).
    #[arg(long, value_name = "FILE.npz|FILE.json")]
    pub data: PathBuf,
    /// Read the relevance of input dimension K alone, instead of each
    /// position's signed sum over its dimensions (the adding task's values: 0).
    #[arg(long, value_name = "K")]
    pub dimension: Option<usize>,
    /// Also draw the scores into this SVG file.
    #[arg(long, value_name = "FILE.svg")]
    pub plot: Option<PathBuf>,
    /// Methods to compare, comma-separated: lrp, sa, gi, occlusion, ig, random;
    /// lrp:GATE is LRP under another gate rule (lrp:prop, lrp:abs, lrp:half);
    /// a seq2seq model's attention weights are always scored too (attention).
    #[arg(long, value_name = "LIST", default_value = "lrp,sa,gi,occlusion,ig,random")]
    pub methods: String,
    /// Steps of integrated gradients.
    #[arg(long, value_name = "M", default_value_t = 50)]
    pub ig_steps: usize,
    /// Seed of the random baseline.
    #[arg(long, default_value_t = 2019)]
    pub seed: u64,
    /// Cases with a mask: the values blanked cells take in the masked
    /// accuracy, one `[T, E]` array of the inputs' shape (e.g. a fresh
    /// background sample, as Ismail et al. 2020 do); default 0.
    #[arg(long, value_name = "FILE.npy")]
    pub blank_with: Option<PathBuf>,
    /// The LRP rules.
    #[command(flatten)]
    pub rules: RuleArgs,
    /// Output format (`auto`: text on a terminal, else JSON).
    #[arg(long, value_enum, default_value_t = Format::Auto)]
    pub format: Format,
    /// Limits on untrusted input.
    #[command(flatten)]
    pub limits: LimitArgs,
    /// Worker threads.
    #[command(flatten)]
    pub threads: ThreadArgs,
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
    /// Worker threads.
    #[command(flatten)]
    pub threads: ThreadArgs,
}

/// An output position from `--position`: a whole number >= 0.
pub fn position_index(value: &str) -> Result<usize, String> {
    match value.trim().parse::<i128>() {
        Ok(t) if t < 0 => Err("the position must be an index >= 0".into()),
        Ok(t) => usize::try_from(t).map_err(|_| "the position is past the end of any sequence".into()),
        Err(_) => Err("the position must be a whole number >= 0".into()),
    }
}

/// A worker count from `--threads`: 1 to [`MAX_THREADS`].
fn thread_count(value: &str) -> Result<usize, String> {
    match value.trim().parse::<i128>() {
        Ok(n) if (1..=MAX_THREADS as i128).contains(&n) => Ok(n as usize),
        _ => Err(format!(
            "the number of threads must be a whole number from 1 to {MAX_THREADS}"
        )),
    }
}

impl Command {
    /// The `--threads` flag of the command.
    fn threads(&self) -> Option<usize> {
        match self {
            Command::Explain(args) => args.threads.threads,
            Command::Eval(args) => args.threads.threads,
            Command::Perturb(args) => args.threads.threads,
            Command::Groundtruth(args) => args.threads.threads,
            // The server starts a pool of its own for its explanations.
            Command::ModelInfo(_) | Command::Import(_) | Command::Check(_) | Command::Serve(_) => None,
        }
    }
}

/// What the streams `lrp` writes to are connected to.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Terminal {
    /// Standard output is a terminal (`--format auto` shows text).
    pub stdout: bool,
    /// Standard error is a terminal that can redraw a line (progress bars).
    pub stderr: bool,
    /// The colours standard output can show.
    pub colour: Colour,
}

/// How many colours a terminal shows.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum Colour {
    /// None: not a terminal, `TERM` unset or `dumb`, or `NO_COLOR` set.
    #[default]
    None,
    /// The 256-colour palette (xterm's 6 x 6 x 6 cube), which nearly every
    /// terminal emulator has.
    Palette256,
    /// 24-bit colour, when `COLORTERM` is `truecolor` or `24bit`.
    TrueColour,
}

impl Terminal {
    /// The process's real streams, and the colours its environment allows
    /// (`NO_COLOR`, `TERM`, `COLORTERM`).
    pub fn detect() -> Self {
        use std::io::IsTerminal;
        let var = |name: &str| std::env::var(name).unwrap_or_default();
        // A dumb terminal (Emacs shell, some CI logs) understands neither
        // colour codes nor the cursor moves of a progress bar.
        let capable = !matches!(var("TERM").as_str(), "" | "dumb");
        let stdout = std::io::stdout().is_terminal();
        let colour = if !stdout || !capable || !var("NO_COLOR").is_empty() {
            Colour::None
        } else if matches!(var("COLORTERM").as_str(), "truecolor" | "24bit") {
            Colour::TrueColour
        } else {
            Colour::Palette256
        };
        Self {
            stdout,
            stderr: capable && std::io::stderr().is_terminal(),
            colour,
        }
    }
}

/// Runs `lrp` with `args` (the program name first), writing results to
/// `stdout` and failures to `stderr`, one line each, as when neither is a
/// terminal. Returns the exit code: 0 success, 1 bad input or failure, 2 bad
/// arguments, 70 internal error.
pub fn run<I, S>(args: I, stdout: &mut (dyn Write + Send), stderr: &mut dyn Write) -> u8
where
    I: IntoIterator<Item = S>,
    S: Into<std::ffi::OsString> + Clone,
{
    run_with(args, stdout, stderr, Terminal::default())
}

/// [`run`], told which streams are terminals.
pub fn run_with<I, S>(args: I, stdout: &mut (dyn Write + Send), stderr: &mut dyn Write, terminal: Terminal) -> u8
where
    I: IntoIterator<Item = S>,
    S: Into<std::ffi::OsString> + Clone,
{
    let args: Vec<std::ffi::OsString> = args.into_iter().map(Into::into).collect();
    let cli = match Cli::try_parse_from(&args) {
        Ok(cli) => cli,
        Err(e) if e.kind() == clap::error::ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand => {
            // Bare `lrp`: the subcommands, on stderr as for any bad call.
            let _ = write!(stderr, "{e}");
            return 2;
        }
        Err(e) if !e.use_stderr() => {
            // --help and --version
            let _ = write!(stdout, "{e}");
            return 0;
        }
        Err(e) => {
            // The message echoes the offending value: printable, bounded.
            let message = error_line(&one_line(&e.to_string()));
            let _ = writeln!(stderr, "{message} (see '{}')", help_for(&args));
            return 2;
        }
    };
    // The command's own pool, not the global one, so that `--threads` holds
    // for every call of `run` in one process.
    let pool = match worker_pool(cli.command.threads()) {
        Ok(pool) => pool,
        Err(e) => {
            let _ = writeln!(stderr, "error: cannot start the worker threads: {e}");
            return 1;
        }
    };
    // A panic is a bug; it is reported below as one line (the binary
    // silences the default hook so no backtrace note is printed).
    let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        match &cli.command {
            // The server runs its explanations on a pool of its own, and
            // warns on stderr.
            Command::Serve(args) => serve::run(args, &mut *stdout, &mut *stderr),
            command => pool.install(|| match command {
                Command::Explain(args) => explain::run(args, &mut *stdout, terminal),
                Command::Eval(args) => eval::run(args, &mut *stdout, terminal),
                Command::Perturb(args) => faithfulness::perturb(args, &mut *stdout, terminal),
                Command::Groundtruth(args) => groundtruth::groundtruth(args, &mut *stdout, terminal),
                Command::ModelInfo(args) => model_info::run(args, &mut *stdout, terminal),
                Command::Import(args) => import::run(args, &mut *stdout, terminal),
                Command::Check(args) => check::run(args, &mut *stdout, terminal),
                // Served above, off the pool; an error, not a panic, keeps
                // the match total.
                Command::Serve(_) => Err(CliError::Usage("lrp serve runs off the worker pool".into())),
            }),
        }
    }));
    match result {
        Ok(Ok(())) => 0,
        Ok(Err(e)) if e.is_broken_pipe() => 1,
        Ok(Err(e)) => {
            let _ = writeln!(stderr, "error: {}", error_line(&e));
            1
        }
        Err(panic) => {
            let _ = writeln!(stderr, "error: {}", internal_error(panic.as_ref()));
            70
        }
    }
}

/// A pool of `threads` workers (default: `RAYON_NUM_THREADS`, else one per
/// core).
fn worker_pool(threads: Option<usize>) -> Result<rayon::ThreadPool, rayon::ThreadPoolBuildError> {
    rayon::ThreadPoolBuilder::new()
        .num_threads(threads.unwrap_or(0))
        .build()
}

/// The help to point an argument error at: the subcommand's when the
/// arguments name one.
fn help_for(args: &[std::ffi::OsString]) -> String {
    use clap::CommandFactory;
    let cli = Cli::command();
    let named = args
        .iter()
        .skip(1)
        .filter_map(|a| a.to_str())
        .find(|a| !a.starts_with('-'))
        .and_then(|a| cli.find_subcommand(a));
    match named {
        Some(sub) => format!("lrp {} --help", sub.get_name()),
        None => "lrp --help".into(),
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

/// Everything `lrp` reports as a failure: the application layer's errors
/// (one line each, printed after `error: `).
pub use lrp_app::Error as CliError;

/// Refuses an `output` (its flag and path) that is the same file as one of
/// the run's inputs: the files of the `model` directory, and the `inputs`
/// given (by flag); see [`lrp_io::refuse_output_over_input`]. Called before
/// anything is written.
pub(crate) fn refuse_output_over_inputs(
    output: (&str, &std::path::Path),
    model: &Option<PathBuf>,
    inputs: &[(&str, &Option<PathBuf>)],
    limits: &lrp_io::Limits,
) -> Result<(), CliError> {
    let model_files = model
        .as_deref()
        .map(|dir| lrp_io::model_files(dir, limits))
        .unwrap_or_default();
    let named: Vec<(&str, &std::path::Path)> = inputs
        .iter()
        .filter_map(|(flag, path)| Some((*flag, path.as_deref()?)))
        .chain(model_files.iter().map(|(what, path)| (what.as_str(), path.as_path())))
        .collect();
    Ok(lrp_io::refuse_output_over_input(output, &named)?)
}

/// Writes one JSON value as a line to stdout.
pub(crate) fn print_json_line(out: &mut dyn Write, value: &impl serde::Serialize) -> Result<(), CliError> {
    serde_json::to_writer(&mut *out, value).map_err(std::io::Error::from)?;
    out.write_all(b"\n")?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_threads_flag_sizes_the_pool_the_command_runs_in() {
        let cli = Cli::try_parse_from(["lrp", "explain", "--threads", "3", "good"]).unwrap();
        assert_eq!(cli.command.threads(), Some(3));
        let pool = worker_pool(cli.command.threads()).unwrap();
        assert_eq!(pool.install(rayon::current_num_threads), 3);
        for command in ["eval", "perturb", "groundtruth"] {
            let cli = Cli::try_parse_from(["lrp", command, "--threads", "1", "--data", "d", "--model", "m"]).unwrap();
            assert_eq!(cli.command.threads(), Some(1), "{command}");
        }
    }

    #[test]
    fn thread_counts_and_class_indices_are_checked() {
        assert_eq!(thread_count("1"), Ok(1));
        assert_eq!(thread_count("1024"), Ok(1024));
        for bad in ["0", "1025", "-2", "two", "99999999999999999999999"] {
            assert!(thread_count(bad).is_err(), "{bad}");
        }
        assert_eq!(class_index("0"), Ok(0));
        assert_eq!(class_index("-1"), Err("the target must be a class index >= 0".into()));
        assert!(class_index("1.5").is_err());
    }

    #[test]
    fn the_flags_convert_into_the_options_with_the_same_defaults() {
        #[derive(Parser)]
        struct Only {
            #[command(flatten)]
            rules: RuleArgs,
        }
        assert_eq!(Only::parse_from(["lrp"]).rules.options(), RuleOptions::default());
        let given = Only::parse_from(["lrp", "--rule", "zplus", "--gate-rule", "abs", "--eps", "0.5"]).rules;
        let options = given.options();
        assert_eq!(
            (options.rule.as_deref(), options.gate_rule.as_str(), options.eps),
            (Some("zplus"), "abs", 0.5)
        );
        // Every method and precision flag names its option.
        use lrp_app::Choice;
        for flag in MethodName::value_variants() {
            let name = flag.to_possible_value().unwrap();
            assert_eq!(name.get_name(), lrp_app::MethodName::from(*flag).name());
        }
        assert_eq!(MethodName::value_variants().len(), lrp_app::MethodName::ALL.len());
        for flag in Precision::value_variants() {
            let name = flag.to_possible_value().unwrap();
            assert_eq!(name.get_name(), lrp_app::Precision::from(*flag).name());
        }
        assert_eq!(Precision::value_variants().len(), lrp_app::Precision::ALL.len());
    }
}
