//! Shared helpers of the lrp integration tests: where the fixtures are, the
//! golden and parity case formats, a comparison that prints expected and
//! got side by side, seeded random models, and an in-process `lrp` runner.
//!
//! Fixtures (copied from the project's shared material, so a fresh clone
//! needs nothing else):
//! - `fixtures/golden/`: cases computed by the published numpy reference of
//!   Arras et al. 2017 (`reference-*`) and by an independent implementation
//!   of `docs/rules.md` (the others); see `fixtures/golden/README.md`.
//! - `fixtures/reference/sst-bilstm/`: the published SST BiLSTM.
//! - `fixtures/parity/`: models and outputs written by PyTorch through
//!   `tools/make_parity_fixtures.py`.

use std::path::PathBuf;

use lrp_models::config::ModelConfig;
use lrp_models::{tensor_manifest, Model, Tensor, Tensors};
use nalgebra::DMatrix;
use serde::Deserialize;

/// Absolute path of a fixture, relative to `tests/fixtures`.
pub fn fixture(relative: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("fixtures")
        .join(relative)
}

/// One case of `fixtures/golden/cases.json`.
#[derive(Debug, Clone, Deserialize)]
pub struct GoldenCase {
    /// `reference-k` or `<model>-k`.
    pub name: String,
    /// Model directory relative to `fixtures/golden`.
    pub model: String,
    /// `.npy` input relative to `fixtures/golden`, for vector models.
    pub input: Option<String>,
    /// Words, for embedding models (also given for reference cases, for reading).
    pub tokens: Option<Vec<String>>,
    /// Explained class.
    pub target: usize,
    /// Epsilon.
    pub eps: f64,
    /// Bias factor.
    pub bias_factor: f64,
    /// Class scores `[C]`.
    pub scores: Vec<f64>,
    /// Attention weights `[T]`.
    #[serde(default)]
    pub attention: Option<Vec<f64>>,
    /// `[T][E]`.
    pub input_relevance: Vec<Vec<f64>>,
    /// `[T]`.
    pub token_relevance: Vec<f64>,
    /// Relevance of the initial states.
    pub initial_state_relevance: f64,
    /// `d s_target / d x`, `[T][E]`.
    pub gradient: Vec<Vec<f64>>,
    /// `[T]`.
    pub sa: Vec<f64>,
    /// `[T]`.
    pub gi: Vec<f64>,
}

/// All golden cases.
pub fn golden_cases() -> Vec<GoldenCase> {
    #[derive(Deserialize)]
    struct File {
        cases: Vec<GoldenCase>,
    }
    let text = std::fs::read_to_string(fixture("golden/cases.json")).expect("golden cases are part of the repository");
    serde_json::from_str::<File>(&text).expect("golden cases parse").cases
}

impl GoldenCase {
    /// Whether the published reference implementation produced this case.
    pub fn is_reference(&self) -> bool {
        self.name.starts_with("reference-")
    }

    /// The model directory.
    pub fn model_dir(&self) -> PathBuf {
        fixture("golden").join(&self.model)
    }

    /// Whether the model reads tokens (the reference cases list tokens only
    /// for reading; their model takes vectors).
    pub fn reads_tokens(&self) -> bool {
        self.input.is_none()
    }
}

/// Flattens `[T][E]` rows.
pub fn flat(rows: &[Vec<f64>]) -> Vec<f64> {
    rows.iter().flatten().copied().collect()
}

/// `[E, T]` matrix as `[T][E]` rows.
pub fn rows_of(m: &DMatrix<f64>) -> Vec<Vec<f64>> {
    m.column_iter().map(|c| c.iter().copied().collect()).collect()
}

/// Checks `got` against `want` element by element:
/// `|got - want| <= rtol * max(|want|, max_k |want_k| * 1e-6)`, i.e. relative
/// error, floored at a millionth of the array's largest entry so that
/// entries that cancel to almost nothing are judged against the scale of the
/// computation. Panics with the worst entries side by side.
pub fn assert_close(what: &str, got: &[f64], want: &[f64], rtol: f64) {
    assert_eq!(
        got.len(),
        want.len(),
        "{what}: length: got {}, want {}",
        got.len(),
        want.len()
    );
    let scale = want.iter().fold(0.0f64, |m, v| m.max(v.abs())) * 1e-6;
    let mut bad = Vec::new();
    for (k, (&g, &w)) in got.iter().zip(want).enumerate() {
        let allowed = rtol * w.abs().max(scale);
        // Written so that a NaN on either side counts as a mismatch.
        let within = (g - w).abs() <= allowed;
        if !within {
            bad.push(format!(
                "  [{k}] got {g:.17e} want {w:.17e} (diff {:.3e}, allowed {allowed:.3e})",
                (g - w).abs()
            ));
        }
    }
    assert!(
        bad.is_empty(),
        "{what}: {} of {} entries differ:\n{}",
        bad.len(),
        want.len(),
        bad.iter().take(8).cloned().collect::<Vec<_>>().join("\n")
    );
}

