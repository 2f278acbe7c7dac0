//! Encoder–decoder models (`docs/seq2seq.md`): PyTorch parity of the
//! teacher-forced logits and attention and of greedy decoding (fixtures of
//! `tools/make_seq2seq_fixtures.py`, f64 and f32), exact conservation of
//! LRP with bias factor 1 and eps 0 over every architecture combination,
//! and `lrp explain` on a seq2seq model directory.

use lrp_core::Float;
use lrp_io::{load_seq2seq, Limits, Seq2SeqDir};
use lrp_layers::Composite;
use lrp_models::faithfulness::SplitMix64;
use lrp_models::seq2seq::{seq2seq_manifest, Seq2Seq, Seq2SeqConfig};
use lrp_models::{Tensor, Tensors};
use lrp_tests::{assert_close, fixture, flat, groundtruth, lrp, scratch_dir};
use proptest::prelude::*;
use serde::Deserialize;

#[derive(Debug, Deserialize)]
struct CaseFile {
    generated_by: String,
    cases: Vec<Case>,
}

#[derive(Debug, Deserialize)]
struct Case {
    name: String,
    model: String,
    dtype: String,
    source: Vec<String>,
    target: Vec<String>,
    logits: Vec<Vec<f64>>,
    attention: Vec<Vec<f64>>,
    greedy: Vec<String>,
    gradient_source: Vec<Vec<f64>>,
    gradient_target: Vec<Vec<f64>>,
}

fn cases(dtype: &str) -> Vec<Case> {
    let text = std::fs::read_to_string(fixture("seq2seq/cases.json")).expect("seq2seq cases are committed");
    let file: CaseFile = serde_json::from_str(&text).expect("cases parse");
    assert_eq!(file.generated_by, "tools/make_seq2seq_fixtures.py");
    file.cases.into_iter().filter(|c| c.dtype == dtype).collect()
}

fn load<T: Float>(case: &Case) -> (Seq2SeqDir<T>, Vec<usize>, Vec<usize>) {
    let dir = load_seq2seq::<T>(&fixture("seq2seq").join(&case.model), &Limits::default()).expect("model loads");
    let source = dir.source_vocab.as_ref().unwrap().ids(&case.source).unwrap();
    let target = dir.target_vocab.as_ref().unwrap().ids(&case.target).unwrap();
    (dir, source, target)
}

/// Logits, attention and greedy decoding against torch; the gradient of the
/// last step's target logit against autograd; conservation on the same
/// trace.
fn check<T: Float>(case: &Case, rtol: f64, gradient_rtol: f64) {
    let (dir, source, target) = load::<T>(case);
    let n = &case.name;
    let trace = dir.model.forward(&source, &target).expect("forward");
    let as64 = |v: &[T]| v.iter().map(|x| x.as_f64()).collect::<Vec<_>>();
    for j in 0..target.len() {
        assert_close(
            &format!("{n}: logits of step {j}"),
            &as64(trace.logits(j)),
            &case.logits[j],
            rtol,
        );
        assert_close(
            &format!("{n}: attention of step {j}"),
            &as64(trace.attention(j)),
            &case.attention[j],
            rtol,
        );
    }
    let greedy = dir.model.greedy(&source, 8).expect("greedy");
    let words: Vec<&str> = greedy
        .target()
        .iter()
        .map(|&id| dir.target_vocab.as_ref().unwrap().token(id).unwrap())
        .collect();
    assert_eq!(words, case.greedy, "{n}: greedy decoding");

    let (step, token) = (target.len() - 1, *target.last().unwrap());
    let g = dir.model.gradient(&trace, step, token).expect("gradient");
    let rows = |m: &nalgebra::DMatrix<T>| {
        (0..m.ncols())
            .flat_map(|c| m.column(c).iter().map(|v| v.as_f64()).collect::<Vec<_>>())
            .collect::<Vec<_>>()
    };
    assert_close(
        &format!("{n}: source gradient"),
        &rows(&g.source),
        &flat(&case.gradient_source),
        gradient_rtol,
    );
    assert_close(
        &format!("{n}: target gradient"),
        &rows(&g.target),
        &flat(&case.gradient_target),
        gradient_rtol,
    );

    let e = dir
        .model
        .lrp(&trace, step, token, &Composite::epsilon(0.0, 1.0).unwrap())
        .expect("lrp");
    let total =
        (e.source_relevance.total() + e.target_relevance.total() + e.initial_state_relevance + e.unexplained_relevance)
            .as_f64();
    let score = e.score.as_f64();
    assert!(
        (total - score).abs() <= rtol * score.abs().max(1e-3),
        "{n}: {total} vs {score}"
    );
}

