//! The built-in model: a BiLSTM with context attention for five-class
//! sentiment, trained on the Stanford Sentiment Treebank by
//! `tools/train_sst.py` (record in `assets/sst-default/TRAINING.md`),
//! embedded in the binary so that `lrp explain "some text"` needs nothing
//! else.

use std::path::{Path, PathBuf};

use lrp_core::Float;
use lrp_io::{load_model_with, model_from_parts, Limits, ModelDir};
use lrp_models::ModelConfig;

use crate::CliError;

const CONFIG: &[u8] = include_bytes!("../assets/sst-default/config.json");
const WEIGHTS: &[u8] = include_bytes!("../assets/sst-default/model.safetensors");
const VOCAB: &[u8] = include_bytes!("../assets/sst-default/vocab.txt");

/// The built-in model's configuration.
pub fn config() -> Result<ModelConfig, CliError> {
    serde_json::from_slice(CONFIG).map_err(|e| CliError::Usage(e.to_string()))
}

/// The model directory at `path` (read within `limits`), or, without one,
/// the built-in SST model.
pub fn load<T: Float>(path: &Option<PathBuf>, limits: &Limits) -> Result<ModelDir<T>, CliError> {
    match path {
        Some(dir) => Ok(load_model_with(dir, limits)?),
        None => {
            let here = Path::new("<built-in sst-default>");
            Ok(model_from_parts(
                here,
                config()?,
                &here.join("model.safetensors"),
                WEIGHTS,
                Some((&here.join("vocab.txt"), VOCAB)),
            )?)
        }
    }
}
