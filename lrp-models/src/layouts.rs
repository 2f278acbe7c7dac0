//! The weights layouts of other frameworks (`docs/model-format.md`):
//! `keras`, `onnx` and `tf1`, beside `pytorch`.
//!
//! Each layout names and shapes the encoder's tensors its own way and
//! orders the gate blocks its own way. The readers here take each
//! direction's tensors out of the file into `[G H, in]` matrices in the
//! file's gate order; the canonizers (`canonize`) then bring them into the
//! cells' own form (PyTorch's gate order, merged biases, the cell's
//! options), once, while loading. The cells never see a layout, so no step
//! pays for one.
//!
//! The embedding (`embedding.weight` `[V, E]`) and the attention tensors
//! keep their `pytorch` names and shapes in every layout: the embedding has
//! the same shape in every framework, and no framework has a standard
//! attention layer to follow. The head is a Keras/TF `Dense` (`head.kernel`
//! `[F, C]`) in `keras` and `tf1`, and a `Gemm` with `transB = 1`
//! (`head.weight` `[C, F]`, as `torch.onnx` exports `nn.Linear`) in `onnx`.

use lrp_core::Float;
use nalgebra::{DMatrix, DVector};

use crate::canonize::{self, Canonizer, CellWeights, MergeBiases};
use crate::cell::{GruCell, GruResetBeforeCell, LstmCell};
use crate::config::{CellKind, EncoderConfig, GruReset, Layout, ModelConfig};
use crate::encoder::RecurrentLayer;
use crate::tensors::{Manifest, Ordered, Tensor};
use crate::{Error, Linear};

/// One direction's weights as read, on their way to the cells' own form.
pub(crate) type Direction<T> = CellWeights<T>;

impl<T: Float> CellWeights<T> {
    /// The next direction of layout `pytorch`: `weight_ih`, `weight_hh`,
    /// `bias_ih`, `bias_hh`, already in the cells' gate order.
    pub(crate) fn from_pytorch(tensors: &mut Ordered) -> Result<Self, Error> {
        Ok(Self::new(
            tensors.matrix()?,
            tensors.matrix()?,
            tensors.vector()?,
            tensors.vector()?,
        ))
    }

    /// One cell of `kind` from this direction, with the default options
    /// (sigmoid gates, no forget bias, the reset after the product): the
    /// decoder of an encoder-decoder, whose config has no options.
    pub(crate) fn plain_lstm(mut self) -> Result<LstmCell<T>, Error> {
        let merge = MergeBiases::for_cell(CellKind::Lstm, GruReset::After);
        if let Some(merge) = merge {
            Canonizer::<T>::apply(&merge, &mut self)?;
        }
        LstmCell::new(self.w_ih, self.w_hh, self.b_ih)
    }

    /// [`Direction::plain_lstm`] for a GRU.
    pub(crate) fn plain_gru(self) -> Result<GruCell<T>, Error> {
        GruCell::new(self.w_ih, self.w_hh, self.b_ih, self.b_hh)
    }
}

/// The number of gate blocks of a cell.
fn gates(config: &ModelConfig) -> usize {
    match config.encoder.cell {
        CellKind::Lstm => 4,
        CellKind::Gru | CellKind::MinLstm => 3,
        CellKind::MinGru => 2,
    }
}

