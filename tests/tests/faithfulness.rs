//! `lrp perturb` (word deletion, Arras et al. 2017; ERASER, DeYoung et al.
//! 2020) end to end (`lrp groundtruth` is in `groundtruth.rs`). The bookkeeping itself
//! (orders, ties, deleted positions, curves, AOPC) is unit-tested in
//! `lrp_models::faithfulness`.

use lrp_tests::{lrp, numbers, scratch_dir, svg_texts};

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
    assert!(svg.starts_with("<svg"), "the plot's drawing is tested below");

    let bad = lrp(&["perturb", "--data", data.to_str().unwrap(), "--methods", "lrp,magic"]);
    assert_eq!((bad.code, bad.stderr.lines().count()), (1, 1));
    assert!(bad.stderr.contains("unknown method \"magic\""), "{}", bad.stderr);
}

/// ERASER's comprehensiveness and sufficiency for LRP, computed again from
/// the outside with `lrp explain` alone: the relevance of the predicted
/// class, the top `ceil(f T)` tokens (ties by position), the sentence
/// without them and them alone explained again, and the differences of
/// the predicted class's softmax probability, averaged over sentences.
#[test]
fn perturb_eraser_figures_equal_a_reimplementation_through_explain() {
    let dir = scratch_dir("perturb-eraser");
    let data = dir.join("few.tsv");
    let texts = [
        "neither funny nor suspenseful nor particularly well-drawn .",
        "a gorgeous , witty , seductive movie .",
        "the plot is nothing but boilerplate clichés from start to finish .",
        "it 's a fine , old-fashioned film .",
    ];
    let lines: String = texts
        .iter()
        .enumerate()
        .map(|(k, t)| format!("{}\t{t}\n", k % 5))
        .collect();
    std::fs::write(&data, lines).unwrap();
    let out = lrp(&[
        "perturb",
        "--data",
        data.to_str().unwrap(),
        "--methods",
        "lrp,random",
        "--format",
        "json",
    ])
    .json();
    let eraser = &out["eraser"];
    assert_eq!(numbers(&eraser["fractions"]), [0.01, 0.05, 0.10, 0.20, 0.50]);

    let probability = |scores: &[f64], class: usize| {
        let max = scores.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        let total: f64 = scores.iter().map(|s| (s - max).exp()).sum();
        (scores[class] - max).exp() / total
    };
    let explain = |text: &str| lrp(&["explain", "--format", "json", "--", text]).json();
    let fractions = [0.01, 0.05, 0.10, 0.20, 0.50];
    let (mut comprehensiveness, mut sufficiency) = (vec![0.0; 5], vec![0.0; 5]);
    for text in texts {
        let full = explain(text);
        let predicted = full["predicted"].as_u64().unwrap() as usize;
        let p_full = probability(&numbers(&full["scores"]), predicted);
        let relevance = numbers(&full["token_relevance"]);
        let tokens: Vec<&str> = text.split(' ').collect();
        let mut order: Vec<usize> = (0..tokens.len()).collect();
        order.sort_by(|&a, &b| relevance[b].total_cmp(&relevance[a]).then(a.cmp(&b)));
        for (f, fraction) in fractions.iter().enumerate() {
            let size = ((fraction * tokens.len() as f64).ceil() as usize).max(1);
            let rationale = &order[..size];
            let pick = |inside: bool| {
                let kept: Vec<&str> = (0..tokens.len())
                    .filter(|t| rationale.contains(t) == inside)
                    .map(|t| tokens[t])
                    .collect();
                let run = explain(&kept.join(" "));
                probability(&numbers(&run["scores"]), predicted)
            };
            comprehensiveness[f] += (p_full - pick(false)) / texts.len() as f64;
            sufficiency[f] += (p_full - pick(true)) / texts.len() as f64;
        }
    }
    let got = &eraser["methods"]["lrp"];
    for (what, want) in [("comprehensiveness", &comprehensiveness), ("sufficiency", &sufficiency)] {
        let have = numbers(&got[what]);
        for (f, (a, b)) in have.iter().zip(want.iter()).enumerate() {
            assert!(
                (a - b).abs() <= 1e-12,
                "{what} at {}: perturb {a}, by hand {b}",
                fractions[f]
            );
        }
        let mean = want.iter().sum::<f64>() / 5.0;
        assert!(
            (got[format!("{what}_aopc")].as_f64().unwrap() - mean).abs() <= 1e-12,
            "{what} AOPC"
        );
    }
    // The control: LRP's rationale matters more than a random one.
    let random = &eraser["methods"]["random"];
    assert!(got["comprehensiveness_aopc"].as_f64() > random["comprehensiveness_aopc"].as_f64());
}

