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

/// `model-info` names the canonizers loading applies (issue 24, item 4):
/// for TF1's LSTM the gate order i, j, f, o, the merged biases and TF1's
/// forget bias, in order, in the text view and the JSON form; for a
/// Keras GRU with the reset before the product and a hard sigmoid, its
/// own three; a PyTorch GRU needs none.
#[test]
fn the_canonizers_loading_applies_are_named() {
    let names = |info: &serde_json::Value| -> Vec<String> {
        info["canonizers"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c["name"].as_str().unwrap().to_string())
            .collect()
    };
    let tf1 = fixture("frameworks/tf1/lstm-uni");
    let (code, stdout, stderr) = lrp(&["model-info", tf1.to_str().unwrap(), "--format", "text"]);
    assert_eq!(code, Some(0), "{stderr}");
    for line in [
        "canonizers gate-order: gate blocks from tf1's i, j, f, o to the cells' i, f, g, o\n",
        "           merge-biases: b_hh added into b_ih: an LSTM has one bias per gate\n",
        "           forget-bias: 1 added to the forget gate's bias, the f rows of b_ih\n",
    ] {
        assert!(stdout.contains(line), "{line:?} not in\n{stdout}");
    }
    let (code, stdout, stderr) = lrp(&["model-info", tf1.to_str().unwrap()]);
    assert_eq!(code, Some(0), "{stderr}");
    let info: serde_json::Value = serde_json::from_str(stdout.trim()).unwrap();
    assert_eq!(names(&info), ["gate-order", "merge-biases", "forget-bias"]);
    assert_eq!(
        info["canonizers"][0]["description"],
        "gate blocks from tf1's i, j, f, o to the cells' i, f, g, o"
    );
    assert_eq!(info["check"], "ok");

    let keras = fixture("frameworks/keras/gru-before-hard-sigmoid");
    let (code, stdout, stderr) = lrp(&["model-info", keras.to_str().unwrap()]);
    assert_eq!(code, Some(0), "{stderr}");
    let info: serde_json::Value = serde_json::from_str(stdout.trim()).unwrap();
    assert_eq!(names(&info), ["gate-order", "merge-biases", "hard-sigmoid"]);
    assert_eq!(
        info["canonizers"][2]["description"],
        "gates through Keras 3's hard sigmoid relu6(x + 3) / 6"
    );

    // PyTorch's own form: an LSTM only merges its biases (in the JSON
    // form; the text view is as it always was), a GRU needs nothing.
    let lstm = fixture("parity/lstm-last-uni");
    let (_, stdout, _) = lrp(&["model-info", lstm.to_str().unwrap()]);
    let info: serde_json::Value = serde_json::from_str(stdout.trim()).unwrap();
    assert_eq!(names(&info), ["merge-biases"]);
    let (_, stdout, _) = lrp(&["model-info", lstm.to_str().unwrap(), "--format", "text"]);
    assert!(!stdout.contains("canonizers"), "{stdout}");
    let gru = fixture("golden/models/gru-context");
    let (_, stdout, stderr) = lrp(&["model-info", gru.to_str().unwrap()]);
    let info: serde_json::Value = serde_json::from_str(stdout.trim()).unwrap_or_else(|_| panic!("{stderr}"));
    assert_eq!(names(&info), Vec::<String>::new());
}
