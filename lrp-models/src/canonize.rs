//! Canonizers: the structural rewrites that bring a recurrent layer's
//! weights, as a framework stores them, into the cells' own form (zennit
//! calls these canonizers). Each is a named value that says in one line
//! what it does; a loader applies a list of them to every direction of
//! every layer, once, before the cells are built, so no step pays for a
//! layout.
//!
//! The cells' own form is PyTorch's: gate blocks `i, f, g, o` (LSTM) or
//! `r, z, n` (GRU), `[G H, in]` matrices, and one bias wherever nothing
//! sits between the input and the recurrent bias. The built-in canonizers
//! ([`builtin`]) are, in the order they run:
//!
//! | canonizer | when | what |
//! |---|---|---|
//! | [`GateOrder`] | layouts `keras` (GRU), `onnx`, `tf1`, `reference` | gate blocks into the cells' order |
//! | [`MergeBiases`] | LSTM; GRU with the reset before the product | `b_ih += b_hh`, `b_hh = 0` |
//! | [`ForgetBias`] | LSTM with `encoder.forget_bias` (TF1's 1.0) | the constant added to the `f` rows of the bias |
//! | [`HardSigmoid`] | `encoder.recurrent_activation` a hard sigmoid | the gates' activation |
//!
//! Your own canonizers run after these, on the cells' own form
//! ([`crate::Model::from_config_with_canonizers`]).
//!
//! ```
//! use lrp_models::canonize::{builtin, Canonizer, CellWeights};
//! use lrp_models::ModelConfig;
//!
//! // A TF1 LSTM: gate blocks i, j, f, o, and TF1's forget bias 1.0.
//! let config: ModelConfig = serde_json::from_str(r#"{"format": "lrp-model", "version": 1,
//!     "layout": "tf1", "weights": "model.npz",
//!     "encoder": {"cell": "lstm", "input_size": 3, "hidden_size": 4, "forget_bias": 1.0},
//!     "head": {"input": "last", "num_classes": 2}}"#)?;
//! let names: Vec<String> = builtin::<f64>(&config).iter().map(|c| c.name().to_string()).collect();
//! assert_eq!(names, ["gate-order", "merge-biases", "forget-bias"]);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use std::fmt;

use lrp_core::Float;
use nalgebra::{DMatrix, DVector};

use crate::config::{CellKind, EncoderConfig, GruReset, Layout, ModelConfig, RecurrentActivation};
use crate::Error;

/// One direction of one recurrent layer's weights, as a loader read them
/// from the file (in the file's gate order) and the canonizers rewrite
/// them, before the cell is built from them.
///
/// ## Shapes
/// - `w_ih`: `[G H, W]`, `w_hh`: `[G H, H]` (G gate blocks of H rows)
/// - `b_ih`, `b_hh`: `[G H]` (a layout with one bias has zeros in `b_hh`)
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct CellWeights<T: Float> {
    /// The input weights `W_ih`, `[G H, W]`.
    pub w_ih: DMatrix<T>,
    /// The recurrent weights `W_hh`, `[G H, H]`.
    pub w_hh: DMatrix<T>,
    /// The input bias `b_ih`, `[G H]`.
    pub b_ih: DVector<T>,
    /// The recurrent bias `b_hh`, `[G H]`.
    pub b_hh: DVector<T>,
    /// The gates' activation (LSTM `i, f, o`; GRU `r, z`).
    pub recurrent_activation: RecurrentActivation,
}

impl<T: Float> CellWeights<T> {
    /// The weights of one direction, with sigmoid gates.
    pub fn new(w_ih: DMatrix<T>, w_hh: DMatrix<T>, b_ih: DVector<T>, b_hh: DVector<T>) -> Self {
        Self {
            w_ih,
            w_hh,
            b_ih,
            b_hh,
            recurrent_activation: RecurrentActivation::Sigmoid,
        }
    }

    /// `H`, the hidden size (the recurrent weights' columns).
    pub fn hidden(&self) -> usize {
        self.w_hh.ncols()
    }
}

/// A structural rewrite of one direction's weights while loading: it
/// changes how the weights are arranged, never the function the cell
/// computes.
pub trait Canonizer<T: Float>: Send + Sync + fmt::Debug {
    /// A short name, lowercase with dashes (`"gate-order"`).
    fn name(&self) -> &str;

    /// What it does, in one line (`lrp model-info` prints it).
    fn describe(&self) -> String;

