use lrp_core::linalg::gemm;
use lrp_core::{Block, BlockConnection, BlockInput, BlockStep, Float, Workspace};
use lrp_layers::{LayerRules, Operation};
use nalgebra::{DMatrix, DVector};

use super::{
    column, column_part, project_inputs, redistribute_sum, step_block, step_block_mut, sum, tanh, Leftovers,
    RecurrentCell,
};
use crate::buffers;
use crate::config::RecurrentActivation;
use crate::packing::Packing;
use crate::tensors::Manifest;
use crate::Error;

/// Gate blocks in the fused matrices, PyTorch order.
const R: usize = 0;
const Z: usize = 1;
const N: usize = 2;
/// The gates' names in the order of the fused matrices, for rule sites (the
/// reset gate, folded into `n`'s weights, has no site of its own).
pub(crate) const GATES: [&str; 3] = ["r", "z", "n"];
/// The products' names for rule sites: `(1 - z) * n`, then `z * h_{t-1}`.
pub(crate) const PRODUCTS: [&str; 2] = ["1-z", "z"];

/// One direction of a GRU layer (`nn.GRU` semantics):
///
/// ```text
/// r = a(W_ir x + b_ir + W_hr h + b_hr)
/// z = a(W_iz x + b_iz + W_hz h + b_hz)
/// n = tanh(W_in x + b_in + r * (W_hn h + b_hn))
/// h_t = (1 - z) * n + z * h_{t-1}
/// ```
///
/// ## Parameters
/// - `w_ih`: `[3H, E]`, gate blocks r, z, n
/// - `w_hh`: `[3H, H]`
/// - `b_ih`, `b_hh`: `[3H]` (kept apart: `b_hn` sits inside `r * (...)`)
/// - `a`, the gates' activation: `σ` unless
///   [`GruCell::with_recurrent_activation`] says otherwise
///
/// The variant that resets before the product (Keras `reset_after=False`)
/// is [`super::GruResetBeforeCell`].
#[derive(Debug, Clone, PartialEq)]
pub struct GruCell<T: Float> {
    pub(crate) w_ih: DMatrix<T>,
    pub(crate) w_hh: DMatrix<T>,
    pub(crate) b_ih: DVector<T>,
    pub(crate) b_hh: DVector<T>,
    pub(crate) activation: RecurrentActivation,
}

/// The forward pass of one GRU direction over a packed batch, in
/// processing order.
///
/// ## Shapes
/// - `pre`: `[3H, N]` pre-activations of r, z and n (for n:
///   `W_in x + b_in + r * hn`)
/// - `gates`: `[3H, N]` activations r, z, n
/// - `hn`: `[H, N]`, `W_hn h_{t-1} + b_hn`
/// - `h`: `[H, N]`
#[derive(Debug, Clone)]
pub struct GruTrace<T: Float> {
    pre: DMatrix<T>,
    gates: DMatrix<T>,
    hn: DMatrix<T>,
    h: DMatrix<T>,
}

/// The trace's memory goes back to this thread's free list for the next
/// batch (see `buffers`).
impl<T: Float> Drop for GruTrace<T> {
    fn drop(&mut self) {
        for m in [&mut self.pre, &mut self.gates, &mut self.hn, &mut self.h] {
            buffers::recycle_in_place(m);
        }
    }
}

impl<T: Float> GruCell<T> {
    /// A cell from its weights, PyTorch gate order r, z, n: `w_ih` `[3H, E]`,
    /// `w_hh` `[3H, H]`, `b_ih` and `b_hh` `[3H]`.
    pub fn new(w_ih: DMatrix<T>, w_hh: DMatrix<T>, b_ih: DVector<T>, b_hh: DVector<T>) -> Result<Self, Error> {
        let h = w_hh.ncols();
        let checks = [
            ("w_hh", vec![3 * h, h], vec![w_hh.nrows(), h]),
            ("w_ih", vec![3 * h, w_ih.ncols()], vec![w_ih.nrows(), w_ih.ncols()]),
            ("b_ih", vec![3 * h], vec![b_ih.len()]),
            ("b_hh", vec![3 * h], vec![b_hh.len()]),
        ];
        for (name, expected, found) in checks {
            if expected != found {
                return Err(Error::TensorShape {
                    name: name.into(),
                    expected,
                    found,
                });
            }
        }
        Ok(Self {
            w_ih,
            w_hh,
            b_ih,
            b_hh,
            activation: RecurrentActivation::Sigmoid,
        })
    }

