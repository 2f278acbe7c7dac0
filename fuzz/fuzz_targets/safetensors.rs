//! Arbitrary bytes as the weights of a small attention model (the shape of
//! the golden `bilstm-additive`, whose weights seed the corpus): the reader
//! and the manifest checks must reject or accept, never panic; an accepted
//! model must run.
#![no_main]
use libfuzzer_sys::fuzz_target;

const CONFIG: &str = r#"{"format": "lrp-model", "version": 1, "layout": "pytorch", "weights": "model.safetensors",
  "encoder": {"cell": "lstm", "input_size": 5, "hidden_size": 4, "bidirectional": true},
  "attention": {"kind": "additive", "size": 3}, "head": {"input": "context", "num_classes": 2}}"#;

fuzz_target!(|data: &[u8]| {
    let here = std::path::Path::new("model");
    let config = lrp_io::parse_config(here, CONFIG.as_bytes()).expect("the fixed config is valid");
    if let Ok(dir) = lrp_io::model_from_parts::<f64>(here, config, here, data, None) {
        let _ = dir.model.forward(nalgebra::DMatrix::from_element(5, 4, 0.5));
    }
});
