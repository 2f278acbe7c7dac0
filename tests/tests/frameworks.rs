//! Models of other frameworks in their own weights layouts
//! (`docs/model-format.md`): lrp must compute what the framework computed.
//!
//! - `keras/`: real Keras 3 models (`tools/export_keras.py`): LSTM with
//!   sigmoid and with `hard_sigmoid` gates, GRU with `reset_after` true and
//!   false, bidirectional, stacked, with an embedding or vector inputs; the
//!   scores (and, for vector inputs, the gradient) computed by Keras in
//!   float64 and in float32.
//! - `onnx/`, `tf1/`: PyTorch models written in those layouts by the
//!   documented permutation (`tools/make_layout_fixtures.py`), with torch's
//!   scores and gradients: the readers' gate orders and biases are checked
//!   without the frameworks themselves.
//! - `tf1-real/`: real TensorFlow 1 graphs (`tools/export_tf1.py`):
//!   `LSTMCell` (forget bias 1.0) under `dynamic_rnn` and, per layer,
//!   `bidirectional_dynamic_rnn`, a dense head on the final state, one with
//!   an embedding lookup; saved by `tf.compat.v1.train.Saver`, converted by
//!   `tools/convert_tf1.py`, with TensorFlow's scores (and, for vector
//!   inputs, `tf.gradients`) in float64 and in float32.
//!
//! Each test prints the worst relative error it saw (`--nocapture`).

use lrp_core::Float;
use lrp_io::{load_model, ModelDir};
use lrp_layers::Composite;
use lrp_models::config::{GruReset, RecurrentActivation};
use lrp_models::ModelConfig;
use lrp_tests::{fixture, flat};
use nalgebra::DMatrix;
use serde::Deserialize;

#[derive(Debug, Deserialize)]
struct CasesFile {
    generated_by: String,
    cases: Vec<Case>,
}

#[derive(Debug, Deserialize)]
struct Case {
    name: String,
    model: String,
    dtype: String,
    /// Input vectors `[T][E]`, for vector models.
    input: Option<Vec<Vec<f64>>>,
    /// Words, for embedding models.
    tokens: Option<Vec<String>>,
    scores: Vec<f64>,
    gradient: Option<Gradient>,
}

#[derive(Debug, Deserialize)]
struct Gradient {
    target: usize,
    gradient: Vec<Vec<f64>>,
}

fn cases(framework: &str, script: &str) -> Vec<Case> {
    let path = fixture(&format!("frameworks/{framework}/cases.json"));
    let text = std::fs::read_to_string(path).expect("framework cases are committed");
    let file: CasesFile = serde_json::from_str(&text).expect("framework cases parse");
    assert_eq!(file.generated_by, script);
    file.cases
}

/// The worst of `|got - want| / max(|want|, floor · max |want|)` over the
/// entries, which must stay within `rtol`: the relative error, judged
/// against the array's scale where entries cancel to almost nothing
/// (`floor` 1e-6), or against the scale alone (`floor` 1).
fn worst(what: &str, got: &[f64], want: &[f64], rtol: f64, floor: f64) -> f64 {
    assert_eq!(got.len(), want.len(), "{what}: length");
    let floor = want.iter().fold(0.0f64, |m, v| m.max(v.abs())) * floor;
    let mut worst = 0.0f64;
    for (k, (&g, &w)) in got.iter().zip(want).enumerate() {
        let error = (g - w).abs() / w.abs().max(floor).max(f64::MIN_POSITIVE);
        assert!(
            error <= rtol,
            "{what}: entry {k}: got {g:e}, want {w:e} (relative {error:e} > {rtol:e})"
        );
        worst = worst.max(error);
    }
    worst
}

