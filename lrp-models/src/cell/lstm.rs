use lrp_core::{Block, Float};
use lrp_layers::Operation;
use nalgebra::{DMatrix, DVector};

use super::interpolate::{CellUpdate, CellUpdateRelevance};
use super::{
    add_product, add_transposed_product, dense, tanh, CellShape, Step, StepCell, StepForward, StepGradient, StepLrp,
};
use crate::config::RecurrentActivation;
use crate::tensors::{expect_shape, Manifest};
use crate::Error;

/// Gate blocks in the fused matrices, PyTorch order.
const I: usize = 0;
const F: usize = 1;
const G: usize = 2;
const O: usize = 3;
/// The gates' names in the order of the fused matrices, for rule sites.
pub(crate) const GATES: [&str; 4] = ["i", "f", "g", "o"];

/// An LSTM's operations: its four projections, the cell sum, and the
/// products `o * tanh(c_t)`, `f * c_{t-1}`, `i * g`.
pub(crate) fn operations() -> Vec<Operation> {
    super::operations(&GATES, GATES[G], &["o", "f", "i"])
}

/// One direction of an LSTM layer (`nn.LSTM` semantics):
///
/// ```text
/// [i; f; g; o] = [a; a; tanh; a](W_ih x_t + W_hh h_{t-1} + b)
/// c_t = f * c_{t-1} + i * g
/// h_t = o * tanh(c_t)
/// ```
///
/// ## Parameters
/// - `w_ih`: `[4H, E]`, gate blocks i, f, g, o
/// - `w_hh`: `[4H, H]`
/// - `bias`: `[4H]`, `b_ih + b_hh` (the LSTM only ever uses their sum; a
///   forget bias such as TF1's is folded into the `f` rows when loading)
/// - `a`, the gates' activation: `σ` unless
///   [`LstmCell::with_recurrent_activation`] says otherwise
#[derive(Debug, Clone, PartialEq)]
pub struct LstmCell<T: Float> {
    pub(crate) w_ih: DMatrix<T>,
    pub(crate) w_hh: DMatrix<T>,
    pub(crate) bias: DVector<T>,
    pub(crate) activation: RecurrentActivation,
}

impl<T: Float> LstmCell<T> {
    /// A cell from its weights, PyTorch gate order i, f, g, o: `w_ih`
    /// `[4H, E]`, `w_hh` `[4H, H]`, `bias` `[4H]` (`b_ih + b_hh`).
    pub fn new(w_ih: DMatrix<T>, w_hh: DMatrix<T>, bias: DVector<T>) -> Result<Self, Error> {
        let h = w_hh.ncols();
        expect_shape("w_hh", &[4 * h, h], &[w_hh.nrows(), h])?;
        expect_shape("w_ih", &[4 * h, w_ih.ncols()], &[w_ih.nrows(), w_ih.ncols()])?;
        expect_shape("bias", &[4 * h], &[bias.len()])?;
        Ok(Self {
            w_ih,
            w_hh,
            bias,
            activation: RecurrentActivation::Sigmoid,
        })
    }

    /// This cell with `activation` on its gates i, f, o (the candidate
    /// keeps tanh). LRP reads only the gate values, so only the forward
    /// pass and the gradient change.
    pub fn with_recurrent_activation(mut self, activation: RecurrentActivation) -> Self {
        self.activation = activation;
        self
    }

    /// This cell's tensors in a PyTorch `nn.LSTM`: direction `reverse` of
    /// layer `layer`, reading `input` values per position, hidden size
    /// `hidden` (`encoder.weight_ih_l{layer}[_reverse]` `[4H, E]`,
    /// `weight_hh` `[4H, H]`, `bias_ih`, `bias_hh` `[4H]`), in the order
    /// the model reads them.
    pub fn pytorch_tensors(layer: usize, reverse: bool, input: usize, hidden: usize) -> Manifest {
        super::pytorch_recurrent_tensors(layer, reverse, 4, input, hidden)
    }

