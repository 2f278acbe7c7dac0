//! minGRU and minLSTM (Feng et al. 2024, "Were RNNs all we needed?"): a GRU
//! and an LSTM whose gates and candidate read only the input, so that
//! training can run as a parallel scan. Run in sequence, as here, they are
//! ordinary step cells whose projection has no recurrent part.
//!
//! ```text
//! minGRU   z  = σ(W_z x_t + b_z)            h̃ = W_h x_t + b_h
//!          h_t = (1 − z) ⊙ h_{t-1} + z ⊙ h̃
//!
//! minLSTM  f  = σ(W_f x_t + b_f)   i = σ(W_i x_t + b_i)   h̃ = W_h x_t + b_h
//!          f' = f / (f + i)        i' = i / (f + i)
//!          h_t = f' ⊙ h_{t-1} + i' ⊙ h̃
//! ```
//!
//! Both are the paper's sequential forms (its equations for minGRU and
//! minLSTM, with the candidate a plain linear map of `x_t`).
//!
//! ## LRP
//! - minGRU: the state update is the GRU family's interpolation
//!   ([`Interpolation`], keep gate `u = 1 − z`): one linear step for the sum
//!   (site `sum`), then the gate rules of the products `"z"` (`z ⊙ h̃`) and
//!   `"1-z"` (`(1 − z) ⊙ h_{t-1}`). The candidate is a linear step over
//!   `x_t` alone (site: candidate `h`); when a gate rule gives the gate
//!   relevance, `z`'s pre-activation is one too (site: projection `z`), and
//!   `1 − z = σ(−pre_z)` passes it on unchanged.
//! - minLSTM: the update is the LSTM family's cell update ([`CellUpdate`])
//!   with the normalised gates `f'` and `i'`: the sum (site `sum`), then
//!   the gate rules of the products `"f"` (`f' ⊙ h_{t-1}`) and `"i"`
//!   (`i' ⊙ h̃`). When a gate rule gives a gate relevance, the normaliser
//!   `1 / (f + i)` is held constant (as xLSTM's normaliser is), so `f'`'s
//!   relevance passes to `f` and through σ to its pre-activation (site:
//!   projection `f`), and `i'`'s to `i` (projection `i`).
//!
//! With the default signal-take-all gate rules the gates receive nothing,
//! and relevance is conserved exactly at bias factor 1: every step is a
//! linear rule over its inputs.

use lrp_core::{Block, Float};
use lrp_layers::Operation;
use nalgebra::{DMatrix, DVector};

use super::{dense, interpolate, CellShape, CellUpdate, CellUpdateRelevance, Interpolation, InterpolationRelevance};
use super::{Step, StepCell, StepForward, StepGradient, StepLrp};
use crate::activation::sigmoid;
use crate::tensors::{expect_shape, Manifest, Ordered};
use crate::Error;

/// minGRU's products: `z ⊙ h̃` lets the candidate in, `(1 − z) ⊙ h_{t-1}`
/// keeps the state.
const MIN_GRU_PRODUCTS: [&str; 2] = ["z", "1-z"];

/// The tensors of a min cell in lrp's `pytorch` layout: direction `reverse`
/// of layer `layer`, `encoder.weight_ih_l{layer}[_reverse]` `[G H, E]` and
/// `encoder.bias_ih_l{layer}[_reverse]` `[G H]`; there is no recurrent
/// weight.
fn min_tensors(layer: usize, reverse: bool, gates: usize, input: usize, hidden: usize) -> Manifest {
    let suffix = if reverse { "_reverse" } else { "" };
    vec![
        (
            format!("encoder.weight_ih_l{layer}{suffix}"),
            vec![gates * hidden, input],
        ),
        (format!("encoder.bias_ih_l{layer}{suffix}"), vec![gates * hidden]),
    ]
}

/// Checks that `w` `[G H, E]` and `bias` `[G H]` fit `gates` blocks.
fn check_blocks<T: Float>(w: &DMatrix<T>, bias: &DVector<T>, gates: usize) -> Result<(), Error> {
    let rows = w.nrows().div_ceil(gates).max(1) * gates;
    expect_shape("w", &[rows, w.ncols()], &[w.nrows(), w.ncols()])?;
    expect_shape("bias", &[rows], &[bias.len()])
}

