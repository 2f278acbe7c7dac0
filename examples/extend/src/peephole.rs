//! A peephole LSTM (Gers & Schmidhuber 2000): the LSTM whose gates also
//! read the cell state, `i` and `f` the previous one, `o` the new one.
//!
//! ```text
//! i   = σ(W_i x_t + U_i h_{t-1} + p_i ⊙ c_{t-1} + b_i)
//! f   = σ(W_f x_t + U_f h_{t-1} + p_f ⊙ c_{t-1} + b_f)
//! g   = tanh(W_g x_t + U_g h_{t-1} + b_g)
//! c_t = f ⊙ c_{t-1} + i ⊙ g
//! o   = σ(W_o x_t + U_o h_{t-1} + p_o ⊙ c_t + b_o)
//! h_t = o ⊙ tanh(c_t)
//! ```
//!
//! ## LRP
//! The LSTM's rules at the LSTM's sites. A gate's pre-activation is one
//! linear step over three groups, `x_t`, `h_{t-1}` and the cell state it
//! reads through the diagonal peephole (`BlockConnection::Diagonal`), so a
//! gate that receives relevance hands some of it to a cell state: `o`'s
//! step runs before `c_t` is split and adds into `R(c_t)`; `i`'s and `f`'s
//! add into what goes back to `c_{t-1}`. Under signal-take-all the gates
//! receive nothing and the peepholes play no part.

use lrp_core::{Block, BlockConnection, BlockInput, Float};
use lrp_layers::Operation;
use lrp_models::activation::{sigmoid, tanh};
use lrp_models::{add_product, add_transposed_product, dense, expect_shape, operations};
use lrp_models::{
    CellShape, CellUpdate, CellUpdateRelevance, Error, Step, StepCell, StepForward, StepGradient, StepLrp,
};
use nalgebra::{DMatrix, DVector};

/// Gate blocks of the fused matrices, PyTorch order, and their sites.
const I: usize = 0;
const F: usize = 1;
const G: usize = 2;
const O: usize = 3;
const GATES: [&str; 4] = ["i", "f", "g", "o"];

/// One direction of a peephole LSTM layer.
///
/// ## Parameters
/// - `w_ih`: `[4H, E]`, gate blocks i, f, g, o; `w_hh`: `[4H, H]`
/// - `bias`: `[4H]`, `b_ih + b_hh`
/// - `peepholes`: `p_i`, `p_f`, `p_o`, `[H]` each
///
/// The record per step is the LSTM's: pre-activations `[4H]` (peephole
/// terms included), gates `[4H]`, `tanh(c_t)` `[H]`.
#[derive(Debug, Clone, PartialEq)]
pub struct PeepholeCell<T: Float> {
    w_ih: DMatrix<T>,
    w_hh: DMatrix<T>,
    bias: DVector<T>,
    peepholes: [DVector<T>; 3],
}

impl<T: Float> PeepholeCell<T> {
    /// A cell from its weights; shapes are checked.
    pub fn new(
        w_ih: DMatrix<T>,
        w_hh: DMatrix<T>,
        bias: DVector<T>,
        peepholes: [DVector<T>; 3],
    ) -> Result<Self, Error> {
        let h = w_hh.ncols();
        expect_shape("w_hh", &[4 * h, h], &[w_hh.nrows(), h])?;
        expect_shape("w_ih", &[4 * h, w_ih.ncols()], &[w_ih.nrows(), w_ih.ncols()])?;
        expect_shape("bias", &[4 * h], &[bias.len()])?;
        for p in &peepholes {
            expect_shape("peephole", &[h], &[p.len()])?;
        }
        Ok(Self {
            w_ih,
            w_hh,
            bias,
            peepholes,
        })
    }

    /// The groups of gate `k`'s pre-activation: `x_t`, `h_{t-1}`, and the
    /// cell state `state` through peephole `p`.
    fn groups<'a>(&'a self, k: usize, step: &Step<'a, T>, p: usize, state: Block<'a, T>) -> [BlockInput<'a, T>; 3] {
        let (h, connection) = (
            self.w_hh.ncols(),
            BlockConnection::Diagonal(self.peepholes[p].as_slice()),
        );
        let (w, u) = (self.w_ih.rows(k * h, h), self.w_hh.rows(k * h, h));
        [
            dense(step.x, w),
            dense(step.previous.h, u),
            BlockInput {
                input: state,
                connection,
            },
        ]
    }
}

impl<T: Float> StepCell<T> for PeepholeCell<T> {
    fn kind(&self) -> &str {
        "peephole-lstm"
    }

    fn shape(&self) -> CellShape {
        let h = self.w_hh.ncols();
        CellShape::new(self.w_ih.ncols(), h, 4 * h).memory(h).record(9 * h)
    }

    fn input_weights(&self) -> (&DMatrix<T>, &[T]) {
        (&self.w_ih, self.bias.as_slice())
    }

