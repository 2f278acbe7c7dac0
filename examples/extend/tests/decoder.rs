//! The peephole LSTM as the decoder of an encoder–decoder (two
//! bidirectional LSTM layers, additive attention, input feeding, a bridge):
//! the library's decoder runs a cell written outside it one step at a time,
//! like its own cells. LRP conserves
//! (eps 0, bias factor 1) at every step, and the gradient of a logit is
//! its central difference.

mod common;

use common::{matrix, vector};
use lrp_extend::PeepholeCell;
use lrp_layers::{Absolute, Composite};
use lrp_models::faithfulness::SplitMix64;
use lrp_models::seq2seq::{seq2seq_manifest, Seq2Seq, Seq2SeqConfig};
use lrp_models::{Tensor, Tensors};

/// Es = 3, D = 8, Et = 4, Hd = 5, A = 3, Vs = 12, Vt = 10.
fn config() -> Seq2SeqConfig {
    serde_json::from_value(serde_json::json!({
        "format": "lrp-model", "version": 1, "architecture": "seq2seq", "layout": "pytorch",
        "weights": "model.safetensors", "source_vocab_size": 12, "target_vocab_size": 10,
        "target_start": 0, "target_end": 1,
        "encoder": {"cell": "lstm", "input_size": 3, "hidden_size": 4, "num_layers": 2, "bidirectional": true},
        "decoder": {"cell": "lstm", "input_size": 4, "hidden_size": 5, "input_feeding": true, "init": "bridge"},
        "attention": {"kind": "additive", "size": 3}
    }))
    .expect("a valid config")
}

/// Random tensors for `config`, with `change` applied to them.
fn tensors(seed: u64, change: impl Fn(&str, &mut Vec<f64>)) -> Tensors {
    let mut rng = SplitMix64(seed);
    let mut tensors = Tensors::new();
    for (name, shape) in seq2seq_manifest(&config()).expect("a valid config") {
        let mut values: Vec<f64> = (0..shape.iter().product()).map(|_| rng.next_signed() * 0.6).collect();
        change(&name, &mut values);
        tensors.insert(name, Tensor { shape, values });
    }
    tensors
}

/// The model of `tensors` with a peephole LSTM decoder (`Ex = Et + Hd = 9`,
/// `Hd = 5`).
fn model(tensors: Tensors) -> Seq2Seq<f64> {
    let mut rng = SplitMix64(77);
    let (w_ih, w_hh, bias) = (
        matrix(&mut rng, 20, 9, 0.6),
        matrix(&mut rng, 20, 5, 0.6),
        vector(&mut rng, 20, 0.5),
    );
    let peepholes = [(); 3].map(|_| vector(&mut rng, 5, 0.5));
    let cell = PeepholeCell::new(w_ih, w_hh, bias, peepholes).expect("shapes fit");
    Seq2Seq::from_config(config(), tensors)
        .expect("the manifest fits")
        .with_decoder_cell(cell)
        .expect("widths fit")
}

const SOURCE: [usize; 6] = [3, 7, 2, 9, 5, 11];
const TARGET: [usize; 4] = [4, 8, 2, 6];

#[test]
fn a_peephole_decoder_conserves_relevance_at_every_step() {
    let model = model(tensors(1, |_, _| {}));
    let trace = model.forward(&SOURCE, &TARGET).expect("forward");
    let mut checked = 0;
    for rules in [
        Composite::epsilon(0.0, 1.0).unwrap(),
        Composite::epsilon(0.0, 1.0).unwrap().with_gate_rule(Absolute),
    ] {
        for (step, &token) in TARGET.iter().enumerate() {
            let e = model.lrp(&trace, step, token, &rules).expect("lrp");
            let total = e.source_relevance.total()
                + e.target_relevance.total()
                + e.initial_state_relevance
                + e.unexplained_relevance;
            let err = (total - e.score).abs() / e.score.abs();
            assert!(
                err <= 1e-12,
                "step {step}: total {total} for score {} (relative {err:e})",
                e.score
            );
            assert!(
                e.target_relevance.total().abs() > 0.0,
                "step {step}: the decoder's inputs are explained"
            );
            checked += 1;
        }
    }
    assert_eq!(checked, 8);
}

#[test]
fn a_peephole_decoder_gradient_is_the_derivative_of_the_logit() {
    let (step, token) = (3, TARGET[3]);
    let logit = |name: &'static str, index: usize, delta: f64| {
        let model = model(tensors(2, |n, values| {
            if n == name {
                values[index] += delta;
            }
        }));
        model.forward(&SOURCE, &TARGET).expect("forward").logits(step)[token]
    };
    let model = model(tensors(2, |_, _| {}));
    let trace = model.forward(&SOURCE, &TARGET).expect("forward");
    let gradient = model.gradient(&trace, step, token).expect("gradient");
    // An embedding entry moves the vector of every position reading its
    // token: the derivative is the sum of the gradient over those positions.
    let (h, width) = (1e-6, [3, 4]);
    for (name, ids, matrix, id, d) in [
        ("source_embedding.weight", &SOURCE[..], &gradient.source, 9, 2),
        ("source_embedding.weight", &SOURCE[..], &gradient.source, 3, 0),
        ("target_embedding.weight", &[0, 4, 8, 2][..], &gradient.target, 8, 1),
        ("target_embedding.weight", &[0, 4, 8, 2][..], &gradient.target, 0, 3),
    ] {
        let w = width[usize::from(name.starts_with("target"))];
        let numeric = (logit(name, id * w + d, h) - logit(name, id * w + d, -h)) / (2.0 * h);
        let analytic: f64 = ids
            .iter()
            .enumerate()
            .filter(|(_, &t)| t == id)
            .map(|(pos, _)| matrix[(d, pos)])
            .sum();
        assert!(
            (numeric - analytic).abs() <= 1e-6 * analytic.abs().max(1e-3),
            "{name} [{id}, {d}]: analytic {analytic:e}, numeric {numeric:e}"
        );
    }
}
