//! Time series from a CSV file: a header naming the columns, then one row
//! per time step. Every column is a channel of the input vectors, except
//! an optional time column (the time axis), an optional series column
//! (which series a row belongs to, for many series in one file) and an
//! optional label column (each series' true class, which `lrp perturb`
//! reads).
//!
//! Our own reader, small enough to read whole: RFC 4180 (cells separated
//! by commas, rows by `\n` or `\r\n`; a cell in double quotes may hold
//! commas, line breaks and doubled quotes), bounded by the same
//! [`Limits`] as the other vector inputs, and reading a series at a time
//! so that memory holds one series, not the file.

use std::collections::HashSet;
use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};

use nalgebra::DMatrix;

use crate::read::{open_file_capped, too_large};
use crate::{Error, LimitKind, Limits};

/// One series read from a CSV file: its rows, in file order.
#[derive(Debug, Clone, PartialEq)]
pub struct Series {
    /// The series column's value, when the file has one.
    pub name: Option<String>,
    /// The line (1-based) of the series' first row.
    pub line: usize,
    /// The time column's values `[T]` (strictly increasing), when the file
    /// has one.
    pub time: Option<Vec<f64>>,
    /// The label column's value (the same in every row of the series),
    /// when the file has one.
    pub label: Option<String>,
    /// The channels' values, `[C, T]` (column `t` is the row of step `t`),
    /// as [`Sequence`](crate::Sequence) holds vectors.
    pub vectors: DMatrix<f64>,
}

/// The series of a CSV file, read one at a time ([`open_csv`]).
pub struct CsvSeries {
    records: Records<std::io::Take<BufReader<std::fs::File>>>,
    /// The channels' names, in column order.
    channels: Vec<String>,
    /// The column of each channel.
    channel_columns: Vec<usize>,
    time_column: Option<(usize, String)>,
    series_column: Option<(usize, String)>,
    label_column: Option<(usize, String)>,
    /// Cells in each row: the header's.
    width: usize,
    /// The header's line (1-based).
    header_line: usize,
    /// The first row of the next series, read ahead.
    pending: Option<Record>,
    /// The series read so far (to refuse one whose rows resume later).
    finished: HashSet<String>,
    limits: Limits,
    /// Series and rows read so far, for the limits on all.
    sequences: usize,
    positions: usize,
    /// The file's length when opened.
    length: u64,
    /// An error ends the reading.
    failed: bool,
}

