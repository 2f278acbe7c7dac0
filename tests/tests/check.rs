//! `lrp import` and `lrp check`: ONNX graphs exported by `torch.onnx.export`
//! (tests/fixtures/onnx, made by tools/export_onnx.py) import to models
//! that compute PyTorch's and onnxruntime's scores; and `check` names the
//! mistake made deliberately on a fixture model: a permuted gate order,
//! one bias, transposed weights, swapped directions, a missing forget bias,
//! the wrong gate activation, the wrong GRU reset convention, the head
//! reading `last` for `context`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use lrp_tests::{fixture, lrp, numbers, scratch_dir};
use serde_json::Value;

fn path_str(path: &Path) -> &str {
    path.to_str().unwrap()
}

/// The scores of every line of a JSON Lines file of `{"scores": [...]}`.
fn scores_file(path: &Path) -> Vec<Vec<f64>> {
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .map(|l| numbers(&serde_json::from_str::<Value>(l).unwrap()["scores"]))
        .collect()
}

fn max_diff(got: &[Vec<f64>], want: &[Vec<f64>]) -> f64 {
    assert_eq!(got.len(), want.len());
    got.iter()
        .zip(want)
        .flat_map(|(g, w)| {
            assert_eq!(g.len(), w.len());
            g.iter().zip(w).map(|(a, b)| (a - b).abs())
        })
        .fold(0.0, f64::max)
}

/// Imports `fixtures/onnx/NAME/model.onnx` (with its vocabulary, if any)
/// into a scratch directory.
fn import(name: &str) -> lrp_tests::ScratchDir {
    let source = fixture("onnx").join(name);
    let out = scratch_dir(&format!("import-{name}"));
    let vocab = source.join("vocab.txt");
    let mut args = vec![
        "import".to_string(),
        path_str(&source.join("model.onnx")).to_string(),
        "--out".to_string(),
        path_str(&out).to_string(),
    ];
    if vocab.is_file() {
        args.extend(["--vocab".to_string(), path_str(&vocab).to_string()]);
    }
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let report = lrp(&args).json();
    assert_eq!(report["config"]["layout"], "pytorch");
    out
}

#[test]
fn torch_onnx_exports_import_and_compute_pytorchs_and_onnxruntimes_scores() {
    // name, tolerance: float32 weights, or float64 end to end.
    let models = [
        ("lstm-uni", 1e-5),
        ("gru-uni", 1e-5),
        ("lstm-bi", 1e-5),
        ("gru-bi-2l", 1e-5),
        ("lstm-bi-legacy", 1e-5),
        ("lstm-bi-2l-f64", 1e-10),
        ("gru-bi-f64", 1e-10),
    ];
    for (name, tolerance) in models {
        let dir = import(name);
        let source = fixture("onnx").join(name);
        let inputs = source.join("inputs.npz");
        let lines = lrp(&["explain", "--model", path_str(&dir), "--vectors", path_str(&inputs)]).json_lines();
        let got: Vec<Vec<f64>> = lines.iter().map(|l| numbers(&l["scores"])).collect();
        let mut references = vec!["expected.jsonl"];
        if source.join("expected-onnxruntime.jsonl").is_file() {
            references.push("expected-onnxruntime.jsonl");
        }
        for reference in references {
            let want = scores_file(&source.join(reference));
            let diff = max_diff(&got, &want);
            assert!(diff <= tolerance, "{name} against {reference}: {diff:e}");
            let check = lrp(&[
                "check",
                "--model",
                path_str(&dir),
                "--vectors",
                path_str(&inputs),
                "--expect",
                path_str(&source.join(reference)),
                "--tolerance",
                &tolerance.to_string(),
            ])
            .json();
            assert_eq!(check["ok"], true, "{name}: {check}");
            assert!(check["max_abs_diff"].as_f64().unwrap() <= tolerance);
        }
        // The weights keep the graph's element type.
        let config: Value = serde_json::from_str(&std::fs::read_to_string(dir.join("config.json")).unwrap()).unwrap();
        assert_eq!(config["head"]["input"], "last");
        std::fs::remove_dir_all(dir).unwrap();
    }
    // All four float32 fixtures and both float64 ones are there.
    assert_eq!(scores_file(&fixture("onnx/lstm-bi-2l-f64/expected.jsonl")).len(), 3);
}

