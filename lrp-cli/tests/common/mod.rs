//! What the process tests share: fixture paths, scratch files, and running
//! the real `lrp` with a deadline.

#![allow(dead_code)] // each test binary uses a part

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// How long any run may take before it counts as hung.
pub const DEADLINE: Duration = Duration::from_secs(30);

/// The real binary.
pub fn lrp() -> Command {
    Command::new(env!("CARGO_BIN_EXE_lrp"))
}

/// The real binary started by `sh` with `redirections` applied (`>&-`
/// closes stdout: a closed descriptor cannot be set up with `Stdio`).
pub fn lrp_redirected(redirections: &str) -> Command {
    lrp_by_sh(&format!("exec \"$0\" \"$@\" {redirections}"))
}

/// The real binary started by `sh -c script`, where the script ends in
/// `exec "$0" "$@"` (`$0` is the binary).
fn lrp_by_sh(script: &str) -> Command {
    let mut command = Command::new("sh");
    command.arg("-c").arg(script).arg(env!("CARGO_BIN_EXE_lrp"));
    command
}

pub fn fixture(path: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../tests/fixtures")
        .join(path)
}

/// A fresh directory for one test's files, removed when the test passes
/// (a failing test leaves it behind to look at: the panic skips the
/// removal). Some tests write a hundred megabytes; without the removal
/// every run would leave them in the temporary directory.
pub struct Scratch(PathBuf);

impl std::ops::Deref for Scratch {
    type Target = PathBuf;

    fn deref(&self) -> &PathBuf {
        &self.0
    }
}

