//! Seeded models and inputs for lrp's benchmarks, so every benchmark (and
//! anyone reproducing a figure) measures the same numbers.
//!
//! `benches/main.rs` holds the criterion groups; run them with
//! `cargo bench -p lrp-bench`.
#![deny(missing_docs)]

use lrp_models::faithfulness::SplitMix64;
use lrp_models::{tensor_manifest, Model, ModelConfig, Tensor, Tensors};
use nalgebra::DMatrix;

/// A bidirectional LSTM with input and hidden size `hidden` and a 5-class
/// head on the final state: the shape of the published SST model
/// (`hidden = 60`).
pub fn bilstm_config(hidden: usize) -> ModelConfig {
    bidirectional_config("lstm", hidden)
}

/// One bidirectional layer of `cell` (a config's cell name: `lstm`, `gru`,
/// `mingru`, `minlstm`, ...) with input and hidden size `hidden` and a
/// 5-class head on the final state.
///
/// ```
/// let config = lrp_bench::bidirectional_config("mingru", 8);
/// let model = lrp_bench::seeded_model::<f64>(&config, 1);
/// assert_eq!(model.input_size(), 8);
/// ```
pub fn bidirectional_config(cell: &str, hidden: usize) -> ModelConfig {
    serde_json::from_value(serde_json::json!({
        "format": "lrp-model", "version": 1, "layout": "pytorch", "weights": "model.safetensors",
        "encoder": {"cell": cell, "input_size": hidden, "hidden_size": hidden, "bidirectional": true},
        "head": {"input": "last", "num_classes": 5}
    }))
    .expect("a valid config")
}

/// A model of `config` with weights uniform in `[-1/sqrt(H), 1/sqrt(H))`, as
/// PyTorch initialises recurrent layers; the same weights in either precision.
pub fn seeded_model<T: lrp_core::Float>(config: &ModelConfig, seed: u64) -> Model<T> {
    let scale = 1.0 / (config.encoder.hidden_size as f64).sqrt();
    let mut values = SplitMix64(seed);
    let mut tensors = Tensors::new();
    for (name, shape) in tensor_manifest(config).expect("a valid config") {
        let count = shape.iter().product();
        let data = (0..count).map(|_| values.next_signed() * scale).collect();
        tensors.insert(name, Tensor { shape, values: data });
    }
    Model::from_config(config.clone(), tensors).expect("the manifest fits the config")
}

/// Input vectors `[E, T]` uniform in `[-1, 1)`.
pub fn seeded_input(e: usize, t: usize, seed: u64) -> DMatrix<f64> {
    let mut values = SplitMix64(seed ^ 0xA5A5_A5A5);
    DMatrix::from_fn(e, t, |_, _| values.next_signed())
}

/// The token counts of the 2,210 SST test sentences (read with
/// `lrp_io::read_labelled` from `tests/fixtures/sst/test.txt`), in file
/// order: the lengths of the published comparison.
pub fn sst_test_lengths() -> Vec<usize> {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures/sst/test.txt");
    lrp_io::read_labelled(&path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .iter()
        .map(|sentence| sentence.tokens.len())
        .collect()
}
