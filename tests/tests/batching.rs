//! The batched engine against the engine on one sequence at a time.
//!
//! `Model::forward_batch` packs sequences of any lengths (longest first, by
//! step) and `Model::lrp_batch` / `Model::gradient_batch` explain a batch's
//! traces in one backward pass; `Model::forward` / `lrp` / `gradient` run
//! the same code on a batch of one. The property: over random architectures
//! and random batches (lengths 1 to 9, ties, length-1 sequences), every
//! number of the batched passes is **bit for bit** the single-sequence
//! pass's, in f64, for the epsilon rule and for composites mixing every
//! linear rule and gate rules that feed the gates. (The issue asks for
//! 1e-12 relative; every product goes through `lrp_core::linalg::gemm`,
//! whose sums do not depend on the number of columns, so equality holds
//! exactly, and a tolerance would only hide a change that breaks it.) Plus the request bookkeeping: a batch's trace
//! explained alone, a trace asked for twice, traces of two batches mixed,
//! and invalid inputs and requests failing alone.

use lrp_layers::{Composite, RuleParameters};
use lrp_models::Method;
use lrp_models::{Error, Explanation, ForwardTrace, Model, ModelConfig};
use lrp_tests::{architecture, random_model, SplitMix};
use nalgebra::DMatrix;
use proptest::prelude::*;

/// The tolerance of every comparison here: none (see the module comment).
const RTOL: f64 = 0.0;

/// Checks `got` against `want` entry by entry,
/// `|a - b| <= RTOL * max(|a|, |b|, 1)` (a NaN on either side fails).
fn close(what: &str, got: &[f64], want: &[f64]) -> Result<(), String> {
    if got.len() != want.len() {
        return Err(format!("{what}: length {} vs {}", got.len(), want.len()));
    }
    for (k, (&a, &b)) in got.iter().zip(want).enumerate() {
        let allowed = RTOL * a.abs().max(b.abs()).max(1.0);
        // Written so that a NaN on either side counts as a mismatch.
        let within = (a - b).abs() <= allowed;
        if !within {
            return Err(format!(
                "{what}[{k}]: batched {a:.17e}, alone {b:.17e} (diff {:.3e})",
                (a - b).abs()
            ));
        }
    }
    Ok(())
}

/// Two forward traces of the same sequence agree.
fn same_trace(what: &str, got: &ForwardTrace<f64>, want: &ForwardTrace<f64>) -> Result<(), String> {
    if got.len() != want.len() {
        return Err(format!("{what}: length {} vs {}", got.len(), want.len()));
    }
    close(
        &format!("{what}: input"),
        got.input().as_slice(),
        want.input().as_slice(),
    )?;
    close(
        &format!("{what}: scores"),
        got.scores().as_slice(),
        want.scores().as_slice(),
    )?;
    close(&format!("{what}: last"), got.last().as_slice(), want.last().as_slice())?;
    close(
        &format!("{what}: features"),
        got.features().as_slice(),
        want.features().as_slice(),
    )?;
    match (got.attention_weights(), want.attention_weights()) {
        (None, None) => {}
        (Some(a), Some(b)) => close(&format!("{what}: attention weights"), a, b)?,
        (a, b) => return Err(format!("{what}: attention {:?} vs {:?}", a.is_some(), b.is_some())),
    }
    for (layer, (a, b)) in got.layer_outputs().iter().zip(want.layer_outputs()).enumerate() {
        close(&format!("{what}: layer {layer} outputs"), a.as_slice(), b.as_slice())?;
    }
    Ok(())
}

