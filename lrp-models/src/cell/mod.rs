//! Recurrent cells: one direction of one layer, run over a packed batch.
//!
//! [`StepCell`] is the plugin point for new cells: a cell writes one step
//! (see `step.rs`) and the time loop here makes it a [`RecurrentCell`], the
//! low-level trait of a direction over a whole packed batch. A cell sees its
//! inputs in *processing order*: the library hands a direction that reads
//! backwards its inputs mirrored in time (see [`Packing::reversed`]) and
//! mirrors its outputs and relevance back, so a cell is only ever written
//! forwards. Every cell has the same three passes over a packed batch
//! `[E, N]` (see [`Packing`]): `forward` keeps a trace, `lrp` consumes the
//! relevance that arrives at each of its outputs from outside the
//! recurrence and adds the relevance of its inputs, and `gradient` does the
//! same with gradients. Step `t` works on the `active(t)` sequences still
//! running, one matrix product per step.
//!
//! LSTM, GRU, the GRU that resets before its product
//! ([`GruResetBeforeCell`]), minGRU and minLSTM are step cells;
//! `examples/extend` adds a peephole LSTM from outside the library.

mod gru;
mod gru_before;
mod interpolate;
mod lstm;
mod min;
mod step;

use std::any::Any;
use std::fmt;

pub use gru::GruCell;
pub use gru_before::GruResetBeforeCell;
pub use interpolate::{interpolate, CellUpdate, CellUpdateRelevance, Interpolation, InterpolationRelevance};
pub use lstm::LstmCell;
pub use min::{MinGruCell, MinLstmCell};
pub(crate) use step::{block, block_mut};
pub use step::{
    dense, CellShape, LinearSteps, State, StateMut, Step, StepCell, StepForward, StepGradient, StepLrp, StepTrace,
};

use lrp_core::linalg::gemm;
use lrp_core::{Block, BlockMut, Float, Workspace};
use lrp_layers::{LayerRules, Operation};
use nalgebra::{DMatrix, Dyn, Matrix, Storage};

use crate::packing::Packing;
use crate::tensors::Manifest;

pub(crate) use crate::activation::tanh;

/// Relevance a cell's LRP pass could not hand to its inputs, per sequence
/// (indexed by slot of the [`Packing`]).
#[derive(Debug, Clone, PartialEq)]
pub struct Leftovers<T> {
    /// Relevance that reached the zero initial state (`h_0`, and `c_0` for
    /// an LSTM).
    pub initial_state: Vec<T>,
    /// Relevance dropped at zero denominators.
    pub unexplained: Vec<T>,
}

impl<T: Float> Leftovers<T> {
    /// Zero leftovers for `sequences` sequences.
    pub fn zeros(sequences: usize) -> Self {
        Self {
            initial_state: vec![T::zero(); sequences],
            unexplained: vec![T::zero(); sequences],
        }
    }
}