    fn step(&self, mut s: StepForward<'_, T>) {
        let (h, [p_i, p_f, p_o]) = (self.w_hh.ncols(), &self.peepholes);
        add_product(s.record.part(0, 4 * h), &self.w_hh, s.previous.h);
        for b in 0..s.record.cols() {
            let (pre, rest) = s.record.column_mut(b).split_at_mut(4 * h);
            let (gates, tanh_c) = rest.split_at_mut(4 * h);
            let c_prev = s.previous.memory.column(b);
            let c = s.next.memory.column_mut(b);
            for k in 0..h {
                pre[I * h + k] += p_i[k] * c_prev[k];
                pre[F * h + k] += p_f[k] * c_prev[k];
                let (i, f, g) = (sigmoid(pre[I * h + k]), sigmoid(pre[F * h + k]), tanh(pre[G * h + k]));
                c[k] = f * c_prev[k] + i * g;
                pre[O * h + k] += p_o[k] * c[k];
                (gates[I * h + k], gates[F * h + k], gates[G * h + k]) = (i, f, g);
                (gates[O * h + k], tanh_c[k]) = (sigmoid(pre[O * h + k]), tanh(c[k]));
            }
            for (k, h_next) in s.next.h.column_mut(b).iter_mut().enumerate() {
                *h_next = gates[O * h + k] * tanh_c[k];
            }
        }
    }

    fn lrp_step(&self, step: Step<'_, T>, mut lrp: StepLrp<'_, '_, T>) {
        let (h, e, active, rules) = (self.w_hh.ncols(), self.w_ih.ncols(), step.x.cols(), lrp.rules);
        let product = |k: usize| rules.product(GATES[k]);
        let (gate, pre) = (
            |k: usize| step.record.part((4 + k) * h, h),
            |k: usize| step.record.part(k * h, h),
        );
        let bias = |k: usize| Some(Block::broadcast(&self.bias.as_slice()[k * h..(k + 1) * h], active));
        let [mut r_c, mut r_i, mut r_f, mut r_g, mut r_o, t0, t1, t2, t3] = lrp.scratch.blocks([h; 9], active);
        // h = o * tanh(c); c_t also hears from the step after, and from o.
        let r_tanh_c = r_c.part(0, h);
        product(O).split_block(
            gate(O),
            step.record.part(8 * h, h),
            lrp.relevance.h,
            r_o.part(0, h),
            r_tanh_c,
        );
        r_c.add(lrp.relevance.memory);
        if product(O).gate_receives_relevance() {
            let groups = self.groups(O, &step, 2, step.next.memory);
            let targets = &mut [lrp.x.part(0, e), lrp.previous.h.part(0, h), r_c.part(0, h)];
            lrp.steps
                .linear(rules.projection("o"), &groups, bias(O), pre(O), r_o.as_block(), targets);
        }
        let (input, forget, candidate) = (gate(I), gate(F), gate(G));
        let (previous, next) = (step.previous.memory, step.next.memory);
        let update = CellUpdate {
            input,
            forget,
            candidate,
            previous,
            next,
        };
        let (input, forget, candidate) = (r_i.part(0, h), r_f.part(0, h), r_g.part(0, h));
        let (previous, scratch) = (lrp.previous.memory.part(0, h), [t0, t1, t2, t3]);
        let out = CellUpdateRelevance {
            input,
            forget,
            candidate,
            previous,
            scratch,
        };
        update.lrp(rules, r_c.as_block(), out, &mut lrp.steps);
        let groups = &self.groups(G, &step, 0, step.previous.memory)[..2];
        let targets = &mut [lrp.x.part(0, e), lrp.previous.h.part(0, h)];
        lrp.steps
            .linear(rules.candidate("g"), groups, bias(G), pre(G), r_g.as_block(), targets);
        for (k, r) in [(I, &r_i), (F, &r_f)] {
            if product(k).gate_receives_relevance() {
                let groups = self.groups(k, &step, k, step.previous.memory);
                let targets = &mut [
                    lrp.x.part(0, e),
                    lrp.previous.h.part(0, h),
                    lrp.previous.memory.part(0, h),
                ];
                lrp.steps.linear(
                    rules.projection(GATES[k]),
                    &groups,
                    bias(k),
                    pre(k),
                    r.as_block(),
                    targets,
                );
            }
        }
    }

    fn gradient_step(&self, step: Step<'_, T>, mut grad: StepGradient<'_, T>) {
        let (h, [p_i, p_f, p_o]) = (self.w_hh.ncols(), &self.peepholes);
        let slope = |s: T| s * (T::one() - s);
        for b in 0..step.x.cols() {
            let (g, tc) = (&step.record.column(b)[4 * h..8 * h], &step.record.column(b)[8 * h..]);
            let (dh, dc_next, c_prev) = (
                grad.next.h.column(b),
                grad.next.memory.column(b),
                step.previous.memory.column(b),
            );
            let (d, dc_prev) = (grad.projection.column_mut(b), grad.previous.memory.column_mut(b));
            for k in 0..h {
                let (i, f, gg, o) = (g[I * h + k], g[F * h + k], g[G * h + k], g[O * h + k]);
                d[O * h + k] = dh[k] * tc[k] * slope(o);
                let dc = dc_next[k] + dh[k] * o * (T::one() - tc[k] * tc[k]) + d[O * h + k] * p_o[k];
                d[I * h + k] = dc * gg * slope(i);
                d[F * h + k] = dc * c_prev[k] * slope(f);
                d[G * h + k] = dc * i * (T::one() - gg * gg);
                dc_prev[k] = dc * f + d[I * h + k] * p_i[k] + d[F * h + k] * p_f[k];
            }
        }
        add_transposed_product(grad.previous.h.part(0, h), &self.w_hh, grad.projection.as_block());
    }

    fn operations(&self) -> Vec<Operation> {
        operations(&GATES, "g", &["o", "f", "i"])
    }
}
