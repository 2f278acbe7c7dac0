//! The peephole cell in whole models built in code (two bidirectional layers,
//! mean pooling, a head), f64, a batch of sequences of different lengths: conservation,
//! gradients, and for the peephole LSTM with zero peepholes, the built-in
//! LSTM.

mod common;

use common::*;
use lrp_extend::PeepholeCell;
use lrp_layers::Composite;
use lrp_models::faithfulness::SplitMix64;
use lrp_models::{Encoder, Model, RecurrentLayer, StepCell};
use nalgebra::DVector;

/// Two bidirectional layers of cells made by `cell(input width)`.
fn encoder<C: StepCell<f64>>(mut cell: impl FnMut(usize) -> C) -> Encoder<f64> {
    let layers =
        [INPUT, 2 * HIDDEN].map(|width| RecurrentLayer::bidirectional(cell(width), cell(width)).expect("same widths"));
    Encoder::new(layers.into()).expect("stacked widths fit")
}

fn peephole_model(seed: u64, peephole_scale: f64) -> Model<f64> {
    let mut rng = SplitMix64(seed);
    let encoder = encoder(|e| {
        let (w_ih, w_hh, bias) = (
            matrix(&mut rng, 4 * HIDDEN, e, 0.5),
            matrix(&mut rng, 4 * HIDDEN, HIDDEN, 0.5),
            vector(&mut rng, 4 * HIDDEN, 0.5),
        );
        let peepholes = [(); 3].map(|_| vector(&mut rng, HIDDEN, peephole_scale));
        PeepholeCell::new(w_ih, w_hh, bias, peepholes).expect("shapes fit")
    });
    model_of(encoder, seed)
}

#[test]
fn the_peephole_lstm_conserves_relevance() {
    for seed in [3, 4] {
        assert_eq!(assert_conserves(&peephole_model(seed, 0.5), seed), 3 * LENGTHS.len());
    }
}

#[test]
fn the_peephole_lstm_gradient_is_the_derivative_of_the_score() {
    assert_gradient(&peephole_model(21, 0.8), 21);
}

/// With zero peepholes the peephole LSTM is the built-in LSTM of the same
/// weights, to rounding: scores, LRP under the default rules, gradient.
#[test]
fn zero_peepholes_give_the_builtin_lstm() {
    let seed = 9;
    let mut rng = SplitMix64(seed);
    let mut builtin = Vec::new();
    let peephole = encoder(|e| {
        let (w_ih, w_hh, bias) = (
            matrix(&mut rng, 4 * HIDDEN, e, 0.5),
            matrix(&mut rng, 4 * HIDDEN, HIDDEN, 0.5),
            vector(&mut rng, 4 * HIDDEN, 0.5),
        );
        builtin.push(lrp_models::LstmCell::new(w_ih.clone(), w_hh.clone(), bias.clone()).expect("shapes fit"));
        PeepholeCell::new(w_ih, w_hh, bias, [(); 3].map(|_| DVector::zeros(HIDDEN))).expect("shapes fit")
    });
    let mut cells = builtin.into_iter();
    let lstm = encoder(|_| cells.next().expect("one built-in cell per peephole cell"));
    let (a, b) = (model_of(peephole, seed), model_of(lstm, seed));
    let rules = Composite::epsilon(1e-3, 0.0).unwrap();
    for x in inputs(seed) {
        let (ta, tb) = (a.forward(x.clone()).unwrap(), b.forward(x).unwrap());
        let close = |p: &[f64], q: &[f64]| p.iter().zip(q).all(|(u, v)| (u - v).abs() <= 1e-12 * (1.0 + v.abs()));
        assert!(close(ta.scores().as_slice(), tb.scores().as_slice()));
        let (ea, eb) = (a.lrp(&ta, 0, &rules).unwrap(), b.lrp(&tb, 0, &rules).unwrap());
        assert!(
            close(&ea.token_relevance(), &eb.token_relevance()),
            "{:?} vs {:?}",
            ea.token_relevance(),
            eb.token_relevance()
        );
        assert!(close(
            a.gradient(&ta, 0).unwrap().as_slice(),
            b.gradient(&tb, 0).unwrap().as_slice()
        ));
    }
}