#[test]
fn an_exported_text_model_imports_with_its_vocabulary_and_reads_text() {
    let dir = import("emb-lstm-bi-2l");
    let source = fixture("onnx/emb-lstm-bi-2l");
    let texts = std::fs::read_to_string(source.join("texts.txt")).unwrap();
    for reference in ["expected.jsonl", "expected-onnxruntime.jsonl"] {
        let want = scores_file(&source.join(reference));
        for (text, scores) in texts.lines().zip(&want) {
            let got = lrp(&["explain", "--model", path_str(&dir), "--text", text]).json();
            let diff = max_diff(&[numbers(&got["scores"])], std::slice::from_ref(scores));
            assert!(diff <= 1e-5, "{text:?} against {reference}: {diff:e}");
        }
    }
    let config: Value = serde_json::from_str(&std::fs::read_to_string(dir.join("config.json")).unwrap()).unwrap();
    assert_eq!(
        (
            config["embedding"].as_bool(),
            config["vocab_size"].as_u64(),
            config["vocab"].as_str()
        ),
        (Some(true), Some(20), Some("vocab.txt"))
    );
    assert_eq!(config["encoder"]["num_layers"], 2);
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn import_refuses_other_graphs_in_one_line_naming_the_node() {
    let out = scratch_dir("import-refused");
    let run = lrp(&[
        "import",
        path_str(&fixture("onnx/refused-context-attention/model.onnx")),
        "--out",
        path_str(&out),
    ]);
    assert_eq!(run.code, 1);
    assert!(run.stdout.is_empty());
    assert_eq!(run.stderr.lines().count(), 1, "{}", run.stderr);
    assert!(
        run.stderr.contains("unsupported node Tanh \"node_tanh\""),
        "{}",
        run.stderr
    );
    assert!(!out.join("config.json").exists(), "nothing is written");
    // Not ONNX at all; more nodes than allowed.
    let run = lrp(&[
        "import",
        path_str(&fixture("onnx/lstm-bi/inputs.npz")),
        "--out",
        path_str(&out),
    ]);
    assert_eq!(run.code, 1);
    assert!(run.stderr.contains("not an ONNX model"), "{}", run.stderr);
    let run = lrp(&[
        "import",
        path_str(&fixture("onnx/lstm-bi/model.onnx")),
        "--out",
        path_str(&out),
        "--max-graph-nodes",
        "5",
    ]);
    assert_eq!(run.code, 1);
    assert!(
        run.stderr
            .contains("more than the 5 nodes in one graph allowed (raise the limit with --max-graph-nodes)"),
        "{}",
        run.stderr
    );
    std::fs::remove_dir_all(out).unwrap();
}

/// Tensors of a safetensors file, by name: shape and values.
type Weights = BTreeMap<String, (Vec<usize>, Vec<f64>)>;

fn read_weights(path: &Path) -> Weights {
    let bytes = std::fs::read(path).unwrap();
    let file = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    file.iter()
        .map(|(name, view)| {
            let values = match view.dtype() {
                safetensors::Dtype::F64 => view
                    .data()
                    .chunks_exact(8)
                    .map(|b| f64::from_le_bytes(b.try_into().unwrap()))
                    .collect(),
                _ => view
                    .data()
                    .chunks_exact(4)
                    .map(|b| f64::from(f32::from_le_bytes(b.try_into().unwrap())))
                    .collect(),
            };
            (name.to_string(), (view.shape().to_vec(), values))
        })
        .collect()
}

fn write_weights(path: &Path, weights: &Weights) {
    let bytes: Vec<(String, Vec<usize>, Vec<u8>)> = weights
        .iter()
        .map(|(n, (s, v))| (n.clone(), s.clone(), v.iter().flat_map(|x| x.to_le_bytes()).collect()))
        .collect();
    let views: Vec<(String, safetensors::tensor::TensorView<'_>)> = bytes
        .iter()
        .map(|(n, s, b)| {
            (
                n.clone(),
                safetensors::tensor::TensorView::new(safetensors::Dtype::F64, s.clone(), b).unwrap(),
            )
        })
        .collect();
    std::fs::write(path, safetensors::tensor::serialize(views, None).unwrap()).unwrap();
}

/// A copy of the parity fixture `model` in a scratch directory, its
/// weights and config changed by `weights` and `config`.
fn changed_copy(
    model: &str,
    label: &str,
    weights: impl Fn(&mut Weights),
    config: impl Fn(&mut Value),
) -> lrp_tests::ScratchDir {
    let source = fixture("parity").join(model);
    let dir = scratch_dir(&format!("check-{label}"));
    let mut w = read_weights(&source.join("model.safetensors"));
    weights(&mut w);
    write_weights(&dir.join("model.safetensors"), &w);
    let mut c: Value = serde_json::from_str(&std::fs::read_to_string(source.join("config.json")).unwrap()).unwrap();
    config(&mut c);
    std::fs::write(dir.join("config.json"), c.to_string()).unwrap();
    dir
}

/// The parity case of `model` with 23 positions: its input and PyTorch's scores.
fn parity_case(model: &str) -> (PathBuf, Vec<f64>) {
    let cases: Value = serde_json::from_str(&std::fs::read_to_string(fixture("parity/cases.json")).unwrap()).unwrap();
    let case = cases["cases"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == format!("{model}-T23"))
        .unwrap();
    (
        fixture("parity").join(case["input"].as_str().unwrap()),
        numbers(&case["scores"]),
    )
}

/// `lrp check` of `dir` on `input` against `scores`.
fn check(dir: &Path, input: &Path, scores: &[f64]) -> Value {
    static CALLS: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let call = CALLS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let scratch = scratch_dir(&format!("check-expect-{call}"));
    let expect = scratch.join("expect.json");
    std::fs::write(&expect, serde_json::json!({ "scores": scores }).to_string()).unwrap();
    let report = lrp(&[
        "check",
        "--model",
        path_str(dir),
        "--vectors",
        path_str(input),
        "--expect",
        path_str(&expect),
    ])
    .json();
    std::fs::remove_dir_all(scratch).unwrap();
    report
}

/// The scores `lrp explain` computes with `dir` on `input`.
fn scores_of(dir: &Path, input: &Path) -> Vec<f64> {
    numbers(&lrp(&["explain", "--model", path_str(dir), "--vectors", path_str(input)]).json()["scores"])
}

/// Gate blocks of every encoder tensor rearranged: block `j` of the result
/// is block `from[j]` of the file.
fn permute_gates(w: &mut Weights, from: &[usize]) {
    for (name, (shape, values)) in w.iter_mut() {
        if name.starts_with("encoder.") {
            let block = values.len() / from.len();
            assert_eq!(shape[0] % from.len(), 0);
            *values = from
                .iter()
                .flat_map(|&k| values[k * block..(k + 1) * block].to_vec())
                .collect();
        }
    }
}

/// Asserts a mismatch diagnosed as `name`, with `fix` in the fix, matching
/// to within 1e-9; returns the report.
fn assert_diagnosis(report: &Value, name: &str, fix: &str) {
    assert_eq!(report["ok"], false, "{report}");
    let diagnosis = report["diagnosis"].as_str().unwrap();
    assert!(diagnosis.starts_with("scores match ("), "{diagnosis}");
    assert!(diagnosis.contains(name), "{diagnosis}");
    assert!(report["fix"].as_str().unwrap().contains(fix), "{report}");
    let best = &report["candidates"][0];
    assert!(best["name"].as_str().unwrap().contains(name), "{best}");
    assert!(best["max_abs_diff"].as_f64().unwrap() < 1e-9, "{best}");
    // The mistake moved the scores by far more than that.
    assert!(report["max_abs_diff"].as_f64().unwrap() > 1e-3, "{report}");
}

#[test]
fn check_passes_a_correct_model_and_tries_nothing() {
    let (input, scores) = parity_case("lstm-last-bi-2l");
    let report = check(&fixture("parity/lstm-last-bi-2l"), &input, &scores);
    assert_eq!(report["ok"], true, "{report}");
    assert!(report["max_abs_diff"].as_f64().unwrap() < 1e-12);
    assert_eq!(report["candidates"].as_array().unwrap().len(), 0);
    assert!(report["diagnosis"].as_str().unwrap().starts_with("scores match ("));
}

#[test]
fn check_names_a_permuted_gate_order_and_the_framework_it_comes_from() {
    // LSTM blocks written in ONNX order i, o, f, c (file block k holds
    // PyTorch block [0, 3, 1, 2][k]).
    let (input, scores) = parity_case("lstm-last-bi-2l");
    let dir = changed_copy(
        "lstm-last-bi-2l",
        "onnx-order",
        |w| permute_gates(w, &[0, 3, 1, 2]),
        |_| {},
    );
    let report = check(&dir, &input, &scores);
    assert_diagnosis(&report, "ONNX order i, o, f, c", "reorder the blocks to i, f, g, o");
    // 23 other orders, and the other mistakes: none fits but the one.
    let fitting = report["candidates"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["max_abs_diff"].as_f64().is_some_and(|d| d < 1e-6))
        .count();
    assert_eq!(fitting, 1, "{report}");
    assert!(report["candidates"].as_array().unwrap().len() >= 23 + 5);
    std::fs::remove_dir_all(dir).unwrap();

    // A GRU in Keras' order z, r, h.
    let (input, scores) = parity_case("gru-last-bi");
    let dir = changed_copy("gru-last-bi", "keras-order", |w| permute_gates(w, &[1, 0, 2]), |_| {});
    let report = check(&dir, &input, &scores);
    assert_diagnosis(&report, "Keras and ONNX order z, r, h", "reorder the blocks to r, z, n");
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn check_names_a_bias_counted_twice() {
    // One bias (b_ih + b_hh) written as both biases.
    let (input, scores) = parity_case("lstm-last-bi-2l");
    let dir = changed_copy(
        "lstm-last-bi-2l",
        "bias-twice",
        |w| {
            let names: Vec<String> = w.keys().filter(|n| n.contains("bias_ih")).cloned().collect();
            for ih in names {
                let hh = ih.replace("bias_ih", "bias_hh");
                let sum: Vec<f64> = w[&ih].1.iter().zip(&w[&hh].1).map(|(a, b)| a + b).collect();
                w.get_mut(&ih).unwrap().1 = sum.clone();
                w.get_mut(&hh).unwrap().1 = sum;
            }
        },
        |_| {},
    );
    let report = check(&dir, &input, &scores);
    assert_diagnosis(&report, "the recurrent bias is dropped", "one bias per gate");
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn check_undoes_matrices_stored_transposed_and_names_values_in_transposed_order() {
    let (input, scores) = parity_case("lstm-last-bi-2l");
    let transposed = |shape: &[usize], values: &[f64]| -> Vec<f64> {
        let (rows, cols) = (shape[0], shape[1]);
        let mut out = vec![0.0; values.len()];
        for r in 0..rows {
            for c in 0..cols {
                out[c * rows + r] = values[r * cols + c];
            }
        }
        out
    };
    // Stored as [in, 4H] (a Keras kernel written as it is): the model
    // does not even load; check transposes it and says so.
    let dir = changed_copy(
        "lstm-last-bi-2l",
        "stored-transposed",
        |w| {
            for (name, (shape, values)) in w.iter_mut() {
                if name.contains("weight_") {
                    *values = transposed(shape, values);
                    shape.reverse();
                }
            }
        },
        |_| {},
    );
    let run = lrp(&["explain", "--model", path_str(&dir), "--vectors", path_str(&input)]);
    assert_eq!(run.code, 1, "the transposed file does not load as it is");
    let report = check(&dir, &input, &scores);
    assert_eq!(report["ok"], false);
    assert!(report["max_abs_diff"].as_f64().unwrap() < 1e-12, "{report}");
    let diagnosis = report["diagnosis"].as_str().unwrap();
    assert!(
        diagnosis.contains("once the matrices stored transposed are transposed (encoder.weight_ih_l0"),
        "{diagnosis}"
    );
    assert!(report["fix"].as_str().unwrap().starts_with("rewrite the weights file"));
    std::fs::remove_dir_all(dir).unwrap();

    // The transpose's values in the original shape (a reshape where a
    // transpose was meant): loads, runs, and is wrong.
    let dir = changed_copy(
        "lstm-last-bi-2l",
        "reshaped",
        |w| {
            for (name, (shape, values)) in w.iter_mut() {
                if name.contains("weight_") {
                    *values = transposed(shape, values);
                }
            }
        },
        |_| {},
    );
    let report = check(&dir, &input, &scores);
    assert_diagnosis(
        &report,
        "the recurrent layers' matrices are transposed",
        "transpose them",
    );
    std::fs::remove_dir_all(dir).unwrap();
}

/// Each gate's `H x H` block of every `weight_hh` stored transposed (a
/// Keras `(H, G H)` recurrent kernel split into gate blocks without
/// transposing each): check names the per-block transpose, not a whole-
/// matrix one or a gate order. LSTM (two layers, two directions), GRU, and
/// the GRU that resets before its product (whose truth is lrp's own scores
/// of the fixture with `gru_reset = before`).
#[test]
fn check_names_gate_blocks_stored_transposed() {
    let transpose_each_block = |w: &mut Weights| {
        for (name, (shape, values)) in w.iter_mut() {
            if name.contains("weight_hh") {
                let h = shape[1];
                let original = values.clone();
                for k in 0..shape[0] / h {
                    for r in 0..h {
                        for c in 0..h {
                            values[(k * h + r) * h + c] = original[(k * h + c) * h + r];
                        }
                    }
                }
            }
        }
    };
    let name = "each gate block of the recurrent matrices is transposed";
    let fix = "transpose every gate block, not the whole matrix";
    for model in ["lstm-last-bi-2l", "gru-last-bi"] {
        let (input, scores) = parity_case(model);
        let dir = changed_copy(model, &format!("blocks-{model}"), transpose_each_block, |_| {});
        assert_diagnosis(&check(&dir, &input, &scores), name, fix);
        std::fs::remove_dir_all(dir).unwrap();
    }
    let (input, _) = parity_case("gru-last-bi");
    let before = |c: &mut Value| c["encoder"]["gru_reset"] = "before".into();
    let truth = changed_copy("gru-last-bi", "blocks-before-truth", |_| {}, before);
    let expected = scores_of(&truth, &input);
    let dir = changed_copy("gru-last-bi", "blocks-before", transpose_each_block, before);
    assert_diagnosis(&check(&dir, &input, &expected), name, fix);
    std::fs::remove_dir_all(dir).unwrap();
    std::fs::remove_dir_all(truth).unwrap();
}

#[test]
fn check_names_swapped_directions() {
    let (input, scores) = parity_case("gru-last-bi");
    let dir = changed_copy(
        "gru-last-bi",
        "swapped",
        |w| {
            let forward: Vec<String> = w
                .keys()
                .filter(|n| n.starts_with("encoder.") && !n.ends_with("_reverse"))
                .cloned()
                .collect();
            for name in forward {
                let reverse = format!("{name}_reverse");
                let f = w.remove(&name).unwrap();
                let r = w.remove(&reverse).unwrap();
                w.insert(name, r);
                w.insert(reverse, f);
            }
        },
        |_| {},
    );
    let report = check(&dir, &input, &scores);
    assert_diagnosis(&report, "the directions are swapped", "swap them");
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn check_names_a_missing_forget_bias_the_gate_activation_and_the_gru_reset() {
    // The truth has the option; the directory checked does not (the
    // fixture as it is): the expected scores are the truth's.
    let cases = [
        (
            "lstm-last-bi-2l",
            "/encoder/forget_bias",
            serde_json::json!(1.0),
            "a forget bias of 1 is added",
            "set encoder.forget_bias to 1",
        ),
        (
            "lstm-last-bi-2l",
            "/encoder/recurrent_activation",
            serde_json::json!("hard_sigmoid_keras2"),
            "Keras 2's hard sigmoid",
            "set encoder.recurrent_activation to \"hard_sigmoid_keras2\"",
        ),
        (
            "gru-last-bi",
            "/encoder/recurrent_activation",
            serde_json::json!("hard_sigmoid_keras3"),
            "Keras 3's hard sigmoid",
            "set encoder.recurrent_activation to \"hard_sigmoid_keras3\"",
        ),
        (
            "gru-last-bi",
            "/encoder/gru_reset",
            serde_json::json!("before"),
            "the reset gate multiplies h before the recurrent product",
            "set encoder.gru_reset to \"before\"",
        ),
    ];
    for (model, pointer, value, name, fix) in cases {
        let (input, _) = parity_case(model);
        let (parent, key) = pointer.rsplit_once('/').unwrap();
        let truth = changed_copy(
            model,
            &format!("truth-{key}"),
            |_| {},
            |c| {
                c.pointer_mut(parent)
                    .unwrap()
                    .as_object_mut()
                    .unwrap()
                    .insert(key.to_string(), value.clone());
            },
        );
        let expected = scores_of(&truth, &input);
        let report = check(&fixture("parity").join(model), &input, &expected);
        assert_diagnosis(&report, name, fix);
        std::fs::remove_dir_all(truth).unwrap();
    }
}

#[test]
fn check_names_a_head_reading_the_final_state_for_the_context() {
    let (input, scores) = parity_case("lstm-bi-context-context");
    let dir = changed_copy(
        "lstm-bi-context-context",
        "head-last",
        |_| {},
        |c| c["head"]["input"] = "last".into(),
    );
    let report = check(&dir, &input, &scores);
    assert_diagnosis(&report, "the head reads context", "set head.input to \"context\"");
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn check_reports_what_it_cannot_explain_and_refuses_bad_input_in_one_line() {
    let (input, scores) = parity_case("lstm-last-bi-2l");
    let far: Vec<f64> = scores.iter().map(|s| s + 10.0).collect();
    let report = check(&fixture("parity/lstm-last-bi-2l"), &input, &far);
    assert_eq!(report["ok"], false);
    let diagnosis = report["diagnosis"].as_str().unwrap();
    assert!(
        diagnosis.contains("none of the") && diagnosis.contains("the closest:"),
        "{diagnosis}"
    );
    assert!(report["fix"].is_null());

    let dir = scratch_dir("check-bad");
    let expect = dir.join("expect.json");
    for (content, message) in [
        ("{\"scores\": [1, 2, 3]}", "have 3 values, but the model has 2 classes"),
        (
            "{\"scores\": [1, 2]}\n{\"scores\": [1, 2]}\n",
            "holds 2 score lists for 1 inputs",
        ),
        ("not json", "line 1: expected {\"scores\": [numbers]}"),
    ] {
        std::fs::write(&expect, content).unwrap();
        let run = lrp(&[
            "check",
            "--model",
            path_str(&fixture("parity/lstm-last-bi-2l")),
            "--vectors",
            path_str(&input),
            "--expect",
            path_str(&expect),
        ]);
        assert_eq!(run.code, 1, "{content}");
        assert!(run.stdout.is_empty());
        assert_eq!(run.stderr.lines().count(), 1);
        assert!(run.stderr.contains(message), "{content}: {}", run.stderr);
    }
    // Text view.
    std::fs::write(&expect, serde_json::json!({ "scores": scores }).to_string()).unwrap();
    let run = lrp(&[
        "check",
        "--model",
        path_str(&fixture("parity/lstm-last-bi-2l")),
        "--vectors",
        path_str(&input),
        "--expect",
        path_str(&expect),
        "--format",
        "text",
    ]);
    assert_eq!(run.code, 0);
    assert!(
        run.stdout
            .starts_with("ok         yes\ncompared   1 input, largest difference"),
        "{}",
        run.stdout
    );
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn check_tries_gate_orders_in_the_keras_layout_too() {
    // gru-last-bi written in layout keras: kernels [in, 3H], a [2, 3H]
    // bias (reset after), gates z, r, h; the head a Dense kernel [F, C].
    let (input, scores) = parity_case("gru-last-bi");
    let to_keras = |w: &mut Weights, order: &[usize]| {
        let pytorch = std::mem::take(w);
        let h = pytorch["encoder.weight_hh_l0"].0[1];
        let transpose = |(shape, values): &(Vec<usize>, Vec<f64>)| -> (Vec<usize>, Vec<f64>) {
            let (rows, cols) = (shape[0], shape[1]);
            let mut out = vec![0.0; values.len()];
            for r in 0..rows {
                for c in 0..cols {
                    out[c * rows + r] = values[r * cols + c];
                }
            }
            (vec![cols, rows], out)
        };
        // Columns (the last axis) in blocks of H, taken in `order`.
        let columns = |(shape, values): (Vec<usize>, Vec<f64>)| -> (Vec<usize>, Vec<f64>) {
            let width = *shape.last().unwrap();
            let values = values
                .chunks(width)
                .flat_map(|row| order.iter().flat_map(move |&k| row[k * h..(k + 1) * h].to_vec()))
                .collect();
            (shape, values)
        };
        for (suffix, side) in [("", "forward"), ("_reverse", "backward")] {
            let prefix = format!("encoder.l0.{side}");
            let get = |n: &str| pytorch[&format!("encoder.{n}_l0{suffix}")].clone();
            w.insert(format!("{prefix}.kernel"), columns(transpose(&get("weight_ih"))));
            w.insert(
                format!("{prefix}.recurrent_kernel"),
                columns(transpose(&get("weight_hh"))),
            );
            let mut bias = get("bias_ih").1;
            bias.extend(get("bias_hh").1);
            w.insert(format!("{prefix}.bias"), columns((vec![2, 3 * h], bias)));
        }
        w.insert("head.kernel".into(), transpose(&pytorch["head.weight"]));
        w.insert("head.bias".into(), pytorch["head.bias"].clone());
    };
    let keras_config = |c: &mut Value| c["layout"] = "keras".into();
    let right = changed_copy("gru-last-bi", "keras-right", |w| to_keras(w, &[1, 0, 2]), keras_config);
    assert_eq!(check(&right, &input, &scores)["ok"], true);
    // PyTorch's order r, z, n left in a keras file.
    let wrong = changed_copy("gru-last-bi", "keras-wrong", |w| to_keras(w, &[0, 1, 2]), keras_config);
    let report = check(&wrong, &input, &scores);
    assert_diagnosis(
        &report,
        "PyTorch order r, z, n",
        "layout keras reads z, r, n: reorder the blocks to z, r, n, or write the tensors in layout pytorch",
    );
    for dir in [right, wrong] {
        std::fs::remove_dir_all(dir).unwrap();
    }
}