    /// Rows of gate block `k` of a fused `[4H, _]` matrix, as a view.
    fn block<'a>(&self, m: &'a DMatrix<T>, k: usize) -> nalgebra::DMatrixView<'a, T> {
        let h = self.w_hh.ncols();
        m.rows(k * h, h)
    }
}

/// Rows of the record: pre-activations `[4H]`, gates `[4H]`, `tanh(c_t)`
/// `[H]`.
const RECORD_BLOCKS: usize = 9;

impl<T: Float> StepCell<T> for LstmCell<T> {
    fn kind(&self) -> &str {
        "lstm"
    }

    fn shape(&self) -> CellShape {
        let h = self.w_hh.ncols();
        CellShape::new(self.w_ih.ncols(), h, 4 * h)
            .memory(h)
            .record(RECORD_BLOCKS * h)
    }

    /// The gates' input parts `W_ih x + b`, `[4H]`.
    fn input_weights(&self) -> (&DMatrix<T>, &[T]) {
        (&self.w_ih, self.bias.as_slice())
    }

    /// `pre += W_hh h_{t-1}` for the whole step, then per sequence the
    /// gates, `c_t = f c_{t-1} + i g` and `h_t = o tanh(c_t)`.
    #[inline(always)]
    fn step(&self, step: StepForward<'_, T>) {
        let StepForward {
            previous,
            mut record,
            mut next,
            ..
        } = step;
        let h = self.w_hh.ncols();
        add_product(record.part(0, 4 * h), &self.w_hh, previous.h);
        for b in 0..record.cols() {
            let column = record.column_mut(b);
            let (pre, rest) = column.split_at_mut(4 * h);
            let (gates, tanh_c) = rest.split_at_mut(4 * h);
            // Slices of exactly H, so the loops below need no bounds checks.
            let tanh_c = &mut tanh_c[..h];
            // One activation per contiguous block, so each loop vectorises.
            self.activation.apply_all(&pre[..2 * h], &mut gates[..2 * h]);
            for (g, &p) in gates[G * h..O * h].iter_mut().zip(&pre[G * h..O * h]) {
                *g = tanh(p);
            }
            self.activation.apply_all(&pre[O * h..], &mut gates[O * h..]);
            let gate = |k: usize| &gates[k * h..(k + 1) * h];
            let (i, f, g, o) = (gate(I), gate(F), gate(G), gate(O));
            let c_prev = &previous.memory.column(b)[..h];
            let c = &mut next.memory.column_mut(b)[..h];
            for k in 0..h {
                c[k] = f[k] * c_prev[k] + i[k] * g[k];
            }
            let h_next = &mut next.h.column_mut(b)[..h];
            for k in 0..h {
                tanh_c[k] = tanh(c[k]);
                h_next[k] = o[k] * tanh_c[k];
            }
        }
    }

