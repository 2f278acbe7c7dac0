//! Stages of a model written outside the library, through the public
//! `lrp_models::Stage` trait, and put into built-in models with
//! `Model::with_pooling_and_head`.
//!
//! - `FinalStep` re-implements the built-in final-state pooling of a
//!   one-direction encoder: the model with it must give the built-in
//!   model's scores, relevance and gradients bit for bit.
//! - `MeanPooling` averages the positions, a linear step with weights
//!   `1/T` explained by the rule at the attention's site. It must equal a
//!   context attention whose query is zero (uniform weights) to rounding,
//!   conserve relevance with bias factor 1 and eps 0, and have the
//!   gradient finite differences give.

use lrp_core::{Connection, InputGroup, LinearStep};
use lrp_layers::{Composite, RuleParameters, Site};
use lrp_models::{Backward, Error, ForwardTrace, Linear, Model, Packing, Port, Stage, Tensor};
use lrp_tests::{architecture, model_from, random_input, random_tensors};
use nalgebra::{DMatrix, DVector};

/// The state at each sequence's last position, `[D, N] -> [D, S]`: the
/// final state of an encoder that reads forwards only.
#[derive(Debug)]
struct FinalStep {
    width: usize,
}

impl Stage<f64> for FinalStep {
    type Trace = DMatrix<f64>;

    fn name(&self) -> String {
        "the last step".into()
    }

    fn input(&self) -> Port {
        Port::positions(self.width)
    }

    fn output(&self) -> Port {
        Port::sequences(self.width)
    }

    fn forward(&self, packing: &Packing, input: &DMatrix<f64>) -> DMatrix<f64> {
        DMatrix::from_fn(self.width, packing.sequences(), |r, slot| {
            input[(r, packing.column(packing.length(slot) - 1, slot))]
        })
    }

    fn output_of<'t>(&self, trace: &'t DMatrix<f64>) -> &'t DMatrix<f64> {
        trace
    }

    fn lrp(
        &self,
        _trace: &DMatrix<f64>,
        _input: &DMatrix<f64>,
        relevance_out: &DMatrix<f64>,
        relevance_in: &mut DMatrix<f64>,
        context: &mut Backward<'_, f64>,
    ) {
        for slot in context.explained() {
            let col = context.packing.column(context.packing.length(slot) - 1, slot);
            let mut target = relevance_in.column_mut(col);
            target += relevance_out.column(slot);
        }
    }

    fn gradient(
        &self,
        packing: &Packing,
        _trace: &DMatrix<f64>,
        _input: &DMatrix<f64>,
        grad_out: &DMatrix<f64>,
        grad_in: &mut DMatrix<f64>,
    ) {
        for slot in 0..packing.sequences() {
            let mut target = grad_in.column_mut(packing.column(packing.length(slot) - 1, slot));
            target += grad_out.column(slot);
        }
    }

    fn rule_names(&self, _rules: &Composite<f64>) -> String {
        "none (a copy)".into()
    }
}

/// The mean of each sequence's positions, `[D, N] -> [D, S]`.
#[derive(Debug)]
struct MeanPooling {
    width: usize,
}

/// What LRP needs of one sequence: the pooling weights `1/T` and its
/// positions `[D, T]`.
fn sequence(packing: &Packing, input: &DMatrix<f64>, slot: usize) -> (Vec<f64>, DMatrix<f64>) {
    let len = packing.length(slot);
    (vec![1.0 / len as f64; len], packing.gather(input, slot))
}

impl Stage<f64> for MeanPooling {
    type Trace = DMatrix<f64>;

    fn name(&self) -> String {
        "the mean pooling".into()
    }

    fn input(&self) -> Port {
        Port::positions(self.width)
    }

    fn output(&self) -> Port {
        Port::sequences(self.width)
    }

    fn forward(&self, packing: &Packing, input: &DMatrix<f64>) -> DMatrix<f64> {
        let mut out = DMatrix::zeros(self.width, packing.sequences());
        for slot in 0..packing.sequences() {
            let (weights, positions) = sequence(packing, input, slot);
            out.set_column(slot, &(positions * DVector::from_vec(weights)));
        }
        out
    }

