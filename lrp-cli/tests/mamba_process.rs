//! Hugging Face Mamba directories through the real `lrp` (fixtures made by
//! `tools/make_mamba_fixtures.py`): `--ids`, `--position`,
//! `--per-dimension`, weights stored as float32 and bfloat16, `model-info`,
//! and the one-line errors of bad directories and bad ids.

mod common;

use std::path::{Path, PathBuf};

use common::{
    assert_close, explain_model as explain, explain_refused as refused, fixture, hf_expected, lrp_run as lrp, numbers,
    scratch,
};
use serde_json::Value;

/// What the tool computed for a fixture: per id sequence, the reference
/// logits `[T][V]`, the arg-max at the last position and the oracle's
/// relevance `[T][H]` (eps 0, bias factor 0).
fn expected(name: &str) -> Vec<Value> {
    hf_expected("hf-mamba", name)
}

fn dir(name: &str) -> PathBuf {
    fixture(&format!("hf-mamba/{name}"))
}

#[test]
fn ids_are_explained_at_the_last_position_for_the_arg_max_by_default() {
    for name in ["tiny", "untied-bias"] {
        let case = &expected(name)[1];
        let ids: Vec<String> = case["ids"].as_array().unwrap().iter().map(Value::to_string).collect();
        let report = explain(
            &dir(name),
            &[
                "--ids",
                &ids.join(","),
                "--eps",
                "0",
                "--bias-factor",
                "0",
                "--per-dimension",
            ],
        );
        let last = case["logits"].as_array().unwrap().last().unwrap();
        assert_close(&numbers(&report["scores"]), &numbers(last), 1e-10, name);
        assert_eq!(report["target"], case["target"]);
        assert_eq!(report["position"], ids.len() - 1);
        assert_eq!(report["tokens"], serde_json::json!(ids));
        // The oracle's input x modified gradient, per embedding dimension.
        let rows = report["input_relevance"].as_array().unwrap();
        for (t, want) in case["relevance"].as_array().unwrap().iter().enumerate() {
            assert_close(&numbers(&rows[t]), &numbers(want), 1e-9, name);
        }
    }
}

#[test]
fn an_earlier_position_and_a_chosen_target_are_explained_with_conservation() {
    let case = &expected("tiny")[2];
    let ids: Vec<String> = case["ids"].as_array().unwrap().iter().map(Value::to_string).collect();
    let report = explain(
        &dir("tiny"),
        &[
            "--ids",
            &ids.join(","),
            "--position",
            "3",
            "--target",
            "4",
            "--eps",
            "0",
            "--bias-factor",
            "1",
        ],
    );
    assert_close(
        &numbers(&report["scores"]),
        &numbers(&case["logits"][3]),
        1e-10,
        "position 3",
    );
    assert_eq!(
        (report["position"].as_u64(), report["target"].as_u64()),
        (Some(3), Some(4))
    );
    let relevance = numbers(&report["token_relevance"]);
    // Positions after the one explained get nothing: the model is causal.
    assert!(relevance[4..].iter().all(|&r| r == 0.0), "{relevance:?}");
    let total: f64 = relevance.iter().sum::<f64>() + report["initial_state_relevance"].as_f64().unwrap();
    let score = case["logits"][3][4].as_f64().unwrap();
    assert!(
        (total - score).abs() < 1e-10 * score.abs().max(1.0),
        "{total} vs {score}"
    );
}

#[test]
fn weights_stored_as_float32_and_bfloat16_are_widened() {
    for name in ["f32", "bf16"] {
        for case in expected(name) {
            let ids: Vec<String> = case["ids"].as_array().unwrap().iter().map(Value::to_string).collect();
            let report = explain(&dir(name), &["--ids", &ids.join(",")]);
            let last = case["logits"].as_array().unwrap().last().unwrap();
            assert_close(&numbers(&report["scores"]), &numbers(last), 1e-10, name);
        }
    }
}

#[test]
fn model_info_describes_the_directory() {
    let (code, stdout, stderr) = lrp(&["model-info", dir("untied-bias").to_str().unwrap(), "--format", "json"]);
    assert_eq!((code, stderr.as_str()), (Some(0), ""));
    let info: Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(info["model_type"], "mamba");
    assert_eq!(info["check"], "ok");
    assert_eq!(info["config"]["time_step_rank"], 3);
    assert_eq!(info["tensors"].as_array().unwrap().len(), 25);
    assert_eq!(
        info["chain"],
        "token ids -> the embedding -> 7 values per position -> a Mamba block -> a Mamba block -> the final RMSNorm -> the per-step head -> 18 values per position"
    );
}

/// A copy of the `tiny` fixture to break.
fn broken(name: &str) -> common::Scratch {
    let scratch = scratch(name);
    for file in ["config.json", "model.safetensors"] {
        std::fs::copy(dir("tiny").join(file), scratch.join(file)).unwrap();
    }
    scratch
}