    /// LRP of one step (`docs/rules.md`, LSTM cell): `h = o * tanh(c)` by
    /// the gate rule; `c_t = f c_{t-1} + i g` as an accumulation step; the
    /// products by the gate rule; `g`'s pre-activation as a projection step
    /// over `x_t` and `h_{t-1}`; and, when the gate rule feeds gates, the
    /// same for `i`, `f`, `o`.
    #[inline(always)]
    fn lrp_step(&self, step: Step<'_, T>, lrp: StepLrp<'_, '_, T>) {
        let StepLrp {
            relevance,
            x: mut relevance_x,
            previous: mut relevance_previous,
            rules,
            scratch,
            mut steps,
        } = lrp;
        let (h, active) = (self.w_hh.ncols(), step.x.cols());
        let (output_product, forget_product, input_product) = (
            rules.product(GATES[O]),
            rules.product(GATES[F]),
            rules.product(GATES[I]),
        );
        let gates = step.record.part(4 * h, 4 * h);
        let gate = |k: usize| gates.part(k * h, h);
        let [mut r_c, mut r_i, mut r_f, mut r_g, mut r_o, t0, t1, t2, t3] = scratch.blocks([h; 9], active);
        // h_t = o * tanh(c_t); tanh passes relevance unchanged, and the cell
        // state also hears from the step after.
        output_product.split_block(
            gate(O),
            step.record.part(8 * h, h),
            relevance.h,
            r_o.part(0, h),
            r_c.part(0, h),
        );
        r_c.add(relevance.memory);
        // c_t = f * c_{t-1} + i * g.
        let update = CellUpdate {
            input: gate(I),
            forget: gate(F),
            candidate: gate(G),
            previous: step.previous.memory,
            next: step.next.memory,
        };
        let out = CellUpdateRelevance {
            input: r_i.part(0, h),
            forget: r_f.part(0, h),
            candidate: r_g.part(0, h),
            previous: relevance_previous.memory.part(0, h),
            scratch: [t0, t1, t2, t3],
        };
        update.lrp(rules, r_c.as_block(), out, &mut steps);

        // Pre-activations read x_t and h_{t-1}: one step each, N = E + H.
        // Gate relevance passes the sigmoid unchanged; a gate whose
        // product's rule never feeds it (signal-take-all) is skipped.
        let feeds = [
            input_product.gate_receives_relevance(),
            forget_product.gate_receives_relevance(),
            true,
            output_product.gate_receives_relevance(),
        ];
        let r_gate = [&r_i, &r_f, &r_g, &r_o];
        for k in [G, I, F, O] {
            if !feeds[k] {
                continue;
            }
            let rule = if k == G {
                rules.candidate(GATES[k])
            } else {
                rules.projection(GATES[k])
            };
            let groups = [
                dense(step.x, self.block(&self.w_ih, k)),
                dense(step.previous.h, self.block(&self.w_hh, k)),
            ];
            steps.linear(
                rule,
                &groups,
                Some(Block::broadcast(&self.bias.as_slice()[k * h..(k + 1) * h], active)),
                step.record.part(k * h, h),
                r_gate[k].as_block(),
                &mut [relevance_x.part(0, self.w_ih.ncols()), relevance_previous.h.part(0, h)],
            );
        }
    }

    /// Backpropagation through one step: the pre-activations' gradient per
    /// sequence, then `W_hhᵀ d_pre` for the previous state.
    #[inline(always)]
    fn gradient_step(&self, step: Step<'_, T>, grad: StepGradient<'_, T>) {
        let StepGradient {
            next: grad,
            projection: mut grad_projection,
            previous: mut grad_previous,
            ..
        } = grad;
        let h = self.w_hh.ncols();
        for b in 0..step.x.cols() {
            let record = step.record.column(b);
            let (p, g, tc) = (&record[..4 * h], &record[4 * h..8 * h], &record[8 * h..9 * h]);
            let slope = |k: usize| self.activation.derivative(p[k], g[k]);
            let (dh, dc_next) = (&grad.h.column(b)[..h], &grad.memory.column(b)[..h]);
            let c_prev = &step.previous.memory.column(b)[..h];
            let d = &mut grad_projection.column_mut(b)[..4 * h];
            let dc_prev = &mut grad_previous.memory.column_mut(b)[..h];
            for k in 0..h {
                let (i, f, gg, o) = (g[I * h + k], g[F * h + k], g[G * h + k], g[O * h + k]);
                let dc = dc_next[k] + dh[k] * o * (T::one() - tc[k] * tc[k]);
                dc_prev[k] = dc * f;
                d[I * h + k] = dc * gg * slope(I * h + k);
                d[F * h + k] = dc * c_prev[k] * slope(F * h + k);
                d[G * h + k] = dc * i * (T::one() - gg * gg);
                d[O * h + k] = dh[k] * tc[k] * slope(O * h + k);
            }
        }
        add_transposed_product(grad_previous.h.part(0, h), &self.w_hh, grad_projection.as_block());
    }

    fn operations(&self) -> Vec<Operation> {
        operations()
    }
}
