//! The real `lrp` process: exit codes and stderr as a script sees them.
//! (Everything else is tested in-process in the workspace's `tests/` crate.)

use std::path::PathBuf;
use std::process::Command;

fn fixtures() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures")
}

fn lrp(args: &[&str]) -> (Option<i32>, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_lrp"))
        .args(args)
        .output()
        .expect("lrp runs");
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn success_prints_json_and_exits_zero() {
    let model = fixtures().join("reference/sst-bilstm");
    let vectors = fixtures().join("golden/inputs/reference-2.npy");
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

#[test]
fn failures_exit_non_zero_with_one_line_and_no_panic() {
    let model = fixtures().join("reference/sst-bilstm");
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
