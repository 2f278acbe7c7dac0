//! Untrusted text made safe to echo in a one-line message.

use std::path::Path;

/// How many characters of one echoed value a message shows.
pub(crate) const ECHO_CHARS: usize = 200;

/// `text` made printable on one line: control characters (newlines,
/// escape sequences, bidirectional overrides) escaped as `\n`, `\u{1b}`,
/// and the text cut after `max_chars` characters with a note of how many
/// more there were.
///
/// ```
/// assert_eq!(lrp_io::printable("a\nb\u{1b}[31m", 100), "a\\nb\\u{1b}[31m");
/// assert_eq!(lrp_io::printable("abcdef", 3), "abc... (3 more characters)");
/// ```
pub fn printable(text: &str, max_chars: usize) -> String {
    let mut out = String::with_capacity(text.len().min(max_chars.saturating_mul(2)));
    for (shown, (k, c)) in text.char_indices().enumerate() {
        if shown == max_chars {
            let more = text[k..].chars().count();
            out.push_str(&format!("... ({} more characters)", thousands(more)));
            return out;
        }
        if needs_escape(c) {
            out.extend(c.escape_default());
        } else {
            out.push(c);
        }
    }
    out
}

/// Control characters, line and paragraph separators, and the invisible
/// marks that reorder text on a terminal.
fn needs_escape(c: char) -> bool {
    c.is_control()
        || matches!(c, '\u{2028}' | '\u{2029}' | '\u{200e}' | '\u{200f}' | '\u{061c}')
        || ('\u{202a}'..='\u{202e}').contains(&c)
        || ('\u{2066}'..='\u{2069}').contains(&c)
}

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

/// `n` with thousands separators: `499,990`.
pub(crate) fn thousands(n: usize) -> String {
    let digits = n.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (k, d) in digits.chars().enumerate() {
        if k > 0 && (digits.len() - k) % 3 == 0 {
            out.push(',');
        }
        out.push(d);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_and_cuts() {
        assert_eq!(printable("ok \\ é", 10), "ok \\ é");
        assert_eq!(printable("\u{202e}x\r", 10), "\\u{202e}x\\r");
        assert_eq!(
            printable(&"é".repeat(300), 200).chars().count(),
            200 + "... (100 more characters)".len()
        );
        assert_eq!(first_line("\nbad header\n  {'descr'\n   ^\n"), "bad header");
        assert_eq!(thousands(499_990), "499,990");
        assert_eq!(thousands(7), "7");
        assert_eq!(thousands(1_000_000), "1,000,000");
    }
}
