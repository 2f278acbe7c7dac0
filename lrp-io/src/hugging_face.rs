//! Hugging Face `transformers` model directories, as `save_pretrained`
//! writes them: `config.json` with a `model_type`, and the weights in one
//! `model.safetensors` (float16, bfloat16, float32 or float64, widened to
//! float64). Read with no conversion step; `lrp explain --model DIR`
//! takes them as it takes lrp's own directories.
//!
//! Supported: `model_type` `"mamba"` (`MambaForCausalLM`, see
//! [`lrp_models::mamba`]) and `"xlstm"` (`xLSTMForCausalLM`, see
//! [`lrp_models::xlstm`]). Any other `model_type`, an option lrp does not
//! compute (a Mamba activation other than SiLU, xLSTM biases, fused
//! weights or a training mode), another architecture or sharded weights
//! are refused in one line naming them. A `tokenizer.json` beside them is
//! read with the Hugging Face `tokenizers` crate ([`HfTokenizer`]), so
//! that text can be explained; one that does not load is refused in one
//! line.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use lrp_core::Float;
use lrp_models::mamba::{mamba_model, MambaConfig};
use lrp_models::xlstm::{xlstm_model, XlstmConfig};
use lrp_models::Manifest;
use serde_json::Value;

use crate::message::first_line;
use crate::safetensors_file::read_safetensors;
use crate::text_input::LineLimits;
use crate::{read_file_capped, Error, LimitKind, Limits, ModelDir};

/// The tokenizer file of a `save_pretrained` directory.
const TOKENIZER: &str = "tokenizer.json";

/// A Hugging Face `tokenizer.json`, read with the `tokenizers` crate:
/// text to token ids and the tokens' own strings.
#[derive(Clone)]
pub struct HfTokenizer {
    tokenizer: Arc<tokenizers::Tokenizer>,
}

impl std::fmt::Debug for HfTokenizer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("HfTokenizer")
    }
}

impl HfTokenizer {
    /// The tokenizer in the bytes of a `tokenizer.json` (`path` names it
    /// in messages): one line saying why when it does not load.
    pub fn from_bytes(path: &Path, bytes: &[u8]) -> Result<Self, Error> {
        let tokenizer = tokenizers::Tokenizer::from_bytes(bytes).map_err(|e| Error::Format {
            path: path.to_path_buf(),
            message: format!("the tokenizer does not load: {}", first_line(&e.to_string())),
        })?;
        Ok(Self {
            tokenizer: Arc::new(tokenizer),
        })
    }

    /// The ids and tokens of `text` (no special tokens added: what was
    /// typed), within the limits of one line of text (`what` names it in
    /// messages): its bytes before, its tokens after tokenising.
    pub fn encode_within(&self, what: &str, text: &str, limits: &Limits) -> Result<(Vec<usize>, Vec<String>), Error> {
        let mut counter = LineLimits::new(Path::new(what), limits);
        counter.line(1, text)?;
        let encoding = self.tokenizer.encode(text, false).map_err(|e| Error::Format {
            path: PathBuf::from(what),
            message: format!("the tokenizer failed: {}", first_line(&e.to_string())),
        })?;
        counter.tokens(1, encoding.len())?;
        let ids = encoding.get_ids().iter().map(|&id| id as usize).collect();
        Ok((ids, encoding.get_tokens().to_vec()))
    }
}

/// The `model_type`s lrp reads.
const SUPPORTED: &str = "\"mamba\", \"xlstm\"";

/// The model a Hugging Face `config.json` describes.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
#[serde(untagged)]
pub enum HuggingFaceConfig {
    /// `model_type` `"mamba"`.
    Mamba(MambaConfig),
    /// `model_type` `"xlstm"`.
    Xlstm(XlstmConfig),
}

impl HuggingFaceConfig {
    /// The `model_type`.
    pub fn model_type(&self) -> &'static str {
        match self {
            Self::Mamba(_) => "mamba",
            Self::Xlstm(_) => "xlstm",
        }
    }

    /// Every tensor `model.safetensors` must hold, with its shape.
    pub fn tensor_manifest(&self) -> Manifest {
        match self {
            Self::Mamba(c) => c.tensor_manifest(),
            Self::Xlstm(c) => c.tensor_manifest(),
        }
    }
}

