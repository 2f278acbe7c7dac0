use std::io::{Cursor, Read};
use std::path::Path;

use lrp_models::{Tensor, Tensors};
use nalgebra::DMatrix;
use npyz::npz::NpzArchive;
use npyz::{DType, NpyFile, Order, TypeChar};

use crate::error::read_file;
use crate::Error;

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

/// An npy array opened over bytes in memory.
type OpenArray<'a> = NpyFile<Cursor<&'a [u8]>>;

/// Parses the header of an npy array held in `bytes`; returns the opened
/// array and the number of data bytes after the header.
fn open_array<'a>(path: &Path, name: &str, bytes: &'a [u8]) -> Result<(OpenArray<'a>, u64), Error> {
    let malformed = |what: &str| Error::Format {
        path: path.to_path_buf(),
        message: format!("{name}: not a valid npy array: {what}"),
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
    // A plain float array's header is `{'descr': '<f8', 'fortran_order':
    // False, 'shape': (T, E), }`: one dict, one tuple, no lists. Anything
    // nested deeper is refused before the literal parser sees it (fuzzing
    // found nested braces that make that parser take exponential time).
    let count = |c: u8| header.iter().filter(|&&b| b == c).count();
    if header.len() > 4096 || !header.is_ascii() || count(b'{') > 1 || count(b'(') > 1 || count(b'[') > 0 {
        return Err(malformed("the header is not that of a plain float array"));
    }
    let npy = NpyFile::new(Cursor::new(bytes)).map_err(|e| malformed(&e.to_string()))?;
    Ok((npy, (bytes.len() - header_start - header_len) as u64))
}

/// Reads the f32 or f64 values of an opened npy stream holding at most
/// `available` bytes, checking the header's claims against that before
/// allocating anything.
fn read_array<R: Read>(path: &Path, name: &str, npy: NpyFile<R>, available: u64) -> Result<Array, Error> {
    let format = |message: String| Error::Format {
        path: path.to_path_buf(),
        message,
    };
    let item = match npy.dtype() {
        DType::Plain(ts) if ts.type_char() == TypeChar::Float && matches!(ts.size_field(), 4 | 8) => ts.size_field(),
        other => {
            return Err(Error::Dtype {
                path: path.to_path_buf(),
                name: name.to_string(),
                dtype: other.descr(),
            });
        }
    };
    let shape = npy.shape().to_vec();
    let count = shape.iter().try_fold(1u64, |acc, &d| acc.checked_mul(d));
    match count.and_then(|c| c.checked_mul(item)) {
        Some(bytes) if bytes <= available => {}
        _ => {
            return Err(format(format!(
                "{name}: header claims shape {shape:?}, more data than the file holds"
            )))
        }
    }
    let fortran = npy.order() == Order::Fortran;
    let values: Vec<f64> = if item == 8 {
        npy.into_vec::<f64>()
    } else {
        npy.into_vec::<f32>().map(|v| v.into_iter().map(f64::from).collect())
    }
    .map_err(|e| format(format!("{name}: cannot read the data: {e}")))?;
    let values = if fortran && shape.len() == 2 {
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

/// The largest npz entry read (2 GiB): far beyond any input or weights file
/// lrp is meant for, and a bound on what a zip bomb can make us decompress.
const MAX_ENTRY_BYTES: u64 = 2 << 30;

/// Every array of an npz archive, in archive order.
fn read_npz(path: &Path, bytes: &[u8]) -> Result<Vec<(String, Array)>, Error> {
    let format = |message: String| Error::Format {
        path: path.to_path_buf(),
        message,
    };
    let mut archive =
        NpzArchive::new(Cursor::new(bytes)).map_err(|e| format(format!("not a valid npz archive: {e}")))?;
    let mut entries = Vec::new();
    let zip = archive.zip_archive();
    for index in 0..zip.len() {
        let entry = zip.by_index(index).map_err(|e| format(format!("entry {index}: {e}")))?;
        let Some(name) = entry.name().strip_suffix(".npy") else {
            continue;
        };
        entries.push((name.to_string(), entry.size()));
    }
    let mut arrays = Vec::with_capacity(entries.len());
    for (name, declared) in entries {
        let mut entry = archive
            .zip_archive()
            .by_name(&format!("{name}.npy"))
            .map_err(|e| format(format!("{name}: {e}")))?;
        // Decompress what is really there (up to what the entry declares and
        // a hard cap), so neither the zip directory nor the npy header can
        // make us allocate more than the data holds.
        let limit = declared.min(MAX_ENTRY_BYTES);
        let mut bytes = Vec::new();
        std::io::Read::take(&mut entry, limit)
            .read_to_end(&mut bytes)
            .map_err(|e| format(format!("{name}: cannot decompress: {e}")))?;
        let (npy, available) = open_array(path, &name, &bytes)?;
        let array = read_array(path, &name, npy, available)?;
        arrays.push((name, array));
    }
    Ok(arrays)
}

/// Reads input sequences: a `.npy` file holds one `[T, E]` array, a `.npz`
/// archive any number of them (returned in archive order). f32 or f64.
pub fn read_sequences(path: impl AsRef<Path>) -> Result<Vec<Sequence>, Error> {
    let path = path.as_ref();
    parse_sequences(path, &read_file(path)?)
}

/// [`read_sequences`] on the bytes of a file (`path` names it in messages
/// and, without the zip signature, decides npz by its extension).
pub fn parse_sequences(path: &Path, bytes: &[u8]) -> Result<Vec<Sequence>, Error> {
    let arrays = if is_npz(path, bytes) {
        read_npz(path, bytes)?
    } else {
        let name = path.file_stem().and_then(|s| s.to_str()).unwrap_or("array").to_string();
        let (npy, available) = open_array(path, &name, bytes)?;
        let array = read_array(path, &name, npy, available)?;
        vec![(name, array)]
    };
    if arrays.is_empty() {
        return Err(Error::Format {
            path: path.to_path_buf(),
            message: "the archive holds no arrays".into(),
        });
    }
    arrays
        .into_iter()
        .map(|(name, array)| {
            if array.shape.len() != 2 {
                return Err(Error::InputShape {
                    path: path.to_path_buf(),
                    name,
                    found: array.shape,
                });
            }
            let (t, e) = (array.shape[0] as usize, array.shape[1] as usize);
            // Row-major [T, E] is column-major [E, T]: no copy of order needed.
            Ok(Sequence {
                name,
                vectors: DMatrix::from_vec(e, t, array.values),
            })
        })
        .collect()
}

/// Reads the tensors of a weights `.npz` archive (layout `reference`).
pub(crate) fn read_npz_tensors(path: &Path, bytes: &[u8]) -> Result<Tensors, Error> {
    let mut tensors = Tensors::new();
    for (name, array) in read_npz(path, bytes)? {
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
