//! The weights layouts of other frameworks (`docs/model-format.md`):
//! `keras`, `onnx` and `tf1`, beside `pytorch`.
//!
//! Each layout names and shapes the encoder's tensors its own way and
//! orders the gate blocks its own way. Everything is converted once, while
//! loading, into the cells' own form (PyTorch's gate order, `[G H, in]`
//! matrices); the cells never see a layout, so no step pays for one.
//!
//! The embedding (`embedding.weight` `[V, E]`) and the attention tensors
//! keep their `pytorch` names and shapes in every layout: the embedding has
//! the same shape in every framework, and no framework has a standard
//! attention layer to follow. The head is a Keras/TF `Dense` (`head.kernel`
//! `[F, C]`) in `keras` and `tf1`, and a `Gemm` with `transB = 1`
//! (`head.weight` `[C, F]`, as `torch.onnx` exports `nn.Linear`) in `onnx`.

use lrp_core::Float;
use nalgebra::{DMatrix, DVector};

use crate::cell::{GruCell, GruResetBeforeCell, LstmCell};
use crate::config::{CellKind, EncoderConfig, GruReset, Layout, ModelConfig};
use crate::encoder::RecurrentLayer;
use crate::tensors::{Manifest, Ordered, Tensor};
use crate::{Error, Linear};

/// Gate blocks of each layout, for each block of the cells' own order
/// (LSTM i, f, g, o; GRU r, z, n): the block of the file it comes from.
const KERAS_LSTM: [usize; 4] = [0, 1, 2, 3]; // i, f, c, o: already the cells' order
const TF1_LSTM: [usize; 4] = [0, 2, 1, 3]; // i, j, f, o
const ONNX_LSTM: [usize; 4] = [0, 2, 3, 1]; // i, o, f, c
const ZRH_GRU: [usize; 3] = [1, 0, 2]; // z, r, h (Keras and ONNX)

/// One direction's weights in the cells' own form, before the config's
/// options are applied.
///
/// ## Shapes
/// - `w_ih`: `[G H, W]`, `w_hh`: `[G H, H]`, gate blocks in the cells' order
/// - `b_ih`, `b_hh`: `[G H]` (a layout with one bias has zeros in `b_hh`)
pub(crate) struct Direction<T: Float> {
    pub(crate) w_ih: DMatrix<T>,
    pub(crate) w_hh: DMatrix<T>,
    pub(crate) b_ih: DVector<T>,
    pub(crate) b_hh: DVector<T>,
}

impl<T: Float> Direction<T> {
    /// The next direction of layout `pytorch`: `weight_ih`, `weight_hh`,
    /// `bias_ih`, `bias_hh`, already in the cells' gate order.
    pub(crate) fn from_pytorch(tensors: &mut Ordered) -> Result<Self, Error> {
        Ok(Self {
            w_ih: tensors.matrix()?,
            w_hh: tensors.matrix()?,
            b_ih: tensors.vector()?,
            b_hh: tensors.vector()?,
        })
    }

