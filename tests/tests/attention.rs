//! Attention pooling in LRP (`docs/rules.md`): the attention weights are
//! connection weights, `a_t` gets nothing and `h_t` everything, so no
//! relevance enters the score function; the relevance of `h_t` from the
//! attention and from the recurrence add.

use lrp_layers::Composite;
use lrp_tests::{architecture, model_from, random_input, random_tensors, SplitMix};

/// Model B has the same weights as A except the attention's score
/// parameters, which are perturbed. B refuses A's trace (traces carry their
/// model's fingerprint); that LRP of A's trace with B's parameters would
/// give exactly A's relevance is checked inside `lrp-models`
/// (`model::tests::lrp_never_reads_the_attention_score_parameters`). The
/// gradient, which does flow through the score function, must differ.
#[test]
fn attention_weights_receive_no_relevance() {
    for (kind, head, cell) in [
        ("context", "context", "lstm"),
        ("additive", "context+last", "lstm"),
        ("dot", "context+last", "gru"),
        ("general", "context", "gru"),
        ("additive", "context", "gru"),
        ("general", "context+last", "lstm"),
    ] {
        let config = architecture(cell, true, 2, 6, 5, Some((kind, 4)), head, 3);
        let tensors = random_tensors(&config, 11, 0.5);
        let mut rng = SplitMix(99);
        let perturbed: Vec<_> = tensors
            .iter()
            .cloned()
            .map(|(name, mut t)| {
                if name.starts_with("attention.") {
                    t.values.iter_mut().for_each(|v| *v += rng.next_signed());
                }
                (name, t)
            })
            .collect();
        // Dot attention has no score parameters; the gradient contrast below
        // applies to the kinds that have some.
        let has_score_parameters = tensors.iter().any(|(n, _)| n.starts_with("attention."));
        let a = model_from(&config, tensors);
        let b = model_from(&config, perturbed);

        let x = random_input(6, 9, 5, 1.0);
        let trace = a.forward(x.clone()).unwrap();
        let rules = Composite::epsilon(0.001, 0.0).unwrap();
        if has_score_parameters {
            assert_eq!(
                b.lrp(&trace, 1, &rules).unwrap_err(),
                lrp_models::Error::TraceFromAnotherModel,
                "{kind}/{head}"
            );
        } else {
            // Nothing was perturbed: B is A, and takes its trace.
            assert_eq!(b.lrp(&trace, 1, &rules).unwrap(), a.lrp(&trace, 1, &rules).unwrap());
        }

        if has_score_parameters {
            let trace_b = b.forward(x).unwrap();
            let (ga, gb) = (a.gradient(&trace, 1).unwrap(), b.gradient(&trace_b, 1).unwrap());
            assert!(
                (ga - gb).abs().max() > 1e-6,
                "{kind}/{head}: the perturbation should reach the gradient"
            );
        }
    }
}

/// In a `context+last` model the final state hears from the attention and
/// from the head; its relevance is the sum. Turning either source off (zero
/// head columns) leaves exactly the other's share.
#[test]
fn relevance_from_attention_and_head_adds_up() {
    let config = architecture("lstm", false, 1, 4, 3, Some(("dot", 0)), "context+last", 2);
    let tensors = random_tensors(&config, 3, 0.5);
    let d = 3;
    let zero_columns = |range: std::ops::Range<usize>| {
        let mut t = tensors.clone();
        for (name, tensor) in t.iter_mut() {
            if name == "head.weight" {
                let width = tensor.shape[1];
                for (k, v) in tensor.values.iter_mut().enumerate() {
                    if range.contains(&(k % width)) {
                        *v = 0.0;
                    }
                }
            }
        }
        model_from(&config, t)
    };
    let both = model_from(&config, tensors.clone());
    let only_context = zero_columns(d..2 * d);
    let only_last = zero_columns(0..d);
    let x = random_input(4, 6, 8, 1.0);
    // With eps = 0 and bf = 0 the head sends R_i = f_i w_i (R/z) with
    // R/z = s/s = 1, so each half of the head sends a message that does not
    // depend on the other half, and everything below is linear in it.
    let rules = Composite::epsilon(0.0, 0.0).unwrap();
    let explain = |m: &lrp_models::Model<f64>| {
        let trace = m.forward(x.clone()).unwrap();
        m.lrp(&trace, 0, &rules).unwrap().input_relevance.as_matrix().clone()
    };
    let sum = explain(&only_context) + explain(&only_last);
    let diff = (explain(&both) - &sum).abs().max();
    assert!(diff < 1e-12, "the two sources do not add: {diff:e}");
    assert!(sum.abs().max() > 1e-3, "both sources carry relevance");
}
