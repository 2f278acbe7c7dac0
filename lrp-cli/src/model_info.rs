//! `lrp model-info`: what a model directory (or a bare `config.json`)
//! describes, and the tensors its weights file must hold.
//!
//! This is the check a user runs while exporting a model from another
//! framework: the architecture as lrp reads it, every tensor name with its
//! shape (from `lrp_models::tensor_manifest`, the one place that names
//! tensors), and, for a directory, whether the weights and the vocabulary
//! really load.

use std::io::Write;
use std::path::{Path, PathBuf};

use clap::ValueEnum;
use lrp_io::HuggingFaceConfig;
use lrp_models::config::{AttentionKind, EncoderConfig, FrontLayer, HeadInput, Layout};
use lrp_models::seq2seq::{seq2seq_manifest, DecoderInit, Seq2SeqConfig, ARCHITECTURE};
use lrp_models::{tensor_manifest, ModelConfig};
use serde::Serialize;

use crate::render::printable;
use crate::{print_json_line, CliError, Terminal};

/// How the built-in model is named in the output.
const BUILT_IN: &str = "<built-in sst-default>";

/// Arguments of `lrp model-info`.
#[derive(Debug, clap::Args)]
pub struct ModelInfoArgs {
    /// Model directory (config.json, weights, optional vocab.txt); default: the built-in SST model.
    #[arg(value_name = "DIR", conflicts_with = "config")]
    pub dir: Option<PathBuf>,
    /// A bare config.json, without weights: only the architecture and the tensors it needs.
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Output format (`auto`: text on a terminal, else JSON).
    #[arg(long, value_enum, default_value_t = InfoFormat::Auto)]
    pub format: InfoFormat,
    /// Limits on the sizes read from files.
    #[command(flatten)]
    pub limits: crate::LimitArgs,
}

/// Output formats of `lrp model-info`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
#[non_exhaustive]
pub enum InfoFormat {
    /// `text` on a terminal, else `json`.
    Auto,
    /// One JSON object.
    Json,
    /// A readable summary and the tensor table.
    Text,
}

/// One tensor the weights file must hold.
#[derive(Debug, Serialize)]
struct TensorEntry {
    name: String,
    shape: Vec<usize>,
}

/// The tensors a manifest lists, as reported, and their total size.
fn tensor_entries(manifest: Vec<(String, Vec<usize>)>) -> (Vec<TensorEntry>, usize) {
    let parameters = manifest.iter().map(|(_, shape)| shape.iter().product::<usize>()).sum();
    let entries = manifest
        .into_iter()
        .map(|(name, shape)| TensorEntry { name, shape })
        .collect();
    (entries, parameters)
}

/// What `check` reports on loading a model directory: `ok`, or why not.
fn load_check<M>(loaded: Result<M, lrp_io::Error>) -> String {
    match loaded {
        Ok(_) => "ok".to_string(),
        Err(e) => e.to_string(),
    }
}

/// Everything `model-info` reports.
#[derive(Debug, Serialize)]
struct ModelInfo {
    /// What was described: a directory, a config file or the built-in model.
    source: String,
    /// The config with every default filled in.
    config: ModelConfig,
    /// Width `D` of one position of the top layer's output.
    output_width: usize,
    /// Width of the head's input (`D`, or `2D` for `context+last`).
    head_width: usize,
    /// The tensors, in the order the model is built from them.
    tensors: Vec<TensorEntry>,
    /// Numbers in all tensors together.
    parameters: usize,
    /// The canonizers loading applies to each direction of each recurrent
    /// layer, in order (`lrp_models::canonize`).
    canonizers: Vec<CanonizerEntry>,
    /// For a directory: `"ok"` when the weights and vocabulary load, else
    /// the problem in one line; `null` for a bare config.
    check: Option<String>,
}

/// A canonizer as reported: its name and what it does.
#[derive(Debug, Serialize)]
struct CanonizerEntry {
    name: String,
    description: String,
}