/// Two LRP results agree: both the same error, or both explanations whose
/// input, initial-state and unexplained relevance agree.
fn same_explanation(
    what: &str,
    got: &Result<Explanation<f64>, Error>,
    want: &Result<Explanation<f64>, Error>,
) -> Result<(), String> {
    match (got, want) {
        (Ok(a), Ok(b)) => {
            if (a.target, a.input_relevance.len(), a.input_relevance.dim())
                != (b.target, b.input_relevance.len(), b.input_relevance.dim())
            {
                return Err(format!("{what}: target or shape differs"));
            }
            close(&format!("{what}: score"), &[a.score], &[b.score])?;
            close(
                &format!("{what}: input relevance"),
                a.input_relevance.as_slice(),
                b.input_relevance.as_slice(),
            )?;
            close(
                &format!("{what}: initial-state relevance"),
                &[a.initial_state_relevance],
                &[b.initial_state_relevance],
            )?;
            close(
                &format!("{what}: unexplained relevance"),
                &[a.unexplained_relevance],
                &[b.unexplained_relevance],
            )
        }
        (Err(a), Err(b)) if a == b => Ok(()),
        (a, b) => Err(format!(
            "{what}: batched {:?}, alone {:?}",
            a.as_ref().err(),
            b.as_ref().err()
        )),
    }
}

/// Two gradients agree (or fail alike).
fn same_gradient(
    what: &str,
    got: &Result<DMatrix<f64>, Error>,
    want: &Result<DMatrix<f64>, Error>,
) -> Result<(), String> {
    match (got, want) {
        (Ok(a), Ok(b)) if a.shape() == b.shape() => close(what, a.as_slice(), b.as_slice()),
        (Err(a), Err(b)) if a == b => Ok(()),
        (a, b) => Err(format!(
            "{what}: batched {:?}, alone {:?}",
            a.as_ref().map(|g| g.shape()),
            b.as_ref().map(|g| g.shape())
        )),
    }
}

/// The composites explained with: epsilon without and with the bias, and
/// one mixing z+, gamma, alpha-beta, flat and w-square at various sites with
/// gate rules that give the gates relevance (so the gate projections, which
/// signal-take-all never reaches, are exercised too).
fn composites() -> Vec<(&'static str, Composite<f64>)> {
    let p = RuleParameters {
        eps: 0.01,
        ..RuleParameters::default()
    };
    let bias = RuleParameters { bias_factor: 1.0, ..p };
    let mixed = |spec: &str| {
        Composite::<f64>::epsilon(0.01, 1.0)
            .unwrap()
            .with_rules(spec, &bias)
            .unwrap()
    };
    vec![
        ("epsilon bf 0", Composite::epsilon(0.01, 0.0).unwrap()),
        ("epsilon bf 1", Composite::epsilon(0.01, 1.0).unwrap()),
        (
            "mixed, prop/half",
            mixed(
                "input.gates=wsquare,input=flat,layer1.forward=zplus,layer1.backward=gamma:0.5,\
                 layer2.gates=alpha-beta,layer2=gamma,sums=epsilon:0.05,attention=zplus,head=alpha-beta:3,\
                 layer1.products=half,products=prop",
            ),
        ),
        (
            "mixed, abs",
            mixed("input=gamma,gates=zplus,candidate=alpha-beta,sums=zplus,attention=gamma,head=wsquare,products=abs"),
        ),
    ]
}

/// A random architecture (every valid combination) and sizes. An attention
/// with a `last` head is valid (its parameters are required but unused).
fn architectures() -> impl Strategy<Value = ModelConfig> {
    // Twelve of the thirteen combinations have attention; weight them so.
    let pooling = prop_oneof![
        1 => Just((None, "last")),
        3 => (
            prop_oneof![Just("context"), Just("additive"), Just("dot"), Just("general")],
            prop_oneof![Just("last"), Just("context"), Just("context+last")],
        )
            .prop_map(|(kind, head)| (Some(kind), head)),
    ];
    (
        prop_oneof![Just("lstm"), Just("gru"), Just("mingru"), Just("minlstm")],
        any::<bool>(),
        1usize..=3,
        pooling,
        (1usize..=6, 1usize..=6, 1usize..=6, 2usize..=4),
    )
        .prop_map(
            |(cell, bidirectional, layers, (kind, head), (input, hidden, size, classes))| {
                architecture(
                    cell,
                    bidirectional,
                    layers,
                    input,
                    hidden,
                    kind.map(|k| (k, size)),
                    head,
                    classes,
                )
            },
        )
}

