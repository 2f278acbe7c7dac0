//! The README's examples run as written: every `lrp` command of its shell
//! blocks, from a directory that holds the repository's `tests/` and
//! `examples/` (as a clone does), with the real binary first on `PATH`; and
//! the opening example prints what the README shows under it.

mod common;
#[path = "common/http.rs"]
mod http;

use common::scratch;
use std::path::{Path, PathBuf};
use std::process::Command;

fn repository() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn readme() -> String {
    std::fs::read_to_string(repository().join("README.md")).unwrap()
}

/// The fenced blocks of `language` in `text`, each as its lines.
fn blocks(text: &str, language: &str) -> Vec<Vec<String>> {
    let mut found = Vec::new();
    let mut current: Option<Vec<String>> = None;
    for line in text.lines() {
        match (&mut current, line.trim_end()) {
            (None, fence) if fence == format!("```{language}") => current = Some(Vec::new()),
            (Some(_), "```") => found.push(current.take().unwrap()),
            (Some(lines), _) => lines.push(line.to_string()),
            _ => {}
        }
    }
    found
}

/// The `lrp` commands of the README's `sh` blocks, a command continued
/// with `\` joined into one line.
fn lrp_commands() -> Vec<String> {
    let mut commands = Vec::new();
    for block in blocks(&readme(), "sh") {
        let mut pending = String::new();
        for line in block {
            let line = line.trim();
            if let Some(start) = line.strip_suffix('\\') {
                pending.push_str(start);
                pending.push(' ');
                continue;
            }
            pending.push_str(line);
            let command = std::mem::take(&mut pending);
            let runs_lrp = command.starts_with("lrp ") || command.contains("| lrp ");
            if runs_lrp {
                commands.push(command);
            }
        }
    }
    commands
}

/// `command` run by `sh` in `dir`, with the binary under test first on
/// `PATH`: its status and standard error.
fn run_as_user(dir: &Path, command: &str) -> (Option<i32>, String) {
    let binary = PathBuf::from(env!("CARGO_BIN_EXE_lrp"));
    let path = format!(
        "{}:{}",
        binary.parent().unwrap().display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let output = Command::new("sh")
        .arg("-c")
        .arg(command)
        .current_dir(dir)
        .env("PATH", path)
        .env("NO_COLOR", "1")
        .output()
        .unwrap();
    (
        output.status.code(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

/// `lrp serve ...` as written, but on a free port (`--port` dropped, the
/// test's own `--port 0` added): it prints its URL, serves the page, and
/// explains a text through the API; Ctrl-C stops it with exit code 0.
fn serve_as_user(dir: &Path, command: &str) {
    let written = command.split('#').next().unwrap();
    let mut args: Vec<&str> = Vec::new();
    let mut words = written.split_whitespace().skip(2);
    while let Some(word) = words.next() {
        if word == "--port" {
            words.next();
        } else {
            args.push(word);
        }
    }
    let mut served = http::Served::start_in(dir, &args);
    assert!(
        served.url.starts_with("http://127.0.0.1:"),
        "`{command}` printed {}",
        served.url
    );
    let page = http::get(&served.url, "/");
    assert_eq!(page.status, 200, "`{command}`: GET /");
    let answer = http::post_json(&served.url, "/api/explain", r#"{"text": "a fine film ."}"#);
    assert_eq!(answer.status, 200, "`{command}`: POST /api/explain");
    assert_eq!(answer.json()["tokens"].as_array().map(Vec::len), Some(4), "`{command}`");
    let (code, stderr) = served.stop();
    assert_eq!(code, Some(0), "`{command}` did not stop cleanly: {stderr}");
}

#[test]
fn every_lrp_command_of_the_readme_runs_as_written() {
    let commands = lrp_commands();
    // The opening example, the shell section's eight, and the import/check pair.
    assert!(commands.len() >= 8, "found only {commands:?}");
    let dir = scratch("readme");
    for folder in ["tests", "examples"] {
        std::os::unix::fs::symlink(repository().join(folder).canonicalize().unwrap(), dir.join(folder)).unwrap();
    }
    for command in &commands {
        if command.starts_with("lrp serve") {
            serve_as_user(&dir, command);
            continue;
        }
        let (code, stderr) = run_as_user(&dir, command);
        assert_eq!(code, Some(0), "`{command}` failed: {stderr}");
    }
    // What the examples promise to write.
    let explained = std::fs::read_to_string(dir.join("explained.jsonl")).unwrap();
    let reviews = std::fs::read_to_string(repository().join("examples/reviews.txt")).unwrap();
    assert_eq!(explained.lines().count(), reviews.lines().count());
    assert!(std::fs::read_to_string(dir.join("page.html"))
        .unwrap()
        .contains("gorgeous"));
    assert!(dir.join("my-lstm/config.json").is_file());
    assert!(std::fs::read_to_string(dir.join("series.html"))
        .unwrap()
        .contains("gyro_z"));
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn the_opening_example_prints_what_the_readme_shows() {
    let text = readme();
    let command = &blocks(&text, "sh")[0][0];
    let shown = blocks(&text, "text")[0].join("\n");
    let (code, stdout) = {
        let output = Command::new(env!("CARGO_BIN_EXE_lrp"))
            .args(["explain", "--format", "text"])
            .arg(command.strip_prefix("lrp explain ").unwrap().trim_matches('"'))
            .env("NO_COLOR", "1")
            .output()
            .unwrap();
        (output.status.code(), String::from_utf8(output.stdout).unwrap())
    };
    assert_eq!(code, Some(0));
    assert_eq!(stdout.trim_end(), shown.trim_end());
}
