//! Untrusted input, part 2 (issue 12): limits on every size, safe paths,
//! archives checked, `--out` written carefully, one-line messages. One
//! case or more per cause, through the library and through `lrp` run
//! in-process; the real process (exit codes, signals, FIFOs) is tested in
//! `lrp-cli/tests/untrusted_process.rs`.
//!
//! Every input here is small: the limits are lowered where a case needs
//! a large input to cross them, and compressed inputs declare their sizes
//! before anything is decompressed.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Duration;

use lrp_io::{load_model, parse_sequences, parse_sequences_with, tokenize_lines, Error, LimitKind, Limits};
use lrp_tests::{fixture, lrp, npy, scratch_dir, CliRun};

/// An npz archive of these `(file name, bytes)` entries, deflated or stored.
fn npz(entries: &[(&str, Vec<u8>)], deflate: bool) -> Vec<u8> {
    let method = if deflate {
        zip::CompressionMethod::Deflated
    } else {
        zip::CompressionMethod::Stored
    };
    let options = zip::write::FileOptions::default().compression_method(method);
    let mut writer = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    for (name, bytes) in entries {
        writer.start_file(*name, options).unwrap();
        writer.write_all(bytes).unwrap();
    }
    writer.finish().unwrap().into_inner()
}

/// The reference SST model (60-wide input vectors, weights in an npz).
fn reference_model() -> PathBuf {
    fixture("reference/sst-bilstm")
}

/// A copy of a model directory in a scratch directory.
fn copy_dir(from: &Path, test: &str) -> lrp_tests::ScratchDir {
    let dir = scratch_dir(test);
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        std::fs::copy(entry.path(), dir.join(entry.file_name())).unwrap();
    }
    dir
}

/// A copy of the reference model whose `weights.npz` holds, after all its
/// entries, its first entry once more under the name `rename(first)`, with
/// `edit` applied to the copy's bytes; returns the model directory and the
/// extra entry's name.
fn reference_weights_with_extra_entry(
    test: &str,
    rename: impl FnOnce(&str) -> String,
    edit: impl FnOnce(&mut Vec<u8>),
) -> (lrp_tests::ScratchDir, String) {
    let model = copy_dir(&reference_model(), test);
    let bytes = std::fs::read(model.join("weights.npz")).unwrap();
    let mut source = zip::ZipArchive::new(std::io::Cursor::new(bytes)).unwrap();
    let mut writer = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    for k in 0..source.len() {
        writer.raw_copy_file(source.by_index(k).unwrap()).unwrap();
    }
    let extra = rename(source.by_index(0).unwrap().name());
    let mut copy = Vec::new();
    std::io::Read::read_to_end(&mut source.by_index(0).unwrap(), &mut copy).unwrap();
    edit(&mut copy);
    writer
        .start_file(extra.clone(), zip::write::FileOptions::default())
        .unwrap();
    writer.write_all(&copy).unwrap();
    std::fs::write(model.join("weights.npz"), writer.finish().unwrap().into_inner()).unwrap();
    (model, extra)
}

/// The run failed with exit 1, printed nothing, and said on exactly one
/// line of stderr something containing `phrase`.
fn assert_one_line_error(run: &CliRun, phrase: &str) {
    assert_eq!(run.code, 1, "stderr: {}", run.stderr);
    assert!(run.stdout.is_empty(), "stdout: {}", run.stdout);
    assert_eq!(run.stderr.lines().count(), 1, "stderr: {:?}", run.stderr);
    assert!(run.stderr.ends_with('\n'));
    assert!(
        run.stderr.contains(phrase),
        "{:?} should mention {phrase:?}",
        run.stderr
    );
}

fn explain_vectors(path: &Path, extra: &[&str]) -> CliRun {
    let model = reference_model();
    let mut args = vec![
        "explain",
        "--model",
        model.to_str().unwrap(),
        "--vectors",
        path.to_str().unwrap(),
    ];
    args.extend(extra);
    lrp(&args)
}

// Cause 2: allocation sized by an npy shape with no data.

