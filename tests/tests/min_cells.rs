//! minGRU and minLSTM (Feng et al. 2024), built in and loaded from lrp's
//! own model format:
//!
//! - parity with PyTorch (`tools/pytorch_models.py`'s `MinGRU` and
//!   `MinLSTM`, fixtures by `tools/make_min_fixtures.py`): the scores of the
//!   real binary to 1e-12, and at eps 0, bias factor 0 the relevance of
//!   each token equals PyTorch's input x gradient with the gates detached
//!   (an oracle sharing no code with lrp) to 1e-12;
//! - conservation under every gate rule, with the gate branches the rules
//!   feed (a minLSTM's two normalised gates, a minGRU's `1 − z`) checked to
//!   change the explanation;
//! - the gradient against central differences;
//! - one-line refusals of what a min cell cannot be: another framework's
//!   layout, hard-sigmoid gates, an encoder–decoder's cell.
//!
//! The architecture-wide properties (conservation over every head and
//! attention, batching, the Rust oracle) draw min cells too:
//! `conservation.rs`, `batching.rs`, `oracle.rs`.

use lrp_layers::{gate_rule, Composite, RuleParameters, GATE_RULES};
use lrp_tests::{architecture, central_differences, fixture, lrp, numbers, random_input, random_model};
use nalgebra::DMatrix;
use serde_json::Value;

fn cases() -> Vec<Value> {
    let text = std::fs::read_to_string(fixture("min-rnn/cases.json")).expect("cases.json");
    let all: Value = serde_json::from_str(&text).expect("JSON");
    all["cases"].as_array().expect("cases").clone()
}

fn max_abs_diff(got: &[f64], want: &[f64]) -> f64 {
    assert_eq!(got.len(), want.len(), "lengths");
    got.iter().zip(want).map(|(g, w)| (g - w).abs()).fold(0.0, f64::max)
}

#[test]
fn the_binary_reproduces_pytorch_scores_and_its_modified_gradient() {
    let (mut scored, mut explained) = (0, 0);
    for case in cases() {
        let model = fixture(&format!("min-rnn/{}", case["model"].as_str().unwrap()));
        let text = case["text"].as_str().unwrap();
        let run = lrp(&[
            "explain",
            "--model",
            model.to_str().unwrap(),
            "--text",
            text,
            "--format",
            "json",
            "--eps",
            "0",
            "--bias-factor",
            "0",
        ])
        .json();
        let diff = max_abs_diff(&numbers(&run["scores"]), &numbers(&case["scores"]));
        assert!(diff <= 1e-12, "{}: {text:?}: scores differ by {diff:e}", case["model"]);
        assert_eq!(run["target"], case["target"]);
        scored += 1;
        if case["relevance"].is_array() {
            let diff = max_abs_diff(&numbers(&run["token_relevance"]), &numbers(&case["relevance"]));
            assert!(
                diff <= 1e-12,
                "{}: {text:?}: relevance differs by {diff:e}",
                case["model"]
            );
            explained += 1;
        }
    }
    assert_eq!((scored, explained), (20, 15));
}

