//! The peephole LSTM in whole models (bidirectional, two layers, additive
//! attention and a head on context + last state), f64, several sequences of
//! different lengths per batch:
//!
//! 1. with zero peepholes it is the built-in LSTM: scores, LRP and gradient;
//! 2. with peepholes, LRP conserves (`eps = 0`, bias factor 1) under the
//!    default gate rule and under gate rules that feed the gates (the only
//!    case where relevance flows through the peepholes);
//! 3. its gradient is the derivative of the score (central differences).

use lrp_example_peephole::{peephole_encoder, PeepholeCell};
use lrp_layers::{Absolute, Composite, Gamma, Operation, Proportional, Site, SitePattern, Uniform, ZPlus};
use lrp_models::faithfulness::SplitMix64;
use lrp_models::{tensor_manifest, Error, Model, ModelConfig, RecurrentCell, Tensor, Tensors};
use nalgebra::{DMatrix, DVector};

const INPUT: usize = 5;
const HIDDEN: usize = 6;
const LAYERS: usize = 2;
const CLASSES: usize = 3;
/// Lengths of the sequences of one batch (unsorted, with a repeat and a 1).
const LENGTHS: [usize; 5] = [5, 1, 8, 3, 8];

fn config() -> ModelConfig {
    serde_json::from_value(serde_json::json!({
        "format": "lrp-model", "version": 1, "layout": "pytorch", "weights": "model.safetensors",
        "encoder": {"cell": "lstm", "input_size": INPUT, "hidden_size": HIDDEN,
                    "num_layers": LAYERS, "bidirectional": true},
        "attention": {"kind": "additive", "size": 4},
        "head": {"input": "context+last", "num_classes": CLASSES},
    }))
    .expect("a valid config")
}

/// The built-in model (random weights uniform in `[-scale, scale)`) and the
/// same weights under the peephole cell's names, with peepholes uniform in
/// `[-peephole_scale, peephole_scale)` (zero for 0).
fn weights(seed: u64, scale: f64, peephole_scale: f64) -> (Model<f64>, Tensors) {
    let config = config();
    let mut rng = SplitMix64(seed);
    let mut tensors = Tensors::new();
    let mut cells = Tensors::new();
    for (name, shape) in tensor_manifest(&config).expect("a valid config") {
        let count = shape.iter().product();
        let tensor = Tensor {
            shape,
            values: (0..count).map(|_| rng.next_signed() * scale).collect(),
        };
        // encoder.weight_ih_l1_reverse -> encoder.l1_reverse.weight_ih
        if let Some(rest) = name.strip_prefix("encoder.") {
            let (kind, layer) = rest.split_at(rest.find("_l").expect("a layer suffix"));
            cells.insert(format!("encoder.{}.{kind}", &layer[1..]), tensor.clone());
        }
        tensors.insert(name, tensor);
    }
    for k in 0..LAYERS {
        for direction in ["", "_reverse"] {
            for gate in ["i", "f", "o"] {
                let values = (0..HIDDEN).map(|_| rng.next_signed() * peephole_scale).collect();
                let tensor = Tensor {
                    shape: vec![HIDDEN],
                    values,
                };
                cells.insert(format!("encoder.l{k}{direction}.peephole_{gate}"), tensor);
            }
        }
    }
    (Model::from_config(config, tensors).expect("the manifest fits"), cells)
}

/// The model of `weights` with its encoder made of peephole cells.
fn peephole_model(lstm: &Model<f64>, cells: &Tensors) -> Model<f64> {
    let encoder = peephole_encoder(cells, "encoder.", LAYERS, true).expect("peephole encoder");
    lstm.clone().with_encoder(encoder).expect("same widths")
}

fn inputs(seed: u64) -> Vec<DMatrix<f64>> {
    let mut rng = SplitMix64(seed ^ 0x5EED);
    LENGTHS
        .iter()
        .map(|&len| DMatrix::from_fn(INPUT, len, |_, _| rng.next_signed()))
        .collect()
}

/// `max |got - want| <= tol * max |want|`: relative to the quantity's scale,
/// so entries near zero do not make the check meaningless.
fn assert_close(what: &str, got: &[f64], want: &[f64], tol: f64) {
    assert_eq!(got.len(), want.len(), "{what}: lengths");
    let scale = want.iter().fold(0.0f64, |m, v| m.max(v.abs()));
    let diff = got.iter().zip(want).fold(0.0f64, |m, (g, w)| m.max((g - w).abs()));
    assert!(scale > 0.0, "{what}: all zero, nothing compared");
    assert!(
        diff <= tol * scale,
        "{what}: max difference {diff:e} for values up to {scale:e} (relative {:e})",
        diff / scale
    );
}

