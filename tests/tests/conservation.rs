//! Conservation (`docs/rules.md`): with `bias_factor = 1`, for every model,
//! `sum_t sum_e R(x_{t,e}) + initial-state relevance = s_target`, to 1e-10
//! relative in f64. Random models over every architecture combination.
//!
//! The stabiliser is at least the default 0.001 here. With `eps = 0` a
//! pre-activation near zero makes the ratios `R_j / z_j` arbitrarily large
//! and the relevances cancel: the total is then only as exact as the
//! rounding of those large terms, which `eps_zero_conserves_to_rounding`
//! checks against their scale instead.

use lrp_layers::{Composite, RuleParameters};
use lrp_tests::{architecture, random_input, random_model, relative_error};
use proptest::prelude::*;

/// Explains the class with the largest |score| (a near-zero score would make
/// a relative check meaningless) and returns the conservation error relative
/// to the score and the magnitude of the terms, `sum |R| + |R(initial)|`.
fn conservation(config: &lrp_models::ModelConfig, len: usize, seed: u64, eps: f64) -> (f64, f64, f64) {
    let model = random_model(config, seed, 0.5);
    let x = random_input(config.encoder.input_size, len, seed, 1.0);
    let trace = model.forward(x).expect("forward");
    let target = (0..model.num_classes())
        .max_by(|&a, &b| trace.scores()[a].abs().total_cmp(&trace.scores()[b].abs()))
        .unwrap();
    let e = model
        .lrp(&trace, target, &Composite::epsilon(eps, 1.0).unwrap())
        .expect("lrp");
    assert_eq!(e.unexplained_relevance, 0.0);
    let score = trace.scores()[target];
    let magnitude = e.input_relevance.as_slice().iter().map(|v| v.abs()).sum::<f64>() + e.initial_state_relevance.abs();
    (
        relative_error(e.input_relevance.total() + e.initial_state_relevance, score),
        score.abs(),
        magnitude,
    )
}

/// The conservation error relative to the score.
fn conservation_error(config: &lrp_models::ModelConfig, len: usize, seed: u64, eps: f64) -> f64 {
    conservation(config, len, seed, eps).0
}

proptest! {
    // A fixed seed: CI runs the same cases every time (a failure is kept in
    // proptest-regressions/ and replayed first).
    #![proptest_config(ProptestConfig {
        cases: 96,
        rng_seed: proptest::test_runner::RngSeed::Fixed(20171101),
        ..ProptestConfig::default()
    })]

    /// Issue 2: LSTM and BiLSTM with a head on the final state.
    #[test]
    fn lstm_and_bilstm_conserve_relevance(
        bidirectional in any::<bool>(),
        input in 1usize..=64,
        hidden in 1usize..=64,
        classes in 1usize..=6,
        len in 1usize..=100,
        seed in any::<u64>(),
        eps in prop_oneof![Just(0.001), 0.001f64..0.1],
    ) {
        let config = architecture("lstm", bidirectional, 1, input, hidden, None, "last", classes);
        let err = conservation_error(&config, len, seed, eps);
        prop_assert!(err <= 1e-10, "relative error {err:e}");
    }

    /// Issue 3: every cell x direction x depth x attention x head input.
    ///
    /// Stacked layers can make the relevance *explode*: with `bf = 1` every
    /// near-zero pre-activation `z_j` sends `(b_j + eps) / (z_j + eps)` times
    /// its relevance to all its inputs, and over layers and time steps such
    /// factors multiply (seen: terms of 1e15 to 1e50 for a score of 0.5, in
    /// about 1 of 200 random 3-layer models with hidden sizes below 25). No
    /// float64 sum of such terms can match the score to 1e-10; there the
    /// check is against the terms' own scale. Where the terms stay within
    /// 1e4 of the score (every other case) it is 1e-10 of the score.
    #[test]
    fn every_architecture_conserves_relevance(
        cell in prop_oneof![Just("lstm"), Just("gru"), Just("mingru"), Just("minlstm")],
        bidirectional in any::<bool>(),
        layers in 1usize..=3,
        pooling in prop_oneof![
            Just((None, "last")),
            (prop_oneof![Just("context"), Just("additive"), Just("dot"), Just("general")],
             prop_oneof![Just("context"), Just("context+last")]).prop_map(|(k, h)| (Some(k), h)),
        ],
        (input, hidden, attention_size) in (1usize..=24, 1usize..=24, 1usize..=16),
        len in 1usize..=100,
        seed in any::<u64>(),
    ) {
        let (kind, head) = pooling;
        let config = architecture(cell, bidirectional, layers, input, hidden, kind.map(|k| (k, attention_size)), head, 3);
        let (err, score, magnitude) = conservation(&config, len, seed, 0.001);
        if magnitude <= 1e4 * score {
            prop_assert!(err <= 1e-10, "relative error {err:e}");
        } else {
            prop_assert!(err * score <= 1e-13 * magnitude, "error {:e} for terms of {magnitude:e}", err * score);
        }
    }
}

