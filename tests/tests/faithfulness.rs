//! `lrp perturb` (word deletion, Arras et al. 2017) and `lrp groundtruth`
//! (the adding task, Arras et al. 2019) end to end. The bookkeeping itself
//! (orders, ties, deleted positions, curves, AOPC) is unit-tested in
//! `lrp_models::faithfulness`.

use lrp_tests::{fixture, lrp, numbers, scratch_dir};

#[test]
fn perturb_reports_every_method_in_both_directions() {
    let dir = scratch_dir("perturb");
    let data = dir.join("few.tsv");
    std::fs::write(
        &data,
        "1\tneither funny nor suspenseful nor particularly well-drawn .\n4\ta gorgeous , witty , seductive movie .\n\
         0\tthe plot is nothing but boilerplate clichés from start to finish .\n3\tit 's a fine , old-fashioned film .\n",
    )
    .unwrap();
    let plot = dir.join("curves.svg");
    let args = [
        "perturb",
        "--data",
        data.to_str().unwrap(),
        "--steps",
        "3",
        "--ig-steps",
        "8",
        "--format",
        "json",
    ];
    let run = lrp(&[&args[..], &["--plot", plot.to_str().unwrap()]].concat());
    let out = run.json();
    assert_eq!(out["n"], 4);
    let (correct, wrong) = (out["correct"].as_u64().unwrap(), out["misclassified"].as_u64().unwrap());
    assert_eq!(correct + wrong, 4);
    let methods = out["methods"].as_object().unwrap();
    assert_eq!(methods.len(), 6);
    for (name, m) in methods {
        let c = numbers(&m["correct"]["curve"]);
        let w = numbers(&m["misclassified"]["curve"]);
        assert_eq!((c.len(), w.len()), (4, 4), "{name}: 0..=3 deletions");
        if correct > 0 {
            assert_eq!(c[0], 1.0, "{name}: nothing deleted, all correct");
        }
        assert_eq!(w[0], 0.0, "{name}: nothing deleted, all still wrong");
        assert!(m["correct"]["aopc"].is_f64() && m["misclassified"]["aopc"].is_f64());
    }
    // Seeded: the same run gives the same numbers, random baseline included.
    assert_eq!(lrp(&args).json(), out);
    let svg = std::fs::read_to_string(&plot).unwrap();
    assert!(svg.starts_with("<svg") && svg.contains("random (AOPC") && svg.contains("lrp (AOPC"));

    let bad = lrp(&["perturb", "--data", data.to_str().unwrap(), "--methods", "lrp,magic"]);
    assert_eq!((bad.code, bad.stderr.lines().count()), (1, 1));
    assert!(bad.stderr.contains("unknown method \"magic\""), "{}", bad.stderr);
}

#[test]
fn groundtruth_scores_every_method_on_the_adding_task() {
    let model = fixture("adding/model");
    let data = fixture("adding/heldout.npz");
    let out = lrp(&[
        "groundtruth",
        "--model",
        model.to_str().unwrap(),
        "--data",
        data.to_str().unwrap(),
        "--ig-steps",
        "16",
    ])
    .json();
    assert_eq!(out["n"], 500);
    let methods = out["methods"].as_object().unwrap();
    assert_eq!(methods.len(), 6);
    for (name, m) in methods {
        let top2 = m["top2_accuracy"].as_f64().unwrap();
        assert!((0.0..=1.0).contains(&top2), "{name}");
    }
    // Two marked positions among 5..30: a random ranking finds both rarely.
    assert!(methods["random"]["top2_accuracy"].as_f64().unwrap() < 0.1);
}