/// Test 1: zero peepholes make the built-in LSTM, through scores, LRP (two
/// rule sets) and the gradient, for a batch of sequences of several lengths
/// explained in one pass.
///
/// The second rule set feeds the gates (prop, abs for `o`) and mixes linear
/// rules (z+ on layer 1, gamma on `f`'s steps), with bias factor 0. With a
/// non-zero bias factor *and* a gate rule that feeds the gates the two cells
/// legitimately differ even at zero peepholes: a peephole gate's step has
/// fan-in `E + 2H`, so the bias share is spread over the (zero-weight)
/// peephole inputs too.
#[test]
fn zero_peepholes_give_the_builtin_lstm() {
    let (lstm, cells) = weights(11, 0.5, 0.0);
    let peephole = peephole_model(&lstm, &cells);
    let xs = inputs(11);
    let want: Vec<_> = lstm
        .forward_batch(xs.clone())
        .into_iter()
        .map(|t| t.expect("forward"))
        .collect();
    let got: Vec<_> = peephole
        .forward_batch(xs)
        .into_iter()
        .map(|t| t.expect("forward"))
        .collect();
    let targets: Vec<usize> = (0..LENGTHS.len()).map(|k| k % CLASSES).collect();
    let want_requests: Vec<_> = want.iter().zip(targets.iter().copied()).collect();
    let got_requests: Vec<_> = got.iter().zip(targets.iter().copied()).collect();
    for (w, g) in want.iter().zip(&got) {
        assert_close("scores", g.scores().as_slice(), w.scores().as_slice(), 1e-12);
    }

    // Different rules at different sites, so that a cell asking for the
    // wrong site's rule shows.
    let gate_feeding = Composite::epsilon(0.001, 0.0)
        .unwrap()
        .with_gate_rule(Proportional::default())
        .with_gate_rule_at(|s: &Site| s.operation == Operation::Product("o"), Absolute)
        .with_rule(
            |s: &Site| s.operation == Operation::Projection("f"),
            Gamma::new(0.25).unwrap(),
        )
        .with_rule(SitePattern::parse("layer1").unwrap(), ZPlus);
    for (name, rules) in [
        ("epsilon(0.001, bf 1)", Composite::epsilon(0.001, 1.0).unwrap()),
        ("prop/abs gates, z+ on layer 1, gamma on f", gate_feeding),
    ] {
        let want = lstm.lrp_batch(&want_requests, &rules);
        let got = peephole.lrp_batch(&got_requests, &rules);
        for (k, (w, g)) in want.into_iter().zip(got).enumerate() {
            let (w, g) = (w.expect("lrp"), g.expect("lrp"));
            let what = format!("{name}, sequence {k}");
            assert_close(
                &format!("{what}: input relevance"),
                g.input_relevance.as_slice(),
                w.input_relevance.as_slice(),
                1e-12,
            );
            let leftovers =
                |e: &lrp_models::Explanation<f64>| [e.score, e.initial_state_relevance, e.unexplained_relevance];
            // Each relative to itself, or to the score when it is smaller.
            let (lw, lg) = (leftovers(&w), leftovers(&g));
            assert!(
                lw.iter()
                    .zip(&lg)
                    .all(|(a, b)| (a - b).abs() <= 1e-12 * a.abs().max(lw[0].abs())),
                "{what}: score, initial state, unexplained {lg:?}, want {lw:?}"
            );
        }
    }

    let want = lstm.gradient_batch(&want_requests);
    let got = peephole.gradient_batch(&got_requests);
    for (k, (w, g)) in want.into_iter().zip(got).enumerate() {
        let (w, g) = (w.expect("gradient"), g.expect("gradient"));
        assert_close(&format!("gradient, sequence {k}"), g.as_slice(), w.as_slice(), 1e-12);
    }
}

/// Test 2: with non-zero peepholes, `eps = 0` and bias factor 1, every
/// sequence's input + initial-state + unexplained relevance is its score,
/// under the default gate rule and under two that feed the gates (where
/// relevance crosses the peepholes into the cell states).
///
/// Not prop: its split `g / (g + s)` has no bound, and with `eps = 0` the
/// relevances of these models reach 1e15 (built-in LSTM) to 1e21 (peephole)
/// for scores below 1, so their sum is only as exact as the rounding of such
/// terms (`tests/tests/conservation.rs` explains the same for stacked layers).
#[test]
fn peepholes_conserve_relevance() {
    for seed in [3u64, 4, 5] {
        let (lstm, cells) = weights(seed, 0.5, 0.5);
        let model = peephole_model(&lstm, &cells);
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
                let s = t.scores();
                (
                    t,
                    (0..CLASSES).max_by(|&a, &b| s[a].abs().total_cmp(&s[b].abs())).unwrap(),
                )
            })
            .collect();
        let base = || Composite::epsilon(0.0, 1.0).unwrap();
        for (name, rules) in [
            ("signal-take-all", base()),
            ("abs", base().with_gate_rule(Absolute)),
            ("half", base().with_gate_rule(Uniform)),
        ] {
            for (k, e) in model.lrp_batch(&requests, &rules).into_iter().enumerate() {
                let e = e.expect("lrp");
                let total = e.input_relevance.total() + e.initial_state_relevance + e.unexplained_relevance;
                let err = (total - e.score).abs() / e.score.abs();
                assert!(
                    err <= 1e-10,
                    "seed {seed}, {name}, sequence {k}: total {total} for score {} (relative {err:e})",
                    e.score
                );
            }
        }
    }
}

