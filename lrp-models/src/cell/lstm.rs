use lrp_core::linalg::gemm;
use lrp_core::{Block, BlockConnection, BlockInput, BlockStep, Float, Workspace};
use lrp_layers::{LayerRules, Operation};
use nalgebra::{DMatrix, DVector};

use super::{
    add_recurrent_product, column, column_part, project_inputs, redistribute_sum, step_block, step_block_mut, sum,
    tanh, Leftovers, RecurrentCell,
};
use crate::buffers;
use crate::config::RecurrentActivation;
use crate::packing::Packing;
use crate::tensors::Manifest;
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
    super::operations(&GATES, &["o", "f", "i"])
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

/// The forward pass of one LSTM direction over a packed batch, in
/// processing order (the zero initial states are not stored).
///
/// ## Shapes
/// - `pre`: `[4H, N]` gate pre-activations, bias included
/// - `gates`: `[4H, N]` activations i, f, g, o
/// - `c`, `h`, `tanh_c`: `[H, N]`
#[derive(Debug, Clone)]
pub struct LstmTrace<T: Float> {
    pre: DMatrix<T>,
    gates: DMatrix<T>,
    c: DMatrix<T>,
    h: DMatrix<T>,
    tanh_c: DMatrix<T>,
}

/// The trace's memory goes back to this thread's free list for the next
/// batch (see `buffers`).
impl<T: Float> Drop for LstmTrace<T> {
    fn drop(&mut self) {
        for m in [
            &mut self.pre,
            &mut self.gates,
            &mut self.c,
            &mut self.h,
            &mut self.tanh_c,
        ] {
            buffers::recycle_in_place(m);
        }
    }
}

