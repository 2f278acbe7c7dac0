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

use lrp_core::{Block, BlockConnection, BlockInput, BlockMut, Float, Workspace};
use lrp_layers::Operation;
use lrp_models::activation::{sigmoid, tanh};
use lrp_models::{
    add_product, add_transposed_product, dense, project, Error, State, StateMut, Step, StepCell, StepContext,
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
        let mut checks = vec![
            ("w_hh", vec![4 * h, h], vec![w_hh.nrows(), h]),
            ("w_ih", vec![4 * h, w_ih.ncols()], vec![w_ih.nrows(), w_ih.ncols()]),
            ("bias", vec![4 * h], vec![bias.len()]),
        ];
        checks.extend(
            ["p_i", "p_f", "p_o"]
                .iter()
                .zip(&peepholes)
                .map(|(n, p)| (*n, vec![h], vec![p.len()])),
        );
        if let Some((name, expected, found)) = checks.into_iter().find(|(_, e, f)| e != f) {
            return Err(Error::TensorShape {
                name: name.into(),
                expected,
                found,
            });
        }
        Ok(Self {
            w_ih,
            w_hh,
            bias,
            peepholes,
        })
    }

    /// Gate `k`'s rows of a fused matrix.
    fn rows<'a>(&self, m: &'a DMatrix<T>, k: usize) -> nalgebra::DMatrixView<'a, T> {
        m.rows(k * self.w_hh.ncols(), self.w_hh.ncols())
    }

    /// The groups of gate `k`'s pre-activation: `x_t`, `h_{t-1}`, and the
    /// cell state `state` through peephole `p`.
    fn groups<'a>(&'a self, step: &Step<'a, T>, k: usize, state: Block<'a, T>, p: usize) -> [BlockInput<'a, T>; 3] {
        let peephole = BlockInput {
            input: state,
            connection: BlockConnection::Diagonal(self.peepholes[p].as_slice()),
        };
        [
            dense(step.x, self.rows(&self.w_ih, k)),
            dense(step.previous.h, self.rows(&self.w_hh, k)),
            peephole,
        ]
    }
}

impl<T: Float> StepCell<T> for PeepholeCell<T> {
    fn kind(&self) -> &str {
        "peephole-lstm"
    }
    fn input_size(&self) -> usize {
        self.w_ih.ncols()
    }
    fn hidden_size(&self) -> usize {
        self.w_hh.ncols()
    }
    fn memory_size(&self) -> usize {
        self.w_hh.ncols()
    }
    fn projection_size(&self) -> usize {
        4 * self.w_hh.ncols()
    }
    fn record_size(&self) -> usize {
        9 * self.w_hh.ncols()
    }

    fn project(&self, x: Block<'_, T>, projection: BlockMut<'_, T>) {
        project(&self.w_ih, self.bias.as_slice(), x, projection);
    }

    fn step(
        &self,
        previous: State<'_, T>,
        mut record: BlockMut<'_, T>,
        mut next: StateMut<'_, T>,
        _: &mut Workspace<T>,
    ) {
        let h = self.w_hh.ncols();
        let [p_i, p_f, p_o] = &self.peepholes;
        add_product(record.part(0, 4 * h), &self.w_hh, previous.h);
        for b in 0..record.cols() {
            let (pre, rest) = record.column_mut(b).split_at_mut(4 * h);
            let (gates, tanh_c) = rest.split_at_mut(4 * h);
            let (c_prev, c, h_next) = (
                previous.memory.column(b),
                next.memory.column_mut(b),
                next.h.column_mut(b),
            );
            for k in 0..h {
                pre[I * h + k] += p_i[k] * c_prev[k];
                pre[F * h + k] += p_f[k] * c_prev[k];
                let (i, f, g) = (sigmoid(pre[I * h + k]), sigmoid(pre[F * h + k]), tanh(pre[G * h + k]));
                c[k] = f * c_prev[k] + i * g;
                pre[O * h + k] += p_o[k] * c[k];
                let o = sigmoid(pre[O * h + k]);
                tanh_c[k] = tanh(c[k]);
                h_next[k] = o * tanh_c[k];
                (gates[I * h + k], gates[F * h + k], gates[G * h + k], gates[O * h + k]) = (i, f, g, o);
            }
        }
    }

