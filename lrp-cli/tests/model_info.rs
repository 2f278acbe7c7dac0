//! `lrp model-info` as a process: JSON on a pipe, the exit codes a script
//! sees. (The contents are tested in-process in `tests/tests/model_info.rs`.)

mod common;

use common::{fixture, lrp_run as lrp};

#[test]
fn a_directory_on_a_pipe_prints_one_json_object() {
    let dir = fixture("parity/lstm-last-uni");
    let (code, stdout, stderr) = lrp(&["model-info", dir.to_str().unwrap()]);
    assert_eq!(code, Some(0), "{stderr}");
    assert!(stderr.is_empty(), "{stderr}");
    assert_eq!(stdout.lines().count(), 1);
    // E = 4, H = 3, one direction, head on the final state, C = 3:
    // 48 + 36 + 12 + 12 + 9 + 3 numbers.
    assert!(
        stdout.contains(r#"{"name":"encoder.weight_ih_l0","shape":[12,4]}"#),
        "{stdout}"
    );
    assert!(stdout.contains(r#"{"name":"head.bias","shape":[3]}"#), "{stdout}");
    assert!(stdout.contains(r#""parameters":120"#), "{stdout}");
    assert!(stdout.trim_end().ends_with(r#""check":"ok"}"#), "{stdout}");
}

#[test]
fn a_missing_config_exits_1_with_one_line() {
    let (code, stdout, stderr) = lrp(&["model-info", "--config", "/nonexistent/config.json"]);
    assert_eq!(code, Some(1));
    assert!(stdout.is_empty());
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(stderr.contains("/nonexistent/config.json"), "{stderr}");
}

#[test]
fn an_encoder_decoder_is_described_like_any_model() {
    let dir = fixture("seq2seq/lstm-lstm-additive");
    let (code, stdout, stderr) = lrp(&["model-info", dir.to_str().unwrap()]);
    assert_eq!(code, Some(0), "{stderr}");
    assert!(stderr.is_empty(), "{stderr}");
    let info: serde_json::Value = serde_json::from_str(stdout.trim()).unwrap();
    assert_eq!(info["config"]["architecture"], "seq2seq");
    assert_eq!(info["config"]["source_vocab_size"], 12);
    assert_eq!(info["check"], "ok");
    // Es = 3, H = 4, Et = 4, Hd = 5, A = 3, Vs = 12, Vt = 10: the
    // embeddings 36 + 40, the encoder 48 + 64 + 16 + 16, the decoder
    // 80 + 100 + 20 + 20, the attention 12 + 3 + 15 + 3, combine 45 + 5,
    // output 50 + 10.
    assert_eq!(info["parameters"], 583);
    let tensors = info["tensors"].as_array().unwrap();
    assert_eq!(tensors.len(), 18);
    assert_eq!(tensors[0]["name"], "source_embedding.weight");
    assert_eq!(tensors[0]["shape"], serde_json::json!([12, 3]));
    // A bare config: the architecture and tensors, nothing to check.
    let config = dir.join("config.json");
    let (code, stdout, stderr) = lrp(&["model-info", "--config", config.to_str().unwrap(), "--format", "text"]);
    assert_eq!(code, Some(0), "{stderr}");
    assert!(stdout.contains("decoder    lstm, Et = 4, Hd = 5"), "{stdout}");
    // No `check` line (the model's path may itself contain "check").
    assert!(!stdout.lines().any(|line| line.starts_with("check")), "{stdout}");
    // A broken weights file is named by the check, as for a classifier.
    let broken = common::scratch("s2s-info");
    for entry in std::fs::read_dir(&dir).unwrap() {
        let entry = entry.unwrap();
        std::fs::copy(entry.path(), broken.join(entry.file_name())).unwrap();
    }
    std::fs::write(broken.join("model.safetensors"), b"not safetensors").unwrap();
    let (code, stdout, _) = lrp(&["model-info", broken.to_str().unwrap()]);
    assert_eq!(code, Some(0));
    let info: serde_json::Value = serde_json::from_str(stdout.trim()).unwrap();
    assert!(
        info["check"].as_str().unwrap().contains("model.safetensors"),
        "{stdout}"
    );
}