/// The built-in canonizers loading applies for `config`.
fn canonizer_entries(config: &ModelConfig) -> Vec<CanonizerEntry> {
    lrp_models::canonize::builtin::<f64>(config)
        .iter()
        .map(|c| CanonizerEntry {
            name: c.name().to_string(),
            description: c.describe(),
        })
        .collect()
}

/// The files behind a described config.
enum Files<'a> {
    /// A model directory: weights and vocabulary are checked.
    Directory(&'a Path),
    /// The built-in model, loaded (and so checked) to read its config.
    BuiltIn,
    /// A bare config file: nothing to check.
    None,
}

/// Everything `model-info` reports on an encoder–decoder
/// (`docs/seq2seq.md`).
#[derive(Debug, Serialize)]
struct Seq2SeqInfo {
    /// What was described: a directory or a config file.
    source: String,
    /// The config with every default filled in.
    config: Seq2SeqConfig,
    /// Width `D` of one encoder output position.
    encoder_width: usize,
    /// Width `Ex` of the decoder's input (`Et`, plus `Hd` with input feeding).
    decoder_input_width: usize,
    /// The tensors, in the order the model is built from them.
    tensors: Vec<TensorEntry>,
    /// Numbers in all tensors together.
    parameters: usize,
    /// For a directory: `"ok"` when the weights and vocabularies load,
    /// else the problem in one line; `null` for a bare config.
    check: Option<String>,
}

pub(crate) fn run(args: &ModelInfoArgs, out: &mut dyn Write, terminal: Terminal) -> Result<(), CliError> {
    let limits = args.limits.limits();
    let as_text = args.format == InfoFormat::Text || (args.format == InfoFormat::Auto && terminal.stdout);
    let described = match (&args.dir, &args.config) {
        (_, Some(file)) => Some((file.clone(), None)),
        (Some(dir), None) => Some((dir.join("config.json"), Some(dir.as_path()))),
        (None, None) => None,
    };
    // An encoder–decoder has a config of its own, and a Hugging Face
    // `save_pretrained` config says its model_type.
    if let Some((path, dir)) = &described {
        let bytes = lrp_io::read_file_capped(path, limits.max_config_bytes, lrp_io::LimitKind::ConfigBytes)?;
        let source = dir.unwrap_or(path).display().to_string();
        if declares_seq2seq(&bytes) {
            let info = seq2seq_info(source, path, &bytes, *dir, &limits)?;
            return write_info(out, as_text, &info, describe_seq2seq);
        }
        if lrp_io::is_hugging_face(&bytes) {
            let info = hugging_face_info(source, path, &bytes, *dir, &limits)?;
            return write_info(out, as_text, &info, describe_hugging_face);
        }
    }
    let (source, config, files) = match (&args.dir, &args.config) {
        (_, Some(file)) => (file.display().to_string(), read_config(file, &limits)?, Files::None),
        (Some(dir), None) => (
            dir.display().to_string(),
            read_config(&dir.join("config.json"), &limits)?,
            Files::Directory(dir),
        ),
        (None, None) => {
            // Loading it checks that its embedded files agree.
            lrp_app::load_model::<f64>(None, &limits)?;
            (BUILT_IN.to_string(), lrp_app::builtin_config()?, Files::BuiltIn)
        }
    };
    let manifest = tensor_manifest(&config).map_err(|source_error| lrp_io::Error::Model {
        dir: PathBuf::from(&source),
        source: source_error,
    })?;
    // The config is valid; now see whether the files behind it agree.
    let check = match files {
        Files::Directory(dir) => Some(load_check(lrp_io::load_model_with::<f64>(dir, &limits))),
        Files::BuiltIn => Some("ok".to_string()),
        Files::None => None,
    };
    let output_width = config.output_width();
    let head_width = config.head_width();
    let (tensors, parameters) = tensor_entries(manifest);
    let canonizers = canonizer_entries(&config);
    let info = ModelInfo {
        source,
        parameters,
        tensors,
        canonizers,
        output_width,
        head_width,
        config,
        check,
    };
    if as_text {
        out.write_all(describe(&info).as_bytes())?;
    } else {
        print_json_line(out, &info)?;
    }
    Ok(())
}