/// Lengths of a batch: 1 to 6 sequences of 1 to 9 steps; with `tie` the
/// second repeats the first's length, with `short` the last has length 1.
fn batches() -> impl Strategy<Value = Vec<usize>> {
    (prop::collection::vec(1usize..=9, 1..=6), any::<bool>(), any::<bool>()).prop_map(|(mut lengths, tie, short)| {
        if tie && lengths.len() >= 2 {
            lengths[1] = lengths[0];
        }
        if short {
            *lengths.last_mut().expect("at least one") = 1;
        }
        lengths
    })
}

/// Inputs `[E, T]` of these lengths, uniform in `[-1, 1)`.
fn inputs(e: usize, lengths: &[usize], rng: &mut SplitMix) -> Vec<DMatrix<f64>> {
    lengths
        .iter()
        .map(|&t| DMatrix::from_fn(e, t, |_, _| rng.next_signed()))
        .collect()
}

/// A class index below `classes`.
fn pick(rng: &mut SplitMix, classes: usize) -> usize {
    (rng.next_u64() % classes as u64) as usize
}

/// The whole property on one model and one batch.
fn batch_equals_one_at_a_time(config: &ModelConfig, lengths: &[usize], seed: u64) -> Result<(), String> {
    let model = random_model(config, seed, 0.5);
    let mut rng = SplitMix(seed ^ 0xBA7C_4ED0);
    let xs = inputs(model.input_size(), lengths, &mut rng);
    let targets: Vec<usize> = xs.iter().map(|_| pick(&mut rng, model.num_classes())).collect();

    let batched: Vec<ForwardTrace<f64>> = model
        .forward_batch(xs.clone())
        .into_iter()
        .map(|t| t.map_err(|e| format!("forward_batch: {e}")))
        .collect::<Result<_, _>>()?;
    let alone: Vec<ForwardTrace<f64>> = xs
        .iter()
        .map(|x| model.forward(x.clone()).map_err(|e| format!("forward: {e}")))
        .collect::<Result<_, _>>()?;
    for (k, (b, a)) in batched.iter().zip(&alone).enumerate() {
        same_trace(&format!("sequence {k}"), b, a)?;
    }

    let requests: Vec<(&ForwardTrace<f64>, usize)> = batched.iter().zip(targets.iter().copied()).collect();
    for (name, rules) in composites() {
        let together = model.lrp_batch(&requests, &rules);
        if together.len() != requests.len() {
            return Err(format!(
                "{name}: {} results for {} requests",
                together.len(),
                requests.len()
            ));
        }
        for (k, got) in together.iter().enumerate() {
            let want = model.lrp(&alone[k], targets[k], &rules);
            same_explanation(&format!("{name}, sequence {k}"), got, &want)?;
        }
        // attribute_batch goes through lrp_batch; its sums are the same numbers.
        let attributed = model.attribute_batch(&requests, Method::Lrp(&rules));
        for (k, (a, e)) in attributed.iter().zip(&together).enumerate() {
            if let (Ok(a), Ok(e)) = (a, e) {
                close(
                    &format!("{name}, sequence {k}: attribute_batch"),
                    a.per_dimension.as_ref().expect("lrp is per dimension").as_slice(),
                    e.input_relevance.as_slice(),
                )?;
            }
        }
    }

    let gradients = model.gradient_batch(&requests);
    for (k, got) in gradients.iter().enumerate() {
        let want = model.gradient(&alone[k], targets[k]);
        same_gradient(&format!("gradient, sequence {k}"), got, &want)?;
    }
    Ok(())
}

proptest! {
    // A fixed seed: the same cases every run (a failure is kept in
    // proptest-regressions/ and replayed first).
    #![proptest_config(ProptestConfig {
        cases: 64,
        rng_seed: proptest::test_runner::RngSeed::Fixed(20240611),
        ..ProptestConfig::default()
    })]

    /// Scores, attention weights, LRP (four composites) and gradients of a
    /// packed batch equal those of each sequence alone.
    #[test]
    fn batched_passes_equal_one_sequence_at_a_time(
        config in architectures(),
        lengths in batches(),
        seed in any::<u64>(),
    ) {
        if let Err(message) = batch_equals_one_at_a_time(&config, &lengths, seed) {
            prop_assert!(false, "lengths {lengths:?}: {message}");
        }
    }
}