#[test]
fn npy_shapes_without_width_are_refused_before_anything_per_position() {
    let dir = scratch_dir("untrusted-npy-shape");
    for (t, file) in [(1_000_000_000u64, "long.npy"), (1u64 << 62, "huge.npy")] {
        let bytes = npy(&[t, 0], &[]);
        let err = parse_sequences(Path::new(file), &bytes).unwrap_err();
        assert!(
            matches!(&err, Error::InputShape { found, .. } if found == &[t, 0]),
            "{err}"
        );
        let path = dir.join(file);
        std::fs::write(&path, &bytes).unwrap();
        assert_one_line_error(&explain_vectors(&path, &[]), "E >= 1");
    }
    // A real width but more positions than the limit: refused from the
    // header, before the data is read.
    let bytes = npy(&[3, 2], &[0.5; 6]);
    let mut limits = Limits::default();
    limits.max_tokens = 2;
    let err = parse_sequences_with(Path::new("x.npy"), &bytes, &limits).unwrap_err();
    assert!(
        matches!(
            err,
            Error::Limit {
                kind: LimitKind::Tokens,
                limit: 2,
                ..
            }
        ),
        "{err}"
    );
}

// Cause 4: no length limit on text.

#[test]
fn a_long_line_and_a_line_of_many_tokens_are_refused() {
    let dir = scratch_dir("untrusted-long-line");
    let long = dir.join("long.txt");
    std::fs::write(&long, format!("good\n{}\n", ".".repeat(200_000))).unwrap();
    let err = tokenize_lines(&long, &std::fs::read_to_string(&long).unwrap(), &Limits::default()).unwrap_err();
    assert!(
        matches!(
            err,
            Error::Limit {
                kind: LimitKind::LineBytes,
                line: Some(2),
                ..
            }
        ),
        "{err}"
    );
    assert_one_line_error(
        &lrp(&["explain", "--input", long.to_str().unwrap()]),
        "line 2: more than the 100,000 bytes in one line allowed (raise the limit with --max-line-size)",
    );
    // 20,000 one-character tokens fit in a line; what they may cost to
    // explain decides (LRP: 40,000 position-passes; occlusion: 400 million).
    let many = ". ".repeat(20_000);
    assert_one_line_error(
        &lrp(&["explain", "--method", "occlusion", "--text", &many]),
        "TEXT: explaining it needs about 400,020,000 position-passes of work, more than the 2,000,000 allowed (raise the limit with --max-work)",
    );
    assert_one_line_error(
        &lrp(&["explain", "--max-tokens", "3", "this is too long"]),
        "--max-tokens",
    );
}

// Cause 5: zip bombs.

#[test]
fn npz_entries_are_checked_against_size_total_and_ratio_before_decompressing() {
    // 8 MiB of zeros deflates to about 8 KB: a ratio of ~1,000.
    let zeros = npy(&[1024 * 1024, 1], &vec![0.0; 1024 * 1024]);
    let bomb = npz(&[("x.npy", zeros)], true);
    assert!(bomb.len() < 100_000, "{}", bomb.len());
    let err = parse_sequences(Path::new("bomb.npz"), &bomb).unwrap_err();
    assert!(
        matches!(
            err,
            Error::Limit {
                kind: LimitKind::NpzRatio,
                ..
            }
        ),
        "{err}"
    );

    // Five 800 KB entries (under the ratio's 1 MiB floor) against a 3 MiB total.
    let small = npy(&[1, 100_000], &vec![0.0; 100_000]);
    let entries: Vec<(String, Vec<u8>)> = (0..5).map(|k| (format!("a{k}.npy"), small.clone())).collect();
    let entries: Vec<(&str, Vec<u8>)> = entries.iter().map(|(n, b)| (n.as_str(), b.clone())).collect();
    let many = npz(&entries, true);
    let mut limits = Limits::default();
    limits.max_npz_total_bytes = 3 << 20;
    let err = parse_sequences_with(Path::new("many.npz"), &many, &limits).unwrap_err();
    assert!(
        matches!(
            err,
            Error::Limit {
                kind: LimitKind::NpzTotalBytes,
                ..
            }
        ),
        "{err}"
    );
    limits.max_npz_entry_bytes = 100_000;
    let err = parse_sequences_with(Path::new("many.npz"), &many, &limits).unwrap_err();
    assert!(
        matches!(
            err,
            Error::Limit {
                kind: LimitKind::NpzEntryBytes,
                ..
            }
        ),
        "{err}"
    );

    let dir = scratch_dir("untrusted-zip-bomb");
    let (bomb_path, many_path) = (dir.join("bomb.npz"), dir.join("many.npz"));
    std::fs::write(&bomb_path, &bomb).unwrap();
    std::fs::write(&many_path, &many).unwrap();
    assert_one_line_error(&explain_vectors(&bomb_path, &[]), "--max-npz-ratio");
    assert_one_line_error(
        &explain_vectors(&many_path, &["--max-npz-size", "3M"]),
        "--max-npz-size",
    );
}