/// Rewrites the safetensors header of `path` with `edit` (the data bytes
/// are kept; an edit that drops the tensor stored last truncates them).
fn edit_header(path: &Path, edit: impl FnOnce(&mut serde_json::Map<String, Value>) -> Option<usize>) {
    let bytes = std::fs::read(path).unwrap();
    let length = u64::from_le_bytes(bytes[..8].try_into().unwrap()) as usize;
    let mut header: serde_json::Map<String, Value> = serde_json::from_slice(&bytes[8..8 + length]).unwrap();
    let mut data = bytes[8 + length..].to_vec();
    if let Some(end) = edit(&mut header) {
        data.truncate(end);
    }
    let mut header = serde_json::to_vec(&header).unwrap();
    header.resize(header.len().next_multiple_of(8), b' ');
    let mut out = (header.len() as u64).to_le_bytes().to_vec();
    out.extend(header);
    out.extend(data);
    std::fs::write(path, out).unwrap();
}

#[test]
fn bad_directories_are_refused_in_one_line_naming_the_problem() {
    let missing = refused(Path::new("/nonexistent-lrp-model"), &["--ids", "1"]);
    assert!(missing.contains("/nonexistent-lrp-model/config.json"), "{missing}");

    let other = broken("mamba2");
    let config = std::fs::read_to_string(other.join("config.json")).unwrap();
    std::fs::write(other.join("config.json"), config.replace("\"mamba\"", "\"mamba2\"")).unwrap();
    let line = refused(&other, &["--ids", "1"]);
    assert!(
        line.contains("model_type \"mamba2\" is not supported (lrp reads \"mamba\", \"xlstm\")"),
        "{line}"
    );

    let act = broken("gelu");
    let config = std::fs::read_to_string(act.join("config.json")).unwrap();
    std::fs::write(act.join("config.json"), config.replace("\"silu\"", "\"gelu\"")).unwrap();
    let line = refused(&act, &["--ids", "1"]);
    assert!(line.contains("hidden_act \"gelu\" is not supported"), "{line}");

    // The tensor stored last, dropped.
    let short = broken("missing-tensor");
    let mut dropped = String::new();
    edit_header(&short.join("model.safetensors"), |header| {
        let (name, start) = header
            .iter()
            .filter(|(k, _)| *k != "__metadata__")
            .map(|(k, v)| (k.clone(), v["data_offsets"][0].as_u64().unwrap() as usize))
            .max_by_key(|(_, start)| *start)
            .unwrap();
        header.remove(&name);
        dropped = name;
        Some(start)
    });
    let line = refused(&short, &["--ids", "1"]);
    assert!(line.contains("missing tensors") && line.contains(&dropped), "{line}");

    // The same bytes, another shape.
    let reshaped = broken("wrong-shape");
    edit_header(&reshaped.join("model.safetensors"), |header| {
        header["backbone.layers.1.mixer.in_proj.weight"]["shape"] = serde_json::json!([10, 10]);
        None
    });
    let line = refused(&reshaped, &["--ids", "1"]);
    assert!(
        line.contains("tensor backbone.layers.1.mixer.in_proj.weight: expected shape [20, 5], found [10, 10]"),
        "{line}"
    );
}

#[test]
fn bad_ids_are_refused_in_one_line() {
    let tiny = dir("tiny");
    assert!(refused(&tiny, &["--ids", "3,x"]).contains("--ids: x is not a token id"));
    assert!(refused(&tiny, &["--ids", "3,19"]).contains("token id 19 at position 1 is outside the vocabulary of 19"));
    assert!(refused(&tiny, &["--ids", ""]).contains("--ids needs at least one token id"));
    assert!(refused(&tiny, &["--ids", "1,2", "--position", "2"]).contains("position"));
    // A limit on their number, as on the words of a text.
    let many = vec!["1"; 20].join(",");
    let line = refused(&tiny, &["--ids", &many, "--max-tokens", "10"]);
    assert!(line.contains("10"), "{line}");
}

#[test]
fn text_is_read_with_the_directory_s_tokenizer_json() {
    // Word-level, lowercasing, unknown words to <unk> (id 0): the words'
    // ids are 1, 2, 3, 0.
    let by_text = explain(&dir("tiny"), &["--text", "The cat SAT zebra"]);
    let by_ids = explain(&dir("tiny"), &["--ids", "1,2,3,0"]);
    assert_eq!(by_text["tokens"], serde_json::json!(["the", "cat", "sat", "<unk>"]));
    assert_eq!(by_text["scores"], by_ids["scores"]);
    assert_eq!(by_text["token_relevance"], by_ids["token_relevance"]);

    let bad = broken("bad-tokenizer");
    std::fs::write(bad.join("tokenizer.json"), r#"{"model": 3}"#).unwrap();
    let line = refused(&bad, &["--text", "the cat"]);
    assert!(line.contains("tokenizer.json: the tokenizer does not load"), "{line}");

    // Without a tokenizer.json, text needs a vocabulary.
    let none = broken("no-tokenizer");
    let line = refused(&none, &["--text", "the cat"]);
    assert!(line.contains("cannot read text"), "{line}");
}