/// Every one of the 216 combinations once, deterministically, at length 37.
#[test]
fn each_combination_conserves_relevance() {
    let poolings = [
        (None, "last"),
        (Some("context"), "context"),
        (Some("context"), "context+last"),
        (Some("additive"), "context"),
        (Some("additive"), "context+last"),
        (Some("dot"), "context"),
        (Some("dot"), "context+last"),
        (Some("general"), "context"),
        (Some("general"), "context+last"),
    ];
    let mut seed = 7u64;
    for cell in ["lstm", "gru", "mingru", "minlstm"] {
        for bidirectional in [false, true] {
            for layers in 1..=3 {
                for (kind, head) in poolings {
                    seed += 1;
                    let config = architecture(cell, bidirectional, layers, 9, 7, kind.map(|k| (k, 5)), head, 4);
                    let err = conservation_error(&config, 37, seed, 0.001);
                    assert!(
                        err <= 1e-10,
                        "{cell} bi={bidirectional} layers={layers} {kind:?} {head}: {err:e}"
                    );
                }
            }
        }
    }
}

/// With `eps = 0` the check is against the rounding scale of the terms,
/// `sum |R|`, since the total can be a tiny difference of large relevances.
#[test]
fn eps_zero_conserves_to_rounding() {
    for seed in 0..40u64 {
        let config = architecture("lstm", seed % 2 == 0, 1 + (seed % 3) as usize, 11, 13, None, "last", 3);
        let model = random_model(&config, seed, 0.5);
        let trace = model.forward(random_input(11, 60, seed, 1.0)).unwrap();
        let e = model.lrp(&trace, 0, &Composite::epsilon(0.0, 1.0).unwrap()).unwrap();
        let magnitude: f64 =
            e.input_relevance.as_slice().iter().map(|v| v.abs()).sum::<f64>() + trace.scores()[0].abs();
        let total = e.input_relevance.total() + e.initial_state_relevance;
        assert!(
            (total - trace.scores()[0]).abs() <= 1e-13 * magnitude,
            "seed {seed}: {total} vs {}",
            trace.scores()[0]
        );
    }
}

/// Batched forward passes (equal-length sequences sharing one matrix
/// product per step) give what each sequence gives alone, up to the
/// rounding of the product's summation order; and so does LRP on them.
#[test]
fn batched_forward_equals_one_at_a_time() {
    for (cell, bi, layers) in [("lstm", true, 2), ("gru", false, 3), ("lstm", false, 1)] {
        let config = architecture(cell, bi, layers, 7, 9, Some(("additive", 4)), "context+last", 3);
        let model = random_model(&config, 5, 0.5);
        // 12 sequences, three lengths, interleaved: groups of 4 (naive
        // product) and, with 8 of one length, groups past matrixmultiply's
        // threshold.
        let xs: Vec<_> = (0..12)
            .map(|k| random_input(7, [5, 11, 5][k % 3], k as u64, 1.0))
            .collect();
        let batched = model.forward_batch(xs.clone());
        let rules = Composite::epsilon(0.001, 0.0).unwrap();
        for (x, b) in xs.into_iter().zip(batched) {
            let b = b.unwrap();
            let single = model.forward(x).unwrap();
            let rel = |t: &lrp_models::ForwardTrace<f64>| model.lrp(t, 0, &rules).unwrap().input_relevance;
            let scale = single.scores().abs().max();
            assert!((b.scores() - single.scores()).abs().max() <= 1e-13 * scale, "{cell}");
            let (rb, rs) = (rel(&b), rel(&single));
            let diff = (rb.as_matrix() - rs.as_matrix()).abs().max();
            assert!(diff <= 1e-12 * rs.as_matrix().abs().max(), "{cell}: {diff:e}");
        }
    }
}