#[test]
fn f64_seq2seq_models_match_torch_to_1e_10() {
    let cases = cases("f64");
    assert_eq!(cases.len(), 18, "six models, three pairs");
    for case in &cases {
        check::<f64>(case, 1e-10, 1e-9);
    }
}

#[test]
fn f32_seq2seq_models_match_torch_to_1e_4() {
    let cases = cases("f32");
    assert_eq!(cases.len(), 18);
    for case in &cases {
        check::<f32>(case, 1e-4, 1e-3);
    }
}

/// A seeded random seq2seq model: encoder `cell` (`layers`, `bi`), decoder
/// `dec`, attention `kind`, input feeding, initial state `init`.
#[allow(clippy::too_many_arguments)]
pub fn random_seq2seq(
    cell: &str,
    layers: usize,
    bi: bool,
    dec: &str,
    kind: &str,
    feeding: bool,
    init: &str,
    (e, h, hd, a): (usize, usize, usize, usize),
    seed: u64,
) -> Seq2Seq<f64> {
    let hd = if kind == "dot" { h * if bi { 2 } else { 1 } } else { hd };
    let size = if kind == "additive" {
        a.to_string()
    } else {
        "null".into()
    };
    let json = format!(
        r#"{{"format": "lrp-model", "version": 1, "architecture": "seq2seq", "layout": "pytorch",
            "weights": "model.safetensors", "source_vocab_size": 11, "target_vocab_size": 9,
            "target_start": 0, "target_end": 1,
            "encoder": {{"cell": "{cell}", "input_size": {e}, "hidden_size": {h}, "num_layers": {layers}, "bidirectional": {bi}}},
            "decoder": {{"cell": "{dec}", "input_size": {e}, "hidden_size": {hd}, "input_feeding": {feeding}, "init": "{init}"}},
            "attention": {{"kind": "{kind}", "size": {size}}}}}"#
    );
    let config: Seq2SeqConfig = serde_json::from_str(&json).expect("config");
    let mut rng = SplitMix64(seed);
    let mut tensors = Tensors::new();
    for (name, shape) in seq2seq_manifest(&config).expect("manifest") {
        let values = (0..shape.iter().product()).map(|_| rng.next_signed() * 0.5).collect();
        tensors.insert(name, Tensor { shape, values });
    }
    Seq2Seq::from_config(config, tensors).expect("model")
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: 96,
        rng_seed: proptest::test_runner::RngSeed::Fixed(20151015),
        ..ProptestConfig::default()
    })]

    /// With bias factor 1 and eps 0, source + target-prefix + initial-state
    /// (+ unexplained) relevance is the explained logit, for every cell x
    /// directions x layers x attention kind x input feeding x initial state
    /// and every step. As in `conservation.rs`, where near-zero
    /// denominators make the terms explode the check is against their scale.
    #[test]
    fn seq2seq_conserves_relevance_exactly(
        cell in prop_oneof![Just("lstm"), Just("gru")],
        dec in prop_oneof![Just("lstm"), Just("gru")],
        bi in any::<bool>(),
        layers in 1usize..=3,
        kind in prop_oneof![Just("additive"), Just("general"), Just("dot")],
        feeding in any::<bool>(),
        init in prop_oneof![Just("zero"), Just("bridge")],
        sizes in (1usize..=6, 1usize..=6, 1usize..=6, 1usize..=5),
        source in proptest::collection::vec(0usize..11, 1..=12),
        target in proptest::collection::vec(0usize..9, 1..=6),
        seed in any::<u64>(),
    ) {
        let model = random_seq2seq(cell, layers, bi, dec, kind, feeding, init, sizes, seed);
        let trace = model.forward(&source, &target).unwrap();
        let rules = Composite::epsilon(0.0, 1.0).unwrap();
        for step in 0..target.len() {
            let logits = trace.logits(step);
            let token = (0..logits.len()).max_by(|&a, &b| logits[a].abs().total_cmp(&logits[b].abs())).unwrap();
            let e = model.lrp(&trace, step, token, &rules).unwrap();
            let parts = [e.source_relevance.total(), e.target_relevance.total(), e.initial_state_relevance, e.unexplained_relevance];
            let total: f64 = parts.iter().sum();
            let magnitude = e.source_relevance.as_slice().iter().chain(e.target_relevance.as_slice()).map(|v| v.abs()).sum::<f64>()
                + e.initial_state_relevance.abs() + e.unexplained_relevance.abs();
            let score = e.score;
            if magnitude <= 1e4 * score.abs() {
                prop_assert!((total - score).abs() <= 1e-10 * score.abs(), "step {step}: {total} vs {score}");
            } else {
                prop_assert!((total - score).abs() <= 1e-13 * magnitude, "step {step}: {total} vs {score}, terms {magnitude:e}");
            }
        }
    }
}

