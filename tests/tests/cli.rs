//! The `lrp` command line: the contract of issue 2 (keys, JSON Lines for
//! npz, defaults) and one clear line on stderr for bad input.

use lrp_tests::{fixture, golden_cases, lrp, numbers};

fn reference_model() -> String {
    fixture("reference/sst-bilstm").to_str().unwrap().to_string()
}

fn input(name: &str) -> String {
    fixture("inputs").join(name).to_str().unwrap().to_string()
}

#[test]
fn npz_prints_one_json_line_per_array_in_archive_order() {
    let lines = lrp(&[
        "explain",
        "--model",
        &reference_model(),
        "--vectors",
        &input("reference-three.npz"),
    ])
    .json_lines();
    let names: Vec<&str> = lines.iter().map(|l| l["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["sentence2", "sentence0", "sentence5"]);
    let cases = golden_cases();
    for (line, k) in lines.iter().zip([2, 0, 5]) {
        let case = &cases[k];
        assert_eq!(case.name, format!("reference-{k}"));
        lrp_tests::assert_close("scores", &numbers(&line["scores"]), &case.scores, 1e-12);
        assert_eq!(numbers(&line["token_relevance"]).len(), case.token_relevance.len());
    }
}

#[test]
fn defaults_are_predicted_target_eps_0_001_and_bias_factor_0() {
    let case = &golden_cases()[0]; // eps 0.001, bias factor 0
    assert_eq!((case.eps, case.bias_factor), (0.001, 0.0));
    let out = lrp(&[
        "explain",
        "--model",
        &reference_model(),
        "--vectors",
        &input("../golden/inputs/reference-0.npy"),
    ])
    .json();
    let predicted = out["predicted"].as_u64().unwrap() as usize;
    assert_eq!(out["target"].as_u64().unwrap() as usize, predicted);
    assert_eq!(predicted, case.target, "the golden case explains the predicted class");
    lrp_tests::assert_close(
        "token relevance",
        &numbers(&out["token_relevance"]),
        &case.token_relevance,
        1e-9,
    );
    assert!(out.get("input_relevance").is_none(), "only with --per-dimension");
    assert!(out["attention"].is_null());
    assert_eq!(out["method"], "lrp");
}

#[test]
fn f32_and_fortran_order_inputs_read_as_the_same_vectors() {
    let model = reference_model();
    let run = |file: &str| lrp(&["explain", "--model", &model, "--vectors", &input(file), "--target", "1"]).json();
    let c_order = run("../golden/inputs/reference-0.npy");
    let fortran = run("reference-0-fortran.npy");
    assert_eq!(c_order, fortran);
    let single = run("reference-0-f32.npy");
    lrp_tests::assert_close(
        "f32 input",
        &numbers(&single["scores"]),
        &numbers(&c_order["scores"]),
        1e-5,
    );
}

#[test]
fn f32_precision_stays_within_1e_4_of_f64() {
    let model = reference_model();
    let run = |precision: &str| {
        lrp(&[
            "explain",
            "--model",
            &model,
            "--vectors",
            &input("../golden/inputs/reference-5.npy"),
            "--precision",
            precision,
        ])
        .json()
    };
    let (double, single) = (run("f64"), run("f32"));
    lrp_tests::assert_close("scores", &numbers(&single["scores"]), &numbers(&double["scores"]), 1e-4);
    let want = numbers(&double["token_relevance"]);
    let scale = want.iter().fold(0.0f64, |m, v| m.max(v.abs()));
    for (g, w) in numbers(&single["token_relevance"]).iter().zip(&want) {
        assert!((g - w).abs() <= 1e-4 * scale, "f32 {g} vs f64 {w}");
    }
}

/// Bad input: a non-zero exit and exactly one line on stderr that names the
/// problem; nothing on stdout.
#[test]
fn bad_input_gets_one_clear_line() {
    let model = reference_model();
    let vectors = input("../golden/inputs/reference-0.npy");
    let golden_lstm = fixture("golden/models/lstm-last").to_str().unwrap().to_string();
    let emb = fixture("golden/models/emb-bilstm-context")
        .to_str()
        .unwrap()
        .to_string();
    let missing = fixture("no-such-model").to_str().unwrap().to_string();
    let [ints, three_d, nan, empty, absent] =
        ["ints.npy", "three-d.npy", "nan.npy", "empty.npy", "missing.npy"].map(input);
    let table: Vec<(Vec<&str>, u8, &str)> = vec![
        (
            vec!["explain", "--model", &model, "--vectors", &vectors, "--frobnicate"],
            2,
            "--frobnicate",
        ),
        (vec!["explain", "--model", &model], 2, "--vectors"),
        (
            vec!["explain", "--model", &model, "--vectors", &vectors, "--text", "a b"],
            2,
            "cannot be used with",
        ),
        (
            vec!["explain", "--model", &missing, "--vectors", &vectors],
            1,
            "config.json",
        ),
        (
            vec!["explain", "--model", &golden_lstm, "--vectors", &vectors],
            1,
            "60 dimensions per position, the model reads 6",
        ),
        (
            vec!["explain", "--model", &model, "--vectors", &ints],
            1,
            "element type",
        ),
        (vec!["explain", "--model", &model, "--vectors", &three_d], 1, "2-D"),
        (
            vec!["explain", "--model", &model, "--vectors", &nan],
            1,
            "non-finite value NaN at position 2, dimension 5",
        ),
        (vec!["explain", "--model", &model, "--vectors", &empty], 1, "empty"),
        (
            vec!["explain", "--model", &model, "--vectors", &absent],
            1,
            "cannot read",
        ),
        (
            vec!["explain", "--model", &model, "--vectors", &vectors, "--target", "5"],
            1,
            "target class 5 does not exist: the model has 5 classes (0 to 4)",
        ),
        (
            vec!["explain", "--model", &model, "--vectors", &vectors, "--target", "-1"],
            2,
            "-1",
        ),
        (
            vec!["explain", "--model", &model, "--vectors", &vectors, "--eps", "-0.5"],
            1,
            "eps",
        ),
        (
            vec!["explain", "--model", &model, "--vectors", &vectors, "--method", "magic"],
            2,
            "magic",
        ),
        (vec!["explain", "--model", &model, "--text", "a film"], 1, "no vocab"),
        (
            vec!["explain", "--model", &emb, "--text", "w1 wonderful w2"],
            1,
            "\"wonderful\"",
        ),
        (vec!["explain", "--model", &emb, "--text", "   "], 1, "empty"),
    ];
    for (args, code, phrase) in table {
        let run = lrp(&args);
        assert_eq!(run.code, code, "{args:?}: exit code; stderr: {}", run.stderr);
        assert!(run.stdout.is_empty(), "{args:?}: printed {}", run.stdout);
        assert_eq!(
            run.stderr.lines().count(),
            1,
            "{args:?}: stderr must be one line: {}",
            run.stderr
        );
        assert!(
            run.stderr.contains(phrase),
            "{args:?}: {:?} should mention {phrase:?}",
            run.stderr
        );
    }
}

#[test]
fn every_rule_gate_rule_composite_and_method_is_reachable_from_the_cli() {
    use lrp_layers::{GATE_RULES, LINEAR_RULES, PRESETS};
    let model = fixture("golden/models/bilstm-context").to_str().unwrap().to_string();
    let vectors = fixture("golden/inputs/bilstm-context-2.npy")
        .to_str()
        .unwrap()
        .to_string();
    let base = [
        "explain",
        "--model",
        &model,
        "--vectors",
        &vectors,
        "--bias-factor",
        "1",
    ];
    let run = |extra: &[&str]| lrp(&[&base[..], extra].concat()).json();
    let score = |out: &serde_json::Value| numbers(&out["scores"])[out["target"].as_u64().unwrap() as usize];
    for rule in LINEAR_RULES {
        let out = run(&["--rule", rule]);
        let total: f64 = numbers(&out["token_relevance"]).iter().sum::<f64>()
            + out["initial_state_relevance"].as_f64().unwrap()
            + out["unexplained_relevance"].as_f64().unwrap();
        assert!((total - score(&out)).abs() < 1e-10 * score(&out).abs(), "--rule {rule}");
    }
    for preset in PRESETS {
        assert_eq!(run(&["--composite", preset])["method"], "lrp", "--composite {preset}");
    }
    for gate in GATE_RULES {
        assert_eq!(
            numbers(&run(&["--gate-rule", gate])["token_relevance"]).len(),
            12,
            "--gate-rule {gate}"
        );
    }
    for method in ["sa", "gi", "occlusion", "ig"] {
        let out = run(&["--method", method, "--steps", "8"]);
        assert_eq!(out["method"], method);
        assert!(out["initial_state_relevance"].is_null());
    }
    // The default composite is the spec's epsilon rule.
    assert_eq!(
        run(&[]),
        run(&["--composite", "epsilon", "--gate-rule", "signal-take-all"])
    );
    assert_ne!(run(&[]), run(&["--composite", "epsilon-flat"]));
}

#[test]
fn bad_rule_names_and_parameters_get_one_line() {
    let model = fixture("golden/models/bilstm-context").to_str().unwrap().to_string();
    let vectors = fixture("golden/inputs/bilstm-context-2.npy")
        .to_str()
        .unwrap()
        .to_string();
    let base = ["explain", "--model", &model, "--vectors", &vectors];
    for (extra, phrase) in [
        (vec!["--rule", "magic"], "unknown rule \"magic\"; known: epsilon, zplus"),
        (vec!["--gate-rule", "most"], "unknown gate rule \"most\""),
        (vec!["--composite", "fancy"], "unknown composite \"fancy\""),
        (vec!["--rule", "gamma", "--gamma", "-1"], "gamma"),
        (vec!["--rule", "alpha-beta", "--alpha", "0.5"], "alpha - beta = 1"),
        (
            vec!["--method", "ig", "--steps", "0"],
            "0 steps is out of range: use 1 to 10000",
        ),
        (vec!["--rule", "zplus", "--composite", "gamma"], "cannot be used with"),
    ] {
        let out = lrp(&[&base[..], &extra[..]].concat());
        assert_ne!(out.code, 0, "{extra:?}");
        assert_eq!(out.stderr.lines().count(), 1, "{extra:?}: {}", out.stderr);
        assert!(out.stderr.contains(phrase), "{extra:?}: {}", out.stderr);
    }
}

#[test]
fn negative_targets_and_texts_starting_with_dashes() {
    let run = lrp(&["explain", "good", "--target", "-1"]);
    assert_eq!(run.code, 2);
    assert_eq!(
        run.stderr,
        "error: invalid value '-1' for '--target <K>': the target must be a class index >= 0 (see 'lrp explain --help')\n"
    );
    for args in [
        vec!["explain", "--format", "json", "--text", "--x y"],
        vec!["explain", "--format", "json", "--", "--x y"],
        vec!["explain", "--format", "json", "--text=--x y"],
    ] {
        let out = lrp(&args).json();
        assert_eq!(out["tokens"], serde_json::json!(["--", "x", "y"]), "{args:?}");
    }
}

#[test]
fn each_command_accepts_only_the_formats_it_implements() {
    let data = fixture("sst/test.txt").to_str().unwrap().to_string();
    let adding = fixture("adding/model").to_str().unwrap().to_string();
    let heldout = fixture("adding/heldout.npz").to_str().unwrap().to_string();
    for args in [
        vec!["eval", "--data", &data],
        vec!["perturb", "--data", &data],
        vec!["groundtruth", "--model", &adding, "--data", &heldout],
    ] {
        let html = lrp(&[&args[..], &["--format", "html"]].concat());
        assert_eq!((html.code, html.stdout.as_str()), (2, ""), "{args:?}");
        assert!(
            html.stderr.contains("[possible values: auto, json, text]"),
            "{}",
            html.stderr
        );
    }
    let text = lrp(&["eval", "--data", &data, "--format", "text"]);
    assert_eq!(text.stdout, "accuracy 0.4756 on 2210 sentences (1051 correct)\n");
    let html = lrp(&["explain", "good", "--format", "html"]);
    assert!(html.stdout.starts_with("<!DOCTYPE html>"));
}

#[test]
fn threads_give_the_same_answers_and_are_checked() {
    let dir = lrp_tests::scratch_dir("threads");
    let file = dir.join("texts.txt");
    std::fs::write(&file, "a gorgeous , witty film .\nthe plot is a mess .\nit 's fine\n").unwrap();
    let file = file.to_str().unwrap();
    let one = lrp(&["explain", "--input", file, "--threads", "1"]);
    let two = lrp(&["explain", "--input", file, "--threads", "2"]);
    assert_eq!(one.code, 0, "{}", one.stderr);
    assert_eq!(one.stdout, two.stdout);
    assert_eq!(one.stdout.lines().count(), 3);
    for bad in ["0", "1025", "-1", "many"] {
        let run = lrp(&["explain", "good", "--threads", bad]);
        assert_eq!((run.code, run.stderr.lines().count()), (2, 1), "{bad}: {}", run.stderr);
        assert!(run.stderr.contains("from 1 to 1024"), "{}", run.stderr);
    }
}

/// `--rules` refines `--composite`/`--rule`: the presets' own rules by site
/// give their outputs, `*` replaces the preset, gate rules by site work, and
/// a bad specification is one line naming its bad part, exit 1 (like a bad
/// `--composite` name).
#[test]
fn rules_by_site_from_the_cli() {
    let model = fixture("golden/models/bilstm-general-2l").to_str().unwrap().to_string();
    let vectors = fixture("golden/inputs/bilstm-general-2l-2.npy")
        .to_str()
        .unwrap()
        .to_string();
    let base = ["explain", "--model", &model, "--vectors", &vectors];
    let run = |extra: &[&str]| lrp(&[&base[..], extra].concat()).json();
    assert_eq!(run(&["--rules", "input=flat"]), run(&["--composite", "epsilon-flat"]));
    assert_eq!(
        run(&["--rules", "projections = zplus, head = zplus"]),
        run(&["--composite", "zplus"])
    );
    assert_eq!(run(&["--composite", "zplus", "--rules", "*=epsilon"]), run(&[]));
    assert_eq!(run(&["--rule", "flat", "--rules", "*=epsilon"]), run(&[]));
    assert_eq!(run(&["--rules", "products=abs"]), run(&["--gate-rule", "abs"]));
    let one_direction = run(&["--rules", "layer1.backward=zplus"]);
    assert_ne!(one_direction, run(&[]));
    assert_ne!(one_direction, run(&["--rules", "layer1=zplus"]));
    assert_eq!(
        run(&["--rules", "head=gamma:0.5"]),
        run(&["--rules", "head=gamma", "--gamma", "0.5"])
    );

    for (spec, phrase) in [
        ("layer0=magic", "unknown rule \"magic\"; known: epsilon, zplus"),
        (
            "layer0.sideways=flat",
            "bad rule specification \"sideways\": not a site",
        ),
        ("*=zplus,head=flat", "\"head=flat\": never applies"),
        ("head", "\"head\": an entry is key=rule"),
        (
            "head=flat:2",
            "\"flat:2\": only epsilon, gamma and alpha-beta take a parameter",
        ),
        ("head=gamma:-1", "invalid value -1 for gamma"),
        ("head=prop", "a gate rule needs a key that selects products"),
    ] {
        let out = lrp(&[&base[..], &["--rules", spec]].concat());
        assert_eq!(out.code, 1, "{spec}");
        assert_eq!(out.stderr.lines().count(), 1, "{spec}: {}", out.stderr);
        assert!(out.stderr.contains(phrase), "{spec}: {}", out.stderr);
        assert!(out.stdout.is_empty(), "{spec}");
    }
}