#[test]
fn model_info_describes_a_min_cell_and_its_tensors() {
    let run = lrp(&[
        "model-info",
        fixture("min-rnn/minlstm").to_str().unwrap(),
        "--format",
        "json",
    ])
    .json();
    assert_eq!(run["config"]["encoder"]["cell"], "minlstm");
    assert_eq!(run["check"], "ok");
    let names: Vec<&str> = run["tensors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["name"].as_str().unwrap())
        .collect();
    // Two layers, two directions: an input projection and its bias each,
    // no recurrent weights.
    assert!(names.contains(&"encoder.weight_ih_l1_reverse"), "{names:?}");
    assert!(!names.iter().any(|n| n.contains("weight_hh")), "{names:?}");
    let ih = run["tensors"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["name"] == "encoder.weight_ih_l1")
        .unwrap();
    assert_eq!(
        numbers(&ih["shape"]),
        [9.0, 6.0],
        "3 blocks of H = 3 over 2 directions of 3"
    );
}

/// Input relevance + initial state + unexplained, against the score.
fn conservation_gap(
    model: &lrp_models::Model<f64>,
    x: &DMatrix<f64>,
    composite: &Composite<f64>,
) -> (f64, DMatrix<f64>) {
    let trace = model.forward(x.clone()).unwrap();
    let target = trace.predicted();
    let e = model.lrp(&trace, target, composite).unwrap();
    let total = e.input_relevance.total() + e.initial_state_relevance + e.unexplained_relevance;
    let score = trace.scores()[target];
    let input = e.input_relevance.as_matrix().clone();
    ((total - score).abs() / score.abs().max(1e-3), input)
}

#[test]
fn every_gate_rule_conserves_and_the_rules_that_feed_gates_reach_them() {
    let p = RuleParameters::default();
    for cell in ["mingru", "minlstm"] {
        for seed in 0..6u64 {
            let config = architecture(cell, seed % 2 == 0, 1 + (seed % 2) as usize, 4, 3, None, "last", 2);
            let model = random_model(&config, seed, 1.0);
            let x = random_input(4, 9, seed, 1.0);
            let (gap, take_all) = conservation_gap(&model, &x, &Composite::epsilon(0.0, 1.0).unwrap());
            assert!(gap <= 1e-10, "{cell} seed {seed} signal-take-all: {gap:e}");
            // "all" is signal-take-all's short name.
            for gate in GATE_RULES
                .into_iter()
                .filter(|&g| !matches!(g, "signal-take-all" | "all"))
            {
                let composite = Composite::epsilon(0.0, 1.0)
                    .unwrap()
                    .with_boxed_gate_rule(gate_rule(gate, &p).unwrap());
                let (gap, fed) = conservation_gap(&model, &x, &composite);
                assert!(gap <= 1e-10, "{cell} seed {seed} {gate}: {gap:e}");
                // The gates' share went through their own weights, so the
                // input relevance is not the signals' alone.
                let moved = (&fed - &take_all).abs().max();
                assert!(
                    moved > 1e-6,
                    "{cell} seed {seed} {gate}: the gates got nothing ({moved:e})"
                );
            }
        }
    }
}

#[test]
fn the_gradient_is_the_derivative_of_the_score() {
    let mut worst = 0.0f64;
    for (k, cell) in ["mingru", "minlstm"].into_iter().enumerate() {
        for (bidirectional, layers) in [(false, 1), (true, 2)] {
            let seed = 60 + k as u64 + layers as u64;
            let config = architecture(cell, bidirectional, layers, 5, 4, None, "mean", 3);
            let model = random_model(&config, seed, 1.5);
            let x = random_input(5, 7, seed, 1.0);
            let trace = model.forward(x.clone()).unwrap();
            let target = trace.predicted();
            let grad = model.gradient(&trace, target).unwrap();
            let numeric = central_differences(&model, &x, target, 1e-6);
            let error = (&grad - &numeric).abs().max() / numeric.abs().max().max(1e-3);
            worst = worst.max(error);
            assert!(error <= 1e-6, "{cell} bi={bidirectional} layers={layers}: {error:e}");
        }
    }
    eprintln!("min cells: gradient vs central differences, worst {worst:.2e} of the gradient's scale");
}

#[test]
fn what_a_min_cell_cannot_be_is_refused_in_one_line() {
    let dir = lrp_tests::scratch_dir("min-refusals");
    let base: Value =
        serde_json::from_str(&std::fs::read_to_string(fixture("min-rnn/mingru/config.json")).unwrap()).unwrap();
    // (file name, JSON pointer, value, what the one line must say)
    let cases = [
        (
            "keras",
            "/layout",
            Value::from("keras"),
            "a mingru is stored in lrp's own \"pytorch\" layout only",
        ),
        (
            "hard-sigmoid",
            "/encoder/recurrent_activation",
            Value::from("hard_sigmoid_keras2"),
            "a mingru has logistic sigmoid gates only",
        ),
        (
            "forget-bias",
            "/encoder/forget_bias",
            Value::from(1.0),
            "applies to an LSTM only",
        ),
    ];
    for (name, pointer, value, wanted) in cases {
        let mut config = base.clone();
        let (parent, key) = pointer.rsplit_once('/').unwrap();
        config.pointer_mut(parent).unwrap()[key] = value;
        let path = dir.join(format!("{name}.json"));
        std::fs::write(&path, config.to_string()).unwrap();
        let run = lrp(&["model-info", "--config", path.to_str().unwrap(), "--format", "json"]);
        assert_eq!(run.code, 1, "{name}: {}", run.stdout);
        assert_eq!(run.stderr.trim().lines().count(), 1, "{name}: {}", run.stderr);
        assert!(run.stderr.contains(wanted), "{name}: {}", run.stderr);
    }
}

#[test]
fn an_encoder_decoder_refuses_min_cells_naming_the_key() {
    let mut config: Value = serde_json::from_str(
        &std::fs::read_to_string(fixture("seq2seq-reverse/model/config.json")).expect("a seq2seq fixture"),
    )
    .unwrap();
    config["decoder"]["cell"] = "minlstm".into();
    let err = serde_json::from_value::<lrp_models::seq2seq::Seq2SeqConfig>(config)
        .unwrap()
        .validate()
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("decoder.cell") && err.contains("minlstm is not supported"),
        "{err}"
    );
}