/// Scores, gradient and LRP conservation of one case; the worst relative
/// errors of the scores and of the gradient.
fn check<T: Float>(framework: &str, case: &Case, rtol: f64, gradient_rtol: f64) -> (f64, f64) {
    let dir: ModelDir<T> = load_model(fixture(&format!("frameworks/{framework}")).join(&case.model))
        .unwrap_or_else(|e| panic!("{}: {e}", case.model));
    let x = match (&case.input, &case.tokens) {
        (Some(rows), _) => DMatrix::from_fn(rows[0].len(), rows.len(), |e, t| T::of_f64(rows[t][e])),
        (None, Some(words)) => dir.model.embed(&dir.vocab().unwrap().ids(words).unwrap()).unwrap(),
        _ => panic!("{}: neither input nor tokens", case.name),
    };
    let trace = dir.model.forward(x).expect("forward");
    let scores: Vec<f64> = trace.scores().iter().map(|v| v.as_f64()).collect();
    let n = &case.name;
    let score_error = worst(&format!("{n}: scores"), &scores, &case.scores, rtol, 1e-6);
    let mut gradient_error = 0.0;
    if let Some(g) = &case.gradient {
        // PyTorch's backward of `hardsigmoid` (Keras 3's hard_sigmoid under
        // the torch backend) multiplies by the float32 constant 1.0f / 6.0f
        // even in float64, 1/6 (1 + 3e-8): the reference gradients of those
        // models carry that error, lrp's (exact 1/6) do not. It adds up
        // across gates and steps, and entries that cancel show it
        // relatively larger: there the check is against the gradient's
        // scale.
        let hard = dir
            .model
            .config()
            .expect("loaded from a config")
            .encoder
            .recurrent_activation()
            != RecurrentActivation::Sigmoid;
        let (gradient_rtol, floor) = if hard {
            (gradient_rtol.max(1e-6), 1.0)
        } else {
            (gradient_rtol, 1e-6)
        };
        let grad = dir.model.gradient(&trace, g.target).expect("gradient");
        // [E, T] column-major is [T][E] row by row.
        let got: Vec<f64> = grad.iter().map(|v| v.as_f64()).collect();
        gradient_error = worst(
            &format!("{n}: gradient"),
            &got,
            &flat(&g.gradient),
            gradient_rtol,
            floor,
        );
    }
    // With bias factor 1 the relevance adds up to the score, forget bias
    // and all (it is one more bias of the f rows).
    let target = trace.predicted();
    let e = dir
        .model
        .lrp(&trace, target, &Composite::<T>::epsilon(0.001, 1.0).unwrap())
        .expect("lrp");
    let total = e.input_relevance.total().as_f64() + e.initial_state_relevance.as_f64();
    let score = scores[target];
    let conservation = if T::of_f64(0.1).as_f64() == 0.1 { 1e-9 } else { 1e-3 };
    assert!(
        (total - score).abs() <= conservation * score.abs().max(1e-3),
        "{n}: relevance {total} does not add up to the score {score}"
    );
    (score_error, gradient_error)
}

fn run<T: Float>(framework: &str, script: &str, dtype: &str, rtol: f64, gradient_rtol: f64) {
    let cases: Vec<Case> = cases(framework, script)
        .into_iter()
        .filter(|c| c.dtype == dtype)
        .collect();
    assert!(cases.len() >= 6, "{framework} {dtype}: {} cases", cases.len());
    let (mut scores, mut gradients) = (0.0f64, 0.0f64);
    for case in &cases {
        let (s, g) = check::<T>(framework, case, rtol, gradient_rtol);
        scores = scores.max(s);
        gradients = gradients.max(g);
    }
    eprintln!(
        "{framework} {dtype}: {} cases, worst relative error: scores {scores:.2e}, gradients {gradients:.2e}",
        cases.len()
    );
}

#[test]
fn keras_f64_models_match_keras_to_1e_10() {
    run::<f64>("keras", "tools/export_keras.py", "f64", 1e-10, 1e-9);
}

#[test]
fn keras_f32_models_match_keras_to_1e_5() {
    run::<f32>("keras", "tools/export_keras.py", "f32", 1e-5, 1e-3);
}

