//! Every rule, gate rule, preset and method on real models: conservation
//! where the rule promises it, agreements between methods that must agree,
//! and insta snapshots of the relevance each produces.

use lrp_io::{load_model, read_sequences};
use lrp_layers::{gate_rule, Composite, RuleParameters, GATE_RULES, LINEAR_RULES, PRESETS};
use lrp_models::{Method, Model};
use lrp_tests::{assert_close, fixture};
use nalgebra::DMatrix;

fn golden_model(name: &str) -> (Model<f64>, DMatrix<f64>) {
    let dir = load_model::<f64>(fixture("golden/models").join(name)).unwrap();
    let x = read_sequences(fixture("golden/inputs").join(format!("{name}-2.npy")))
        .unwrap()
        .remove(0)
        .vectors;
    (dir.model, x)
}

const MODELS: [&str; 6] = [
    "lstm-last",
    "bilstm-context",
    "bilstm-additive",
    "lstm-dot-cl",
    "bilstm-general-2l",
    "gru-context",
];

/// Every linear rule everywhere, with every gate rule: input relevance +
/// initial-state relevance + unexplained relevance = the score (the rules
/// here ignore biases or, for epsilon, use bias factor 1).
#[test]
fn every_rule_and_gate_rule_conserves_on_every_architecture() {
    let p = RuleParameters {
        bias_factor: 1.0,
        ..RuleParameters::default()
    };
    for name in MODELS {
        let (model, x) = golden_model(name);
        let trace = model.forward(x).unwrap();
        let target = trace.predicted();
        for rule in LINEAR_RULES {
            for gate in GATE_RULES {
                let rules = Composite::with_every_rule(rule, &p)
                    .unwrap()
                    .with_boxed_gate_rule(gate_rule(gate).unwrap());
                let e = model.lrp(&trace, target, &rules).unwrap();
                let total = e.input_relevance.total() + e.initial_state_relevance + e.unexplained_relevance;
                let score = trace.scores()[target];
                let error = (total - score).abs();
                // Exact up to the rounding of the terms themselves...
                let magnitude: f64 = e.input_relevance.as_slice().iter().map(|v| v.abs()).sum::<f64>() + score.abs();
                assert!(error <= 1e-13 * magnitude, "{name} {rule}/{gate}: {total} vs {score}");
                // ...which is the score's own scale, except for LRP-prop:
                // g / (g + s) is unbounded and produces huge relevances of
                // opposite signs that cancel (Arras et al. 2019 note it).
                if gate != "prop" {
                    assert!(error <= 1e-10 * score.abs(), "{name} {rule}/{gate}: {total} vs {score}");
                }
            }
        }
    }
}

/// A gate rule that feeds gates must change the explanation (the gates'
/// own weights are used), and signal-take-all must not read them.
#[test]
fn gate_rules_that_feed_gates_change_relevance() {
    let (model, x) = golden_model("bilstm-context");
    let trace = model.forward(x).unwrap();
    let p = RuleParameters::default();
    let with = |gate: &str| {
        let rules = Composite::<f64>::preset("epsilon", &p)
            .unwrap()
            .with_boxed_gate_rule(gate_rule(gate).unwrap());
        model.lrp(&trace, 1, &rules).unwrap().input_relevance
    };
    let all = with("all");
    for gate in ["prop", "abs", "half"] {
        assert_ne!(with(gate), all, "{gate}");
    }
    assert_eq!(with("half"), with("uniform"));
    assert_eq!(with("signal-take-all"), all);
}

#[test]
fn integrated_gradients_with_one_step_is_gradient_times_input() {
    for name in MODELS {
        let (model, x) = golden_model(name);
        let trace = model.forward(x).unwrap();
        let gi = model.attribute(&trace, 0, Method::GradientTimesInput).unwrap();
        let ig = model
            .attribute(&trace, 0, Method::IntegratedGradients { steps: 1 })
            .unwrap();
        assert_close(name, &ig.per_position, &gi.per_position, 1e-12);
    }
}

/// Completeness of integrated gradients: the attributions add up to
/// `s(x) - s(0)` as the Riemann sum converges (error O(1/steps)).
#[test]
fn integrated_gradients_approach_completeness() {
    for name in MODELS {
        let (model, x) = golden_model(name);
        let zero = model.forward(DMatrix::zeros(x.nrows(), x.ncols())).unwrap().scores()[0];
        let trace = model.forward(x).unwrap();
        let gap = trace.scores()[0] - zero;
        let error = |steps| {
            let ig = model
                .attribute(&trace, 0, Method::IntegratedGradients { steps })
                .unwrap();
            (ig.per_position.iter().sum::<f64>() - gap).abs()
        };
        let (coarse, fine) = (error(16), error(512));
        // 32 times the steps: the error of the right Riemann sum falls ~32x.
        assert!(fine < coarse / 16.0, "{name}: {coarse:e} -> {fine:e} (gap {gap})");
    }
}

#[test]
fn occlusion_of_a_single_position_is_the_score_minus_the_score_of_zero() {
    let (model, x) = golden_model("gru-context");
    let x = x.columns(0, 1).into_owned();
    let zero = model.forward(DMatrix::zeros(x.nrows(), 1)).unwrap().scores()[1];
    let trace = model.forward(x).unwrap();
    let occ = model.attribute(&trace, 1, Method::Occlusion).unwrap();
    assert_eq!(occ.per_position, vec![trace.scores()[1] - zero]);
    assert!(occ.per_dimension.is_none());
}

/// Token relevance of every rule, preset, gate rule and method on the
/// golden models (T = 12), rounded to 6 significant digits.
#[test]
fn snapshots_of_every_rule_and_method() {
    let p = RuleParameters::default();
    for name in MODELS {
        let (model, x) = golden_model(name);
        let trace = model.forward(x).unwrap();
        let target = trace.predicted();
        let mut lines = vec![format!("model {name}, target {target}, T = {}", trace.len())];
        let mut add = |label: String, method: Method<'_, f64>| {
            let a = model.attribute(&trace, target, method).unwrap();
            let values: Vec<String> = a.per_position.iter().map(|v| format!("{v:.5e}")).collect();
            lines.push(format!("{label:<24} {}", values.join(" ")));
        };
        for rule in LINEAR_RULES {
            add(
                format!("rule {rule}"),
                Method::Lrp(&Composite::with_every_rule(rule, &p).unwrap()),
            );
        }
        for preset in PRESETS {
            add(
                format!("composite {preset}"),
                Method::Lrp(&Composite::preset(preset, &p).unwrap()),
            );
        }
        for gate in ["prop", "abs", "half"] {
            let rules = Composite::preset("epsilon", &p)
                .unwrap()
                .with_boxed_gate_rule(gate_rule(gate).unwrap());
            add(format!("gate {gate}"), Method::Lrp(&rules));
        }
        add("sa".into(), Method::Sensitivity);
        add("gi".into(), Method::GradientTimesInput);
        add("occlusion".into(), Method::Occlusion);
        add("ig (20 steps)".into(), Method::IntegratedGradients { steps: 20 });
        insta::assert_snapshot!(name, lines.join("\n"));
    }
}
