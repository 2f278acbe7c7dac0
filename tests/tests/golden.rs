//! The golden cases (`fixtures/golden/cases.json`), through the library API
//! and through the CLI. `reference-*` were computed by the published numpy
//! implementation of Arras et al. (2017), the others by an independent
//! implementation of `docs/rules.md`; all in float64.

use lrp_io::load_model;
use lrp_layers::Composite;
use lrp_tests::{assert_close, flat, golden_cases, lrp, numbers, rows_of, GoldenCase};
use nalgebra::DMatrix;

const RTOL: f64 = 1e-9;

fn input_of(case: &GoldenCase, model: &lrp_io::ModelDir<f64>) -> DMatrix<f64> {
    match &case.input {
        Some(path) => {
            let mut seqs = lrp_io::read_sequences(lrp_tests::fixture("golden").join(path)).expect("input reads");
            seqs.remove(0).vectors
        }
        None => {
            let words = case.tokens.as_ref().expect("a token case");
            let ids = model.vocab().expect("vocab").ids(words).expect("words in vocab");
            model.model.embed(&ids).expect("ids in range")
        }
    }
}

fn check_api(case: &GoldenCase) {
    let dir = load_model::<f64>(case.model_dir()).expect("model loads");
    let trace = dir.model.forward(input_of(case, &dir)).expect("forward");
    let n = &case.name;
    assert_close(&format!("{n}: scores"), trace.scores().as_slice(), &case.scores, RTOL);
    match (&case.attention, trace.attention_weights()) {
        (Some(want), Some(got)) => assert_close(&format!("{n}: attention"), got, want, RTOL),
        (None, None) => {}
        (want, got) => panic!("{n}: attention: want {want:?}, got {got:?}"),
    }
    let composite = Composite::epsilon(case.eps, case.bias_factor).expect("valid rule");
    let e = dir.model.lrp(&trace, case.target, &composite).expect("lrp");
    assert_close(
        &format!("{n}: input relevance"),
        &flat(&e.input_relevance.to_rows()),
        &flat(&case.input_relevance),
        RTOL,
    );
    assert_close(
        &format!("{n}: token relevance"),
        &e.token_relevance(),
        &case.token_relevance,
        RTOL,
    );
    assert_close(
        &format!("{n}: initial-state relevance"),
        &[e.initial_state_relevance],
        &[case.initial_state_relevance],
        RTOL,
    );
    assert_eq!(
        e.unexplained_relevance, 0.0,
        "{n}: nothing is unexplained in these cases"
    );

    let grad = dir.model.gradient(&trace, case.target).expect("gradient");
    assert_close(
        &format!("{n}: gradient"),
        &flat(&rows_of(&grad)),
        &flat(&case.gradient),
        RTOL,
    );
}

fn check_cli(case: &GoldenCase) {
    let dir = case.model_dir();
    let (target, eps, bf) = (
        case.target.to_string(),
        case.eps.to_string(),
        case.bias_factor.to_string(),
    );
    let mut args = vec![
        "explain",
        "--model",
        dir.to_str().unwrap(),
        "--target",
        &target,
        "--eps",
        &eps,
        "--bias-factor",
        &bf,
    ];
    let input_path;
    let text;
    match &case.input {
        Some(path) => {
            input_path = lrp_tests::fixture("golden").join(path);
            args.extend(["--vectors", input_path.to_str().unwrap()]);
        }
        None => {
            text = case.tokens.as_ref().unwrap().join(" ");
            args.extend(["--text", &text]);
        }
    }
    let n = &case.name;
    for method in ["lrp", "sa", "gi"] {
        let mut run_args = args.clone();
        run_args.extend(["--method", method, "--per-dimension"]);
        let out = lrp(&run_args).json();
        assert_close(
            &format!("{n} (cli): scores"),
            &numbers(&out["scores"]),
            &case.scores,
            RTOL,
        );
        assert_eq!(out["target"], case.target);
        assert_eq!(out["method"], method);
        let predicted = case
            .scores
            .iter()
            .enumerate()
            .fold(0, |b, (k, &v)| if v > case.scores[b] { k } else { b });
        assert_eq!(out["predicted"], predicted, "{n}: predicted");
        match &case.attention {
            Some(want) => assert_close(
                &format!("{n} (cli): attention"),
                &numbers(&out["attention"]),
                want,
                RTOL,
            ),
            None => assert!(out["attention"].is_null()),
        }
        let tokens = numbers(&out["token_relevance"]);
        match method {
            "lrp" => {
                assert_close(
                    &format!("{n} (cli): token relevance"),
                    &tokens,
                    &case.token_relevance,
                    RTOL,
                );
                let rows: Vec<Vec<f64>> = out["input_relevance"].as_array().unwrap().iter().map(numbers).collect();
                assert_close(
                    &format!("{n} (cli): input relevance"),
                    &flat(&rows),
                    &flat(&case.input_relevance),
                    RTOL,
                );
                assert_close(
                    &format!("{n} (cli): initial-state relevance"),
                    &[out["initial_state_relevance"].as_f64().unwrap()],
                    &[case.initial_state_relevance],
                    RTOL,
                );
            }
            "sa" => assert_close(&format!("{n} (cli): sa"), &tokens, &case.sa, RTOL),
            _ => assert_close(&format!("{n} (cli): gi"), &tokens, &case.gi, RTOL),
        }
        if case.reads_tokens() {
            let words: Vec<&str> = out["tokens"]
                .as_array()
                .unwrap()
                .iter()
                .map(|w| w.as_str().unwrap())
                .collect();
            assert_eq!(
                words,
                case.tokens
                    .as_ref()
                    .unwrap()
                    .iter()
                    .map(String::as_str)
                    .collect::<Vec<_>>()
            );
        }
    }
}

#[test]
fn reference_cases_match_the_published_implementation_through_the_api() {
    let cases: Vec<_> = golden_cases().into_iter().filter(GoldenCase::is_reference).collect();
    assert_eq!(cases.len(), 6);
    cases.iter().for_each(check_api);
}

#[test]
fn reference_cases_match_the_published_implementation_through_the_cli() {
    golden_cases().iter().filter(|c| c.is_reference()).for_each(check_cli);
}

#[test]
fn architecture_cases_match_the_spec_through_the_api() {
    let cases: Vec<_> = golden_cases().into_iter().filter(|c| !c.is_reference()).collect();
    assert_eq!(cases.len(), 28);
    cases.iter().for_each(check_api);
}

#[test]
fn architecture_cases_match_the_spec_through_the_cli() {
    golden_cases().iter().filter(|c| !c.is_reference()).for_each(check_cli);
}

#[test]
fn golden_sa_and_gi_follow_from_the_golden_gradient() {
    // Guards the fixtures' meaning: SA = ||grad||^2, GI = x . grad per token.
    for case in golden_cases().iter().filter(|c| c.input.is_some()) {
        let x = lrp_io::read_sequences(lrp_tests::fixture("golden").join(case.input.as_ref().unwrap()))
            .unwrap()
            .remove(0)
            .vectors;
        let sa: Vec<f64> = case.gradient.iter().map(|g| g.iter().map(|v| v * v).sum()).collect();
        let gi: Vec<f64> = case
            .gradient
            .iter()
            .enumerate()
            .map(|(t, g)| g.iter().zip(x.column(t).iter()).map(|(a, b)| a * b).sum())
            .collect();
        assert_close(&format!("{}: sa", case.name), &sa, &case.sa, 1e-12);
        assert_close(&format!("{}: gi", case.name), &gi, &case.gi, 1e-9);
    }
}