impl<T: Float> LstmCell<T> {
    /// A cell from its weights, PyTorch gate order i, f, g, o: `w_ih`
    /// `[4H, E]`, `w_hh` `[4H, H]`, `bias` `[4H]` (`b_ih + b_hh`).
    pub fn new(w_ih: DMatrix<T>, w_hh: DMatrix<T>, bias: DVector<T>) -> Result<Self, Error> {
        let h = w_hh.ncols();
        let shape = |name: &str, expected: Vec<usize>, found: Vec<usize>| {
            if expected == found {
                Ok(())
            } else {
                Err(Error::TensorShape {
                    name: name.into(),
                    expected,
                    found,
                })
            }
        };
        shape("w_hh", vec![4 * h, h], vec![w_hh.nrows(), h])?;
        shape("w_ih", vec![4 * h, w_ih.ncols()], vec![w_ih.nrows(), w_ih.ncols()])?;
        shape("bias", vec![4 * h], vec![bias.len()])?;
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

    /// The forward pass, inlined into [`lrp_core::simd::wide`]'s wider code.
    #[inline(always)]
    fn forward_inline(&self, packing: &Packing, input: &DMatrix<T>) -> LstmTrace<T> {
        let (h, n) = (self.w_hh.ncols(), input.ncols());
        let mut tr = LstmTrace {
            pre: project_inputs(&self.w_ih, self.bias.as_slice(), input),
            // Every column is some step of some sequence: all written below.
            gates: buffers::overwritten(4 * h, n),
            c: buffers::overwritten(h, n),
            h: buffers::overwritten(h, n),
            tanh_c: buffers::overwritten(h, n),
        };
        for t in 0..packing.steps() {
            let cols = packing.step_columns(t);
            let prev = packing.previous_start(t);
            if let Some(from) = prev {
                add_recurrent_product(&mut tr.pre, cols.clone(), &self.w_hh, &tr.h, from);
            }
            for (slot, col) in cols.enumerate() {
                let pre = column_part(&tr.pre, col, 0, 4 * h);
                let gates = &mut tr.gates.as_mut_slice()[col * 4 * h..(col + 1) * 4 * h];
                // One activation per contiguous block, so each loop vectorises.
                self.activation.apply_all(&pre[..2 * h], &mut gates[..2 * h]);
                for (g, &p) in gates[G * h..O * h].iter_mut().zip(&pre[G * h..O * h]) {
                    *g = tanh(p);
                }
                self.activation.apply_all(&pre[O * h..], &mut gates[O * h..]);
                let (i, f, g, o) = (
                    &gates[I * h..(I + 1) * h],
                    &gates[F * h..(F + 1) * h],
                    &gates[G * h..(G + 1) * h],
                    &gates[O * h..(O + 1) * h],
                );
                let (before, from_col) = tr.c.as_mut_slice().split_at_mut(col * h);
                let c_next = &mut from_col[..h];
                match prev {
                    Some(from) => {
                        let c_prev = &before[(from + slot) * h..(from + slot + 1) * h];
                        for k in 0..h {
                            c_next[k] = f[k] * c_prev[k] + i[k] * g[k];
                        }
                    }
                    // c_0 = 0.
                    None => {
                        for k in 0..h {
                            c_next[k] = i[k] * g[k];
                        }
                    }
                }
                let tc = &mut tr.tanh_c.as_mut_slice()[col * h..(col + 1) * h];
                let h_next = &mut tr.h.as_mut_slice()[col * h..(col + 1) * h];
                for k in 0..h {
                    tc[k] = tanh(c_next[k]);
                    h_next[k] = o[k] * tc[k];
                }
            }
        }
        tr
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

impl<T: Float> RecurrentCell<T> for LstmCell<T> {
    type Trace = LstmTrace<T>;

    fn kind(&self) -> &str {
        "lstm"
    }

    fn input_size(&self) -> usize {
        self.w_ih.ncols()
    }

    fn hidden_size(&self) -> usize {
        self.w_hh.ncols()
    }

    /// The input projections of all steps in one matrix product, then per
    /// step one product `W_hh [h_{t-1}]` for the sequences still running.
    fn forward(&self, packing: &Packing, input: &DMatrix<T>) -> LstmTrace<T> {
        lrp_core::simd::wide(|| self.forward_inline(packing, input))
    }

    fn hidden<'t>(&self, trace: &'t LstmTrace<T>) -> &'t DMatrix<T> {
        &trace.h
    }

    fn is_finite(&self, trace: &LstmTrace<T>) -> bool {
        super::all_finite(trace.pre.as_slice())
    }

    /// LRP through the batch (`docs/rules.md`, LSTM cell). Per step, from
    /// the last: `R(h_t)` = outside + recurrence; `h = o * tanh(c)` by the
    /// gate rule; `c_t = f c_{t-1} + i g` as an accumulation step; the
    /// products by the gate rule; `g`'s pre-activation as a projection step
    /// over `x_t` and `h_{t-1}`; and, when the gate rule feeds gates, the
    /// same for `i`, `f`, `o`. Every linear step is one block step over the
    /// sequences running at that step.
    fn lrp(
        &self,
        packing: &Packing,
        tr: &LstmTrace<T>,
        input: &DMatrix<T>,
        relevance_out: &DMatrix<T>,
        relevance_in: &mut DMatrix<T>,
        rules: &LayerRules<'_, T>,
        workspace: &mut Workspace<T>,
        leftovers: &mut Leftovers<T>,
    ) {
        // The element-wise work compiled for AVX2/FMA when the CPU has them.
        lrp_core::simd::wide(|| {
            let (h, e, batch) = (self.w_hh.ncols(), self.w_ih.ncols(), packing.sequences());
            // Each operation's rule, looked up by site once per batch.
            let projection = GATES.map(|gate| rules.projection(gate));
            let accumulation = rules.accumulation();
            let (output_product, forget_product, input_product) = (
                rules.product(GATES[O]),
                rules.product(GATES[F]),
                rules.product(GATES[I]),
            );

            // Per-step buffers `[H, B]`, allocated once per batch: column `slot`
            // is the sequence in that slot.
            let zero = || DMatrix::<T>::zeros(h, batch);
            // Relevance the recurrence carries back to h_{t-1} and c_{t-1}.
            let (mut r_h_rec, mut r_c_rec) = (zero(), zero());
            let (mut r_h, mut r_c, mut r_tanh_c) = (zero(), zero(), zero());
            let (mut fc, mut ig, mut r_fc, mut r_ig) = (zero(), zero(), zero(), zero());
            let mut r_gate = [zero(), zero(), zero(), zero()];
            // h_0 = 0 as the recurrent input of step 0 (it counts in N).
            let h_zero = zero();

            for t in (0..packing.steps()).rev() {
                let cols = packing.step_columns(t);
                let active = cols.len();
                let running_on = packing.continuing(t);
                let prev = packing.previous_start(t);
                for (slot, col) in cols.clone().enumerate() {
                    let gate = |k: usize| column_part(&tr.gates, col, k * h, h);
                    let r_h = &mut r_h.as_mut_slice()[slot * h..(slot + 1) * h];
                    let r_c = &mut r_c.as_mut_slice()[slot * h..(slot + 1) * h];
                    // Two sources that add: outside (head, attention, layer
                    // above) and the recurrence from step t+1.
                    r_h.copy_from_slice(column(relevance_out, col));
                    if slot < running_on {
                        for (r, &from_next) in r_h.iter_mut().zip(column(&r_h_rec, slot)) {
                            *r += from_next;
                        }
                    }
                    // h_t = o * tanh(c_t); tanh passes relevance unchanged.
                    let [_, _, _, r_o] = &mut r_gate;
                    let r_tc = &mut r_tanh_c.as_mut_slice()[slot * h..(slot + 1) * h];
                    output_product.split(
                        gate(O),
                        column(&tr.tanh_c, col),
                        r_h,
                        &mut r_o.as_mut_slice()[slot * h..(slot + 1) * h],
                        r_tc,
                    );
                    let from_next = column(&r_c_rec, slot);
                    for k in 0..h {
                        r_c[k] = r_tc[k] + if slot < running_on { from_next[k] } else { T::zero() };
                    }
                    let c_prev = prev.map(|from| column(&tr.c, from + slot));
                    let (fc, ig) = (
                        &mut fc.as_mut_slice()[slot * h..(slot + 1) * h],
                        &mut ig.as_mut_slice()[slot * h..(slot + 1) * h],
                    );
                    for k in 0..h {
                        fc[k] = c_prev.map_or(T::zero(), |c| gate(F)[k] * c[k]);
                        ig[k] = gate(I)[k] * gate(G)[k];
                    }
                }

                // c_t = f * c_{t-1} + i * g: one linear step, N = 2H.
                redistribute_sum(
                    accumulation,
                    &fc,
                    &ig,
                    step_block(&tr.c, 0, h, cols.clone()),
                    &r_c,
                    &mut r_fc,
                    &mut r_ig,
                    &mut leftovers.unexplained,
                    workspace,
                );
                for (slot, col) in cols.clone().enumerate() {
                    let gate = |k: usize| column_part(&tr.gates, col, k * h, h);
                    let zeros_h = column(&h_zero, slot);
                    let c_prev = prev.map_or(zeros_h, |from| column(&tr.c, from + slot));
                    let [r_i, r_f, r_g, _] = &mut r_gate;
                    forget_product.split(
                        gate(F),
                        c_prev,
                        column(&r_fc, slot),
                        &mut r_f.as_mut_slice()[slot * h..(slot + 1) * h],
                        &mut r_c_rec.as_mut_slice()[slot * h..(slot + 1) * h],
                    );
                    input_product.split(
                        gate(I),
                        gate(G),
                        column(&r_ig, slot),
                        &mut r_i.as_mut_slice()[slot * h..(slot + 1) * h],
                        &mut r_g.as_mut_slice()[slot * h..(slot + 1) * h],
                    );
                }

                // Pre-activations read x_t and h_{t-1}: one step each, N = E + H.
                r_h_rec.columns_mut(0, active).fill(T::zero());
                let h_prev = match prev {
                    Some(from) => step_block(&tr.h, 0, h, from..from + active),
                    None => step_block(&h_zero, 0, h, 0..active),
                };
                let x = step_block(input, 0, e, cols.clone());
                // Gate relevance passes the sigmoid unchanged; a gate whose
                // product's rule never feeds it (signal-take-all) is skipped.
                let feeds = [
                    input_product.gate_receives_relevance(),
                    forget_product.gate_receives_relevance(),
                    true,
                    output_product.gate_receives_relevance(),
                ];
                for k in [G, I, F, O] {
                    if !feeds[k] {
                        continue;
                    }
                    let groups = [
                        BlockInput {
                            input: x,
                            connection: BlockConnection::Dense(self.block(&self.w_ih, k)),
                        },
                        BlockInput {
                            input: h_prev,
                            connection: BlockConnection::Dense(self.block(&self.w_hh, k)),
                        },
                    ];
                    let step = BlockStep {
                        groups: &groups,
                        bias: Some(Block::broadcast(&self.bias.as_slice()[k * h..(k + 1) * h], active)),
                        output: step_block(&tr.pre, k * h, h, cols.clone()),
                    };
                    projection[k].redistribute_block(
                        &step,
                        step_block(&r_gate[k], 0, h, 0..active),
                        &mut [
                            step_block_mut(relevance_in, 0, e, cols.clone()),
                            step_block_mut(&mut r_h_rec, 0, h, 0..active),
                        ],
                        &mut leftovers.unexplained[..active],
                        workspace,
                    );
                }
            }
            if packing.steps() > 0 {
                for slot in 0..batch {
                    leftovers.initial_state[slot] += sum(column(&r_h_rec, slot)) + sum(column(&r_c_rec, slot));
                }
            }
        })
    }

    /// Backpropagation through time, per step one product `W_hh^T d_pre`
    /// for the sequences running, and one product `W_ih^T d_pre` for all
    /// steps at the end.
    fn gradient(
        &self,
        packing: &Packing,
        tr: &LstmTrace<T>,
        _input: &DMatrix<T>,
        grad_out: &DMatrix<T>,
        grad_in: &mut DMatrix<T>,
    ) {
        // The element-wise work compiled for AVX2/FMA when the CPU has them.
        lrp_core::simd::wide(|| {
            let (h, batch) = (self.w_hh.ncols(), packing.sequences());
            let mut d_pre = buffers::overwritten(4 * h, grad_out.ncols());
            let (mut dh_rec, mut dc_rec) = (DMatrix::<T>::zeros(h, batch), DMatrix::<T>::zeros(h, batch));
            let mut dh = vec![T::zero(); h];
            for t in (0..packing.steps()).rev() {
                let cols = packing.step_columns(t);
                let running_on = packing.continuing(t);
                let prev = packing.previous_start(t);
                for (slot, col) in cols.clone().enumerate() {
                    let carried = slot < running_on;
                    for (k, d) in dh.iter_mut().enumerate() {
                        *d = grad_out[(k, col)] + if carried { dh_rec[(k, slot)] } else { T::zero() };
                    }
                    let g = column(&tr.gates, col);
                    let p = column(&tr.pre, col);
                    let slope = |k: usize| self.activation.derivative(p[k], g[k]);
                    let tc = column(&tr.tanh_c, col);
                    let c_prev = prev.map(|from| column(&tr.c, from + slot));
                    let d = &mut d_pre.as_mut_slice()[col * 4 * h..(col + 1) * 4 * h];
                    let dc_next = &mut dc_rec.as_mut_slice()[slot * h..(slot + 1) * h];
                    for k in 0..h {
                        let (i, f, gg, o) = (g[I * h + k], g[F * h + k], g[G * h + k], g[O * h + k]);
                        let carried_c = if carried { dc_next[k] } else { T::zero() };
                        let dc = carried_c + dh[k] * o * (T::one() - tc[k] * tc[k]);
                        dc_next[k] = dc * f;
                        d[I * h + k] = dc * gg * slope(I * h + k);
                        d[F * h + k] = c_prev.map_or(T::zero(), |c| dc * c[k] * slope(F * h + k));
                        d[G * h + k] = dc * i * (T::one() - gg * gg);
                        d[O * h + k] = dh[k] * tc[k] * slope(O * h + k);
                    }
                }
                if t > 0 {
                    let active = cols.len();
                    let mut carry = dh_rec.columns_mut(0, active);
                    gemm(
                        &mut carry,
                        T::one(),
                        &self.w_hh,
                        true,
                        &d_pre.columns(cols.start, active),
                        T::zero(),
                    );
                }
            }
            gemm(grad_in, T::one(), &self.w_ih, true, &d_pre, T::one());
            buffers::recycle(d_pre);
        })
    }

    fn operations(&self) -> Vec<Operation> {
        operations()
    }

    fn rule_names(&self, rules: &LayerRules<'_, T>) -> [String; 3] {
        [
            super::distinct(GATES.iter().map(|&gate| rules.projection(gate).name())),
            rules.accumulation().name().to_string(),
            super::distinct(["o", "f", "i"].iter().map(|&gate| rules.product(gate).name())),
        ]
    }
}
