use std::path::Path;

use std::io::Write;

use lrp_models::{Tensor, Tensors};
use safetensors::{Dtype, SafeTensors};

use crate::message::first_line;
use crate::Error;

/// Reads every tensor of a `.safetensors` buffer (f16, bf16, f32 or f64,
/// little endian, as the format fixes) into [`Tensors`], widened to f64
/// (exactly: every such value is an f64).
///
/// The `safetensors` crate checks the header against the buffer's length
/// before any tensor is touched; a name the header lists twice (which that
/// crate would resolve silently to one of them) is refused.
pub(crate) fn read_safetensors(path: &Path, bytes: &[u8]) -> Result<Tensors, Error> {
    let file = SafeTensors::deserialize(bytes).map_err(|e| Error::Format {
        path: path.to_path_buf(),
        message: format!("not a valid safetensors file: {}", first_line(&e.to_string())),
    })?;
    if let Some(name) = repeated_name(bytes) {
        return Err(Error::DuplicateName {
            path: path.to_path_buf(),
            name,
        });
    }
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
            Dtype::BF16 => view
                .data()
                .chunks_exact(2)
                .map(|b| f64::from(f32::from_bits(u32::from(u16::from_le_bytes([b[0], b[1]])) << 16)))
                .collect(),
            Dtype::F16 => view
                .data()
                .chunks_exact(2)
                .map(|b| half_to_f64(u16::from_le_bytes([b[0], b[1]])))
                .collect(),
            other => {
                return Err(Error::Dtype {
                    supported: "float16, bfloat16, float32 and float64",
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

/// An IEEE 754 half-precision number, widened exactly: sign, 5 exponent
/// bits (bias 15), 10 fraction bits; subnormals, infinities and NaN too.
fn half_to_f64(bits: u16) -> f64 {
    let sign = if bits & 0x8000 != 0 { -1.0 } else { 1.0 };
    let exponent = i32::from((bits >> 10) & 0x1f);
    let fraction = f64::from(bits & 0x3ff);
    sign * match exponent {
        0 => fraction * 2f64.powi(-24),
        31 if fraction == 0.0 => f64::INFINITY,
        31 => f64::NAN,
        _ => (1.0 + fraction / 1024.0) * 2f64.powi(exponent - 15),
    }
}

/// The first key the JSON header of a safetensors buffer lists twice. Only
/// called on a buffer the `safetensors` crate has accepted, whose header is
/// a JSON object of the length its first 8 bytes give.
fn repeated_name(bytes: &[u8]) -> Option<String> {
    let length = u64::from_le_bytes(bytes.get(..8)?.try_into().ok()?);
    let header = bytes.get(8..8usize.checked_add(usize::try_from(length).ok()?)?)?;
    let mut reader = serde_json::Deserializer::from_slice(header);
    serde::Deserializer::deserialize_map(&mut reader, FirstRepeatedKey).ok()?
}

/// Visits a JSON object's keys in order, noting the first repeat.
struct FirstRepeatedKey;

impl<'de> serde::de::Visitor<'de> for FirstRepeatedKey {
    type Value = Option<String>;

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("a JSON object")
    }

    fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        // The whole object is read (the JSON reader insists on reaching
        // its end), keeping the first repeat.
        let mut seen = std::collections::HashSet::new();
        let mut repeated = None;
        while let Some(key) = map.next_key::<String>()? {
            map.next_value::<serde::de::IgnoredAny>()?;
            if !seen.insert(key.clone()) && repeated.is_none() {
                repeated = Some(key);
            }
        }
        Ok(repeated)
    }
}

/// Values converted at a time by [`write_safetensors`].
const BLOCK_VALUES: usize = 1 << 16;

/// Writes `tensors` as a safetensors file (an 8-byte little-endian header
/// length, the JSON header padded with spaces to a multiple of 8 bytes, then
/// each tensor's values in order) in float64 when `double`, else float32,
/// converting a block of values at a time.
pub(crate) fn write_safetensors(
    out: &mut impl Write,
    tensors: &[(String, Tensor)],
    double: bool,
) -> std::io::Result<()> {
    let (dtype, width) = if double { ("F64", 8) } else { ("F32", 4) };
    let mut header = serde_json::Map::new();
    let mut offset = 0usize;
    for (name, tensor) in tensors {
        let end = offset + tensor.values.len() * width;
        header.insert(
            name.clone(),
            serde_json::json!({"dtype": dtype, "shape": tensor.shape, "data_offsets": [offset, end]}),
        );
        offset = end;
    }
    let mut header = serde_json::to_vec(&header)?;
    header.resize(header.len().next_multiple_of(8), b' ');
    let mut out = std::io::BufWriter::with_capacity(1 << 20, out);
    out.write_all(&(header.len() as u64).to_le_bytes())?;
    out.write_all(&header)?;
    let mut block = Vec::with_capacity(BLOCK_VALUES * width);
    for (_, tensor) in tensors {
        for values in tensor.values.chunks(BLOCK_VALUES) {
            block.clear();
            for v in values {
                if double {
                    block.extend_from_slice(&v.to_le_bytes());
                } else {
                    block.extend_from_slice(&(*v as f32).to_le_bytes());
                }
            }
            out.write_all(&block)?;
        }
    }
    out.flush()
}

#[cfg(test)]
mod tests {
    #[test]
    fn widens_half_precision_exactly() {
        assert_eq!(super::half_to_f64(0x3c00), 1.0);
        assert_eq!(super::half_to_f64(0xc000), -2.0);
        assert_eq!(super::half_to_f64(0x3555), 0.333251953125);
        assert_eq!(super::half_to_f64(0x0001), 2f64.powi(-24));
        assert_eq!(super::half_to_f64(0x7c00), f64::INFINITY);
        assert!(super::half_to_f64(0x7e00).is_nan());
    }

    #[test]
    fn finds_a_repeated_key() {
        let header = br#"{"a":{"x":1},"b":2,"a":3,"c":4}"#;
        let mut bytes = (header.len() as u64).to_le_bytes().to_vec();
        bytes.extend(header);
        assert_eq!(super::repeated_name(&bytes).as_deref(), Some("a"));
    }
}
