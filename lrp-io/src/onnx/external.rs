//! Tensors whose bytes are in a file beside the graph (ONNX "external
//! data"; torch's default exporter writes `model.onnx.data`).
//!
//! A tensor names its file (`location`), where its bytes start (`offset`)
//! and how many there are (`length`). The file must be inside the graph's
//! directory, as a model directory's weights file must be: a plain
//! relative name without `..`, whose real path after every symbolic link
//! stays inside the directory's real path. Each file is limited as a
//! weights file is (`--max-weights-size`), and so is the total read from
//! all of them; an offset or length beyond the file, or one that disagrees
//! with the tensor's shape, is refused. Only the bytes of the tensors the
//! import keeps are read.

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};

use crate::message::shown;
use crate::model_dir::inside;
use crate::read::{open_file_capped, too_large};
use crate::{Error, LimitKind};

use super::proto::TensorProto;

/// How to say what to change in the export call, after a refusal of
/// external data.
const EXPORT_HINT: &str = "keep the data file beside the .onnx file, or export with external_data=False";

/// The external data files of one graph.
pub(crate) struct ExternalData {
    /// The graph file (messages name it).
    graph: PathBuf,
    /// The graph's directory (`None`: the graph was given as bytes, without
    /// a directory to read beside it).
    dir: Option<PathBuf>,
    /// The limit on each file and on the total read.
    limit: u64,
    /// Bytes read so far.
    read: Cell<u64>,
    /// Open files by location, with their lengths.
    files: RefCell<HashMap<String, (File, u64)>>,
}

impl ExternalData {
    pub(crate) fn new(graph: &Path, dir: Option<&Path>, limit: u64) -> Self {
        Self {
            graph: graph.to_path_buf(),
            dir: dir.map(Path::to_path_buf),
            limit,
            read: Cell::new(0),
            files: RefCell::new(HashMap::new()),
        }
    }

    fn refuse(&self, tensor: &TensorProto, what: String) -> Error {
        Error::Format {
            path: self.graph.clone(),
            message: format!("tensor {:?}: {what}", shown(tensor.name())),
        }
    }

    /// The `needed` bytes of `tensor`'s external data.
    pub(crate) fn bytes(&self, tensor: &TensorProto, needed: usize) -> Result<Vec<u8>, Error> {
        let entry = |key: &str| {
            tensor
                .external_data
                .iter()
                .find(|e| e.key() == key)
                .map(|e| e.value().to_string())
        };
        let location =
            entry("location").ok_or_else(|| self.refuse(tensor, "external data without a location".into()))?;
        let number = |key: &str| -> Result<Option<u64>, Error> {
            entry(key)
                .map(|v| {
                    v.parse::<u64>().map_err(|_| {
                        self.refuse(
                            tensor,
                            format!("external data {key} {:?} is not a number of bytes", shown(&v)),
                        )
                    })
                })
                .transpose()
        };
        let offset = number("offset")?.unwrap_or(0);
        let length = number("length")?;
        if length.is_some_and(|n| n != needed as u64) {
            return Err(self.refuse(
                tensor,
                format!(
                    "external data length {} for a tensor of {needed} bytes",
                    length.unwrap_or(0)
                ),
            ));
        }
        let Some(dir) = &self.dir else {
            return Err(self.refuse(
                tensor,
                format!(
                    "its data is in the external file {:?}, which is not read here; export with external_data=False",
                    shown(&location)
                ),
            ));
        };
        let total = self.read.get().saturating_add(needed as u64);
        if total > self.limit {
            return Err(too_large(&dir.join(&location), LimitKind::WeightsBytes, self.limit));
        }
        let mut files = self.files.borrow_mut();
        if !files.contains_key(&location) {
            let real = inside(dir, "location", &location).map_err(|e| match e {
                Error::UnsafePath { .. } => self.refuse(
                    tensor,
                    format!(
                        "external data location {:?} must be a file name inside the graph's directory (no absolute paths, no '..'): {EXPORT_HINT}",
                        shown(&location)
                    ),
                ),
                Error::OutsideModelDir { resolved, .. } => self.refuse(
                    tensor,
                    format!(
                        "external data location {:?} resolves to {}, outside the graph's directory: {EXPORT_HINT}",
                        shown(&location),
                        shown(&resolved.display().to_string())
                    ),
                ),
                Error::Read { path, source } => self.refuse(
                    tensor,
                    format!(
                        "cannot read its external data file {}: {source}; {EXPORT_HINT}",
                        shown(&path.display().to_string())
                    ),
                ),
                other => other,
            })?;
            let opened = open_file_capped(&real, self.limit, LimitKind::WeightsBytes)?;
            files.insert(location.clone(), opened);
        }
        let Some((file, file_length)) = files.get_mut(&location) else {
            return Err(self.refuse(tensor, "external data file not opened".into()));
        };
        if offset.checked_add(needed as u64).is_none_or(|end| end > *file_length) {
            return Err(self.refuse(
                tensor,
                format!(
                    "external data at offset {offset}, {needed} bytes, runs past the end of {:?} ({} bytes): {EXPORT_HINT}",
                    shown(&location),
                    file_length
                ),
            ));
        }
        let fail = |source: std::io::Error| Error::Read {
            path: dir.join(&location),
            source,
        };
        file.seek(SeekFrom::Start(offset)).map_err(fail)?;
        let mut bytes = vec![0u8; needed];
        file.read_exact(&mut bytes).map_err(fail)?;
        self.read.set(total);
        Ok(bytes)
    }
}
