use std::collections::HashSet;
use std::io::{BufRead, Cursor, Read, Seek};
use std::path::{Path, PathBuf};

use lrp_models::{Tensor, Tensors};
use nalgebra::DMatrix;
use npyz::npz::NpzArchive;

use crate::limits::RATIO_EXEMPT_BYTES;
use crate::message::shown;
use crate::read::{open_file_capped, too_large};
use crate::{Error, LimitKind, Limits};

/// One input sequence read from a file.
#[derive(Debug, Clone, PartialEq)]
pub struct Sequence {
    /// The array's name (the file stem for `.npy`, the array name in `.npz`).
    pub name: String,
    /// The vectors, `[E, T]` (column `t` is position `t`), as `f64`.
    pub vectors: DMatrix<f64>,
}

/// An array read from an npy stream: shape and row-major values.
struct Array {
    shape: Vec<u64>,
    values: Vec<f64>,
}

/// An npy array opened over bytes in memory: its header, read by
/// [`parse_header`], and its data bytes.
struct OpenArray<'a> {
    /// The element type as the header names it (`<f8`).
    descr: String,
    /// Whether the data is column-major.
    fortran: bool,
    shape: Vec<u64>,
    /// Everything after the header.
    data: &'a [u8],
}

/// Parses the header of an npy array held in `bytes`.
fn open_array<'a>(path: &Path, name: &str, bytes: &'a [u8]) -> Result<OpenArray<'a>, Error> {
    let malformed = |what: &str| Error::Format {
        path: path.to_path_buf(),
        message: format!("{}: not a valid npy array: {what}", shown(name)),
    };
    // The preamble is magic (6), version (2), header length (2 bytes in
    // version 1, 4 after), then the header, a Python dict literal.
    if bytes.len() < 10 || !bytes.starts_with(b"\x93NUMPY") {
        return Err(malformed("no npy signature"));
    }
    let (header_start, header_len) = match bytes[6] {
        1 => (10usize, usize::from(u16::from_le_bytes([bytes[8], bytes[9]]))),
        2 | 3 if bytes.len() >= 12 => (
            12,
            u32::from_le_bytes([bytes[8], bytes[9], bytes[10], bytes[11]]) as usize,
        ),
        _ => return Err(malformed("unknown format version")),
    };
    let header = bytes
        .get(header_start..header_start.saturating_add(header_len))
        .ok_or_else(|| malformed("header past the end"))?;
    // A plain float array's header is one dict holding one tuple, no lists:
    // anything nested is refused before it is parsed (the literal parser
    // once used here took exponential time on nested braces, found by
    // fuzzing; ours is linear, and the rule still names the problem best).
    let count = |c: u8| header.iter().filter(|&&b| b == c).count();
    if header.len() > 4096 || !header.is_ascii() || count(b'{') > 1 || count(b'(') > 1 || count(b'[') > 0 {
        return Err(malformed("the header is not that of a plain float array"));
    }
    let text = std::str::from_utf8(header).map_err(|_| malformed("the header is not text"))?;
    let (descr, fortran, shape) = parse_header(text).map_err(|what| malformed(&what))?;
    Ok(OpenArray {
        descr,
        fortran,
        shape,
        data: &bytes[header_start + header_len..],
    })
}