#[test]
fn a_weights_npz_is_held_to_the_npz_limits() {
    let dir = copy_dir(&reference_model(), "untrusted-weights-bomb");
    let model = dir.to_str().unwrap();
    let input = fixture("golden/inputs/reference-2.npy");
    let run = lrp(&[
        "explain",
        "--model",
        model,
        "--vectors",
        input.to_str().unwrap(),
        "--max-npz-size",
        "1K",
    ]);
    assert_one_line_error(
        &run,
        "weights.npz: more than the 1,024 decompressed bytes of one npz archive allowed",
    );
    let run = lrp(&[
        "explain",
        "--model",
        model,
        "--vectors",
        input.to_str().unwrap(),
        "--max-weights-size",
        "1K",
    ]);
    assert_one_line_error(&run, "more than the 1,024 bytes of a weights file allowed");
}

// Causes 6 and 7: devices and FIFOs where a file is expected.

#[cfg(unix)]
#[test]
fn devices_are_refused_for_every_file_lrp_reads() {
    let zero = "/dev/zero";
    let err = lrp_io::read_sequences(zero).unwrap_err();
    assert!(
        matches!(
            err,
            Error::NotRegularFile {
                found: "character device",
                ..
            }
        ),
        "{err}"
    );
    assert_one_line_error(
        &explain_vectors(Path::new(zero), &[]),
        "/dev/zero: it is a character device",
    );
    assert_one_line_error(&lrp(&["explain", "--input", "/dev/urandom"]), "not a regular file");
    assert_one_line_error(&lrp(&["eval", "--data", zero]), "not a regular file");
    assert_one_line_error(&lrp(&["perturb", "--data", zero]), "not a regular file");

    // Model files: config, weights, vocabulary linked to devices (the
    // weights and vocabulary are also outside the model directory).
    let golden = fixture("golden/models/emb-bilstm-context");
    for (file, device, phrase) in [
        ("config.json", zero, "config.json: it is a character device"),
        ("model.safetensors", "/dev/urandom", "/dev/urandom"),
        ("vocab.txt", zero, "/dev/zero"),
    ] {
        let dir = copy_dir(&golden, &format!("untrusted-device-{file}"));
        std::fs::remove_file(dir.join(file)).unwrap();
        std::os::unix::fs::symlink(device, dir.join(file)).unwrap();
        let err = load_model::<f64>(&dir).unwrap_err();
        assert!(
            matches!(err, Error::NotRegularFile { .. } | Error::OutsideModelDir { .. }),
            "{file}: {err}"
        );
        let run = lrp(&["explain", "--model", dir.to_str().unwrap(), "--text", "good"]);
        assert_one_line_error(&run, phrase);
    }
}

#[cfg(unix)]
#[test]
fn a_fifo_is_refused_without_waiting_for_a_writer() {
    let dir = scratch_dir("untrusted-fifo");
    let fifo = dir.join("input.npy");
    let made = std::process::Command::new("mkfifo").arg(&fifo).status().unwrap();
    assert!(made.success());
    // On a blocking open this thread would never return.
    let (sender, receiver) = std::sync::mpsc::channel();
    let path = fifo.clone();
    std::thread::spawn(move || {
        let _ = sender.send((lrp_io::read_sequences(&path).map(|_| ()), explain_vectors(&path, &[])));
    });
    let (api, run) = receiver
        .recv_timeout(Duration::from_secs(20))
        .expect("reading a FIFO hangs");
    let err = api.unwrap_err();
    assert!(matches!(err, Error::NotRegularFile { found: "FIFO", .. }), "{err}");
    assert_one_line_error(&run, "it is a FIFO, not a regular file");
}

