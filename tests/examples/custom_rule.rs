//! A rule written outside the library: this is what a user's crate does to
//! plug a new LRP rule into lrp. Run it with
//! `cargo run -p lrp-tests --example custom_rule`; its test runs with
//! `cargo test --workspace`.
//!
//! The rule, "absolute contributions": every input gets a share of an
//! output's relevance in proportion to the magnitude of its contribution,
//! `R_i = sum_j |w_ij x_i| / sum_i' |w_i'j x_i'| * R_j`. It conserves
//! relevance (except at an output with no contribution at all).

use lrp_core::{Float, LinearRule, LinearStep, Workspace};
use lrp_layers::{redistribute_proportionally, Composite, Site};

/// The custom rule: no parameters, so a unit struct.
#[derive(Debug, Clone, Copy)]
struct AbsoluteContributions;

impl<T: Float> LinearRule<T> for AbsoluteContributions {
    /// The share of input `i` in output `j` is `|z_ij|` (the builder passes
    /// the contribution `z_ij = w_ij x_i` and the weight `w_ij`); the
    /// builder normalises per output and reports outputs with no
    /// contribution at all as unexplained.
    fn redistribute(
        &self,
        step: &LinearStep<'_, T>,
        relevance_out: &[T],
        relevance_in: &mut [&mut [T]],
        workspace: &mut Workspace<T>,
    ) -> T {
        redistribute_proportionally(step, relevance_out, relevance_in, workspace, T::one(), |z, _w| z.abs())
    }

    fn name(&self) -> &str {
        "absolute contributions"
    }
}

/// The model, input and rules of the example: the spec's epsilon rule with
/// bias factor 1 everywhere except the head, which gets the custom rule (its
/// site chosen by a closure; a `SitePattern` or `Role::Head` would do too).
fn explain() -> (f64, f64, Vec<f64>) {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures");
    let dir = lrp_io::load_model::<f64>(root.join("golden/models/bilstm-context")).expect("model");
    let x = lrp_io::read_sequences(root.join("golden/inputs/bilstm-context-2.npy"))
        .expect("input")
        .remove(0)
        .vectors;
    let rules = Composite::epsilon(0.001, 1.0)
        .expect("rule")
        .with_rule(|site: &Site| site.stage == lrp_layers::HEAD, AbsoluteContributions);
    let trace = dir.model.forward(x).expect("forward");
    let target = trace.predicted();
    let e = dir.model.lrp(&trace, target, &rules).expect("lrp");
    (
        trace.scores()[target],
        e.input_relevance.total() + e.initial_state_relevance,
        e.token_relevance(),
    )
}

fn main() {
    let (score, total, tokens) = explain();
    println!("score {score:.6}, relevance + initial state {total:.6}");
    println!("token relevance {tokens:.4?}");
}

#[test]
fn the_custom_rule_plugs_in_and_conserves() {
    let (score, total, tokens) = explain();
    assert!((total - score).abs() < 1e-10 * score.abs(), "{total} vs {score}");
    // And it is really used: the spec's rule everywhere gives other numbers.
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures");
    let dir = lrp_io::load_model::<f64>(root.join("golden/models/bilstm-context")).unwrap();
    let x = lrp_io::read_sequences(root.join("golden/inputs/bilstm-context-2.npy"))
        .unwrap()
        .remove(0)
        .vectors;
    let trace = dir.model.forward(x).unwrap();
    let plain = dir
        .model
        .lrp(&trace, trace.predicted(), &Composite::epsilon(0.001, 1.0).unwrap())
        .unwrap();
    assert_ne!(plain.token_relevance(), tokens);
}