/// Reads the header of an npy array, a Python dict literal such as
/// `{'descr': '<f8', 'fortran_order': False, 'shape': (19, 60), }`
/// (spaces and a newline pad it): exactly the keys `descr` (a string),
/// `fortran_order` (`True` or `False`) and `shape` (a tuple of
/// non-negative integers), in any order, each once. Anything else (nested
/// values, other keys, structured dtypes) is refused with what was wrong.
///
/// Our own, in one pass over at most 4 KB: the general literal parser it
/// replaces took a third of the time of reading an npz of 2,210 arrays, on
/// the thread that feeds all the others.
fn parse_header(text: &str) -> Result<(String, bool, Vec<u64>), String> {
    struct Cursor<'t> {
        rest: &'t str,
    }
    impl<'t> Cursor<'t> {
        fn skip_space(&mut self) {
            self.rest = self.rest.trim_start_matches([' ', '\t', '\n', '\r']);
        }
        fn eat(&mut self, token: char) -> bool {
            self.skip_space();
            match self.rest.strip_prefix(token) {
                Some(rest) => {
                    self.rest = rest;
                    true
                }
                None => false,
            }
        }
        fn expect(&mut self, token: char) -> Result<(), String> {
            if self.eat(token) {
                Ok(())
            } else {
                Err(format!("expected '{token}' in the header"))
            }
        }
        fn string(&mut self) -> Result<&'t str, String> {
            self.skip_space();
            let quote = match self.rest.chars().next() {
                Some(q @ ('\'' | '"')) => q,
                _ => return Err("expected a quoted string in the header".into()),
            };
            let body = &self.rest[1..];
            let end = body.find(quote).ok_or("an unterminated string in the header")?;
            if body[..end].contains('\\') {
                return Err("escapes in a header string".into());
            }
            self.rest = &body[end + 1..];
            Ok(&body[..end])
        }
        fn word(&mut self) -> &'t str {
            self.skip_space();
            let end = self
                .rest
                .find(|c: char| !c.is_ascii_alphanumeric())
                .unwrap_or(self.rest.len());
            let (word, rest) = self.rest.split_at(end);
            self.rest = rest;
            word
        }
    }
    let mut c = Cursor { rest: text };
    let (mut descr, mut fortran, mut shape) = (None, None, None);
    c.expect('{')?;
    while !c.eat('}') {
        let key = c.string()?;
        c.expect(':')?;
        match key {
            "descr" if descr.is_none() => descr = Some(c.string()?.to_string()),
            "fortran_order" if fortran.is_none() => {
                fortran = Some(match c.word() {
                    "True" => true,
                    "False" => false,
                    _ => return Err("fortran_order is neither True nor False".into()),
                })
            }
            "shape" if shape.is_none() => {
                c.expect('(')?;
                let mut dims = Vec::new();
                while !c.eat(')') {
                    let digits = c.word();
                    let digits = digits.strip_suffix('L').unwrap_or(digits);
                    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
                        return Err("a shape entry is not a non-negative integer".into());
                    }
                    dims.push(digits.parse::<u64>().map_err(|_| "a shape entry is too large")?);
                    if !c.eat(',') {
                        c.expect(')')?;
                        break;
                    }
                }
                shape = Some(dims);
            }
            "descr" | "fortran_order" | "shape" => return Err(format!("the key '{key}' twice in the header")),
            _ => return Err(format!("an unknown key '{}' in the header", shown(key))),
        }
        if !c.eat(',') {
            c.expect('}')?;
            break;
        }
    }
    c.skip_space();
    if !c.rest.is_empty() {
        return Err("text after the header's dict".into());
    }
    match (descr, fortran, shape) {
        (Some(descr), Some(fortran), Some(shape)) => Ok((descr, fortran, shape)),
        _ => Err("the header lacks descr, fortran_order or shape".into()),
    }
}

/// The size and byte order of a float element type (`<f8`, `>f4`, `=f8`),
/// or `None` for any other type.
fn float_type(descr: &str) -> Option<(usize, bool)> {
    let little = match descr.as_bytes().first()? {
        b'<' => true,
        b'>' => false,
        b'=' => cfg!(target_endian = "little"),
        _ => return None,
    };
    match &descr[1..] {
        "f8" => Some((8, little)),
        "f4" => Some((4, little)),
        _ => None,
    }
}

/// Reads the f32 or f64 values of an opened npy array, checking the
/// header's claims against the bytes it has before allocating anything.
fn read_array(path: &Path, name: &str, npy: OpenArray<'_>, check: &mut ShapeCheck<'_>) -> Result<Array, Error> {
    let format = |message: String| Error::Format {
        path: path.to_path_buf(),
        message,
    };
    let Some((item, little)) = float_type(&npy.descr) else {
        return Err(Error::Dtype {
            supported: "float32 and float64",
            path: path.to_path_buf(),
            name: name.to_string(),
            dtype: npy.descr,
        });
    };
    let shape = npy.shape;
    let count = shape.iter().try_fold(1u64, |acc, &d| acc.checked_mul(d));
    let bytes = match count.and_then(|c| c.checked_mul(item as u64)) {
        Some(bytes) if bytes <= npy.data.len() as u64 => bytes as usize,
        _ => {
            return Err(format(format!(
                "{}: header claims shape {shape:?}, more data than the file holds",
                shown(name)
            )))
        }
    };
    // Arrays without data (a zero in the shape) pass the check above with
    // any other dimension; the caller's check bounds them.
    check(name, &shape)?;
    let data = &npy.data[..bytes];
    let values: Vec<f64> = if item == 8 {
        data.chunks_exact(8)
            .map(|b| {
                let b: [u8; 8] = b.try_into().expect("chunks of 8");
                if little {
                    f64::from_le_bytes(b)
                } else {
                    f64::from_be_bytes(b)
                }
            })
            .collect()
    } else {
        data.chunks_exact(4)
            .map(|b| {
                let b: [u8; 4] = b.try_into().expect("chunks of 4");
                f64::from(if little {
                    f32::from_le_bytes(b)
                } else {
                    f32::from_be_bytes(b)
                })
            })
            .collect()
    };
    let values = if npy.fortran && shape.len() == 2 {
        // Column-major on disk; turn into row-major.
        let (rows, cols) = (shape[0] as usize, shape[1] as usize);
        DMatrix::from_column_slice(rows, cols, &values)
            .transpose()
            .as_slice()
            .to_vec()
    } else {
        values
    };
    Ok(Array { shape, values })
}

