//! A real time series (tests/fixtures/motions: a BiLSTM on BasicMotions,
//! made by tools/train_motions.py) and the deletion curves of `lrp perturb
//! --vectors`: process tests of the real binary.

mod common;

use common::{assert_bad_input, fixture, lrp_run, scratch};
use serde_json::Value;
use std::path::{Path, PathBuf};

/// The shipped CSV's flags: a series per test case, its class in `activity`.
const COLUMNS: [&str; 6] = [
    "--series-column",
    "case",
    "--time-column",
    "t",
    "--label-column",
    "activity",
];

fn json_lines(stdout: &str) -> Vec<Value> {
    stdout.lines().map(|l| serde_json::from_str(l).unwrap()).collect()
}

fn expected() -> Value {
    serde_json::from_str(&std::fs::read_to_string(fixture("motions/expected.json")).unwrap()).unwrap()
}

fn f(v: &Value) -> f64 {
    v.as_f64().unwrap()
}

/// Runs `lrp COMMAND --model MODEL --vectors CSV` with `flags`.
fn lrp_on(command: &str, model: &Path, csv: &Path, flags: &[&str]) -> (Option<i32>, String, String) {
    let mut args = vec![
        command,
        "--model",
        model.to_str().unwrap(),
        "--vectors",
        csv.to_str().unwrap(),
    ];
    args.extend(flags);
    lrp_run(&args)
}

/// Explains every test case of the shipped CSV under extra `args`.
fn explain_all(args: &[&str]) -> Vec<Value> {
    let mut flags = vec!["--format", "json"];
    flags.extend(COLUMNS);
    flags.extend(args);
    let (code, stdout, stderr) = lrp_on(
        "explain",
        &fixture("motions/model"),
        &fixture("motions/test.csv"),
        &flags,
    );
    assert_eq!(code, Some(0), "{stderr}");
    json_lines(&stdout)
}

#[test]
fn the_shipped_model_gives_torchs_scores_on_every_test_case() {
    let expected = expected();
    let cases = expected["cases"].as_array().unwrap();
    let reports = explain_all(&[]);
    assert_eq!(reports.len(), 40);
    let mut correct = 0;
    for (report, case) in reports.iter().zip(cases) {
        assert_eq!(report["name"], case["case"]);
        let (ours, torch) = (report["scores"].as_array().unwrap(), case["scores"].as_array().unwrap());
        assert_eq!(ours.len(), 4);
        for (a, b) in ours.iter().zip(torch) {
            assert!((f(a) - f(b)).abs() < 1e-12, "{}: {a} vs torch {b}", case["case"]);
        }
        assert_eq!(report["predicted"], case["predicted"]);
        correct += usize::from(report["predicted"] == case["label"]);
    }
    // The accuracy the tool reports: 38 of 40.
    assert_eq!(correct as f64 / 40.0, f(&expected["test_accuracy"]));
    assert_eq!(correct, 38);
}

#[test]
fn relevance_is_conserved_on_the_real_series() {
    // z+ with the biases' share: the score splits into the steps, the
    // initial state and what no positive contribution explains.
    for report in explain_all(&["--composite", "zplus", "--bias-factor", "1"]) {
        let steps: f64 = report["token_relevance"].as_array().unwrap().iter().map(f).sum();
        let total = steps + f(&report["initial_state_relevance"]) + f(&report["unexplained_relevance"]);
        let score = f(&report["scores"][report["target"].as_u64().unwrap() as usize]);
        assert!((total - score).abs() < 1e-12, "{}: {total} vs {score}", report["name"]);
    }
    // Epsilon 0 with the biases' share conserves too, but its relevance
    // runs to millions of opposite signs on this model: the sum is exact
    // to rounding of those magnitudes.
    for report in explain_all(&["--eps", "0", "--bias-factor", "1"]) {
        let relevance = report["token_relevance"].as_array().unwrap();
        let steps: f64 = relevance.iter().map(f).sum();
        let magnitude: f64 =
            relevance.iter().map(|r| f(r).abs()).sum::<f64>() + f(&report["initial_state_relevance"]).abs();
        let total = steps + f(&report["initial_state_relevance"]) + f(&report["unexplained_relevance"]);
        let score = f(&report["scores"][report["target"].as_u64().unwrap() as usize]);
        assert!(
            (total - score).abs() < 1e-12 * magnitude.max(1.0),
            "{}: {total} vs {score}",
            report["name"]
        );
    }
}