/// Writes `info` as its text view (`describe`) or as one JSON line.
fn write_info<I: Serialize>(
    out: &mut dyn Write,
    as_text: bool,
    info: &I,
    describe: impl Fn(&I) -> String,
) -> Result<(), CliError> {
    if as_text {
        out.write_all(describe(info).as_bytes())?;
    } else {
        print_json_line(out, info)?;
    }
    Ok(())
}

/// Everything `model-info` reports on a Hugging Face directory.
#[derive(Debug, Serialize)]
struct HuggingFaceInfo {
    /// What was described: a directory or a config file.
    source: String,
    /// The Hugging Face `model_type`.
    model_type: &'static str,
    /// The keys the computation depends on, defaults filled in.
    config: HuggingFaceConfig,
    /// The chain lrp runs, when the model loads.
    chain: Option<String>,
    /// The tensors `model.safetensors` must hold, in the order the model
    /// is built from them.
    tensors: Vec<TensorEntry>,
    /// Numbers in all tensors together.
    parameters: usize,
    /// For a directory: `"ok"` when the weights load, else the problem in
    /// one line; `null` for a bare config.
    check: Option<String>,
}

/// What `model-info` reports on the Hugging Face config in `bytes` (read
/// from `path`), and for a directory whether the model loads.
fn hugging_face_info(
    source: String,
    path: &Path,
    bytes: &[u8],
    dir: Option<&Path>,
    limits: &lrp_io::Limits,
) -> Result<HuggingFaceInfo, CliError> {
    let config = lrp_io::hugging_face_config(path, bytes)?;
    let loaded = dir.map(|dir| lrp_io::load_model_with::<f64>(dir, limits));
    let chain = loaded
        .as_ref()
        .and_then(|l| l.as_ref().ok())
        .map(|d| d.model.describe());
    let (tensors, parameters) = tensor_entries(config.tensor_manifest());
    Ok(HuggingFaceInfo {
        source,
        model_type: config.model_type(),
        chain,
        tensors,
        parameters,
        config,
        check: loaded.map(load_check),
    })
}

/// The text view of a Hugging Face model: one line per part, then the
/// tensor table.
fn describe_hugging_face(info: &HuggingFaceInfo) -> String {
    let mut lines: Vec<(&str, String)> = vec![("model", info.source.clone())];
    match &info.config {
        HuggingFaceConfig::Mamba(c) => describe_mamba(c, &mut lines),
        HuggingFaceConfig::Xlstm(c) => describe_xlstm(c, &mut lines),
    }
    if let Some(chain) = &info.chain {
        lines.insert(lines.len() - 1, ("chain", chain.clone()));
    }
    table(lines, info.check.as_deref(), &info.tensors, info.parameters)
}

/// The lines of a Mamba model, its rules last.
fn describe_mamba(c: &lrp_models::mamba::MambaConfig, lines: &mut Vec<(&str, String)>) {
    lines.push((
        "format",
        "Hugging Face save_pretrained, model_type mamba (MambaForCausalLM), model.safetensors".to_string(),
    ));
    lines.push((
        "embedding",
        format!("V = {} tokens, H = {}", c.vocab_size, c.hidden_size),
    ));
    lines.push((
        "blocks",
        format!(
            "{} Mamba blocks: inner Di = {}, state S = {}, conv kernel K = {}, time-step rank R = {}, \
             RMSNorm eps {}, in/out bias {}, conv bias {}",
            c.num_hidden_layers,
            c.intermediate_size,
            c.state_size,
            c.conv_kernel,
            c.time_step_rank,
            c.layer_norm_epsilon,
            c.use_bias,
            c.use_conv_bias
        ),
    ));
    lines.push((
        "head",
        format!(
            "next-token logits at every position ({})",
            if c.tie_word_embeddings {
                "tied to the embedding"
            } else {
                "lm_head.weight"
            }
        ),
    ));
    lines.push((
        "rules",
        "MambaLRP (docs/rules.md, Mamba): SiLU's sigma, the RMSNorm scale, Delta, A-bar, B-bar and C constant; \
         the gate y * SiLU(z) split half-half"
            .to_string(),
    ));
}