/// The weights file of a `save_pretrained` directory.
const WEIGHTS: &str = "model.safetensors";

/// The files of a Hugging Face directory lrp reads besides `config.json`,
/// each with what it is (see [`crate::model_files`]).
pub(crate) fn files(dir: &Path) -> Vec<(String, PathBuf)> {
    vec![
        ("the model's weights".to_string(), dir.join(WEIGHTS)),
        ("the model's tokenizer".to_string(), dir.join(TOKENIZER)),
    ]
}

/// Whether the bytes of a `config.json` are a Hugging Face config: a JSON
/// object with a `model_type` (lrp's own configs have none).
///
/// ```
/// assert!(lrp_io::is_hugging_face(br#"{"model_type": "mamba"}"#));
/// assert!(!lrp_io::is_hugging_face(br#"{"format": "lrp-model"}"#));
/// ```
pub fn is_hugging_face(config_bytes: &[u8]) -> bool {
    serde_json::from_slice::<Value>(config_bytes).is_ok_and(|v| v.get("model_type").is_some())
}

/// The model of a Hugging Face directory `dir` whose `config.json` (at
/// `config_path`) holds `config_bytes`, within `limits`.
pub(crate) fn load<T: Float>(
    dir: &Path,
    config_path: &Path,
    config_bytes: &[u8],
    limits: &Limits,
) -> Result<ModelDir<T>, Error> {
    let config = hugging_face_config(config_path, config_bytes)?;
    if dir.join("model.safetensors.index.json").exists() && !dir.join(WEIGHTS).exists() {
        return Err(Error::Config {
            path: config_path.to_path_buf(),
            message: "sharded weights (model.safetensors.index.json) are not supported; save with \
                      save_pretrained(..., max_shard_size=\"100GB\") for one model.safetensors"
                .into(),
        });
    }
    let weights_path = dir.join(WEIGHTS);
    let weights = read_file_capped(&weights_path, limits.max_weights_bytes, LimitKind::WeightsBytes)?;
    let tensors = read_safetensors(&weights_path, &weights)?;
    let model = match &config {
        HuggingFaceConfig::Mamba(c) => mamba_model::<T>(c, tensors),
        HuggingFaceConfig::Xlstm(c) => xlstm_model::<T>(c, tensors),
    }
    .map_err(|source| Error::Model {
        dir: dir.to_path_buf(),
        source,
    })?;
    let tokenizer_path = dir.join(TOKENIZER);
    let tokenizer = if tokenizer_path.exists() {
        let bytes = read_file_capped(&tokenizer_path, limits.max_vocab_bytes, LimitKind::VocabBytes)?;
        Some(HfTokenizer::from_bytes(&tokenizer_path, &bytes)?)
    } else {
        None
    };
    Ok(ModelDir {
        model,
        vocab: None,
        tokenizer,
    })
}

/// The model of a Hugging Face `config.json` (`path` names it in
/// messages): `model_type` must be `"mamba"` or `"xlstm"`; keys it lacks
/// take `transformers`' defaults (for Mamba `time_step_rank` `"auto"` is
/// `ceil(H / 16)` and `intermediate_size` is `expand * H`).
///
/// ```
/// use lrp_io::{hugging_face_config, HuggingFaceConfig};
/// let path = std::path::Path::new("config.json");
/// let config = hugging_face_config(path, br#"{"model_type": "mamba", "hidden_size": 40, "vocab_size": 7}"#)?;
/// let HuggingFaceConfig::Mamba(config) = config else { panic!("a Mamba config") };
/// assert_eq!((config.intermediate_size, config.time_step_rank, config.state_size), (80, 3, 16));
/// let config = hugging_face_config(path, br#"{"model_type": "xlstm", "hidden_size": 9, "num_heads": 3, "qk_dim_factor": 0.34}"#)?;
/// let HuggingFaceConfig::Xlstm(config) = config else { panic!("an xLSTM config") };
/// assert_eq!((config.qk_dim, config.v_dim, config.ffn_dim), (3, 9, 64));
/// let err = hugging_face_config(path, br#"{"model_type": "mamba2"}"#).unwrap_err();
/// assert_eq!(
///     err.to_string(),
///     "config.json: model_type \"mamba2\" is not supported (lrp reads \"mamba\", \"xlstm\")"
/// );
/// # Ok::<(), lrp_io::Error>(())
/// ```
pub fn hugging_face_config(path: &Path, bytes: &[u8]) -> Result<HuggingFaceConfig, Error> {
    let fail = |message: String| Error::Config {
        path: path.to_path_buf(),
        message,
    };
    let value: Value = serde_json::from_slice(bytes).map_err(|e| fail(e.to_string()))?;
    let model_type = value.get("model_type").cloned().unwrap_or(Value::Null);
    match model_type.as_str() {
        Some("mamba") => mamba_config(&value, &fail).map(HuggingFaceConfig::Mamba),
        Some("xlstm") => xlstm_config(&value, &fail).map(HuggingFaceConfig::Xlstm),
        _ => Err(fail(format!(
            "model_type {model_type} is not supported (lrp reads {SUPPORTED})"
        ))),
    }
}

