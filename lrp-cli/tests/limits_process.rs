//! Untrusted input, part 3 (issue 23), as the real `lrp` process meets it:
//! every input of every model kind within the limits, explanations refused
//! up front when they would cost too much time or memory, ordinary long
//! series let through, and no output written over an input. Each run is
//! bounded by `common::DEADLINE`: a run that would take minutes fails.

mod common;

use std::path::{Path, PathBuf};

use common::{assert_fails, fixture, lrp_run_in as lrp_in, npy, scratch};

fn path(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// The small encoder–decoder fixture (its unknown token takes any word).
fn seq2seq_model() -> PathBuf {
    fixture("seq2seq/lstm-lstm-additive")
}

/// A copy of the encoder–decoder fixture in `dir` without an end token:
/// greedy decoding never stops before `--max-output-length`.
fn endless_seq2seq(dir: &Path) -> PathBuf {
    let copy = dir.join("endless");
    std::fs::create_dir_all(&copy).unwrap();
    for entry in std::fs::read_dir(seq2seq_model()).unwrap() {
        let entry = entry.unwrap();
        std::fs::copy(entry.path(), copy.join(entry.file_name())).unwrap();
    }
    let config = std::fs::read_to_string(copy.join("config.json")).unwrap();
    let mut config: serde_json::Value = serde_json::from_str(&config).unwrap();
    config.as_object_mut().unwrap().remove("target_end");
    std::fs::write(copy.join("config.json"), config.to_string()).unwrap();
    copy
}

/// `n` words of an ordinary review, repeated.
fn words(n: usize) -> String {
    let review = [
        "a", "gorgeous", ",", "witty", "film", "that", "is", "never", "dull", ".",
    ];
    (0..n).map(|k| review[k % review.len()]).collect::<Vec<_>>().join(" ")
}

/// A series of `steps` vectors of `channels` values in `dir/name`.
fn series(dir: &Path, name: &str, steps: usize, channels: usize) -> PathBuf {
    let values: Vec<f64> = (0..steps * channels)
        .map(|k| ((k * 7919) % 1000) as f64 / 1000.0)
        .collect();
    let file = dir.join(name);
    std::fs::write(&file, npy(&[steps as u64, channels as u64], &values)).unwrap();
    file
}

#[test]
fn an_encoder_decoder_source_is_held_to_the_token_and_line_limits() {
    let dir = scratch("s2s-source");
    let model = seq2seq_model();
    let model = path(&model);
    let text = words(40);
    for (flag, value) in [("--max-tokens", "20"), ("--max-line-size", "64")] {
        assert_fails(&dir, &["explain", "--model", model, "--text", &text, flag, value], flag);
    }
    // The reference output too.
    let output = vec!["a"; 40].join(" ");
    assert_fails(
        &dir,
        &[
            "explain",
            "--model",
            model,
            "--text",
            "a b",
            "--output-text",
            &output,
            "--max-line-size",
            "64",
        ],
        "--max-line-size",
    );
    // Within the limits it explains.
    let (code, stdout, stderr) = lrp_in(&dir, &["explain", "--model", model, "--text", &text]);
    assert_eq!(code, Some(0), "{stderr}");
    assert!(!stdout.is_empty());
}

#[test]
fn a_position_on_an_encoder_decoder_is_an_error() {
    let dir = scratch("s2s-position");
    let model = seq2seq_model();
    assert_fails(
        &dir,
        &["explain", "--model", path(&model), "--text", "a b", "--position", "0"],
        "per-step head",
    );
}

#[test]
fn occlusion_on_a_long_document_is_refused_up_front() {
    let dir = scratch("occlusion-document");
    // 5,000 words: about 25 million position-passes of occlusion, minutes.
    std::fs::write(dir.join("document.txt"), words(5_000)).unwrap();
    assert_fails(
        &dir,
        &["explain", "--method", "occlusion", "--input", "document.txt"],
        "document.txt line 1: explaining it needs about 25,005,000 position-passes of work",
    );
    // In the evaluations too, where every sentence is explained by every method.
    std::fs::write(dir.join("data.txt"), format!("1\t{}\n", words(5_000))).unwrap();
    assert_fails(
        &dir,
        &["perturb", "--data", "data.txt", "--methods", "lrp,occlusion"],
        "data.txt: sentence 1 (occlusion)",
    );
    // The budget is a flag: a smaller one refuses a shorter document.
    let text = words(400);
    assert_fails(
        &dir,
        &[
            "explain",
            "--method",
            "occlusion",
            "--text",
            &text,
            "--max-work",
            "100000",
        ],
        "--max-work",
    );
    // An ordinary sentence passes with every method.
    for method in ["lrp", "occlusion", "ig"] {
        let (code, _, stderr) = lrp_in(&dir, &["explain", "--method", method, "--text", &words(30)]);
        assert_eq!(code, Some(0), "{method}: {stderr}");
    }
}

#[test]
fn a_decoder_that_never_ends_is_refused_up_front_for_costly_methods() {
    let dir = scratch("s2s-endless");
    let model = endless_seq2seq(&dir);
    let model = path(&model);
    for method in ["ig", "occlusion"] {
        assert_fails(
            &dir,
            &[
                "explain",
                "--model",
                model,
                "--text",
                "a b c",
                "--method",
                method,
                "--max-output-length",
                "1024",
            ],
            "--max-work",
        );
    }
    // LRP on the same 1,024 steps is within the budget.
    let (code, stdout, stderr) = lrp_in(
        &dir,
        &[
            "explain",
            "--model",
            model,
            "--text",
            "a b c",
            "--max-output-length",
            "1024",
        ],
    );
    assert_eq!(code, Some(0), "{stderr}");
    assert_eq!(stdout.lines().count(), 1024);
}

#[test]
fn a_long_multichannel_series_explains_by_default() {
    let dir = scratch("long-series");
    let file = series(&dir, "x100k.npy", 100_000, 6);
    let model = fixture("series6");
    let (code, stdout, stderr) = lrp_in(&dir, &["explain", "--model", path(&model), "--vectors", path(&file)]);
    assert_eq!(code, Some(0), "{stderr}");
    let report: serde_json::Value = serde_json::from_str(stdout.trim()).unwrap();
    assert_eq!(report["token_relevance"].as_array().unwrap().len(), 100_000);
}

#[test]
fn a_series_too_large_for_the_memory_limit_is_refused_up_front() {
    let dir = scratch("memory");
    let file = series(&dir, "x10k.npy", 10_000, 6);
    let model = fixture("series6");
    assert_fails(
        &dir,
        &[
            "explain",
            "--model",
            path(&model),
            "--vectors",
            path(&file),
            "--max-memory",
            "1M",
        ],
        "--max-memory",
    );
}

#[test]
fn an_output_that_names_an_input_is_refused_before_anything_is_written() {
    let dir = scratch("output-input");
    let data = dir.join("data.txt");
    let original = "1\ta gorgeous , witty film .\n0\tthe plot is a mess .\n";
    std::fs::write(&data, original).unwrap();
    // The same file by another name, and through a hard link.
    std::fs::hard_link(&data, dir.join("link.txt")).unwrap();
    for plot in ["--plot", "--eraser-plot"] {
        for name in ["data.txt", "./data.txt", "link.txt"] {
            assert_fails(
                &dir,
                &["perturb", "--data", "data.txt", "--methods", "lrp", plot, name],
                "--data",
            );
            assert_eq!(std::fs::read_to_string(&data).unwrap(), original, "{plot} {name}");
        }
    }
    // explain --out over its vectors, or over a file of the model.
    let vectors = series(&dir, "x.npy", 5, 6);
    let before = std::fs::read(&vectors).unwrap();
    let model = fixture("series6");
    assert_fails(
        &dir,
        &[
            "explain",
            "--model",
            path(&model),
            "--vectors",
            "x.npy",
            "--out",
            "./x.npy",
        ],
        "--vectors",
    );
    assert_eq!(std::fs::read(&vectors).unwrap(), before);
    let copy = dir.join("model");
    std::fs::create_dir_all(&copy).unwrap();
    for file in ["config.json", "model.safetensors"] {
        std::fs::copy(model.join(file), copy.join(file)).unwrap();
    }
    assert_fails(
        &dir,
        &[
            "explain",
            "--model",
            "model",
            "--vectors",
            "x.npy",
            "--out",
            "model/model.safetensors",
        ],
        "the model's weights",
    );
    // groundtruth --plot over the truth file beside its archive.
    let adding = fixture("adding");
    for file in ["heldout.npz", "heldout.json"] {
        std::fs::copy(adding.join(file), dir.join(file)).unwrap();
    }
    let truth = std::fs::read(dir.join("heldout.json")).unwrap();
    assert_fails(
        &dir,
        &[
            "groundtruth",
            "--model",
            path(&adding.join("model")),
            "--data",
            "heldout.npz",
            "--methods",
            "lrp",
            "--plot",
            "heldout.json",
        ],
        "the truth file",
    );
    assert_eq!(std::fs::read(dir.join("heldout.json")).unwrap(), truth);
}