/// The lines of an xLSTM model, its rules last.
fn describe_xlstm(c: &lrp_models::xlstm::XlstmConfig, lines: &mut Vec<(&str, String)>) {
    let cap = |c: Option<f64>| c.map_or("none".to_string(), |c| c.to_string());
    lines.push((
        "format",
        "Hugging Face save_pretrained, model_type xlstm (xLSTMForCausalLM), model.safetensors".to_string(),
    ));
    lines.push((
        "embedding",
        format!("V = {} tokens, H = {}", c.vocab_size, c.hidden_size),
    ));
    lines.push((
        "blocks",
        format!(
            "{} xLSTM blocks (mLSTM, recurrent form): {} heads, q/k width {}, v width {}, feed-forward {}, \
             gate soft cap {}, norm eps {}, eps {}",
            c.num_hidden_layers,
            c.num_heads,
            c.qk_dim,
            c.v_dim,
            c.ffn_dim,
            cap(c.gate_soft_cap),
            c.norm_eps,
            c.eps
        ),
    ));
    lines.push((
        "head",
        format!(
            "next-token logits at every position (lm_head.weight, logit soft cap {})",
            cap(c.output_logit_soft_cap)
        ),
    ));
    lines.push((
        "rules",
        "xLSTM (docs/rules.md, xLSTM): the gates, the stabiliser, the denominator and the norms' scales constant; \
         q.k weights x v by the products' gate rule (signal-take-all; half for AttnLRP); up takes the \
         feed-forward's relevance; the logit soft cap passes relevance unchanged"
            .to_string(),
    ));
}

/// Whether a config's bytes declare `"architecture": "seq2seq"` (bytes
/// that are no JSON object are read, and refused, as a classifier's).
fn declares_seq2seq(bytes: &[u8]) -> bool {
    serde_json::from_slice::<serde_json::Value>(bytes)
        .ok()
        .and_then(|v| v.get("architecture")?.as_str().map(|a| a == ARCHITECTURE))
        .unwrap_or(false)
}

/// What `model-info` reports on the seq2seq config in `bytes` (read from
/// `path`), and for a directory whether the model loads.
fn seq2seq_info(
    source: String,
    path: &Path,
    bytes: &[u8],
    dir: Option<&Path>,
    limits: &lrp_io::Limits,
) -> Result<Seq2SeqInfo, CliError> {
    let config: Seq2SeqConfig = serde_json::from_slice(bytes).map_err(|e| lrp_io::Error::Config {
        path: path.to_path_buf(),
        message: e.to_string(),
    })?;
    let model_error = |source_error| lrp_io::Error::Model {
        dir: PathBuf::from(&source),
        source: source_error,
    };
    config.validate().map_err(model_error)?;
    let manifest = seq2seq_manifest(&config).map_err(model_error)?;
    let check = dir.map(|dir| load_check(lrp_io::load_seq2seq::<f64>(dir, limits)));
    let (tensors, parameters) = tensor_entries(manifest);
    Ok(Seq2SeqInfo {
        source,
        encoder_width: config.encoder_width(),
        decoder_input_width: config.decoder_input_width(),
        parameters,
        tensors,
        config,
        check,
    })
}

