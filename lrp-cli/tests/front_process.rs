//! A model directory with a convolutional front end (issue 28, item 2), as
//! the real `lrp` process reads it: tests/fixtures/cnn-lstm, a PyTorch
//! CNN + LSTM saved by `lrp_rnn.Model.from_torch(...).save` (tools/cnn_lstm.py),
//! explains its CSV with PyTorch's logits and conserves relevance; model-info
//! lists the front; check compares it with PyTorch; a bad front and a series
//! too short for it are refused in one line.

mod common;

use std::path::{Path, PathBuf};

use common::{assert_fails, fixture, lrp_run_in as lrp_in, numbers, scratch};
use serde_json::Value;

fn model() -> PathBuf {
    fixture("cnn-lstm/model")
}

fn series() -> PathBuf {
    fixture("cnn-lstm/series.csv")
}

fn text(path: &Path) -> &str {
    path.to_str().unwrap()
}

/// The one JSON report of `lrp explain ARGS` on the fixture's model and CSV.
fn explain(dir: &Path, args: &[&str]) -> Value {
    let (model, series) = (model(), series());
    let mut all = vec!["explain", "--model", text(&model), "--vectors", text(&series)];
    all.extend_from_slice(args);
    let (code, stdout, stderr) = lrp_in(dir, &all);
    assert_eq!(code, Some(0), "{args:?}: {stderr}");
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(lines.len(), 1, "{stdout}");
    serde_json::from_str(lines[0]).unwrap()
}

#[test]
fn a_cnn_lstm_gives_pytorchs_logits_and_conserves_relevance() {
    let dir = scratch("front-parity");
    let expected: Value =
        serde_json::from_str(&std::fs::read_to_string(fixture("cnn-lstm/expected.json")).unwrap()).unwrap();
    let logits = numbers(&expected["scores"]);
    let report = explain(&dir, &["--format", "json", "--eps", "0", "--bias-factor", "1"]);
    let scores = numbers(&report["scores"]);
    assert_eq!(scores.len(), 2);
    for (ours, theirs) in scores.iter().zip(&logits) {
        assert!(
            (ours - theirs).abs() <= 1e-12 * theirs.abs().max(1.0),
            "{scores:?} vs {logits:?}"
        );
    }
    // Relevance on every one of the 48 steps of the CSV, the channels named by its header.
    let relevance = numbers(&report["token_relevance"]);
    assert_eq!(relevance.len(), 48);
    assert_eq!(
        report["channels"],
        serde_json::json!(["pressure", "flow", "temperature"])
    );
    let target = report["target"].as_u64().unwrap() as usize;
    assert_eq!(target, 1, "the series has a bump");
    let total: f64 = relevance.iter().sum::<f64>()
        + report["initial_state_relevance"].as_f64().unwrap()
        + report["unexplained_relevance"].as_f64().unwrap();
    assert!((total - scores[target]).abs() <= 1e-10, "{total} vs {}", scores[target]);
    // The bump (steps 25 to 32 of the pressure channel) holds the most relevance.
    let per_dimension = explain(&dir, &["--format", "json", "--per-dimension"]);
    let cells: Vec<Vec<f64>> = serde_json::from_value(per_dimension["input_relevance"].clone()).unwrap();
    let (top, _) = cells
        .iter()
        .enumerate()
        .flat_map(|(t, row)| row.iter().enumerate().map(move |(c, &r)| ((t, c), r)))
        .fold(
            ((0, 0), f64::MIN),
            |best, cell| if cell.1 > best.1 { cell } else { best },
        );
    assert!(top.1 == 0 && (25..=32).contains(&top.0), "{top:?}");
}

#[test]
fn the_html_view_and_the_plot_draw_each_channel_of_a_cnn_lstm() {
    let dir = scratch("front-html");
    let (code, _, stderr) = lrp_in(
        &dir,
        &[
            "explain",
            "--model",
            text(&model()),
            "--vectors",
            text(&series()),
            "--format",
            "html",
            "--out",
            "page.html",
            "--plot",
            "plot.svg",
        ],
    );
    assert_eq!(code, Some(0), "{stderr}");
    let page = std::fs::read_to_string(dir.join("page.html")).unwrap();
    let plot = std::fs::read_to_string(dir.join("plot.svg")).unwrap();
    for channel in ["pressure", "flow", "temperature"] {
        assert!(page.contains(channel) && plot.contains(channel), "{channel}");
    }
    assert!(page.contains("Predicted: <b>bump (1)</b>"), "{page}");
}