/// One direction of a recurrent layer, run forwards in time over a packed
/// batch. Implement it in your own crate to add a cell; wrap it in a
/// [`crate::RecurrentLayer`] to use it.
///
/// ## Shapes
/// `N` is [`Packing::columns`], the positions of all sequences; column
/// `packing.column(t, slot)` is step `t` of the sequence in `slot`.
/// - `input`: `[E, N]` with `E` = [`RecurrentCell::input_size`]
/// - hidden states: `[H, N]` with `H` = [`RecurrentCell::hidden_size`]
pub trait RecurrentCell<T: Float>: Send + Sync + fmt::Debug + 'static {
    /// What the forward pass keeps for the backward passes.
    type Trace: Send + Sync + 'static;

    /// A short name for messages (`"lstm"`).
    fn kind(&self) -> &str;

    /// Width `E` of the inputs.
    fn input_size(&self) -> usize;

    /// Width `H` of the hidden state.
    fn hidden_size(&self) -> usize;

    /// Runs the batch from the zero initial state.
    fn forward(&self, packing: &Packing, input: &DMatrix<T>) -> Self::Trace;

    /// The hidden states `h_t` `[H, N]` of a trace.
    fn hidden<'t>(&self, trace: &'t Self::Trace) -> &'t DMatrix<T>;

    /// Whether every value of the trace is finite (an overflow shows in the
    /// pre-activations first).
    fn is_finite(&self, trace: &Self::Trace) -> bool;

    /// LRP through the batch: `relevance_out` `[H, N]` is what reaches each
    /// hidden state from outside the recurrence; the input relevance is
    /// *added* into `relevance_in` `[E, N]`, and each sequence's leftovers
    /// into `leftovers`.
    #[allow(clippy::too_many_arguments)]
    fn lrp(
        &self,
        packing: &Packing,
        trace: &Self::Trace,
        input: &DMatrix<T>,
        relevance_out: &DMatrix<T>,
        relevance_in: &mut DMatrix<T>,
        rules: &LayerRules<'_, T>,
        workspace: &mut Workspace<T>,
        leftovers: &mut Leftovers<T>,
    );

    /// Backpropagation through time: `grad_out` `[H, N]` is the gradient
    /// reaching each hidden state from outside the recurrence; the input
    /// gradient is *added* into `grad_in` `[E, N]`.
    fn gradient(
        &self,
        packing: &Packing,
        trace: &Self::Trace,
        input: &DMatrix<T>,
        grad_out: &DMatrix<T>,
        grad_in: &mut DMatrix<T>,
    );

    /// The operations of this cell that ask for a rule: the sites of one
    /// direction of one layer, without the layer and direction. `--rules`
    /// keys are checked against them (a key that selects none is refused).
    fn operations(&self) -> Vec<Operation>;

    /// The names of the rules this cell uses under `rules`, for messages:
    /// its projections', sums' and products' rules, each list without
    /// repeats.
    fn rule_names(&self, rules: &LayerRules<'_, T>) -> [String; 3] {
        let operations = self.operations();
        let names = |wanted: fn(&Operation) -> bool| {
            distinct(operations.iter().filter(|op| wanted(op)).map(|op| match *op {
                Operation::Projection(gate) => rules.projection(gate).name(),
                Operation::Candidate(gate) => rules.candidate(gate).name(),
                Operation::Product(gate) => rules.product(gate).name(),
                _ => rules.accumulation().name(),
            }))
        };
        [
            names(Operation::is_projection),
            names(|op| matches!(op, Operation::Accumulation)),
            names(|op| matches!(op, Operation::Product(_))),
        ]
    }
}

/// A [`RecurrentCell`] with its trace type erased, so that a layer can hold
/// cells of any kind.
pub(crate) trait AnyCell<T: Float>: Send + Sync + fmt::Debug {
    fn kind(&self) -> &str;
    fn input_size(&self) -> usize;
    fn hidden_size(&self) -> usize;
    fn forward(&self, packing: &Packing, input: &DMatrix<T>) -> Box<dyn Any + Send + Sync>;
    fn hidden<'t>(&self, trace: &'t (dyn Any + Send + Sync)) -> &'t DMatrix<T>;
    fn is_finite(&self, trace: &(dyn Any + Send + Sync)) -> bool;
    #[allow(clippy::too_many_arguments)]
    fn lrp(
        &self,
        packing: &Packing,
        trace: &(dyn Any + Send + Sync),
        input: &DMatrix<T>,
        relevance_out: &DMatrix<T>,
        relevance_in: &mut DMatrix<T>,
        rules: &LayerRules<'_, T>,
        workspace: &mut Workspace<T>,
        leftovers: &mut Leftovers<T>,
    );
    fn gradient(
        &self,
        packing: &Packing,
        trace: &(dyn Any + Send + Sync),
        input: &DMatrix<T>,
        grad_out: &DMatrix<T>,
        grad_in: &mut DMatrix<T>,
    );
    fn rule_names(&self, rules: &LayerRules<'_, T>) -> [String; 3];
    fn operations(&self) -> Vec<Operation>;
    fn as_any(&self) -> &dyn Any;
}