const MODEL: &str = "seq2seq/bilstm2-lstm-additive-feed-bridge";

fn model_dir() -> String {
    fixture(MODEL).to_string_lossy().into_owned()
}

fn numbers(v: &serde_json::Value) -> Vec<f64> {
    v.as_array().unwrap().iter().map(|x| x.as_f64().unwrap()).collect()
}

/// Teacher-forced: one line per output token, each with its step, token,
/// logits, attention, and relevance that adds up to the logit (bias factor
/// 1, eps 0), equal to the library's numbers.
#[test]
fn explain_prints_one_line_per_teacher_forced_token() {
    let dir = model_dir();
    let lines = lrp(&[
        "explain",
        "--model",
        &dir,
        "--text",
        "s3 s7 s1 s9",
        "--output-text",
        "t2 t0 </s>",
        "--bias-factor",
        "1",
        "--eps",
        "0",
    ])
    .json_lines();
    assert_eq!(lines.len(), 3);
    let loaded = load_seq2seq::<f64>(&fixture(MODEL), &Limits::default()).unwrap();
    let trace = loaded.model.forward(&[4, 8, 2, 10], &[4, 2, 1]).unwrap();
    for (j, line) in lines.iter().enumerate() {
        assert_eq!(line["step"], j);
        assert_eq!(line["token"], ["t2", "t0", "</s>"][j]);
        assert_eq!(line["target"], [4, 2, 1][j]);
        assert_eq!(line["method"], "lrp");
        let source = numbers(&line["source_relevance"]);
        let target = numbers(&line["target_relevance"]);
        assert_eq!((source.len(), target.len()), (4, j + 1));
        assert_eq!(line["target_tokens"].as_array().unwrap().len(), j + 1);
        assert_eq!(line["target_tokens"][0], "<s>");
        assert_close("attention", &numbers(&line["attention"]), trace.attention(j), 1e-15);
        assert_close("scores", &numbers(&line["scores"]), trace.logits(j), 1e-15);
        let e = loaded
            .model
            .lrp(&trace, j, [4, 2, 1][j], &Composite::epsilon(0.0, 1.0).unwrap())
            .unwrap();
        assert_close("source relevance", &source, &e.source_relevance.per_position(), 1e-15);
        let total = source.iter().sum::<f64>()
            + target.iter().sum::<f64>()
            + line["initial_state_relevance"].as_f64().unwrap()
            + line["unexplained_relevance"].as_f64().unwrap();
        let score = numbers(&line["scores"])[[4, 2, 1][j]];
        assert!((total - score).abs() <= 1e-12, "step {j}: {total} vs {score}");
    }
}

/// Without a target: greedy decoding, as torch decodes (the fixture's
/// `greedy`), cut by --max-output-length; the baselines on the same steps.
#[test]
fn explain_decodes_greedily_without_a_target() {
    let dir = model_dir();
    let case = cases("f64")
        .into_iter()
        .find(|c| c.model == MODEL.trim_start_matches("seq2seq/") && c.source.len() == 4)
        .unwrap();
    let source = case.source.join(" ");
    let lines = lrp(&["explain", "--model", &dir, "--text", &source]).json_lines();
    let tokens: Vec<_> = lines.iter().map(|l| l["token"].as_str().unwrap().to_string()).collect();
    let mut want = case.greedy.clone();
    // The fixture stops at 8 steps; the CLI's default limit is 50.
    want.truncate(8);
    assert_eq!(&tokens[..want.len().min(tokens.len())], &want[..]);
    let two = lrp(&[
        "explain",
        "--model",
        &dir,
        "--text",
        &source,
        "--max-output-length",
        "2",
    ])
    .json_lines();
    assert_eq!(two.len(), 2.min(case.greedy.len()));
    for method in ["sa", "gi", "occlusion", "ig"] {
        let lines = lrp(&[
            "explain",
            "--model",
            &dir,
            "--text",
            &source,
            "--max-output-length",
            "2",
            "--method",
            method,
        ])
        .json_lines();
        assert_eq!(lines[1]["method"], method);
        assert_eq!(numbers(&lines[1]["source_relevance"]).len(), 4);
        assert_eq!(numbers(&lines[1]["target_relevance"]).len(), 2);
        assert!(lines[1]["initial_state_relevance"].is_null());
    }
}