// ---------------------------------------------------------------------
// The deletion curves against their definition, on a hand-set model.

/// A hand-set LSTM (hidden size 1) on 2 channels with a head of 2
/// classes, in PyTorch's gate order (input, forget, cell, output).
const W_IH: [[f64; 2]; 4] = [[1.0, 0.5], [0.2, -0.3], [0.8, 1.2], [0.4, 0.1]];
const W_HH: [f64; 4] = [0.3, -0.2, 0.5, 0.1];
const B_IH: [f64; 4] = [0.1, 0.2, -0.1, 0.0];
const B_HH: [f64; 4] = [0.0, 0.1, 0.0, 0.2];
const HEAD_W: [f64; 2] = [-1.5, 1.5];
const HEAD_B: [f64; 2] = [0.2, -0.2];

/// The series of the hand-set case: (name, label, rows of [a, b]).
#[allow(clippy::type_complexity)]
const SERIES: [(&str, usize, [[f64; 2]; 4]); 5] = [
    ("s1", 1, [[0.9, 0.4], [-0.3, 0.8], [0.5, 0.6], [0.7, -0.2]]),
    ("s2", 0, [[-0.8, -0.5], [0.2, -0.9], [-0.4, 0.3], [-0.6, -0.7]]),
    ("s3", 1, [[0.1, 0.9], [0.6, 0.2], [-0.2, 0.7], [0.3, 0.5]]),
    ("s4", 0, [[0.4, 0.8], [0.9, 0.1], [0.2, 0.6], [0.5, 0.9]]),
    ("s5", 1, [[-0.7, -0.6], [-0.2, 0.1], [-0.9, -0.3], [-0.5, -0.8]]),
];

fn sigmoid(z: f64) -> f64 {
    1.0 / (1.0 + (-z).exp())
}

/// The class scores of `x` (rows are time steps), by the LSTM's equations.
fn scores(x: &[[f64; 2]]) -> [f64; 2] {
    let (mut h, mut c) = (0.0, 0.0);
    for row in x {
        let z: Vec<f64> = (0..4)
            .map(|g| W_IH[g][0] * row[0] + W_IH[g][1] * row[1] + W_HH[g] * h + B_IH[g] + B_HH[g])
            .collect();
        let (i, fg, cand, o) = (sigmoid(z[0]), sigmoid(z[1]), z[2].tanh(), sigmoid(z[3]));
        c = fg * c + i * cand;
        h = o * c.tanh();
    }
    [HEAD_W[0] * h + HEAD_B[0], HEAD_W[1] * h + HEAD_B[1]]
}

fn predicted(x: &[[f64; 2]]) -> usize {
    let s = scores(x);
    usize::from(s[1] > s[0])
}

/// `x` with time step `t` (`Some`) or channel `c` set to zero.
fn zeroed(x: &[[f64; 2]], step: Option<usize>, channel: Option<usize>) -> Vec<[f64; 2]> {
    x.iter()
        .enumerate()
        .map(|(t, row)| {
            let mut row = *row;
            if step == Some(t) {
                row = [0.0, 0.0];
            }
            if let Some(c) = channel {
                row[c] = 0.0;
            }
            row
        })
        .collect()
}

