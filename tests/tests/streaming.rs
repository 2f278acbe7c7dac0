//! Streaming `explain` (the "Engine" issue, item 4): inputs are read,
//! explained and written a window at a time. The hidden `--window N` flag
//! makes windows small, so that a small input crosses many window
//! boundaries: the output must not change, the first failure must still be
//! the one reported, and `--out` must stay all or nothing.

use std::io::Write;
use std::path::{Path, PathBuf};

use lrp_tests::{fixture, lrp, npy, scratch_dir, CliRun};

/// `n` SST test sentences (of many lengths, several of each length), one
/// a line, with a blank line after every seventh.
fn sentences(dir: &Path, n: usize) -> PathBuf {
    let trees = std::fs::read_to_string(fixture("sst/test.txt")).unwrap();
    let mut text = String::new();
    for (k, tree) in trees.lines().take(n).enumerate() {
        // The words are the leaves: `(label word)`.
        let words: Vec<&str> = tree
            .split('(')
            .filter_map(|part| part.split_once(' ').map(|(_, rest)| rest.trim_end_matches([')', ' '])))
            .filter(|word| !word.is_empty())
            .collect();
        text.push_str(&words.join(" "));
        text.push('\n');
        if k % 7 == 6 {
            text.push('\n');
        }
    }
    let path = dir.join("sentences.txt");
    std::fs::write(&path, text).unwrap();
    path
}

fn with_window(args: &[&str], window: Option<&str>) -> CliRun {
    let mut all = args.to_vec();
    if let Some(n) = window {
        all.extend(["--window", n]);
    }
    lrp(&all)
}

#[test]
fn small_windows_print_what_one_window_prints() {
    let dir = scratch_dir("streaming-same");
    let input = sentences(&dir, 40);
    let input = input.to_str().unwrap();
    for args in [
        vec!["explain", "--input", input],
        vec!["explain", "--input", input, "--format", "text"],
        vec!["explain", "--input", input, "--format", "html"],
        vec!["explain", "--input", input, "--method", "gi", "--precision", "f32"],
    ] {
        // The default window holds all 40 lines: the output of explaining
        // them all at once.
        let whole = with_window(&args, None);
        assert_eq!(whole.code, 0, "{args:?}: {}", whole.stderr);
        assert!(!whole.stdout.is_empty());
        for window in ["1", "3", "16"] {
            let run = with_window(&args, Some(window));
            assert_eq!(run.code, 0, "{args:?} --window {window}: {}", run.stderr);
            let what = format!("{args:?} --window {window}");
            // Byte for byte: a sequence's numbers do not depend on which
            // sequences share its batch (lrp_core::linalg), f32 included.
            assert!(run.stdout == whole.stdout, "{what} changed the output");
        }
    }
    // JSON Lines in input order, blank lines counted.
    let lines = lrp(&["explain", "--input", input, "--window", "3"]).json_lines();
    let numbers: Vec<u64> = lines.iter().map(|l| l["line"].as_u64().unwrap()).collect();
    let want: Vec<u64> = (0..40u64).map(|k| k + 1 + k / 7).collect();
    assert_eq!(numbers, want);
    let html = lrp(&["explain", "--input", input, "--window", "3", "--format", "html"]).stdout;
    assert_eq!(html.matches("<!DOCTYPE html>").count(), 1);
    assert_eq!(html.matches("<section>").count(), 40);
    assert!(html.ends_with("</body>\n</html>\n"), "{html}");
}

#[test]
fn npz_arrays_stream_in_archive_order() {
    let model = fixture("adding/model");
    let data = fixture("adding/heldout.npz");
    let args = [
        "explain",
        "--model",
        model.to_str().unwrap(),
        "--vectors",
        data.to_str().unwrap(),
    ];
    let whole = with_window(&args, None);
    let windowed = with_window(&args, Some("7"));
    assert_eq!(whole.code, 0, "{}", whole.stderr);
    assert!(windowed.stdout == whole.stdout, "--window 7 changed the output");
    let names: Vec<String> = whole
        .json_lines()
        .iter()
        .map(|l| l["name"].as_str().unwrap().to_string())
        .collect();
    let archive = lrp_io::read_sequences(&data).unwrap();
    assert_eq!(names.len(), 500);
    assert!(names.iter().zip(&archive).all(|(name, array)| *name == array.name));
}

/// A `.npy` entry `[T, E]` of one value.
fn filled(t: u64, e: u64, value: f64) -> Vec<u8> {
    npy(&[t, e], &vec![value; (t * e) as usize])
}

