//! The real `lrp` on a pseudo-terminal, as a user at a shell runs it:
//! batches with the progress bar on a terminal's stderr must finish (they
//! once deadlocked), every long command shows its progress there, and the
//! text views (classifier and encoder–decoder) must suit the terminal they
//! are on.
//! Every run has a deadline; a hung run is killed and fails its test.

#![cfg(target_os = "linux")]

mod common;

use std::fs::{File, OpenOptions};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::OpenOptionsExt;
use std::process::Stdio;

use common::{drain, finish, fixture, long_runs, lrp, reviews, scratch, Finished};
use rustix::pty::{grantpt, openpt, ptsname, unlockpt, OpenptFlags};

/// A pseudo-terminal: the test reads `master`; `lrp` gets `slave`.
struct Pty {
    master: File,
    slave: File,
}

fn pty() -> Pty {
    let master = openpt(OpenptFlags::RDWR | OpenptFlags::NOCTTY | OpenptFlags::CLOEXEC).expect("openpt");
    grantpt(&master).unwrap();
    unlockpt(&master).unwrap();
    let name = ptsname(&master, Vec::new()).unwrap();
    let slave = OpenOptions::new()
        .read(true)
        .write(true)
        .custom_flags(rustix::fs::OFlags::NOCTTY.bits() as i32)
        .open(std::ffi::OsStr::from_bytes(name.as_bytes()))
        .expect("the terminal's slave side");
    let size = rustix::termios::Winsize {
        ws_row: 24,
        ws_col: 100,
        ws_xpixel: 0,
        ws_ypixel: 0,
    };
    rustix::termios::tcsetwinsize(&slave, size).unwrap();
    Pty {
        master: File::from(master),
        slave,
    }
}

/// Which of `lrp`'s streams are the terminal.
#[derive(Clone, Copy, PartialEq)]
enum OnTerminal {
    /// stderr only; stdout is a pipe the test reads.
    Stderr,
    /// stdout and stderr, as in an interactive shell.
    Both,
}

/// Runs `lrp args` with `streams` on a fresh terminal and the environment
/// `env` (TERM, COLORTERM and NO_COLOR are cleared first). Returns how it
/// ended and everything the terminal showed (line ends as `\n`).
fn on_terminal(args: &[&str], streams: OnTerminal, env: &[(&str, &str)]) -> (Finished, String) {
    let Pty { master, slave } = pty();
    let mut command = lrp();
    command
        .args(args)
        .env_remove("TERM")
        .env_remove("COLORTERM")
        .env_remove("NO_COLOR")
        .envs(env.iter().copied())
        .stdin(Stdio::null())
        .stderr(Stdio::from(slave.try_clone().unwrap()));
    if streams == OnTerminal::Both {
        command.stdout(Stdio::from(slave.try_clone().unwrap()));
    } else {
        command.stdout(Stdio::piped());
    }
    let child = command.spawn().expect("lrp starts");
    // Only the child may hold the terminal now: reading the master ends
    // (EIO) when the child's last copy closes.
    drop(command);
    drop(slave);
    let shown = drain(master);
    let finished = finish(child, &format!("lrp {}", args.join(" ")));
    let shown = shown.join().unwrap().replace("\r\n", "\n");
    (finished, shown)
}

fn json_lines(text: &str) -> Vec<serde_json::Value> {
    text.lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect()
}

#[test]
fn several_input_lines_finish_with_the_progress_bar_on_a_terminal() {
    let dir = scratch("pty-input");
    let input = reviews(&dir, 24);
    let (run, _) = on_terminal(
        &["explain", "--input", input.to_str().unwrap()],
        OnTerminal::Stderr,
        &[("TERM", "xterm-256color")],
    );
    assert_eq!(run.code, Some(0));
    let lines = json_lines(&run.stdout);
    assert_eq!(lines.len(), 24);
    // The blank second line of the file is counted, not explained.
    let numbers: Vec<u64> = lines.iter().map(|l| l["line"].as_u64().unwrap()).collect();
    assert_eq!(&numbers[..3], &[1, 3, 4]);
    assert_eq!(numbers[23], 25);
}

#[test]
fn an_npz_batch_finishes_with_the_progress_bar_on_a_terminal() {
    let model = fixture("adding/model");
    let data = fixture("adding/heldout.npz");
    let (run, _) = on_terminal(
        &[
            "explain",
            "--model",
            model.to_str().unwrap(),
            "--vectors",
            data.to_str().unwrap(),
        ],
        OnTerminal::Stderr,
        &[("TERM", "xterm-256color")],
    );
    assert_eq!(run.code, Some(0));
    let lines = json_lines(&run.stdout);
    assert_eq!(lines.len(), 500);
    assert!(lines.iter().all(|l| l["name"].is_string()));
}