#[test]
fn onnx_layout_matches_the_pytorch_model_to_1e_10() {
    run::<f64>("onnx", "tools/make_layout_fixtures.py", "f64", 1e-10, 1e-9);
}

#[test]
fn tf1_layout_matches_the_pytorch_model_to_1e_10() {
    run::<f64>("tf1", "tools/make_layout_fixtures.py", "f64", 1e-10, 1e-9);
}

#[test]
fn tf1_checkpoints_match_tensorflow_to_1e_10_in_f64() {
    run::<f64>("tf1-real", "tools/export_tf1.py", "f64", 1e-10, 1e-9);
}

#[test]
fn tf1_checkpoints_match_tensorflow_to_1e_5_in_f32() {
    run::<f32>("tf1-real", "tools/export_tf1.py", "f32", 1e-5, 1e-3);
}

/// `lrp check` of a converted TF1 checkpoint against TensorFlow's own
/// scores: ok as converted; without `forget_bias` in the config it names
/// the missing forget bias as the one change that makes the scores match.
#[test]
fn lrp_check_passes_a_tf1_checkpoint_and_names_its_missing_forget_bias() {
    let source = fixture("frameworks/tf1-real/lstm-bi-2l");
    let inputs = source.join("inputs.npz");
    let expect = source.join("expected.jsonl");
    let check = |dir: &std::path::Path| {
        lrp_tests::lrp(&[
            "check",
            "--model",
            dir.to_str().unwrap(),
            "--vectors",
            inputs.to_str().unwrap(),
            "--expect",
            expect.to_str().unwrap(),
            "--format",
            "json",
        ])
        .json()
    };
    let report = check(&source);
    assert_eq!(report["ok"], true, "{report}");
    assert_eq!(report["inputs"], 3, "{report}");
    assert!(report["max_abs_diff"].as_f64().unwrap() < 1e-12, "{report}");
    assert!(
        report["diagnosis"].as_str().unwrap().starts_with("scores match ("),
        "{report}"
    );
    eprintln!("tf1-real lstm-bi-2l: lrp check ok, {}", report["diagnosis"]);

    let copy = lrp_tests::scratch_dir("tf1-real-no-forget-bias");
    std::fs::copy(source.join("weights.npz"), copy.join("weights.npz")).unwrap();
    let mut config: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(source.join("config.json")).unwrap()).unwrap();
    let encoder = config["encoder"].as_object_mut().unwrap();
    assert_eq!(encoder.remove("forget_bias"), Some(1.0.into()));
    std::fs::write(copy.join("config.json"), config.to_string()).unwrap();
    let report = check(&copy);
    assert_eq!(report["ok"], false, "{report}");
    assert!(report["max_abs_diff"].as_f64().unwrap() > 1e-3, "{report}");
    let diagnosis = report["diagnosis"].as_str().unwrap();
    assert!(
        diagnosis.starts_with("scores match (") && diagnosis.contains("a forget bias of 1 is added"),
        "{diagnosis}"
    );
    assert!(
        report["fix"].as_str().unwrap().contains("set encoder.forget_bias to 1"),
        "{report}"
    );
    eprintln!("tf1-real lstm-bi-2l without forget_bias: {diagnosis}");
    let best = &report["candidates"][0];
    assert_eq!(best["name"], "a forget bias of 1 is added", "{best}");
    assert!(best["max_abs_diff"].as_f64().unwrap() < 1e-12, "{best}");
    std::fs::remove_dir_all(copy).unwrap();
}

