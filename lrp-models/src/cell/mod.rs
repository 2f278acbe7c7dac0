//! Recurrent cells: one direction of one layer, run over a whole sequence.
//!
//! Every cell has the same three passes over an input sequence `[E, T]`:
//! `forward` keeps a trace, `lrp` consumes the relevance that arrives at
//! each of its outputs from outside (the board rows of its direction) and
//! adds the relevance of its inputs into the layer's input board, and
//! `gradient` does the same with gradients. A cell that runs in reverse
//! processes position `T-1` first; traces are kept in processing order.

mod gru;
mod lstm;

pub(crate) use gru::{GruCell, GruTrace};
pub(crate) use lstm::{LstmCell, LstmTrace};

use lrp_core::{Float, Relevance, Workspace};
use lrp_layers::LayerRules;
use nalgebra::{DMatrix, DVector};

/// Position of processing step `s` in a sequence of `len` positions.
#[inline]
pub(crate) fn position(step: usize, len: usize, reverse: bool) -> usize {
    if reverse {
        len - 1 - step
    } else {
        step
    }
}

/// Column `j` of a column-major matrix as a slice.
#[inline]
pub(crate) fn column<T: Float>(m: &DMatrix<T>, j: usize) -> &[T] {
    let r = m.nrows();
    &m.as_slice()[j * r..(j + 1) * r]
}

/// Rows `[from, from + len)` of column `j` of a column-major matrix.
#[inline]
pub(crate) fn column_part<T: Float>(m: &DMatrix<T>, j: usize, from: usize, len: usize) -> &[T] {
    let r = m.nrows();
    &m.as_slice()[j * r + from..j * r + from + len]
}

pub(crate) use crate::activation::{sigmoid, tanh};

/// `out[k] = a[k] + b[k]`.
#[inline]
pub(crate) fn add_into<T: Float>(out: &mut [T], a: &[T], b: &[T]) {
    for ((o, &x), &y) in out.iter_mut().zip(a).zip(b) {
        *o = x + y;
    }
}

/// Sum of a slice.
#[inline]
pub(crate) fn sum<T: Float>(values: &[T]) -> T {
    values.iter().fold(T::zero(), |a, &b| a + b)
}

/// Adds processing-order columns of `by_step` `[E, T]` into the
/// position-order columns of `into` `[E, T]`.
pub(crate) fn add_columns_by_position<T: Float>(into: &mut DMatrix<T>, by_step: &DMatrix<T>, reverse: bool) {
    let len = by_step.ncols();
    for s in 0..len {
        let p = position(s, len, reverse);
        let mut target = into.column_mut(p);
        target += by_step.column(s);
    }
}

/// `W x_t + b` for every position of `input` `[E, T]`, in processing order:
/// `[rows(W), T]`, all positions in one matrix product.
pub(crate) fn project_inputs<T: Float>(
    w: &DMatrix<T>,
    bias: &DVector<T>,
    input: &DMatrix<T>,
    reverse: bool,
) -> DMatrix<T> {
    let len = input.ncols();
    let mut projected = DMatrix::zeros(w.nrows(), len);
    projected.gemm(T::one(), w, input, T::zero());
    for mut col in projected.column_iter_mut() {
        col += bias;
    }
    if reverse {
        for s in 0..len / 2 {
            projected.swap_columns(s, len - 1 - s);
        }
    }
    projected
}

/// What the shared time loop needs of a cell's trace.
pub(crate) trait Recurrence<T: Float> {
    /// Hidden states `[H, T + 1]`, column 0 the zero initial state.
    fn states(&self) -> &DMatrix<T>;
    /// Step `s`, given the recurrent term `W_hh h_s (+ b_hh)` `[rows(W_hh)]`.
    fn step(&mut self, s: usize, recurrent: &[T]);
}

/// The time loop of equal-length sequences run together: at every step one
/// matrix product `W_hh [h_1 .. h_B]` (plus `bias`) serves the whole batch,
/// so the recurrent weights are read once per step, not once per sequence.
/// Each trace ends as it would alone, up to the rounding of the product's
/// summation order.
pub(crate) fn run_together<T: Float, R: Recurrence<T>>(w_hh: &DMatrix<T>, bias: Option<&DVector<T>>, traces: &mut [R]) {
    let Some(len) = traces.first().map(|t| t.states().ncols() - 1) else {
        return;
    };
    let mut h_prev = DMatrix::zeros(w_hh.ncols(), traces.len());
    let mut recurrent = DMatrix::zeros(w_hh.nrows(), traces.len());
    for s in 0..len {
        for (b, tr) in traces.iter().enumerate() {
            h_prev.column_mut(b).copy_from(&tr.states().column(s));
        }
        recurrent.gemm(T::one(), w_hh, &h_prev, T::zero());
        if let Some(bias) = bias {
            for mut col in recurrent.column_iter_mut() {
                col += bias;
            }
        }
        for (b, tr) in traces.iter_mut().enumerate() {
            tr.step(s, column(&recurrent, b));
        }
    }
}

