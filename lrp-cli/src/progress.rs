//! Progress on a terminal's stderr, the same for every command: a bar with
//! the count, the rate and the time left when the run knows its length, a
//! spinner with the count and the rate when it does not. Nothing is drawn
//! when stderr is not a terminal that can redraw a line ([`Terminal`]), so
//! pipes and logs stay clean.
//!
//! A bar is drawn as soon as it is made (not after the first item, which
//! may take seconds), and redrawn a few times a second from then on, so the
//! rate and the time left move even while one long item runs. It clears
//! itself when the run ends, also when it ends in an error.

use std::time::Duration;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressFinish, ProgressStyle};

use crate::Terminal;

/// How often a visible bar is redrawn without news (the spinner turns, the
/// rate and the time left are updated).
const REDRAW: Duration = Duration::from_millis(200);

/// What a run counts.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Unit {
    /// Items, named in the plural (`sentences`, `cases`).
    Items(&'static str),
    /// Bytes of an input file.
    Bytes,
    /// Stages of unknown length, one after another, each named by the
    /// bar's message (`reading the graph`); shown with the time so far.
    Stages,
}

/// A progress display on stderr when `terminal` says it is a terminal
/// (hidden otherwise): a bar of `length` units with the rate and the time
/// left, or, when the length is unknown, a spinner with the count and the
/// rate. `what` says what is being done (`perturb`, `checking`).
pub(crate) fn progress(terminal: Terminal, what: &str, length: Option<u64>, unit: Unit) -> ProgressBar {
    if !terminal.stderr {
        return ProgressBar::hidden();
    }
    let bar = match length {
        Some(length) => ProgressBar::with_draw_target(Some(length), ProgressDrawTarget::stderr()),
        None => ProgressBar::with_draw_target(None, ProgressDrawTarget::stderr()),
    };
    let style = ProgressStyle::with_template(&template(what, length.is_some(), unit))
        .unwrap_or_else(|_| ProgressStyle::default_bar());
    let bar = bar.with_style(style).with_finish(ProgressFinish::AndClear);
    bar.enable_steady_tick(REDRAW);
    bar.force_draw();
    bar
}

/// The indicatif template of a display (`what` is text of our own: no
/// braces).
fn template(what: &str, known_length: bool, unit: Unit) -> String {
    match (known_length, unit) {
        (true, Unit::Items(name)) => {
            format!("{what} {{wide_bar}} {{human_pos}}/{{human_len}} {name}, {{per_sec:1}}, ETA {{eta}}")
        }
        (true, Unit::Bytes) => {
            format!("{what} {{wide_bar}} {{percent}}% of {{binary_total_bytes}}, {{binary_bytes_per_sec}}, ETA {{eta}}")
        }
        (false, Unit::Items(name)) => format!("{{spinner}} {what}: {{human_pos}} {name}, {{per_sec:1}}"),
        (false, Unit::Bytes) => format!("{{spinner}} {what}: {{binary_bytes}}, {{binary_bytes_per_sec}}"),
        (_, Unit::Stages) => format!("{{spinner}} {what}: {{msg}} ({{elapsed}})"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nothing_is_drawn_off_a_terminal() {
        let bar = progress(Terminal::default(), "perturb", Some(10), Unit::Items("sentences"));
        assert!(bar.is_hidden());
    }

    #[test]
    fn every_count_shows_a_rate_and_a_bar_its_time_left() {
        for unit in [Unit::Items("cases"), Unit::Bytes] {
            for known in [true, false] {
                let template = template("explain", known, unit);
                assert!(ProgressStyle::with_template(&template).is_ok(), "{template}");
                assert!(template.contains("per_sec"), "{template}");
                assert_eq!(template.contains("ETA {eta}"), known, "{template}");
                assert_eq!(template.contains("{spinner}"), !known, "{template}");
            }
        }
        let stages = template("import", false, Unit::Stages);
        assert!(ProgressStyle::with_template(&stages).is_ok(), "{stages}");
        assert!(stages.contains("{msg}") && stages.contains("{elapsed}"), "{stages}");
    }
}