/// Every Keras model covers what it says: the keys its config sets.
#[test]
fn keras_fixtures_cover_every_cell_option() {
    let mut seen = std::collections::BTreeSet::new();
    for case in cases("keras", "tools/export_keras.py") {
        let dir: ModelDir<f64> = load_model(fixture("frameworks/keras").join(&case.model)).unwrap();
        let e = &dir.model.config().expect("loaded from a config").encoder;
        seen.insert(e.cell.name().to_string());
        seen.insert(format!("activation {}", e.recurrent_activation().name()));
        if e.cell == lrp_models::config::CellKind::Gru {
            seen.insert(format!("reset {}", e.gru_reset().name()));
        }
        if e.bidirectional {
            seen.insert("bidirectional".into());
        }
        if e.num_layers > 1 {
            seen.insert("stacked".into());
        }
        if dir.model.has_embedding() {
            seen.insert("embedding".into());
        }
    }
    for wanted in [
        "lstm",
        "gru",
        "activation sigmoid",
        "activation hard_sigmoid_keras3",
        "reset after",
        "reset before",
        "bidirectional",
        "stacked",
        "embedding",
    ] {
        assert!(seen.contains(wanted), "no Keras fixture with {wanted}: {seen:?}");
    }
}

/// The gradient of the cell options against central finite differences:
/// the GRU that resets before its product, both hard sigmoids (weights of
/// scale 1.5, so that some gates clip and have slope 0) and the forget
/// bias, one and two directions, one and two layers.
#[test]
fn gradients_of_the_cell_options_match_finite_differences() {
    use lrp_models::config::RecurrentActivation::*;
    use lrp_tests::{architecture, random_input, random_model};
    let mut seed = 40u64;
    let mut worst_seen = 0.0f64;
    for (cell, reset) in [
        ("gru", Some(GruReset::Before)),
        ("gru", Some(GruReset::After)),
        ("lstm", None),
    ] {
        for activation in [Sigmoid, HardSigmoidKeras2, HardSigmoidKeras3] {
            for (bidirectional, layers) in [(false, 1), (true, 2)] {
                seed += 1;
                let mut config = architecture(cell, bidirectional, layers, 5, 4, None, "last", 3);
                config.encoder.recurrent_activation = Some(activation);
                config.encoder.gru_reset = reset;
                if cell == "lstm" {
                    config.encoder.forget_bias = Some(1.0);
                }
                let model = random_model(&config, seed, 1.5);
                let x = random_input(5, 7, seed, 1.0);
                let trace = model.forward(x.clone()).unwrap();
                let target = trace.predicted();
                let grad = model.gradient(&trace, target).unwrap();
                let numeric = lrp_tests::central_differences(&model, &x, target, 1e-6);
                let scale = numeric.abs().max().max(1e-3);
                let error = (&grad - &numeric).abs().max() / scale;
                worst_seen = worst_seen.max(error);
                assert!(
                    error <= 1e-6,
                    "{cell} {reset:?} {activation:?} bi={bidirectional} layers={layers}: {error:e}"
                );
            }
        }
    }
    eprintln!("cell options: gradient vs central differences, worst {worst_seen:.2e} of the gradient's scale");
}

// The config keys of the cell options, parsed and validated.

fn parse_config(layout: &str, weights: &str, encoder: &str) -> Result<ModelConfig, String> {
    let json = format!(
        r#"{{"format": "lrp-model", "version": 1, "layout": "{layout}", "weights": "{weights}",
            "encoder": {encoder}, "head": {{"input": "last", "num_classes": 2}}}}"#
    );
    serde_json::from_str(&json).map_err(|e| e.to_string())
}

fn refusal(layout: &str, weights: &str, encoder: &str) -> String {
    match parse_config(layout, weights, encoder) {
        Err(parse) => parse,
        Ok(c) => c.validate().expect_err("refused").to_string(),
    }
}