/// A whole number `>= 0` at `key`, or `default` when absent or null.
fn size(value: &Value, key: &str, default: usize, fail: &dyn Fn(String) -> Error) -> Result<usize, Error> {
    match value.get(key) {
        None | Some(Value::Null) => Ok(default),
        Some(v) => v
            .as_u64()
            .and_then(|n| usize::try_from(n).ok())
            .ok_or_else(|| fail(format!("{key} must be a whole number >= 0, found {v}"))),
    }
}

/// `true` or `false` at `key`, or `default` when absent or null.
fn flag(value: &Value, key: &str, default: bool, fail: &dyn Fn(String) -> Error) -> Result<bool, Error> {
    match value.get(key) {
        None | Some(Value::Null) => Ok(default),
        Some(v) => v
            .as_bool()
            .ok_or_else(|| fail(format!("{key} must be true or false, found {v}"))),
    }
}

/// A number at `key`, or `default` when absent or null.
fn number(value: &Value, key: &str, default: f64, fail: &dyn Fn(String) -> Error) -> Result<f64, Error> {
    match value.get(key) {
        None | Some(Value::Null) => Ok(default),
        Some(v) => v
            .as_f64()
            .ok_or_else(|| fail(format!("{key} must be a number, found {v}"))),
    }
}

/// Refuses `architectures` that do not list `expected`.
fn check_architectures(value: &Value, expected: &str, fail: &dyn Fn(String) -> Error) -> Result<(), Error> {
    if let Some(archs) = value.get("architectures").and_then(Value::as_array) {
        if !archs.iter().any(|a| a.as_str() == Some(expected)) {
            return Err(fail(format!(
                "architectures {} is not supported (lrp reads \"{expected}\")",
                Value::Array(archs.clone())
            )));
        }
    }
    Ok(())
}