    /// One cell of `kind` from this direction, with the default options
    /// (sigmoid gates, no forget bias, the reset after the product): the
    /// decoder of an encoder-decoder, whose config has no options.
    pub(crate) fn plain_lstm(self) -> Result<LstmCell<T>, Error> {
        LstmCell::new(self.w_ih, self.w_hh, self.b_ih + self.b_hh)
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
        CellKind::Gru => 3,
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

/// Gate block `k` of the result is block `from[k]` of `m` (blocks of `h`
/// rows).
fn reorder<T: Float>(m: &DMatrix<T>, h: usize, from: &[usize]) -> DMatrix<T> {
    let mut out = DMatrix::zeros(m.nrows(), m.ncols());
    for (k, &source) in from.iter().enumerate() {
        out.rows_mut(k * h, h).copy_from(&m.rows(source * h, h));
    }
    out
}

/// [`reorder`] for a vector.
fn reorder_vector<T: Float>(v: &[T], h: usize, from: &[usize]) -> DVector<T> {
    let m = DMatrix::from_column_slice(v.len(), 1, v);
    reorder(&m, h, from).column(0).into_owned()
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
/// the cells' own form.
pub(crate) fn read_directions<T: Float>(
    config: &ModelConfig,
    width: usize,
    tensors: &mut Ordered,
) -> Result<Vec<Direction<T>>, Error> {
    let (h, g) = (config.encoder.hidden_size, gates(config));
    let dirs = if config.encoder.bidirectional { 2 } else { 1 };
    let order: &[usize] = match (config.layout, config.encoder.cell) {
        (Layout::Tf1, _) => &TF1_LSTM,
        (Layout::Onnx, CellKind::Lstm) => &ONNX_LSTM,
        (_, CellKind::Lstm) => &KERAS_LSTM,
        (_, CellKind::Gru) => &ZRH_GRU,
    };
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
                    (
                        reorder_vector(&bias.as_slice()[..g * h], h, order),
                        reorder_vector(&bias.as_slice()[g * h..], h, order),
                    )
                } else {
                    (reorder_vector(bias.as_slice(), h, order), zeros())
                };
                out.push(Direction {
                    w_ih: reorder(&kernel, h, order),
                    w_hh: reorder(&recurrent, h, order),
                    b_ih,
                    b_hh,
                });
            }
        }
        Layout::Tf1 => {
            for _ in 0..dirs {
                // One kernel over [x; h]: its first `width` rows read x.
                let kernel = tensors.matrix::<T>()?.transpose();
                let bias = tensors.vector::<T>()?;
                out.push(Direction {
                    w_ih: reorder(&kernel.columns(0, width).into_owned(), h, order),
                    w_hh: reorder(&kernel.columns(width, h).into_owned(), h, order),
                    b_ih: reorder_vector(bias.as_slice(), h, order),
                    b_hh: zeros(),
                });
            }
        }
        Layout::Onnx => {
            let (w, r, b) = (tensors.raw()?, tensors.raw()?, tensors.raw()?);
            for d in 0..dirs {
                let biases = &b.values[d * 2 * g * h..(d + 1) * 2 * g * h];
                let bias = |part: usize| {
                    let values: Vec<T> = biases[part * g * h..(part + 1) * g * h]
                        .iter()
                        .map(|&v| T::of_f64(v))
                        .collect();
                    reorder_vector(&values, h, order)
                };
                out.push(Direction {
                    w_ih: reorder(&slab(&w, d, g * h, width), h, order),
                    w_hh: reorder(&slab(&r, d, g * h, h), h, order),
                    b_ih: bias(0),
                    b_hh: bias(1),
                });
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

/// A layer of the config's cell from its directions in the cells' own
/// form, with the config's options applied: the gates' activation, the
/// LSTM's forget bias (added to the `f` rows of the bias, once, here) and
/// the GRU's reset variant.
pub(crate) fn layer_from<T: Float>(
    enc: &EncoderConfig,
    directions: Vec<Direction<T>>,
) -> Result<RecurrentLayer<T>, Error> {
    let activation = enc.recurrent_activation();
    match enc.cell {
        CellKind::Lstm => {
            let h = enc.hidden_size;
            let forget = T::of_f64(enc.forget_bias());
            let cells = directions
                .into_iter()
                .map(|d| {
                    let mut bias = d.b_ih + d.b_hh;
                    // Rows of f, block 1 of i, f, g, o.
                    for b in bias.rows_mut(h, h).iter_mut() {
                        *b += forget;
                    }
                    Ok(LstmCell::new(d.w_ih, d.w_hh, bias)?.with_recurrent_activation(activation))
                })
                .collect::<Result<Vec<_>, Error>>()?;
            crate::model::layer_of(cells)
        }
        CellKind::Gru => match enc.gru_reset() {
            GruReset::After => {
                let cells = directions
                    .into_iter()
                    .map(|d| Ok(GruCell::new(d.w_ih, d.w_hh, d.b_ih, d.b_hh)?.with_recurrent_activation(activation)))
                    .collect::<Result<Vec<_>, Error>>()?;
                crate::model::layer_of(cells)
            }
            GruReset::Before => {
                // Nothing sits between the two biases: they add.
                let cells = directions
                    .into_iter()
                    .map(|d| {
                        Ok(GruResetBeforeCell::new(d.w_ih, d.w_hh, d.b_ih + d.b_hh)?
                            .with_recurrent_activation(activation))
                    })
                    .collect::<Result<Vec<_>, Error>>()?;
                crate::model::layer_of(cells)
            }
        },
    }
}