/// Relative error of a conserved total: `|got - want| / |want|`.
pub fn relative_error(got: f64, want: f64) -> f64 {
    (got - want).abs() / want.abs()
}

/// The seeded generator of test data (re-exported so a failing proptest
/// seed reproduces exactly).
pub use lrp_models::faithfulness::SplitMix64 as SplitMix;

/// Every tensor of `config`, each value uniform in `[-scale, scale)`.
pub fn random_tensors(config: &ModelConfig, seed: u64, scale: f64) -> Vec<(String, Tensor)> {
    let mut rng = SplitMix(seed);
    tensor_manifest(config)
        .expect("valid config")
        .into_iter()
        .map(|(name, shape)| {
            let count = shape.iter().product();
            let values = (0..count).map(|_| rng.next_signed() * scale).collect();
            (name, Tensor { shape, values })
        })
        .collect()
}

/// Builds a model from named tensors.
pub fn model_from(config: &ModelConfig, tensors: Vec<(String, Tensor)>) -> Model<f64> {
    let mut all = Tensors::new();
    for (name, tensor) in tensors {
        all.insert(name, tensor);
    }
    Model::from_config(config.clone(), all).expect("tensors fit the config")
}

/// A model of `config` with every parameter uniform in `[-scale, scale)`.
pub fn random_model(config: &ModelConfig, seed: u64, scale: f64) -> Model<f64> {
    model_from(config, random_tensors(config, seed, scale))
}

/// The config of a vector-input model, `pytorch` layout.
#[allow(clippy::too_many_arguments)]
pub fn architecture(
    cell: &str,
    bidirectional: bool,
    layers: usize,
    input: usize,
    hidden: usize,
    attention: Option<(&str, usize)>,
    head: &str,
    classes: usize,
) -> ModelConfig {
    let attention = match attention {
        None => serde_json::Value::Null,
        Some((kind @ ("context" | "additive"), size)) => serde_json::json!({"kind": kind, "size": size}),
        Some((kind, _)) => serde_json::json!({"kind": kind}),
    };
    serde_json::from_value(serde_json::json!({
        "format": "lrp-model", "version": 1, "layout": "pytorch", "weights": "model.safetensors",
        "encoder": {"cell": cell, "input_size": input, "hidden_size": hidden,
                    "num_layers": layers, "bidirectional": bidirectional},
        "attention": attention,
        "head": {"input": head, "num_classes": classes},
    }))
    .expect("valid test config")
}

/// The gradient of `target`'s score at the input `x` `[E, T]` by central
/// differences, `(s(x + h e_i) - s(x - h e_i)) / 2h` for every entry `i`:
/// the reference the models' gradient passes are checked against.
pub fn central_differences(model: &Model<f64>, x: &DMatrix<f64>, target: usize, h: f64) -> DMatrix<f64> {
    let score = |x: DMatrix<f64>| model.forward(x).expect("forward").scores()[target];
    DMatrix::from_fn(x.nrows(), x.ncols(), |r, c| {
        let (mut up, mut down) = (x.clone(), x.clone());
        up[(r, c)] += h;
        down[(r, c)] -= h;
        (score(up) - score(down)) / (2.0 * h)
    })
}

/// Input vectors `[E, T]` uniform in `[-scale, scale)`.
pub fn random_input(e: usize, t: usize, seed: u64, scale: f64) -> DMatrix<f64> {
    let mut rng = SplitMix(seed ^ 0x5151_5151);
    DMatrix::from_fn(e, t, |_, _| rng.next_signed() * scale)
}

/// Parses a config from JSON text (test shorthand).
pub fn config_from_json(json: &str) -> ModelConfig {
    serde_json::from_str(json).expect("test config parses")
}

/// A fresh, empty directory for one test's files, removed when the test
/// passes (a failing test leaves it behind to look at: the panic skips the
/// removal).
#[derive(Debug)]
pub struct ScratchDir(PathBuf);

impl std::ops::Deref for ScratchDir {
    type Target = PathBuf;

    fn deref(&self) -> &PathBuf {
        &self.0
    }
}

impl AsRef<std::path::Path> for ScratchDir {
    fn as_ref(&self) -> &std::path::Path {
        &self.0
    }
}