#[test]
fn model_info_lists_the_front_end() {
    let dir = scratch("front-info");
    let (code, stdout, stderr) = lrp_in(&dir, &["model-info", text(&model()), "--format", "text"]);
    assert_eq!(code, Some(0), "{stderr}");
    let lines: Vec<&str> = stdout.lines().skip(2).take(6).collect();
    assert_eq!(
        lines,
        [
            "input      vectors [T, E = 3]",
            "front      front.0 conv1d 3 -> 8 channels, kernel 5, stride 1, padding 2, dilation 1, with bias",
            "           front.1 relu",
            "           front.2 maxpool1d over time, kernel 2, stride 2, padding 0, dilation 1",
            "           front.3 conv1d 8 -> 6 channels, kernel 3, stride 1, padding 2, dilation 2, with bias",
            "           front.4 relu",
        ]
    );
    assert!(stdout.contains("check      ok\n"), "{stdout}");
    assert!(stdout.contains("  front.3.weight        [6, 8, 3]\n"), "{stdout}");
    let (code, json, _) = lrp_in(&dir, &["model-info", text(&model()), "--format", "json"]);
    assert_eq!(code, Some(0));
    let info: Value = serde_json::from_str(&json).unwrap();
    assert_eq!(info["config"]["front"][3]["dilation"], 2);
}

#[test]
fn check_compares_a_cnn_lstm_with_pytorch_on_the_csv() {
    let dir = scratch("front-check");
    let expected = fixture("cnn-lstm/expected.json");
    let (code, stdout, stderr) = lrp_in(
        &dir,
        &[
            "check",
            "--model",
            text(&model()),
            "--vectors",
            text(&series()),
            "--expect",
            text(&expected),
            "--format",
            "json",
        ],
    );
    assert_eq!(code, Some(0), "{stderr}");
    let report: Value = serde_json::from_str(stdout.trim()).unwrap();
    assert_eq!(report["ok"], true, "{report}");
    assert!(report["max_abs_diff"].as_f64().unwrap() <= 1e-12, "{report}");
}

/// A copy of the fixture's directory with `config.json` edited by `edit`.
fn edited_model(dir: &Path, edit: impl Fn(&mut Value)) -> String {
    let copy = dir.join("model");
    std::fs::create_dir_all(&copy).unwrap();
    std::fs::copy(model().join("model.safetensors"), copy.join("model.safetensors")).unwrap();
    let mut config: Value =
        serde_json::from_str(&std::fs::read_to_string(model().join("config.json")).unwrap()).unwrap();
    edit(&mut config);
    std::fs::write(copy.join("config.json"), config.to_string()).unwrap();
    copy.to_str().unwrap().to_string()
}

/// A change to a config.json.
type ConfigEdit<'a> = &'a dyn Fn(&mut Value);

#[test]
fn a_bad_front_is_refused_naming_the_layer_and_the_key() {
    let dir = scratch("front-bad");
    let series = series();
    let cases: [(ConfigEdit, &str); 4] = [
        (
            &|c| c["front"][3]["kernel_size"] = 0.into(),
            "config: front[3].kernel_size: conv1d: must be at least 1",
        ),
        (
            &|c| c["front"][2]["stride"] = 100_000.into(),
            "config: front[2].stride: maxpool1d: 100000 is larger than the supported 65536",
        ),
        (
            &|c| c["front"][3]["in_channels"] = 7.into(),
            "config: front[3].in_channels: conv1d: 7, but the layers before it write 8 channels",
        ),
        (
            &|c| c["front"][1]["kernel_size"] = 3.into(),
            "front[1]: unknown field `kernel_size`",
        ),
    ];
    for (edit, phrase) in cases {
        let model = edited_model(&dir, edit);
        assert_fails(
            &dir,
            &["explain", "--model", &model, "--vectors", text(&series)],
            phrase,
        );
    }
}

#[test]
fn a_series_too_short_for_the_front_is_refused_in_one_line() {
    let dir = scratch("front-short");
    // One step: the pooling's window of 2 finds no pair.
    std::fs::write(dir.join("short.csv"), "pressure,flow,temperature\n0.1,0.2,0.3\n").unwrap();
    assert_fails(
        &dir,
        &["explain", "--model", text(&model()), "--vectors", "short.csv"],
        "a sequence of 1 positions is too short for stage 3 of 8 (the max-pooling over time)",
    );
}
