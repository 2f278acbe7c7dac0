//! A layer norm in front of the encoder, in a chain built in code: layer
//! norm -> two bidirectional peephole-LSTM layers -> mean pooling -> head.
//! LRP conserves, the gradient is the derivative of the score, and the
//! layers behind the new stage keep their sites.

mod common;

use common::*;
use lrp_extend::{LayerNorm, PeepholeCell};
use lrp_layers::{Composite, SitePattern, ZPlus};
use lrp_models::faithfulness::SplitMix64;
use lrp_models::{Encoder, Linear, MeanPooling, Model, RecurrentLayer};

fn model(seed: u64) -> Model<f64> {
    let mut rng = SplitMix64(seed);
    let norm = LayerNorm::new(
        vector(&mut rng, INPUT, 1.0).add_scalar(1.0),
        vector(&mut rng, INPUT, 0.3),
        1e-5,
    )
    .expect("γ and β of one width");
    let mut cell = |e: usize| {
        let (w_ih, w_hh) = (
            matrix(&mut rng, 4 * HIDDEN, e, 0.5),
            matrix(&mut rng, 4 * HIDDEN, HIDDEN, 0.5),
        );
        let (bias, peepholes) = (
            vector(&mut rng, 4 * HIDDEN, 0.5),
            [(); 3].map(|_| vector(&mut rng, HIDDEN, 0.5)),
        );
        PeepholeCell::new(w_ih, w_hh, bias, peepholes).expect("shapes fit")
    };
    let layers = [INPUT, 2 * HIDDEN].map(|e| RecurrentLayer::bidirectional(cell(e), cell(e)).expect("same widths"));
    let head = Linear::new(
        matrix(&mut rng, CLASSES, 2 * HIDDEN, 0.5),
        Some(vector(&mut rng, CLASSES, 0.2)),
    );
    Model::builder(INPUT)
        .stage(norm)
        .stage(Encoder::new(layers.into()).expect("stacked widths fit"))
        .stage(MeanPooling::new(2 * HIDDEN))
        .stage(head.expect("a head of C rows"))
        .build()
        .expect("the stages fit")
}

#[test]
fn a_layer_norm_in_front_conserves_relevance() {
    assert_eq!(assert_conserves(&model(31), 31), 3 * LENGTHS.len());
}

#[test]
fn a_layer_norm_in_front_has_the_gradient_of_the_score() {
    assert_gradient(&model(32), 32);
}

/// The first recurrent layer is still `layer0`, and the layer norm has a
/// site of its own that a rule can select.
#[test]
fn the_layers_behind_a_layer_norm_keep_their_sites() {
    let model = model(33);
    let sites: Vec<String> = model.sites().iter().map(|s| s.to_string()).collect();
    assert!(sites.contains(&"layer-norm projection norm".to_string()), "{sites:?}");
    assert!(
        sites.contains(&"encoder layer 0 forward projection i".to_string()),
        "{sites:?}"
    );
    assert!(!sites.iter().any(|s| s.contains("layer 2")), "{sites:?}");
    // z+ at the layer norm only moves what its inputs receive.
    let trace = model.forward(inputs(33).remove(0)).expect("forward");
    let rules = || Composite::epsilon(0.0, 1.0).unwrap();
    let zplus = rules().with_rule(SitePattern::default().stage("layer-norm"), ZPlus);
    let (a, b) = (
        model.lrp(&trace, 0, &rules()).unwrap(),
        model.lrp(&trace, 0, &zplus).unwrap(),
    );
    assert_eq!(a.score, b.score);
    assert_ne!(a.token_relevance(), b.token_relevance());
}
