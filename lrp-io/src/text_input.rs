//! Text input within limits: a file of lines or standard input, tokenised
//! line by line.

use std::path::Path;

use crate::{read_file_capped, read_stdin_capped, tokenize, Error, LimitKind, Limits};

/// Reads a text input whole as UTF-8: the file at `path`, or standard
/// input when `path` is `-`; at most [`Limits::max_text_bytes`].
pub fn read_text(path: &Path, limits: &Limits) -> Result<String, Error> {
    let bytes = if path == Path::new("-") {
        read_stdin_capped(limits.max_text_bytes, LimitKind::TextBytes)?
    } else {
        read_file_capped(path, limits.max_text_bytes, LimitKind::TextBytes)?
    };
    String::from_utf8(bytes).map_err(|e| Error::Format {
        path: path.to_path_buf(),
        message: format!("not UTF-8 text: {}", e.utf8_error()),
    })
}

/// Each non-blank line of `text`, in order, as its line number (1-based,
/// blank lines counted) and its tokens ([`tokenize`]), within `limits`:
/// line length (checked before tokenising), tokens per line and in all,
/// number of lines. `path` names the input in messages.
pub fn tokenize_lines(path: &Path, text: &str, limits: &Limits) -> Result<Vec<(usize, Vec<String>)>, Error> {
    let mut counter = LineLimits::new(path, limits);
    let mut lines = Vec::new();
    for (k, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        counter.line(k + 1, line)?;
        let tokens = tokenize(line);
        counter.tokens(k + 1, tokens.len())?;
        lines.push((k + 1, tokens));
    }
    Ok(lines)
}

/// [`tokenize`] of one text (a command-line argument, say) within the
/// limits of one line; `name` names it in messages.
pub fn tokenize_within(name: &str, text: &str, limits: &Limits) -> Result<Vec<String>, Error> {
    let mut counter = LineLimits::new(Path::new(name), limits);
    counter.line(1, text)?;
    let tokens = tokenize(text);
    counter.tokens(1, tokens.len())?;
    Ok(tokens)
}

/// Counts lines and tokens of a text input against the limits.
pub(crate) struct LineLimits<'a> {
    path: &'a Path,
    limits: &'a Limits,
    lines: usize,
    tokens: usize,
}

impl<'a> LineLimits<'a> {
    pub(crate) fn new(path: &'a Path, limits: &'a Limits) -> Self {
        Self {
            path,
            limits,
            lines: 0,
            tokens: 0,
        }
    }

    /// One more non-blank line, line `number` (1-based) of the input,
    /// before it is tokenised.
    pub(crate) fn line(&mut self, number: usize, line: &str) -> Result<(), Error> {
        self.lines += 1;
        if self.lines > self.limits.max_sequences {
            return Err(self.over(None, LimitKind::Sequences, self.limits.max_sequences));
        }
        if line.len() > self.limits.max_line_bytes {
            return Err(self.over(Some(number), LimitKind::LineBytes, self.limits.max_line_bytes));
        }
        Ok(())
    }

    /// The tokens of line `number` (1-based).
    pub(crate) fn tokens(&mut self, number: usize, count: usize) -> Result<(), Error> {
        if count > self.limits.max_tokens {
            return Err(self.over(Some(number), LimitKind::Tokens, self.limits.max_tokens));
        }
        self.tokens = self.tokens.saturating_add(count);
        if self.tokens > self.limits.max_total_tokens {
            return Err(self.over(None, LimitKind::TotalTokens, self.limits.max_total_tokens));
        }
        Ok(())
    }

    fn over(&self, line: Option<usize>, kind: LimitKind, limit: usize) -> Error {
        Error::Limit {
            path: self.path.to_path_buf(),
            line,
            kind,
            limit: limit as u64,
        }
    }
}
