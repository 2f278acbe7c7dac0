//! Untrusted text made safe to show: model files and inputs may hold any
//! bytes, and what lrp echoes of them (in an error line, a terminal view,
//! an HTML page) must neither break the line nor steer the terminal.

/// Whether `c` must be escaped before it is shown: control characters,
/// line and paragraph separators, and the invisible marks that reorder
/// text on a terminal (bidirectional overrides and isolates).
///
/// ```
/// assert!(lrp_core::needs_escape('\u{1b}') && lrp_core::needs_escape('\u{202e}'));
/// assert!(!lrp_core::needs_escape('é'));
/// ```
pub fn needs_escape(c: char) -> bool {
    c.is_control()
        || matches!(c, '\u{2028}' | '\u{2029}' | '\u{200e}' | '\u{200f}' | '\u{061c}')
        || ('\u{202a}'..='\u{202e}').contains(&c)
        || ('\u{2066}'..='\u{2069}').contains(&c)
}

/// `text` made printable on one line: every character of [`needs_escape`]
/// written as a visible escape (`\n`, `\u{1b}`), and the text cut after
/// `max_chars` characters with a note of how many more there were.
///
/// ```
/// assert_eq!(lrp_core::printable("a\nb\u{1b}[31m", 100), "a\\nb\\u{1b}[31m");
/// assert_eq!(lrp_core::printable("abcdef", 3), "abc... (3 more characters)");
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

/// `n` with thousands separators, for counts in messages.
///
/// ```
/// assert_eq!(lrp_core::thousands(499_990), "499,990");
/// ```
pub fn thousands(n: usize) -> String {
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
        assert_eq!(thousands(7), "7");
        assert_eq!(thousands(1_000_000), "1,000,000");
    }
}
