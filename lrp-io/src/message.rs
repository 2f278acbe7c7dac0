//! Untrusted text made safe to echo in a one-line message.

use std::path::Path;

pub(crate) use lrp_core::{printable, thousands};

/// How many characters of one echoed value a message shows.
pub(crate) const ECHO_CHARS: usize = 200;

/// An echoed value: printable, at most [`ECHO_CHARS`] characters.
pub(crate) fn shown(text: &str) -> String {
    printable(text, ECHO_CHARS)
}

/// An echoed path, as [`shown`].
pub(crate) fn shown_path(path: &Path) -> String {
    shown(&path.to_string_lossy())
}

/// The first line of a parser's message (some draw a multi-line diagram
/// under it), made printable.
pub(crate) fn first_line(message: &str) -> String {
    shown(message.lines().find(|l| !l.trim().is_empty()).unwrap_or("").trim())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn first_lines_only() {
        assert_eq!(first_line("\nbad header\n  {'descr'\n   ^\n"), "bad header");
        assert_eq!(
            shown(&"é".repeat(300)).chars().count(),
            200 + "... (100 more characters)".len()
        );
    }
}
