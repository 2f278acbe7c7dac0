//! PyTorch parity: models built with the reference module definitions,
//! exported by `pytorch_models.export`, and their outputs computed by torch.
//! Produced by `python3 tools/make_parity_fixtures.py` (see its header);
//! every architecture axis (cell, directions, 1-3 layers, attention kind,
//! head input, embedding, head bias) is covered, in f64 and f32.

use lrp_core::Float;
use lrp_io::{load_model, read_sequences, ModelDir};
use lrp_layers::Composite;
use lrp_tests::{assert_close, fixture, flat, rows_of};
use nalgebra::DMatrix;
use serde::Deserialize;

#[derive(Debug, Deserialize)]
struct ParityFile {
    generated_by: String,
    cases: Vec<ParityCase>,
}

#[derive(Debug, Deserialize)]
struct ParityCase {
    name: String,
    model: String,
    dtype: String,
    input: Option<String>,
    tokens: Option<Vec<String>>,
    scores: Vec<f64>,
    attention: Option<Vec<f64>>,
    predicted: usize,
    gradients: Vec<ParityGradient>,
}

#[derive(Debug, Deserialize)]
struct ParityGradient {
    target: usize,
    gradient: Vec<Vec<f64>>,
}

fn cases() -> Vec<ParityCase> {
    let text = std::fs::read_to_string(fixture("parity/cases.json")).expect("parity cases are committed");
    let file: ParityFile = serde_json::from_str(&text).expect("parity cases parse");
    assert_eq!(file.generated_by, "tools/make_parity_fixtures.py");
    file.cases
}

fn input<T: Float>(case: &ParityCase, dir: &ModelDir<T>) -> DMatrix<T> {
    match (&case.input, &case.tokens) {
        (Some(path), _) => read_sequences(fixture("parity").join(path))
            .expect("input")
            .remove(0)
            .vectors
            .map(T::of_f64),
        (None, Some(words)) => dir.model.embed(&dir.vocab().unwrap().ids(words).unwrap()).unwrap(),
        _ => panic!("{}: neither input nor tokens", case.name),
    }
}

/// Forward scores, attention and gradients against torch, then LRP
/// conservation (`bias_factor = 1`) on the same exported weights.
fn check<T: Float>(case: &ParityCase, forward_rtol: f64, gradient_rtol: f64, conservation_rtol: f64) {
    let dir = load_model::<T>(fixture("parity").join(&case.model)).expect("model loads");
    let trace = dir.model.forward(input(case, &dir)).expect("forward");
    let as64 = |v: &[T]| v.iter().map(|x| x.as_f64()).collect::<Vec<_>>();
    let n = &case.name;
    assert_close(
        &format!("{n}: scores"),
        &as64(trace.scores().as_slice()),
        &case.scores,
        forward_rtol,
    );
    assert_eq!(trace.predicted(), case.predicted, "{n}: predicted");
    match (&case.attention, trace.attention_weights()) {
        (Some(want), Some(got)) => assert_close(&format!("{n}: attention"), &as64(got), want, forward_rtol),
        (None, None) => {}
        (want, got) => panic!("{n}: attention: want {want:?}, got {:?}", got.map(as64)),
    }
    for g in &case.gradients {
        let grad = dir
            .model
            .gradient(&trace, g.target)
            .expect("gradient")
            .map(|v| v.as_f64());
        assert_close(
            &format!("{n}: gradient of class {}", g.target),
            &flat(&rows_of(&grad)),
            &flat(&g.gradient),
            gradient_rtol,
        );

        let composite = Composite::<T>::epsilon(0.001, 1.0).unwrap();
        let e = dir.model.lrp(&trace, g.target, &composite).expect("lrp");
        let total = e.input_relevance.total().as_f64() + e.initial_state_relevance.as_f64();
        let score = trace.scores()[g.target].as_f64();
        assert!(
            (total - score).abs() <= conservation_rtol * score.abs(),
            "{n}: class {}: relevance {total} + initial does not add up to the score {score}",
            g.target
        );
    }
}

#[test]
fn f64_models_match_torch_to_1e_10() {
    let cases: Vec<_> = cases().into_iter().filter(|c| c.dtype == "f64").collect();
    assert!(cases.len() >= 36, "every model with three inputs");
    for case in &cases {
        check::<f64>(case, 1e-10, 1e-9, 1e-10);
    }
}

#[test]
fn f32_models_match_torch_to_1e_4() {
    let cases: Vec<_> = cases().into_iter().filter(|c| c.dtype == "f32").collect();
    assert!(cases.len() >= 36);
    for case in &cases {
        check::<f32>(case, 1e-4, 1e-3, 1e-4);
    }
}
