//! Untrusted input (issue 12) as the real `lrp` process meets it: exit
//! codes, stdout and stderr as a script sees them, devices, FIFOs, signals.
//! Every case is bounded: a hang or an unbounded read is killed after a
//! timeout and fails the test.

mod common;

use std::io::Write;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{assert_fails, fixture, lrp_run_in as lrp_in, npy, scratch};

fn reference_model() -> String {
    fixture("reference/sst-bilstm").to_str().unwrap().to_string()
}

#[test]
fn a_shape_of_a_billion_empty_positions_fails_at_once() {
    let dir = scratch("shape");
    for (t, file) in [(1_000_000_000u64, "long.npy"), (1u64 << 62, "huge.npy")] {
        std::fs::write(dir.join(file), npy(&[t, 0], &[])).unwrap();
        let model = reference_model();
        assert_fails(&dir, &["explain", "--model", &model, "--vectors", file], "E >= 1");
    }
}

#[cfg(unix)]
#[test]
fn devices_and_fifos_fail_at_once() {
    let dir = scratch("devices");
    let model = reference_model();
    assert_fails(
        &dir,
        &["explain", "--model", &model, "--vectors", "/dev/zero"],
        "character device",
    );
    assert_fails(&dir, &["explain", "--input", "/dev/urandom"], "character device");
    assert_fails(&dir, &["eval", "--data", "/dev/zero"], "character device");
    assert!(Command::new("mkfifo").arg(dir.join("fifo")).status().unwrap().success());
    assert_fails(&dir, &["explain", "--model", &model, "--vectors", "fifo"], "FIFO");
    assert_fails(&dir, &["explain", "--input", "fifo"], "FIFO");
}

#[test]
fn a_zip_bomb_is_refused_before_it_expands() {
    let dir = scratch("bomb");
    // Eight entries of 32 MiB of zeros, 32 KB each compressed.
    let zeros = npy(&[1, 4 * 1024 * 1024], &vec![0.0; 4 * 1024 * 1024]);
    let mut writer = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    let options = zip::write::FileOptions::default().compression_method(zip::CompressionMethod::Deflated);
    for k in 0..8 {
        writer.start_file(format!("a{k}.npy"), options).unwrap();
        writer.write_all(&zeros).unwrap();
    }
    let bomb = writer.finish().unwrap().into_inner();
    assert!(bomb.len() < 1 << 20);
    std::fs::write(dir.join("bomb.npz"), bomb).unwrap();
    let model = reference_model();
    let args = ["explain", "--model", &model, "--vectors", "bomb.npz"];
    assert_fails(&dir, &args, "--max-npz-ratio");
    let raised = [&args[..], &["--max-npz-ratio", "100000", "--max-npz-size", "40M"]].concat();
    assert_fails(
        &dir,
        &raised,
        "more than the 41,943,040 decompressed bytes of one npz archive allowed",
    );
}

#[test]
fn multi_line_values_are_echoed_on_one_line() {
    let dir = scratch("one-line");
    let name = "two\nlines.npy";
    std::fs::write(dir.join(name), b"\x93NUMPY\x01\x00garbage").unwrap();
    let model = reference_model();
    assert_fails(
        &dir,
        &["explain", "--model", &model, "--vectors", name],
        "two\\nlines.npy",
    );
}

#[test]
fn out_dash_and_dev_stdout_write_to_standard_output() {
    let dir = scratch("stdout");
    for target in ["-", "/dev/stdout"] {
        let (code, stdout, stderr) = lrp_in(&dir, &["explain", "good film", "--out", target]);
        assert_eq!(code, Some(0), "{target}: {stderr}");
        assert!(stdout.starts_with("{\"scores\":"), "{target}: {stdout}");
    }
    assert_eq!(std::fs::read_dir(&dir).unwrap().count(), 0, "no file is made");
}