/// Test 3: the gradient of the score is its central difference (step 1e-6)
/// at positions at both ends and inside of sequences of a batch.
#[test]
fn gradient_matches_finite_differences() {
    let (lstm, cells) = weights(21, 0.8, 0.8);
    let model = peephole_model(&lstm, &cells);
    let xs = inputs(21);
    let traces: Vec<_> = model
        .forward_batch(xs.clone())
        .into_iter()
        .map(|t| t.expect("forward"))
        .collect();
    let target = 1;
    let requests: Vec<_> = traces.iter().map(|t| (t, target)).collect();
    let gradients = model.gradient_batch(&requests);
    let score = |x: DMatrix<f64>| model.forward(x).expect("forward").scores()[target];
    let step = 1e-6;
    let mut checked = 0;
    for (k, (x, gradient)) in xs.iter().zip(gradients).enumerate() {
        let gradient = gradient.expect("gradient");
        let len = x.ncols();
        for (t, d) in [(0, 0), (len - 1, INPUT - 1), (len / 2, 2)] {
            let (mut up, mut down) = (x.clone(), x.clone());
            up[(d, t)] += step;
            down[(d, t)] -= step;
            let numeric = (score(up) - score(down)) / (2.0 * step);
            let analytic = gradient[(d, t)];
            let err = (numeric - analytic).abs();
            assert!(
                err <= 1e-6 * analytic.abs().max(1e-3),
                "sequence {k}, position {t}, dimension {d}: analytic {analytic:e}, numeric {numeric:e}"
            );
            checked += 1;
        }
    }
    assert_eq!(checked, 3 * LENGTHS.len());
}

#[test]
fn construction_checks_shapes_values_and_names() {
    let m = |r, c| DMatrix::<f64>::zeros(r, c);
    let v = |n| DVector::<f64>::zeros(n);
    let ok = PeepholeCell::new(m(12, 2), m(12, 3), v(12), [v(3), v(3), v(3)]).expect("valid");
    assert_eq!((ok.input_size(), ok.hidden_size(), ok.kind()), (2, 3, "peephole-lstm"));
    let shape = |e: Error| match e {
        Error::TensorShape { name, .. } => name,
        other => panic!("not a shape error: {other}"),
    };
    assert_eq!(
        shape(PeepholeCell::new(m(12, 2), m(11, 3), v(12), [v(3), v(3), v(3)]).unwrap_err()),
        "w_hh"
    );
    assert_eq!(
        shape(PeepholeCell::new(m(8, 2), m(12, 3), v(12), [v(3), v(3), v(3)]).unwrap_err()),
        "w_ih"
    );
    assert_eq!(
        shape(PeepholeCell::new(m(12, 2), m(12, 3), v(9), [v(3), v(3), v(3)]).unwrap_err()),
        "bias"
    );
    assert_eq!(
        shape(PeepholeCell::new(m(12, 2), m(12, 3), v(12), [v(3), v(3), v(4)]).unwrap_err()),
        "p_o"
    );
    let mut bad = v(3);
    bad[1] = f64::NAN;
    assert!(matches!(
        PeepholeCell::new(m(12, 2), m(12, 3), v(12), [v(3), bad, v(3)]),
        Err(Error::NonFiniteWeight { ref name, index: 1, .. }) if name == "p_f"
    ));

    let (_, mut cells) = weights(1, 0.5, 0.5);
    assert!(PeepholeCell::<f64>::load(&cells, "encoder.l0.").is_ok());
    assert!(matches!(
        PeepholeCell::<f64>::load(&cells, "encoder.l7."),
        Err(Error::MissingTensors { names }) if names.len() == 7
    ));
    let mut reshaped = cells.get("encoder.l0.peephole_i").unwrap().clone();
    reshaped.shape = vec![HIDDEN + 1];
    cells.insert("encoder.l0.peephole_i", reshaped.clone());
    assert_eq!(
        shape(PeepholeCell::<f64>::load(&cells, "encoder.l0.").unwrap_err()),
        "encoder.l0.peephole_i"
    );
    // Layer 1 reads 2H values per position; a cell reading E cannot sit there.
    let wrong = cells.get("encoder.l0_reverse.weight_ih").unwrap().clone();
    cells.insert("encoder.l1.weight_ih", wrong.clone());
    cells.insert("encoder.l1_reverse.weight_ih", wrong);
    reshaped.shape = vec![HIDDEN];
    cells.insert("encoder.l0.peephole_i", reshaped);
    assert!(matches!(
        peephole_encoder::<f64>(&cells, "encoder.", 2, true),
        Err(Error::Config { .. })
    ));
}
