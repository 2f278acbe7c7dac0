//! The real `lrp` process: exit codes and stderr as a script sees them,
//! and standard streams that are closed, full, `/dev/null` or a pipe
//! closed early. (Everything else is tested in-process in the workspace's
//! `tests/` crate; terminals in `pty.rs`.)

mod common;

use std::io::{BufRead, BufReader, Write};
use std::process::Stdio;

use common::{finish, fixture, long_runs, lrp_redirected, lrp_run as lrp, reviews, scratch};

#[test]
fn success_prints_json_and_exits_zero() {
    let model = fixture("reference/sst-bilstm");
    let vectors = fixture("golden/inputs/reference-2.npy");
    let (code, stdout, stderr) = lrp(&[
        "explain",
        "--model",
        model.to_str().unwrap(),
        "--vectors",
        vectors.to_str().unwrap(),
        "--format",
        "json",
    ]);
    assert_eq!(code, Some(0), "{stderr}");
    assert!(stderr.is_empty());
    assert_eq!(stdout.lines().count(), 1);
    assert!(stdout.starts_with("{\"scores\":["), "{stdout}");
}

/// An encoder–decoder's text view, as it is (no colour in a pipe): the
/// source with its unknown word marked, the outputs, each output token's
/// most relevant source words, and the relevance matrix.
#[test]
fn an_encoder_decoder_text_view_is_exactly_this() {
    let model = fixture("seq2seq/bilstm-gru-general");
    let (code, stdout, stderr) = lrp(&[
        "explain",
        "--model",
        model.to_str().unwrap(),
        "--text",
        "s2 s6 zzz s8",
        "--output-text",
        "t2 t0",
        "--method",
        "gi",
        "--format",
        "text",
    ]);
    assert_eq!((code, stderr.as_str()), (Some(0), ""));
    assert_eq!(
        stdout,
        "source: s2 s6 zzz [unknown] s8
output: t2 t0
([unknown]: not in the model's source vocabulary, read as its unknown token)

most relevant source words for each output token (gi; + for the token, - against):
  t2 s2 +0.002    s8 -0.002    zzz -0.003
  t0 zzz +0.010   s8 +0.008    s6 +0.002

relevance per output token (row) and source token (column), then the target prefix; red: for, blue: against:
         s2     s6    zzz     s8 prefix
  t2 +0.002 -0.003 -0.003 -0.002 +0.002
  t0 +0.000 +0.002 +0.010 +0.008 +0.066
"
    );
}

/// In a pipe, the commands that show progress on a terminal print nothing
/// on stderr (even where TERM names a capable terminal), and their results
/// are JSON, as a script expects.
#[test]
fn long_commands_print_no_progress_in_a_pipe() {
    let dir = scratch("pipe-progress");
    for (_, args) in long_runs(&dir) {
        let child = common::lrp()
            .args(&args)
            .env("TERM", "xterm-256color")
            .env("COLORTERM", "truecolor")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let run = finish(child, &format!("{args:?}"));
        assert_eq!((run.code, run.stderr.as_str()), (Some(0), ""), "{args:?}");
        for line in run.stdout.lines() {
            assert!(
                serde_json::from_str::<serde_json::Value>(line).is_ok(),
                "{args:?}: {line}"
            );
        }
    }
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn failures_exit_non_zero_with_one_line_and_no_panic() {
    let model = fixture("reference/sst-bilstm");
    for (args, code) in [
        (
            vec![
                "explain",
                "--model",
                model.to_str().unwrap(),
                "--vectors",
                "/nonexistent.npy",
            ],
            1,
        ),
        (vec!["explain", "--bogus"], 2),
        (vec!["frobnicate"], 2),
    ] {
        let (got, stdout, stderr) = lrp(&args);
        assert_eq!(got, Some(code), "{args:?}: {stderr}");
        assert!(stdout.is_empty());
        assert_eq!(stderr.lines().count(), 1, "{args:?}: {stderr}");
        assert!(
            !stderr.contains("panicked") && !stderr.contains("RUST_BACKTRACE"),
            "{stderr}"
        );
    }
}

/// `lrp` with `args` under `sh` with `redirections`, stdout and stderr
/// piped unless redirected.
fn redirected(redirections: &str, args: &[&str]) -> common::Finished {
    let child = lrp_redirected(redirections)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    finish(child, &format!("lrp {} {redirections}", args.join(" ")))
}

#[test]
fn bare_lrp_lists_the_subcommands_on_stderr() {
    let (code, stdout, stderr) = lrp(&[]);
    assert_eq!(code, Some(2));
    assert!(stdout.is_empty());
    for command in ["explain", "eval", "perturb", "groundtruth"] {
        assert!(stderr.contains(&format!("\n  {command} ")), "{stderr}");
    }
}

#[test]
fn argument_errors_are_one_line_ending_with_a_hint() {
    for (args, hint) in [
        (vec!["explain", "--bogus"], "(see 'lrp explain --help')"),
        (vec!["explain", "--target", "-1", "good"], "(see 'lrp explain --help')"),
        (
            vec!["eval", "--format", "html", "--data", "x"],
            "(see 'lrp eval --help')",
        ),
        (vec!["frobnicate"], "(see 'lrp --help')"),
    ] {
        let (code, stdout, stderr) = lrp(&args);
        assert_eq!((code, stdout.as_str()), (Some(2), ""), "{args:?}");
        assert_eq!(stderr.lines().count(), 1, "{stderr}");
        assert!(stderr.trim_end().ends_with(hint), "{args:?}: {stderr}");
    }
}

#[test]
fn a_closed_stdout_is_an_error_not_silence() {
    let dir = scratch("closed-stdout");
    let input = reviews(&dir, 3);
    let input = input.to_str().unwrap();
    let labelled = dir.join("labelled.tsv");
    std::fs::write(&labelled, "3\ta good film\n").unwrap();
    for args in [
        vec!["explain", "--input", input],
        vec!["explain", "--format", "text", "good"],
        vec!["eval", "--data", labelled.to_str().unwrap(), "--format", "json"],
    ] {
        let run = redirected(">&-", &args);
        assert_eq!(run.code, Some(1), "{args:?}: {}", run.stderr);
        assert_eq!(
            run.stderr,
            "error: cannot write the output: standard output is closed\n"
        );
    }
    // With --out nothing is written to stdout, so its state does not matter.
    let out = dir.join("out.jsonl");
    let run = redirected(">&-", &["explain", "--input", input, "--out", out.to_str().unwrap()]);
    assert_eq!((run.code, run.stderr.as_str()), (Some(0), ""));
    assert_eq!(std::fs::read_to_string(&out).unwrap().lines().count(), 3);
}

#[test]
fn a_full_stdout_is_an_error() {
    let run = redirected(">/dev/full", &["explain", "good", "--format", "json"]);
    assert_eq!(run.code, Some(1));
    assert_eq!(run.stderr.lines().count(), 1, "{}", run.stderr);
    assert!(
        run.stderr.starts_with("error: cannot write the output: "),
        "{}",
        run.stderr
    );
}

#[test]
fn null_stdout_and_closed_stdin_or_stderr_are_fine() {
    let dir = scratch("closed-in-err");
    let input = reviews(&dir, 5);
    let input = input.to_str().unwrap();
    let run = redirected(">/dev/null", &["explain", "--input", input]);
    assert_eq!((run.code, run.stderr.as_str()), (Some(0), ""));
    let run = redirected("<&- 2>&-", &["explain", "--input", input]);
    assert_eq!(run.code, Some(0));
    assert_eq!(run.stdout.lines().count(), 5);
    // A closed stdin reads as empty.
    let run = redirected("<&-", &["explain", "--input", "-"]);
    assert_eq!((run.code, run.stdout.as_str(), run.stderr.as_str()), (Some(0), "", ""));
}

#[test]
fn input_dash_reads_standard_input() {
    let mut child = common::lrp()
        .args(["explain", "--input", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(b"a gorgeous film .\n\nthe plot is a mess .\n")
        .unwrap();
    let run = finish(child, "lrp explain --input -");
    assert_eq!(run.code, Some(0), "{}", run.stderr);
    let lines: Vec<serde_json::Value> = run.stdout.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(lines.len(), 2);
    assert_eq!(
        (lines[0]["line"].as_u64(), lines[1]["line"].as_u64()),
        (Some(1), Some(3))
    );
    assert_eq!(lines[1]["tokens"][1], "plot");
}

/// `lrp ... | head -1`: the reader leaves early; `lrp` stops quietly with
/// exit code 1 (its output was not all delivered).
#[test]
fn a_broken_pipe_is_quiet() {
    let dir = scratch("broken-pipe");
    // About 1.5 MB of JSON: far more than a pipe holds.
    let input = reviews(&dir, 200);
    let mut child = common::lrp()
        .args(["explain", "--per-dimension", "--input", input.to_str().unwrap()])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut first = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut first)
        .unwrap();
    assert!(first.starts_with("{\"line\":1,"), "{first}");
    // The reader is dropped here: the pipe is closed.
    let run = finish(child, "lrp explain | head -1");
    assert_eq!((run.code, run.stderr.as_str()), (Some(1), ""));
}

/// `--input -` streams: each window's explanations come out while later
/// lines are still to be typed (a window of one line here), so a pipeline
/// of any length runs in bounded memory.
#[test]
fn input_dash_streams_a_window_at_a_time() {
    let mut child = common::lrp()
        .args(["explain", "--input", "-", "--window", "1"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let stdout = child.stdout.take().unwrap();
    let (sender, receiver) = std::sync::mpsc::channel();
    let reader = std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            if sender.send(line.unwrap()).is_err() {
                break;
            }
        }
    });
    let mut explained = Vec::new();
    for sentence in ["a gorgeous film .", "the plot is a mess ."] {
        writeln!(stdin, "{sentence}").unwrap();
        stdin.flush().unwrap();
        // Standard input is still open: the line's explanation must come
        // anyway.
        let line = receiver
            .recv_timeout(common::DEADLINE)
            .unwrap_or_else(|_| panic!("no explanation of {sentence:?} before the input ended"));
        explained.push(serde_json::from_str::<serde_json::Value>(&line).unwrap());
    }
    drop(stdin);
    let run = finish(child, "lrp explain --input - --window 1");
    reader.join().unwrap();
    assert_eq!((run.code, run.stderr.as_str()), (Some(0), ""));
    assert!(receiver.try_recv().is_err(), "nothing more is printed");
    assert_eq!(
        (explained[0]["line"].as_u64(), explained[1]["tokens"][1].as_str()),
        (Some(1), Some("plot"))
    );
}

#[test]
fn import_then_check_as_a_script_runs_them() {
    // The ONNX export of a bidirectional LSTM (tests/fixtures/onnx), then
    // its scores against onnxruntime's; then an attention graph, refused.
    let dir = scratch("import-check");
    let source = fixture("onnx/lstm-bi");
    let (code, stdout, stderr) = lrp(&[
        "import",
        source.join("model.onnx").to_str().unwrap(),
        "--out",
        dir.to_str().unwrap(),
    ]);
    assert_eq!(code, Some(0), "{stderr}");
    assert!(stdout.starts_with("{\"out\":"), "{stdout}");
    assert!(dir.join("config.json").is_file() && dir.join("model.safetensors").is_file());
    let (code, stdout, stderr) = lrp(&[
        "check",
        "--model",
        dir.to_str().unwrap(),
        "--vectors",
        source.join("inputs.npz").to_str().unwrap(),
        "--expect",
        source.join("expected-onnxruntime.jsonl").to_str().unwrap(),
    ]);
    assert_eq!(code, Some(0), "{stderr}");
    assert!(stdout.starts_with("{\"ok\":true,\"max_abs_diff\":"), "{stdout}");
    // A mismatch is a finding, not a failure: still exit 0.
    let (code, stdout, _) = lrp(&[
        "check",
        "--model",
        dir.to_str().unwrap(),
        "--vectors",
        source.join("inputs.npz").to_str().unwrap(),
        "--expect",
        fixture("onnx/lstm-uni/expected.jsonl").to_str().unwrap(),
    ]);
    assert_eq!(code, Some(0));
    assert!(stdout.starts_with("{\"ok\":false,"), "{stdout}");
    let (code, stdout, stderr) = lrp(&[
        "import",
        fixture("onnx/refused-context-attention/model.onnx").to_str().unwrap(),
        "--out",
        dir.join("refused").to_str().unwrap(),
    ]);
    assert_eq!(code, Some(1));
    assert!(stdout.is_empty());
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(stderr.contains("unsupported node Tanh"), "{stderr}");
    std::fs::remove_dir_all(dir).unwrap();
}

/// Issue 15's new CLI paths as a script runs them, through the real
/// binary: a per-step head's `--position` (and its refusal), and an
/// encoder-decoder's teacher-forced and greedy output, one JSON line per
/// output token.
#[test]
fn per_step_heads_and_encoder_decoders_run_as_a_script_runs_them() {
    let dir = scratch("per-step-and-seq2seq");
    let x = dir.join("x.npy");
    let values: Vec<f64> = (0..15).map(|k| (k as f64 * 0.37).sin()).collect();
    std::fs::write(&x, common::npy(&[5, 3], &values)).unwrap();
    let each = fixture("parity/lstm-uni-each");
    let args = |position: &'static str| {
        vec![
            "explain".to_string(),
            "--model".into(),
            each.to_str().unwrap().into(),
            "--vectors".into(),
            x.to_str().unwrap().into(),
            "--position".into(),
            position.into(),
            "--format".into(),
            "json".into(),
        ]
    };
    let run = |args: Vec<String>| lrp(&args.iter().map(String::as_str).collect::<Vec<_>>());
    let (code, stdout, stderr) = run(args("2"));
    assert_eq!(code, Some(0), "{stderr}");
    let report: serde_json::Value = serde_json::from_str(stdout.trim()).unwrap();
    assert_eq!(report["position"], 2);
    let (code, stdout, stderr) = run(args("5"));
    assert_eq!((code, stderr.lines().count()), (Some(1), 1), "{stderr}");
    assert!(stdout.is_empty() && !stderr.contains("panicked"), "{stderr}");

    let seq2seq = fixture("seq2seq/bilstm-gru-general");
    let model = seq2seq.to_str().unwrap();
    let (code, stdout, stderr) = lrp(&[
        "explain",
        "--model",
        model,
        "--text",
        "s2 s6 s0 s8",
        "--output-text",
        "t2 t0 t3",
    ]);
    assert_eq!(code, Some(0), "{stderr}");
    let steps: Vec<serde_json::Value> = stdout.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(steps.len(), 3);
    for (j, (step, token)) in steps.iter().zip(["t2", "t0", "t3"]).enumerate() {
        assert_eq!(
            (step["step"].as_u64(), step["token"].as_str()),
            (Some(j as u64), Some(token))
        );
        assert_eq!(step["source_relevance"].as_array().unwrap().len(), 4);
        assert_eq!(step["attention"].as_array().unwrap().len(), 4);
        // The start token and the j tokens before this one.
        assert_eq!(step["target_relevance"].as_array().unwrap().len(), j + 1);
    }
    let (code, stdout, stderr) = lrp(&[
        "explain",
        "--model",
        model,
        "--text",
        "s2 s6 s0 s8",
        "--max-output-length",
        "2",
    ]);
    assert_eq!(code, Some(0), "{stderr}");
    let greedy = stdout.lines().count();
    assert!((1..=2).contains(&greedy), "{stdout}");
}

/// A PyTorch text classifier as people write it (`tools/own_model.py`:
/// attributes `emb`, `lstm`/`gru`, `fc`; 2 layers, bidirectional, head on
/// `torch.cat((h_n[-2], h_n[-1]), 1)`), saved from Python by
/// `lrp_rnn.Model.from_torch(...).save(DIR)`: `lrp explain --model DIR`
/// gives the scores torch computed for the same texts (in float64), with
/// capitals lowercased and unknown words read as `<unk>`, and with eps 0
/// and bias factor 1 the relevance adds up to the explained score.
#[test]
fn a_pytorch_model_saved_from_python_is_explained_as_torch_scores_it() {
    let dir = scratch("own-model");
    for cell in ["lstm", "gru"] {
        let fixtures = fixture(&format!("own-model/{cell}"));
        let expected: Vec<serde_json::Value> = std::fs::read_to_string(fixtures.join("expected.jsonl"))
            .unwrap()
            .lines()
            .map(|line| serde_json::from_str(line).unwrap())
            .collect();
        let texts = dir.join(format!("{cell}.txt"));
        let lines: String = expected
            .iter()
            .map(|e| format!("{}\n", e["text"].as_str().unwrap()))
            .collect();
        std::fs::write(&texts, lines).unwrap();
        let model = fixtures.join("model");
        let (code, stdout, stderr) = lrp(&[
            "explain",
            "--model",
            model.to_str().unwrap(),
            "--input",
            texts.to_str().unwrap(),
            "--eps",
            "0",
            "--bias-factor",
            "1",
            "--format",
            "json",
        ]);
        assert_eq!(code, Some(0), "{stderr}");
        let reports: Vec<serde_json::Value> = stdout.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
        assert_eq!(reports.len(), expected.len(), "{stdout}");
        for (report, want) in reports.iter().zip(&expected) {
            let text = want["text"].as_str().unwrap();
            let numbers = |v: &serde_json::Value| -> Vec<f64> {
                v.as_array().unwrap().iter().map(|x| x.as_f64().unwrap()).collect()
            };
            let scores = numbers(&report["scores"]);
            for (got, torch) in scores.iter().zip(numbers(&want["scores_f64"])) {
                assert!(
                    (got - torch).abs() <= 1e-10 * torch.abs().max(1.0),
                    "{cell} {text}: {got} vs {torch}"
                );
            }
            let target = report["target"].as_u64().unwrap() as usize;
            let total: f64 = numbers(&report["token_relevance"]).iter().sum::<f64>()
                + report["initial_state_relevance"].as_f64().unwrap();
            let score = scores[target];
            assert!(
                (total - score).abs() <= 1e-9 * score.abs().max(1.0),
                "{cell} {text}: {total} vs {score}"
            );
            let words = text.split(' ').count();
            assert_eq!(report["tokens"].as_array().unwrap().len(), words, "{text}");
        }
        // "Wise acting in a dull unknown film": "in" and "unknown" are not in the vocabulary.
        assert_eq!(reports[3]["unknown"], serde_json::json!([2, 5]), "{cell}");
    }
}