    /// Rewrites one direction's weights in place; an error when they do
    /// not have the shape the rewrite needs.
    fn apply(&self, weights: &mut CellWeights<T>) -> Result<(), Error>;
}

/// The built-in canonizers a loader applies for `config`, in order (see
/// the [module](self)); empty for a PyTorch GRU with the reset after the
/// product, which is already in the cells' form.
pub fn builtin<T: Float>(config: &ModelConfig) -> Vec<Box<dyn Canonizer<T>>> {
    let mut list: Vec<Box<dyn Canonizer<T>>> = Vec::new();
    if let Some(order) = GateOrder::for_layout(config.layout, config.encoder.cell) {
        list.push(Box::new(order));
    }
    list.extend(for_cell(&config.encoder));
    list
}

/// The built-in canonizers of an encoder's cell options, for weights
/// already in the cells' gate order (the `pytorch` layout, the encoder of
/// an encoder–decoder).
pub(crate) fn for_cell<T: Float>(enc: &EncoderConfig) -> Vec<Box<dyn Canonizer<T>>> {
    let mut list: Vec<Box<dyn Canonizer<T>>> = Vec::new();
    if let Some(merge) = MergeBiases::for_cell(enc.cell, enc.gru_reset()) {
        list.push(Box::new(merge));
    }
    if enc.cell == CellKind::Lstm && enc.forget_bias() != 0.0 {
        list.push(Box::new(ForgetBias(enc.forget_bias())));
    }
    if let Some(hard) = HardSigmoid::new(enc.recurrent_activation()) {
        list.push(Box::new(hard));
    }
    list
}

/// An error of canonizer `name` in one line.
fn misfit(name: &str, message: String) -> Error {
    Error::Config {
        key: format!("canonizer {name}"),
        message,
    }
}

/// Gate blocks of a framework's order into the cells' own: block `k` of
/// the result is block `from[k]` of the file, for `W_ih`, `W_hh` and both
/// biases alike.
///
/// ```
/// use lrp_models::canonize::{Canonizer, CellWeights, GateOrder};
/// use lrp_models::config::{CellKind, Layout};
/// use nalgebra::{DMatrix, DVector};
///
/// // TF1's i, j, f, o with H = 1: the blocks 0, 1, 2, 3 become i, f, g, o = 0, 2, 1, 3.
/// let order = GateOrder::for_layout(Layout::Tf1, CellKind::Lstm).unwrap();
/// let rows = DVector::from_vec(vec![0.0, 1.0, 2.0, 3.0]);
/// let mut w = CellWeights::new(DMatrix::from_column_slice(4, 1, rows.as_slice()), DMatrix::zeros(4, 1), rows.clone(), rows);
/// order.apply(&mut w)?;
/// assert_eq!(w.b_ih.as_slice(), &[0.0, 2.0, 1.0, 3.0]);
/// assert_eq!(w.w_ih.as_slice(), &[0.0, 2.0, 1.0, 3.0]);
/// # Ok::<(), lrp_models::Error>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GateOrder {
    from: &'static [usize],
    source: &'static str,
    target: &'static str,
}

impl GateOrder {
    /// The reordering a layout's weights need for `cell`: `None` where
    /// the file's order is the cells' already (`pytorch`; `keras` LSTMs).
    pub fn for_layout(layout: Layout, cell: CellKind) -> Option<Self> {
        const LSTM: &str = "i, f, g, o";
        const GRU: &str = "r, z, n";
        let (from, source, target): (&'static [usize], _, _) = match (layout, cell) {
            (Layout::Tf1, _) => (&[0, 2, 1, 3], "tf1's i, j, f, o", LSTM),
            (Layout::Reference, _) => (&[0, 2, 1, 3], "the reference release's i, g, f, o", LSTM),
            (Layout::Onnx, CellKind::Lstm) => (&[0, 2, 3, 1], "onnx's i, o, f, c", LSTM),
            (Layout::Onnx, CellKind::Gru) => (&[1, 0, 2], "onnx's z, r, h", GRU),
            (Layout::Keras, CellKind::Gru) => (&[1, 0, 2], "keras' z, r, h", GRU),
            _ => return None,
        };
        Some(Self { from, source, target })
    }

    /// For each block of the cells' order, the block of the file it comes from.
    pub fn from_blocks(&self) -> &[usize] {
        self.from
    }