/// The trace of a cell, back from its erased form. A trace always comes
/// from the cell that reads it (layers keep both together), so a mismatch
/// is a bug in this crate.
fn typed<C: RecurrentCell<T>, T: Float>(trace: &(dyn Any + Send + Sync)) -> &C::Trace {
    trace
        .downcast_ref::<C::Trace>()
        .expect("a cell's trace always comes from the same cell")
}

impl<T: Float, C: RecurrentCell<T>> AnyCell<T> for C {
    fn kind(&self) -> &str {
        RecurrentCell::kind(self)
    }
    fn input_size(&self) -> usize {
        RecurrentCell::input_size(self)
    }
    fn hidden_size(&self) -> usize {
        RecurrentCell::hidden_size(self)
    }
    fn forward(&self, packing: &Packing, input: &DMatrix<T>) -> Box<dyn Any + Send + Sync> {
        Box::new(RecurrentCell::forward(self, packing, input))
    }
    fn hidden<'t>(&self, trace: &'t (dyn Any + Send + Sync)) -> &'t DMatrix<T> {
        RecurrentCell::hidden(self, typed::<C, T>(trace))
    }
    fn is_finite(&self, trace: &(dyn Any + Send + Sync)) -> bool {
        RecurrentCell::is_finite(self, typed::<C, T>(trace))
    }
    fn lrp(
        &self,
        packing: &Packing,
        trace: &(dyn Any + Send + Sync),
        input: &DMatrix<T>,
        relevance_out: &DMatrix<T>,
        relevance_in: &mut DMatrix<T>,
        rules: &LayerRules<'_, T>,
        workspace: &mut Workspace<T>,
        leftovers: &mut Leftovers<T>,
    ) {
        RecurrentCell::lrp(
            self,
            packing,
            typed::<C, T>(trace),
            input,
            relevance_out,
            relevance_in,
            rules,
            workspace,
            leftovers,
        )
    }
    fn gradient(
        &self,
        packing: &Packing,
        trace: &(dyn Any + Send + Sync),
        input: &DMatrix<T>,
        grad_out: &DMatrix<T>,
        grad_in: &mut DMatrix<T>,
    ) {
        RecurrentCell::gradient(self, packing, typed::<C, T>(trace), input, grad_out, grad_in)
    }
    fn rule_names(&self, rules: &LayerRules<'_, T>) -> [String; 3] {
        RecurrentCell::rule_names(self, rules)
    }
    fn operations(&self) -> Vec<Operation> {
        RecurrentCell::operations(self)
    }
    fn as_any(&self) -> &dyn Any {
        self
    }
}

/// `projection = W x + b` for every column of `x` `[E, n]` (`[rows(W),
/// n]`), one matrix product for them all. A `bias` whose length is not
/// `rows(W)` counts as none.
pub fn project<T: Float>(w: &DMatrix<T>, bias: &[T], x: Block<'_, T>, mut projection: BlockMut<'_, T>) {
    // Every column starts as the bias and the product adds `W x` to it
    // (beta = 1): one addition per entry, `(W x) + b`, as adding the bias
    // afterwards would do, without a second pass over the matrix.
    let rows = w.nrows();
    for b in 0..projection.cols() {
        let column = projection.column_mut(b);
        if bias.len() == rows {
            column.copy_from_slice(bias);
        } else {
            column.fill(T::zero());
        }
    }
    gemm(&mut projection.view_mut(), T::one(), w, false, &x.view(), T::one());
}

/// `out += W x`, `out` `[rows(W), B]`, `x` `[cols(W), B]`: a step's
/// recurrent product for the sequences running at it.
pub fn add_product<T: Float, S: Storage<T, Dyn, Dyn>>(
    mut out: BlockMut<'_, T>,
    w: &Matrix<T, Dyn, Dyn, S>,
    x: Block<'_, T>,
) {
    gemm(&mut out.view_mut(), T::one(), w, false, &x.view(), T::one());
}