impl Drop for ScratchDir {
    fn drop(&mut self) {
        if !std::thread::panicking() {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }
}

/// A fresh [`ScratchDir`] named for the test (removed first if left over).
pub fn scratch_dir(name: &str) -> ScratchDir {
    let dir = std::env::temp_dir().join(format!("lrp-tests-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("temporary directory");
    ScratchDir(dir)
}

/// What a run of `lrp` produced.
#[derive(Debug, Clone)]
pub struct CliRun {
    /// Exit code.
    pub code: u8,
    /// Standard output.
    pub stdout: String,
    /// Standard error.
    pub stderr: String,
}

impl CliRun {
    /// The single JSON object printed (panics with stderr otherwise).
    pub fn json(&self) -> serde_json::Value {
        assert_eq!(self.code, 0, "lrp failed: {}", self.stderr);
        serde_json::from_str(self.stdout.trim()).expect("one JSON object")
    }

    /// Every JSON line printed.
    pub fn json_lines(&self) -> Vec<serde_json::Value> {
        assert_eq!(self.code, 0, "lrp failed: {}", self.stderr);
        self.stdout
            .lines()
            .map(|l| serde_json::from_str(l).expect("JSON line"))
            .collect()
    }
}

/// Runs `lrp` in-process with the given arguments (without the program name).
pub fn lrp(args: &[&str]) -> CliRun {
    let mut stdout = Vec::new();
    let mut stderr = Vec::new();
    let code = lrp_cli::run(
        std::iter::once("lrp").chain(args.iter().copied()),
        &mut stdout,
        &mut stderr,
    );
    CliRun {
        code,
        stdout: String::from_utf8(stdout).expect("UTF-8 output"),
        stderr: String::from_utf8(stderr).expect("UTF-8 errors"),
    }
}

/// `lrp groundtruth --model FIXTURES/model --data FIXTURES/data EXTRA...
/// --format json`: its report (fixture paths are relative to
/// `tests/fixtures`).
pub fn groundtruth(model: &str, data: &str, extra: &[&str]) -> serde_json::Value {
    let (model, data) = (fixture(model), fixture(data));
    let mut args = vec![
        "groundtruth",
        "--model",
        model.to_str().expect("UTF-8 path"),
        "--data",
        data.to_str().expect("UTF-8 path"),
        "--format",
        "json",
    ];
    args.extend_from_slice(extra);
    lrp(&args).json()
}

/// The text contents of an SVG's `<text>` elements, in document order.
pub fn svg_texts(svg: &str) -> Vec<String> {
    svg.split("<text")
        .skip(1)
        .map(|t| {
            let inner = &t[t.find('>').expect("a text element") + 1..t.find("</text>").expect("closed")];
            inner.trim().to_string()
        })
        .collect()
}

/// A JSON array of numbers as `Vec<f64>`.
pub fn numbers(value: &serde_json::Value) -> Vec<f64> {
    value
        .as_array()
        .expect("array")
        .iter()
        .map(|v| v.as_f64().expect("number"))
        .collect()
}

/// An npy file (version 1, `<f8`, C order) of this shape and values.
pub fn npy(shape: &[u64], values: &[f64]) -> Vec<u8> {
    let dims: Vec<String> = shape.iter().map(u64::to_string).collect();
    let tuple = if dims.len() == 1 {
        format!("({},)", dims[0])
    } else {
        format!("({})", dims.join(", "))
    };
    let mut header = format!("{{'descr': '<f8', 'fortran_order': False, 'shape': {tuple}, }}");
    while (10 + header.len() + 1) % 64 != 0 {
        header.push(' ');
    }
    header.push('\n');
    let mut bytes = b"\x93NUMPY\x01\x00".to_vec();
    bytes.extend((header.len() as u16).to_le_bytes());
    bytes.extend(header.as_bytes());
    for v in values {
        bytes.extend(v.to_le_bytes());
    }
    bytes
}

/// The README's Rust example, compiled and run as a doctest.
#[doc = include_str!("../../README.md")]
#[cfg(doctest)]
pub struct ReadmeDoctests;

/// The library guide's examples (a model built in code, a rule map by
/// site, a cell and a stage written outside the library), compiled and run
/// as doctests.
#[doc = include_str!("../../docs/library.md")]
#[cfg(doctest)]
pub struct LibraryDoctests;

/// Every other page of `docs/`: any Rust block added there is run too.
#[doc = include_str!("../../docs/cli.md")]
#[doc = include_str!("../../docs/models.md")]
#[doc = include_str!("../../docs/model-format.md")]
#[doc = include_str!("../../docs/rules.md")]
#[doc = include_str!("../../docs/seq2seq.md")]
#[doc = include_str!("../../docs/python.md")]
#[doc = include_str!("../../docs/evaluation.md")]
#[doc = include_str!("../../docs/groundtruth.md")]
#[doc = include_str!("../../docs/whitebox.md")]
#[doc = include_str!("../../docs/performance.md")]
#[doc = include_str!("../../docs/security.md")]
#[doc = include_str!("../../docs/serve.md")]
#[cfg(doctest)]
pub struct DocsDoctests;