/// A small model of every cell and direction with attention and a
/// `context+last` head, the configurations the bookkeeping tests run on.
fn bookkeeping_models() -> Vec<Model<f64>> {
    let mut models = Vec::new();
    for (k, (cell, bidirectional)) in [("lstm", false), ("lstm", true), ("gru", false), ("gru", true)]
        .into_iter()
        .enumerate()
    {
        let config = architecture(cell, bidirectional, 2, 4, 3, Some(("additive", 3)), "context+last", 3);
        models.push(random_model(&config, 100 + k as u64, 0.5));
    }
    models
}

/// A trace of a batch explained alone with `lrp` (the backward pass then
/// carries zeros for the other sequences) equals its result among all of
/// them in `lrp_batch`, and so for the gradient.
#[test]
fn a_batch_member_explained_alone_equals_its_batch_result() {
    let rules = composites();
    for (m, model) in bookkeeping_models().iter().enumerate() {
        let mut rng = SplitMix(m as u64);
        let xs = inputs(4, &[3, 7, 1, 7, 2], &mut rng);
        let traces: Vec<_> = model.forward_batch(xs).into_iter().map(Result::unwrap).collect();
        let requests: Vec<_> = traces.iter().enumerate().map(|(k, t)| (t, k % 3)).collect();
        for (name, composite) in &rules {
            let together = model.lrp_batch(&requests, composite);
            for (k, &(trace, target)) in requests.iter().enumerate() {
                let alone = model.lrp(trace, target, composite);
                same_explanation(&format!("model {m}, {name}, sequence {k}"), &together[k], &alone).unwrap();
            }
        }
        let together = model.gradient_batch(&requests);
        for (k, &(trace, target)) in requests.iter().enumerate() {
            same_gradient(
                &format!("model {m}, sequence {k}"),
                &together[k],
                &model.gradient(trace, target),
            )
            .unwrap();
        }
    }
}

/// Requests naming one trace twice (with the same and with different
/// targets), and traces of two different batches interleaved, come back in
/// request order, each with the value of that trace and target alone.
#[test]
fn repeated_and_mixed_requests_come_back_in_order() {
    let rules = composites();
    for (m, model) in bookkeeping_models().iter().enumerate() {
        let mut rng = SplitMix(50 + m as u64);
        let first = inputs(4, &[5, 2, 5], &mut rng);
        let second = inputs(4, &[1, 6], &mut rng);
        let a: Vec<_> = model
            .forward_batch(first.clone())
            .into_iter()
            .map(Result::unwrap)
            .collect();
        let b: Vec<_> = model
            .forward_batch(second.clone())
            .into_iter()
            .map(Result::unwrap)
            .collect();
        let alone_a: Vec<_> = first.into_iter().map(|x| model.forward(x).unwrap()).collect();
        let alone_b: Vec<_> = second.into_iter().map(|x| model.forward(x).unwrap()).collect();
        // (trace, target, the same sequence run alone)
        let plan = [
            (&a[1], 0, &alone_a[1]),
            (&b[0], 2, &alone_b[0]),
            (&a[1], 0, &alone_a[1]),
            (&a[0], 1, &alone_a[0]),
            (&b[1], 1, &alone_b[1]),
            (&a[1], 2, &alone_a[1]),
            (&b[0], 0, &alone_b[0]),
            (&a[2], 2, &alone_a[2]),
        ];
        let requests: Vec<_> = plan.iter().map(|&(trace, target, _)| (trace, target)).collect();
        for (name, composite) in &rules {
            let got = model.lrp_batch(&requests, composite);
            assert_eq!(got.len(), plan.len());
            for (k, &(_, target, alone)) in plan.iter().enumerate() {
                let want = model.lrp(alone, target, composite);
                assert_eq!(
                    got[k].as_ref().unwrap().target,
                    target,
                    "model {m}, {name}, request {k}"
                );
                same_explanation(&format!("model {m}, {name}, request {k}"), &got[k], &want).unwrap();
            }
        }
        let got = model.gradient_batch(&requests);
        assert_eq!(got.len(), plan.len());
        for (k, &(_, target, alone)) in plan.iter().enumerate() {
            same_gradient(
                &format!("model {m}, request {k}"),
                &got[k],
                &model.gradient(alone, target),
            )
            .unwrap();
        }
        // The same trace and target twice gives the same numbers twice.
        let twice = model.lrp_batch(&[(&a[0], 1), (&a[0], 1)], &rules[2].1);
        assert_eq!(twice[0], twice[1], "model {m}");
    }
}