    /// This cell with `activation` on its gates r and z (the candidate
    /// keeps tanh). LRP reads only the gate values, so only the forward
    /// pass and the gradient change.
    pub fn with_recurrent_activation(mut self, activation: RecurrentActivation) -> Self {
        self.activation = activation;
        self
    }

    /// The forward pass, inlined into [`lrp_core::simd::wide`]'s wider code.
    #[inline(always)]
    fn forward_inline(&self, packing: &Packing, input: &DMatrix<T>) -> GruTrace<T> {
        let (h, n) = (self.w_hh.ncols(), input.ncols());
        let mut tr = GruTrace {
            pre: project_inputs(&self.w_ih, self.b_ih.as_slice(), input),
            // Every column is some step of some sequence: all written below.
            gates: buffers::overwritten(3 * h, n),
            hn: buffers::overwritten(h, n),
            h: buffers::overwritten(h, n),
        };
        let mut recurrent = DMatrix::<T>::zeros(3 * h, packing.sequences());
        for t in 0..packing.steps() {
            let cols = packing.step_columns(t);
            let active = cols.len();
            let prev = packing.previous_start(t);
            let mut rec = recurrent.columns_mut(0, active);
            for mut col in rec.column_iter_mut() {
                col.copy_from(&self.b_hh);
            }
            if let Some(from) = prev {
                gemm(
                    &mut rec,
                    T::one(),
                    &self.w_hh,
                    false,
                    &tr.h.columns(from, active),
                    T::one(),
                );
            }
            for (slot, col) in cols.enumerate() {
                let rec = column(&recurrent, slot);
                let pre = &mut tr.pre.as_mut_slice()[col * 3 * h..(col + 1) * 3 * h];
                let gates = &mut tr.gates.as_mut_slice()[col * 3 * h..(col + 1) * 3 * h];
                let hn = &mut tr.hn.as_mut_slice()[col * h..(col + 1) * h];
                let (before, from_col) = tr.h.as_mut_slice().split_at_mut(col * h);
                let h_next = &mut from_col[..h];
                let h_prev = prev.map(|from| &before[(from + slot) * h..(from + slot + 1) * h]);
                for k in 0..2 * h {
                    pre[k] += rec[k];
                }
                self.activation.apply_all(&pre[..2 * h], &mut gates[..2 * h]);
                for k in 0..h {
                    hn[k] = rec[N * h + k];
                    pre[N * h + k] += gates[R * h + k] * hn[k];
                }
                for k in 0..h {
                    let n = tanh(pre[N * h + k]);
                    let z = gates[Z * h + k];
                    gates[N * h + k] = n;
                    h_next[k] = (T::one() - z) * n + h_prev.map_or(T::zero(), |hp| z * hp[k]);
                }
            }
        }
        tr
    }

    /// This cell's tensors in a PyTorch `nn.GRU`: direction `reverse` of
    /// layer `layer` (`encoder.weight_ih_l{layer}[_reverse]` `[3H, E]`,
    /// `weight_hh` `[3H, H]`, `bias_ih`, `bias_hh` `[3H]`), in the order
    /// the model reads them.
    pub fn pytorch_tensors(layer: usize, reverse: bool, input: usize, hidden: usize) -> Manifest {
        super::pytorch_recurrent_tensors(layer, reverse, 3, input, hidden)
    }