/// The tensors of layer `layer` (input width `width`) in a non-`pytorch`
/// layout, in the order [`read_layer`] reads them.
pub(crate) fn layer_manifest(config: &ModelConfig, layer: usize, width: usize) -> Manifest {
    let (h, g) = (config.encoder.hidden_size, gates(config));
    let dirs = if config.encoder.bidirectional { 2 } else { 1 };
    let sides = ["forward", "backward"];
    let mut names = Manifest::new();
    match config.layout {
        Layout::Keras => {
            for side in &sides[..dirs] {
                let prefix = format!("encoder.l{layer}.{side}");
                names.push((format!("{prefix}.kernel"), vec![width, g * h]));
                names.push((format!("{prefix}.recurrent_kernel"), vec![h, g * h]));
                // Keras' GRU with reset_after keeps input and recurrent
                // biases as two rows.
                let bias = match (config.encoder.cell, config.encoder.gru_reset()) {
                    (CellKind::Gru, GruReset::After) => vec![2, g * h],
                    _ => vec![g * h],
                };
                names.push((format!("{prefix}.bias"), bias));
            }
        }
        Layout::Tf1 => {
            for side in &sides[..dirs] {
                let prefix = format!("encoder.l{layer}.{side}");
                names.push((format!("{prefix}.kernel"), vec![width + h, g * h]));
                names.push((format!("{prefix}.bias"), vec![g * h]));
            }
        }
        Layout::Onnx => {
            let prefix = format!("encoder.l{layer}");
            names.push((format!("{prefix}.W"), vec![dirs, g * h, width]));
            names.push((format!("{prefix}.R"), vec![dirs, g * h, h]));
            names.push((format!("{prefix}.B"), vec![dirs, 2 * g * h]));
        }
        // The pytorch and reference layouts name their tensors elsewhere.
        _ => {}
    }
    names
}

/// The head's tensors in a non-`pytorch` layout: `[F, C]` kernels for
/// `keras` and `tf1`, PyTorch's `[C, F]` for `onnx`.
pub(crate) fn head_manifest(config: &ModelConfig) -> Manifest {
    let (c, f) = (config.head.num_classes, config.head_width());
    match config.layout {
        Layout::Keras | Layout::Tf1 => {
            let mut names = vec![("head.kernel".to_string(), vec![f, c])];
            if config.head.bias {
                names.push(("head.bias".to_string(), vec![c]));
            }
            names
        }
        _ => Linear::<f64>::pytorch_tensors("head", c, f, config.head.bias),
    }
}

/// The head from its [`head_manifest`] tensors.
pub(crate) fn read_head<T: Float>(config: &ModelConfig, tensors: &mut Ordered) -> Result<Linear<T>, Error> {
    match config.layout {
        Layout::Keras | Layout::Tf1 => {
            let weight = tensors.matrix::<T>()?.transpose();
            let bias = if config.head.bias {
                Some(tensors.vector()?)
            } else {
                None
            };
            Linear::new(weight, bias)
        }
        _ => Linear::from_pytorch(tensors, config.head.bias),
    }
}

/// Rows `[from, from + rows)` of a row-major tensor viewed as `[_, cols]`,
/// as a matrix: one direction of an ONNX tensor.
fn slab<T: Float>(t: &Tensor, index: usize, rows: usize, cols: usize) -> DMatrix<T> {
    let start = index * rows * cols;
    DMatrix::from_row_iterator(
        rows,
        cols,
        t.values[start..start + rows * cols].iter().map(|&v| T::of_f64(v)),
    )
}

/// The directions of layer `layer` in a non-`pytorch` layout, from its
/// [`layer_manifest`] tensors (checked for names and shapes already), in
/// the file's gate order ([`canonize::GateOrder`] brings them into the
/// cells').
pub(crate) fn read_directions<T: Float>(
    config: &ModelConfig,
    width: usize,
    tensors: &mut Ordered,
) -> Result<Vec<Direction<T>>, Error> {
    let (h, g) = (config.encoder.hidden_size, gates(config));
    let dirs = if config.encoder.bidirectional { 2 } else { 1 };
    let zeros = || DVector::<T>::zeros(g * h);
    let mut out = Vec::with_capacity(dirs);
    match config.layout {
        Layout::Keras => {
            for _ in 0..dirs {
                let kernel = tensors.matrix::<T>()?.transpose();
                let recurrent = tensors.matrix::<T>()?.transpose();
                let bias = tensors.vector::<T>()?;
                // [2, 3H] (GRU, reset after): input bias, then recurrent bias.
                let (b_ih, b_hh) = if bias.len() == 2 * g * h {
                    (bias.rows(0, g * h).into_owned(), bias.rows(g * h, g * h).into_owned())
                } else {
                    (bias, zeros())
                };
                out.push(Direction::new(kernel, recurrent, b_ih, b_hh));
            }
        }
        Layout::Tf1 => {
            for _ in 0..dirs {
                // One kernel over [x; h]: its first `width` rows read x.
                let kernel = tensors.matrix::<T>()?.transpose();
                let bias = tensors.vector::<T>()?;
                out.push(Direction::new(
                    kernel.columns(0, width).into_owned(),
                    kernel.columns(width, h).into_owned(),
                    bias,
                    zeros(),
                ));
            }
        }
        Layout::Onnx => {
            let (w, r, b) = (tensors.raw()?, tensors.raw()?, tensors.raw()?);
            for d in 0..dirs {
                let biases = &b.values[d * 2 * g * h..(d + 1) * 2 * g * h];
                let bias = |part: usize| {
                    DVector::from_iterator(
                        g * h,
                        biases[part * g * h..(part + 1) * g * h].iter().map(|&v| T::of_f64(v)),
                    )
                };
                out.push(Direction::new(
                    slab(&w, d, g * h, width),
                    slab(&r, d, g * h, h),
                    bias(0),
                    bias(1),
                ));
            }
        }
        other => {
            return Err(Error::Config {
                key: "layout".into(),
                message: format!("internal: {:?} has no reader of its own", other.name()),
            })
        }
    }
    Ok(out)
}