/// One direction of a minGRU layer.
///
/// ## Parameters
/// - `w`: `[2H, E]`, the rows of `z` then of `h̃`
/// - `bias`: `[2H]`
///
/// The record per step: the projection `[pre_z; h̃]` `[2H]` and the keep
/// gate `1 − z` `[H]`.
///
/// ```
/// use lrp_models::MinGruCell;
/// use nalgebra::{DMatrix, DVector};
///
/// // E = 3, H = 2: the rows of z, then of h̃.
/// let cell = MinGruCell::<f64>::new(DMatrix::from_element(4, 3, 0.1), DVector::zeros(4)).unwrap();
/// assert!(MinGruCell::<f64>::new(DMatrix::zeros(3, 3), DVector::zeros(3)).is_err());
/// # let _ = cell;
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct MinGruCell<T: Float> {
    w: DMatrix<T>,
    bias: DVector<T>,
}

impl<T: Float> MinGruCell<T> {
    /// A cell from its weights; `w` must have an even number of rows and
    /// `bias` one value per row.
    pub fn new(w: DMatrix<T>, bias: DVector<T>) -> Result<Self, Error> {
        check_blocks(&w, &bias, 2)?;
        Ok(Self { w, bias })
    }

    /// This cell's tensors in lrp's `pytorch` layout (`weight_ih` `[2H, E]`,
    /// `bias_ih` `[2H]`), in the order the model loader reads
    /// them.
    pub fn pytorch_tensors(layer: usize, reverse: bool, input: usize, hidden: usize) -> Manifest {
        min_tensors(layer, reverse, 2, input, hidden)
    }

    /// The next direction's cell from tensors in manifest order.
    pub(crate) fn from_pytorch(tensors: &mut Ordered) -> Result<Self, Error> {
        Self::new(tensors.matrix()?, tensors.vector()?)
    }

    /// The interpolation of a step: keep `1 − z`, candidate `h̃`.
    fn interpolation<'a>(&self, step: &Step<'a, T>) -> Interpolation<'a, T> {
        let h = self.w.nrows() / 2;
        Interpolation {
            keep: step.record.part(2 * h, h),
            candidate: step.record.part(h, h),
            previous: step.previous.h,
            next: step.next.h,
        }
    }
}

impl<T: Float> StepCell<T> for MinGruCell<T> {
    fn kind(&self) -> &str {
        "mingru"
    }

    fn shape(&self) -> CellShape {
        let h = self.w.nrows() / 2;
        CellShape::new(self.w.ncols(), h, 2 * h).record(3 * h)
    }

    fn input_weights(&self) -> (&DMatrix<T>, &[T]) {
        (&self.w, self.bias.as_slice())
    }

    fn step(&self, mut s: StepForward<'_, T>) {
        let h = self.w.nrows() / 2;
        for b in 0..s.record.cols() {
            let (projection, keep) = s.record.column_mut(b).split_at_mut(2 * h);
            for (u, &p) in keep.iter_mut().zip(&projection[..h]) {
                *u = T::one() - sigmoid(p);
            }
            interpolate(keep, &projection[h..], s.previous.h.column(b), s.next.h.column_mut(b));
        }
    }

    fn lrp_step(&self, step: Step<'_, T>, mut lrp: StepLrp<'_, '_, T>) {
        let (h, e, active, rules) = (self.w.nrows() / 2, self.w.ncols(), step.x.cols(), lrp.rules);
        let [mut r_candidate, mut r_keep, t0, t1, t2, t3, t4] = lrp.scratch.blocks([h; 7], active);
        let out = InterpolationRelevance {
            candidate: r_candidate.part(0, h),
            keep: r_keep.part(0, h),
            previous: lrp.previous.h.part(0, h),
            scratch: [t0, t1, t2, t3, t4],
        };
        let fed = self
            .interpolation(&step)
            .lrp(rules, MIN_GRU_PRODUCTS, lrp.relevance.h, out, &mut lrp.steps);
        let bias = |k: usize| Some(Block::broadcast(&self.bias.as_slice()[k * h..(k + 1) * h], active));
        let (groups, r) = ([dense(step.x, self.w.rows(h, h))], r_candidate.as_block());
        lrp.steps.linear(
            rules.candidate("h"),
            &groups,
            bias(1),
            step.record.part(h, h),
            r,
            &mut [lrp.x.part(0, e)],
        );
        if fed {
            // 1 − z = σ(−pre_z) passes relevance unchanged to pre_z.
            let (groups, r) = ([dense(step.x, self.w.rows(0, h))], r_keep.as_block());
            lrp.steps.linear(
                rules.projection("z"),
                &groups,
                bias(0),
                step.record.part(0, h),
                r,
                &mut [lrp.x.part(0, e)],
            );
        }
    }