/// The text view of an encoder–decoder: one line per part, then the
/// tensor table.
fn describe_seq2seq(info: &Seq2SeqInfo) -> String {
    let c = &info.config;
    let (e, d) = (&c.encoder, &c.decoder);
    let named = |file: &Option<String>| match file {
        Some(f) => format!("vocabulary {f}"),
        None => "no vocabulary file (text cannot be read)".to_string(),
    };
    let mut lines: Vec<(&str, String)> = vec![("model", info.source.clone())];
    lines.push((
        "format",
        format!(
            "{} version {}, seq2seq, layout {}, weights {}",
            c.format,
            c.version,
            c.layout.name(),
            c.weights
        ),
    ));
    let mut source = format!(
        "tokens through source_embedding.weight [Vs = {}, Es = {}], {}",
        c.source_vocab_size,
        e.input_size,
        named(&c.source_vocab)
    );
    match &c.unk_token {
        Some(u) => source.push_str(&format!(", unknown words -> {u:?}")),
        None => source.push_str(", no unk_token (an unknown word is an error)"),
    }
    source.push_str(if c.lowercase { ", lowercased" } else { ", case kept" });
    lines.push(("source", source));
    lines.push(("encoder", encoder_line(e, info.encoder_width)));
    lines.push((
        "decoder",
        format!(
            "{}, Et = {}, Hd = {}, input Ex = {}{}, initial state {}",
            d.cell.name(),
            d.input_size,
            d.hidden_size,
            info.decoder_input_width,
            if d.input_feeding { " (input feeding)" } else { "" },
            match d.init {
                DecoderInit::Bridge => "bridge (from the encoder's final state)",
                _ => "zero",
            }
        ),
    ));
    lines.push((
        "attention",
        match c.attention.size {
            Some(size) => format!("{}, A = {size}", c.attention.kind.name()),
            None => c.attention.kind.name().to_string(),
        },
    ));
    let end = match c.target_end {
        Some(end) => format!("end id {end}"),
        None => "no end id (greedy decoding runs to --max-output-length)".to_string(),
    };
    lines.push((
        "target",
        format!(
            "Vt = {} tokens, {}, start id {}, {end}",
            c.target_vocab_size,
            named(&c.target_vocab),
            c.target_start
        ),
    ));
    table(lines, info.check.as_deref(), &info.tensors, info.parameters)
}

/// One layer of a convolutional front end in the text view, as PyTorch's
/// arguments: `front.0 conv1d 3 -> 8 channels, kernel 5, stride 1, padding
/// 2, dilation 1, with bias`.
fn front_line(k: usize, layer: &FrontLayer) -> String {
    let window = layer.window().map(|w| {
        format!(
            "kernel {}, stride {}, padding {}, dilation {}",
            w.kernel, w.stride, w.padding, w.dilation
        )
    });
    match (layer, window) {
        (
            FrontLayer::Conv1d {
                in_channels,
                out_channels,
                bias,
                ..
            },
            Some(window),
        ) => format!(
            "front.{k} conv1d {in_channels} -> {out_channels} channels, {window}, {}",
            if *bias { "with bias" } else { "no bias" }
        ),
        (_, Some(window)) => format!("front.{k} {} over time, {window}", layer.kind()),
        (_, None) => format!("front.{k} {}", layer.kind()),
    }
}

/// The encoder's line of a text view: cell, layers, directions, widths.
fn encoder_line(e: &EncoderConfig, output_width: usize) -> String {
    format!(
        "{}, {} layer{}, {}, H = {} per direction, output D = {output_width}",
        e.cell.name(),
        e.num_layers,
        if e.num_layers == 1 { "" } else { "s" },
        if e.bidirectional {
            "bidirectional"
        } else {
            "unidirectional"
        },
        e.hidden_size,
    )
}

/// The lines of a text view, then the check's line (when there is one)
/// and the tensors' (their values made printable: paths, names and
/// messages come from the files), then the tensor table.
fn table(mut lines: Vec<(&str, String)>, check: Option<&str>, tensors: &[TensorEntry], parameters: usize) -> String {
    if let Some(check) = check {
        lines.push(("check", check.to_string()));
    }
    lines.push(("tensors", format!("{}, {parameters} numbers", tensors.len())));
    let mut text = String::new();
    for (key, value) in lines {
        text.push_str(&format!("{key:<10} {}\n", printable(&value)));
    }
    let width = tensors.iter().map(|t| t.name.len()).max().unwrap_or(0);
    for t in tensors {
        let shape: Vec<String> = t.shape.iter().map(usize::to_string).collect();
        text.push_str(&format!("  {:<width$}  [{}]\n", t.name, shape.join(", ")));
    }
    text
}

/// Reads and parses a `config.json`; its values are checked by the manifest.
fn read_config(path: &Path, limits: &lrp_io::Limits) -> Result<ModelConfig, CliError> {
    let bytes = lrp_io::read_file_capped(path, limits.max_config_bytes, lrp_io::LimitKind::ConfigBytes)?;
    Ok(lrp_io::parse_config(path, &bytes)?)
}