/// Checks an array's shape, from its header, before its data is read.
type ShapeCheck<'a> = dyn FnMut(&str, &[u64]) -> Result<(), Error> + 'a;

/// The arrays of an npz archive, read one at a time in archive order.
/// Opening reads the zip directory and refuses there two entries of one
/// name (`x` and `x.npy` are one name, as numpy reads them) and any
/// archive whose declared sizes break the limits (entry, total, ratio):
/// all before anything is decompressed, so a bomb costs nothing however
/// many entries it spreads over. Each entry is then read to its end, so the
/// zip reader verifies its CRC, and one that holds more than it declared is
/// refused. Memory holds the directory and one array.
struct NpzEntries<R: Read + Seek> {
    path: PathBuf,
    archive: NpzArchive<R>,
    /// The npy entries still to read: index in the zip, array name.
    entries: std::vec::IntoIter<(usize, String)>,
}

impl<R: Read + Seek> NpzEntries<R> {
    fn open(path: &Path, reader: R, limits: &Limits) -> Result<Self, Error> {
        let format = |message: String| Error::Format {
            path: path.to_path_buf(),
            message,
        };
        let over = |kind: LimitKind, limit: u64| Error::Limit {
            path: path.to_path_buf(),
            line: None,
            kind,
            limit,
        };
        let mut archive = NpzArchive::new(reader).map_err(|e| format(format!("not a valid npz archive: {e}")))?;
        let zip = archive.zip_archive();
        let mut names = HashSet::new();
        let mut entries = Vec::new();
        let mut total = 0u64;
        for index in 0..zip.len() {
            let entry = zip.by_index(index).map_err(|e| format(format!("entry {index}: {e}")))?;
            // An entry's array name is its file name without `.npy`, as numpy
            // reads it; `x` and `x.npy` both answer to the name `x` there, so
            // they are two arrays of one name here too, even though only the
            // `.npy` entries are read.
            let (name, is_array) = match entry.name().strip_suffix(".npy") {
                Some(stem) => (stem, true),
                None => (entry.name(), false),
            };
            if !names.insert(name.to_string()) {
                return Err(Error::DuplicateName {
                    path: path.to_path_buf(),
                    name: name.to_string(),
                });
            }
            if !is_array {
                continue;
            }
            // The directory's sizes are checked for the whole archive before
            // any entry is decompressed: a bomb costs nothing, however many
            // entries it spreads over.
            let declared = entry.size();
            if declared > limits.max_npz_entry_bytes {
                return Err(over(LimitKind::NpzEntryBytes, limits.max_npz_entry_bytes));
            }
            total = total.saturating_add(declared);
            if total > limits.max_npz_total_bytes {
                return Err(over(LimitKind::NpzTotalBytes, limits.max_npz_total_bytes));
            }
            if declared > RATIO_EXEMPT_BYTES && declared > entry.compressed_size().saturating_mul(limits.max_npz_ratio)
            {
                return Err(over(LimitKind::NpzRatio, limits.max_npz_ratio));
            }
            entries.push((index, name.to_string()));
        }
        Ok(Self {
            path: path.to_path_buf(),
            archive,
            entries: entries.into_iter(),
        })
    }

    /// Arrays not read yet.
    fn remaining(&self) -> usize {
        self.entries.len()
    }