/// Opens a CSV file of time series to read them one at a time:
/// `time_column`, `series_column` and `label_column` name the header's
/// columns that are not channels (the time axis, which series a row
/// belongs to, and the series' true class); every other column is a
/// channel, in header order ([`CsvSeries::channels`]).
///
/// Refused, each in one line naming the line (1-based) and, for a cell,
/// its column: a header with an empty or repeated name, or without a named
/// column, or with no channel left; a row with another number of cells
/// than the header; a blank line before the last row; a missing (empty)
/// or non-numeric cell, or one that is not finite (`NaN`, `inf`); a time
/// that does not increase within its series; a missing label, or one
/// that changes within its series; a series whose rows resume
/// after another series' (the file must hold each series' rows together,
/// in order: it is read a series at a time). Within [`Limits`]: the file's
/// bytes ([`Limits::max_vectors_bytes`]), a row's bytes
/// ([`Limits::max_line_bytes`]), a series' rows
/// ([`Limits::max_tokens`]), the bytes of one series' values
/// ([`Limits::max_memory_bytes`]), the series
/// ([`Limits::max_sequences`]) and the rows in all
/// ([`Limits::max_total_tokens`]).
///
/// ```
/// let dir = tempfile::tempdir()?;
/// let path = dir.path().join("sensors.csv");
/// std::fs::write(&path, "id,t,heat,\"light, lux\",class\na,0,1.5,2,hot\na,1,2.5,3,hot\nb,0,0,1,cold\n")?;
/// let limits = lrp_io::Limits::default();
/// let mut series = lrp_io::open_csv(&path, Some("t"), Some("id"), Some("class"), &limits)?;
/// assert_eq!(series.channels(), ["heat", "light, lux"]);
/// let a = series.next().unwrap()?;
/// assert_eq!((a.name.as_deref(), a.line, a.time.as_deref()), (Some("a"), 2, Some(&[0.0, 1.0][..])));
/// assert_eq!(a.label.as_deref(), Some("hot"));
/// assert_eq!(a.vectors.column(1).as_slice(), [2.5, 3.0]);
/// assert_eq!(series.next().unwrap()?.vectors.shape(), (2, 1));
/// assert!(series.next().is_none());
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn open_csv(
    path: &Path,
    time_column: Option<&str>,
    series_column: Option<&str>,
    label_column: Option<&str>,
    limits: &Limits,
) -> Result<CsvSeries, Error> {
    let (file, length) = open_file_capped(path, limits.max_vectors_bytes, LimitKind::VectorsBytes)?;
    // One byte more than allowed tells a file that grew past the limit.
    let reader = BufReader::new(file).take(limits.max_vectors_bytes.saturating_add(1));
    let mut records = Records::new(path, reader, limits);
    let header = loop {
        match records.next()? {
            Some(record) if record.is_blank() => continue,
            Some(record) => break record,
            None => return Err(records.error(1, None, "no header: the file is empty".into())),
        }
    };
    let names = header.cells;
    let mut seen = HashSet::new();
    for name in &names {
        if name.is_empty() {
            return Err(records.error(header.line, None, "the header has an empty column name".into()));
        }
        if !seen.insert(name.as_str()) {
            return Err(records.error(header.line, None, format!("the header names the column {name:?} twice")));
        }
    }
    let find = |flag: &str, wanted: Option<&str>| -> Result<Option<(usize, String)>, Error> {
        let Some(wanted) = wanted else { return Ok(None) };
        match names.iter().position(|n| n == wanted) {
            Some(k) => Ok(Some((k, wanted.to_string()))),
            None => Err(records.error(
                header.line,
                None,
                format!("{flag} {wanted:?} is not a column of the header ({})", names.join(", ")),
            )),
        }
    };
    let time = find("--time-column", time_column)?;
    let series = find("--series-column", series_column)?;
    let label = find("--label-column", label_column)?;
    let named: Vec<usize> = [&time, &series, &label]
        .into_iter()
        .flatten()
        .map(|(k, _)| *k)
        .collect();
    if (1..named.len()).any(|i| named[..i].contains(&named[i])) {
        return Err(records.error(
            header.line,
            None,
            "the time, series and label columns must be different columns".into(),
        ));
    }
    let is_channel = |k: &usize| !named.contains(k);
    let channel_columns: Vec<usize> = (0..names.len()).filter(is_channel).collect();
    if channel_columns.is_empty() {
        return Err(records.error(
            header.line,
            None,
            "the header names no channel column (every column but the time, series and label columns is one)".into(),
        ));
    }
    let channels = channel_columns.iter().map(|&k| names[k].clone()).collect();
    let mut opened = CsvSeries {
        records,
        channels,
        channel_columns,
        time_column: time,
        series_column: series,
        label_column: label,
        width: names.len(),
        header_line: header.line,
        pending: None,
        finished: HashSet::new(),
        limits: *limits,
        sequences: 0,
        positions: 0,
        length,
        failed: false,
    };
    opened.pending = opened.next_row()?;
    Ok(opened)
}

impl CsvSeries {
    /// The channels' names, in column order: the header's names but the
    /// time, series and label columns'.
    pub fn channels(&self) -> &[String] {
        &self.channels
    }

    /// The header's line (1-based; blank lines may come before it).
    pub fn header_line(&self) -> usize {
        self.header_line
    }

    /// Bytes read so far (a progress measure against [`CsvSeries::length`]).
    pub fn bytes_read(&self) -> u64 {
        self.records.read
    }

    /// The file's length in bytes when it was opened.
    pub fn length(&self) -> u64 {
        self.length
    }

    /// The next row that is not blank; a blank line followed by a row is
    /// refused (blank lines at the end are not rows).
    fn next_row(&mut self) -> Result<Option<Record>, Error> {
        let mut blank = None;
        while let Some(record) = self.records.next()? {
            if record.is_blank() {
                blank = blank.or(Some(record.line));
                continue;
            }
            if let Some(line) = blank {
                return Err(self.records.error(
                    line,
                    None,
                    "a blank line between rows (a row needs a value in every column)".into(),
                ));
            }
            if record.cells.len() != self.width {
                return Err(self.records.error(
                    record.line,
                    None,
                    format!(
                        "{} cells, but the header names {} columns",
                        record.cells.len(),
                        self.width
                    ),
                ));
            }
            return Ok(Some(record));
        }
        Ok(None)
    }

    /// A cell's number, refused when missing, not a number or not finite.
    fn number(&self, record: &Record, column: usize, name: &str) -> Result<f64, Error> {
        let text = record.cells[column].trim_matches(|c: char| c.is_ascii_whitespace());
        let problem = if text.is_empty() {
            "a missing value".to_string()
        } else {
            match text.parse::<f64>() {
                Ok(value) if value.is_finite() => return Ok(value),
                Ok(_) => format!("{text:?} is not a finite number"),
                Err(_) => format!("{text:?} is not a number"),
            }
        };
        Err(self.records.error(record.line, Some(name), problem))
    }

