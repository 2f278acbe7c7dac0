//! Model loading: a model directory, or the built-in model, a BiLSTM with
//! context attention for five-class sentiment, trained on the Stanford
//! Sentiment Treebank by `tools/train_sst.py` (record in
//! `assets/sst-default/TRAINING.md`), embedded in the crate so that `lrp
//! explain "some text"` and `lrp_rnn.Model.default()` need nothing else.

use std::path::Path;

use lrp_core::Float;
use lrp_io::{load_model_with, model_from_parts, parse_config, Limits, ModelDir};

use crate::Error;

const CONFIG: &[u8] = include_bytes!("../assets/sst-default/config.json");
const WEIGHTS: &[u8] = include_bytes!("../assets/sst-default/model.safetensors");
const VOCAB: &[u8] = include_bytes!("../assets/sst-default/vocab.txt");

/// The built-in model's configuration.
pub fn builtin_config() -> Result<lrp_models::ModelConfig, Error> {
    Ok(parse_config(
        &Path::new("<built-in sst-default>").join("config.json"),
        CONFIG,
    )?)
}

/// The model directory at `path` (read within `limits`), or, without one,
/// the built-in SST model.
///
/// An encoder–decoder directory is read by [`lrp_io::load_seq2seq`]
/// instead ([`lrp_io::is_seq2seq`] tells which a directory holds).
pub fn load_model<T: Float>(path: Option<&Path>, limits: &Limits) -> Result<ModelDir<T>, Error> {
    match path {
        Some(dir) => Ok(load_model_with(dir, limits)?),
        None => {
            let here = Path::new("<built-in sst-default>");
            Ok(model_from_parts(
                here,
                builtin_config()?,
                &here.join("model.safetensors"),
                WEIGHTS,
                Some((&here.join("vocab.txt"), VOCAB)),
            )?)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_built_in_model_reads_text_into_five_classes() {
        let dir = load_model::<f64>(None, &Limits::default()).unwrap();
        assert_eq!(dir.model.num_classes(), 5);
        let (ids, unknown) = dir.vocab().unwrap().lookup(&["a", "zyxwvq"]).unwrap();
        assert_eq!((ids.len(), unknown), (2, vec![1]));
    }
}