/// The [`XlstmConfig`] of an `xlstm` config, with `transformers`'
/// defaults and its layers' widths: `qk_dim = int(H * qk_dim_factor)`,
/// `v_dim = int(H * v_dim_factor)`, the feed-forward width `H *
/// ffn_proj_factor` rounded up to a multiple of
/// `ffn_round_up_to_multiple_of`. lrp computes the recurrent form in
/// float64 (what `transformers` runs in `mode` `"inference"` for
/// sequences shorter than `chunk_size`, without its float32 casts);
/// options that change the computation otherwise are refused.
fn xlstm_config(value: &Value, fail: &dyn Fn(String) -> Error) -> Result<XlstmConfig, Error> {
    check_architectures(value, "xLSTMForCausalLM", fail)?;
    let expect = |key: &str, supported: &Value| -> Result<(), Error> {
        match value.get(key) {
            Some(v) if v != supported => Err(fail(format!("{key} {v} is not supported (lrp reads {supported})"))),
            _ => Ok(()),
        }
    };
    expect("use_bias", &Value::Bool(false))?;
    expect("weight_mode", &Value::from("single"))?;
    expect("mode", &Value::from("inference"))?;
    expect("step_kernel", &Value::from("native"))?;
    expect("sequence_kernel", &Value::from("native_sequence__native"))?;
    let hidden_size = match value.get("hidden_size") {
        None | Some(Value::Null) => size(value, "embedding_dim", 4096, fail)?,
        Some(_) => size(value, "hidden_size", 4096, fail)?,
    };
    let embedding_dim = size(value, "embedding_dim", hidden_size, fail)?;
    if embedding_dim != hidden_size {
        return Err(fail(format!(
            "embedding_dim {embedding_dim} differs from hidden_size {hidden_size} (not supported)"
        )));
    }
    let num_hidden_layers = match value.get("num_hidden_layers") {
        None | Some(Value::Null) => size(value, "num_blocks", 32, fail)?,
        Some(_) => size(value, "num_hidden_layers", 32, fail)?,
    };
    let width = |key: &str, default: f64| -> Result<usize, Error> {
        let factor = number(value, key, default, fail)?;
        let product = hidden_size as f64 * factor;
        if !(product.is_finite() && product >= 0.0) {
            return Err(fail(format!("{key} must be a finite number >= 0, found {factor}")));
        }
        // Python's int(): truncation; saturates far beyond any limit.
        Ok(product as usize)
    };
    let qk_dim = width("qk_dim_factor", 0.5)?;
    let v_dim = width("v_dim_factor", 1.0)?;
    let up = number(value, "ffn_proj_factor", 2.667, fail)? * hidden_size as f64;
    let multiple = size(value, "ffn_round_up_to_multiple_of", 64, fail)?.max(1) as f64;
    if !(up.is_finite() && up >= 0.0) {
        return Err(fail(format!(
            "ffn_proj_factor must be a finite number >= 0, giving {up}"
        )));
    }
    // transformers' round_up_to_next_multiple_of: ((x + m - 1) // m) * m.
    let ffn_dim = (((up + multiple - 1.0) / multiple).floor() * multiple) as usize;
    let cap = |key: &str, default: f64| -> Result<Option<f64>, Error> {
        match value.get(key) {
            Some(Value::Null) => Ok(None),
            _ => number(value, key, default, fail).map(Some),
        }
    };
    let config = XlstmConfig {
        vocab_size: size(value, "vocab_size", 50304, fail)?,
        hidden_size,
        num_heads: size(value, "num_heads", 8, fail)?,
        qk_dim,
        v_dim,
        ffn_dim,
        num_hidden_layers,
        norm_eps: number(value, "norm_eps", 1e-6, fail)?,
        eps: number(value, "eps", 1e-6, fail)?,
        gate_soft_cap: cap("gate_soft_cap", 15.0)?,
        output_logit_soft_cap: cap("output_logit_soft_cap", 30.0)?,
    };
    config.validate().map_err(|e| fail(e.to_string()))?;
    Ok(config)
}

/// The [`MambaConfig`] of a `mamba` config, with `transformers`' defaults.
fn mamba_config(value: &Value, fail: &dyn Fn(String) -> Error) -> Result<MambaConfig, Error> {
    if let Some(act) = value.get("hidden_act").filter(|v| v.as_str() != Some("silu")) {
        return Err(fail(format!("hidden_act {act} is not supported (lrp reads \"silu\")")));
    }
    check_architectures(value, "MambaForCausalLM", fail)?;
    let size = |key: &str, default: usize| size(value, key, default, fail);
    let flag = |key: &str, default: bool| flag(value, key, default, fail);
    let hidden_size = size("hidden_size", 768)?;
    let expand = size("expand", 2)?;
    let intermediate_size = size("intermediate_size", expand.saturating_mul(hidden_size))?;
    let time_step_rank = match value.get("time_step_rank") {
        None | Some(Value::Null) => hidden_size.div_ceil(16),
        Some(Value::String(s)) if s == "auto" => hidden_size.div_ceil(16),
        Some(_) => size("time_step_rank", 0)?,
    };
    let layer_norm_epsilon = number(value, "layer_norm_epsilon", 1e-5, fail)?;
    let config = MambaConfig {
        vocab_size: size("vocab_size", 50280)?,
        hidden_size,
        intermediate_size,
        state_size: size("state_size", 16)?,
        num_hidden_layers: size("num_hidden_layers", 32)?,
        conv_kernel: size("conv_kernel", 4)?,
        time_step_rank,
        layer_norm_epsilon,
        use_bias: flag("use_bias", false)?,
        use_conv_bias: flag("use_conv_bias", true)?,
        tie_word_embeddings: flag("tie_word_embeddings", true)?,
    };
    config.validate().map_err(|e| fail(e.to_string()))?;
    Ok(config)
}