#[test]
fn deletion_plot_has_integer_ticks_a_legend_by_aopc_and_lrp_emphasised() {
    let dir = scratch_dir("perturb-plot");
    let data = dir.join("few.tsv");
    std::fs::write(
        &data,
        "1\tneither funny nor suspenseful nor particularly well-drawn .\n4\ta gorgeous , witty , seductive movie .\n\
         0\tthe plot is nothing but boilerplate clichés from start to finish .\n3\tit 's a fine , old-fashioned film .\n",
    )
    .unwrap();
    let plot = dir.join("curves.svg");
    let out = lrp(&[
        "perturb",
        "--data",
        data.to_str().unwrap(),
        "--steps",
        "3",
        "--ig-steps",
        "8",
        "--plot",
        plot.to_str().unwrap(),
    ])
    .json();
    let svg = std::fs::read_to_string(&plot).unwrap();
    let texts = svg_texts(&svg);
    assert!(texts[0].starts_with("Word deletion on 4 sentences"), "{:?}", texts[0]);

    // x ticks are whole numbers of deleted words: 0..=3, nothing in between.
    for tick in ["0", "1", "2", "3"] {
        assert!(texts.iter().any(|t| t == tick), "tick {tick} missing: {texts:?}");
    }
    assert!(
        !texts.iter().any(|t| t.ends_with(".5") && t != "0.5"),
        "half ticks: {texts:?}"
    );

    // One legend per panel, outside the axes, ordered by that panel's AOPC.
    let methods = out["methods"].as_object().unwrap();
    let headers: Vec<usize> = (0..texts.len()).filter(|&k| texts[k] == "AOPC, best first").collect();
    assert_eq!(headers.len(), 2);
    for (header, panel) in headers.into_iter().zip(["correct", "misclassified"]) {
        let entries: Vec<(&str, f64)> = (0..methods.len())
            .map(|row| {
                let name = texts[header + 1 + 2 * row].as_str();
                (name, texts[header + 2 + 2 * row].parse::<f64>().unwrap())
            })
            .collect();
        let mut expected: Vec<(&str, f64)> = methods
            .iter()
            .map(|(name, m)| (name.as_str(), m[panel]["aopc"].as_f64().unwrap()))
            .collect();
        expected.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(b.0)));
        let names: Vec<&str> = entries.iter().map(|e| e.0).collect();
        let want: Vec<&str> = expected.iter().map(|e| e.0).collect();
        assert_eq!(names, want, "{panel} legend order");
        for ((name, shown), (_, aopc)) in entries.iter().zip(&expected) {
            assert!((shown - aopc).abs() <= 0.0005, "{panel} {name}: {shown} vs {aopc}");
        }
    }
    // Okabe-Ito colours; LRP (vermillion) is the only curve drawn 4 wide.
    for colour in ["#D55E00", "#0072B2", "#009E73", "#E69F00", "#CC79A7"] {
        assert!(svg.contains(colour), "{colour} missing");
    }
    let thick: Vec<&str> = svg
        .lines()
        .filter(|l| l.starts_with("<polyline") && l.contains("stroke-width=\"4\""))
        .collect();
    assert_eq!(thick.len(), 4, "per panel: the LRP curve and its legend sample");
    assert!(thick.iter().all(|l| l.contains("#D55E00")));
    assert!(!svg.contains("#00FF00") && !svg.contains("#00FFFF"), "no lime or cyan");
}

#[test]
fn eraser_plot_ranks_comprehensiveness_highest_first_and_sufficiency_lowest_first() {
    let dir = scratch_dir("perturb-eraser-plot");
    let data = dir.join("few.tsv");
    std::fs::write(
        &data,
        "1\tneither funny nor suspenseful nor particularly well-drawn .\n4\ta gorgeous , witty , seductive movie .\n",
    )
    .unwrap();
    let plot = dir.join("eraser.svg");
    let out = lrp(&[
        "perturb",
        "--data",
        data.to_str().unwrap(),
        "--steps",
        "1",
        "--methods",
        "lrp,gi,random",
        "--eraser-plot",
        plot.to_str().unwrap(),
    ])
    .json();
    let svg = std::fs::read_to_string(&plot).unwrap();
    let texts = svg_texts(&svg);
    assert!(texts[0].starts_with("ERASER on 2 sentences"), "{:?}", texts[0]);
    for tick in ["1%", "5%", "10%", "20%", "50%"] {
        assert!(texts.iter().any(|t| t == tick), "tick {tick} missing: {texts:?}");
    }
    let eraser = &out["eraser"]["methods"];
    for (header, key, highest_first) in [
        ("AOPC, highest first", "comprehensiveness_aopc", true),
        ("AOPC, lowest first", "sufficiency_aopc", false),
    ] {
        let at = texts.iter().position(|t| t == header).unwrap();
        let shown: Vec<(&str, f64)> = (0..3)
            .map(|row| {
                (
                    texts[at + 1 + 2 * row].as_str(),
                    texts[at + 2 + 2 * row].parse().unwrap(),
                )
            })
            .collect();
        let mut want: Vec<(&str, f64)> = ["lrp", "gi", "random"]
            .iter()
            .map(|m| (*m, eraser[*m][key].as_f64().unwrap()))
            .collect();
        want.sort_by(|a, b| {
            let order = if highest_first {
                b.1.total_cmp(&a.1)
            } else {
                a.1.total_cmp(&b.1)
            };
            order.then(a.0.cmp(b.0))
        });
        assert_eq!(
            shown.iter().map(|s| s.0).collect::<Vec<_>>(),
            want.iter().map(|w| w.0).collect::<Vec<_>>(),
            "{header}"
        );
        for (s, w) in shown.iter().zip(&want) {
            assert!((s.1 - w.1).abs() <= 0.0005, "{header}: {s:?} vs {w:?}");
        }
    }
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
