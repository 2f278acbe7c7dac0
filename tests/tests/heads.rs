//! Issue 15, the heads: mean and max pooling, per-step heads and
//! regression outputs, through the CLI (`lrp explain --position`, the
//! JSON's `position`, every method) and the library's baselines, on the
//! PyTorch-parity models of `tools/make_parity_fixtures.py`.

use lrp_io::{load_model, read_sequences};
use lrp_models::Method;
use lrp_tests::{fixture, lrp, numbers};
use nalgebra::DMatrix;

fn model(name: &str) -> String {
    fixture("parity").join(name).to_str().unwrap().to_string()
}

fn input(name: &str, len: usize) -> String {
    fixture("parity/inputs")
        .join(format!("{name}-T{len}.npy"))
        .to_str()
        .unwrap()
        .to_string()
}

/// Every position's outputs `[T][C]` of a parity case, from the fixture.
fn torch_outputs(case: &str) -> Vec<Vec<f64>> {
    let text = std::fs::read_to_string(fixture("parity/cases.json")).unwrap();
    let file: serde_json::Value = serde_json::from_str(&text).unwrap();
    let case = file["cases"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == case)
        .unwrap_or_else(|| panic!("case {case}"));
    case["outputs"].as_array().unwrap().iter().map(numbers).collect()
}

/// `sum(token_relevance) + initial + unexplained == scores[target]`.
fn assert_conserves(out: &serde_json::Value, tol: f64) {
    let total = numbers(&out["token_relevance"]).iter().sum::<f64>()
        + out["initial_state_relevance"].as_f64().unwrap()
        + out["unexplained_relevance"].as_f64().unwrap();
    let target = out["target"].as_u64().unwrap() as usize;
    let score = numbers(&out["scores"])[target];
    assert!((total - score).abs() <= tol * score.abs(), "{total} vs {score}: {out}");
}

#[test]
fn a_per_step_head_explains_the_last_position_unless_told_and_conserves() {
    let (m, x) = (model("lstm-uni-each"), input("lstm-uni-each", 7));
    let outputs = torch_outputs("lstm-uni-each-T7");
    let exact = ["--eps", "0", "--bias-factor", "1"];
    let out = lrp(&[&["explain", "--model", &m, "--vectors", &x][..], &exact].concat()).json();
    assert_eq!(out["position"], 6, "the last position by default");
    lrp_tests::assert_close("scores", &numbers(&out["scores"]), &outputs[6], 1e-10);
    assert_eq!(numbers(&out["token_relevance"]).len(), 7);
    assert_conserves(&out, 1e-10);
    for t in ["0", "3"] {
        let out = lrp(&[
            &["explain", "--model", &m, "--vectors", &x, "--position", t][..],
            &exact,
        ]
        .concat())
        .json();
        let t: usize = t.parse().unwrap();
        assert_eq!(out["position"], t);
        lrp_tests::assert_close("scores", &numbers(&out["scores"]), &outputs[t], 1e-10);
        assert_conserves(&out, 1e-10);
        // A unidirectional encoder: nothing after position t matters.
        let after: f64 = numbers(&out["token_relevance"])[t + 1..].iter().map(|v| v.abs()).sum();
        assert_eq!(after, 0.0, "position {t}");
    }
}

#[test]
fn position_errors_are_one_line() {
    let each = model("lstm-uni-each");
    let x = input("lstm-uni-each", 7);
    let run = lrp(&["explain", "--model", &each, "--vectors", &x, "--position", "7"]);
    assert_eq!((run.code, run.stderr.lines().count()), (1, 1), "{}", run.stderr);
    assert!(run.stderr.contains("position 7 is out of range"), "{}", run.stderr);
    assert!(run.stdout.is_empty());
    let mean = model("lstm-bi-2l-mean");
    let run = lrp(&[
        "explain",
        "--model",
        &mean,
        "--vectors",
        &input("lstm-bi-2l-mean", 7),
        "--position",
        "0",
    ]);
    assert_eq!((run.code, run.stderr.lines().count()), (1, 1), "{}", run.stderr);
    assert!(run.stderr.contains("per-step head"), "{}", run.stderr);
    let run = lrp(&["explain", "--model", &each, "--vectors", &x, "--position", "-1"]);
    assert_eq!((run.code, run.stderr.lines().count()), (2, 1), "{}", run.stderr);
    // No position key for a head per sequence.
    let out = lrp(&["explain", "--model", &mean, "--vectors", &input("lstm-bi-2l-mean", 7)]).json();
    assert!(out.get("position").is_none());
}

#[test]
fn mean_and_max_heads_conserve_through_the_cli_in_both_precisions() {
    for name in ["lstm-bi-2l-mean", "gru-uni-max", "lstm-bi-max-regression"] {
        for (precision, tol) in [("f64", 1e-10), ("f32", 1e-4)] {
            let out = lrp(&[
                "explain",
                "--model",
                &model(name),
                "--vectors",
                &input(name, 23),
                "--eps",
                "0",
                "--bias-factor",
                "1",
                "--precision",
                precision,
            ])
            .json();
            assert_conserves(&out, tol);
            assert!(out["attention"].is_null());
        }
    }
}