/// Bad input: one line on stderr and a failing exit, nothing on stdout.
#[test]
fn seq2seq_bad_input_fails_in_one_line() {
    let dir = model_dir();
    for (args, says) in [
        (
            vec!["--text", "s3", "--output-text", "t2 nope"],
            "not in the target vocabulary",
        ),
        (vec!["--text", "s3", "--output-text", "  "], "--output-text is empty"),
        (vec!["--text", "  "], "empty"),
        (vec!["--vectors", "x.npy"], "not --vectors"),
        (vec!["--text", "s3", "--max-output-length", "0"], "--max-output-length"),
        (
            vec!["--text", "s3", "--max-output-length", "1025"],
            "--max-output-length",
        ),
        (vec!["--text", "s3", "--target", "10"], "target class 10"),
    ] {
        let mut all = vec!["explain", "--model", dir.as_str()];
        all.extend(args);
        let run = lrp(&all);
        assert_ne!(run.code, 0, "{all:?}");
        assert!(run.stdout.is_empty(), "{all:?}");
        assert_eq!(run.stderr.trim().lines().count(), 1, "{all:?}: {}", run.stderr);
        assert!(run.stderr.contains(says), "{all:?}: {}", run.stderr);
    }
    let run = lrp(&["explain", "--text", "good", "--output-text", "x"]);
    assert!(
        run.code != 0 && run.stderr.contains("needs a seq2seq model"),
        "{}",
        run.stderr
    );
}

/// `--format html`: one page with the relevance matrix (rows: output
/// tokens, columns: source tokens, then the target prefix) and the
/// attention matrix, their cells the numbers of the JSON lines.
#[test]
fn explain_html_holds_the_relevance_and_attention_matrices() {
    let dir = model_dir();
    let common = [
        "explain",
        "--model",
        dir.as_str(),
        "--text",
        "s3 s7 s1 s9",
        "--output-text",
        "t2 t0 </s>",
    ];
    let lines = lrp(&common).json_lines();
    let mut args = common.to_vec();
    args.extend(["--format", "html"]);
    let run = lrp(&args);
    assert_eq!(run.code, 0, "{}", run.stderr);
    let page = run.stdout;
    assert!(page.starts_with("<!DOCTYPE html>") && page.ends_with("</html>\n"));
    // Per table: its header cells, and per row the titles (values) of the
    // source cells and of the extra cells.
    type Table = (usize, Vec<(Vec<f64>, Vec<f64>)>);
    let table = |kind: &str| -> Table {
        let start = page.find(&format!("data-matrix=\"{kind}\"")).expect(kind);
        let body = &page[start..start + page[start..].find("</table>").unwrap()];
        let values = |row: &str, class: &str| -> Vec<f64> {
            row.split(&format!("<td class=\"{class}\""))
                .skip(1)
                .map(|cell| {
                    let t = cell.find("title=\"").unwrap() + 7;
                    cell[t..t + cell[t..].find('"').unwrap()].parse().unwrap()
                })
                .collect()
        };
        let mut rows = body.split("<tr>").skip(1);
        let header = rows.next().unwrap().matches("<th").count();
        (header, rows.map(|r| (values(r, "c"), values(r, "extra"))).collect())
    };
    let (header, relevance) = table("relevance");
    assert_eq!(header, 1 + 4 + 1, "corner, 4 source tokens, the target prefix");
    assert_eq!(relevance.len(), 3);
    let (header, attention) = table("attention");
    assert_eq!((header, attention.len()), (1 + 4, 3));
    for (j, line) in lines.iter().enumerate() {
        let (source, prefix) = &relevance[j];
        assert_eq!((source.len(), prefix.len()), (4, 1));
        // The page shows 4 decimals.
        let near = |what: &str, got: &[f64], want: &[f64]| {
            assert_eq!(got.len(), want.len(), "{what}");
            for (g, w) in got.iter().zip(want) {
                assert!((g - w).abs() <= 0.51e-4, "{what} step {j}: {g} vs {w}");
            }
        };
        near("relevance", source, &numbers(&line["source_relevance"]));
        let prefix_sum: f64 = numbers(&line["target_relevance"]).iter().sum();
        near("prefix", prefix, &[prefix_sum]);
        assert_eq!(attention[j].0.len(), 4);
        assert!(attention[j].1.is_empty());
        near("attention", &attention[j].0, &numbers(&line["attention"]));
    }
    for token in ["s3", "s7", "s1", "s9", "t2", "t0", "&lt;/s&gt;"] {
        assert!(page.contains(&format!("<th>{token}</th>")), "{token}");
    }
}

