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

/// A model made by hand whose decision is known: an LSTM (E = H = 1) whose
/// gates are held open (biases of 30) and whose candidate is
/// `tanh(0.01 x_t)`, so `c_T ~ 0.01 sum_t x_t`; the head scores class 1 as
/// `100 h_T` and class 0 as 0. It predicts 1 exactly when the inputs sum to
/// more than 0. Deleting the most relevant position of `[3, -1, -1]` for
/// class 1 must be position 0, and must flip the decision.
#[test]
fn deletion_on_a_hand_made_model() {
    use lrp_models::faithfulness::{accuracy_curve, deletion_order, deletion_variants};
    use lrp_models::{Method, Tensor};
    let config = lrp_tests::architecture("lstm", false, 1, 1, 1, None, "last", 2);
    let t = |shape: Vec<usize>, values: Vec<f64>| Tensor { shape, values };
    let tensors = vec![
        // Gate rows i, f, g, o.
        (
            "encoder.weight_ih_l0".to_string(),
            t(vec![4, 1], vec![0.0, 0.0, 0.01, 0.0]),
        ),
        ("encoder.weight_hh_l0".to_string(), t(vec![4, 1], vec![0.0; 4])),
        (
            "encoder.bias_ih_l0".to_string(),
            t(vec![4], vec![30.0, 30.0, 0.0, 30.0]),
        ),
        ("encoder.bias_hh_l0".to_string(), t(vec![4], vec![0.0; 4])),
        ("head.weight".to_string(), t(vec![2, 1], vec![0.0, 100.0])),
        ("head.bias".to_string(), t(vec![2], vec![0.0, 0.0])),
    ];
    let model = lrp_tests::model_from(&config, tensors);
    let x = nalgebra::DMatrix::from_row_slice(1, 3, &[3.0, -1.0, -1.0]);
    let trace = model.forward(x.clone()).unwrap();
    assert_eq!(trace.predicted(), 1);
    let rules = lrp_layers::Composite::epsilon(0.001, 0.0).unwrap();
    let relevance = model.attribute(&trace, 1, Method::Lrp(&rules)).unwrap().per_position;
    assert!(
        relevance[0] > 0.0 && relevance[1] < 0.0 && relevance[2] < 0.0,
        "{relevance:?}"
    );
    let order = deletion_order(&relevance, true);
    assert_eq!(order[0], 0);
    let kept: Vec<bool> = model
        .forward_batch(deletion_variants(&x, &order, 3).unwrap().collect())
        .into_iter()
        .map(|t| t.unwrap().predicted() == 1)
        .collect();
    // 0 deleted: sum 1 -> class 1; then [0, -1, -1] -> 0; then [0, 0, -1] or
    // [0, -1, 0] -> 0; all deleted -> sum 0, the head's tie goes to class 0.
    assert_eq!(kept, vec![true, false, false, false]);
    assert_eq!(accuracy_curve(&[&kept]), vec![1.0, 0.0, 0.0, 0.0]);
    // The least relevant first (as for a misclassified sentence) keeps the
    // decision while negative evidence goes.
    let least_first = deletion_order(&relevance, false);
    let kept: Vec<bool> = model
        .forward_batch(deletion_variants(&x, &least_first, 2).unwrap().collect())
        .into_iter()
        .map(|t| t.unwrap().predicted() == 1)
        .collect();
    assert_eq!(kept, vec![true, true, true]);
}