#[test]
fn out_finishes_with_the_progress_bar_on_a_terminal() {
    let dir = scratch("pty-out");
    let input = reviews(&dir, 12);
    let out = dir.join("explained.jsonl");
    let (run, _) = on_terminal(
        &[
            "explain",
            "--input",
            input.to_str().unwrap(),
            "--out",
            out.to_str().unwrap(),
        ],
        OnTerminal::Stderr,
        &[("TERM", "xterm-256color")],
    );
    assert_eq!(run.code, Some(0));
    assert!(run.stdout.is_empty());
    assert_eq!(json_lines(&std::fs::read_to_string(&out).unwrap()).len(), 12);
}

#[test]
fn text_views_of_a_batch_on_a_terminal_are_separated_by_a_blank_line() {
    let dir = scratch("pty-text");
    let input = reviews(&dir, 6);
    let (run, shown) = on_terminal(
        &["explain", "--input", input.to_str().unwrap(), "--format", "text"],
        OnTerminal::Both,
        &[("TERM", "xterm-256color"), ("COLORTERM", "truecolor")],
    );
    assert_eq!(run.code, Some(0), "{shown}");
    assert_eq!(shown.matches("predicted: ").count(), 6, "{shown}");
    assert_eq!(shown.matches("\n\npredicted: ").count(), 5, "{shown}");
    assert!(shown.contains("\x1b[38;2;0;0;0;48;2;"), "24-bit colour: {shown}");
}

#[test]
fn colours_follow_term_colorterm_and_no_color() {
    let sentence = "a gorgeous , witty zzyzxq film .";
    let view = |env: &[(&str, &str)]| {
        let (run, shown) = on_terminal(&["explain", sentence], OnTerminal::Both, env);
        assert_eq!(run.code, Some(0), "{shown}");
        assert!(shown.starts_with("predicted: "), "auto is text on a terminal: {shown}");
        shown
    };
    let true_colour = view(&[("TERM", "xterm-256color"), ("COLORTERM", "truecolor")]);
    assert!(true_colour.contains("\x1b[38;2;0;0;0;48;2;"), "{true_colour}");
    // The unknown word is underlined (SGR 4) and marked in the plain line.
    assert!(
        true_colour.contains(";4;48;2;") && true_colour.contains("[unknown]"),
        "{true_colour}"
    );

    let palette = view(&[("TERM", "xterm-256color")]);
    assert!(palette.contains("\x1b[38;5;16;48;5;"), "{palette}");
    assert!(!palette.contains(";2;"), "no 24-bit codes without COLORTERM: {palette}");

    for plain in [
        view(&[("TERM", "dumb"), ("COLORTERM", "truecolor")]),
        view(&[]),
        view(&[
            ("TERM", "xterm-256color"),
            ("COLORTERM", "truecolor"),
            ("NO_COLOR", "1"),
        ]),
    ] {
        assert!(!plain.contains('\x1b'), "no escape codes: {plain}");
        assert_eq!(plain.matches(" [unknown]").count(), 1, "{plain}");
    }
}

#[test]
fn control_characters_in_the_input_never_reach_the_terminal() {
    // A window-title escape, a bell, a cursor move and a right-to-left override.
    let hostile = "evil \x1b]0;owned\x07 \x1b[2Jgone \u{202e}desrever text";
    for args in [
        vec!["explain", "--text", hostile, "--format", "text"],
        vec!["explain", "--text", hostile, "--format", "json"],
    ] {
        let (run, shown) = on_terminal(&args, OnTerminal::Both, &[("TERM", "xterm-256color")]);
        assert_eq!(run.code, Some(0), "{shown}");
        assert!(!shown.contains("\x1b]") && !shown.contains('\x07'), "{shown:?}");
        assert!(!shown.contains("\x1b[2J"), "{shown:?}");
        // (JSON escapes the C0 controls; the text view also the bidi ones.)
        if args.contains(&"text") {
            assert!(!shown.contains('\u{202e}'), "{shown:?}");
        }
    }
    let (_, shown) = on_terminal(
        &["explain", "--text", hostile, "--format", "text"],
        OnTerminal::Both,
        &[("TERM", "dumb")],
    );
    assert!(
        shown.contains(r"\u{1b}]0;owned\u{7}") && shown.contains(r"\u{202e}desrever"),
        "{shown}"
    );
}

