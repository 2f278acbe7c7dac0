use std::path::{Component, Path, PathBuf};

use lrp_core::Float;
use lrp_models::config::Layout;
use lrp_models::{Model, ModelConfig};

use crate::error::read_file;
use crate::npy::read_npz_tensors;
use crate::safetensors_file::read_safetensors;
use crate::{Error, Vocab};

/// A loaded model directory: the model and, for text models, its vocabulary.
#[derive(Debug, Clone)]
pub struct ModelDir<T: Float> {
    /// The model.
    pub model: Model<T>,
    /// The vocabulary, when the config names one.
    pub vocab: Option<Vocab>,
}

impl<T: Float> ModelDir<T> {
    /// The vocabulary, or an error saying the model cannot read text.
    pub fn vocab(&self) -> Result<&Vocab, Error> {
        self.vocab.as_ref().ok_or(Error::NoVocab)
    }
}

/// Loads a model directory (`MODEL_FORMAT.md`), computing in `T`.
///
/// Checks, before any computation: the config's keys and values, that the
/// weights and vocab paths stay inside the directory, every tensor's
/// presence, shape, element type and finiteness, and that the vocabulary has
/// `vocab_size` lines.
pub fn load_model<T: Float>(dir: impl AsRef<Path>) -> Result<ModelDir<T>, Error> {
    let dir = dir.as_ref();
    let config_path = dir.join("config.json");
    let config_bytes = read_file(&config_path)?;
    let config = parse_config(&config_path, &config_bytes)?;
    let weights_path = dir.join(inside("weights", &config.weights)?);
    let weights = read_file(&weights_path)?;
    let vocab = match &config.vocab {
        Some(name) => {
            let path = dir.join(inside("vocab", name)?);
            Some((path.clone(), read_file(&path)?))
        }
        None => None,
    };
    model_from_parts(
        dir,
        config,
        &weights_path,
        &weights,
        vocab.as_ref().map(|(p, b)| (p.as_path(), b.as_slice())),
    )
}

/// Builds a model from a parsed config and the bytes of its files (the
/// paths only name them in messages), e.g. for a model embedded in a binary.
pub fn model_from_parts<T: Float>(
    dir: &Path,
    config: ModelConfig,
    weights_path: &Path,
    weights: &[u8],
    vocab: Option<(&Path, &[u8])>,
) -> Result<ModelDir<T>, Error> {
    config.validate().map_err(|source| Error::Model {
        dir: dir.to_path_buf(),
        source,
    })?;
    let tensors = match config.layout {
        Layout::Pytorch => read_safetensors(weights_path, weights)?,
        Layout::Reference => read_npz_tensors(weights_path, weights)?,
        // `Layout` is non-exhaustive: a layout added later needs its reader here.
        other => {
            return Err(Error::Model {
                dir: dir.to_path_buf(),
                source: lrp_models::Error::Config {
                    key: "layout".into(),
                    message: format!("{other:?} has no weights reader"),
                },
            })
        }
    };
    let vocab = match vocab {
        Some((path, bytes)) => {
            let text = std::str::from_utf8(bytes).map_err(|e| Error::Format {
                path: path.to_path_buf(),
                message: format!("not UTF-8 text: {e}"),
            })?;
            let vocab = Vocab::parse(text, config.unk_token.as_deref(), config.lowercase)?;
            let expected = config.vocab_size.unwrap_or(0);
            if vocab.len() != expected {
                return Err(Error::VocabSize {
                    path: path.to_path_buf(),
                    expected,
                    found: vocab.len(),
                });
            }
            Some(vocab)
        }
        None => None,
    };
    let model = Model::from_config(config, tensors).map_err(|source| Error::Model {
        dir: dir.to_path_buf(),
        source,
    })?;
    Ok(ModelDir { model, vocab })
}

/// Parses the bytes of a `config.json` (`path` names it in messages); the
/// values are checked by `ModelConfig::validate`.
pub fn parse_config(path: &Path, bytes: &[u8]) -> Result<ModelConfig, Error> {
    serde_json::from_slice(bytes).map_err(|e| Error::Config {
        path: path.to_path_buf(),
        message: e.to_string(),
    })
}

/// A config path must be relative and stay inside the model directory.
fn inside(key: &'static str, value: &str) -> Result<PathBuf, Error> {
    let path = Path::new(value);
    let plain = !value.is_empty() && path.components().all(|c| matches!(c, Component::Normal(_)));
    if plain {
        Ok(path.to_path_buf())
    } else {
        Err(Error::UnsafePath {
            key,
            value: value.to_string(),
        })
    }
}