    /// The same reordering on row-major values whose gate blocks are
    /// `block` values each (`H` times the columns): block `k` of the
    /// result is block `from[k]` of `values`. How the ONNX importer
    /// writes PyTorch's order.
    pub fn reorder_values(&self, values: &[f64], block: usize) -> Vec<f64> {
        self.from
            .iter()
            .flat_map(|&k| values[k * block..(k + 1) * block].iter().copied())
            .collect()
    }

    /// Block `k` of the result is block `from[k]` of `m` (blocks of `h` rows).
    fn rows<T: Float>(&self, m: &DMatrix<T>, h: usize) -> DMatrix<T> {
        let mut out = DMatrix::zeros(m.nrows(), m.ncols());
        for (k, &source) in self.from.iter().enumerate() {
            out.rows_mut(k * h, h).copy_from(&m.rows(source * h, h));
        }
        out
    }
}

impl<T: Float> Canonizer<T> for GateOrder {
    fn name(&self) -> &str {
        "gate-order"
    }

    fn describe(&self) -> String {
        format!("gate blocks from {} to the cells' {}", self.source, self.target)
    }

    fn apply(&self, w: &mut CellWeights<T>) -> Result<(), Error> {
        let (h, g) = (w.hidden(), self.from.len());
        let rows = g * h;
        if [w.w_ih.nrows(), w.w_hh.nrows(), w.b_ih.len(), w.b_hh.len()] != [rows; 4] {
            return Err(misfit(
                Canonizer::<T>::name(self),
                format!("{g} gate blocks of H = {h} need {rows} rows in W_ih, W_hh, b_ih and b_hh"),
            ));
        }
        w.w_ih = self.rows(&w.w_ih, h);
        w.w_hh = self.rows(&w.w_hh, h);
        w.b_ih = self
            .rows(&DMatrix::from_column_slice(rows, 1, w.b_ih.as_slice()), h)
            .column(0)
            .into_owned();
        w.b_hh = self
            .rows(&DMatrix::from_column_slice(rows, 1, w.b_hh.as_slice()), h)
            .column(0)
            .into_owned();
        Ok(())
    }
}

/// The recurrent bias added into the input bias (`b_ih += b_hh`,
/// `b_hh = 0`) where nothing sits between them: an LSTM, and a GRU whose
/// reset gate acts before the recurrent product (`n = tanh(W_n x + b_n +
/// U_n (r * h))`, the reset folded out of the bias). A GRU with the reset
/// after the product keeps them apart: `b_hn` sits inside `r * (...)`.
///
/// ```
/// use lrp_models::canonize::{Canonizer, CellWeights, MergeBiases};
/// use lrp_models::config::{CellKind, GruReset};
/// use nalgebra::{DMatrix, DVector};
///
/// let merge = MergeBiases::for_cell(CellKind::Lstm, GruReset::After).unwrap();
/// let mut w = CellWeights::new(DMatrix::<f64>::zeros(4, 1), DMatrix::zeros(4, 1),
///     DVector::from_vec(vec![1.0, 2.0, 3.0, 4.0]), DVector::from_vec(vec![0.5, 0.5, 0.5, -4.0]));
/// merge.apply(&mut w)?;
/// assert_eq!(w.b_ih.as_slice(), &[1.5, 2.5, 3.5, 0.0]);
/// assert_eq!(w.b_hh.as_slice(), &[0.0; 4]);
/// assert!(MergeBiases::for_cell(CellKind::Gru, GruReset::After).is_none());
/// # Ok::<(), lrp_models::Error>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MergeBiases {
    gru_reset_before: bool,
}

impl MergeBiases {
    /// The merge a cell needs: `None` for a GRU with the reset after the
    /// product.
    pub fn for_cell(cell: CellKind, reset: GruReset) -> Option<Self> {
        match (cell, reset) {
            (CellKind::Lstm, _) => Some(Self {
                gru_reset_before: false,
            }),
            (CellKind::Gru, GruReset::Before) => Some(Self { gru_reset_before: true }),
            _ => None,
        }
    }
}

impl<T: Float> Canonizer<T> for MergeBiases {
    fn name(&self) -> &str {
        "merge-biases"
    }

    fn describe(&self) -> String {
        if self.gru_reset_before {
            "b_hh added into b_ih: nothing sits between them in a GRU with the reset before the recurrent product"
                .into()
        } else {
            "b_hh added into b_ih: an LSTM has one bias per gate".into()
        }
    }