    /// The next array, its shape passed by `check` before its data is
    /// read; `None` after the last.
    fn next_array(&mut self, check: &mut ShapeCheck<'_>) -> Result<Option<(String, Array)>, Error> {
        let Some((index, name)) = self.entries.next() else {
            return Ok(None);
        };
        let path = self.path.as_path();
        let format = |message: String| Error::Format {
            path: path.to_path_buf(),
            message,
        };
        let mut entry = self
            .archive
            .zip_archive()
            .by_index(index)
            .map_err(|e| format(format!("{name}: {e}")))?;
        let declared = entry.size();
        // One byte more than declared tells a lying directory; reading
        // until the reader reports the end makes it check the CRC.
        let mut bytes = Vec::new();
        std::io::Read::take(&mut entry, declared + 1)
            .read_to_end(&mut bytes)
            .map_err(|e| format(format!("{}: cannot decompress: {e}", shown(&name))))?;
        if bytes.len() as u64 > declared {
            return Err(format(format!(
                "{}: holds more data than the archive's directory declares",
                shown(&name)
            )));
        }
        let npy = open_array(path, &name, &bytes)?;
        let array = read_array(path, &name, npy, check)?;
        Ok(Some((name, array)))
    }
}

/// Every array of an npz archive held in `bytes`, in archive order (see
/// [`NpzEntries`]).
fn read_npz(
    path: &Path,
    bytes: &[u8],
    limits: &Limits,
    check: &mut ShapeCheck<'_>,
) -> Result<Vec<(String, Array)>, Error> {
    let mut entries = NpzEntries::open(path, Cursor::new(bytes), limits)?;
    let mut arrays = Vec::with_capacity(entries.remaining());
    while let Some(array) = entries.next_array(check)? {
        arrays.push(array);
    }
    Ok(arrays)
}

/// Reads input sequences: a `.npy` file holds one `[T, E]` array, a `.npz`
/// archive any number of them (returned in archive order). f32 or f64.
/// Within the default [`Limits`].
pub fn read_sequences(path: impl AsRef<Path>) -> Result<Vec<Sequence>, Error> {
    read_sequences_with(path, &Limits::default())
}

/// [`read_sequences`] within `limits` (file size, positions per sequence
/// and in all, number of sequences, npz sizes): all of
/// [`open_sequences`], held together.
pub fn read_sequences_with(path: impl AsRef<Path>, limits: &Limits) -> Result<Vec<Sequence>, Error> {
    open_sequences(path.as_ref(), limits)?.collect()
}

/// Opens a file of input sequences ([`read_sequences`]) to read them one
/// at a time: an `.npz` archive entry by entry from the file, so memory
/// holds the archive's directory and one array, not the archive (an
/// `.npy` file, one array, is read whole). The file must be a regular file
/// of at most [`Limits::max_vectors_bytes`]; each array passes the checks
/// of [`parse_sequences_with`] (shape, positions, and the count and total
/// size of what was read so far) before its data is read. After an error
/// the iterator ends.
///
/// ```
/// let path = "../tests/fixtures/adding/heldout.npz";
/// let mut arrays = lrp_io::open_sequences(path.as_ref(), &lrp_io::Limits::default())?;
/// assert_eq!(arrays.remaining(), 500);
/// let first = arrays.next().unwrap()?;
/// assert_eq!((first.vectors.nrows(), arrays.remaining()), (2, 499));
/// # Ok::<(), lrp_io::Error>(())
/// ```
pub fn open_sequences(path: &Path, limits: &Limits) -> Result<Sequences, Error> {
    let (file, length) = open_file_capped(path, limits.max_vectors_bytes, LimitKind::VectorsBytes)?;
    let fail = |source: std::io::Error| Error::Read {
        path: path.to_path_buf(),
        source,
    };
    let mut reader = std::io::BufReader::new(file);
    // A zip file starts with `PK`; the extension decides for a file too
    // short or damaged to tell.
    let signature = reader.fill_buf().map_err(fail)?;
    let npz = signature.starts_with(b"PK") || path.extension().is_some_and(|e| e == "npz");
    let check = SequenceCheck::new(path, limits);
    if !npz {
        let mut bytes = Vec::with_capacity(length as usize);
        reader
            .take(limits.max_vectors_bytes.saturating_add(1))
            .read_to_end(&mut bytes)
            .map_err(fail)?;
        if bytes.len() as u64 > limits.max_vectors_bytes {
            return Err(too_large(path, LimitKind::VectorsBytes, limits.max_vectors_bytes));
        }
        let held = parse_sequences_with(path, &bytes, limits)?;
        return Ok(Sequences {
            source: Source::Held(held.into_iter()),
            check,
            failed: false,
        });
    }
    let entries = NpzEntries::open(path, reader, limits)?;
    if entries.remaining() == 0 {
        return Err(no_arrays(path));
    }
    Ok(Sequences {
        source: Source::Archive(entries),
        check,
        failed: false,
    })
}

