//! `lrp import FILE.onnx --out DIR`: an ONNX graph of a recurrent
//! classifier as an lrp model directory (`lrp_io::onnx` reads the graph).
//!
//! Every file is written to a temporary file beside its target; the model
//! is then built in memory with every check of `lrp explain`'s loader, and
//! only then are the files renamed into place: a refused graph, or a target
//! that is not a regular file, leaves the directory as it was. What was read is printed, for comparison with the
//! exported model; `lrp check` then compares the scores.

use std::io::Write;
use std::path::PathBuf;

use lrp_io::onnx::import_onnx;
use lrp_io::stage_model_dir;
use lrp_io::LimitKind;
use lrp_models::Tensors;
use serde::Serialize;

use crate::progress::{progress, Unit};
use crate::render::printable;
use crate::{print_json_line, CliError, Format, LimitArgs, Terminal};

/// Arguments of `lrp import`.
#[derive(Debug, clap::Args)]
pub struct ImportArgs {
    /// The ONNX file (its external data, model.onnx.data, read beside it): an embedding Gather (optional), LSTM or GRU nodes, a Gemm or MatMul + Add head on h_n or out[:, -1].
    #[arg(value_name = "FILE.onnx")]
    pub file: PathBuf,
    /// The model directory to write (created if needed; its config.json, model.safetensors and vocab.txt are replaced, all or none; a symbolic link is refused).
    #[arg(long, value_name = "DIR")]
    pub out: PathBuf,
    /// A vocabulary, one token a line (line k = embedding row k), copied to DIR/vocab.txt so the model reads text.
    #[arg(long, value_name = "FILE")]
    pub vocab: Option<PathBuf>,
    /// The vocabulary entry unknown words map to (with --vocab).
    #[arg(long, value_name = "TOKEN", requires = "vocab")]
    pub unk_token: Option<String>,
    /// Lowercase words before the lookup (with --vocab).
    #[arg(long, requires = "vocab")]
    pub lowercase: bool,
    /// Output format (`auto`: text on a terminal, else JSON).
    #[arg(long, value_enum, default_value_t = Format::Auto)]
    pub format: Format,
    /// Limits on untrusted input (the ONNX file's size is --max-weights-size).
    #[command(flatten)]
    pub limits: LimitArgs,
}

/// What `lrp import` prints.
#[derive(Debug, Serialize)]
struct ImportReport {
    /// The directory written.
    out: String,
    /// The files written.
    files: Vec<String>,
    /// The element type of the weights written (`f32` or `f64`).
    dtype: &'static str,
    /// What was read from the graph, one line per part.
    notes: Vec<String>,
    /// The config written.
    config: lrp_models::ModelConfig,
}

pub(crate) fn run(args: &ImportArgs, out: &mut dyn Write, terminal: Terminal) -> Result<(), CliError> {
    let limits = args.limits.limits();
    let bar = progress(terminal, "import", None, Unit::Stages);
    bar.set_message("reading the graph");
    let mut imported = import_onnx(&args.file, &limits)?;
    let vocab = match &args.vocab {
        Some(path) => {
            if !imported.config.embedding {
                return Err(CliError::Usage(
                    "--vocab: the graph has no embedding; it reads vectors, not text".into(),
                ));
            }
            let bytes = lrp_io::read_file_capped(path, limits.max_vocab_bytes, LimitKind::VocabBytes)?;
            imported.config.vocab = Some("vocab.txt".into());
            imported.config.unk_token = args.unk_token.clone();
            imported.config.lowercase = args.lowercase;
            Some((path.clone(), bytes))
        }
        None => None,
    };
    // Every file is staged beside its target first (a target that is not a
    // regular file is refused before anything is written); then the model
    // is built with every check of the loader, from the tensors themselves
    // (moved, not copied); only a model that passes is put in place.
    let staged = stage_model_dir(
        &args.out,
        &imported.config,
        &imported.tensors,
        imported.double,
        vocab.as_ref().map(|(_, b)| b.as_slice()),
    )?;
    let mut tensors = Tensors::new();
    for (name, tensor) in std::mem::take(&mut imported.tensors) {
        tensors.insert(name, tensor);
    }
    let vocab = vocab.as_ref().map(|(p, b)| (p.as_path(), b.as_slice()));
    bar.set_message("checking the model");
    // Built in the precision the weights are written in, as it will be read.
    if imported.double {
        lrp_io::model_from_tensors::<f64>(&args.out, imported.config.clone(), tensors, vocab)?;
    } else {
        lrp_io::model_from_tensors::<f32>(&args.out, imported.config.clone(), tensors, vocab)?;
    }
    let files = staged.commit()?;
    bar.finish_and_clear();
    let report = ImportReport {
        out: args.out.display().to_string(),
        files: files.iter().map(|f| f.display().to_string()).collect(),
        dtype: if imported.double { "f64" } else { "f32" },
        notes: imported.notes,
        config: imported.config,
    };
    let as_text = args.format == Format::Text || (args.format == Format::Auto && terminal.stdout);
    if as_text {
        let mut text = format!("wrote      {} ({} weights)\n", printable(&report.out), report.dtype);
        for note in &report.notes {
            text.push_str(&format!("read       {}\n", printable(note)));
        }
        text.push_str(if report.config.embedding {
            "next       lrp check --model DIR --input TEXTS.txt --expect SCORES.jsonl (the exporter's scores, a line per text)\n"
        } else {
            "next       lrp check --model DIR --vectors X --expect SCORES.json (the exporter's scores)\n"
        });
        out.write_all(text.as_bytes())?;
    } else {
        print_json_line(out, &report)?;
    }
    Ok(())
}