/// Issue 15's heads: the conservation error, relative to the score, of the
/// output explained (for a per-step head, at `position`), at eps 0 and bias
/// factor 1, with the rounding scale of its terms.
fn head_conservation(config: &lrp_models::ModelConfig, len: usize, seed: u64, position: usize) -> (f64, f64, f64) {
    let model = random_model(config, seed, 0.5);
    let x = random_input(config.encoder.input_size, len, seed, 1.0);
    let trace = model.forward(x).expect("forward");
    let trace = if model.is_per_step() {
        assert_eq!(trace.position(), Some(len - 1), "the default position is the last");
        trace.at_position(position % len).expect("a position of the sequence")
    } else {
        trace
    };
    let target = (0..model.num_classes())
        .max_by(|&a, &b| trace.scores()[a].abs().total_cmp(&trace.scores()[b].abs()))
        .unwrap();
    let e = model
        .lrp(&trace, target, &Composite::epsilon(0.0, 1.0).unwrap())
        .expect("lrp");
    let score = trace.scores()[target];
    assert_eq!(e.score, score);
    let total = e.input_relevance.total() + e.initial_state_relevance + e.unexplained_relevance;
    let magnitude = e.input_relevance.as_slice().iter().map(|v| v.abs()).sum::<f64>()
        + e.initial_state_relevance.abs()
        + e.unexplained_relevance.abs();
    (relative_error(total, score), score.abs(), magnitude)
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: 128,
        rng_seed: proptest::test_runner::RngSeed::Fixed(20240615),
        ..ProptestConfig::default()
    })]

    /// Issue 15: mean, max and per-step heads, every cell x direction x
    /// depth, classification or regression, conserve at eps 0 and bias
    /// factor 1: `sum R(x) + R(initial) + unexplained = output`. As above,
    /// a model whose terms explode past 1e4 of the score is judged
    /// against the terms' own scale.
    #[test]
    fn the_new_heads_conserve_relevance(
        cell in prop_oneof![Just("lstm"), Just("gru"), Just("mingru"), Just("minlstm")],
        bidirectional in any::<bool>(),
        layers in 1usize..=3,
        head in prop_oneof![Just("mean"), Just("max"), Just("each")],
        regression in any::<bool>(),
        (input, hidden, outputs) in (1usize..=16, 1usize..=16, 1usize..=4),
        len in 1usize..=60,
        position in 0usize..60,
        seed in any::<u64>(),
    ) {
        let mut config = architecture(cell, bidirectional, layers, input, hidden, None, head, outputs);
        if regression {
            config.head.task = lrp_models::config::Task::Regression;
        }
        let (err, score, magnitude) = head_conservation(&config, len, seed, position);
        if magnitude <= 1e4 * score {
            prop_assert!(err <= 1e-10, "relative error {err:e}");
        } else {
            prop_assert!(err * score <= 1e-13 * magnitude, "error {:e} for terms of {magnitude:e}", err * score);
        }
    }
}

/// Every combination of cell x directions x layers x new head once, at
/// eps 0 and bias factor 1, and for per-step heads at the first, a middle
/// and the last position; prints the worst error (`--nocapture`).
#[test]
fn each_new_head_combination_conserves_relevance() {
    let mut seed = 1500u64;
    let (mut worst, mut worst_of_terms) = (0.0f64, 0.0f64);
    for cell in ["lstm", "gru"] {
        for bidirectional in [false, true] {
            for layers in 1..=3 {
                for head in ["mean", "max", "each"] {
                    let positions: &[usize] = if head == "each" { &[0, 13, 28] } else { &[0] };
                    for &position in positions {
                        seed += 1;
                        let config = architecture(cell, bidirectional, layers, 9, 7, None, head, 4);
                        let (err, score, magnitude) = head_conservation(&config, 29, seed, position);
                        // At eps 0 a pre-activation near zero can blow the
                        // terms up (seen: 5e3 for a score of 0.5); the total
                        // is then exact to the rounding of the terms.
                        let within = if magnitude <= 1e4 * score {
                            err <= 1e-10
                        } else {
                            err * score <= 1e-13 * magnitude
                        };
                        assert!(
                            within,
                            "{cell} bi={bidirectional} layers={layers} {head} at {position}: {err:e} (terms {magnitude:e}, score {score:e})"
                        );
                        worst = worst.max(err);
                        worst_of_terms = worst_of_terms.max(err * score / magnitude);
                    }
                }
            }
        }
    }
    println!("new heads: worst conservation error {worst:e} of the score, {worst_of_terms:e} of the terms");
}

