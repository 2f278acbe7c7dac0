//! `lrp model-info`: the architecture a config describes and the tensors
//! (names, shapes) its weights file must hold, for a model directory, a bare
//! `config.json` and the built-in model.

use lrp_tests::{fixture, lrp, scratch_dir};

fn path(relative: &str) -> String {
    fixture(relative).to_str().unwrap().to_string()
}

/// The `tensors` of a model-info JSON as (name, shape) pairs.
fn tensors(info: &serde_json::Value) -> Vec<(String, Vec<u64>)> {
    info["tensors"]
        .as_array()
        .expect("tensors array")
        .iter()
        .map(|t| {
            let shape = t["shape"].as_array().unwrap().iter().map(|d| d.as_u64().unwrap());
            (t["name"].as_str().unwrap().to_string(), shape.collect())
        })
        .collect()
}

fn named(pairs: &[(&str, &[u64])]) -> Vec<(String, Vec<u64>)> {
    pairs.iter().map(|(n, s)| (n.to_string(), s.to_vec())).collect()
}

#[test]
fn built_in_model_as_text() {
    let run = lrp(&["model-info", "--format", "text"]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    insta::assert_snapshot!("built-in", run.stdout);
}

#[test]
fn bare_config_lists_every_tensor_with_its_shape_and_defaults_filled_in() {
    // E = 5, H = 3, bidirectional (D = 6), additive attention A = 4, head on
    // the context with bias, C = 3, V = 20.
    let info = lrp(&[
        "model-info",
        "--config",
        &path("parity/emb-lstm-bi-additive-context/config.json"),
    ])
    .json();
    let expected = named(&[
        ("embedding.weight", &[20, 5]),
        ("encoder.weight_ih_l0", &[12, 5]),
        ("encoder.weight_hh_l0", &[12, 3]),
        ("encoder.bias_ih_l0", &[12]),
        ("encoder.bias_hh_l0", &[12]),
        ("encoder.weight_ih_l0_reverse", &[12, 5]),
        ("encoder.weight_hh_l0_reverse", &[12, 3]),
        ("encoder.bias_ih_l0_reverse", &[12]),
        ("encoder.bias_hh_l0_reverse", &[12]),
        ("attention.key.weight", &[4, 6]),
        ("attention.key.bias", &[4]),
        ("attention.query.weight", &[4, 6]),
        ("attention.score.weight", &[1, 4]),
        ("head.weight", &[3, 6]),
        ("head.bias", &[3]),
    ]);
    assert_eq!(tensors(&info), expected);
    // 100 + 2 * (60 + 36 + 12 + 12) + 24 + 4 + 24 + 4 + 18 + 3
    assert_eq!(info["parameters"], 417);
    assert_eq!(
        (info["output_width"].as_u64(), info["head_width"].as_u64()),
        (Some(6), Some(6))
    );
    assert!(info["check"].is_null(), "a bare config has no files to check");
    // Defaults the file leaves out are filled in.
    assert_eq!(info["config"]["encoder"]["num_layers"], 1);
    assert_eq!(info["config"]["lowercase"], false);
    assert_eq!(info["config"]["head"]["bias"], true);
}

#[test]
fn reference_layout_names_the_numpy_release_tensors() {
    let info = lrp(&["model-info", &path("reference/sst-bilstm")]).json();
    let mut expected = Vec::new();
    for side in ["Left", "Right"] {
        expected.push((format!("Wxh_{side}"), vec![240, 60]));
        expected.push((format!("Whh_{side}"), vec![240, 60]));
        expected.push((format!("bxh_{side}"), vec![240]));
        expected.push((format!("bhh_{side}"), vec![240]));
        expected.push((format!("Why_{side}"), vec![5, 60]));
    }
    assert_eq!(tensors(&info), expected);
    assert_eq!(info["config"]["layout"], "reference");
    assert_eq!(info["check"], "ok");
}

#[test]
fn stacked_bidirectional_gru_has_three_gate_blocks_and_a_wider_head() {
    let info = lrp(&["model-info", &path("parity/gru-bi-2l-dot-contextlast")]).json();
    let names: Vec<String> = tensors(&info).into_iter().map(|(n, _)| n).collect();
    assert_eq!(names.len(), 17, "{names:?}");
    let shapes: std::collections::BTreeMap<String, Vec<u64>> = tensors(&info).into_iter().collect();
    // E = 6, H = 4, two directions: layer 1 reads D = 8; 3 gates: 3H = 12.
    assert_eq!(shapes["encoder.weight_ih_l0"], [12, 6]);
    assert_eq!(shapes["encoder.weight_ih_l1_reverse"], [12, 8]);
    assert_eq!(shapes["encoder.weight_hh_l1"], [12, 4]);
    // Dot attention has no tensors; context+last doubles the head's input.
    assert!(!names.iter().any(|n| n.starts_with("attention.")));
    assert_eq!(shapes["head.weight"], [3, 16]);
    assert!(!shapes.contains_key("head.bias"));
    assert_eq!(info["head_width"], 16);
}

#[test]
fn every_shipped_model_directory_matches_its_manifest() {
    let mut dirs = vec![fixture("reference/sst-bilstm"), fixture("adding/model")];
    for parent in ["parity", "golden/models"] {
        for entry in std::fs::read_dir(fixture(parent)).unwrap() {
            let dir = entry.unwrap().path();
            if dir.join("config.json").is_file() {
                dirs.push(dir);
            }
        }
    }
    assert!(dirs.len() > 30, "{} directories", dirs.len());
    for dir in dirs {
        let info = lrp(&["model-info", dir.to_str().unwrap()]).json();
        assert_eq!(info["check"], "ok", "{}", dir.display());
    }
}

#[test]
fn a_directory_whose_weights_do_not_fit_is_described_and_the_problem_named() {
    // The weights of lstm-last-uni (H = 3) under a config that says H = 5.
    let dir = scratch_dir("model-info-mismatch");
    std::fs::copy(
        fixture("parity/lstm-last-uni/model.safetensors"),
        dir.join("model.safetensors"),
    )
    .unwrap();
    let config = std::fs::read_to_string(fixture("parity/lstm-last-uni/config.json")).unwrap();
    std::fs::write(
        dir.join("config.json"),
        config.replace("\"hidden_size\": 3", "\"hidden_size\": 5"),
    )
    .unwrap();
    let info = lrp(&["model-info", dir.to_str().unwrap()]).json();
    assert_eq!(tensors(&info)[0], ("encoder.weight_ih_l0".to_string(), vec![20, 4]));
    let check = info["check"].as_str().unwrap();
    assert!(
        check.contains("encoder.weight_ih_l0") && check.contains("[20, 4]") && check.contains("[12, 4]"),
        "{check}"
    );
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn an_invalid_config_is_one_line_naming_the_key() {
    let dir = scratch_dir("model-info-invalid");
    let config = std::fs::read_to_string(fixture("parity/lstm-last-uni/config.json")).unwrap();
    let file = dir.join("config.json");
    std::fs::write(&file, config.replace("\"hidden_size\": 3", "\"hidden_size\": 0")).unwrap();
    let run = lrp(&["model-info", "--config", file.to_str().unwrap()]);
    assert_eq!(run.code, 1);
    assert!(run.stdout.is_empty());
    assert_eq!(run.stderr.lines().count(), 1, "{}", run.stderr);
    assert!(run.stderr.contains("encoder.hidden_size"), "{}", run.stderr);
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn a_directory_and_a_config_together_are_a_usage_error() {
    let run = lrp(&[
        "model-info",
        &path("parity/lstm-last-uni"),
        "--config",
        &path("parity/lstm-last-uni/config.json"),
    ]);
    assert_eq!(run.code, 2);
    assert!(run.stdout.is_empty());
}