    /// Reads the series that starts with the pending row.
    fn read_series(&mut self, first: Record) -> Result<Series, Error> {
        let name = match &self.series_column {
            Some((k, column)) => {
                let value = first.cells[*k].clone();
                if value.trim().is_empty() {
                    return Err(self.records.error(first.line, Some(column), "a missing value".into()));
                }
                Some(value)
            }
            None => None,
        };
        let label = match &self.label_column {
            Some((k, column)) => {
                let value = first.cells[*k].trim().to_string();
                if value.is_empty() {
                    return Err(self.records.error(first.line, Some(column), "a missing label".into()));
                }
                Some(value)
            }
            None => None,
        };
        self.sequences += 1;
        if self.sequences > self.limits.max_sequences {
            return Err(self.limit(first.line, LimitKind::Sequences, self.limits.max_sequences as u64));
        }
        let line = first.line;
        let channels = self.channel_columns.len();
        // The values a series may hold: its rows' bytes within the memory
        // limit (the explanation's cost is checked once it is whole).
        let most_values = self.limits.max_memory_bytes / 8;
        let mut values: Vec<f64> = Vec::new();
        let mut time: Option<Vec<f64>> = self.time_column.as_ref().map(|_| Vec::new());
        let mut row = Some(first);
        while let Some(record) = row.take() {
            let steps = values.len() / channels + 1;
            if steps > self.limits.max_tokens {
                return Err(self.limit(record.line, LimitKind::Tokens, self.limits.max_tokens as u64));
            }
            if (values.len() + channels) as u64 > most_values {
                return Err(self.limit(record.line, LimitKind::MemoryBytes, self.limits.max_memory_bytes));
            }
            self.positions = self.positions.saturating_add(1);
            if self.positions > self.limits.max_total_tokens {
                return Err(self.limit(record.line, LimitKind::TotalTokens, self.limits.max_total_tokens as u64));
            }
            if let (Some((k, column)), Some(time)) = (&self.time_column, time.as_mut()) {
                let t = self.number(&record, *k, column)?;
                if let Some(&previous) = time.last() {
                    if t <= previous {
                        return Err(self.records.error(
                            record.line,
                            Some(column),
                            format!("time {t} does not come after the previous row's {previous}"),
                        ));
                    }
                }
                time.push(t);
            }
            if let (Some((k, column)), Some(label)) = (&self.label_column, &label) {
                let cell = record.cells[*k].trim();
                if cell != label {
                    return Err(self.records.error(
                        record.line,
                        Some(column),
                        format!("the label {cell:?} differs from the series' first row's {label:?}"),
                    ));
                }
            }
            for (k, name) in self.channel_columns.iter().zip(&self.channels) {
                values.push(self.number(&record, *k, name)?);
            }
            let next = self.next_row()?;
            row = match (&self.series_column, next) {
                (Some((k, _)), Some(next)) if Some(&next.cells[*k]) != name.as_ref() => {
                    self.pending = Some(next);
                    None
                }
                (_, next) => next,
            };
        }
        if let (Some(name), Some((k, column))) = (&name, &self.series_column) {
            self.finished.insert(name.clone());
            if let Some(next) = &self.pending {
                if self.finished.contains(&next.cells[*k]) {
                    return Err(self.records.error(
                        next.line,
                        Some(column),
                        format!(
                            "the series {:?} resumes after another series; the rows of each series must be together",
                            next.cells[*k]
                        ),
                    ));
                }
            }
        }
        let steps = values.len() / channels;
        Ok(Series {
            name,
            line,
            time,
            label,
            vectors: DMatrix::from_vec(channels, steps, values),
        })
    }

    fn limit(&self, line: usize, kind: LimitKind, limit: u64) -> Error {
        Error::Limit {
            path: self.records.path.clone(),
            line: Some(line),
            kind,
            limit,
        }
    }
}

impl Iterator for CsvSeries {
    type Item = Result<Series, Error>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.failed {
            return None;
        }
        let first = self.pending.take()?;
        let series = self.read_series(first);
        self.failed = series.is_err();
        Some(series)
    }
}

/// One record of a CSV file: its cells, and the line it starts on.
struct Record {
    line: usize,
    cells: Vec<String>,
    /// Bytes between the line ends (none for a blank line).
    bytes: usize,
}