/// Input sequences read one at a time ([`open_sequences`]).
pub struct Sequences {
    source: Source,
    check: SequenceCheck,
    failed: bool,
}

/// Where [`Sequences`] come from.
enum Source {
    /// Read already (an `.npy` file).
    Held(std::vec::IntoIter<Sequence>),
    /// An npz archive read entry by entry.
    Archive(NpzEntries<std::io::BufReader<std::fs::File>>),
}

impl Sequences {
    /// Sequences not read yet (fewer if an error ends the reading).
    pub fn remaining(&self) -> usize {
        match &self.source {
            Source::Held(held) => held.len(),
            Source::Archive(entries) => entries.remaining(),
        }
    }
}

impl Iterator for Sequences {
    type Item = Result<Sequence, Error>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.failed {
            return None;
        }
        let next = match &mut self.source {
            Source::Held(held) => held.next().map(Ok),
            Source::Archive(entries) => {
                let check = &mut self.check;
                entries
                    .next_array(&mut |name, shape| check.check(name, shape))
                    .map(|array| array.map(|(name, array)| sequence(name, array)))
                    .transpose()
            }
        };
        self.failed = matches!(next, Some(Err(_)));
        next
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        (0, Some(self.remaining()))
    }
}

/// [`read_sequences`] on the bytes of a file (`path` names it in messages
/// and, without the zip signature, decides npz by its extension).
pub fn parse_sequences(path: &Path, bytes: &[u8]) -> Result<Vec<Sequence>, Error> {
    parse_sequences_with(path, bytes, &Limits::default())
}

/// [`parse_sequences`] within `limits`.
pub fn parse_sequences_with(path: &Path, bytes: &[u8], limits: &Limits) -> Result<Vec<Sequence>, Error> {
    let mut check = SequenceCheck::new(path, limits);
    let mut check = |name: &str, shape: &[u64]| check.check(name, shape);
    let arrays = if is_npz(path, bytes) {
        read_npz(path, bytes, limits, &mut check)?
    } else {
        let name = path.file_stem().and_then(|s| s.to_str()).unwrap_or("array").to_string();
        let npy = open_array(path, &name, bytes)?;
        let array = read_array(path, &name, npy, &mut check)?;
        vec![(name, array)]
    };
    if arrays.is_empty() {
        return Err(no_arrays(path));
    }
    Ok(arrays.into_iter().map(|(name, array)| sequence(name, array)).collect())
}

/// The checks on input arrays' shapes, from their headers, before their
/// data or anything per position is allocated: `[T, E]` with
/// `1 <= T <= max_tokens`, `E >= 1`, all the `T` together within
/// `max_total_tokens`, at most `max_sequences` arrays.
struct SequenceCheck {
    path: PathBuf,
    limits: Limits,
    positions: usize,
    sequences: usize,
}

impl SequenceCheck {
    fn new(path: &Path, limits: &Limits) -> Self {
        Self {
            path: path.to_path_buf(),
            limits: *limits,
            positions: 0,
            sequences: 0,
        }
    }

    fn check(&mut self, name: &str, shape: &[u64]) -> Result<(), Error> {
        let (path, limits) = (self.path.as_path(), &self.limits);
        let limit = |kind: LimitKind, limit: usize| Error::Limit {
            path: path.to_path_buf(),
            line: None,
            kind,
            limit: limit as u64,
        };
        self.sequences += 1;
        if self.sequences > limits.max_sequences {
            return Err(limit(LimitKind::Sequences, limits.max_sequences));
        }
        let [t, e] = *shape else {
            return Err(bad_shape(path, name, shape));
        };
        if t == 0 || e == 0 {
            return Err(bad_shape(path, name, shape));
        }
        let t = usize::try_from(t).unwrap_or(usize::MAX);
        if t > limits.max_tokens {
            return Err(limit(LimitKind::Tokens, limits.max_tokens));
        }
        self.positions = self.positions.saturating_add(t);
        if self.positions > limits.max_total_tokens {
            return Err(limit(LimitKind::TotalTokens, limits.max_total_tokens));
        }
        Ok(())
    }
}