/// An input of the wrong width or with a NaN fails alone inside a batch;
/// the others are what they are alone. A request for a class that does not
/// exist fails alone inside `lrp_batch` and `gradient_batch`.
#[test]
fn invalid_inputs_and_requests_fail_alone() {
    let rules = Composite::epsilon(0.01, 1.0).unwrap();
    for (m, model) in bookkeeping_models().iter().enumerate() {
        let mut rng = SplitMix(90 + m as u64);
        let good = inputs(4, &[4, 1, 6], &mut rng);
        let mut nan = inputs(4, &[3], &mut rng).remove(0);
        nan[(2, 1)] = f64::NAN;
        let narrow = DMatrix::from_element(3, 5, 0.25);
        let batch = vec![
            good[0].clone(),
            narrow,
            good[1].clone(),
            nan,
            DMatrix::zeros(4, 0),
            good[2].clone(),
        ];
        let traces = model.forward_batch(batch);
        assert_eq!(traces.len(), 6);
        assert_eq!(
            traces[1].as_ref().unwrap_err(),
            &Error::InputWidth { expected: 4, found: 3 },
            "model {m}"
        );
        assert!(
            matches!(
                traces[3].as_ref().unwrap_err(),
                Error::NonFiniteInput {
                    position: 1,
                    dimension: 2,
                    ..
                }
            ),
            "model {m}: {:?}",
            traces[3]
        );
        assert_eq!(traces[4].as_ref().unwrap_err(), &Error::EmptySequence, "model {m}");
        let valid: Vec<_> = [0, 2, 5].into_iter().map(|k| traces[k].as_ref().unwrap()).collect();
        let alone: Vec<_> = good.iter().map(|x| model.forward(x.clone()).unwrap()).collect();
        for (k, (b, a)) in valid.iter().zip(&alone).enumerate() {
            same_trace(&format!("model {m}, sequence {k}"), b, a).unwrap();
        }

        let requests = [(valid[0], 1), (valid[1], 3), (valid[2], 0)];
        let explained = model.lrp_batch(&requests, &rules);
        assert_eq!(explained[1], Err(Error::TargetOutOfRange { target: 3, classes: 3 }));
        let gradients = model.gradient_batch(&requests);
        assert!(matches!(gradients[1], Err(Error::TargetOutOfRange { .. })), "model {m}");
        for (k, alone_k) in [(0, 0), (2, 2)] {
            let target = requests[k].1;
            same_explanation(
                &format!("model {m}, request {k}"),
                &explained[k],
                &model.lrp(&alone[alone_k], target, &rules),
            )
            .unwrap();
            same_gradient(
                &format!("model {m}, request {k}"),
                &gradients[k],
                &model.gradient(&alone[alone_k], target),
            )
            .unwrap();
        }
    }
}

/// Once a failure of the property at 1e-12: a sequence alone took
/// nalgebra's small-operand loop in layer 1's input projection (inner
/// dimension 8, 4 columns) and matrixmultiply in the batch (6 columns), so
/// the layer outputs differed in the last bit, and the prop/half gate rules
/// with z+, gamma and alpha-beta amplified that to 4.4e-12 relative. Every
/// product now goes through `lrp_core::linalg::gemm` (matrixmultiply for
/// every size), and the case is bit for bit equal.
#[test]
fn a_case_once_split_by_rounding_is_now_exact() {
    let config = architecture("gru", true, 3, 4, 4, Some(("additive", 1)), "context", 2);
    batch_equals_one_at_a_time(&config, &[4, 2], 8798199888634724894).unwrap();
}
