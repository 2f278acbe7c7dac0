//! The last guard on what `lrp` prints as an error: one line, printable,
//! of bounded length, whatever the error's source put in it.

/// The longest error line printed, in characters (each echoed value is
/// already cut to 200 at its source; this bounds a message of many).
const MAX_CHARS: usize = 2000;

/// `error` as one printable line: newlines and other control characters
/// escaped, cut after 2,000 characters (`MAX_CHARS`).
pub fn error_line(error: &dyn std::fmt::Display) -> String {
    lrp_io::printable(&error.to_string(), MAX_CHARS)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_line_of_bounded_length() {
        let line = error_line(&format!("a\nb\u{1b}[2J{}", "x".repeat(5000)));
        assert!(line.starts_with("a\\nb\\u{1b}[2J"), "{line}");
        assert!(!line.contains('\n') && !line.contains('\u{1b}'));
        assert!(line.ends_with("... (3,007 more characters)"), "{line}");
    }
}
