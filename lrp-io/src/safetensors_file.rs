use std::path::Path;

use lrp_models::{Tensor, Tensors};
use safetensors::{Dtype, SafeTensors};

use crate::Error;

/// Reads every tensor of a `.safetensors` buffer (f32 or f64, little
/// endian, as the format fixes) into [`Tensors`].
///
/// The `safetensors` crate checks the header against the buffer's length
/// before any tensor is touched.
pub(crate) fn read_safetensors(path: &Path, bytes: &[u8]) -> Result<Tensors, Error> {
    let file = SafeTensors::deserialize(bytes).map_err(|e| Error::Format {
        path: path.to_path_buf(),
        message: format!("not a valid safetensors file: {e}"),
    })?;
    let mut tensors = Tensors::new();
    for (name, view) in file.iter() {
        let values: Vec<f64> = match view.dtype() {
            Dtype::F64 => view
                .data()
                .chunks_exact(8)
                .map(|b| f64::from_le_bytes([b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7]]))
                .collect(),
            Dtype::F32 => view
                .data()
                .chunks_exact(4)
                .map(|b| f64::from(f32::from_le_bytes([b[0], b[1], b[2], b[3]])))
                .collect(),
            other => {
                return Err(Error::Dtype {
                    path: path.to_path_buf(),
                    name: name.to_string(),
                    dtype: format!("{other:?}"),
                })
            }
        };
        tensors.insert(
            name,
            Tensor {
                shape: view.shape().to_vec(),
                values,
            },
        );
    }
    Ok(tensors)
}