/// Positions sorted by relevance (most relevant first, or least), ties by position.
fn order_by(relevance: &[f64], most_first: bool) -> Vec<usize> {
    let mut order: Vec<usize> = (0..relevance.len()).collect();
    order.sort_by(|&a, &b| {
        let by = relevance[a].partial_cmp(&relevance[b]).unwrap();
        (if most_first { by.reverse() } else { by }).then(a.cmp(&b))
    });
    order
}

/// Whether `x` keeps `label` after deleting the first 0..=`k_max`
/// entries of `order` (time steps, or channels when `channels`).
fn kept(x: &[[f64; 2]], order: &[usize], k_max: usize, channels: bool, label: usize) -> Vec<bool> {
    (0..=k_max)
        .map(|d| {
            let mut v = x.to_vec();
            for &p in order.iter().take(d) {
                v = if channels {
                    zeroed(&v, None, Some(p))
                } else {
                    zeroed(&v, Some(p), None)
                };
            }
            predicted(&v) == label
        })
        .collect()
}

/// The accuracy curve over a set of records and its AOPC.
fn curve_of(records: &[Vec<bool>], k_max: usize, falling: bool) -> (Vec<f64>, f64) {
    let accuracy: Vec<f64> = (0..=k_max)
        .map(|d| {
            if records.is_empty() {
                0.0
            } else {
                records.iter().filter(|r| r[d]).count() as f64 / records.len() as f64
            }
        })
        .collect();
    let sign = if falling { 1.0 } else { -1.0 };
    let aopc = accuracy.iter().map(|a| sign * (accuracy[0] - a)).sum::<f64>() / accuracy.len() as f64;
    (accuracy, aopc)
}

/// Writes the hand-set model and its series into `dir`.
fn hand_set_case(dir: &Path) -> (PathBuf, PathBuf) {
    let model = dir.join("model");
    std::fs::create_dir_all(&model).unwrap();
    std::fs::write(
        model.join("config.json"),
        r#"{"format": "lrp-model", "version": 1, "layout": "pytorch", "weights": "model.safetensors",
            "encoder": {"cell": "lstm", "input_size": 2, "hidden_size": 1, "num_layers": 1, "bidirectional": false},
            "attention": null, "head": {"input": "last", "num_classes": 2, "bias": true}, "labels": ["low", "high"]}"#,
    )
    .unwrap();
    let tensors: [(&str, Vec<usize>, Vec<f64>); 6] = [
        ("encoder.weight_ih_l0", vec![4, 2], W_IH.concat()),
        ("encoder.weight_hh_l0", vec![4, 1], W_HH.to_vec()),
        ("encoder.bias_ih_l0", vec![4], B_IH.to_vec()),
        ("encoder.bias_hh_l0", vec![4], B_HH.to_vec()),
        ("head.weight", vec![2, 1], HEAD_W.to_vec()),
        ("head.bias", vec![2], HEAD_B.to_vec()),
    ];
    std::fs::write(model.join("model.safetensors"), safetensors(&tensors)).unwrap();
    // Labels as class names and as an index, both accepted.
    let mut csv = String::from("series,class,a,b\n");
    for (name, label, rows) in SERIES {
        let class = if name == "s3" {
            "1".to_string()
        } else {
            ["low", "high"][label].to_string()
        };
        for row in rows {
            csv.push_str(&format!("{name},{class},{},{}\n", row[0], row[1]));
        }
    }
    let path = dir.join("series.csv");
    std::fs::write(&path, csv).unwrap();
    (model, path)
}

/// A safetensors file of f64 tensors (an 8-byte header length, the JSON
/// header, the little-endian data).
fn safetensors(tensors: &[(&str, Vec<usize>, Vec<f64>)]) -> Vec<u8> {
    let (mut header, mut data) = (serde_json::Map::new(), Vec::new());
    for (name, shape, values) in tensors {
        let start = data.len();
        values.iter().for_each(|v| data.extend(v.to_le_bytes()));
        header.insert(
            name.to_string(),
            serde_json::json!({"dtype": "F64", "shape": shape, "data_offsets": [start, data.len()]}),
        );
    }
    let header = Value::Object(header).to_string();
    let mut bytes = (header.len() as u64).to_le_bytes().to_vec();
    bytes.extend(header.as_bytes());
    bytes.extend(data);
    bytes
}