/// A config of `architecture` with the cell options of other frameworks.
fn with_options(
    mut config: lrp_models::ModelConfig,
    activation: lrp_models::config::RecurrentActivation,
    reset_before: bool,
    forget_bias: f64,
) -> lrp_models::ModelConfig {
    use lrp_models::config::{CellKind, GruReset};
    let e = &mut config.encoder;
    e.recurrent_activation = Some(activation);
    match e.cell {
        CellKind::Gru => {
            e.gru_reset = Some(if reset_before {
                GruReset::Before
            } else {
                GruReset::After
            })
        }
        _ => e.forget_bias = Some(forget_bias),
    }
    config
}

/// The GRU that resets before its product (`"gru_reset": "before"`), the
/// hard sigmoids and the forget bias keep conservation: with `bf = 1` and
/// `eps = 0` every step hands on all it receives, so input plus
/// initial-state relevance is the score up to the rounding of the terms
/// (`sum |R|`, as in `eps_zero_conserves_to_rounding`), for every gate
/// rule (the other rules feed the gates' own pre-activation steps).
#[test]
fn cell_options_conserve_relevance_at_eps_zero() {
    use lrp_models::config::RecurrentActivation::{HardSigmoidKeras2, HardSigmoidKeras3, Sigmoid};
    let mut seed = 100u64;
    for cell in ["gru", "lstm"] {
        for activation in [Sigmoid, HardSigmoidKeras2, HardSigmoidKeras3] {
            for (bidirectional, layers, pooling) in [
                (false, 1, (None, "last")),
                (true, 2, (None, "last")),
                (true, 1, (Some(("additive", 4)), "context+last")),
            ] {
                for gate_rule in ["signal-take-all", "prop", "abs", "half"] {
                    seed += 1;
                    let base = architecture(cell, bidirectional, layers, 6, 5, pooling.0, pooling.1, 3);
                    let config = with_options(base, activation, true, 1.0);
                    // Weights of scale 2 so that the hard sigmoids clip.
                    let model = random_model(&config, seed, 2.0);
                    let trace = model.forward(random_input(6, 17, seed, 1.0)).unwrap();
                    let target = (seed % 3) as usize;
                    let rules = Composite::epsilon(0.0, 1.0).unwrap().with_gate_rule(
                        lrp_layers::gate_rule(
                            gate_rule,
                            &RuleParameters {
                                prop_eps: 0.0,
                                ..RuleParameters::default()
                            },
                        )
                        .unwrap(),
                    );
                    let e = model.lrp(&trace, target, &rules).unwrap();
                    let score = trace.scores()[target];
                    let magnitude: f64 = e.input_relevance.as_slice().iter().map(|v| v.abs()).sum::<f64>()
                        + e.initial_state_relevance.abs()
                        + score.abs();
                    let total = e.input_relevance.total() + e.initial_state_relevance + e.unexplained_relevance;
                    assert!(
                        (total - score).abs() <= 1e-12 * magnitude,
                        "{cell} {activation:?} bi={bidirectional} layers={layers} {gate_rule}: {total} vs {score} (terms {magnitude:e})"
                    );
                }
            }
        }
    }
}

/// The same with the default stabiliser, to 1e-10 of the score, as the
/// other architectures.
#[test]
fn gru_reset_before_conserves_relevance() {
    use lrp_models::config::RecurrentActivation::{HardSigmoidKeras3, Sigmoid};
    let mut seed = 300u64;
    for activation in [Sigmoid, HardSigmoidKeras3] {
        for bidirectional in [false, true] {
            for layers in 1..=3 {
                seed += 1;
                let base = architecture("gru", bidirectional, layers, 9, 7, None, "last", 4);
                let config = with_options(base, activation, true, 0.0);
                let err = conservation_error(&config, 37, seed, 0.001);
                assert!(
                    err <= 1e-10,
                    "{activation:?} bi={bidirectional} layers={layers}: {err:e}"
                );
            }
        }
    }
}