#[test]
fn the_first_failure_in_input_order_is_reported_and_its_window_is_not_written() {
    let dir = scratch_dir("streaming-failure");
    // The adding model reads 2-wide vectors. Arrays c and e fail; e is
    // shorter, so it comes first in the window's length order, but c comes
    // first in the archive.
    let entries = [
        ("a.npy", filled(3, 2, 0.5)),
        ("b.npy", filled(4, 2, 0.5)),
        ("c.npy", filled(9, 2, f64::NAN)),
        ("d.npy", filled(2, 2, 0.5)),
        ("e.npy", filled(1, 3, 0.5)),
    ];
    let mut archive = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    for (name, bytes) in &entries {
        archive.start_file(*name, zip::write::FileOptions::default()).unwrap();
        archive.write_all(bytes).unwrap();
    }
    let path = dir.join("arrays.npz");
    std::fs::write(&path, archive.finish().unwrap().into_inner()).unwrap();
    let model = fixture("adding/model");
    let args = [
        "explain",
        "--model",
        model.to_str().unwrap(),
        "--vectors",
        path.to_str().unwrap(),
    ];
    // One window: nothing is written.
    let run = with_window(&args, None);
    assert_eq!((run.code, run.stdout.as_str()), (1, ""), "{}", run.stderr);
    assert_eq!(run.stderr.lines().count(), 1, "{}", run.stderr);
    assert!(run.stderr.starts_with("error: array c: "), "{}", run.stderr);
    // Windows of two: the first window (a, b) is written; the second (c,
    // d) fails at c, before e is read.
    let run = with_window(&args, Some("2"));
    assert_eq!(run.code, 1);
    assert!(run.stderr.starts_with("error: array c: "), "{}", run.stderr);
    let written: Vec<serde_json::Value> = run.stdout.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    let names: Vec<&str> = written.iter().map(|l| l["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["a", "b"]);

    // A line over its limit, line 7, in the second window of four lines:
    // the first window is written, lines 5 and 6 (read with the bad line)
    // are not, and the error names the line.
    let input = sentences(&dir, 6);
    let mut text = std::fs::read_to_string(&input).unwrap();
    text.push_str(&"long ".repeat(100));
    text.push_str("\nshort\n");
    std::fs::write(&input, text).unwrap();
    let args = ["explain", "--input", input.to_str().unwrap(), "--max-line-size", "300"];
    let run = with_window(&args, Some("4"));
    assert_eq!(run.code, 1);
    assert_eq!(
        run.stderr.trim_end(),
        format!(
            "error: {}, line 7: more than the 300 bytes in one line allowed (raise the limit with --max-line-size)",
            input.display()
        )
    );
    let written: Vec<serde_json::Value> = run.stdout.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    let numbers: Vec<u64> = written.iter().map(|l| l["line"].as_u64().unwrap()).collect();
    assert_eq!(numbers, [1, 2, 3, 4]);
    // In one window nothing is written.
    let run = with_window(&args, None);
    assert_eq!((run.code, run.stdout.as_str()), (1, ""));
}

fn temporary_files(dir: &Path) -> Vec<String> {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".tmp"))
        .collect()
}

#[test]
fn out_streams_into_a_file_that_only_success_puts_in_place() {
    let dir = scratch_dir("streaming-out");
    let input = sentences(&dir, 12);
    let input = input.to_str().unwrap();
    let out = dir.join("explained.jsonl");
    let out_arg = out.to_str().unwrap();
    let to_stdout = lrp(&["explain", "--input", input]);
    let run = lrp(&["explain", "--input", input, "--window", "5", "--out", out_arg]);
    assert_eq!((run.code, run.stdout.as_str()), (0, ""), "{}", run.stderr);
    assert_eq!(std::fs::read_to_string(&out).unwrap(), to_stdout.stdout);
    assert_eq!(temporary_files(&dir), Vec::<String>::new());

    // A failure after two windows were written leaves the previous file
    // as it was, and no temporary file.
    let bad = dir.join("bad.txt");
    let mut text = std::fs::read_to_string(input).unwrap();
    text.push_str("\u{fffd}\n");
    let mut bytes = text.into_bytes();
    bytes.extend(b"\xff\xfe broken\n");
    std::fs::write(&bad, bytes).unwrap();
    let run = lrp(&[
        "explain",
        "--input",
        bad.to_str().unwrap(),
        "--window",
        "5",
        "--out",
        out_arg,
    ]);
    assert_eq!((run.code, run.stdout.as_str()), (1, ""));
    assert!(run.stderr.contains("line 15: not UTF-8 text"), "{}", run.stderr);
    assert_eq!(std::fs::read_to_string(&out).unwrap(), to_stdout.stdout);
    assert_eq!(temporary_files(&dir), Vec::<String>::new());
    let fresh = dir.join("fresh.jsonl");
    let run = lrp(&[
        "explain",
        "--input",
        bad.to_str().unwrap(),
        "--window",
        "5",
        "--out",
        fresh.to_str().unwrap(),
    ]);
    assert_eq!(run.code, 1);
    assert!(!fresh.exists());
    assert_eq!(temporary_files(&dir), Vec::<String>::new());
}

#[test]
fn size_limits_on_a_whole_streamed_input_hold_when_given() {
    // Not given, they do not hold (`LimitArgs::streaming_limits`, tested
    // in lrp-cli): a test here would need more than 100,000 lines.
    let dir = scratch_dir("streaming-limits");
    let input = sentences(&dir, 5);
    let input = input.to_str().unwrap();
    // Given: refused before anything is written, as before streaming.
    for (flag, value) in [
        ("--max-sequences", "4"),
        ("--max-total-tokens", "30"),
        ("--max-text-size", "100"),
    ] {
        let run = lrp(&["explain", "--input", input, flag, value]);
        assert_eq!((run.code, run.stdout.as_str()), (1, ""), "{flag}");
        assert!(run.stderr.contains(flag), "{flag}: {}", run.stderr);
    }
}
