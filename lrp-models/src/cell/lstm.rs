use lrp_core::{Connection, Float, InputGroup, LinearStep, Relevance, Workspace};
use lrp_layers::LayerRules;
use nalgebra::{DMatrix, DVector, DVectorView, DVectorViewMut};

use super::{
    add_columns_by_position, add_into, column, column_part, position, project_inputs, run_together, sigmoid, sum, tanh,
    Leftover, Recurrence,
};

/// Gate blocks in the fused matrices, PyTorch order.
const I: usize = 0;
const F: usize = 1;
const G: usize = 2;
const O: usize = 3;
/// The gates' names in the order of the fused matrices, for rule sites.
pub(crate) const GATES: [&str; 4] = ["i", "f", "g", "o"];

/// One direction of an LSTM layer (`nn.LSTM` semantics):
///
/// ```text
/// [i; f; g; o] = [σ; σ; tanh; σ](W_ih x_t + W_hh h_{t-1} + b)
/// c_t = f * c_{t-1} + i * g
/// h_t = o * tanh(c_t)
/// ```
///
/// ## Parameters
/// - `w_ih`: `[4H, E]`, gate blocks i, f, g, o
/// - `w_hh`: `[4H, H]`
/// - `bias`: `[4H]`, `b_ih + b_hh` (the LSTM only ever uses their sum)
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct LstmCell<T: Float> {
    pub(crate) w_ih: DMatrix<T>,
    pub(crate) w_hh: DMatrix<T>,
    pub(crate) bias: DVector<T>,
}

/// The forward pass of one LSTM direction, in processing order.
///
/// ## Shapes
/// - `pre`: `[4H, T]` gate pre-activations, bias included
/// - `gates`: `[4H, T]` activations i, f, g, o
/// - `c`, `h`: `[H, T + 1]`, column 0 the zero initial state
/// - `tanh_c`: `[H, T]`, `tanh(c_t)`
#[derive(Debug, Clone)]
pub(crate) struct LstmTrace<T: Float> {
    pub(crate) reverse: bool,
    pub(crate) pre: DMatrix<T>,
    pub(crate) gates: DMatrix<T>,
    pub(crate) c: DMatrix<T>,
    pub(crate) h: DMatrix<T>,
    pub(crate) tanh_c: DMatrix<T>,
}

impl<T: Float> Recurrence<T> for LstmTrace<T> {
    fn states(&self) -> &DMatrix<T> {
        &self.h
    }

    /// Step `s`: adds the recurrent part `W_hh h_{s}` `[4H]` to the
    /// pre-activations and computes the gates, `c_{s+1}` and `h_{s+1}`.
    fn step(&mut self, s: usize, recurrent: &[T]) {
        let h = self.c.nrows();
        let pre_s = &mut self.pre.as_mut_slice()[s * 4 * h..(s + 1) * 4 * h];
        for (p, &r) in pre_s.iter_mut().zip(recurrent) {
            *p += r;
        }
        let gates_s = &mut self.gates.as_mut_slice()[s * 4 * h..(s + 1) * 4 * h];
        // One activation per contiguous block, so each loop vectorises.
        for (g, &p) in gates_s[..2 * h].iter_mut().zip(&pre_s[..2 * h]) {
            *g = sigmoid(p);
        }
        for (g, &p) in gates_s[G * h..O * h].iter_mut().zip(&pre_s[G * h..O * h]) {
            *g = tanh(p);
        }
        for (g, &p) in gates_s[O * h..].iter_mut().zip(&pre_s[O * h..]) {
            *g = sigmoid(p);
        }
        let (c_prev, c_next) = self.c.as_mut_slice().split_at_mut((s + 1) * h);
        let (c_prev, c_next) = (&c_prev[s * h..], &mut c_next[..h]);
        let tc = &mut self.tanh_c.as_mut_slice()[s * h..(s + 1) * h];
        let h_next = &mut self.h.as_mut_slice()[(s + 1) * h..(s + 2) * h];
        for k in 0..h {
            c_next[k] = gates_s[F * h + k] * c_prev[k] + gates_s[I * h + k] * gates_s[G * h + k];
            tc[k] = tanh(c_next[k]);
            h_next[k] = gates_s[O * h + k] * tc[k];
        }
    }
}

