//! The `lrp` command. `lrp explain` runs a model directory on input vectors
//! or text and prints, as JSON, the scores and the relevance of every
//! position (LRP) or a gradient baseline (SA, gradient x input).
//!
//! The JSON keys and flags are a contract that scripts depend on (README,
//! "CLI contract"); extend, never rename. Every failure is one line on
//! stderr and a non-zero exit; a panic is caught and reported the same way.

mod explain;

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand, ValueEnum};

/// Explain recurrent neural network predictions with Layer-wise Relevance Propagation.
#[derive(Debug, Parser)]
#[command(name = "lrp", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Explain a model's prediction for input vectors or text.
    Explain(ExplainArgs),
}

/// How to attribute the score.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum Method {
    /// Layer-wise Relevance Propagation (epsilon rule, signal-take-all).
    Lrp,
    /// Sensitivity analysis: ||d s / d x_t||^2 per position.
    Sa,
    /// Gradient x input: sum_e x_te d s / d x_te per position.
    Gi,
}

/// Output format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum Format {
    /// One JSON object per input (JSON Lines for several).
    Json,
}

/// Arithmetic precision.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum Precision {
    /// 64-bit floats (exact checks).
    F64,
    /// 32-bit floats (throughput).
    F32,
}

#[derive(Debug, clap::Args)]
pub(crate) struct ExplainArgs {
    /// Model directory (config.json, weights, optional vocab.txt).
    #[arg(long, value_name = "DIR")]
    pub model: PathBuf,
    /// Input vectors: .npy [T, E] (one object) or .npz of many arrays (JSON Lines, archive order).
    #[arg(long, value_name = "FILE", conflicts_with = "text", required_unless_present = "text")]
    pub vectors: Option<PathBuf>,
    /// Input text (models with an embedding and a vocabulary), split at white space.
    #[arg(long, value_name = "TEXT")]
    pub text: Option<String>,
    /// Class to explain (default: the predicted class).
    #[arg(long, value_name = "K")]
    pub target: Option<usize>,
    /// Attribution method.
    #[arg(long, value_enum, default_value_t = Method::Lrp)]
    pub method: Method,
    /// Epsilon stabiliser of the LRP rule (>= 0).
    #[arg(long, value_name = "E", default_value_t = 0.001, allow_negative_numbers = true)]
    pub eps: f64,
    /// Bias factor: 0 (explanation) or 1 (conservation check).
    #[arg(long, value_name = "B", default_value_t = 0.0, allow_negative_numbers = true)]
    pub bias_factor: f64,
    /// Also print input_relevance [T][E].
    #[arg(long)]
    pub per_dimension: bool,
    /// Output format.
    #[arg(long, value_enum, default_value_t = Format::Json)]
    pub format: Format,
    /// Arithmetic precision.
    #[arg(long, value_enum, default_value_t = Precision::F64)]
    pub precision: Precision,
}

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) if !e.use_stderr() => {
            // --help and --version
            let _ = e.print();
            return ExitCode::SUCCESS;
        }
        Err(e) => {
            let text = e.to_string();
            let first = text.lines().next().unwrap_or("invalid arguments");
            eprintln!("{}", first.trim());
            return ExitCode::from(2);
        }
    };
    // Keep panics (bugs) to one line too; the message asks for a report.
    std::panic::set_hook(Box::new(|info| {
        eprintln!("error: internal error ({info}); please report this");
    }));
    let result = std::panic::catch_unwind(|| match cli.command {
        Command::Explain(args) => explain::run(&args),
    });
    match result {
        Ok(Ok(())) => ExitCode::SUCCESS,
        Ok(Err(e)) => {
            if !e.is_broken_pipe() {
                eprintln!("error: {e}");
            }
            ExitCode::from(1)
        }
        Err(_) => ExitCode::from(70),
    }
}

/// Everything `lrp` reports as a failure.
#[derive(Debug, thiserror::Error)]
pub(crate) enum CliError {
    /// Reading a model or input file.
    #[error(transparent)]
    Io(#[from] lrp_io::Error),
    /// Running or explaining the model.
    #[error(transparent)]
    Model(#[from] lrp_models::Error),
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
pub(crate) fn print_json_line(out: &mut impl Write, value: &impl serde::Serialize) -> Result<(), CliError> {
    serde_json::to_writer(&mut *out, value).map_err(std::io::Error::from)?;
    out.write_all(b"\n")?;
    Ok(())
}