/// `lrp perturb` on a CSV of the hand-set case's layout (series in
/// `series`, labels in `class`), with `extra` flags.
fn perturb_hand_set(model: &Path, csv: &Path, extra: &[&str]) -> (Option<i32>, String, String) {
    let mut flags = vec!["--series-column", "series", "--label-column", "class"];
    flags.extend(extra);
    lrp_on("perturb", model, csv, &flags)
}

#[test]
fn deletion_curves_of_time_steps_and_channels_follow_their_definition() {
    let dir = scratch("motions-hand-set");
    let (model, csv) = hand_set_case(&dir);
    // Six steps on series of four: the curves repeat their last value.
    let (k_steps, seed) = (6, 2017u64);
    let (code, stdout, stderr) = perturb_hand_set(
        &model,
        &csv,
        &["--methods", "occlusion,random", "--steps", "6", "--format", "json"],
    );
    assert_eq!(code, Some(0), "{stderr}");
    let report: Value = serde_json::from_str(stdout.trim()).unwrap();
    assert_eq!(report["channels"], serde_json::json!(["a", "b"]));
    assert_eq!(report["baseline"], 0.0);
    // Per method and axis, the records of correct and misclassified series.
    let mut records: std::collections::BTreeMap<(&str, bool, bool), Vec<Vec<bool>>> = Default::default();
    let mut n_correct = 0;
    for (k, (_, label, rows)) in SERIES.iter().enumerate() {
        let x = rows.as_slice();
        let correct = predicted(x) == *label;
        n_correct += usize::from(correct);
        let score = scores(x)[*label];
        // Occlusion: the drop of the true class's score with a step, or a
        // whole channel, set to zero.
        let by_step: Vec<f64> = (0..4)
            .map(|t| score - scores(&zeroed(x, Some(t), None))[*label])
            .collect();
        let by_channel: Vec<f64> = (0..2)
            .map(|c| score - scores(&zeroed(x, None, Some(c)))[*label])
            .collect();
        let random_seed = seed ^ (k as u64).wrapping_mul(0x9E37_79B9);
        for (method, steps, channels) in [
            ("occlusion", order_by(&by_step, correct), order_by(&by_channel, correct)),
            (
                "random",
                lrp_models::faithfulness::random_order(4, random_seed),
                lrp_models::faithfulness::random_order(2, random_seed),
            ),
        ] {
            let mut steps_kept = kept(x, &steps, 4, false, *label);
            steps_kept.resize(k_steps + 1, *steps_kept.last().unwrap());
            records.entry((method, false, correct)).or_default().push(steps_kept);
            records
                .entry((method, true, correct))
                .or_default()
                .push(kept(x, &channels, 2, true, *label));
        }
    }
    assert!(
        n_correct > 0 && n_correct < SERIES.len(),
        "both kinds: {n_correct} correct"
    );
    assert_eq!(report["correct"], n_correct);
    for method in ["occlusion", "random"] {
        for (axis, channels, k_max) in [("time_steps", false, k_steps), ("channels", true, 2)] {
            for (kind, correct) in [("correct", true), ("misclassified", false)] {
                let of = records.get(&(method, channels, correct)).cloned().unwrap_or_default();
                let (curve, aopc) = curve_of(&of, k_max, correct);
                let ours = &report["methods"][method][axis][kind];
                let got: Vec<f64> = ours["curve"].as_array().unwrap().iter().map(f).collect();
                assert_eq!(got, curve, "{method} {axis} {kind}");
                assert!(
                    (f(&ours["aopc"]) - aopc).abs() < 1e-12,
                    "{method} {axis} {kind}: {ours}"
                );
            }
        }
    }
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn on_the_real_series_relevance_orders_beat_the_random_control() {
    // Two cases of each class: test0, test1 (standing), test10, test11
    // (running), test20, test21 (walking), test30, test31 (badminton).
    let dir = scratch("motions-perturb");
    let text = std::fs::read_to_string(fixture("motions/test.csv")).unwrap();
    let wanted = [
        "test0", "test1", "test10", "test11", "test20", "test21", "test30", "test31",
    ];
    let few: Vec<&str> = text
        .lines()
        .enumerate()
        .filter(|(k, line)| *k == 0 || wanted.contains(&line.split(',').next().unwrap()))
        .map(|(_, line)| line)
        .collect();
    let csv = dir.join("few.csv");
    std::fs::write(&csv, few.join("\n") + "\n").unwrap();
    let model = fixture("motions/model");
    let svg = dir.join("curves.svg");
    let mut flags = vec![
        "--methods",
        "lrp,occlusion,random",
        "--steps",
        "10",
        "--plot",
        svg.to_str().unwrap(),
        "--format",
        "json",
    ];
    flags.extend(COLUMNS);
    let (code, stdout, stderr) = lrp_on("perturb", &model, &csv, &flags);
    assert_eq!(code, Some(0), "{stderr}");
    let report: Value = serde_json::from_str(stdout.trim()).unwrap();
    assert_eq!((report["n"].as_u64(), report["correct"].as_u64()), (Some(8), Some(8)));
    let aopc = |method: &str, axis: &str| f(&report["methods"][method][axis]["correct"]["aopc"]);
    for axis in ["time_steps", "channels"] {
        let curve = report["methods"]["random"][axis]["correct"]["curve"]
            .as_array()
            .unwrap();
        assert_eq!(curve.len(), if axis == "channels" { 7 } else { 11 });
        assert_eq!(f(&curve[0]), 1.0, "every chosen case starts correct");
    }
    // Deleting every channel leaves the zero series, which the model
    // calls standing: 2 of 8 keep their class, whatever the order.
    for method in ["lrp", "occlusion", "random"] {
        assert_eq!(f(&report["methods"][method]["channels"]["correct"]["curve"][6]), 0.25);
    }
    // Occlusion's order takes the class away sooner than a random one,
    // along both axes; LRP's (epsilon 0.001) along the channels.
    for (method, axis) in [
        ("occlusion", "time_steps"),
        ("occlusion", "channels"),
        ("lrp", "channels"),
    ] {
        assert!(aopc(method, axis) > aopc("random", axis), "{method} {axis}: {report}");
    }
    let drawn = std::fs::read_to_string(&svg).unwrap();
    assert!(drawn.contains("most relevant channels deleted first") && drawn.contains("occlusion"));
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn a_label_that_is_no_class_is_refused_in_one_line() {
    let dir = scratch("motions-bad-label");
    let (model, _) = hand_set_case(&dir);
    let csv = dir.join("bad.csv");
    std::fs::write(&csv, "series,class,a,b\nx,low,1,2\ny,medium,3,4\n").unwrap();
    assert_bad_input(
        "a label that is no class",
        perturb_hand_set(&model, &csv, &[]),
        "series y: the label \"medium\" is not a class of this model (one of low, high or an index 0..2)",
    );
    assert_bad_input(
        "an npy file",
        perturb_hand_set(&model, &fixture("golden/inputs/reference-0.npy"), &[]),
        "perturb --vectors reads a CSV file",
    );
    // --vectors needs the label column.
    let (code, _, stderr) = lrp_run(&[
        "perturb",
        "--model",
        model.to_str().unwrap(),
        "--vectors",
        csv.to_str().unwrap(),
    ]);
    assert_eq!(code, Some(2), "{stderr}");
    assert!(stderr.contains("--label-column"), "{stderr}");
    std::fs::remove_dir_all(&dir).unwrap();
}