impl AsRef<std::path::Path> for Scratch {
    fn as_ref(&self) -> &std::path::Path {
        &self.0
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        if !std::thread::panicking() {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }
}

/// A fresh, empty [`Scratch`] directory named for the test.
pub fn scratch(name: &str) -> Scratch {
    let dir = std::env::temp_dir().join(format!("lrp-cli-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    Scratch(dir)
}

/// A file of `n` short reviews, one a line, and a blank line after the
/// first (so line numbers and positions differ).
pub fn reviews(dir: &std::path::Path, n: usize) -> PathBuf {
    let phrases = [
        "a gorgeous , witty film .",
        "the plot is a mess .",
        "neither funny nor suspenseful .",
        "it 's fine",
    ];
    let mut text = String::new();
    for k in 0..n {
        text.push_str(phrases[k % phrases.len()]);
        text.push('\n');
        if k == 0 {
            text.push('\n');
        }
    }
    let path = dir.join("reviews.txt");
    std::fs::write(&path, text).unwrap();
    path
}

/// How a run ended.
#[derive(Debug)]
pub struct Finished {
    pub code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
}

/// Waits for `child` (its stdout and stderr piped, or not captured) for at
/// most [`DEADLINE`]; a child still running then is killed and the test
/// fails.
pub fn finish(mut child: Child, what: &str) -> Finished {
    let readers = [child.stdout.take().map(drain), child.stderr.take().map(drain)];
    let started = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if started.elapsed() > DEADLINE {
            let _ = child.kill();
            let _ = child.wait();
            panic!("{what}: still running after {DEADLINE:?} (hung); killed");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let [stdout, stderr] = readers.map(|r| r.map(|r| r.join().unwrap()).unwrap_or_default());
    Finished {
        code: status.code(),
        stdout,
        stderr,
    }
}

/// Reads a stream to its end on a thread of its own (a full pipe would
/// otherwise stop the child).
pub fn drain(mut stream: impl Read + Send + 'static) -> std::thread::JoinHandle<String> {
    std::thread::spawn(move || {
        let mut bytes = Vec::new();
        let _ = stream.read_to_end(&mut bytes);
        String::from_utf8_lossy(&bytes).into_owned()
    })
}

/// Runs `lrp args` in `dir` with stdin closed, stdout and stderr captured,
/// within [`DEADLINE`]: (exit code, stdout, stderr).
pub fn lrp_run_in(dir: &Path, args: &[&str]) -> (Option<i32>, String, String) {
    run_in(lrp(), dir, args)
}

/// The real binary started by `sh` with its address space capped at
/// `kilobytes` (`ulimit -v`): a run that needs more fails to allocate.
pub fn lrp_within(kilobytes: u64) -> Command {
    lrp_by_sh(&format!("ulimit -v {kilobytes} && exec \"$0\" \"$@\""))
}

/// [`lrp_run_in`] with `command` (the binary as [`lrp`] or
/// [`lrp_within`] starts it).
pub fn run_in(mut command: Command, dir: &Path, args: &[&str]) -> (Option<i32>, String, String) {
    let child = command
        .args(args)
        .current_dir(dir)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("lrp starts");
    let done = finish(child, &format!("lrp {args:?}"));
    (done.code, done.stdout, done.stderr)
}

/// Runs `lrp args` in `dir` as [`lrp_run_in`] and checks that it fails
/// as bad input does ([`assert_bad_input`]).
pub fn assert_fails(dir: &Path, args: &[&str], phrase: &str) {
    assert_bad_input(&format!("{args:?}"), lrp_run_in(dir, args), phrase);
}

/// Checks that a run (`what` names it in messages) failed as bad input
/// does: exit 1, nothing on stdout, one line on stderr containing `phrase`.
pub fn assert_bad_input(what: &str, (code, stdout, stderr): (Option<i32>, String, String), phrase: &str) {
    assert_eq!(code, Some(1), "{what}: {stderr}");
    assert!(stdout.is_empty(), "{what}: {stdout}");
    assert_eq!(stderr.lines().count(), 1, "{what}: {stderr:?}");
    assert!(stderr.contains(phrase), "{what}: {stderr:?} should mention {phrase:?}");
}

/// [`lrp_run_in`] in the current directory.
pub fn lrp_run(args: &[&str]) -> (Option<i32>, String, String) {
    lrp_run_in(Path::new("."), args)
}

/// Runs `lrp explain --model MODEL --format json EXTRA...`, which must
/// succeed with one JSON line, and parses it.
pub fn explain_model(model: &Path, extra: &[&str]) -> serde_json::Value {
    let mut args = vec!["explain", "--model", model.to_str().unwrap(), "--format", "json"];
    args.extend_from_slice(extra);
    let (code, stdout, stderr) = lrp_run(&args);
    assert_eq!((code, stderr.as_str()), (Some(0), ""), "{args:?}");
    assert_eq!(stdout.lines().count(), 1);
    serde_json::from_str(&stdout).unwrap()
}

/// The one line of a run of `lrp explain --model MODEL EXTRA...` that
/// must fail as bad input, without a panic.
pub fn explain_refused(model: &Path, extra: &[&str]) -> String {
    let mut args = vec!["explain", "--model", model.to_str().unwrap()];
    args.extend_from_slice(extra);
    let (code, stdout, stderr) = lrp_run(&args);
    assert_eq!(code, Some(1), "{args:?}: {stdout}");
    assert!(stdout.is_empty());
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
    stderr
}

/// `got` equals `want` within `tolerance` relative to `max(|want|, 1)`.
pub fn assert_close(got: &[f64], want: &[f64], tolerance: f64, what: &str) {
    assert_eq!(got.len(), want.len(), "{what}");
    for (g, w) in got.iter().zip(want) {
        assert!(
            (g - w).abs() <= tolerance * w.abs().max(1.0),
            "{what}: {got:?} vs {want:?}"
        );
    }
}

/// An npy file (`<f8`, C order) of this shape and values.
pub fn npy(shape: &[u64], values: &[f64]) -> Vec<u8> {
    let dims: Vec<String> = shape.iter().map(u64::to_string).collect();
    let mut header = format!(
        "{{'descr': '<f8', 'fortran_order': False, 'shape': ({}), }}",
        dims.join(", ")
    );
    while (10 + header.len() + 1) % 64 != 0 {
        header.push(' ');
    }
    header.push('\n');
    let mut bytes = b"\x93NUMPY\x01\x00".to_vec();
    bytes.extend((header.len() as u16).to_le_bytes());
    bytes.extend(header.as_bytes());
    values.iter().for_each(|v| bytes.extend(v.to_le_bytes()));
    bytes
}

/// One run of every command that can take long, each small enough to be
/// quick here, with its files written into `dir`: (what the progress
/// display names, the arguments). `import` comes before `check`, which
/// reads nothing it writes.
pub fn long_runs(dir: &Path) -> Vec<(&'static str, Vec<String>)> {
    let labelled = dir.join("few.tsv");
    std::fs::write(
        &labelled,
        "1\tneither funny nor suspenseful .\n4\ta gorgeous , witty , seductive movie .\n\
         0\tthe plot is a mess .\n3\tit 's a fine film .\n",
    )
    .unwrap();
    // The first cases of the reversal task's held-out set.
    let heldout: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(fixture("seq2seq-reverse/heldout.json")).unwrap()).unwrap();
    let few: Vec<serde_json::Value> = heldout["sequences"].as_array().unwrap()[..6].to_vec();
    let aligned = dir.join("aligned.json");
    std::fs::write(&aligned, serde_json::json!({ "sequences": few }).to_string()).unwrap();
    // Scores the adding model does not compute: `check` tries every change.
    let x = dir.join("x.npy");
    std::fs::write(&x, npy(&[3, 2], &[0.5, 1.0, 0.2, 0.0, 0.7, 1.0])).unwrap();
    let wrong = dir.join("wrong.json");
    std::fs::write(&wrong, r#"{"scores": [42.0]}"#).unwrap();
    let input = reviews(dir, 8);
    let path = |p: &Path| p.to_str().unwrap().to_string();
    let args = |list: &[&str]| list.iter().map(|a| a.to_string()).collect::<Vec<String>>();
    let adding = path(&fixture("adding/model"));
    let reversal = path(&fixture("seq2seq-reverse/model"));
    vec![
        (
            "perturb",
            args(&[
                "perturb",
                "--data",
                &path(&labelled),
                "--methods",
                "lrp,random",
                "--steps",
                "2",
            ]),
        ),
        (
            "perturb",
            args(&[
                "perturb",
                "--model",
                &path(&fixture("motions/model")),
                "--vectors",
                &path(&fixture("motions/test.csv")),
                "--series-column",
                "case",
                "--label-column",
                "activity",
                "--time-column",
                "t",
                "--methods",
                "random",
                "--steps",
                "2",
            ]),
        ),
        ("eval", args(&["eval", "--data", &path(&labelled)])),
        (
            "groundtruth",
            args(&[
                "groundtruth",
                "--model",
                &adding,
                "--data",
                &path(&fixture("adding/heldout.npz")),
                "--methods",
                "random",
            ]),
        ),
        (
            "groundtruth",
            args(&[
                "groundtruth",
                "--model",
                &reversal,
                "--data",
                &path(&aligned),
                "--methods",
                "random",
            ]),
        ),
        ("explain", args(&["explain", "--input", &path(&input)])),
        (
            "explain",
            args(&[
                "explain",
                "--model",
                &adding,
                "--vectors",
                &path(&fixture("adding/heldout.npz")),
            ]),
        ),
        ("explain", args(&["explain", "--model", &reversal, "--text", "a b c"])),
        (
            "import",
            args(&[
                "import",
                &path(&fixture("onnx/lstm-uni/model.onnx")),
                "--out",
                &path(&dir.join("imported")),
            ]),
        ),
        (
            "check",
            args(&[
                "check",
                "--model",
                &adding,
                "--vectors",
                &path(&x),
                "--expect",
                &path(&wrong),
            ]),
        ),
    ]
}

/// A JSON array of numbers as a vector.
pub fn numbers(value: &serde_json::Value) -> Vec<f64> {
    value.as_array().unwrap().iter().map(|x| x.as_f64().unwrap()).collect()
}

/// What a Hugging Face fixture tool computed for the fixture `name` of
/// `tests/fixtures/FAMILY/expected.json` (per id sequence: the reference
/// logits, the arg-max, the oracle's relevance, ...).
pub fn hf_expected(family: &str, name: &str) -> Vec<serde_json::Value> {
    let text = std::fs::read_to_string(fixture(&format!("{family}/expected.json"))).unwrap();
    let all: serde_json::Value = serde_json::from_str(&text).unwrap();
    all[name].as_array().unwrap().clone()
}
