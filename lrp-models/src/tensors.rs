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

impl Tensor {
    /// The transpose `[cols, rows]` of the row-major matrix `[rows, cols]`
    /// held in `values`: how a converter undoes a framework's storage order
    /// (Keras' kernels, ONNX's `W`) or a weight written the wrong way round.
    /// An error ([`Error::ValueCount`]) unless `values` holds exactly
    /// `rows * cols` values.
    ///
    /// ```
    /// use lrp_models::Tensor;
    /// // [[1, 2, 3], [4, 5, 6]] becomes [[1, 4], [2, 5], [3, 6]].
    /// let t = Tensor::transpose_of(&[1.0, 2.0, 3.0, 4.0, 5.0, 6.0], 2, 3)?;
    /// assert_eq!(t.shape, vec![3, 2]);
    /// assert_eq!(t.values, vec![1.0, 4.0, 2.0, 5.0, 3.0, 6.0]);
    /// assert!(Tensor::transpose_of(&[1.0, 2.0], 2, 3).is_err());
    /// # Ok::<(), lrp_models::Error>(())
    /// ```
    pub fn transpose_of(values: &[f64], rows: usize, cols: usize) -> Result<Tensor, Error> {
        if rows.checked_mul(cols) != Some(values.len()) {
            return Err(Error::ValueCount {
                shape: vec![rows, cols],
                found: values.len(),
            });
        }
        let mut out = vec![0.0; values.len()];
        for r in 0..rows {
            for c in 0..cols {
                out[c * rows + r] = values[r * cols + c];
            }
        }
        Ok(Tensor {
            shape: vec![cols, rows],
            values: out,
        })
    }
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

    /// The tensor of this name, if present: how a stage from another crate
    /// reads its own named tensors.
    pub fn get(&self, name: &str) -> Option<&Tensor> {
        self.map.get(name)
    }

    /// Whether a tensor of this name is present.
    pub fn contains(&self, name: &str) -> bool {
        self.map.contains_key(name)
    }

    /// Names of all tensors present.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.map.keys().map(String::as_str)
    }

    /// Every tensor with its name, in name order.
    pub(crate) fn iter(&self) -> impl Iterator<Item = (&str, &Tensor)> {
        self.map.iter().map(|(name, tensor)| (name.as_str(), tensor))
    }
}

/// Checks `tensors` against the manifest (every name present, nothing
/// else, each with its shape and finite values) and hands them out in
/// manifest order.
pub(crate) fn check_against_manifest(
    manifest: &[(String, Vec<usize>)],
    mut tensors: Tensors,
) -> Result<Ordered, Error> {
    let missing: Vec<String> = manifest
        .iter()
        .filter(|(n, _)| !tensors.contains(n))
        .map(|(n, _)| n.clone())
        .collect();
    if !missing.is_empty() {
        return Err(Error::MissingTensors { names: missing });
    }
    let mut ordered = Vec::with_capacity(manifest.len());
    for (name, shape) in manifest {
        let tensor = tensors.map.remove(name).expect("presence checked above");
        if &tensor.shape != shape {
            return Err(Error::TensorShape {
                name: name.clone(),
                expected: shape.clone(),
                found: tensor.shape,
            });
        }
        if let Some((index, &value)) = tensor.values.iter().enumerate().find(|(_, v)| !v.is_finite()) {
            return Err(Error::NonFiniteWeight {
                name: name.clone(),
                index,
                value,
            });
        }
        ordered.push(tensor);
    }
    if !tensors.map.is_empty() {
        return Err(Error::UnexpectedTensors {
            names: tensors.map.into_keys().collect(),
        });
    }
    Ok(Ordered {
        tensors: ordered.into_iter(),
    })
}

/// Tensor names and shapes, in the order a stage reads them: what a stage
/// declares of its own weights (`pytorch_tensors` beside each stage's code)
/// and what [`crate::tensor_manifest`] assembles for a whole model.
pub type Manifest = Vec<(String, Vec<usize>)>;

/// Checked tensors in manifest order; the builders take them one by one.
pub(crate) struct Ordered {
    tensors: std::vec::IntoIter<Tensor>,
}

impl Ordered {
    fn next(&mut self) -> Result<Tensor, Error> {
        // Only a builder out of step with its manifest gets here.
        self.tensors.next().ok_or_else(|| Error::Config {
            key: "weights".into(),
            message: "internal: the model asked for more tensors than its manifest lists".into(),
        })
    }

    /// The next tensor as it was read (any number of dimensions).
    pub(crate) fn raw(&mut self) -> Result<Tensor, Error> {
        self.next()
    }

    /// The next tensor as a matrix (2-D, row-major on disk).
    pub(crate) fn matrix<T: Float>(&mut self) -> Result<DMatrix<T>, Error> {
        let t = self.next()?;
        let (rows, cols) = (t.shape[0], t.shape.get(1).copied().unwrap_or(1));
        Ok(DMatrix::from_row_iterator(
            rows,
            cols,
            t.values.into_iter().map(T::of_f64),
        ))
    }

    /// The next tensor as a vector (its values in order, whatever its shape).
    pub(crate) fn vector<T: Float>(&mut self) -> Result<DVector<T>, Error> {
        let t = self.next()?;
        Ok(DVector::from_iterator(
            t.values.len(),
            t.values.into_iter().map(T::of_f64),
        ))
    }
}

/// `Ok` when a tensor's shape `found` is `expected`, else
/// [`Error::TensorShape`] naming it: how a part that takes weights checks
/// them before use.
///
/// ```
/// use lrp_models::expect_shape;
///
/// assert!(expect_shape("w", &[4, 2], &[4, 2]).is_ok());
/// let error = expect_shape("bias", &[4], &[3]).unwrap_err();
/// assert!(error.to_string().contains("bias"), "{error}");
/// ```
pub fn expect_shape(name: &str, expected: &[usize], found: &[usize]) -> Result<(), Error> {
    if expected == found {
        return Ok(());
    }
    Err(Error::TensorShape {
        name: name.into(),
        expected: expected.to_vec(),
        found: found.to_vec(),
    })
}