impl<T: Float> LstmCell<T> {
    pub(crate) fn hidden_size(&self) -> usize {
        self.w_hh.ncols()
    }

    /// Rows of gate block `k` of a fused `[4H, _]` matrix, as a view.
    fn block<'a>(&self, m: &'a DMatrix<T>, k: usize) -> nalgebra::DMatrixView<'a, T> {
        let h = self.hidden_size();
        m.rows(k * h, h)
    }

    /// Runs sequences of equal length together (see `run_together`); the
    /// bias is in the input projections.
    pub(crate) fn forward_batch(&self, inputs: &[&DMatrix<T>], reverse: bool) -> Vec<LstmTrace<T>> {
        let h = self.hidden_size();
        let mut traces: Vec<LstmTrace<T>> = inputs
            .iter()
            .map(|x| {
                let len = x.ncols();
                LstmTrace {
                    reverse,
                    pre: project_inputs(&self.w_ih, &self.bias, x, reverse),
                    gates: DMatrix::zeros(4 * h, len),
                    c: DMatrix::zeros(h, len + 1),
                    h: DMatrix::zeros(h, len + 1),
                    tanh_c: DMatrix::zeros(h, len),
                }
            })
            .collect();
        run_together(&self.w_hh, None, &mut traces);
        traces
    }

    /// LRP through the sequence (`docs/rules.md`, LSTM cell). Per step, from
    /// `t = T` down: `R(h_t)` = outside + recurrence; `h = o * tanh(c)` by the
    /// gate rule; `c_t = f c_{t-1} + i g` as an accumulation step; the
    /// products by the gate rule; `g`'s pre-activation as a projection step
    /// over `x_t` and `h_{t-1}`; and, when the gate rule feeds gates, the
    /// same for `i`, `f`, `o`.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn lrp(
        &self,
        tr: &LstmTrace<T>,
        input: &DMatrix<T>,
        external: &Relevance<T>,
        offset: usize,
        relevance_in: &mut Relevance<T>,
        rules: &LayerRules<'_, T>,
        workspace: &mut Workspace<T>,
    ) -> Leftover<T> {
        let h = self.hidden_size();
        let len = input.ncols();
        // Each operation's rule, looked up by site once per sequence.
        let projection = GATES.map(|gate| rules.projection(gate));
        let accumulation = rules.accumulation();
        let (output_product, forget_product, input_product) = (
            rules.product(GATES[O]),
            rules.product(GATES[F]),
            rules.product(GATES[I]),
        );

        let zero = || vec![T::zero(); h];
        // Relevance the recurrence carries back to h_{t-1} and c_{t-1}.
        let (mut r_h_prev, mut r_c_prev) = (zero(), zero());
        // Per-step buffers, allocated once per sequence.
        let (mut r_h, mut r_c, mut r_tanh_c) = (zero(), zero(), zero());
        let (mut fc, mut ig, mut r_fc, mut r_ig) = (zero(), zero(), zero(), zero());
        let (mut r_i, mut r_f, mut r_g, mut r_o) = (zero(), zero(), zero(), zero());
        let mut unexplained = T::zero();

        for s in (0..len).rev() {
            let p = position(s, len, tr.reverse);
            let gate = |k: usize| column_part(&tr.gates, s, k * h, h);
            let c_prev = column(&tr.c, s);

            // Two sources that add: outside (head, attention, layer above)
            // and the recurrence from step t+1.
            add_into(
                &mut r_h,
                &external.position(p).expect("a position of the sequence")[offset..offset + h],
                &r_h_prev,
            );
            // h_t = o * tanh(c_t); tanh passes relevance unchanged.
            output_product.split(gate(O), column(&tr.tanh_c, s), &r_h, &mut r_o, &mut r_tanh_c);
            add_into(&mut r_c, &r_c_prev, &r_tanh_c);

            // c_t = f * c_{t-1} + i * g: one linear step, N = 2H.
            for k in 0..h {
                fc[k] = gate(F)[k] * c_prev[k];
                ig[k] = gate(I)[k] * gate(G)[k];
            }
            r_fc.fill(T::zero());
            r_ig.fill(T::zero());
            let summands = [
                InputGroup {
                    input: &fc,
                    connection: Connection::Identity,
                },
                InputGroup {
                    input: &ig,
                    connection: Connection::Identity,
                },
            ];
            let step = LinearStep {
                groups: &summands,
                bias: None,
                output: column(&tr.c, s + 1),
            };
            unexplained += accumulation.redistribute(&step, &r_c, &mut [&mut r_fc, &mut r_ig], workspace);
            forget_product.split(gate(F), c_prev, &r_fc, &mut r_f, &mut r_c_prev);
            input_product.split(gate(I), gate(G), &r_ig, &mut r_i, &mut r_g);

            // Pre-activations read x_t and h_{t-1}: one step each, N = E + H.
            r_h_prev.fill(T::zero());
            let x = column(input, p);
            let h_prev = column(&tr.h, s);
            let mut project = |k: usize, r: &[T], r_h_prev: &mut [T]| {
                let groups = [
                    InputGroup {
                        input: x,
                        connection: Connection::Dense(self.block(&self.w_ih, k)),
                    },
                    InputGroup {
                        input: h_prev,
                        connection: Connection::Dense(self.block(&self.w_hh, k)),
                    },
                ];
                let step = LinearStep {
                    groups: &groups,
                    bias: Some(&self.bias.as_slice()[k * h..(k + 1) * h]),
                    output: column_part(&tr.pre, s, k * h, h),
                };
                projection[k].redistribute(
                    &step,
                    r,
                    &mut [
                        relevance_in.position_mut(p).expect("a position of the sequence"),
                        r_h_prev,
                    ],
                    workspace,
                )
            };
            unexplained += project(G, &r_g, &mut r_h_prev);
            // Gate relevance passes the sigmoid unchanged; a gate whose
            // product's rule never feeds it (signal-take-all) is skipped.
            if input_product.gate_receives_relevance() {
                unexplained += project(I, &r_i, &mut r_h_prev);
            }
            if forget_product.gate_receives_relevance() {
                unexplained += project(F, &r_f, &mut r_h_prev);
            }
            if output_product.gate_receives_relevance() {
                unexplained += project(O, &r_o, &mut r_h_prev);
            }
        }
        Leftover {
            initial_state: sum(&r_h_prev) + sum(&r_c_prev),
            unexplained,
        }
    }

    /// Backpropagation through time: the gradient of the explained score
    /// arriving at the outputs from outside (`external` rows
    /// `[offset, offset + H)`) is carried back to the inputs and added into
    /// `grad_in` `[E, T]`.
    pub(crate) fn gradient(
        &self,
        tr: &LstmTrace<T>,
        input: &DMatrix<T>,
        external: &DMatrix<T>,
        offset: usize,
        grad_in: &mut DMatrix<T>,
    ) {
        let h = self.hidden_size();
        let len = input.ncols();
        let mut d_pre = DMatrix::zeros(4 * h, len);
        let mut dh_next = DVector::zeros(h);
        let mut dc_next = vec![T::zero(); h];
        let mut dh = vec![T::zero(); h];
        for s in (0..len).rev() {
            let p = position(s, len, tr.reverse);
            add_into(&mut dh, column_part(external, p, offset, h), dh_next.as_slice());
            let g = column(&tr.gates, s);
            let c_prev = column(&tr.c, s);
            let tc = column(&tr.tanh_c, s);
            let d = &mut d_pre.as_mut_slice()[s * 4 * h..(s + 1) * 4 * h];
            for k in 0..h {
                let (i, f, gg, o) = (g[I * h + k], g[F * h + k], g[G * h + k], g[O * h + k]);
                let dc = dc_next[k] + dh[k] * o * (T::one() - tc[k] * tc[k]);
                dc_next[k] = dc * f;
                d[I * h + k] = dc * gg * i * (T::one() - i);
                d[F * h + k] = dc * c_prev[k] * f * (T::one() - f);
                d[G * h + k] = dc * i * (T::one() - gg * gg);
                d[O * h + k] = dh[k] * tc[k] * o * (T::one() - o);
            }
            let d = DVectorView::from_slice(column(&d_pre, s), 4 * h);
            let mut dh_view = DVectorViewMut::from_slice(dh_next.as_mut_slice(), h);
            dh_view.gemv_tr(T::one(), &self.w_hh, &d, T::zero());
        }
        let mut dx = DMatrix::zeros(input.nrows(), len);
        dx.gemm_tr(T::one(), &self.w_ih, &d_pre, T::zero());
        add_columns_by_position(grad_in, &dx, tr.reverse);
    }
}