/// One direction of one layer.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Cell<T: Float> {
    Lstm(LstmCell<T>),
    Gru(GruCell<T>),
}

/// What a cell's forward pass keeps for the backward passes.
#[derive(Debug, Clone)]
pub(crate) enum CellTrace<T: Float> {
    Lstm(LstmTrace<T>),
    Gru(GruTrace<T>),
}

impl<T: Float> CellTrace<T> {
    /// Whether every pre-activation is finite (an overflow shows here first:
    /// the activations themselves saturate to finite values).
    pub(crate) fn is_finite(&self) -> bool {
        let pre = match self {
            CellTrace::Lstm(t) => &t.pre,
            CellTrace::Gru(t) => &t.pre,
        };
        pre.iter().all(|v| v.is_finite())
    }

    /// Hidden states `[H, T + 1]` in processing order, column 0 the zero
    /// initial state.
    pub(crate) fn hidden(&self) -> &DMatrix<T> {
        match self {
            CellTrace::Lstm(t) => &t.h,
            CellTrace::Gru(t) => &t.h,
        }
    }
}

/// What the LRP pass of a cell hands back besides the input relevance.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Leftover<T> {
    /// Relevance that reached the zero initial states `h_0` (and `c_0`).
    pub initial_state: T,
    /// Relevance dropped at zero denominators.
    pub unexplained: T,
}

impl<T: Float> Cell<T> {
    /// The rules this cell uses under `rules`, for messages: the names of
    /// its projections', sum's and products' rules, each list without
    /// repeats and joined by `/`.
    pub(crate) fn rule_names(&self, rules: &LayerRules<'_, T>) -> [String; 3] {
        let (projections, products): (&[&'static str], &[&'static str]) = match self {
            Cell::Lstm(_) => (&lstm::GATES, &["o", "f", "i"]),
            Cell::Gru(_) => (&gru::GATES[1..], &gru::PRODUCTS),
        };
        let projections = distinct(projections.iter().map(|&gate| rules.projection(gate).name()));
        let sums = rules.accumulation().name().to_string();
        let products = distinct(products.iter().map(|&gate| rules.product(gate).name()));
        [projections, sums, products]
    }

    pub(crate) fn hidden_size(&self) -> usize {
        match self {
            Cell::Lstm(c) => c.hidden_size(),
            Cell::Gru(c) => c.hidden_size(),
        }
    }

    /// Runs equal-length sequences `[E, T]` together (see `LstmCell::forward_batch`).
    pub(crate) fn forward_batch(&self, inputs: &[&DMatrix<T>], reverse: bool) -> Vec<CellTrace<T>> {
        match self {
            Cell::Lstm(c) => c
                .forward_batch(inputs, reverse)
                .into_iter()
                .map(CellTrace::Lstm)
                .collect(),
            Cell::Gru(c) => c
                .forward_batch(inputs, reverse)
                .into_iter()
                .map(CellTrace::Gru)
                .collect(),
        }
    }

    /// LRP through the whole sequence. `external` holds the relevance that
    /// reaches this cell's outputs from outside the recurrence, in rows
    /// `[offset, offset + H)`; input relevance is added into `relevance_in`.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn lrp(
        &self,
        trace: &CellTrace<T>,
        input: &DMatrix<T>,
        external: &Relevance<T>,
        offset: usize,
        relevance_in: &mut Relevance<T>,
        rules: &LayerRules<'_, T>,
        workspace: &mut Workspace<T>,
    ) -> Leftover<T> {
        match (self, trace) {
            (Cell::Lstm(c), CellTrace::Lstm(t)) => c.lrp(t, input, external, offset, relevance_in, rules, workspace),
            (Cell::Gru(c), CellTrace::Gru(t)) => c.lrp(t, input, external, offset, relevance_in, rules, workspace),
            _ => unreachable!("a cell's trace always comes from the same kind of cell"),
        }
    }

    /// Backpropagation through time of the gradient arriving at this cell's
    /// outputs from outside (`external` rows `[offset, offset + H)`, `[D, T]`);
    /// the input gradient is added into `grad_in` `[E, T]`.
    pub(crate) fn gradient(
        &self,
        trace: &CellTrace<T>,
        input: &DMatrix<T>,
        external: &DMatrix<T>,
        offset: usize,
        grad_in: &mut DMatrix<T>,
    ) {
        match (self, trace) {
            (Cell::Lstm(c), CellTrace::Lstm(t)) => c.gradient(t, input, external, offset, grad_in),
            (Cell::Gru(c), CellTrace::Gru(t)) => c.gradient(t, input, external, offset, grad_in),
            _ => unreachable!("a cell's trace always comes from the same kind of cell"),
        }
    }
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
