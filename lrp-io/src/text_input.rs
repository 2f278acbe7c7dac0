//! Text input within limits: a file of lines or standard input, tokenised
//! line by line.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};

use crate::read::{open_file_capped, too_large};
use crate::{read_file_capped, read_stdin_capped, tokenize, Error, LimitKind, Limits};

/// Reads a text input whole as UTF-8: the file at `path`, or standard
/// input when `path` is `-`; at most [`Limits::max_text_bytes`]. To go
/// through a large input a line at a time instead, see [`read_text_lines`].
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
/// number of lines, bytes in all. `path` names the input in messages.
/// The same as collecting [`TextLines`] over `text`.
pub fn tokenize_lines(path: &Path, text: &str, limits: &Limits) -> Result<Vec<(usize, Vec<String>)>, Error> {
    TextLines::new(path, text.as_bytes(), limits).collect()
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

/// The words of one text split on whitespace alone (a reference output,
/// whose tokens such as `</s>` must stay whole), within the limits of one
/// line as [`tokenize_within`]; `name` names it in messages.
///
/// ```
/// let limits = lrp_io::Limits::default();
/// assert_eq!(lrp_io::split_within("--output-text", "a b </s>", &limits)?, ["a", "b", "</s>"]);
/// # Ok::<(), lrp_io::Error>(())
/// ```
pub fn split_within<'t>(name: &str, text: &'t str, limits: &Limits) -> Result<Vec<&'t str>, Error> {
    let mut counter = LineLimits::new(Path::new(name), limits);
    counter.line(1, text)?;
    let words: Vec<&str> = text.split_whitespace().collect();
    counter.tokens(1, words.len())?;
    Ok(words)
}

/// A text input opened for reading a line at a time: the file at `path`,
/// or standard input when `path` is `-`. A file must be a regular file of
/// at most [`Limits::max_text_bytes`] (checked before anything is read, as
/// [`read_file_capped`] does); the other limits are checked line by line
/// as [`TextLines`] goes.
///
/// ```no_run
/// let limits = lrp_io::Limits::default();
/// for line in lrp_io::read_text_lines(std::path::Path::new("reviews.txt"), &limits)? {
///     let (number, tokens) = line?;
///     println!("line {number}: {} tokens", tokens.len());
/// }
/// # Ok::<(), lrp_io::Error>(())
/// ```
pub fn read_text_lines(path: &Path, limits: &Limits) -> Result<TextLines<Box<dyn BufRead + Send>>, Error> {
    /// Large enough that reading costs little per line.
    const BUFFER_BYTES: usize = 1 << 16;
    if path == Path::new("-") {
        let reader = BufReader::with_capacity(BUFFER_BYTES, std::io::stdin());
        return Ok(TextLines::new(path, Box::new(reader), limits));
    }
    let (file, length) = open_file_capped(path, limits.max_text_bytes, LimitKind::TextBytes)?;
    let mut lines = TextLines::new(
        path,
        Box::new(BufReader::with_capacity(BUFFER_BYTES, file)) as Box<_>,
        limits,
    );
    lines.length = Some(length);
    Ok(lines)
}

/// The non-blank lines of a text input, read one at a time from `R`: each
/// item is a line's number (1-based, blank lines counted) and its tokens
/// ([`tokenize`]). Memory holds one line: a line is read only up to
/// [`Limits::max_line_bytes`] (a longer one is refused without reading
/// the rest of it), and the input's bytes, lines and tokens are counted
/// against [`Limits::max_text_bytes`], [`Limits::max_sequences`] and
/// [`Limits::max_total_tokens`] as they go. Each line must be UTF-8.
/// After an error the iterator ends.
///
/// ```
/// let limits = lrp_io::Limits::default();
/// let text = "a fine film .\n\nIt doesn't work.\n";
/// let lines: Vec<_> = lrp_io::TextLines::new("reviews.txt".as_ref(), text.as_bytes(), &limits)
///     .collect::<Result<_, _>>()?;
/// assert_eq!(lines[1], (3, vec!["It".into(), "does".into(), "n't".into(), "work".into(), ".".into()]));
/// # Ok::<(), lrp_io::Error>(())
/// ```
pub struct TextLines<R> {
    reader: R,
    counter: LineLimits,
    /// Lines read so far, blank ones included.
    number: usize,
    /// Bytes read so far.
    read: u64,
    /// The file's length when opened, if the input is a file.
    length: Option<u64>,
    /// The line being read, reused.
    buffer: Vec<u8>,
    /// An error ends the input.
    failed: bool,
}

impl<R: BufRead> TextLines<R> {
    /// The lines of `reader`; `path` names it in messages.
    pub fn new(path: &Path, reader: R, limits: &Limits) -> Self {
        Self {
            reader,
            counter: LineLimits::new(path, limits),
            number: 0,
            read: 0,
            length: None,
            buffer: Vec::new(),
            failed: false,
        }
    }

    /// Bytes read so far (a progress measure against [`TextLines::length`]).
    pub fn bytes_read(&self) -> u64 {
        self.read
    }

    /// The input file's length in bytes when it was opened, if the input
    /// is a file ([`read_text_lines`]; not standard input).
    pub fn length(&self) -> Option<u64> {
        self.length
    }

