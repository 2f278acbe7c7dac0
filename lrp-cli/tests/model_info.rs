//! `lrp model-info` as a process: JSON on a pipe, the exit codes a script
//! sees. (The contents are tested in-process in `tests/tests/model_info.rs`.)

mod common;

use common::{fixture, lrp_run as lrp};

#[test]
fn a_directory_on_a_pipe_prints_one_json_object() {
    let dir = fixture("parity/lstm-last-uni");
    let (code, stdout, stderr) = lrp(&["model-info", dir.to_str().unwrap()]);
    assert_eq!(code, Some(0), "{stderr}");
    assert!(stderr.is_empty(), "{stderr}");
    assert_eq!(stdout.lines().count(), 1);
    // E = 4, H = 3, one direction, head on the final state, C = 3:
    // 48 + 36 + 12 + 12 + 9 + 3 numbers.
    assert!(
        stdout.contains(r#"{"name":"encoder.weight_ih_l0","shape":[12,4]}"#),
        "{stdout}"
    );
    assert!(stdout.contains(r#"{"name":"head.bias","shape":[3]}"#), "{stdout}");
    assert!(stdout.contains(r#""parameters":120"#), "{stdout}");
    assert!(stdout.trim_end().ends_with(r#""check":"ok"}"#), "{stdout}");
}

#[test]
fn a_missing_config_exits_1_with_one_line() {
    let (code, stdout, stderr) = lrp(&["model-info", "--config", "/nonexistent/config.json"]);
    assert_eq!(code, Some(1));
    assert!(stdout.is_empty());
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(stderr.contains("/nonexistent/config.json"), "{stderr}");
}