/// SIGINT while `--out` is being written: the handler removes the
/// temporary file and the process exits with 130. The test watches the
/// directory and interrupts the moment the temporary file appears (the
/// output, ~60 MB of per-dimension JSON, takes a while to write and sync).
#[test]
fn an_interrupt_while_writing_out_leaves_no_temporary_file() {
    let dir = scratch("sigint");
    let mut archive = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    let options = zip::write::FileOptions::default().compression_method(zip::CompressionMethod::Stored);
    let (t, e) = (2000u64, 60u64);
    let values: Vec<f64> = (0..t * e).map(|k| ((k % 17) as f64 - 8.0) * 0.01).collect();
    for k in 0..25 {
        archive.start_file(format!("s{k}.npy"), options).unwrap();
        archive.write_all(&npy(&[t, e], &values)).unwrap();
    }
    std::fs::write(dir.join("big.npz"), archive.finish().unwrap().into_inner()).unwrap();
    let model = reference_model();
    let mut child = common::lrp()
        .args(["explain", "--model", &model, "--vectors", "big.npz", "--per-dimension"])
        .args(["--out", "explained.jsonl"])
        .current_dir(&dir)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("lrp starts");
    let temporary = |dir: &Path| {
        std::fs::read_dir(dir)
            .unwrap()
            .filter_map(Result::ok)
            .any(|entry| entry.file_name().to_string_lossy().ends_with(".tmp"))
    };
    let started = Instant::now();
    let mut interrupted = false;
    while child.try_wait().unwrap().is_none() {
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "lrp did not finish in 60 s"
        );
        if !interrupted && temporary(&dir) {
            let status = Command::new("kill")
                .args(["-INT", &child.id().to_string()])
                .status()
                .unwrap();
            assert!(status.success());
            interrupted = true;
        }
        std::thread::sleep(Duration::from_micros(200));
    }
    let status = child.wait().unwrap();
    assert!(
        interrupted,
        "the temporary file was never seen: the test needs a larger output"
    );
    assert_eq!(status.code(), Some(130), "interrupted lrp exits 128 + SIGINT");
    assert!(!temporary(&dir), "a temporary file survived the interrupt");
    // Either the rename had happened (a complete file) or nothing is there.
    if let Ok(written) = std::fs::read_to_string(dir.join("explained.jsonl")) {
        assert_eq!(written.lines().count(), 25);
    }
}

/// `--rules` entries that can never apply to the model are refused in one
/// line naming the entry: a key that selects no site (`layer99` of a
/// one-layer model, `attention` without attention, `backward` of a
/// unidirectional one), and an entry whose sites earlier entries all take
/// (the first entry that selects a site wins). Entries that apply
/// somewhere still run. A seq2seq model's sites are its encoder's and its
/// decoder's.
#[test]
fn rules_that_can_never_apply_are_refused() {
    let dir = scratch("rules-never-apply");
    let model = fixture("parity/lstm-last-uni");
    let input = fixture("parity/inputs/lstm-last-uni-T7.npy");
    let base = [
        "explain",
        "--model",
        model.to_str().unwrap(),
        "--vectors",
        input.to_str().unwrap(),
        "--rules",
    ];
    let with = |spec: &'static str| [&base[..], &[spec]].concat();
    for (spec, phrase) in [
        (
            "layer99=zplus",
            "rule entry \"layer99=zplus\" selects no site of this model; its sites: encoder layer 0 forward projection i",
        ),
        ("attention=epsilon", "rule entry \"attention=epsilon\" selects no site"),
        ("backward.products=prop", "rule entry \"backward.products=prop\" selects no site"),
        (
            "head=zplus,head=flat",
            "rule entry \"head=flat\" never applies: \"head=zplus\" take every site it selects (head)",
        ),
        (
            "layer0=zplus,forward=flat",
            "rule entry \"forward=flat\" never applies: \"layer0=zplus\"",
        ),
    ] {
        assert_fails(&dir, &with(spec), phrase);
    }
    for spec in [
        "layer0=zplus,head=flat",
        "head=zplus,*=flat",
        "products=prop:0.25,*=zplus",
    ] {
        let (code, stdout, stderr) = lrp_in(&dir, &with(spec));
        assert_eq!(code, Some(0), "{spec}: {stderr}");
        assert!(stdout.contains("\"scores\""), "{spec}");
    }

    let seq2seq = fixture("seq2seq/bilstm-gru-general");
    let seq2seq_args = |spec: &'static str| {
        vec![
            "explain",
            "--model",
            seq2seq.to_str().unwrap(),
            "--text",
            "s2 s6 s0",
            "--output-text",
            "t2 t0",
            "--rules",
            spec,
        ]
    };
    assert_fails(
        &dir,
        &seq2seq_args("layer1=zplus"),
        "rule entry \"layer1=zplus\" selects no site",
    );
    assert_fails(
        &dir,
        &seq2seq_args("products=prop,layer0.products=abs"),
        "rule entry \"layer0.products=abs\" never applies: \"products=prop\"",
    );
    // The decoder's products and the encoder's backward direction exist.
    let (code, _, stderr) = lrp_in(&dir, &seq2seq_args("layer0.backward=zplus,products=prop"));
    assert_eq!(code, Some(0), "{stderr}");
    std::fs::remove_dir_all(dir).unwrap();
}