    fn lrp_step(
        &self,
        step: Step<'_, T>,
        relevance: State<'_, T>,
        mut r_x: BlockMut<'_, T>,
        mut r_prev: StateMut<'_, T>,
        cx: &mut StepContext<'_, '_, T>,
    ) {
        let (h, e, active, rules) = (self.w_hh.ncols(), self.w_ih.ncols(), step.x.cols(), cx.rules);
        let product = |k: usize| rules.product(GATES[k]);
        let gate = |k: usize| step.record.part((4 + k) * h, h);
        let pre = |k: usize| step.record.part(k * h, h);
        let bias = |k: usize| Some(Block::broadcast(&self.bias.as_slice()[k * h..(k + 1) * h], active));
        let [mut r_c, mut fc, mut ig, mut r_fc, mut r_ig, mut r_i, mut r_f, mut r_g, mut r_o] =
            cx.scratch.blocks([h; 9], active);
        // h = o * tanh(c); c_t also hears from the step after, and from o.
        product(O).split_block(
            gate(O),
            step.record.part(8 * h, h),
            relevance.h,
            r_o.part(0, h),
            r_c.part(0, h),
        );
        r_c.add(relevance.memory);
        if product(O).gate_receives_relevance() {
            let groups = self.groups(&step, O, step.next.memory, 2);
            let targets = &mut [r_x.part(0, e), r_prev.h.part(0, h), r_c.part(0, h)];
            cx.steps.linear(
                rules.projection(GATES[O]),
                &groups,
                bias(O),
                pre(O),
                r_o.as_block(),
                targets,
            );
        }
        for b in 0..active {
            let (i, f, g, c_prev) = (
                gate(I).column(b),
                gate(F).column(b),
                gate(G).column(b),
                step.previous.memory.column(b),
            );
            let (fc, ig) = (fc.column_mut(b), ig.column_mut(b));
            for k in 0..h {
                (fc[k], ig[k]) = (f[k] * c_prev[k], i[k] * g[k]);
            }
        }
        let sum = rules.accumulation();
        let (a, b, s, r) = (fc.as_block(), ig.as_block(), step.next.memory, r_c.as_block());
        cx.steps.sum(sum, a, b, s, r, r_fc.part(0, h), r_ig.part(0, h));
        product(F).split_block(
            gate(F),
            step.previous.memory,
            r_fc.as_block(),
            r_f.part(0, h),
            r_prev.memory.part(0, h),
        );
        product(I).split_block(gate(I), gate(G), r_ig.as_block(), r_i.part(0, h), r_g.part(0, h));
        let groups = [
            dense(step.x, self.rows(&self.w_ih, G)),
            dense(step.previous.h, self.rows(&self.w_hh, G)),
        ];
        let targets = &mut [r_x.part(0, e), r_prev.h.part(0, h)];
        cx.steps.linear(
            rules.candidate(GATES[G]),
            &groups,
            bias(G),
            pre(G),
            r_g.as_block(),
            targets,
        );
        for (k, p, r) in [(I, 0, &r_i), (F, 1, &r_f)] {
            if product(k).gate_receives_relevance() {
                let groups = self.groups(&step, k, step.previous.memory, p);
                let targets = &mut [r_x.part(0, e), r_prev.h.part(0, h), r_prev.memory.part(0, h)];
                cx.steps.linear(
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

    fn gradient_step(
        &self,
        step: Step<'_, T>,
        grad: State<'_, T>,
        mut d: BlockMut<'_, T>,
        mut prev: StateMut<'_, T>,
        _: &mut Workspace<T>,
    ) {
        let h = self.w_hh.ncols();
        let [p_i, p_f, p_o] = &self.peepholes;
        let slope = |s: T| s * (T::one() - s);
        for b in 0..step.x.cols() {
            let (g, tc) = (&step.record.column(b)[4 * h..8 * h], &step.record.column(b)[8 * h..]);
            let (dh, dc_next, c_prev) = (grad.h.column(b), grad.memory.column(b), step.previous.memory.column(b));
            let (d, dc_prev) = (d.column_mut(b), prev.memory.column_mut(b));
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
        add_transposed_product(prev.h.part(0, h), &self.w_hh, d.as_block());
    }

    fn project_gradient(&self, grad_projection: Block<'_, T>, grad_x: BlockMut<'_, T>) {
        add_transposed_product(grad_x, &self.w_ih, grad_projection);
    }

    fn operations(&self) -> Vec<Operation> {
        let projections = GATES.map(|g| {
            if g == "g" {
                Operation::Candidate(g)
            } else {
                Operation::Projection(g)
            }
        });
        let products = ["o", "f", "i"].map(Operation::Product);
        projections
            .into_iter()
            .chain([Operation::Accumulation])
            .chain(products)
            .collect()
    }
}