/// An array `[T, E]` as a sequence.
fn sequence(name: String, array: Array) -> Sequence {
    let (t, e) = (array.shape[0] as usize, array.shape[1] as usize);
    // Row-major [T, E] is column-major [E, T]: no copy of order needed.
    Sequence {
        name,
        vectors: DMatrix::from_vec(e, t, array.values),
    }
}

fn no_arrays(path: &Path) -> Error {
    Error::Format {
        path: path.to_path_buf(),
        message: "the archive holds no arrays".into(),
    }
}

fn bad_shape(path: &Path, name: &str, shape: &[u64]) -> Error {
    Error::InputShape {
        path: path.to_path_buf(),
        name: name.to_string(),
        found: shape.to_vec(),
    }
}

/// Reads the tensors of a weights `.npz` archive (layout `reference`).
pub(crate) fn read_npz_tensors(path: &Path, bytes: &[u8], limits: &Limits) -> Result<Tensors, Error> {
    let mut tensors = Tensors::new();
    for (name, array) in read_npz(path, bytes, limits, &mut |_, _| Ok(()))? {
        let shape = array.shape.iter().map(|&d| d as usize).collect();
        tensors.insert(
            name,
            Tensor {
                shape,
                values: array.values,
            },
        );
    }
    Ok(tensors)
}

/// An npz archive is a zip file: it starts with `PK`.
fn is_npz(path: &Path, bytes: &[u8]) -> bool {
    bytes.starts_with(b"PK") || path.extension().is_some_and(|e| e == "npz")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn headers_numpy_writes_are_read() {
        for (header, want) in [
            (
                "{'descr': '<f8', 'fortran_order': False, 'shape': (19, 60), }          \n",
                ("<f8", false, vec![19, 60]),
            ),
            (
                "{\"shape\":(3,),\"descr\":\">f4\",\"fortran_order\":True}",
                (">f4", true, vec![3]),
            ),
            (
                "{'descr': '<f8', 'fortran_order': False, 'shape': ()}",
                ("<f8", false, vec![]),
            ),
            (
                "{'descr': '<i8', 'fortran_order': False, 'shape': (2L, 5L), }",
                ("<i8", false, vec![2, 5]),
            ),
        ] {
            let (descr, fortran, shape) = parse_header(header).unwrap();
            assert_eq!((descr.as_str(), fortran, shape), want, "{header}");
        }
    }

    #[test]
    fn headers_of_anything_else_are_refused_with_the_reason() {
        for (header, reason) in [
            ("{'descr': '<f8', 'fortran_order': False}", "lacks"),
            (
                "{'descr': '<f8', 'descr': '<f8', 'fortran_order': False, 'shape': (1,)}",
                "twice",
            ),
            (
                "{'descr': '<f8', 'fortran_order': False, 'shape': (1,), 'x': 1}",
                "unknown key",
            ),
            (
                "{'descr': '<f8', 'fortran_order': 0, 'shape': (1,)}",
                "neither True nor False",
            ),
            (
                "{'descr': '<f8', 'fortran_order': False, 'shape': (-1,)}",
                "non-negative",
            ),
            (
                "{'descr': '<f8', 'fortran_order': False, 'shape': (99999999999999999999999,)}",
                "too large",
            ),
            (
                "{'descr': '<f8', 'fortran_order': False, 'shape': (1 2)}",
                "expected ')'",
            ),
            (
                "{'descr': [('a', '<f8')], 'fortran_order': False, 'shape': (1,)}",
                "quoted string",
            ),
            ("{'descr': '<f8, 'fortran_order': False, 'shape': (1,)}", "expected '}'"),
            (
                "{'descr': '<f8', 'fortran_order': False, 'shape': (1,)} x",
                "after the header",
            ),
            ("{'descr': '<f8', 'fortran_order': False, 'shape': (1,)", "expected '}'"),
            ("'descr'", "expected '{'"),
            ("{'de\\scr': '<f8'}", "escapes"),
        ] {
            let err = parse_header(header).unwrap_err();
            assert!(err.contains(reason), "{header}: {err}");
        }
    }

    #[test]
    fn float_types_are_known_by_size_and_byte_order() {
        assert_eq!(float_type("<f8"), Some((8, true)));
        assert_eq!(float_type(">f4"), Some((4, false)));
        assert_eq!(float_type("=f8"), Some((8, cfg!(target_endian = "little"))));
        for other in ["<i8", "|u1", "<f2", "<c16", "", "f8"] {
            assert_eq!(float_type(other), None, "{other}");
        }
    }
}