/// `lrp groundtruth` on the reversal model of `tools/train_seq2seq.py`:
/// per output token (teacher-forced), is the most relevant source token
/// the one the token copies, and what share of the source relevance does
/// it carry? The measured figures of the alignment table in docs/evaluation.md (the
/// methods that run fast; the attention weights are always scored).
#[test]
fn groundtruth_seq2seq_reversal_points_at_the_aligned_source_token() {
    let report = groundtruth(
        "seq2seq-reverse/model",
        "seq2seq-reverse/heldout.json",
        &["--methods", "lrp,gi,random"],
    );
    assert_eq!(report["n"], 500);
    assert_eq!(report["counts"]["aligned"], 3205);
    let methods = report["methods"].as_object().unwrap();
    assert_eq!(
        methods.keys().map(String::as_str).collect::<Vec<_>>(),
        ["attention", "gi", "lrp", "random"]
    );
    let get = |method: &str, key: &str| report["methods"][method][key].as_f64().unwrap();
    // (method, aligned tokens whose top source token is the aligned one, mean aligned share)
    for (method, hits, share) in [
        ("lrp", 3129, 0.7202),
        ("attention", 3142, 0.8391),
        ("gi", 2829, 0.5125),
        ("random", 512, 0.1547),
    ] {
        let accuracy = get(method, "alignment_accuracy");
        assert_eq!((accuracy * 3205.0).round() as usize, hits, "{method}: {accuracy}");
        let got = get(method, "aligned_share");
        assert!((got - share).abs() < 1e-4, "{method}: aligned share {got}");
    }
    assert!(get("lrp", "alignment_accuracy") >= 0.9);
    assert!((get("lrp", "source_share") - 0.8436).abs() < 1e-4);
    assert!((get("gi", "source_share") - 0.7524).abs() < 1e-4);
    assert!(report["methods"]["attention"]["source_share"].is_null());
    assert!(report["methods"]["random"]["source_share"].is_null());
}

/// A seq2seq truth file that does not fit: one line naming the case.
#[test]
fn groundtruth_seq2seq_bad_cases_fail_in_one_line() {
    let dir = scratch_dir("groundtruth-seq2seq");
    let model = fixture("seq2seq-reverse/model").to_string_lossy().into_owned();
    for (k, (case, extra, says)) in [
        (
            r#"{"text": "a b c", "output_text": "c b", "aligned": [2, 1, 0]}"#,
            "",
            "3 aligned entries for 2 output tokens",
        ),
        (
            r#"{"text": "a b c", "output_text": "c b a", "aligned": [5, 1, 0]}"#,
            "",
            "past the last source position",
        ),
        (r#"{"text": "a b c", "aligned": [2, 1, 0]}"#, "", "no output_text"),
        (
            r#"{"text": "a b c", "output_text": "c b z", "aligned": [2, 1, 0]}"#,
            "",
            "not in the target vocabulary",
        ),
        (
            r#"{"text": "a b c", "output_text": "c b a", "aligned": [2, 1, 0], "point": 1}"#,
            "",
            "for classifiers",
        ),
        (
            r#"{"text": "a b c", "output_text": "c b a", "aligned": [null, null, null]}"#,
            "",
            "no output token has an aligned position",
        ),
        (
            r#"{"text": "a b c", "output_text": "c b a", "aligned": [2, 1, 0]}"#,
            "--dimension",
            "not supported",
        ),
    ]
    .into_iter()
    .enumerate()
    {
        let data = dir.join(format!("case{k}.json"));
        std::fs::write(&data, format!(r#"{{"sequences": [{case}]}}"#)).unwrap();
        let data = data.to_string_lossy().into_owned();
        let mut args = vec!["groundtruth", "--model", model.as_str(), "--data", data.as_str()];
        if !extra.is_empty() {
            args.extend([extra, "0"]);
        }
        let run = lrp(&args);
        assert_ne!(run.code, 0, "{case}");
        assert!(run.stdout.is_empty(), "{case}");
        assert_eq!(run.stderr.trim().lines().count(), 1, "{case}: {}", run.stderr);
        assert!(run.stderr.contains(says), "{case}: {}", run.stderr);
    }
    // A classifier's case with aligned positions.
    let data = dir.join("classifier.json");
    std::fs::write(
        &data,
        r#"{"sequences": [{"text": "the key", "output_text": "x", "aligned": [0]}]}"#,
    )
    .unwrap();
    let model = fixture("agreement/model").to_string_lossy().into_owned();
    let run = lrp(&["groundtruth", "--model", &model, "--data", &data.to_string_lossy()]);
    assert!(
        run.code != 0 && run.stderr.contains("for seq2seq models"),
        "{}",
        run.stderr
    );
}