    fn gradient_step(&self, step: Step<'_, T>, mut grad: StepGradient<'_, T>) {
        let h = self.w.nrows() / 2;
        let [mut d_candidate, mut d_keep] = grad.scratch.blocks([h; 2], step.x.cols());
        let d_previous = grad.previous.h.part(0, h);
        self.interpolation(&step)
            .gradient(grad.next.h, d_candidate.part(0, h), d_keep.part(0, h), d_previous);
        for b in 0..step.x.cols() {
            let (keep, d) = (&step.record.column(b)[2 * h..], grad.projection.column_mut(b));
            for k in 0..h {
                // u = 1 − σ(p): du/dp = −σ(p)(1 − σ(p)) = −(1 − u) u.
                d[k] = -d_keep.column(b)[k] * (T::one() - keep[k]) * keep[k];
                d[h + k] = d_candidate.column(b)[k];
            }
        }
    }

    fn operations(&self) -> Vec<Operation> {
        super::operations(&["z", "h"], "h", &MIN_GRU_PRODUCTS)
    }
}

/// One direction of a minLSTM layer.
///
/// ## Parameters
/// - `w`: `[3H, E]`, the rows of `f`, then `i`, then `h̃`
/// - `bias`: `[3H]`
///
/// The record per step: the projection `[pre_f; pre_i; h̃]` `[3H]`, then
/// the normalised gates `f'` and `i'` `[H]` each.
///
/// ```
/// use lrp_models::MinLstmCell;
/// use nalgebra::{DMatrix, DVector};
///
/// // E = 2, H = 1: the rows of f, i and h̃.
/// let cell = MinLstmCell::<f64>::new(DMatrix::from_element(3, 2, 0.1), DVector::zeros(3)).unwrap();
/// assert!(MinLstmCell::<f64>::new(DMatrix::zeros(4, 2), DVector::zeros(4)).is_err());
/// # let _ = cell;
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct MinLstmCell<T: Float> {
    w: DMatrix<T>,
    bias: DVector<T>,
}

impl<T: Float> MinLstmCell<T> {
    /// A cell from its weights; `w`'s rows must be a multiple of 3 and
    /// `bias` one value per row.
    pub fn new(w: DMatrix<T>, bias: DVector<T>) -> Result<Self, Error> {
        check_blocks(&w, &bias, 3)?;
        Ok(Self { w, bias })
    }

    /// This cell's tensors in lrp's `pytorch` layout (`weight_ih` `[3H, E]`,
    /// `bias_ih` `[3H]`), in the order the model loader reads
    /// them.
    pub fn pytorch_tensors(layer: usize, reverse: bool, input: usize, hidden: usize) -> Manifest {
        min_tensors(layer, reverse, 3, input, hidden)
    }

    /// The next direction's cell from tensors in manifest order.
    pub(crate) fn from_pytorch(tensors: &mut Ordered) -> Result<Self, Error> {
        Self::new(tensors.matrix()?, tensors.vector()?)
    }

    /// The update of a step, as the LSTM family's: `f' ⊙ h_{t-1} + i' ⊙ h̃`.
    fn update<'a>(&self, step: &Step<'a, T>) -> CellUpdate<'a, T> {
        let h = self.w.nrows() / 3;
        CellUpdate {
            input: step.record.part(4 * h, h),
            forget: step.record.part(3 * h, h),
            candidate: step.record.part(2 * h, h),
            previous: step.previous.h,
            next: step.next.h,
        }
    }
}

impl<T: Float> StepCell<T> for MinLstmCell<T> {
    fn kind(&self) -> &str {
        "minlstm"
    }

    fn shape(&self) -> CellShape {
        let h = self.w.nrows() / 3;
        CellShape::new(self.w.ncols(), h, 3 * h).record(5 * h)
    }