    fn block<'a>(&self, m: &'a DMatrix<T>, k: usize) -> nalgebra::DMatrixView<'a, T> {
        let h = self.w_hh.ncols();
        m.rows(k * h, h)
    }
}

impl<T: Float> RecurrentCell<T> for GruCell<T> {
    type Trace = GruTrace<T>;

    fn kind(&self) -> &str {
        "gru"
    }

    fn input_size(&self) -> usize {
        self.w_ih.ncols()
    }

    fn hidden_size(&self) -> usize {
        self.w_hh.ncols()
    }

    /// The input projections of all steps in one product; per step one
    /// product `W_hh [h_{t-1}] + b_hh` for the sequences running (`b_hh` goes
    /// with it, since `b_hn` sits inside `r * (...)`).
    fn forward(&self, packing: &Packing, input: &DMatrix<T>) -> GruTrace<T> {
        lrp_core::simd::wide(|| self.forward_inline(packing, input))
    }

    fn hidden<'t>(&self, trace: &'t GruTrace<T>) -> &'t DMatrix<T> {
        &trace.h
    }

    fn is_finite(&self, trace: &GruTrace<T>) -> bool {
        super::all_finite(trace.pre.as_slice())
    }

    /// LRP through the batch (`docs/rules.md`, GRU cell). Per step, from the
    /// last: `h_t = (1 - z) * n + z * h_{t-1}` as an accumulation step; the
    /// two products by the gate rule; `n`'s pre-activation as a projection
    /// step over `x_t` and `h_{t-1}`, with the reset gate folded into the
    /// recurrent weights (per sequence) and the bias `b_in + r * b_hn`; and,
    /// when the gate rule feeds gates, `z`'s pre-activation likewise.
    fn lrp(
        &self,
        packing: &Packing,
        tr: &GruTrace<T>,
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
            let (candidate_projection, update_projection) = (rules.projection(GATES[N]), rules.projection(GATES[Z]));
            let accumulation = rules.accumulation();
            let (new_product, kept_product) = (rules.product(PRODUCTS[0]), rules.product(PRODUCTS[1]));
            let feed_gates = new_product.gate_receives_relevance() || kept_product.gate_receives_relevance();
            let b_in = &self.b_ih.as_slice()[N * h..(N + 1) * h];
            let b_hn = &self.b_hh.as_slice()[N * h..(N + 1) * h];
            let b_z: Vec<T> = (0..h).map(|k| self.b_ih[Z * h + k] + self.b_hh[Z * h + k]).collect();

            // Per-step buffers `[H, B]`, column `slot` the sequence in that slot.
            let zero = || DMatrix::<T>::zeros(h, batch);
            let mut r_h_rec = zero();
            let (mut r_h, mut one_minus_z, mut kept_n, mut kept_h) = (zero(), zero(), zero(), zero());
            let (mut r_kept_n, mut r_kept_h, mut r_n) = (zero(), zero(), zero());
            let (mut r_z_new, mut r_z_old, mut n_bias) = (zero(), zero(), zero());
            let h_zero = zero();

            for t in (0..packing.steps()).rev() {
                let cols = packing.step_columns(t);
                let active = cols.len();
                let running_on = packing.continuing(t);
                let prev = packing.previous_start(t);
                let h_prev_of = |slot: usize| prev.map_or(column(&h_zero, slot), |from| column(&tr.h, from + slot));
                for (slot, col) in cols.clone().enumerate() {
                    let gate = |k: usize| column_part(&tr.gates, col, k * h, h);
                    let h_prev = h_prev_of(slot);
                    let range = slot * h..(slot + 1) * h;
                    let r_h = &mut r_h.as_mut_slice()[range.clone()];
                    r_h.copy_from_slice(column(relevance_out, col));
                    if slot < running_on {
                        for (r, &from_next) in r_h.iter_mut().zip(column(&r_h_rec, slot)) {
                            *r += from_next;
                        }
                    }
                    let one_minus_z = &mut one_minus_z.as_mut_slice()[range.clone()];
                    let kept_n = &mut kept_n.as_mut_slice()[range.clone()];
                    let kept_h = &mut kept_h.as_mut_slice()[range.clone()];
                    let n_bias = &mut n_bias.as_mut_slice()[range];
                    for k in 0..h {
                        one_minus_z[k] = T::one() - gate(Z)[k];
                        kept_n[k] = one_minus_z[k] * gate(N)[k];
                        kept_h[k] = gate(Z)[k] * h_prev[k];
                        n_bias[k] = b_in[k] + gate(R)[k] * b_hn[k];
                    }
                }

                // h_t = (1 - z) * n + z * h_{t-1}: one linear step, N = 2H.
                redistribute_sum(
                    accumulation,
                    &kept_n,
                    &kept_h,
                    step_block(&tr.h, 0, h, cols.clone()),
                    &r_h,
                    &mut r_kept_n,
                    &mut r_kept_h,
                    &mut leftovers.unexplained,
                    workspace,
                );
                for (slot, col) in cols.clone().enumerate() {
                    let gate = |k: usize| column_part(&tr.gates, col, k * h, h);
                    let range = slot * h..(slot + 1) * h;
                    new_product.split(
                        column(&one_minus_z, slot),
                        gate(N),
                        column(&r_kept_n, slot),
                        &mut r_z_new.as_mut_slice()[range.clone()],
                        &mut r_n.as_mut_slice()[range.clone()],
                    );
                    // Overwrites the recurrence's relevance to h_{t-1}; the
                    // projections below add theirs.
                    kept_product.split(
                        gate(Z),
                        h_prev_of(slot),
                        column(&r_kept_h, slot),
                        &mut r_z_old.as_mut_slice()[range.clone()],
                        &mut r_h_rec.as_mut_slice()[range],
                    );
                }

                // n's pre-activation, the reset gate folded into W_hn and b_hn.
                let h_prev = match prev {
                    Some(from) => step_block(&tr.h, 0, h, from..from + active),
                    None => step_block(&h_zero, 0, h, 0..active),
                };
                let x = step_block(input, 0, e, cols.clone());
                let groups = [
                    BlockInput {
                        input: x,
                        connection: BlockConnection::Dense(self.block(&self.w_ih, N)),
                    },
                    BlockInput {
                        input: h_prev,
                        connection: BlockConnection::RowScaled {
                            weights: self.block(&self.w_hh, N),
                            scale: step_block(&tr.gates, R * h, h, cols.clone()),
                        },
                    },
                ];
                let step = BlockStep {
                    groups: &groups,
                    bias: Some(step_block(&n_bias, 0, h, 0..active)),
                    output: step_block(&tr.pre, N * h, h, cols.clone()),
                };
                candidate_projection.redistribute_block(
                    &step,
                    step_block(&r_n, 0, h, 0..active),
                    &mut [
                        step_block_mut(relevance_in, 0, e, cols.clone()),
                        step_block_mut(&mut r_h_rec, 0, h, 0..active),
                    ],
                    &mut leftovers.unexplained[..active],
                    workspace,
                );

                if feed_gates {
                    // Both products' gate shares reach z's pre-activation
                    // (1 - z = σ(-pre_z) passes relevance unchanged too).
                    for (a, &b) in r_z_new
                        .columns_mut(0, active)
                        .iter_mut()
                        .zip(r_z_old.columns(0, active).iter())
                    {
                        *a += b;
                    }
                    let groups = [
                        BlockInput {
                            input: x,
                            connection: BlockConnection::Dense(self.block(&self.w_ih, Z)),
                        },
                        BlockInput {
                            input: h_prev,
                            connection: BlockConnection::Dense(self.block(&self.w_hh, Z)),
                        },
                    ];
                    let step = BlockStep {
                        groups: &groups,
                        bias: Some(Block::broadcast(&b_z, active)),
                        output: step_block(&tr.pre, Z * h, h, cols.clone()),
                    };
                    update_projection.redistribute_block(
                        &step,
                        step_block(&r_z_new, 0, h, 0..active),
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
                    leftovers.initial_state[slot] += sum(column(&r_h_rec, slot));
                }
            }
        })
    }

    /// Backpropagation through time; see `LstmCell::gradient`.
    fn gradient(
        &self,
        packing: &Packing,
        tr: &GruTrace<T>,
        _input: &DMatrix<T>,
        grad_out: &DMatrix<T>,
        grad_in: &mut DMatrix<T>,
    ) {
        // The element-wise work compiled for AVX2/FMA when the CPU has them.
        lrp_core::simd::wide(|| {
            let (h, batch) = (self.w_hh.ncols(), packing.sequences());
            let mut d_gi = buffers::overwritten(3 * h, grad_out.ncols());
            let mut d_gh = DMatrix::<T>::zeros(3 * h, batch);
            let mut dh_rec = DMatrix::<T>::zeros(h, batch);
            let mut dh_z = DMatrix::<T>::zeros(h, batch);
            let mut dh = vec![T::zero(); h];
            for t in (0..packing.steps()).rev() {
                let cols = packing.step_columns(t);
                let active = cols.len();
                let running_on = packing.continuing(t);
                let prev = packing.previous_start(t);
                for (slot, col) in cols.clone().enumerate() {
                    for (k, d) in dh.iter_mut().enumerate() {
                        *d = grad_out[(k, col)]
                            + if slot < running_on {
                                dh_rec[(k, slot)]
                            } else {
                                T::zero()
                            };
                    }
                    let g = column(&tr.gates, col);
                    let p = column(&tr.pre, col);
                    let hn = column(&tr.hn, col);
                    let h_prev = prev.map(|from| column(&tr.h, from + slot));
                    let d = &mut d_gi.as_mut_slice()[col * 3 * h..(col + 1) * 3 * h];
                    let d_rec = &mut d_gh.as_mut_slice()[slot * 3 * h..(slot + 1) * 3 * h];
                    let carry = &mut dh_z.as_mut_slice()[slot * h..(slot + 1) * h];
                    for k in 0..h {
                        let (r, z, n) = (g[R * h + k], g[Z * h + k], g[N * h + k]);
                        let hp = h_prev.map_or(T::zero(), |hp| hp[k]);
                        let dn_pre = dh[k] * (T::one() - z) * (T::one() - n * n);
                        let dz_pre = dh[k] * (hp - n) * self.activation.derivative(p[Z * h + k], z);
                        let dr_pre = dn_pre * hn[k] * self.activation.derivative(p[R * h + k], r);
                        d[R * h + k] = dr_pre;
                        d[Z * h + k] = dz_pre;
                        d[N * h + k] = dn_pre;
                        d_rec[R * h + k] = dr_pre;
                        d_rec[Z * h + k] = dz_pre;
                        d_rec[N * h + k] = dn_pre * r;
                        carry[k] = dh[k] * z;
                    }
                }
                if t > 0 {
                    let mut next = dh_rec.columns_mut(0, active);
                    next.copy_from(&dh_z.columns(0, active));
                    gemm(
                        &mut next,
                        T::one(),
                        &self.w_hh,
                        true,
                        &d_gh.columns(0, active),
                        T::one(),
                    );
                }
            }
            gemm(grad_in, T::one(), &self.w_ih, true, &d_gi, T::one());
            buffers::recycle(d_gi);
        })
    }

    /// No projection `r`: the reset gate is folded into `n`'s step.
    fn operations(&self) -> Vec<Operation> {
        super::operations(&GATES[1..], &PRODUCTS)
    }

    fn rule_names(&self, rules: &LayerRules<'_, T>) -> [String; 3] {
        [
            super::distinct(GATES[1..].iter().map(|&gate| rules.projection(gate).name())),
            rules.accumulation().name().to_string(),
            super::distinct(PRODUCTS.iter().map(|&gate| rules.product(gate).name())),
        ]
    }
}