impl Record {
    fn is_blank(&self) -> bool {
        self.bytes == 0
    }
}

/// The records of a CSV stream, each within [`Limits::max_line_bytes`].
struct Records<R> {
    reader: R,
    path: PathBuf,
    /// The line the next record starts on (1-based).
    line: usize,
    /// Bytes read so far.
    read: u64,
    max_record_bytes: usize,
    max_file_bytes: u64,
}

impl<R: BufRead> Records<R> {
    fn new(path: &Path, reader: R, limits: &Limits) -> Self {
        Self {
            reader,
            path: path.to_path_buf(),
            line: 1,
            read: 0,
            max_record_bytes: limits.max_line_bytes,
            max_file_bytes: limits.max_vectors_bytes,
        }
    }

    /// One line of error about `line` (and the cell of `column`).
    fn error(&self, line: usize, column: Option<&str>, message: String) -> Error {
        Error::Csv {
            path: self.path.clone(),
            line,
            column: column.map(str::to_string),
            message,
        }
    }

    /// The next record, or `None` at the end of the stream. A UTF-8 byte
    /// order mark before the first is skipped.
    fn next(&mut self) -> Result<Option<Record>, Error> {
        let start = self.line;
        let mut cells = Vec::new();
        let mut cell: Vec<u8> = Vec::new();
        let mut bytes = 0usize;
        // Inside quotes; just after a quote inside quotes (a doubled quote
        // or the closing one); whether the cell was quoted.
        let (mut quoted, mut after_quote, mut was_quoted) = (false, false, false);
        let mut any = false;
        loop {
            let buffer = self.reader.fill_buf().map_err(|source| Error::Read {
                path: self.path.clone(),
                source,
            })?;
            if buffer.is_empty() {
                if quoted && !after_quote {
                    return Err(self.error(start, None, "a quoted cell that never closes".into()));
                }
                if !any {
                    return Ok(None);
                }
                cells.push(finish_cell(&mut cell, was_quoted, &self.path, start)?);
                return Ok(Some(Record {
                    line: start,
                    cells,
                    bytes,
                }));
            }
            let skip_bom = self.read == 0 && buffer.starts_with(b"\xEF\xBB\xBF");
            let buffer = if skip_bom { &buffer[3..] } else { buffer };
            let mut used = if skip_bom { 3 } else { 0 };
            let mut done = false;
            for &byte in buffer {
                used += 1;
                any = true;
                if byte == b'\n' {
                    self.line += 1;
                }
                if quoted && !after_quote {
                    if byte == b'"' {
                        after_quote = true;
                    } else {
                        cell.push(byte);
                    }
                } else if after_quote && byte == b'"' {
                    // A doubled quote inside quotes.
                    cell.push(b'"');
                    after_quote = false;
                } else {
                    if after_quote {
                        // The closing quote: the cell ends here.
                        quoted = false;
                        after_quote = false;
                        if !matches!(byte, b',' | b'\n' | b'\r') {
                            return Err(self.error(
                                start,
                                None,
                                "text after a quoted cell's closing quote (a quote inside quotes is written twice)"
                                    .into(),
                            ));
                        }
                    }
                    match byte {
                        b',' => {
                            cells.push(finish_cell(&mut cell, was_quoted, &self.path, start)?);
                            was_quoted = false;
                        }
                        b'\n' => {
                            if cell.last() == Some(&b'\r') && !was_quoted {
                                cell.pop();
                                bytes = bytes.saturating_sub(1);
                            }
                            done = true;
                            break;
                        }
                        b'"' if cell.is_empty() && !was_quoted => {
                            quoted = true;
                            was_quoted = true;
                        }
                        b'\r' if was_quoted => {}
                        other => cell.push(other),
                    }
                }
                if byte != b'\n' {
                    bytes += 1;
                }
                if bytes > self.max_record_bytes {
                    return Err(Error::Limit {
                        path: self.path.clone(),
                        line: Some(start),
                        kind: LimitKind::LineBytes,
                        limit: self.max_record_bytes as u64,
                    });
                }
            }
            self.reader.consume(used);
            self.read = self.read.saturating_add(used as u64);
            if self.read > self.max_file_bytes {
                return Err(too_large(&self.path, LimitKind::VectorsBytes, self.max_file_bytes));
            }
            if done {
                if quoted && !after_quote {
                    continue;
                }
                cells.push(finish_cell(&mut cell, was_quoted, &self.path, start)?);
                return Ok(Some(Record {
                    line: start,
                    cells,
                    bytes,
                }));
            }
        }
    }
}

