//! Hugging Face `transformers` model directories, as `save_pretrained`
//! writes them: `config.json` with a `model_type`, and the weights in one
//! `model.safetensors` (float16, bfloat16, float32 or float64, widened to
//! float64). Read with no conversion step; `lrp explain --model DIR`
//! takes them as it takes lrp's own directories.
//!
//! Supported: `model_type` `"mamba"` (`MambaForCausalLM`, see
//! [`lrp_models::mamba`]). Any other `model_type`, an activation other
//! than SiLU, another architecture or sharded weights are refused in one
//! line naming them. A `tokenizer.json` beside them is read with the
//! Hugging Face `tokenizers` crate ([`HfTokenizer`]), so that text can be
//! explained; one that does not load is refused in one line.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use lrp_core::Float;
use lrp_models::mamba::{mamba_model, MambaConfig};
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
const SUPPORTED: &str = "\"mamba\"";

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
    let model = mamba_model::<T>(&config, tensors).map_err(|source| Error::Model {
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

/// The [`MambaConfig`] of a Hugging Face `config.json` (`path` names it
/// in messages): `model_type` must be `"mamba"`; keys it lacks take
/// `transformers`' defaults (`time_step_rank` `"auto"` is `ceil(H / 16)`,
/// `intermediate_size` is `expand * H`).
///
/// ```
/// use lrp_io::hugging_face_config;
/// let path = std::path::Path::new("config.json");
/// let config = hugging_face_config(path, br#"{"model_type": "mamba", "hidden_size": 40, "vocab_size": 7}"#)?;
/// assert_eq!((config.intermediate_size, config.time_step_rank, config.state_size), (80, 3, 16));
/// let err = hugging_face_config(path, br#"{"model_type": "mamba2"}"#).unwrap_err();
/// assert_eq!(err.to_string(), "config.json: model_type \"mamba2\" is not supported (lrp reads \"mamba\")");
/// # Ok::<(), lrp_io::Error>(())
/// ```
pub fn hugging_face_config(path: &Path, bytes: &[u8]) -> Result<MambaConfig, Error> {
    let fail = |message: String| Error::Config {
        path: path.to_path_buf(),
        message,
    };
    let value: Value = serde_json::from_slice(bytes).map_err(|e| fail(e.to_string()))?;
    let model_type = value.get("model_type").cloned().unwrap_or(Value::Null);
    if model_type.as_str() != Some("mamba") {
        return Err(fail(format!(
            "model_type {model_type} is not supported (lrp reads {SUPPORTED})"
        )));
    }
    if let Some(act) = value.get("hidden_act").filter(|v| v.as_str() != Some("silu")) {
        return Err(fail(format!("hidden_act {act} is not supported (lrp reads \"silu\")")));
    }
    if let Some(archs) = value.get("architectures").and_then(Value::as_array) {
        if !archs.iter().any(|a| a.as_str() == Some("MambaForCausalLM")) {
            return Err(fail(format!(
                "architectures {} is not supported (lrp reads \"MambaForCausalLM\")",
                Value::Array(archs.clone())
            )));
        }
    }
    let size = |key: &str, default: usize| -> Result<usize, Error> {
        match value.get(key) {
            None | Some(Value::Null) => Ok(default),
            Some(v) => v
                .as_u64()
                .and_then(|n| usize::try_from(n).ok())
                .ok_or_else(|| fail(format!("{key} must be a whole number >= 0, found {v}"))),
        }
    };
    let flag = |key: &str, default: bool| -> Result<bool, Error> {
        match value.get(key) {
            None | Some(Value::Null) => Ok(default),
            Some(v) => v
                .as_bool()
                .ok_or_else(|| fail(format!("{key} must be true or false, found {v}"))),
        }
    };
    let hidden_size = size("hidden_size", 768)?;
    let expand = size("expand", 2)?;
    let intermediate_size = size("intermediate_size", expand.saturating_mul(hidden_size))?;
    let time_step_rank = match value.get("time_step_rank") {
        None | Some(Value::Null) => hidden_size.div_ceil(16),
        Some(Value::String(s)) if s == "auto" => hidden_size.div_ceil(16),
        Some(_) => size("time_step_rank", 0)?,
    };
    let layer_norm_epsilon = match value.get("layer_norm_epsilon") {
        None | Some(Value::Null) => 1e-5,
        Some(v) => v
            .as_f64()
            .ok_or_else(|| fail(format!("layer_norm_epsilon must be a number, found {v}")))?,
    };
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
