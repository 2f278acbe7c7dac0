use std::collections::BTreeMap;

use lrp_core::Float;
use nalgebra::{DMatrix, DVector};

use crate::Error;

/// One named tensor as read from a weights file: its shape and its values in
/// row-major order, widened to `f64` (f32 files convert losslessly).
#[derive(Debug, Clone, PartialEq)]
pub struct Tensor {
    /// Shape, outermost first (`[rows, cols]` for a matrix).
    pub shape: Vec<usize>,
    /// Values, row-major.
    pub values: Vec<f64>,
}

/// The tensors of a model by name, as the file formats of `lrp-io` produce
/// them. Model construction takes tensors out one by one with a shape
/// check; what is left over afterwards is reported as unexpected.
#[derive(Debug, Clone, Default)]
pub struct Tensors {
    map: BTreeMap<String, Tensor>,
}

impl Tensors {
    /// An empty collection.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds (or replaces) a tensor.
    pub fn insert(&mut self, name: impl Into<String>, tensor: Tensor) {
        self.map.insert(name.into(), tensor);
    }

    /// Whether a tensor of this name is present.
    pub fn contains(&self, name: &str) -> bool {
        self.map.contains_key(name)
    }

    /// Names of all tensors present.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.map.keys().map(String::as_str)
    }
}

/// Takes tensors out of [`Tensors`] with checks, collecting every missing
/// name before failing so the error lists them all.
pub(crate) struct TensorReader {
    tensors: Tensors,
    missing: Vec<(String, Vec<usize>)>,
}

impl TensorReader {
    pub(crate) fn new(tensors: Tensors) -> Self {
        Self {
            tensors,
            missing: Vec::new(),
        }
    }

    /// Takes `name`, which must have `shape`; `None` if missing (recorded).
    fn take(&mut self, name: &str, shape: &[usize]) -> Result<Option<Tensor>, Error> {
        let Some(tensor) = self.tensors.map.remove(name) else {
            self.missing.push((name.to_string(), shape.to_vec()));
            return Ok(None);
        };
        if tensor.shape != shape {
            return Err(Error::TensorShape {
                name: name.to_string(),
                expected: shape.to_vec(),
                found: tensor.shape,
            });
        }
        if let Some((index, &value)) = tensor.values.iter().enumerate().find(|(_, v)| !v.is_finite()) {
            return Err(Error::NonFiniteWeight {
                name: name.to_string(),
                index,
                value,
            });
        }
        Ok(Some(tensor))
    }

    /// A `[rows, cols]` matrix (zeros if missing; `finish` then fails).
    pub(crate) fn matrix<T: Float>(&mut self, name: &str, rows: usize, cols: usize) -> Result<DMatrix<T>, Error> {
        Ok(match self.take(name, &[rows, cols])? {
            Some(t) => DMatrix::from_row_iterator(rows, cols, t.values.into_iter().map(T::of_f64)),
            None => DMatrix::zeros(rows, cols),
        })
    }

    /// A `[len]` vector (zeros if missing; `finish` then fails).
    pub(crate) fn vector<T: Float>(&mut self, name: &str, len: usize) -> Result<DVector<T>, Error> {
        Ok(match self.take(name, &[len])? {
            Some(t) => DVector::from_iterator(len, t.values.into_iter().map(T::of_f64)),
            None => DVector::zeros(len),
        })
    }

    /// The names and shapes that were asked for but not present.
    pub(crate) fn into_missing(self) -> Vec<(String, Vec<usize>)> {
        self.missing
    }

    /// Fails if anything was missing or is left over.
    pub(crate) fn finish(self) -> Result<(), Error> {
        if !self.missing.is_empty() {
            return Err(Error::MissingTensors {
                names: self.missing.into_iter().map(|(n, _)| n).collect(),
            });
        }
        if !self.tensors.map.is_empty() {
            return Err(Error::UnexpectedTensors {
                names: self.tensors.map.into_keys().collect(),
            });
        }
        Ok(())
    }
}
