//! Loading an encoder–decoder model directory (`docs/seq2seq.md`): a
//! `config.json` with `"architecture": "seq2seq"`, its safetensors weights
//! and its two vocabularies.

use std::path::Path;

use lrp_core::Float;
use lrp_models::seq2seq::{Seq2Seq, Seq2SeqConfig, ARCHITECTURE};

use crate::model_dir::inside;
use crate::safetensors_file::read_safetensors;
use crate::{read_file_capped, Error, LimitKind, Limits, Vocab};

/// A loaded seq2seq model directory.
#[derive(Debug, Clone)]
pub struct Seq2SeqDir<T: Float> {
    /// The model.
    pub model: Seq2Seq<T>,
    /// The source vocabulary (`source_vocab`), when the config names one.
    pub source_vocab: Option<Vocab>,
    /// The target vocabulary (`target_vocab`), when the config names one.
    pub target_vocab: Option<Vocab>,
}

/// Whether `dir/config.json` declares `"architecture": "seq2seq"` (a
/// missing or unreadable config is not one; loading it then says why).
pub fn is_seq2seq(dir: &Path, limits: &Limits) -> bool {
    let Ok(bytes) = read_file_capped(
        &dir.join("config.json"),
        limits.max_config_bytes,
        LimitKind::ConfigBytes,
    ) else {
        return false;
    };
    serde_json::from_slice::<serde_json::Value>(&bytes)
        .ok()
        .and_then(|v| {
            v.get("architecture")
                .and_then(|a| a.as_str())
                .map(|a| a == ARCHITECTURE)
        })
        .unwrap_or(false)
}

/// Loads a seq2seq model directory within `limits`, computing in `T`:
/// the config's keys and values, the files staying inside the directory,
/// every tensor, and each vocabulary's length against its `*_vocab_size`.
pub fn load_seq2seq<T: Float>(dir: &Path, limits: &Limits) -> Result<Seq2SeqDir<T>, Error> {
    let config_path = dir.join("config.json");
    let bytes = read_file_capped(&config_path, limits.max_config_bytes, LimitKind::ConfigBytes)?;
    let config: Seq2SeqConfig = serde_json::from_slice(&bytes).map_err(|e| Error::Config {
        path: config_path.clone(),
        message: e.to_string(),
    })?;
    let model_error = |source| Error::Model {
        dir: dir.to_path_buf(),
        source,
    };
    config.validate().map_err(model_error)?;
    let weights_path = inside(dir, "weights", &config.weights)?;
    let weights = read_file_capped(&weights_path, limits.max_weights_bytes, LimitKind::WeightsBytes)?;
    let tensors = read_safetensors(&weights_path, &weights)?;
    let vocab = |key: &'static str, name: &Option<String>, size: usize, unk: Option<&str>, lowercase: bool| {
        let Some(name) = name else {
            return Ok(None);
        };
        let path = inside(dir, key, name)?;
        let bytes = read_file_capped(&path, limits.max_vocab_bytes, LimitKind::VocabBytes)?;
        let text = std::str::from_utf8(&bytes).map_err(|e| Error::Format {
            path: path.clone(),
            message: format!("not UTF-8 text: {e}"),
        })?;
        let vocab = Vocab::parse(text, unk, lowercase)?;
        if vocab.len() != size {
            return Err(Error::VocabSize {
                path,
                expected: size,
                found: vocab.len(),
            });
        }
        Ok(Some(vocab))
    };
    let source_vocab = vocab(
        "source_vocab",
        &config.source_vocab,
        config.source_vocab_size,
        config.unk_token.as_deref(),
        config.lowercase,
    )?;
    let target_vocab = vocab(
        "target_vocab",
        &config.target_vocab,
        config.target_vocab_size,
        None,
        false,
    )?;
    let model = Seq2Seq::from_config(config, tensors).map_err(model_error)?;
    Ok(Seq2SeqDir {
        model,
        source_vocab,
        target_vocab,
    })
}