    fn apply(&self, w: &mut CellWeights<T>) -> Result<(), Error> {
        if w.b_ih.len() != w.b_hh.len() {
            return Err(misfit(
                Canonizer::<T>::name(self),
                format!("b_ih has {} values, b_hh {}", w.b_ih.len(), w.b_hh.len()),
            ));
        }
        w.b_ih += &w.b_hh;
        w.b_hh.fill(T::zero());
        Ok(())
    }
}

/// A constant added to the forget gate's bias (the `f` rows, block 1 of
/// `i, f, g, o`), once: TF1's `forget_bias` (1.0 there), config key
/// `encoder.forget_bias`. Runs after [`MergeBiases`], on `b_ih`.
///
/// ```
/// use lrp_models::canonize::{Canonizer, CellWeights, ForgetBias};
/// use nalgebra::{DMatrix, DVector};
///
/// let mut w = CellWeights::new(DMatrix::<f64>::zeros(4, 1), DMatrix::zeros(4, 1), DVector::zeros(4), DVector::zeros(4));
/// ForgetBias(1.0).apply(&mut w)?;
/// assert_eq!(w.b_ih.as_slice(), &[0.0, 1.0, 0.0, 0.0]);
/// # Ok::<(), lrp_models::Error>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ForgetBias(pub f64);

impl<T: Float> Canonizer<T> for ForgetBias {
    fn name(&self) -> &str {
        "forget-bias"
    }

    fn describe(&self) -> String {
        format!("{} added to the forget gate's bias, the f rows of b_ih", self.0)
    }

    fn apply(&self, w: &mut CellWeights<T>) -> Result<(), Error> {
        let h = w.hidden();
        if w.b_ih.len() != 4 * h {
            return Err(misfit(
                Canonizer::<T>::name(self),
                format!("an LSTM's bias has 4 H = {} values, found {}", 4 * h, w.b_ih.len()),
            ));
        }
        let forget = T::of_f64(self.0);
        for b in w.b_ih.rows_mut(h, h).iter_mut() {
            *b += forget;
        }
        Ok(())
    }
}

/// The gates' activation set to a hard sigmoid, as Keras 2 (`clip(0.2 x +
/// 0.5, 0, 1)`, ONNX `HardSigmoid`'s defaults) or Keras 3 (`relu6(x + 3) /
/// 6`) computes it, config key `encoder.recurrent_activation`.
///
/// ```
/// use lrp_models::canonize::{Canonizer, CellWeights, HardSigmoid};
/// use lrp_models::config::RecurrentActivation;
/// use nalgebra::{DMatrix, DVector};
///
/// let hard = HardSigmoid::new(RecurrentActivation::HardSigmoidKeras2).unwrap();
/// let mut w = CellWeights::new(DMatrix::<f64>::zeros(4, 1), DMatrix::zeros(4, 1), DVector::zeros(4), DVector::zeros(4));
/// hard.apply(&mut w)?;
/// assert_eq!(w.recurrent_activation, RecurrentActivation::HardSigmoidKeras2);
/// assert!(HardSigmoid::new(RecurrentActivation::Sigmoid).is_none());
/// # Ok::<(), lrp_models::Error>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HardSigmoid(RecurrentActivation);

impl HardSigmoid {
    /// The canonizer of a hard sigmoid variant; `None` for the logistic sigmoid.
    pub fn new(activation: RecurrentActivation) -> Option<Self> {
        (activation != RecurrentActivation::Sigmoid).then_some(Self(activation))
    }
}

impl<T: Float> Canonizer<T> for HardSigmoid {
    fn name(&self) -> &str {
        "hard-sigmoid"
    }

    fn describe(&self) -> String {
        match self.0 {
            RecurrentActivation::HardSigmoidKeras2 => {
                "gates through Keras 2's hard sigmoid clip(0.2 x + 0.5, 0, 1)".into()
            }
            RecurrentActivation::HardSigmoidKeras3 => "gates through Keras 3's hard sigmoid relu6(x + 3) / 6".into(),
            other => format!("gates through {}", other.name()),
        }
    }