/// A layer of the encoder's cell from its directions in the cells' gate
/// order, the built-in canonizers of its cell options applied (merged
/// biases, forget bias, hard sigmoid): the encoder of an encoder–decoder.
pub(crate) fn layer_from<T: Float>(
    enc: &EncoderConfig,
    directions: Vec<Direction<T>>,
) -> Result<RecurrentLayer<T>, Error> {
    layer_canonized(enc, directions, &canonize::for_cell(enc))
}

/// A layer of the encoder's cell from its directions as read, after
/// `canonizers` have brought each into the cells' own form (see
/// `canonize`): an LSTM's and a reset-before GRU's recurrent bias merged
/// into the input bias, a reset-after GRU's kept apart.
pub(crate) fn layer_canonized<T: Float>(
    enc: &EncoderConfig,
    directions: Vec<Direction<T>>,
    canonizers: &[Box<dyn Canonizer<T>>],
) -> Result<RecurrentLayer<T>, Error> {
    let mut canonical = Vec::with_capacity(directions.len());
    for mut d in directions {
        for canonizer in canonizers {
            canonizer.apply(&mut d)?;
        }
        canonical.push(d);
    }
    // One bias: what the canonizers left in b_hh would be lost.
    let merged = |d: &Direction<T>| {
        if d.b_hh.iter().all(|b| b.is_zero()) {
            Ok(())
        } else {
            Err(Error::Config {
                key: "encoder".into(),
                message: format!(
                    "this {} has one bias, but after the canonizers b_hh is not zero (merge it into b_ih)",
                    enc.cell.name()
                ),
            })
        }
    };
    match (enc.cell, enc.gru_reset()) {
        (CellKind::Lstm, _) => {
            let cells = canonical
                .into_iter()
                .map(|d| {
                    merged(&d)?;
                    Ok(LstmCell::new(d.w_ih, d.w_hh, d.b_ih)?.with_recurrent_activation(d.recurrent_activation))
                })
                .collect::<Result<Vec<_>, Error>>()?;
            crate::model::layer_of(cells)
        }
        (CellKind::Gru, GruReset::After) => {
            let cells = canonical
                .into_iter()
                .map(|d| {
                    Ok(GruCell::new(d.w_ih, d.w_hh, d.b_ih, d.b_hh)?.with_recurrent_activation(d.recurrent_activation))
                })
                .collect::<Result<Vec<_>, Error>>()?;
            crate::model::layer_of(cells)
        }
        (CellKind::Gru, GruReset::Before) => {
            let cells = canonical
                .into_iter()
                .map(|d| {
                    merged(&d)?;
                    Ok(GruResetBeforeCell::new(d.w_ih, d.w_hh, d.b_ih)?
                        .with_recurrent_activation(d.recurrent_activation))
                })
                .collect::<Result<Vec<_>, Error>>()?;
            crate::model::layer_of(cells)
        }
        // Min cells have no recurrent weights to canonize; `build_layered`
        // reads them directly.
        (CellKind::MinGru | CellKind::MinLstm, _) => Err(Error::Config {
            key: "encoder.cell".into(),
            message: format!("a {} has no recurrent weights to canonize", enc.cell.name()),
        }),
    }
}