/// `out += Wᵀ d`, `out` `[cols(W), B]`, `d` `[rows(W), B]`: gradients
/// back through `W`.
pub fn add_transposed_product<T: Float, S: Storage<T, Dyn, Dyn>>(
    mut out: BlockMut<'_, T>,
    w: &Matrix<T, Dyn, Dyn, S>,
    d: Block<'_, T>,
) {
    gemm(&mut out.view_mut(), T::one(), w, true, &d.view(), T::one());
}

/// Column `c` of a column-major matrix as a slice (panics, like slice
/// indexing, past the last column).
#[inline]
pub fn column<T: Float>(m: &DMatrix<T>, c: usize) -> &[T] {
    let r = m.nrows();
    &m.as_slice()[c * r..(c + 1) * r]
}

/// Whether every value is finite, in one vectorisable pass: `v * 0` is 0
/// for a finite `v` and NaN otherwise, and a NaN survives the sums.
#[inline(always)]
pub fn all_finite<T: Float>(values: &[T]) -> bool {
    let mut lanes = [T::zero(); 8];
    let mut chunks = values.chunks_exact(8);
    for chunk in &mut chunks {
        for (lane, &v) in lanes.iter_mut().zip(chunk) {
            *lane += v * T::zero();
        }
    }
    let rest = chunks.remainder().iter().fold(T::zero(), |a, &v| a + v * T::zero());
    lanes.iter().fold(rest, |a, &v| a + v).is_finite()
}

/// The tensors of one direction of layer `layer` of an `nn.LSTM` /
/// `nn.GRU` with `gates` gate blocks, as PyTorch names them:
/// `encoder.weight_ih_l{layer}` `[gates·H, E]`, `encoder.weight_hh_l{layer}`
/// `[gates·H, H]`, `encoder.bias_ih_l{layer}` and `encoder.bias_hh_l{layer}`
/// `[gates·H]`, each with `_reverse` for the backwards direction.
fn pytorch_recurrent_tensors(layer: usize, reverse: bool, gates: usize, input: usize, hidden: usize) -> Manifest {
    let suffix = if reverse { "_reverse" } else { "" };
    vec![
        (
            format!("encoder.weight_ih_l{layer}{suffix}"),
            vec![gates * hidden, input],
        ),
        (
            format!("encoder.weight_hh_l{layer}{suffix}"),
            vec![gates * hidden, hidden],
        ),
        (format!("encoder.bias_ih_l{layer}{suffix}"), vec![gates * hidden]),
        (format!("encoder.bias_hh_l{layer}{suffix}"), vec![gates * hidden]),
    ]
}

/// A cell's operations: the projections of `projections` (the one named
/// `candidate` as its candidate), the sum, the products gated by
/// `products`.
pub fn operations(projections: &[&'static str], candidate: &'static str, products: &[&'static str]) -> Vec<Operation> {
    let projections = projections.iter().map(|&gate| {
        if gate == candidate {
            Operation::Candidate(gate)
        } else {
            Operation::Projection(gate)
        }
    });
    let products = products.iter().map(|&gate| Operation::Product(gate));
    projections.chain([Operation::Accumulation]).chain(products).collect()
}

/// Sum of a slice.
#[inline]
pub(crate) fn sum<T: Float>(values: &[T]) -> T {
    values.iter().fold(T::zero(), |a, &b| a + b)
}

/// `names` without repeats (first occurrences, in order), joined by `/`.
pub(crate) fn distinct<'a>(names: impl IntoIterator<Item = &'a str>) -> String {
    let mut seen: Vec<&str> = Vec::new();
    for name in names {
        if !seen.contains(&name) {
            seen.push(name);
        }
    }
    seen.join("/")
}