    fn apply(&self, w: &mut CellWeights<T>) -> Result<(), Error> {
        w.recurrent_activation = self.0;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{tensor_manifest, Model, Tensor, Tensors};

    /// Weights of `g` gate blocks of `H = 2` whose every value names its
    /// block: block `k` holds `k` (times 10 in `W_hh`, 100 in the biases).
    fn numbered(g: usize) -> CellWeights<f64> {
        let block = |r: usize| (r / 2) as f64;
        CellWeights::new(
            DMatrix::from_fn(2 * g, 3, |r, _| block(r)),
            DMatrix::from_fn(2 * g, 2, |r, _| 10.0 * block(r)),
            DVector::from_fn(2 * g, |r, _| 100.0 * block(r)),
            DVector::from_fn(2 * g, |r, _| 1000.0 * block(r)),
        )
    }

    /// The block each row of `W_ih` came from.
    fn blocks(w: &CellWeights<f64>) -> Vec<f64> {
        w.w_ih.column(0).iter().step_by(2).copied().collect()
    }

    #[test]
    fn gate_order_puts_each_layouts_blocks_in_the_cells_order() {
        for (layout, cell, want) in [
            (Layout::Tf1, CellKind::Lstm, vec![0.0, 2.0, 1.0, 3.0]),
            (Layout::Reference, CellKind::Lstm, vec![0.0, 2.0, 1.0, 3.0]),
            (Layout::Onnx, CellKind::Lstm, vec![0.0, 2.0, 3.0, 1.0]),
            (Layout::Onnx, CellKind::Gru, vec![1.0, 0.0, 2.0]),
            (Layout::Keras, CellKind::Gru, vec![1.0, 0.0, 2.0]),
        ] {
            let order = GateOrder::for_layout(layout, cell).unwrap();
            let mut w = numbered(want.len());
            Canonizer::<f64>::apply(&order, &mut w).unwrap();
            assert_eq!(blocks(&w), want, "{layout:?} {cell:?}");
            // Every part moves alike, both rows of a block together.
            assert_eq!(w.w_hh.column(1).into_owned(), w.w_ih.column(2).map(|v| 10.0 * v));
            assert_eq!(w.b_ih, w.w_ih.column(0).map(|v| 100.0 * v));
            assert_eq!(w.b_hh, w.w_ih.column(0).map(|v| 1000.0 * v));
            let flat: Vec<f64> = (0..want.len()).flat_map(|k| [k as f64; 2]).collect();
            let moved: Vec<f64> = want.iter().flat_map(|&k| [k; 2]).collect();
            assert_eq!(order.reorder_values(&flat, 2), moved);
        }
        assert!(GateOrder::for_layout(Layout::Pytorch, CellKind::Lstm).is_none());
        assert!(
            GateOrder::for_layout(Layout::Keras, CellKind::Lstm).is_none(),
            "i, f, c, o"
        );
        // Weights of another number of blocks: one line naming the canonizer.
        let tf1 = GateOrder::for_layout(Layout::Tf1, CellKind::Lstm).unwrap();
        let err = Canonizer::<f64>::apply(&tf1, &mut numbered(3)).unwrap_err().to_string();
        assert_eq!(
            err,
            "config: canonizer gate-order: 4 gate blocks of H = 2 need 8 rows in W_ih, W_hh, b_ih and b_hh"
        );
    }

    #[test]
    fn merge_biases_adds_b_hh_into_b_ih_for_lstms_and_reset_before_grus() {
        let merge = MergeBiases::for_cell(CellKind::Gru, GruReset::Before).unwrap();
        let mut w = numbered(3);
        Canonizer::<f64>::apply(&merge, &mut w).unwrap();
        assert_eq!(w.b_ih.as_slice(), &[0.0, 0.0, 1100.0, 1100.0, 2200.0, 2200.0]);
        assert!(w.b_hh.iter().all(|&b| b == 0.0));
        assert_eq!(w.w_ih, numbered(3).w_ih, "the weights are untouched");
        assert!(Canonizer::<f64>::describe(&merge).contains("reset before"));
        assert!(MergeBiases::for_cell(CellKind::Gru, GruReset::After).is_none());
    }

    #[test]
    fn forget_bias_adds_to_the_f_rows_only() {
        let mut w = numbered(4);
        Canonizer::<f64>::apply(&ForgetBias(1.0), &mut w).unwrap();
        assert_eq!(w.b_ih.as_slice(), &[0.0, 0.0, 101.0, 101.0, 200.0, 200.0, 300.0, 300.0]);
        assert!(
            Canonizer::<f64>::apply(&ForgetBias(1.0), &mut numbered(3)).is_err(),
            "a GRU's bias"
        );
    }

    #[test]
    fn hard_sigmoid_sets_the_gates_activation_and_nothing_else() {
        let hard = HardSigmoid::new(RecurrentActivation::HardSigmoidKeras3).unwrap();
        let mut w = numbered(4);
        Canonizer::<f32>::apply(
            &hard,
            &mut CellWeights::new(
                DMatrix::zeros(4, 1),
                DMatrix::zeros(4, 1),
                DVector::zeros(4),
                DVector::zeros(4),
            ),
        )
        .unwrap();
        Canonizer::<f64>::apply(&hard, &mut w).unwrap();
        assert_eq!(w.recurrent_activation, RecurrentActivation::HardSigmoidKeras3);
        assert_eq!(
            CellWeights {
                recurrent_activation: RecurrentActivation::Sigmoid,
                ..w
            },
            numbered(4)
        );
    }

    fn config(text: &str) -> ModelConfig {
        serde_json::from_str(text).unwrap()
    }

    #[test]
    fn the_builtin_list_follows_the_layout_and_the_cell_options() {
        let names =
            |c: &ModelConfig| -> Vec<String> { builtin::<f64>(c).iter().map(|k| k.name().to_string()).collect() };
        let keras = config(
            r#"{"format": "lrp-model", "version": 1, "layout": "keras", "weights": "w.npz",
            "encoder": {"cell": "lstm", "input_size": 3, "hidden_size": 4, "recurrent_activation": "hard_sigmoid_keras2"},
            "head": {"input": "last", "num_classes": 2}}"#,
        );
        assert_eq!(names(&keras), ["merge-biases", "hard-sigmoid"]);
        let gru = config(
            r#"{"format": "lrp-model", "version": 1, "layout": "pytorch", "weights": "w.safetensors",
            "encoder": {"cell": "gru", "input_size": 3, "hidden_size": 4},
            "head": {"input": "last", "num_classes": 2}}"#,
        );
        assert!(names(&gru).is_empty());
    }

    /// A canonizer of a user's: it scales the recurrent weights.
    #[derive(Debug)]
    struct ScaleRecurrent(f64);

    impl Canonizer<f64> for ScaleRecurrent {
        fn name(&self) -> &str {
            "scale-recurrent"
        }
        fn describe(&self) -> String {
            format!("W_hh times {}", self.0)
        }
        fn apply(&self, w: &mut CellWeights<f64>) -> Result<(), Error> {
            w.w_hh *= self.0;
            Ok(())
        }
    }

    #[test]
    fn a_users_canonizer_runs_after_the_builtin_ones() {
        let lstm = config(
            r#"{"format": "lrp-model", "version": 1, "layout": "tf1", "weights": "w.npz",
            "encoder": {"cell": "lstm", "input_size": 2, "hidden_size": 3, "forget_bias": 1.0},
            "head": {"input": "last", "num_classes": 2}}"#,
        );
        let tensors = |scale: f64| {
            let mut tensors = Tensors::new();
            for (k, (name, shape)) in tensor_manifest(&lstm).unwrap().into_iter().enumerate() {
                let rows = shape[0];
                let values = (0..shape.iter().product())
                    .map(|i| {
                        // The kernel's rows past the input width read h: scaled.
                        let v = ((i * 7 + k) % 11) as f64 / 11.0 - 0.5;
                        if name.ends_with("kernel") && i / shape[1] >= 2 && rows == 5 {
                            v * scale
                        } else {
                            v
                        }
                    })
                    .collect();
                tensors.insert(name, Tensor { shape, values });
            }
            tensors
        };
        let scaled: Model<f64> =
            Model::from_config_with_canonizers(lstm.clone(), tensors(1.0), vec![Box::new(ScaleRecurrent(0.5))])
                .unwrap();
        let by_file: Model<f64> = Model::from_config(lstm.clone(), tensors(0.5)).unwrap();
        let plain: Model<f64> = Model::from_config(lstm.clone(), tensors(1.0)).unwrap();
        let x = DMatrix::from_fn(2, 4, |i, t| (i as f64 - t as f64) / 3.0);
        let trace = scaled.forward(x.clone()).unwrap();
        assert_eq!(trace.scores(), by_file.forward(x.clone()).unwrap().scores());
        assert_ne!(trace.scores(), plain.forward(x).unwrap().scores());
        // Another model than the file's: the plain model refuses its traces.
        assert_eq!(plain.gradient(&trace, 0).unwrap_err(), Error::TraceFromAnotherModel);
    }
}
