//! Bad input, numerical edge cases and untrusted model files (issue 7): one
//! case per class, each checked through the API and through the CLI. Every
//! case must fail with a message naming the problem (or, for the numerical
//! cases, succeed with finite numbers), never panic and never silently
//! explain something else.

use std::path::Path;

use lrp_io::load_model;
use lrp_layers::Composite;
use lrp_tests::{architecture, fixture, lrp, model_from, random_input, random_tensors, scratch_dir};
use nalgebra::DMatrix;
use safetensors::tensor::{Dtype, TensorView};
use serde_json::{json, Value};

/// Copies a golden model directory into a scratch directory.
fn copy_model(golden: &str, test: &str) -> lrp_tests::ScratchDir {
    let dir = scratch_dir(test);
    for entry in std::fs::read_dir(fixture("golden/models").join(golden)).unwrap() {
        let entry = entry.unwrap();
        std::fs::copy(entry.path(), dir.join(entry.file_name())).unwrap();
    }
    dir
}

fn edit_config(dir: &Path, edit: impl FnOnce(&mut Value)) {
    let path = dir.join("config.json");
    let mut config: Value = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    edit(&mut config);
    std::fs::write(path, serde_json::to_string_pretty(&config).unwrap()).unwrap();
}

/// Rewrites model.safetensors after editing its (name, dtype, shape, bytes) list.
fn edit_weights(dir: &Path, edit: impl FnOnce(&mut Vec<(String, Dtype, Vec<usize>, Vec<u8>)>)) {
    let path = dir.join("model.safetensors");
    let bytes = std::fs::read(&path).unwrap();
    let file = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    let mut tensors: Vec<(String, Dtype, Vec<usize>, Vec<u8>)> = file
        .iter()
        .map(|(n, v)| (n.to_string(), v.dtype(), v.shape().to_vec(), v.data().to_vec()))
        .collect();
    edit(&mut tensors);
    let views: Vec<(String, TensorView<'_>)> = tensors
        .iter()
        .map(|(n, d, s, b)| (n.clone(), TensorView::new(*d, s.clone(), b).unwrap()))
        .collect();
    std::fs::write(path, safetensors::serialize(views, None).unwrap()).unwrap();
}

/// The API error and the CLI's one line both name the problem.
fn assert_rejected(dir: &Path, phrase: &str) {
    let err = load_model::<f64>(dir).expect_err(phrase).to_string();
    assert!(err.contains(phrase), "API: {err:?} should mention {phrase:?}");
    let vectors = fixture("golden/inputs/bilstm-context-1.npy");
    let run = lrp(&[
        "explain",
        "--model",
        dir.to_str().unwrap(),
        "--vectors",
        vectors.to_str().unwrap(),
    ]);
    assert_eq!(run.code, 1, "{phrase}: {}", run.stderr);
    assert!(run.stdout.is_empty());
    assert_eq!(run.stderr.lines().count(), 1, "{}", run.stderr);
    assert!(
        run.stderr.contains(phrase),
        "CLI: {:?} should mention {phrase:?}",
        run.stderr
    );
}

#[test]
fn model_files_are_validated_before_any_computation() {
    type Case = (&'static str, Box<dyn Fn(&Path)>, &'static str);
    let cases: Vec<Case> = vec![
        (
            "not-json",
            Box::new(|d| std::fs::write(d.join("config.json"), "{\"format\": ").unwrap()),
            "EOF while parsing",
        ),
        (
            "typo-key",
            Box::new(|d| edit_config(d, |c| c["encoder"]["hiden_size"] = json!(6))),
            "unknown field `hiden_size`",
        ),
        (
            "zero-layers",
            Box::new(|d| edit_config(d, |c| c["encoder"]["num_layers"] = json!(0))),
            "encoder.num_layers: must be at least 1",
        ),
        (
            "bad-kind",
            Box::new(|d| edit_config(d, |c| c["attention"]["kind"] = json!("cosine"))),
            "unknown variant `cosine`",
        ),
        (
            "escape",
            Box::new(|d| edit_config(d, |c| c["weights"] = json!("../model.safetensors"))),
            "weights = \"../model.safetensors\"",
        ),
        (
            "absolute",
            Box::new(|d| edit_config(d, |c| c["weights"] = json!("/etc/passwd"))),
            "inside the model directory",
        ),
        (
            "missing-file",
            Box::new(|d| std::fs::remove_file(d.join("model.safetensors")).unwrap()),
            "cannot read",
        ),
        (
            "missing-tensor",
            Box::new(|d| edit_weights(d, |t| t.retain(|(n, ..)| n != "head.bias" && n != "attention.query"))),
            "missing tensors: attention.query, head.bias",
        ),
        (
            "unexpected-tensor",
            Box::new(|d| {
                edit_weights(d, |t| {
                    t.push(("decoder.weight".into(), Dtype::F64, vec![1], vec![0; 8]))
                })
            }),
            "unexpected tensors (the config describes another model?): decoder.weight",
        ),
        (
            "wrong-shape",
            Box::new(|d| {
                edit_weights(d, |t| {
                    let head = t.iter_mut().find(|(n, ..)| n == "head.weight").unwrap();
                    head.2.reverse();
                })
            }),
            "tensor head.weight: expected shape [5, 12], found [12, 5]",
        ),
        (
            "int-tensor",
            Box::new(|d| {
                edit_weights(d, |t| {
                    let b = t.iter_mut().find(|(n, ..)| n == "head.bias").unwrap();
                    b.1 = Dtype::I64;
                })
            }),
            "head.bias has element type I64",
        ),
        (
            "nan-weight",
            Box::new(|d| {
                edit_weights(d, |t| {
                    let b = t.iter_mut().find(|(n, ..)| n == "head.bias").unwrap();
                    b.3[16..24].copy_from_slice(&f64::NAN.to_le_bytes());
                })
            }),
            "tensor head.bias holds a non-finite value (NaN) at flat index 2",
        ),
        (
            "truncated",
            Box::new(|d| {
                let p = d.join("model.safetensors");
                let b = std::fs::read(&p).unwrap();
                std::fs::write(&p, &b[..b.len() / 2]).unwrap();
            }),
            "not a valid safetensors file",
        ),
        (
            "huge-claims",
            // A config promising a giant model over a tiny file: rejected by
            // name, with nothing allocated for the promised sizes.
            Box::new(|d| {
                edit_config(d, |c| {
                    c["encoder"]["hidden_size"] = json!(60000);
                    c["encoder"]["input_size"] = json!(60000);
                })
            }),
            "tensor encoder.weight_ih_l0: expected shape [240000, 60000], found [24, 8]",
        ),
    ];
    for (name, break_it, phrase) in cases {
        let dir = copy_model("bilstm-context", name);
        break_it(&dir);
        assert_rejected(&dir, phrase);
    }
}

#[test]
fn vocabulary_files_are_validated() {
    let dir = copy_model("emb-bilstm-context", "vocab-short");
    let vocab = std::fs::read_to_string(dir.join("vocab.txt")).unwrap();
    std::fs::write(
        dir.join("vocab.txt"),
        vocab.lines().take(10).collect::<Vec<_>>().join("\n"),
    )
    .unwrap();
    let err = load_model::<f64>(&dir).unwrap_err().to_string();
    assert!(err.contains("10 tokens, but the config says vocab_size = 30"), "{err}");

    let dir = copy_model("emb-bilstm-context", "vocab-unk");
    edit_config(&dir, |c| c["unk_token"] = json!("<unk>"));
    let err = load_model::<f64>(&dir).unwrap_err().to_string();
    assert!(err.contains("unk_token \"<unk>\" is not in the vocabulary"), "{err}");

    let dir = copy_model("emb-bilstm-context", "vocab-escape");
    edit_config(&dir, |c| c["vocab"] = json!("../../vocab.txt"));
    assert!(load_model::<f64>(&dir)
        .unwrap_err()
        .to_string()
        .contains("vocab = \"../../vocab.txt\""));

    // With an unk token, unknown words map to it instead of failing.
    let dir = copy_model("emb-bilstm-context", "vocab-with-unk");
    edit_config(&dir, |c| c["unk_token"] = json!("w0"));
    let model = load_model::<f64>(&dir).unwrap();
    assert_eq!(model.vocab().unwrap().ids(&["w3", "never-seen"]).unwrap(), vec![3, 0]);
}

#[test]
fn input_files_are_untrusted() {
    let dir = scratch_dir("inputs");
    let good = std::fs::read(fixture("golden/inputs/reference-0.npy")).unwrap();
    let truncated = dir.join("truncated.npy");
    std::fs::write(&truncated, &good[..good.len() - 100]).unwrap();
    // A header that claims 10^12 rows over a few bytes of data.
    let header = b"{'descr': '<f8', 'fortran_order': False, 'shape': (1000000000000, 60), }";
    let mut lying = b"\x93NUMPY\x01\x00".to_vec();
    let pad = 64 - (10 + header.len() + 1) % 64;
    lying.extend_from_slice(&((header.len() + pad + 1) as u16).to_le_bytes());
    lying.extend_from_slice(header);
    lying.extend(std::iter::repeat_n(b' ', pad));
    lying.push(b'\n');
    lying.extend_from_slice(&[0u8; 64]);
    let lying_path = dir.join("lying.npy");
    std::fs::write(&lying_path, &lying).unwrap();
    let garbage = dir.join("garbage.npz");
    std::fs::write(&garbage, b"PK\x03\x04 this is no zip").unwrap();
    // Found by the `npy` fuzz target: nested braces in the header made the
    // header's literal parser take exponential time.
    let nested = fixture("fuzz/npy-nested-braces-timeout.npy");
    for (path, phrase) in [
        (&nested, "not that of a plain float array"),
        (&truncated, "more data than the file holds"),
        (&lying_path, "more data than the file holds"),
        (&garbage, "not a valid npz archive"),
    ] {
        let err = lrp_io::read_sequences(path).unwrap_err().to_string();
        assert!(err.contains(phrase), "{err}");
        let model = fixture("reference/sst-bilstm");
        let run = lrp(&[
            "explain",
            "--model",
            model.to_str().unwrap(),
            "--vectors",
            path.to_str().unwrap(),
        ]);
        assert_eq!((run.code, run.stderr.lines().count()), (1, 1), "{}", run.stderr);
        assert!(run.stderr.contains(phrase), "{}", run.stderr);
    }
}

/// The API side of the CLI's bad-input table (`cli.rs`): inputs and
/// explanation requests.
#[test]
fn bad_requests_through_the_api() {
    let dir = load_model::<f64>(fixture("golden/models/lstm-last")).unwrap();
    let model = &dir.model;
    let err = |e: lrp_models::Error| e.to_string();
    assert!(
        err(model.forward(DMatrix::zeros(7, 3)).unwrap_err()).contains("7 dimensions per position, the model reads 6")
    );
    assert!(err(model.forward(DMatrix::zeros(6, 0)).unwrap_err()).contains("empty"));
    let mut x = DMatrix::zeros(6, 3);
    x[(4, 2)] = f64::INFINITY;
    assert!(err(model.forward(x).unwrap_err()).contains("non-finite value inf at position 2, dimension 4"));
    let trace = model.forward(DMatrix::zeros(6, 3)).unwrap();
    let rules = Composite::epsilon(0.001, 0.0).unwrap();
    assert!(err(model.lrp(&trace, 3, &rules).unwrap_err())
        .contains("target class 3 does not exist: the model has 3 classes (0 to 2)"));
    assert!(err(model.gradient(&trace, 9).unwrap_err()).contains("target class 9 does not exist"));
    assert!(Composite::<f64>::epsilon(-1.0, 0.0)
        .unwrap_err()
        .to_string()
        .contains("eps"));
    assert!(err(model.embed(&[1]).unwrap_err()).contains("no embedding"));

    let emb = load_model::<f64>(fixture("golden/models/emb-bilstm-context")).unwrap();
    assert!(emb
        .vocab()
        .unwrap()
        .ids(&["w1", "zebra"])
        .unwrap_err()
        .to_string()
        .contains("word \"zebra\" (position 1)"));
    assert!(
        err(emb.model.embed(&[30]).unwrap_err()).contains("token id 30 at position 0 is outside the vocabulary of 30")
    );
}

/// `eps = 0` and an output that is exactly zero: that relevance is not
/// passed on, it is reported as unexplained, and nothing is NaN.
#[test]
fn a_zero_denominator_is_reported_as_unexplained() {
    let config = architecture("lstm", true, 1, 4, 3, None, "last", 2);
    let tensors: Vec<_> = random_tensors(&config, 4, 0.5)
        .into_iter()
        .map(|(name, mut t)| {
            if name.starts_with("encoder.bias") {
                t.values.iter_mut().for_each(|v| *v = 0.0);
            }
            (name, t)
        })
        .collect();
    let model = model_from(&config, tensors);
    // Zero input, zero encoder biases: every c_t and h_t is exactly 0, the
    // score is the head's bias, and with bf = 1 the head sends its bias
    // share to states whose sums are zero.
    let trace = model.forward(DMatrix::zeros(4, 5)).unwrap();
    let e = model.lrp(&trace, 0, &Composite::epsilon(0.0, 1.0).unwrap()).unwrap();
    assert!(e.unexplained_relevance != 0.0);
    assert!(e.input_relevance.as_slice().iter().all(|v| v.is_finite()));
    let total = e.input_relevance.total() + e.initial_state_relevance + e.unexplained_relevance;
    assert!((total - trace.scores()[0]).abs() <= 1e-12 * trace.scores()[0].abs());
}

/// Saturated gates and inputs of magnitude 1e6: finite results in f64; in
/// f32, inputs that overflow give a clear error, never NaN.
#[test]
fn extreme_inputs_give_finite_results_or_a_clear_error() {
    for (cell, attention, head) in [("lstm", None, "last"), ("gru", Some(("additive", 3)), "context+last")] {
        let config = architecture(cell, true, 2, 4, 3, attention, head, 2);
        let model = model_from(&config, random_tensors(&config, 9, 0.5));
        let x = random_input(4, 6, 1, 1e6);
        let trace = model.forward(x.clone()).unwrap();
        let e = model.lrp(&trace, 1, &Composite::epsilon(0.001, 0.0).unwrap()).unwrap();
        assert!(e.input_relevance.as_slice().iter().all(|v| v.is_finite()), "{cell}");
        assert!(
            model.gradient(&trace, 1).unwrap().iter().all(|v| v.is_finite()),
            "{cell}"
        );

        // In f32, inputs near its largest value overflow the
        // pre-activations: a clear error, never NaN or silent zeros.
        let mut all = lrp_models::Tensors::new();
        for (n, mut t) in random_tensors(&config, 9, 0.5) {
            if n == "encoder.weight_ih_l0" {
                t.values.iter_mut().for_each(|v| *v = 1.0);
            }
            all.insert(n, t);
        }
        let single = lrp_models::Model::<f32>::from_config(config.clone(), all).unwrap();
        let err = single.forward(DMatrix::from_element(4, 6, f32::MAX)).unwrap_err();
        assert!(err.to_string().contains("too large for this precision"), "{err}");
    }
}

/// T = 100,000: nothing is recursive in T, and the trace is O(T x H).
#[test]
fn very_long_sequences_work() {
    let config = architecture("lstm", true, 1, 3, 4, Some(("context", 2)), "context", 2);
    let model = model_from(&config, random_tensors(&config, 2, 0.5));
    let trace = model.forward(random_input(3, 100_000, 3, 1.0)).unwrap();
    let e = model.lrp(&trace, 0, &Composite::epsilon(0.001, 1.0).unwrap()).unwrap();
    let total = e.input_relevance.total() + e.initial_state_relevance;
    assert!((total - trace.scores()[0]).abs() <= 1e-8 * trace.scores()[0].abs());
    assert_eq!(model.gradient(&trace, 0).unwrap().ncols(), 100_000);
}

#[test]
fn output_files_are_written_atomically() {
    let dir = scratch_dir("out");
    let out = dir.join("explained.json");
    let model = fixture("reference/sst-bilstm");
    let vectors = fixture("golden/inputs/reference-0.npy");
    let run = lrp(&[
        "explain",
        "--model",
        model.to_str().unwrap(),
        "--vectors",
        vectors.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
    ]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert!(run.stdout.is_empty());
    let written: Value = serde_json::from_str(&std::fs::read_to_string(&out).unwrap()).unwrap();
    assert_eq!(written["target"], 1);
    // A failing run leaves the previous file as it was and no temporary.
    let bad = lrp(&[
        "explain",
        "--model",
        model.to_str().unwrap(),
        "--vectors",
        vectors.to_str().unwrap(),
        "--target",
        "9",
        "--out",
        out.to_str().unwrap(),
    ]);
    assert_eq!(bad.code, 1);
    assert_eq!(
        serde_json::from_str::<Value>(&std::fs::read_to_string(&out).unwrap()).unwrap(),
        written
    );
    assert_eq!(std::fs::read_dir(&dir).unwrap().count(), 1);
    // An unwritable destination is one line too.
    let nowhere = dir.join("no/such/dir/out.json");
    let run = lrp(&[
        "explain",
        "--model",
        model.to_str().unwrap(),
        "--vectors",
        vectors.to_str().unwrap(),
        "--out",
        nowhere.to_str().unwrap(),
    ]);
    assert_eq!((run.code, run.stderr.lines().count()), (1, 1));
    assert!(run.stderr.contains("cannot write"), "{}", run.stderr);
}

mod robustness {
    //! Random and mutated bytes through every reader (the CI-sized cousin of
    //! the fuzz targets in `fuzz/`): an error or a result, never a panic.

    use std::path::Path;

    use lrp_tests::fixture;
    use proptest::prelude::*;

    /// `bytes` with `edits` (position, value) applied.
    fn mutate(mut bytes: Vec<u8>, edits: &[(usize, u8)], cut: usize) -> Vec<u8> {
        for &(at, value) in edits {
            if !bytes.is_empty() {
                let k = at % bytes.len();
                bytes[k] = value;
            }
        }
        bytes.truncate(bytes.len().saturating_sub(cut));
        bytes
    }

    proptest! {
        #![proptest_config(ProptestConfig {
            cases: 256,
            rng_seed: proptest::test_runner::RngSeed::Fixed(7),
            ..ProptestConfig::default()
        })]

        #[test]
        fn input_readers_never_panic(
            edits in proptest::collection::vec((any::<usize>(), any::<u8>()), 0..8),
            cut in 0usize..64,
            npz in any::<bool>(),
        ) {
            let (name, seed) = if npz { ("x.npz", "inputs/reference-three.npz") } else { ("x.npy", "golden/inputs/reference-0.npy") };
            let bytes = mutate(std::fs::read(fixture(seed)).unwrap(), &edits, cut);
            let _ = lrp_io::parse_sequences(Path::new(name), &bytes);
        }

        #[test]
        fn weights_and_configs_never_panic(
            edits in proptest::collection::vec((any::<usize>(), any::<u8>()), 0..8),
            cut in 0usize..64,
        ) {
            let dir = fixture("golden/models/bilstm-additive");
            let here = Path::new("model");
            let config_bytes = mutate(std::fs::read(dir.join("config.json")).unwrap(), &edits, cut);
            if let Ok(config) = lrp_io::parse_config(here, &config_bytes) {
                let _ = lrp_models::tensor_manifest(&config);
            }
            let config = lrp_io::parse_config(here, &std::fs::read(dir.join("config.json")).unwrap()).unwrap();
            let weights = mutate(std::fs::read(dir.join("model.safetensors")).unwrap(), &edits, cut);
            if let Ok(model) = lrp_io::model_from_parts::<f64>(here, config, here, &weights, None) {
                let _ = model.model.forward(nalgebra::DMatrix::from_element(5, 3, 0.25));
            }
        }

        #[test]
        fn the_tokenizer_never_panics_and_never_returns_blank_tokens(text in "\\PC{0,80}") {
            for token in lrp_io::tokenize(&text) {
                prop_assert!(!token.is_empty() && !token.chars().any(char::is_whitespace), "{token:?}");
            }
        }
    }
}
