//! The last guard on what a front end reports as an error (`lrp`'s line on
//! stderr, the Python exception's message): one line, printable, of
//! bounded length, whatever the error's source put in it.

/// The longest error line printed, in characters (each echoed value is
/// already cut to 200 at its source; this bounds a message of many).
const MAX_CHARS: usize = 2000;

/// `error` as one printable line: newlines and other control characters
/// escaped, cut after 2,000 characters (`MAX_CHARS`).
pub fn error_line(error: &dyn std::fmt::Display) -> String {
    lrp_io::printable(&error.to_string(), MAX_CHARS)
}

/// What a caught panic is reported as: `internal error (MESSAGE); please
/// report this`, one printable line.
pub fn internal_error(panic: &(dyn std::any::Any + Send)) -> String {
    let what = panic
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_default();
    error_line(&format!("internal error ({what}); please report this"))
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

    #[test]
    fn a_panic_is_an_internal_error_naming_its_message() {
        let panic = std::panic::catch_unwind(|| panic!("index {} out of range", 7)).unwrap_err();
        assert_eq!(
            internal_error(panic.as_ref()),
            "internal error (index 7 out of range); please report this"
        );
    }
}