    fn input_weights(&self) -> (&DMatrix<T>, &[T]) {
        (&self.w, self.bias.as_slice())
    }

    fn step(&self, mut s: StepForward<'_, T>) {
        let h = self.w.nrows() / 3;
        for b in 0..s.record.cols() {
            let (projection, gates) = s.record.column_mut(b).split_at_mut(3 * h);
            let (forget, input) = gates.split_at_mut(h);
            let previous = s.previous.h.column(b);
            let next = s.next.h.column_mut(b);
            for k in 0..h {
                let (f, i) = (sigmoid(projection[k]), sigmoid(projection[h + k]));
                // Both σ are positive, so f + i > 0 always.
                forget[k] = f / (f + i);
                input[k] = i / (f + i);
                next[k] = forget[k] * previous[k] + input[k] * projection[2 * h + k];
            }
        }
    }

    fn lrp_step(&self, step: Step<'_, T>, mut lrp: StepLrp<'_, '_, T>) {
        let (h, e, active, rules) = (self.w.nrows() / 3, self.w.ncols(), step.x.cols(), lrp.rules);
        let [mut r_input, mut r_forget, mut r_candidate, t0, t1, t2, t3] = lrp.scratch.blocks([h; 7], active);
        let out = CellUpdateRelevance {
            input: r_input.part(0, h),
            forget: r_forget.part(0, h),
            candidate: r_candidate.part(0, h),
            previous: lrp.previous.h.part(0, h),
            scratch: [t0, t1, t2, t3],
        };
        self.update(&step).lrp(rules, lrp.relevance.h, out, &mut lrp.steps);
        let bias = |k: usize| Some(Block::broadcast(&self.bias.as_slice()[k * h..(k + 1) * h], active));
        let (groups, r) = ([dense(step.x, self.w.rows(2 * h, h))], r_candidate.as_block());
        lrp.steps.linear(
            rules.candidate("h"),
            &groups,
            bias(2),
            step.record.part(2 * h, h),
            r,
            &mut [lrp.x.part(0, e)],
        );
        // With the normaliser 1 / (f + i) constant, f' passes its relevance
        // to f and σ passes it to pre_f unchanged; i' likewise.
        for (k, gate, product, r) in [(0, "f", "f", &r_forget), (1, "i", "i", &r_input)] {
            if rules.product(product).gate_receives_relevance() {
                let groups = [dense(step.x, self.w.rows(k * h, h))];
                lrp.steps.linear(
                    rules.projection(gate),
                    &groups,
                    bias(k),
                    step.record.part(k * h, h),
                    r.as_block(),
                    &mut [lrp.x.part(0, e)],
                );
            }
        }
    }

    fn gradient_step(&self, step: Step<'_, T>, mut grad: StepGradient<'_, T>) {
        let h = self.w.nrows() / 3;
        let [mut d_candidate, mut d_keep] = grad.scratch.blocks([h; 2], step.x.cols());
        let d_previous = grad.previous.h.part(0, h);
        // h_t = (1 − f')·h̃ + f'·h_{t-1}: the interpolation with keep f'.
        let update = self.update(&step);
        Interpolation {
            keep: update.forget,
            candidate: update.candidate,
            previous: update.previous,
            next: update.next,
        }
        .gradient(grad.next.h, d_candidate.part(0, h), d_keep.part(0, h), d_previous);
        for b in 0..step.x.cols() {
            let record = step.record.column(b);
            let d = grad.projection.column_mut(b);
            for k in 0..h {
                // f' = f / (f + i): df'/dpre_f = f' i' (1 − f),
                // df'/dpre_i = −f' i' (1 − i).
                let (f, i) = (sigmoid(record[k]), sigmoid(record[h + k]));
                let (fn_, in_) = (record[3 * h + k], record[4 * h + k]);
                let dk = d_keep.column(b)[k] * fn_ * in_;
                d[k] = dk * (T::one() - f);
                d[h + k] = -dk * (T::one() - i);
                d[2 * h + k] = d_candidate.column(b)[k];
            }
        }
    }

    fn operations(&self) -> Vec<Operation> {
        super::operations(&["f", "i", "h"], "h", &["f", "i"])
    }
}
