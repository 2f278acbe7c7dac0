//! `lrp groundtruth` on cases with a `mask` of (position, input dimension)
//! cells, the time-series box of Ismail et al. 2020 (docs/groundtruth.md):
//! the real binary on a hand-made case whose measures follow from their
//! definitions, on a shipped set of the benchmark, and on bad masks.

mod common;

use std::path::Path;

use common::{assert_fails, fixture, lrp_run, lrp_run_in, npy, scratch};
use serde_json::Value;

/// `lrp groundtruth ... --format json`, parsed; the run must succeed.
fn groundtruth(args: &[&str]) -> Value {
    let mut all = vec!["groundtruth"];
    all.extend_from_slice(args);
    all.extend_from_slice(&["--format", "json"]);
    let (code, stdout, stderr) = lrp_run(&all);
    assert_eq!(code, Some(0), "{stderr}");
    serde_json::from_str(&stdout).unwrap()
}

/// One case `x` of three positions of the adding model's two dimensions,
/// every value 0 but cell (position 1, dimension 0), with `mask` as the
/// case's mask: `dir/x.npy` and `dir/x.json`.
fn one_cell_case(dir: &Path, mask: &str) -> String {
    std::fs::write(dir.join("x.npy"), npy(&[3, 2], &[0.0, 0.0, 0.5, 0.0, 0.0, 0.0])).unwrap();
    std::fs::write(
        dir.join("x.json"),
        format!(r#"{{"sequences": [{{"name": "x", "mask": {mask}}}]}}"#),
    )
    .unwrap();
    dir.join("x.npy").display().to_string()
}

#[test]
fn one_salient_cell_inside_the_mask_gives_the_measures_by_their_definitions() {
    let dir = scratch("mask-one-cell");
    // The mask: the one nonzero cell and a zero cell.
    let data = one_cell_case(&dir, "[[1, 0], [2, 1]]");
    let model = fixture("adding/model").display().to_string();
    let report = groundtruth(&[
        "--model",
        &model,
        "--data",
        &data,
        "--methods",
        "lrp,gi,ig,occlusion,sa",
    ]);
    assert_eq!(report["counts"]["mask"], 1);
    // Every method that multiplies by the input (or blanks it) finds the
    // one nonzero cell alone: saliency 1 there, 0 elsewhere. Each fraction
    // of the mass is that cell: saliency-weighted precision and recall 1
    // (the other mask cell has no saliency to miss); areas over 0.1..0.9:
    // 0.8; all points at recall 1: no area under precision over recall.
    // ROC: the cell beats the 4 cells outside, the other mask cell ties
    // them: (4 + 4 / 2) / (2 * 4).
    for method in ["lrp", "gi", "ig", "occlusion"] {
        let s = &report["methods"][method];
        assert_eq!(s["mask_precision"], serde_json::json!(vec![1.0; 9]), "{method}");
        assert_eq!(s["mask_recall"], serde_json::json!(vec![1.0; 9]), "{method}");
        assert_eq!(
            [&s["aup"], &s["aur"], &s["aupr"], &s["roc_auc"]].map(|v| v.as_f64().unwrap()),
            [0.8, 0.8, 0.0, 0.75],
            "{method}"
        );
        // A regression model's one output is always "predicted": nothing
        // it is shown changes the accuracy.
        assert_eq!(s["masked_accuracy"], serde_json::json!(vec![1.0; 11]), "{method}");
        assert_eq!(s["masked_accuracy_area"], 1.0, "{method}");
    }
    // Sensitivity is a squared gradient, nonzero at the zero cells too.
    assert!(report["methods"]["sa"]["aup"].as_f64().unwrap() < 0.8);
}

#[test]
fn on_middle_gaussian_lrp_and_ig_tell_the_box_better_than_random() {
    let set = fixture("ismail/middle-gaussian");
    let model = set.join("model").display().to_string();
    let data = set.join("heldout.npz").display().to_string();
    let report = groundtruth(&["--model", &model, "--data", &data, "--methods", "lrp,ig,sa,random"]);
    let n = report["n"].as_u64().unwrap();
    assert_eq!(report["counts"]["mask"], n);
    let measure = |method: &str, key: &str| report["methods"][method][key].as_f64().unwrap();
    // The ROC area of the cells in the box against the others: random is
    // about 1/2, LRP and integrated gradients above it.
    assert!((measure("random", "roc_auc") - 0.5).abs() < 0.02);
    for method in ["lrp", "ig"] {
        assert!(
            measure(method, "roc_auc") > measure("random", "roc_auc") + 0.04,
            "{method}: {} random {}",
            measure(method, "roc_auc"),
            measure("random", "roc_auc")
        );
    }
    // Integrated gradients' most salient cells are the box: blanking them
    // takes the accuracy down sooner than blanking cells at random.
    assert!(measure("ig", "masked_accuracy_area") < measure("random", "masked_accuracy_area"));
    // The saliency-weighted recall of a random map at fraction f is about f:
    // AUR about the integral of f over 0.1..0.9, 0.4.
    assert!((measure("random", "aur") - 0.4).abs() < 0.02);
    // Nothing blanked: the accuracy of the predictions torch made (float64)
    // as the tool wrote them; everything blanked: the same for every method.
    let truth: Value = serde_json::from_str(&std::fs::read_to_string(set.join("heldout.json")).unwrap()).unwrap();
    let cases = truth["sequences"].as_array().unwrap();
    let right = cases.iter().filter(|c| c["prediction"] == c["output"]).count();
    let unmasked = right as f64 / cases.len() as f64;
    let curves: Vec<&Vec<Value>> = ["lrp", "ig", "sa", "random"]
        .iter()
        .map(|m| report["methods"][m]["masked_accuracy"].as_array().unwrap())
        .collect();
    for curve in &curves {
        assert_eq!(curve.len(), 11);
        assert_eq!(curve[0].as_f64().unwrap(), unmasked);
        assert_eq!(curve[10], curves[0][10]);
    }
}

#[test]
fn the_text_report_lists_the_masked_accuracy_by_fraction() {
    let dir = scratch("mask-text");
    let data = one_cell_case(&dir, "[[1, 0]]");
    let model = fixture("adding/model").display().to_string();
    let (code, stdout, stderr) = lrp_run(&[
        "groundtruth",
        "--model",
        &model,
        "--data",
        &data,
        "--methods",
        "lrp,random",
        "--format",
        "text",
    ]);
    assert_eq!(code, Some(0), "{stderr}");
    assert!(
        stdout.starts_with("1 sequences; relevance of each cell (position, input dimension)\n"),
        "{stdout}"
    );
    assert!(stdout.contains("ROC AUC"), "{stdout}");
    assert!(stdout.contains("0%   10%   20%"), "{stdout}");
    assert!(stdout.contains("\nlrp         1.00  1.00"), "{stdout}");
}

#[test]
fn bad_masks_are_refused_in_one_line_naming_the_case() {
    let dir = scratch("mask-bad");
    let model = fixture("adding/model").display().to_string();
    for (mask, phrase) in [
        (
            "[[3, 0]]",
            "x.json: x: mask cell [3, 0] is outside the input (3 positions x 2 dimensions)",
        ),
        ("[[0, 2]]", "x.json: x: mask cell [0, 2] is outside the input"),
        ("[[1, 0], [1, 0]]", "x.json: x: mask cell [1, 0] is listed twice"),
        ("[]", "x.json: x: the mask has 0 of the 6 cells"),
        (
            "[[0, 0], [0, 1], [1, 0], [1, 1], [2, 0], [2, 1]]",
            "x.json: x: the mask has 6 of the 6 cells; it needs some cells inside and some outside",
        ),
        ("[[1, -1]]", "x.json"),
    ] {
        let data = one_cell_case(&dir, mask);
        assert_fails(&dir, &["groundtruth", "--model", &model, "--data", &data], phrase);
    }
    let data = one_cell_case(&dir, "[[1, 0]]");
    assert_fails(
        &dir,
        &["groundtruth", "--model", &model, "--data", &data, "--dimension", "0"],
        "x.json: x: --dimension reads one dimension, but a mask scores every cell",
    );
    let (code, _, stderr) = lrp_run_in(&dir, &["groundtruth", "--model", &model, "--data", &data]);
    assert_eq!(code, Some(0), "{stderr}");
}

#[test]
fn blank_with_sets_the_blanked_cells_to_its_values() {
    let set = fixture("ismail/middle-gaussian");
    let model = set.join("model").display().to_string();
    let data = set.join("heldout.npz").display().to_string();
    let dir = scratch("mask-blank-with");
    let zeros = dir.join("zeros.npy");
    let ones = dir.join("ones.npy");
    std::fs::write(&zeros, npy(&[50, 50], &[0.0; 2500])).unwrap();
    std::fs::write(&ones, npy(&[50, 50], &[1.0; 2500])).unwrap();
    let (zeros, ones) = (zeros.display().to_string(), ones.display().to_string());
    let run = |blank: Option<&str>| {
        let mut args = vec!["--model", &model, "--data", &data, "--methods", "lrp,random"];
        if let Some(blank) = blank {
            args.extend_from_slice(&["--blank-with", blank]);
        }
        groundtruth(&args)
    };
    let (default, with_zeros, with_ones) = (run(None), run(Some(&zeros)), run(Some(&ones)));
    // The default blank is 0: an array of zeros changes nothing.
    for method in ["lrp", "random"] {
        assert_eq!(
            default["methods"][method]["masked_accuracy"], with_zeros["methods"][method]["masked_accuracy"],
            "{method}"
        );
    }
    // Every cell blanked with ones: every case is the all-ones input, so the
    // accuracy is the share of cases whose output is the model's class of it.
    let (code, stdout, stderr) = lrp_run(&["explain", "--model", &model, "--vectors", &ones, "--format", "json"]);
    assert_eq!(code, Some(0), "{stderr}");
    let class_of_ones = serde_json::from_str::<Value>(&stdout).unwrap()["predicted"].clone();
    let truth: Value = serde_json::from_str(&std::fs::read_to_string(set.join("heldout.json")).unwrap()).unwrap();
    let cases = truth["sequences"].as_array().unwrap();
    let share = cases.iter().filter(|c| c["output"] == class_of_ones).count() as f64 / cases.len() as f64;
    for method in ["lrp", "random"] {
        let curve = with_ones["methods"][method]["masked_accuracy"].as_array().unwrap();
        assert_eq!(curve[10].as_f64().unwrap(), share, "{method}");
        // Nothing blanked: the same as without --blank-with.
        assert_eq!(curve[0], default["methods"][method]["masked_accuracy"][0], "{method}");
    }
    // The ROC area and the precision do not depend on what blanked cells hold.
    assert_eq!(with_ones["methods"]["lrp"]["aup"], default["methods"]["lrp"]["aup"]);
}

#[test]
fn bad_blank_values_are_refused_in_one_line() {
    let dir = scratch("mask-blank-bad");
    let small = dir.join("small.npy");
    std::fs::write(&small, npy(&[3, 2], &[0.0; 6])).unwrap();
    let small = small.display().to_string();
    // (set, the one line): a set with masks of another shape, a set without masks.
    for (set, phrase) in [
        (
            "ismail/middle-gaussian",
            "small.npy: [3, 2] (positions x dimensions), but s000 is [50, 50]",
        ),
        (
            "adding",
            "small.npy: no case has a mask, and only a mask's cells are blanked",
        ),
    ] {
        let set = fixture(set);
        let model = set.join("model").display().to_string();
        let data = set.join("heldout.npz").display().to_string();
        let args = [
            "groundtruth",
            "--model",
            &model,
            "--data",
            &data,
            "--blank-with",
            &small,
        ];
        assert_fails(&dir, &args, phrase);
    }
}