/// Every command that can run long draws its progress on a terminal's
/// stderr from the start: a bar with the count, the rate and the time left,
/// or for `import`, whose length is unknown, a spinner naming its stage.
/// The bar is cleared at the end: the last thing shown is the line erased.
#[test]
fn every_long_command_shows_its_progress_on_a_terminal() {
    let dir = scratch("pty-progress");
    for (name, args) in long_runs(&dir) {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let (run, shown) = on_terminal(&args, OnTerminal::Stderr, &[("TERM", "xterm-256color")]);
        assert_eq!(run.code, Some(0), "{args:?}: {shown}");
        assert!(!run.stdout.is_empty(), "{args:?}: the result goes to stdout");
        if name == "import" {
            assert!(shown.contains("import: reading the graph ("), "{args:?}: {shown:?}");
        } else {
            let unit = match args[0] {
                "perturb" if args.contains(&"--vectors") => " series, ",
                "perturb" | "eval" => " sentences, ",
                "groundtruth" => " cases, ",
                "check" => " changes tried, ",
                _ if args.contains(&"--input") => "% of ",
                _ if args.contains(&"--vectors") => " arrays, ",
                _ => " output tokens, ",
            };
            assert!(shown.starts_with(name), "{args:?}: {shown:?}");
            assert!(
                shown.contains(unit) && shown.contains("/s, ETA "),
                "{args:?}: a count, a rate and the time left: {shown:?}"
            );
        }
        assert!(shown.ends_with("\r\x1b[2K"), "{args:?}: the bar is cleared: {shown:?}");
    }
    // A dumb terminal cannot redraw a line: nothing is drawn.
    let (name, args) = &long_runs(&dir)[0];
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let (run, shown) = on_terminal(&args, OnTerminal::Stderr, &[("TERM", "dumb")]);
    assert_eq!((run.code, shown.as_str()), (Some(0), ""), "{name}");
}

/// Lines from standard input have no known length: a spinner counts them,
/// with their rate.
#[test]
fn standard_input_gets_a_spinner_with_a_rate() {
    let (run, shown) = on_terminal(
        &["explain", "--input", "-"],
        OnTerminal::Stderr,
        &[("TERM", "xterm-256color")],
    );
    assert_eq!(run.code, Some(0), "{shown}");
    assert!(
        shown.contains("explain: 0 lines, ") && shown.contains("/s"),
        "{shown:?}"
    );
}

/// An encoder–decoder on a terminal shows the text view by default: the
/// outputs, each one's top source words, and the relevance matrix in
/// colour (none under NO_COLOR).
#[test]
fn an_encoder_decoder_on_a_terminal_shows_its_text_view() {
    let model = fixture("seq2seq/bilstm-gru-general");
    let args = [
        "explain",
        "--model",
        model.to_str().unwrap(),
        "--text",
        "s2 s6 s0 s8",
        "--output-text",
        "t2 t0 t3",
    ];
    let view = |env: &[(&str, &str)]| {
        let (run, shown) = on_terminal(&args, OnTerminal::Both, env);
        assert_eq!(run.code, Some(0), "{shown}");
        shown[shown.find("source: ").expect("the text view")..].to_string()
    };
    let coloured = view(&[("TERM", "xterm-256color"), ("COLORTERM", "truecolor")]);
    assert!(
        coloured.starts_with("source: s2 s6 s0 s8\noutput: t2 t0 t3\n"),
        "{coloured:?}"
    );
    assert!(
        coloured.contains("\n  t0 s8 +0.011   s6 +0.004   s2 -0.003\n"),
        "{coloured:?}"
    );
    assert!(
        coloured.contains("\x1b[38;2;0;0;0;48;2;"),
        "24-bit colour: {coloured:?}"
    );
    let view = view(&[("TERM", "xterm-256color"), ("NO_COLOR", "1")]);
    assert!(!view.contains('\x1b'), "{view:?}");
    assert!(view.contains("\n  t0 -0.003 +0.004 -0.012 +0.011 +0.102\n"), "{view:?}");
}

#[test]
fn a_csv_series_is_shown_as_its_channels_and_top_cells_on_a_terminal() {
    let model = fixture("series6");
    let sensors = fixture("series6/sensors.csv");
    let (run, shown) = on_terminal(
        &[
            "explain",
            "--model",
            model.to_str().unwrap(),
            "--vectors",
            sensors.to_str().unwrap(),
            "--series-column",
            "subject",
            "--time-column",
            "t",
        ],
        OnTerminal::Both,
        &[("TERM", "xterm-256color"), ("COLORTERM", "truecolor")],
    );
    assert_eq!(run.code, Some(0), "{shown}");
    // Auto is the text view on a terminal (after the progress bar, on
    // the same terminal): three series, one after another.
    assert!(shown.contains("name: walk-1\noutputs: 0: "), "{shown}");
    assert_eq!(shown.matches("\n\nname: ").count(), 2, "{shown}");
    assert_eq!(shown.matches("each channel's total:\n").count(), 3, "{shown}");
    assert_eq!(
        shown.matches("the 10 cells of largest |relevance|:\n").count(),
        3,
        "{shown}"
    );
    // Each value on its colour; the cells' times are the time column's.
    assert!(shown.contains("  acc_x    \x1b[38;2;"), "{shown}");
    assert!(shown.contains("  time  channel  relevance\n  0."), "{shown}");
}
