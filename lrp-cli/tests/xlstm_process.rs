//! Hugging Face xLSTM directories through the real `lrp` (fixtures made by
//! `tools/make_xlstm_fixtures.py`): forward parity with the float64
//! reference, the xLSTM rules against their modified-gradient oracle
//! (default and AttnLRP by `--rules products=half`), conservation,
//! gradient x input, weights stored as float32 and bfloat16,
//! `model-info`, and the one-line errors of unsupported options.

mod common;

use std::path::PathBuf;

use common::{
    assert_close, explain_model as explain, explain_refused as refused, fixture, hf_expected, lrp_run as lrp, numbers,
    scratch,
};
use serde_json::Value;

/// What the tool computed for a fixture: per id sequence, the reference
/// logits `[T][V]`, the arg-max at the last position, the oracle's
/// relevance `[T][H]` under both rule choices (eps 0, bias factor 0) and
/// the plain gradient x input.
fn expected(name: &str) -> Vec<Value> {
    hf_expected("hf-xlstm", name)
}

fn dir(name: &str) -> PathBuf {
    fixture(&format!("hf-xlstm/{name}"))
}

fn ids_of(case: &Value) -> String {
    let ids: Vec<String> = case["ids"].as_array().unwrap().iter().map(Value::to_string).collect();
    ids.join(",")
}

/// The per-dimension relevance of every position against `want` `[T][H]`.
fn assert_rows(report: &Value, want: &Value, tolerance: f64, what: &str) {
    let rows = report["input_relevance"].as_array().unwrap();
    let want = want.as_array().unwrap();
    assert_eq!(rows.len(), want.len(), "{what}");
    for (row, want) in rows.iter().zip(want) {
        assert_close(&numbers(row), &numbers(want), tolerance, what);
    }
}

#[test]
fn logits_match_the_float64_reference_at_every_length() {
    for name in ["tiny", "wide-v"] {
        for case in expected(name) {
            let ids = ids_of(&case);
            let report = explain(&dir(name), &["--ids", &ids]);
            let last = case["logits"].as_array().unwrap().last().unwrap();
            assert_close(&numbers(&report["scores"]), &numbers(last), 1e-10, name);
            // transformers' own output, float32 inside: float32 tolerance.
            let theirs = case["transformers_logits"].as_array().unwrap().last().unwrap();
            assert_close(&numbers(&report["scores"]), &numbers(theirs), 1e-5, name);
            assert_eq!(report["target"], case["target"], "{name} {ids}");
        }
    }
}

#[test]
fn the_xlstm_rules_equal_their_modified_gradient_oracle() {
    for name in ["tiny", "wide-v"] {
        for case in expected(name) {
            let ids = ids_of(&case);
            let common = ["--ids", &ids, "--eps", "0", "--bias-factor", "0", "--per-dimension"];
            let report = explain(&dir(name), &common);
            assert_rows(&report, &case["relevance"], 1e-9, name);
            // AttnLRP: the products of two signals split half-half.
            let mut args = common.to_vec();
            args.extend(["--rules", "products=half"]);
            let report = explain(&dir(name), &args);
            assert_rows(&report, &case["relevance_attnlrp"], 1e-9, name);
        }
    }
}

#[test]
fn gradient_times_input_is_the_gradient_of_the_model() {
    for name in ["tiny", "wide-v"] {
        for case in expected(name) {
            let ids = ids_of(&case);
            let report = explain(&dir(name), &["--ids", &ids, "--method", "gi", "--per-dimension"]);
            assert_rows(&report, &case["gradient"], 1e-9, name);
        }
    }
}

#[test]
fn relevance_is_conserved_at_an_earlier_position_under_both_rule_choices() {
    let case = &expected("tiny")[2];
    let ids = ids_of(case);
    for rules in ["*=epsilon", "products=half"] {
        let report = explain(
            &dir("tiny"),
            &[
                "--ids",
                &ids,
                "--position",
                "3",
                "--target",
                "4",
                "--eps",
                "0",
                "--bias-factor",
                "1",
                "--rules",
                rules,
            ],
        );
        assert_close(&numbers(&report["scores"]), &numbers(&case["logits"][3]), 1e-10, rules);
        let relevance = numbers(&report["token_relevance"]);
        // Positions after the one explained get nothing: the model is causal.
        assert!(relevance[4..].iter().all(|&r| r == 0.0), "{relevance:?}");
        let total: f64 = relevance.iter().sum::<f64>()
            + report["initial_state_relevance"].as_f64().unwrap()
            + report["unexplained_relevance"].as_f64().unwrap();
        let score = case["logits"][3][4].as_f64().unwrap();
        assert!(
            (total - score).abs() < 1e-10 * score.abs().max(1.0),
            "{rules}: {total} vs {score}"
        );
    }
}