/// A cell's text: UTF-8, and without the spaces around it unless quoted.
fn finish_cell(cell: &mut Vec<u8>, quoted: bool, path: &Path, line: usize) -> Result<String, Error> {
    let bytes = std::mem::take(cell);
    let text = String::from_utf8(bytes).map_err(|_| Error::Csv {
        path: path.to_path_buf(),
        line,
        column: None,
        message: "a cell that is not UTF-8 text".into(),
    })?;
    Ok(if quoted {
        text
    } else {
        text.trim_matches(|c: char| c.is_ascii_whitespace()).to_string()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn records(text: &str) -> Result<Vec<(usize, Vec<String>)>, Error> {
        let mut records = Records::new(Path::new("x.csv"), text.as_bytes(), &Limits::default());
        let mut all = Vec::new();
        while let Some(record) = records.next()? {
            all.push((record.line, record.cells));
        }
        Ok(all)
    }

    /// A series as the label tests see it: its name, its label, its values.
    type Seen = (Option<String>, Option<String>, Vec<f64>);

    /// The series of `text` read as a CSV file with the label column
    /// `class` and the series column `id`, or the first error's line.
    fn labelled(text: &str) -> Result<Vec<Seen>, String> {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("x.csv");
        std::fs::write(&path, text).unwrap();
        let opened = open_csv(&path, None, Some("id"), Some("class"), &Limits::default()).map_err(|e| e.to_string())?;
        opened
            .map(|s| s.map(|s| (s.name, s.label, s.vectors.as_slice().to_vec())))
            .collect::<Result<_, _>>()
            .map_err(|e| e.to_string())
    }

    #[test]
    fn a_label_column_is_no_channel_and_holds_one_value_per_series() {
        let found = labelled("id,x,class,y\na,1,walk,2\na,3, walk ,4\nb,5,run,6\n").unwrap();
        assert_eq!(
            found,
            [
                (Some("a".into()), Some("walk".into()), vec![1.0, 2.0, 3.0, 4.0]),
                (Some("b".into()), Some("run".into()), vec![5.0, 6.0]),
            ]
        );
        let changed = labelled("id,x,class\na,1,walk\na,3,run\n").unwrap_err();
        assert!(
            changed
                .ends_with("line 3, column \"class\": the label \"run\" differs from the series' first row's \"walk\""),
            "{changed}"
        );
        let missing = labelled("id,x,class\na,1,\n").unwrap_err();
        assert!(missing.ends_with("column \"class\": a missing label"), "{missing}");
        let same = labelled("id,x,id2\na,1,b\n").map(|_| ()).unwrap_err();
        assert!(same.contains("--label-column \"class\" is not a column"), "{same}");
    }

    #[test]
    fn quoted_cells_hold_commas_quotes_and_line_breaks() {
        let found = records("\u{feff}a,\"b, c\",\"say \"\"hi\"\"\"\r\n1,\"two\nlines\",3\n\n 4 , 5 ,6").unwrap();
        let cells = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert_eq!(
            found,
            [
                (1, cells(&["a", "b, c", "say \"hi\""])),
                (2, cells(&["1", "two\nlines", "3"])),
                (4, cells(&[""])),
                (5, cells(&["4", "5", "6"])),
            ]
        );
    }

    #[test]
    fn broken_quoting_is_refused_with_its_line() {
        for (text, reason) in [
            ("a,b\n1,\"2\n", "never closes"),
            ("a,b\n1,\"2\"x\n", "after a quoted cell"),
        ] {
            let message = records(text).unwrap_err().to_string();
            assert!(
                message.contains("line 2") && message.contains(reason),
                "{text:?}: {message}"
            );
        }
    }

    #[test]
    fn arbitrary_bytes_give_records_or_one_line_errors() {
        // A small deterministic generator over the bytes that matter.
        let alphabet = b"a1,\"\n\r. -e\xff";
        let mut state = 0x2545_F491_4F6C_DD1Du64;
        for _ in 0..2_000 {
            let mut text = Vec::new();
            for _ in 0..(state % 40) {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                text.push(alphabet[(state % alphabet.len() as u64) as usize]);
            }
            let limits = Limits {
                max_line_bytes: 16,
                ..Limits::default()
            };
            let mut reader = Records::new(Path::new("x.csv"), &text[..], &limits);
            loop {
                match reader.next() {
                    Ok(Some(_)) => {}
                    Ok(None) => break,
                    Err(e) => {
                        assert_eq!(e.to_string().lines().count(), 1, "{text:?}");
                        break;
                    }
                }
            }
        }
    }
}
