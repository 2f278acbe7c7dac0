//! What the tests share: a built-in model to take the other stages from,
//! random weights, a batch of sequences, and the two checks every new part
//! must pass.
#![allow(dead_code)]

use lrp_layers::{Absolute, Composite, Uniform};
use lrp_models::faithfulness::SplitMix64;
use lrp_models::{Encoder, Linear, MeanPooling, Model};
use nalgebra::{DMatrix, DVector};

pub const INPUT: usize = 5;
pub const HIDDEN: usize = 6;
pub const CLASSES: usize = 3;
/// Lengths of the sequences of one batch (unsorted, with a repeat and a 1).
pub const LENGTHS: [usize; 5] = [5, 1, 8, 3, 8];

/// A model of `encoder` (reading [`INPUT`] values per position, writing
/// `2 H`): the mean of its outputs, then a head of [`CLASSES`], random
/// weights (large enough that the scores are not near zero, where a
/// relative check of conservation would measure rounding alone).
pub fn model_of(encoder: Encoder<f64>, seed: u64) -> Model<f64> {
    let mut rng = SplitMix64(seed ^ 0x4EAD);
    let head = Linear::new(
        matrix(&mut rng, CLASSES, 2 * HIDDEN, 3.0),
        Some(vector(&mut rng, CLASSES, 1.0)),
    );
    Model::builder(INPUT)
        .stage(encoder)
        .stage(MeanPooling::new(2 * HIDDEN))
        .stage(head.expect("a bias per class"))
        .build()
        .expect("the stages fit")
}

/// A random matrix and vector, uniform in `[-scale, scale)`.
pub fn matrix(rng: &mut SplitMix64, rows: usize, cols: usize, scale: f64) -> DMatrix<f64> {
    DMatrix::from_fn(rows, cols, |_, _| rng.next_signed() * scale)
}

pub fn vector(rng: &mut SplitMix64, len: usize, scale: f64) -> DVector<f64> {
    DVector::from_fn(len, |_, _| rng.next_signed() * scale)
}

/// One batch of sequences `[INPUT, T]` of the [`LENGTHS`].
pub fn inputs(seed: u64) -> Vec<DMatrix<f64>> {
    let mut rng = SplitMix64(seed ^ 0x5EED);
    LENGTHS
        .iter()
        .map(|&len| DMatrix::from_fn(INPUT, len, |_, _| rng.next_signed()))
        .collect()
}

/// LRP with eps 0 and bias factor 1 conserves: input + initial-state +
/// unexplained relevance is the score to 1e-12 relative (to the score, or
/// to the sum of the terms' magnitudes when larger), for every
/// sequence of a batch, under signal-take-all and under two gate rules that
/// feed the gates. Returns how many explanations were checked.
pub fn assert_conserves(model: &Model<f64>, seed: u64) -> usize {
    let traces: Vec<_> = model
        .forward_batch(inputs(seed))
        .into_iter()
        .map(|t| t.expect("forward"))
        .collect();
    // The class with the largest |score|: a near-zero score would make a
    // relative check meaningless.
    let requests: Vec<_> = traces
        .iter()
        .map(|t| {
            (
                t,
                (0..CLASSES)
                    .max_by(|&a, &b| t.scores()[a].abs().total_cmp(&t.scores()[b].abs()))
                    .unwrap(),
            )
        })
        .collect();
    let base = || Composite::epsilon(0.0, 1.0).unwrap();
    let mut checked = 0;
    for (name, rules) in [
        ("signal-take-all", base()),
        ("abs", base().with_gate_rule(Absolute)),
        ("half", base().with_gate_rule(Uniform)),
    ] {
        for (k, e) in model.lrp_batch(&requests, &rules).into_iter().enumerate() {
            let e = e.expect("lrp");
            let total = e.input_relevance.total() + e.initial_state_relevance + e.unexplained_relevance;
            // Relative to the score, or to the terms summed when they are
            // larger (a gate rule that feeds the gates moves relevance of
            // both signs, and a sum rounds in proportion to its terms).
            let terms = e.input_relevance.as_slice().iter().map(|r| r.abs()).sum::<f64>()
                + e.initial_state_relevance.abs()
                + e.unexplained_relevance.abs();
            let err = (total - e.score).abs() / e.score.abs().max(terms);
            assert!(
                err <= 1e-12,
                "{name}, sequence {k}: total {total} for score {} (relative {err:e})",
                e.score
            );
            checked += 1;
        }
    }
    checked
}

/// The gradient of a score is its central difference (step 1e-6) at
/// positions at both ends and inside of every sequence of a batch.
pub fn assert_gradient(model: &Model<f64>, seed: u64) {
    let xs = inputs(seed);
    let traces: Vec<_> = model
        .forward_batch(xs.clone())
        .into_iter()
        .map(|t| t.expect("forward"))
        .collect();
    let target = 1;
    let requests: Vec<_> = traces.iter().map(|t| (t, target)).collect();
    let score = |x: DMatrix<f64>| model.forward(x).expect("forward").scores()[target];
    let step = 1e-6;
    for (k, (x, gradient)) in xs.iter().zip(model.gradient_batch(&requests)).enumerate() {
        let gradient = gradient.expect("gradient");
        let len = x.ncols();
        for (t, d) in [(0, 0), (len - 1, INPUT - 1), (len / 2, 2)] {
            let (mut up, mut down) = (x.clone(), x.clone());
            up[(d, t)] += step;
            down[(d, t)] -= step;
            let numeric = (score(up) - score(down)) / (2.0 * step);
            let analytic = gradient[(d, t)];
            assert!(
                (numeric - analytic).abs() <= 1e-6 * analytic.abs().max(1e-3),
                "sequence {k}, position {t}, dimension {d}: analytic {analytic:e}, numeric {numeric:e}"
            );
        }
    }
}
