//! The AttnLRP choice for Hugging Face xLSTM directories
//! (`tests/fixtures/hf-xlstm`, made by `tools/make_xlstm_fixtures.py`):
//! with every product split half-half, relevance equals the oracle's input
//! x modified gradient and is conserved, explained from one packed batch.
//! (Parity, widening, the default rules and the gradient are checked
//! beside Mamba's in `hugging_face.rs`.)

use std::collections::BTreeMap;
use std::path::PathBuf;

use lrp_io::load_model;
use lrp_layers::{Composite, Uniform};
use nalgebra::DMatrix;
use serde::Deserialize;

/// One id sequence of a fixture and what the tool computed for it.
#[derive(Deserialize)]
struct Case {
    ids: Vec<usize>,
    /// The arg-max at the last position.
    target: usize,
    /// Input x modified gradient `[T][H]` with the products of two signals
    /// split half-half.
    relevance_attnlrp: Vec<Vec<f64>>,
}

#[test]
fn half_half_products_equal_the_oracle_and_conserve_from_a_packed_batch() {
    let fixtures = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures/hf-xlstm");
    let text = std::fs::read_to_string(fixtures.join("expected.json")).unwrap();
    let expected: BTreeMap<String, Vec<Case>> = serde_json::from_str(&text).unwrap();
    let attnlrp = Composite::epsilon(0.0, 0.0).unwrap().with_gate_rule(Uniform);
    let conserving = Composite::epsilon(0.0, 1.0).unwrap().with_gate_rule(Uniform);
    let mut worst = 0.0f64;
    for (name, cases) in expected {
        let dir = load_model::<f64>(fixtures.join(&name)).unwrap();
        let inputs: Vec<DMatrix<f64>> = cases.iter().map(|c| dir.model.embed(&c.ids).unwrap()).collect();
        for (case, trace) in cases.iter().zip(dir.model.forward_batch(inputs)) {
            let trace = trace.unwrap();
            let e = dir.model.lrp(&trace, case.target, &attnlrp).unwrap();
            for (t, want) in case.relevance_attnlrp.iter().enumerate() {
                for (&g, &w) in e.input_relevance.position(t).unwrap().iter().zip(want) {
                    worst = worst.max((g - w).abs() / w.abs().max(1.0));
                }
            }
            let e = dir.model.lrp(&trace, case.target, &conserving).unwrap();
            let total = e.input_relevance.total() + e.initial_state_relevance + e.unexplained_relevance;
            assert!(
                (total - e.score).abs() < 1e-10 * e.score.abs().max(1.0),
                "{name} {:?}: {total} vs {}",
                case.ids,
                e.score
            );
        }
    }
    assert!(worst < 1e-9, "worst relative difference from the oracle: {worst:.2e}");
}