#[test]
fn weights_stored_as_float32_and_bfloat16_are_widened() {
    for name in ["f32", "bf16"] {
        for case in expected(name) {
            let ids = ids_of(&case);
            let report = explain(
                &dir(name),
                &["--ids", &ids, "--eps", "0", "--bias-factor", "0", "--per-dimension"],
            );
            let last = case["logits"].as_array().unwrap().last().unwrap();
            assert_close(&numbers(&report["scores"]), &numbers(last), 1e-10, name);
            assert_rows(&report, &case["relevance"], 1e-9, name);
        }
    }
}

#[test]
fn model_info_describes_the_directory() {
    let (code, stdout, stderr) = lrp(&["model-info", dir("tiny").to_str().unwrap(), "--format", "json"]);
    assert_eq!((code, stderr.as_str()), (Some(0), ""));
    let info: Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(info["model_type"], "xlstm");
    assert_eq!(info["check"], "ok");
    assert_eq!(
        (
            &info["config"]["qk_dim"],
            &info["config"]["v_dim"],
            &info["config"]["ffn_dim"]
        ),
        (&Value::from(6), &Value::from(9), &Value::from(12))
    );
    assert_eq!(info["tensors"].as_array().unwrap().len(), 33);
    assert_eq!(
        info["chain"],
        "token ids -> the embedding -> 9 values per position -> an xLSTM block -> an xLSTM block -> the final RMSNorm -> the per-step head -> the logit soft cap -> 19 values per position"
    );
    let (code, stdout, _) = lrp(&["model-info", dir("tiny").to_str().unwrap(), "--format", "text"]);
    assert_eq!(code, Some(0));
    assert!(stdout.contains("model_type xlstm (xLSTMForCausalLM)"), "{stdout}");
    assert!(
        stdout.contains("2 xLSTM blocks (mLSTM, recurrent form): 3 heads"),
        "{stdout}"
    );
}

/// A copy of the `tiny` fixture whose config has `from` replaced by `to`.
fn reconfigured(name: &str, from: &str, to: &str) -> common::Scratch {
    let scratch = scratch(name);
    std::fs::copy(dir("tiny").join("model.safetensors"), scratch.join("model.safetensors")).unwrap();
    let config = std::fs::read_to_string(dir("tiny").join("config.json")).unwrap();
    assert!(config.contains(from), "{from}");
    std::fs::write(scratch.join("config.json"), config.replace(from, to)).unwrap();
    scratch
}

#[test]
fn unsupported_options_are_refused_in_one_line_naming_them() {
    for (from, to, message) in [
        (
            "\"use_bias\": false",
            "\"use_bias\": true",
            "use_bias true is not supported (lrp reads false)",
        ),
        (
            "\"weight_mode\": \"single\"",
            "\"weight_mode\": \"fused\"",
            "weight_mode \"fused\" is not supported (lrp reads \"single\")",
        ),
        (
            "\"mode\": \"inference\"",
            "\"mode\": \"train\"",
            "mode \"train\" is not supported (lrp reads \"inference\")",
        ),
        (
            "\"num_heads\": 3",
            "\"num_heads\": 4",
            "qk_dim_factor: gives width 6, not a multiple of num_heads 4",
        ),
        (
            "\"embedding_dim\": 9",
            "\"embedding_dim\": 8",
            "embedding_dim 8 differs from hidden_size 9",
        ),
        (
            "\"xlstm\"",
            "\"slstm\"",
            "model_type \"slstm\" is not supported (lrp reads \"mamba\", \"xlstm\")",
        ),
    ] {
        let broken = reconfigured("xlstm-option", from, to);
        let line = refused(&broken, &["--ids", "1"]);
        assert!(line.contains(message), "{line}");
    }
    // A wrong shape is named with the tensor.
    let narrower = reconfigured("xlstm-shape", "\"ffn_proj_factor\": 1.3", "\"ffn_proj_factor\": 0.9");
    let line = refused(&narrower, &["--ids", "1"]);
    assert!(
        line.contains("tensor backbone.blocks.0.ffn.proj_up_gate.weight: expected shape [8, 9], found [12, 9]"),
        "{line}"
    );
}