    /// The next non-blank line, or `None` at the end.
    fn next_line(&mut self) -> Result<Option<(usize, Vec<String>)>, Error> {
        let limits = self.counter.limits;
        loop {
            self.buffer.clear();
            // A line of `max_line_bytes` may end in `\r\n`: two bytes more.
            // Reading stops there, so an endless line costs no memory.
            let budget = (limits.max_line_bytes as u64).saturating_add(2);
            let count = std::io::Read::take(&mut self.reader, budget)
                .read_until(b'\n', &mut self.buffer)
                .map_err(|source| Error::Read {
                    path: self.counter.path.clone(),
                    source,
                })?;
            if count == 0 {
                return Ok(None);
            }
            self.number += 1;
            self.read = self.read.saturating_add(count as u64);
            if self.read > limits.max_text_bytes {
                return Err(too_large(
                    &self.counter.path,
                    LimitKind::TextBytes,
                    limits.max_text_bytes,
                ));
            }
            // The line's own bytes: without `\n`, and without `\r` before it
            // (as `str::lines` reads them).
            let ended = self.buffer.last() == Some(&b'\n');
            if ended {
                self.buffer.pop();
                if self.buffer.last() == Some(&b'\r') {
                    self.buffer.pop();
                }
            }
            if self.buffer.len() > limits.max_line_bytes || (!ended && count as u64 == budget) {
                return Err(self
                    .counter
                    .over(Some(self.number), LimitKind::LineBytes, limits.max_line_bytes));
            }
            let line = std::str::from_utf8(&self.buffer).map_err(|e| Error::Format {
                path: self.counter.path.clone(),
                message: format!("line {}: not UTF-8 text: {e}", self.number),
            })?;
            if line.trim().is_empty() {
                continue;
            }
            self.counter.line(self.number, line)?;
            let tokens = tokenize(line);
            self.counter.tokens(self.number, tokens.len())?;
            return Ok(Some((self.number, tokens)));
        }
    }
}

impl<R: BufRead> Iterator for TextLines<R> {
    type Item = Result<(usize, Vec<String>), Error>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.failed {
            return None;
        }
        let next = self.next_line().transpose();
        self.failed = matches!(next, Some(Err(_)));
        next
    }
}

/// Counts lines and tokens of a text input against the limits.
pub(crate) struct LineLimits {
    path: PathBuf,
    limits: Limits,
    lines: usize,
    tokens: usize,
}

impl LineLimits {
    pub(crate) fn new(path: &Path, limits: &Limits) -> Self {
        Self {
            path: path.to_path_buf(),
            limits: *limits,
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
            path: self.path.clone(),
            line,
            kind,
            limit: limit as u64,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A reader that would never end: the line limit must stop reading.
    struct Endless;

    impl std::io::Read for Endless {
        fn read(&mut self, into: &mut [u8]) -> std::io::Result<usize> {
            into.fill(b'a');
            Ok(into.len())
        }
    }

    #[test]
    fn an_endless_line_is_refused_after_its_limit() {
        let limits = Limits {
            max_line_bytes: 1000,
            ..Limits::default()
        };
        let mut lines = TextLines::new(Path::new("-"), BufReader::new(Endless), &limits);
        let err = lines.next().unwrap().unwrap_err();
        assert!(
            matches!(
                err,
                Error::Limit {
                    kind: LimitKind::LineBytes,
                    line: Some(1),
                    limit: 1000,
                    ..
                }
            ),
            "{err}"
        );
        assert_eq!(lines.bytes_read(), 1002);
        assert!(lines.next().is_none(), "an error ends the input");
    }

    #[test]
    fn line_lengths_count_without_the_line_end() {
        let limits = Limits {
            max_line_bytes: 3,
            ..Limits::default()
        };
        let read = |text: &str| tokenize_lines(Path::new("t"), text, &limits);
        assert_eq!(read("abc\r\nab\nabc").unwrap().len(), 3);
        for (text, line) in [("abcd\n", 1), ("a\n\nabc\r\nabcd", 4), ("abc\rd\n", 1)] {
            let err = read(text).unwrap_err();
            assert!(
                matches!(err, Error::Limit { kind: LimitKind::LineBytes, line: Some(l), .. } if l == line),
                "{text:?}: {err}"
            );
        }
    }

    #[test]
    fn bytes_in_all_and_utf8_are_checked_as_lines_go() {
        let limits = Limits {
            max_text_bytes: 10,
            ..Limits::default()
        };
        let lines: Vec<_> = TextLines::new(Path::new("t"), "good film\nbad film\n".as_bytes(), &limits).collect();
        assert_eq!(lines.len(), 2);
        assert_eq!(lines[0].as_ref().unwrap().0, 1);
        let err = lines[1].as_ref().unwrap_err();
        assert!(
            matches!(
                err,
                Error::Limit {
                    kind: LimitKind::TextBytes,
                    limit: 10,
                    ..
                }
            ),
            "{err}"
        );
        let bad = b"fine\n\xff film\n";
        let err = TextLines::new(Path::new("t"), &bad[..], &Limits::default())
            .collect::<Result<Vec<_>, _>>()
            .unwrap_err();
        assert!(err.to_string().contains("line 2: not UTF-8 text"), "{err}");
    }
}