#[test]
fn cell_options_parse_with_their_defaults() {
    let plain = parse_config(
        "pytorch",
        "m.safetensors",
        r#"{"cell": "gru", "input_size": 3, "hidden_size": 2}"#,
    )
    .unwrap();
    assert_eq!(
        (
            plain.encoder.recurrent_activation(),
            plain.encoder.gru_reset(),
            plain.encoder.forget_bias()
        ),
        (RecurrentActivation::Sigmoid, GruReset::After, 0.0)
    );
    let keras = parse_config(
        "keras",
        "weights.npz",
        r#"{"cell": "gru", "input_size": 3, "hidden_size": 2, "recurrent_activation": "hard_sigmoid_keras2", "gru_reset": "before"}"#,
    )
    .unwrap();
    keras.validate().unwrap();
    assert_eq!(
        keras.encoder.recurrent_activation(),
        RecurrentActivation::HardSigmoidKeras2
    );
    assert_eq!(keras.encoder.gru_reset(), GruReset::Before);
    let tf1 = parse_config(
        "tf1",
        "weights.npz",
        r#"{"cell": "lstm", "input_size": 3, "hidden_size": 2, "forget_bias": 1.0, "recurrent_activation": "hard_sigmoid_keras3"}"#,
    )
    .unwrap();
    tf1.validate().unwrap();
    assert_eq!(tf1.encoder.forget_bias(), 1.0);
    // Keys left out stay out when written back.
    let written = serde_json::to_string(&plain).unwrap();
    assert!(
        !written.contains("gru_reset") && !written.contains("forget_bias"),
        "{written}"
    );
}

#[test]
fn cell_options_are_refused_where_they_mean_nothing() {
    for (layout, weights, encoder, wanted) in [
        (
            "pytorch",
            "m.safetensors",
            r#"{"cell": "lstm", "input_size": 3, "hidden_size": 2, "gru_reset": "after"}"#,
            "encoder.gru_reset: applies to a GRU only",
        ),
        (
            "pytorch",
            "m.safetensors",
            r#"{"cell": "gru", "input_size": 3, "hidden_size": 2, "forget_bias": 1.0}"#,
            "encoder.forget_bias: applies to an LSTM only",
        ),
        (
            "tf1",
            "w.npz",
            r#"{"cell": "gru", "input_size": 3, "hidden_size": 2}"#,
            "layout: \"tf1\" holds LSTMCell weights",
        ),
        (
            "keras",
            "weights.h5",
            r#"{"cell": "lstm", "input_size": 3, "hidden_size": 2}"#,
            "weights: layout \"keras\" reads a .npz or a .safetensors file",
        ),
        (
            "onnx",
            "m.safetensors",
            r#"{"cell": "lstm", "input_size": 3, "hidden_size": 2, "recurrent_activation": "hard_sigmoid"}"#,
            "unknown variant `hard_sigmoid`",
        ),
        (
            "onnx",
            "m.safetensors",
            r#"{"cell": "gru", "input_size": 3, "hidden_size": 2, "gru_reset": "sideways"}"#,
            "unknown variant `sideways`",
        ),
    ] {
        let message = refusal(layout, weights, encoder);
        assert!(message.contains(wanted), "{message}");
        assert!(!message.contains('\n'), "one line: {message}");
    }
    let mut c = parse_config(
        "pytorch",
        "m.safetensors",
        r#"{"cell": "lstm", "input_size": 3, "hidden_size": 2}"#,
    )
    .unwrap();
    c.encoder.forget_bias = Some(f64::NAN);
    assert!(c.validate().unwrap_err().to_string().contains("finite"));
}

/// `lrp model-info` shows the cell options a config sets, and the layout's
/// tensors, and checks that they load.
#[test]
fn model_info_shows_the_cell_options() {
    let dir = fixture("frameworks/keras/gru-before-hard-sigmoid");
    let run = lrp_tests::lrp(&["model-info", dir.to_str().unwrap(), "--format", "text"]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    for wanted in [
        "layout keras, weights weights.npz",
        "cell       gates hard_sigmoid_keras3, reset before the recurrent product",
        "check      ok",
        "encoder.l0.forward.recurrent_kernel  [4, 12]",
        "head.kernel",
    ] {
        assert!(run.stdout.contains(wanted), "{wanted:?} not in\n{}", run.stdout);
    }
    let json = lrp_tests::lrp(&["model-info", dir.to_str().unwrap(), "--format", "json"]).json();
    assert_eq!(json["config"]["encoder"]["gru_reset"], "before");
    assert_eq!(json["config"]["encoder"]["recurrent_activation"], "hard_sigmoid_keras3");
}