/// The text view: one line per part of the model, then the tensor table.
fn describe(info: &ModelInfo) -> String {
    let c = &info.config;
    let e = &c.encoder;
    let mut lines: Vec<(&str, String)> = vec![("model", info.source.clone())];
    let layout = c.layout.name();
    lines.push((
        "format",
        format!(
            "{} version {}, layout {layout}, weights {}",
            c.format, c.version, c.weights
        ),
    ));
    let input = if c.embedding {
        let mut s = format!(
            "tokens through embedding.weight [V = {}, E = {}]",
            c.vocab_size.unwrap_or(0),
            e.input_size
        );
        match &c.vocab {
            Some(v) => s.push_str(&format!(", vocabulary {v}")),
            None => s.push_str(", no vocabulary file (text cannot be read)"),
        }
        match &c.unk_token {
            Some(u) => s.push_str(&format!(", unknown words -> {u:?}")),
            None => s.push_str(", no unk_token (an unknown word is an error)"),
        }
        s.push_str(if c.lowercase { ", lowercased" } else { ", case kept" });
        s
    } else {
        format!("vectors [T, E = {}]", c.input_width())
    };
    lines.push(("input", input));
    for (k, layer) in c.front.iter().enumerate() {
        lines.push((if k == 0 { "front" } else { "" }, front_line(k, layer)));
    }
    lines.push(("encoder", encoder_line(e, info.output_width)));
    let attention = match &c.attention {
        None => "none".to_string(),
        Some(a) => {
            let query = match a.kind {
                AttentionKind::Context => "learned query",
                _ => "query: the final state",
            };
            let kind = format!("{} ({query})", a.kind.name());
            match a.size {
                Some(size) => format!("{kind}, A = {size}"),
                None => kind,
            }
        }
    };
    // The cell's options, when the config sets them (absent keys keep the
    // PyTorch cell and the line as it always was).
    let mut options = Vec::new();
    if let Some(activation) = e.recurrent_activation {
        options.push(format!("gates {}", activation.name()));
    }
    if let Some(reset) = e.gru_reset {
        options.push(format!("reset {} the recurrent product", reset.name()));
    }
    if let Some(forget) = e.forget_bias {
        options.push(format!("forget bias {forget}"));
    }
    if !options.is_empty() {
        lines.push(("cell", options.join(", ")));
    }
    // The rewrites into the cells' form, when the model is not in
    // PyTorch's already (another layout, or a cell option): a PyTorch model
    // keeps its view as it always was (its one rewrite, the sum of an
    // LSTM's two biases, is in the JSON form).
    if c.layout != Layout::Pytorch || !options.is_empty() {
        for (k, canonizer) in info.canonizers.iter().enumerate() {
            let key = if k == 0 { "canonizers" } else { "" };
            lines.push((key, format!("{}: {}", canonizer.name, canonizer.description)));
        }
    }
    lines.push(("attention", attention));
    let reads = match c.head.input {
        HeadInput::Last => "last (the final state)",
        HeadInput::Context => "context (the attention context)",
        HeadInput::Mean => "mean (the mean over positions)",
        HeadInput::Max => "max (the maximum over positions, per dimension)",
        HeadInput::Each => "each position (a per-step head)",
        other => other.name(),
    };
    let outputs = match c.head.task {
        lrp_models::config::Task::Regression => "real outputs",
        _ => "classes",
    };
    lines.push((
        "head",
        format!(
            "linear on {reads} [{}] -> {} {outputs}, {}",
            info.head_width,
            c.head.num_classes,
            if c.head.bias { "with bias" } else { "no bias" }
        ),
    ));
    let labels = match &c.labels {
        Some(labels) => labels.join(", "),
        None => "none (classes are numbered from 0)".to_string(),
    };
    lines.push(("labels", labels));

    // Paths, labels, names and the check's message come from the files:
    // their control characters are shown escaped, never sent to a terminal.
    table(lines, info.check.as_deref(), &info.tensors, info.parameters)
}