#[test]
fn regression_heads_explain_output_0_by_default_and_show_outputs() {
    let (m, x) = (model("gru-bi-each-regression"), input("gru-bi-each-regression", 7));
    let out = lrp(&[
        "explain",
        "--model",
        &m,
        "--vectors",
        &x,
        "--eps",
        "0",
        "--bias-factor",
        "1",
    ])
    .json();
    assert_eq!(out["target"], 0, "output 0, not the largest");
    assert_eq!(out["position"], 6);
    let score = numbers(&out["scores"])[0];
    assert!(score < 0.0, "a negative output, explained as it is: {score}");
    assert_conserves(&out, 1e-10);
    let out = lrp(&[
        "explain",
        "--model",
        &m,
        "--vectors",
        &x,
        "--target",
        "1",
        "--position",
        "2",
    ])
    .json();
    assert_eq!((out["target"].as_u64(), out["position"].as_u64()), (Some(1), Some(2)));
    let text = lrp(&[
        "explain",
        "--model",
        &m,
        "--vectors",
        &x,
        "--format",
        "text",
        "--position",
        "2",
    ]);
    assert_eq!(text.code, 0, "{}", text.stderr);
    assert!(text.stdout.starts_with("position: 2\noutputs: "), "{}", text.stdout);
    // eval needs one class per sentence.
    let run = lrp(&["eval", "--model", &m, "--data", &x]);
    assert_eq!((run.code, run.stderr.lines().count()), (1, 1), "{}", run.stderr);
    assert!(run.stderr.contains("regression"), "{}", run.stderr);
}

#[test]
fn every_method_runs_on_every_new_head() {
    for (name, position) in [
        ("lstm-bi-2l-mean", None),
        ("gru-uni-max", None),
        ("lstm-uni-each", Some("2")),
        ("gru-bi-each-regression", Some("4")),
        ("lstm-bi-max-regression", None),
    ] {
        for method in ["lrp", "sa", "gi", "occlusion", "ig"] {
            let (m, x) = (model(name), input(name, 7));
            let mut args = vec!["explain", "--model", &m, "--vectors", &x, "--method", method];
            if let Some(t) = position {
                args.extend(["--position", t]);
            }
            let out = lrp(&args).json();
            assert_eq!(numbers(&out["token_relevance"]).len(), 7, "{name} {method}");
            assert_eq!(out["method"], method);
            if let Some(t) = position {
                assert_eq!(out["position"].as_u64(), Some(t.parse().unwrap()));
            }
        }
    }
}

/// The baselines of a per-step head score the chosen position: occlusion is
/// that position's output drop, and integrated gradients sum to that
/// position's `s(x) - s(0)` (completeness, up to the Riemann sum).
#[test]
fn baselines_of_a_per_step_head_read_the_chosen_position() {
    let dir = load_model::<f64>(fixture("parity/lstm-uni-each")).unwrap();
    let x = read_sequences(fixture("parity/inputs/lstm-uni-each-T7.npy"))
        .unwrap()
        .remove(0)
        .vectors;
    let at = |x: DMatrix<f64>, t: usize| dir.model.forward(x).unwrap().at_position(t).unwrap();
    let position = 4;
    let trace = at(x.clone(), position);
    let target = 1;
    let score = trace.scores()[target];
    let occlusion = dir.model.attribute(&trace, target, Method::Occlusion).unwrap();
    for (t, &got) in occlusion.per_position.iter().enumerate() {
        let mut occluded = x.clone();
        occluded.column_mut(t).fill(0.0);
        let want = score - at(occluded, position).scores()[target];
        assert!((got - want).abs() <= 1e-14, "position {t}: {got} vs {want}");
    }
    // After the position, a unidirectional model cannot tell.
    assert!(occlusion.per_position[position + 1..].iter().all(|v| *v == 0.0));
    let ig = dir
        .model
        .attribute(&trace, target, Method::IntegratedGradients { steps: 400 })
        .unwrap();
    let at_zero = at(DMatrix::zeros(x.nrows(), x.ncols()), position).scores()[target];
    let total: f64 = ig.per_position.iter().sum();
    assert!(
        (total - (score - at_zero)).abs() <= 1e-2 * (score - at_zero).abs().max(1e-3),
        "{total} vs {}",
        score - at_zero
    );
    // The gradient is that position's: zero after it.
    let g = dir.model.gradient(&trace, target).unwrap();
    assert!(g.columns(position + 1, 7 - position - 1).iter().all(|v| *v == 0.0));
    assert!(g.column(position).iter().any(|v| *v != 0.0));
}

/// The gradient baselines of a mean head agree between the precisions.
#[test]
fn sa_and_gi_of_a_mean_head_match_between_precisions() {
    let x = read_sequences(fixture("parity/inputs/lstm-bi-2l-mean-T7.npy"))
        .unwrap()
        .remove(0)
        .vectors;
    let d64 = load_model::<f64>(fixture("parity/lstm-bi-2l-mean")).unwrap();
    let d32 = load_model::<f32>(fixture("parity/lstm-bi-2l-mean-f32")).unwrap();
    let t64 = d64.model.forward(x.clone()).unwrap();
    let t32 = d32.model.forward(x.map(|v| v as f32)).unwrap();
    for method in ["sa", "gi"] {
        let (a, b) = match method {
            "sa" => (
                d64.model.attribute(&t64, 0, Method::Sensitivity).unwrap(),
                d32.model.attribute(&t32, 0, Method::Sensitivity).unwrap(),
            ),
            _ => (
                d64.model.attribute(&t64, 0, Method::GradientTimesInput).unwrap(),
                d32.model.attribute(&t32, 0, Method::GradientTimesInput).unwrap(),
            ),
        };
        let b: Vec<f64> = b.per_position.iter().map(|v| *v as f64).collect();
        lrp_tests::assert_close(method, &b, &a.per_position, 1e-3);
    }
}