    fn output_of<'t>(&self, trace: &'t DMatrix<f64>) -> &'t DMatrix<f64> {
        trace
    }

    /// A linear step with the weights `1/T` as connection weights, by the
    /// rule the composite puts at the attention's site.
    fn lrp(
        &self,
        trace: &DMatrix<f64>,
        input: &DMatrix<f64>,
        relevance_out: &DMatrix<f64>,
        relevance_in: &mut DMatrix<f64>,
        context: &mut Backward<'_, f64>,
    ) {
        let rule = context.rules.rule_at(&Site::attention());
        for slot in context.explained() {
            let (weights, positions) = sequence(context.packing, input, slot);
            let groups = [InputGroup {
                input: positions.as_slice(),
                connection: Connection::Pooling(&weights),
            }];
            let output = trace.column(slot);
            let step = LinearStep {
                groups: &groups,
                bias: None,
                output: output.as_slice(),
            };
            let mut r_positions = DMatrix::zeros(self.width, weights.len());
            context.leftovers.unexplained[slot] += rule.redistribute(
                &step,
                relevance_out.column(slot).as_slice(),
                &mut [r_positions.as_mut_slice()],
                &mut context.workspace,
            );
            context.packing.scatter_add(relevance_in, slot, &r_positions);
        }
    }

    fn gradient(
        &self,
        packing: &Packing,
        _trace: &DMatrix<f64>,
        _input: &DMatrix<f64>,
        grad_out: &DMatrix<f64>,
        grad_in: &mut DMatrix<f64>,
    ) {
        for slot in 0..packing.sequences() {
            let len = packing.length(slot);
            for t in 0..len {
                let mut target = grad_in.column_mut(packing.column(t, slot));
                target += grad_out.column(slot) / len as f64;
            }
        }
    }

    fn rule_names(&self, rules: &Composite<f64>) -> String {
        rules.rule_at(&Site::attention()).name().to_string()
    }
}

/// The head of a model from its tensors (`head.weight` `[C, F]`, `head.bias`).
fn head_of(tensors: &[(String, Tensor)]) -> Linear<f64> {
    let find = |name: &str| {
        &tensors
            .iter()
            .find(|(n, _)| n == name)
            .unwrap_or_else(|| panic!("{name} in the manifest"))
            .1
    };
    let weight = find("head.weight");
    Linear::new(
        DMatrix::from_row_slice(weight.shape[0], weight.shape[1], &weight.values),
        Some(DVector::from_vec(find("head.bias").values.clone())),
    )
    .unwrap()
}

/// Inputs of lengths 1 to 7 for a model reading `e` values per position.
fn inputs(e: usize) -> Vec<DMatrix<f64>> {
    [5, 1, 7, 3, 3]
        .iter()
        .enumerate()
        .map(|(k, &t)| random_input(e, t, k as u64 + 40, 1.0))
        .collect()
}

fn composites() -> Vec<Composite<f64>> {
    vec![
        Composite::epsilon(0.001, 0.0).unwrap(),
        Composite::epsilon(0.0, 1.0).unwrap(),
        Composite::with_every_rule("zplus", &RuleParameters::default()).unwrap(),
    ]
}

#[test]
fn a_final_state_pooling_from_outside_equals_the_built_in_one_bit_for_bit() {
    for cell in ["lstm", "gru"] {
        let config = architecture(cell, false, 2, 4, 5, None, "last", 3);
        let tensors = random_tensors(&config, 7, 0.6);
        let built_in = model_from(&config, tensors.clone());
        let outside = built_in
            .clone()
            .with_pooling_and_head(FinalStep { width: 5 }, head_of(&tensors))
            .unwrap();
        let (want, got) = (built_in.forward_batch(inputs(4)), outside.forward_batch(inputs(4)));
        let want: Vec<_> = want.into_iter().map(Result::unwrap).collect();
        let got: Vec<_> = got.into_iter().map(Result::unwrap).collect();
        for (w, g) in want.iter().zip(&got) {
            assert_eq!(w.scores(), g.scores(), "{cell}: scores");
        }
        for composite in composites() {
            for target in 0..3 {
                fn asked(traces: &[ForwardTrace<f64>], target: usize) -> Vec<(&ForwardTrace<f64>, usize)> {
                    traces.iter().map(|t| (t, target)).collect()
                }
                let (w, g) = (
                    built_in.lrp_batch(&asked(&want, target), &composite),
                    outside.lrp_batch(&asked(&got, target), &composite),
                );
                assert_eq!(w, g, "{cell}: lrp, target {target}");
                let (w, g) = (
                    built_in.gradient_batch(&asked(&want, target)),
                    outside.gradient_batch(&asked(&got, target)),
                );
                assert_eq!(w, g, "{cell}: gradient, target {target}");
            }
        }
        // Two models of their own: neither explains the other's traces.
        assert_eq!(
            outside.lrp(&want[0], 0, &composites()[0]).unwrap_err(),
            Error::TraceFromAnotherModel
        );
    }
}

