//! Hugging Face Mamba and xLSTM directories (`tests/fixtures/hf-mamba` and
//! `tests/fixtures/hf-xlstm`, made by `tools/make_mamba_fixtures.py` and
//! `tools/make_xlstm_fixtures.py`): forward parity with the float64
//! reference and with `transformers`' own output, widening of float32 and
//! bfloat16 weights, conservation, and each family's default rules against
//! the modified-gradient oracle (the AttnLRP choice for xLSTM in
//! `hugging_face_xlstm.rs`).

use std::collections::BTreeMap;
use std::path::PathBuf;

use lrp_io::load_model;
use lrp_layers::Composite;
use nalgebra::DMatrix;
use serde::Deserialize;

/// One id sequence of a fixture and what the tool computed for it.
#[derive(Deserialize)]
struct Case {
    ids: Vec<usize>,
    /// The float64 reference's next-token logits `[T][V]`.
    logits: Vec<Vec<f64>>,
    /// transformers' own (float32 steps inside).
    transformers_logits: Vec<Vec<f64>>,
    /// The arg-max at the last position.
    target: usize,
    /// Input x modified gradient `[T][H]` for `target` at the last position.
    relevance: Vec<Vec<f64>>,
}

/// The fixture folders, one per model family.
const FAMILIES: [&str; 2] = ["hf-mamba", "hf-xlstm"];

fn fixtures() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures")
}

/// The cases of every fixture of every family, by `family/fixture`.
fn expected() -> BTreeMap<String, Vec<Case>> {
    let mut all = BTreeMap::new();
    for family in FAMILIES {
        let text = std::fs::read_to_string(fixtures().join(family).join("expected.json")).unwrap();
        let cases: BTreeMap<String, Vec<Case>> = serde_json::from_str(&text).unwrap();
        all.extend(cases.into_iter().map(|(name, c)| (format!("{family}/{name}"), c)));
    }
    all
}

/// `|a - b| / max(1, |b|)`.
fn relative(a: f64, b: f64) -> f64 {
    (a - b).abs() / b.abs().max(1.0)
}

#[test]
fn every_fixture_matches_the_float64_reference_at_every_position() {
    let mut worst = 0.0f64;
    let mut worst_transformers = 0.0f64;
    for (name, cases) in expected() {
        let dir = load_model::<f64>(fixtures().join(&name)).unwrap();
        let model = &dir.model;
        // All cases in one packed batch, as the CLI runs them.
        let inputs: Vec<DMatrix<f64>> = cases.iter().map(|c| model.embed(&c.ids).unwrap()).collect();
        let traces = model.forward_batch(inputs);
        for (case, trace) in cases.iter().zip(traces) {
            let trace = trace.unwrap();
            assert_eq!(trace.outputs().len(), case.ids.len());
            for (t, (want, theirs)) in case.logits.iter().zip(&case.transformers_logits).enumerate() {
                let got = &trace.outputs()[t];
                assert_eq!(got.len(), want.len());
                for ((&g, &w), &th) in got.iter().zip(want).zip(theirs) {
                    worst = worst.max(relative(g, w));
                    worst_transformers = worst_transformers.max(relative(g, th));
                }
            }
        }
    }
    println!("worst relative difference: f64 reference {worst:.2e}, transformers {worst_transformers:.2e}");
    assert!(
        worst < 1e-10,
        "worst relative difference from the f64 reference: {worst:.2e}"
    );
    assert!(
        worst_transformers < 1e-5,
        "worst relative difference from transformers: {worst_transformers:.2e}"
    );
}

#[test]
fn float32_computation_matches_to_float32_accuracy() {
    for (name, cases) in expected() {
        let dir = load_model::<f32>(fixtures().join(&name)).unwrap();
        for case in &cases {
            let trace = dir.model.forward(dir.model.embed(&case.ids).unwrap()).unwrap();
            for (&g, &w) in trace.scores().iter().zip(case.logits.last().unwrap()) {
                assert!(relative(f64::from(g), w) < 1e-4, "{name} {:?}: {g} vs {w}", case.ids);
            }
        }
    }
}

#[test]
fn relevance_is_conserved_with_bias_factor_one_and_eps_zero() {
    let rules = Composite::epsilon(0.0, 1.0).unwrap();
    for (name, cases) in expected() {
        let dir = load_model::<f64>(fixtures().join(&name)).unwrap();
        for case in &cases {
            let trace = dir.model.forward(dir.model.embed(&case.ids).unwrap()).unwrap();
            let e = dir.model.lrp(&trace, case.target, &rules).unwrap();
            let total = e.input_relevance.total() + e.initial_state_relevance + e.unexplained_relevance;
            assert!(
                (total - e.score).abs() < 1e-10 * e.score.abs().max(1.0),
                "{name} {:?}: {total} vs {}",
                case.ids,
                e.score
            );
            assert_eq!(e.unexplained_relevance, 0.0);
        }
    }
}

#[test]
fn relevance_equals_input_times_the_modified_gradient_at_eps_zero_and_bias_factor_zero() {
    let rules = Composite::epsilon(0.0, 0.0).unwrap();
    let mut worst = 0.0f64;
    for (name, cases) in expected() {
        let dir = load_model::<f64>(fixtures().join(&name)).unwrap();
        // Explained from one packed batch, as the CLI does.
        let inputs: Vec<DMatrix<f64>> = cases.iter().map(|c| dir.model.embed(&c.ids).unwrap()).collect();
        let traces = dir.model.forward_batch(inputs);
        for (case, trace) in cases.iter().zip(traces) {
            let trace = trace.unwrap();
            assert_eq!(trace.predicted(), case.target, "{name} {:?}", case.ids);
            let e = dir.model.lrp(&trace, case.target, &rules).unwrap();
            for (t, want) in case.relevance.iter().enumerate() {
                let got = e.input_relevance.position(t).unwrap();
                for (&g, &w) in got.iter().zip(want) {
                    worst = worst.max(relative(g, w));
                }
            }
        }
    }
    println!("worst relative difference from the oracle: {worst:.2e}");
    assert!(worst < 1e-9, "worst relative difference from the oracle: {worst:.2e}");
}

#[test]
fn the_gradient_matches_central_differences() {
    for (name, cases) in expected() {
        let dir = load_model::<f64>(fixtures().join(&name)).unwrap();
        let model = &dir.model;
        let case = cases.last().unwrap();
        let x = model.embed(&case.ids).unwrap();
        // Beside a shorter sequence in the same packed batch.
        let short = model.embed(&cases[1].ids).unwrap();
        let traces = model.forward_batch(vec![short, x.clone()]);
        let trace = traces[1].as_ref().unwrap();
        let gradient = model.gradient(trace, case.target).unwrap();
        let logit = |x: DMatrix<f64>| model.forward(x).unwrap().scores()[case.target];
        let h = 1e-6;
        for t in 0..x.ncols() {
            for e in 0..x.nrows() {
                let (mut up, mut down) = (x.clone(), x.clone());
                up[(e, t)] += h;
                down[(e, t)] -= h;
                let numeric = (logit(up) - logit(down)) / (2.0 * h);
                assert!(
                    (gradient[(e, t)] - numeric).abs() < 1e-6 * numeric.abs().max(1.0),
                    "{name} ({e}, {t}): {} vs {numeric}",
                    gradient[(e, t)]
                );
            }
        }
    }
}
