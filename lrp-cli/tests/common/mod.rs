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

/// A fresh directory for one test's files.
pub fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("lrp-cli-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
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