/// The built-in model with a context attention whose query is zero (every
/// position weighs `1/T`) and the same model with a mean pooling.
fn mean_and_uniform_attention(cell: &str, bidirectional: bool) -> (Model<f64>, Model<f64>) {
    let config = architecture(cell, bidirectional, 1, 4, 3, Some(("context", 2)), "context", 2);
    let mut tensors = random_tensors(&config, 19, 0.7);
    for (name, tensor) in &mut tensors {
        if name == "attention.query" {
            tensor.values.fill(0.0);
        }
    }
    let attention = model_from(&config, tensors.clone());
    let width = if bidirectional { 6 } else { 3 };
    let mean = attention
        .clone()
        .with_pooling_and_head(MeanPooling { width }, head_of(&tensors))
        .unwrap();
    (attention, mean)
}

fn assert_close(what: &str, got: &[f64], want: &[f64]) {
    assert_eq!(got.len(), want.len(), "{what}: lengths");
    for (k, (a, b)) in got.iter().zip(want).enumerate() {
        assert!(
            (a - b).abs() <= 1e-12 * a.abs().max(b.abs()).max(1.0),
            "{what}[{k}]: {a:e} vs {b:e}"
        );
    }
}

#[test]
fn a_mean_pooling_from_outside_equals_a_uniform_attention() {
    for (cell, bidirectional) in [("lstm", true), ("gru", false)] {
        let (attention, mean) = mean_and_uniform_attention(cell, bidirectional);
        for x in inputs(4) {
            let (a, m) = (attention.forward(x.clone()).unwrap(), mean.forward(x).unwrap());
            assert_close("scores", m.scores().as_slice(), a.scores().as_slice());
            for composite in composites() {
                let (ra, rm) = (
                    attention.lrp(&a, 1, &composite).unwrap(),
                    mean.lrp(&m, 1, &composite).unwrap(),
                );
                assert_close(
                    "relevance",
                    rm.input_relevance.as_slice(),
                    ra.input_relevance.as_slice(),
                );
            }
        }
    }
}

#[test]
fn a_mean_pooling_from_outside_conserves_relevance() {
    let (_, mean) = mean_and_uniform_attention("lstm", true);
    let conserving = Composite::epsilon(0.0, 1.0).unwrap();
    for x in inputs(4) {
        let trace = mean.forward(x).unwrap();
        for target in 0..2 {
            let e = mean.lrp(&trace, target, &conserving).unwrap();
            let total: f64 =
                e.token_relevance().iter().sum::<f64>() + e.initial_state_relevance + e.unexplained_relevance;
            assert!(
                (total - e.score).abs() <= 1e-10 * e.score.abs().max(1.0),
                "target {target}: {total} vs score {}",
                e.score
            );
        }
    }
}

#[test]
fn a_mean_pooling_from_outside_has_the_gradient_of_finite_differences() {
    let (_, mean) = mean_and_uniform_attention("gru", false);
    let x = random_input(4, 5, 3, 1.0);
    let trace = mean.forward(x.clone()).unwrap();
    let gradient = mean.gradient(&trace, 1).unwrap();
    let numerics = lrp_tests::central_differences(&mean, &x, 1, 1e-6);
    for k in 0..x.len() {
        let numeric = numerics[k];
        assert!(
            (numeric - gradient[k]).abs() <= 1e-7,
            "entry {k}: {numeric} vs {}",
            gradient[k]
        );
    }
}

#[test]
fn stages_that_do_not_fit_are_refused_with_one_line() {
    let config = architecture("lstm", true, 1, 4, 3, None, "last", 2);
    let tensors = random_tensors(&config, 5, 0.5);
    let model = model_from(&config, tensors.clone());
    let message = |e: Error| {
        let text = e.to_string();
        assert!(!text.contains('\n'), "{text}");
        text
    };
    // The encoder writes 6 values per position (two directions of 3).
    let narrow = model
        .clone()
        .with_pooling_and_head(FinalStep { width: 3 }, head_of(&tensors));
    assert!(message(narrow.unwrap_err())
        .contains("the pooling input is 3 values per position; it must be 6 values per position"));
    let head = Linear::new(DMatrix::zeros(2, 5), None).unwrap();
    let wrong_head = model.with_pooling_and_head(FinalStep { width: 6 }, head);
    assert!(message(wrong_head.unwrap_err())
        .contains("the head input is 5 values per sequence; it must be 6 values per sequence"));
}