#[test]
fn a_file_over_its_size_limit_is_refused() {
    let dir = scratch_dir("untrusted-file-size");
    let input = dir.join("lines.txt");
    std::fs::write(&input, "good film\nbad film\n").unwrap();
    let run = lrp(&["explain", "--input", input.to_str().unwrap(), "--max-text-size", "10"]);
    assert_one_line_error(
        &run,
        "more than the 10 bytes of text input allowed (raise the limit with --max-text-size)",
    );
    let data = fixture("sst/dev.txt");
    let run = lrp(&["eval", "--data", data.to_str().unwrap(), "--max-data-size", "1K"]);
    assert_one_line_error(&run, "--max-data-size");
}

// Cause 8: --out.

#[test]
fn out_never_follows_a_planted_link_and_replaces_only_regular_files() {
    let dir = scratch_dir("untrusted-out");
    let victim = dir.join("victim.txt");
    std::fs::write(&victim, "keep me").unwrap();
    let target = dir.join("out.json");
    // The old temporary name was predictable: .out.json.<pid>.tmp.
    #[cfg(unix)]
    std::os::unix::fs::symlink(&victim, dir.join(format!(".out.json.{}.tmp", std::process::id()))).unwrap();
    let run = lrp(&["explain", "good film", "--out", target.to_str().unwrap()]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_eq!(std::fs::read_to_string(&victim).unwrap(), "keep me");
    assert!(std::fs::read_to_string(&target).unwrap().starts_with("{\"scores\":"));

    // A link at the target is refused, and what it points at is kept.
    #[cfg(unix)]
    {
        let link = dir.join("link.json");
        std::os::unix::fs::symlink(&victim, &link).unwrap();
        let run = lrp(&["explain", "good film", "--out", link.to_str().unwrap()]);
        assert_one_line_error(&run, "it is a symbolic link; only a regular file is replaced");
        assert_eq!(std::fs::read_to_string(&victim).unwrap(), "keep me");
        assert!(std::fs::symlink_metadata(&link).unwrap().file_type().is_symlink());
        let fifo = dir.join("fifo");
        assert!(std::process::Command::new("mkfifo")
            .arg(&fifo)
            .status()
            .unwrap()
            .success());
        let run = lrp(&["explain", "good film", "--out", fifo.to_str().unwrap()]);
        assert_one_line_error(&run, "it is a FIFO");
    }
    let run = lrp(&["explain", "good film", "--out", dir.to_str().unwrap()]);
    assert_one_line_error(&run, "it is a directory");

    // The longest legal name works, and no temporary file is left.
    let long = dir.join("n".repeat(255));
    let run = lrp(&["explain", "good film", "--out", long.to_str().unwrap()]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert!(long.is_file());
    let leftovers: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with(".lrp-"))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
}

#[test]
fn out_dash_means_standard_output() {
    let run = lrp(&["explain", "good film", "--out", "-"]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert!(run.stdout.starts_with("{\"scores\":"), "{}", run.stdout);
    assert!(!Path::new("-").exists());
}

// Cause 10: archives.

#[test]
fn an_npz_with_a_bad_crc_is_refused() {
    let values: Vec<f64> = (0..120).map(|k| k as f64 / 100.0).collect();
    let mut archive = npz(&[("x.npy", npy(&[2, 60], &values))], false);
    // Stored, not deflated: the array's last value is in the clear.
    let last = 0.5f64.to_le_bytes();
    let at = archive
        .windows(8)
        .position(|w| w == (119.0f64 / 100.0).to_le_bytes())
        .expect("the last value is stored");
    archive[at..at + 8].copy_from_slice(&last);
    let err = parse_sequences(Path::new("x.npz"), &archive).unwrap_err();
    assert!(err.to_string().contains("checksum"), "{err}");
    let dir = scratch_dir("untrusted-crc");
    let path = dir.join("x.npz");
    std::fs::write(&path, &archive).unwrap();
    assert_one_line_error(&explain_vectors(&path, &[]), "Invalid checksum");
}

/// An input npz that names the array `a` twice is refused, through the
/// library and the CLI.
fn assert_input_names_a_twice(archive: &[u8], test: &str) {
    let err = parse_sequences(Path::new("x.npz"), archive).unwrap_err();
    assert!(
        matches!(&err, Error::DuplicateName { name, .. } if name == "a"),
        "{err}"
    );
    let dir = scratch_dir(test);
    let path = dir.join("x.npz");
    std::fs::write(&path, archive).unwrap();
    assert_one_line_error(&explain_vectors(&path, &[]), "the name \"a\" appears twice");
}

#[test]
fn two_arrays_of_one_name_are_refused_in_inputs_and_weights() {
    let one = npy(&[1, 60], &[0.25; 60]);
    let two = npy(&[2, 60], &[0.5; 120]);
    let archive = npz(&[("a.npy", one), ("a.npy", two)], true);
    assert_input_names_a_twice(&archive, "untrusted-duplicate-inputs");

    // The reference weights with their first array repeated (other values).
    let (model, _) = reference_weights_with_extra_entry(
        "untrusted-duplicate-weights",
        |first| first.to_string(),
        |copy| {
            let last = copy.len() - 8;
            copy[last..].copy_from_slice(&7.0f64.to_le_bytes());
        },
    );
    let err = load_model::<f64>(&model).unwrap_err();
    assert!(matches!(&err, Error::DuplicateName { .. }), "{err}");
    let input = fixture("golden/inputs/reference-2.npy");
    let run = lrp(&[
        "explain",
        "--model",
        model.to_str().unwrap(),
        "--vectors",
        input.to_str().unwrap(),
    ]);
    assert_one_line_error(&run, "appears twice");
}

#[test]
fn a_tensor_named_twice_in_a_safetensors_header_is_refused() {
    let dir = copy_dir(&fixture("golden/models/bilstm-context"), "untrusted-duplicate-tensor");
    let path = dir.join("model.safetensors");
    let bytes = std::fs::read(&path).unwrap();
    let length = u64::from_le_bytes(bytes[..8].try_into().unwrap()) as usize;
    let header = std::str::from_utf8(&bytes[8..8 + length]).unwrap();
    // A first copy of `attention.query`, pointing at other data; a reader
    // that keeps the last copy never notices it.
    let planted = header.replacen(
        '{',
        r#"{"attention.query":{"dtype":"F64","shape":[4],"data_offsets":[0,32]},"#,
        1,
    );
    let mut edited = (planted.len() as u64).to_le_bytes().to_vec();
    edited.extend(planted.as_bytes());
    edited.extend(&bytes[8 + length..]);
    std::fs::write(&path, edited).unwrap();
    let err = load_model::<f64>(&dir).unwrap_err();
    assert!(
        matches!(&err, Error::DuplicateName { name, .. } if name == "attention.query"),
        "{err}"
    );
    let input = fixture("golden/inputs/bilstm-context-1.npy");
    let run = lrp(&[
        "explain",
        "--model",
        dir.to_str().unwrap(),
        "--vectors",
        input.to_str().unwrap(),
    ]);
    assert_one_line_error(&run, "\"attention.query\" appears twice");
}

// Cause 11: paths through symbolic links.

#[cfg(unix)]
#[test]
fn weights_through_a_linked_directory_are_refused() {
    let outside = copy_dir(&fixture("golden/models/bilstm-context"), "untrusted-outside");
    let dir = copy_dir(&fixture("golden/models/bilstm-context"), "untrusted-linked");
    std::os::unix::fs::symlink(&outside, dir.join("link")).unwrap();
    std::os::unix::fs::symlink("/", dir.join("root")).unwrap();
    for weights in ["link/model.safetensors", "root/etc/hostname"] {
        let config = std::fs::read_to_string(dir.join("config.json")).unwrap();
        let mut value: serde_json::Value = serde_json::from_str(&config).unwrap();
        value["weights"] = weights.into();
        std::fs::write(dir.join("config.json"), value.to_string()).unwrap();
        let err = load_model::<f64>(&dir).unwrap_err();
        assert!(matches!(err, Error::OutsideModelDir { .. }), "{weights}: {err}");
        let input = fixture("golden/inputs/bilstm-context-1.npy");
        let run = lrp(&[
            "explain",
            "--model",
            dir.to_str().unwrap(),
            "--vectors",
            input.to_str().unwrap(),
        ]);
        assert_one_line_error(&run, "outside the model directory");
    }
}

// Cause 12: one line, whatever the input says.

#[test]
fn errors_are_one_line_with_values_cut_and_escaped() {
    let dir = scratch_dir("untrusted-messages");
    // A name with a newline and an escape sequence.
    let name = dir.join("bad\nname\u{1b}[2J.npy");
    std::fs::write(&name, b"not an array").unwrap();
    let run = explain_vectors(&name, &[]);
    assert_one_line_error(&run, "bad\\nname\\u{1b}[2J.npy");

    // The npy header parser's multi-line diagram.
    let mut broken = npy(&[2, 60], &[0.0; 120]);
    let at = broken.windows(5).position(|w| w == b"False").unwrap();
    broken[at..at + 5].copy_from_slice(b"Fa!se");
    let path = dir.join("broken.npy");
    std::fs::write(&path, &broken).unwrap();
    assert_one_line_error(&explain_vectors(&path, &[]), "not a valid npy array");

    // 5,000 unexpected tensors: listed as ten and a count.
    let model = copy_dir(&fixture("golden/models/bilstm-context"), "untrusted-many-names");
    let path = model.join("model.safetensors");
    let bytes = std::fs::read(&path).unwrap();
    let file = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    let mut tensors: Vec<(String, safetensors::tensor::TensorView<'_>)> =
        file.iter().map(|(n, v)| (n.to_string(), v)).collect();
    let one = [0u8; 8];
    for k in 0..5000 {
        tensors.push((
            format!("extra.{k:05}\n"),
            safetensors::tensor::TensorView::new(safetensors::Dtype::F64, vec![1], &one).unwrap(),
        ));
    }
    std::fs::write(&path, safetensors::serialize(tensors, None).unwrap()).unwrap();
    let input = fixture("golden/inputs/bilstm-context-1.npy");
    let run = lrp(&[
        "explain",
        "--model",
        model.to_str().unwrap(),
        "--vectors",
        input.to_str().unwrap(),
    ]);
    assert_one_line_error(&run, "extra.00000\\n, extra.00001\\n");
    assert!(run.stderr.contains("and 4,990 more"), "{}", run.stderr);
    assert!(run.stderr.len() < 1000, "{}", run.stderr.len());

    // A huge value echoed from a config.
    let model = copy_dir(&fixture("golden/models/bilstm-context"), "untrusted-huge-value");
    let config = std::fs::read_to_string(model.join("config.json")).unwrap();
    let mut value: serde_json::Value = serde_json::from_str(&config).unwrap();
    value["format"] = format!("{}\n", "x".repeat(500_000)).into();
    std::fs::write(model.join("config.json"), value.to_string()).unwrap();
    let run = lrp(&[
        "explain",
        "--model",
        model.to_str().unwrap(),
        "--vectors",
        input.to_str().unwrap(),
    ]);
    assert_one_line_error(&run, "config: format");
    assert!(run.stderr.len() < 2500, "{}", run.stderr.len());
}

// Cause 16: memory grows with the input; here, its limits.

#[test]
fn inputs_are_limited_in_lines_and_positions() {
    let dir = scratch_dir("untrusted-lines");
    let input = dir.join("lines.txt");
    std::fs::write(&input, "good film\n".repeat(11)).unwrap();
    let text = std::fs::read_to_string(&input).unwrap();
    let mut limits = Limits::default();
    limits.max_sequences = 10;
    let err = tokenize_lines(&input, &text, &limits).unwrap_err();
    assert!(
        matches!(
            err,
            Error::Limit {
                kind: LimitKind::Sequences,
                limit: 10,
                ..
            }
        ),
        "{err}"
    );
    limits.max_sequences = 11;
    limits.max_total_tokens = 21;
    let err = tokenize_lines(&input, &text, &limits).unwrap_err();
    assert!(
        matches!(
            err,
            Error::Limit {
                kind: LimitKind::TotalTokens,
                ..
            }
        ),
        "{err}"
    );
    limits.max_total_tokens = 22;
    assert_eq!(tokenize_lines(&input, &text, &limits).unwrap().len(), 11);

    let file = input.to_str().unwrap();
    assert_one_line_error(
        &lrp(&["explain", "--input", file, "--max-sequences", "10"]),
        "--max-sequences",
    );
    assert_one_line_error(
        &lrp(&["explain", "--input", file, "--max-total-tokens", "21"]),
        "--max-total-tokens",
    );
    let data = fixture("sst/dev.txt");
    let run = lrp(&["eval", "--data", data.to_str().unwrap(), "--max-sequences", "100"]);
    assert_one_line_error(&run, "more than the 100 sequences in one input allowed");
    let arrays: Vec<(String, Vec<u8>)> = (0..3)
        .map(|k| (format!("a{k}.npy"), npy(&[1, 60], &[0.1; 60])))
        .collect();
    let arrays: Vec<(&str, Vec<u8>)> = arrays.iter().map(|(n, b)| (n.as_str(), b.clone())).collect();
    let path = dir.join("three.npz");
    std::fs::write(&path, npz(&arrays, true)).unwrap();
    assert_one_line_error(&explain_vectors(&path, &["--max-sequences", "2"]), "--max-sequences");
    assert_eq!(explain_vectors(&path, &["--max-sequences", "3"]).json_lines().len(), 3);
}

// Cause 10, again: numpy reads the entries `x.npy` and `x` as one array
// name, `x`; lrp reads only the first but must not pick one in silence.

#[test]
fn an_entry_and_its_npy_twin_are_one_name_twice() {
    let archive = npz(
        &[("a.npy", npy(&[1, 60], &[0.25; 60])), ("a", npy(&[2, 60], &[0.5; 120]))],
        true,
    );
    assert_input_names_a_twice(&archive, "untrusted-npy-twin");

    // The same in weights: the reference model's first array again,
    // without the suffix (numpy's `np.load(f)[name]` would return this one).
    let (model, twin) = reference_weights_with_extra_entry(
        "untrusted-npy-twin-weights",
        |first| {
            first
                .strip_suffix(".npy")
                .expect("weights are .npy entries")
                .to_string()
        },
        |_| {},
    );
    let err = load_model::<f64>(&model).unwrap_err();
    assert!(
        matches!(&err, Error::DuplicateName { name, .. } if name == &twin),
        "{err}"
    );
    // Entries that are not arrays and name no array stay ignored.
    let archive = npz(
        &[("a.npy", npy(&[1, 60], &[0.25; 60])), ("notes.txt", b"hello".to_vec())],
        true,
    );
    assert_eq!(parse_sequences(Path::new("x.npz"), &archive).unwrap().len(), 1);
}

// Cause 13, again: model-info's text view shows a config's labels and
// names with their control characters escaped.

#[test]
fn model_info_text_escapes_what_the_config_says() {
    let model = copy_dir(&fixture("golden/models/lstm-last"), "untrusted-model-info-text");
    let config = std::fs::read_to_string(model.join("config.json")).unwrap();
    let mut value: serde_json::Value = serde_json::from_str(&config).unwrap();
    value["labels"] = serde_json::json!(["\u{1b}]0;title\u{7}", "\u{1b}[2J", "\u{202e}right"]);
    std::fs::write(model.join("config.json"), value.to_string()).unwrap();
    let run = lrp(&["model-info", model.to_str().unwrap(), "--format", "text"]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    let labels = run.stdout.lines().find(|l| l.starts_with("labels")).unwrap();
    assert_eq!(labels, "labels     \\u{1b}]0;title\\u{7}, \\u{1b}[2J, \\u{202e}right");
    assert!(
        !run.stdout.contains(['\u{1b}', '\u{7}', '\u{202e}']),
        "{:?}",
        run.stdout
    );
}

// Cause 5, again: the total is checked over the whole directory before any
// entry is decompressed, not entry by entry while the archive expands
// (a bomb spread over many entries cost up to the whole 2 GiB total).

#[test]
fn an_npz_total_is_refused_before_the_first_entry_is_decompressed() {
    let array = npy(&[1, 60], &[0.25; 60]);
    // The first entry is not an array at all: an archive read entry by
    // entry fails on it; one checked first fails on the total.
    let entries: Vec<(String, Vec<u8>)> = std::iter::once(("a0.npy".to_string(), b"not an array".to_vec()))
        .chain((1..20).map(|k| (format!("a{k}.npy"), array.clone())))
        .collect();
    let entries: Vec<(&str, Vec<u8>)> = entries.iter().map(|(n, b)| (n.as_str(), b.clone())).collect();
    let archive = npz(&entries, true);
    let mut limits = Limits::default();
    limits.max_npz_total_bytes = 5 * array.len() as u64;
    let err = parse_sequences_with(Path::new("x.npz"), &archive, &limits).unwrap_err();
    assert!(
        matches!(
            err,
            Error::Limit {
                kind: LimitKind::NpzTotalBytes,
                ..
            }
        ),
        "{err}"
    );
    limits.max_npz_total_bytes = 20 * array.len() as u64;
    let err = parse_sequences_with(Path::new("x.npz"), &archive, &limits).unwrap_err();
    assert!(err.to_string().contains("a0: not a valid npy array"), "{err}");
}
