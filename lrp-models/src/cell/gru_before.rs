//! The GRU that resets before the recurrent product (Keras
//! `reset_after=False`, ONNX `linear_before_reset=0`, the GRU of Cho et al.
//! 2014): config `"gru_reset": "before"`.
//!
//! It differs from [`super::GruCell`] only in the candidate, which reads the
//! reset state `r * h_{t-1}` through the recurrent weights instead of
//! scaling their product:
//!
//! ```text
//! after  (GruCell):            n = tanh(W_n x + b_in + r * (U_n h_{t-1} + b_hn))
//! before (GruResetBeforeCell): n = tanh(W_n x + b_n  + U_n (r * h_{t-1}))
//! ```
//!
//! So `r * h_{t-1}` is a gate × signal product of its own, and LRP treats it
//! as one (`docs/rules.md`, "GRU, reset before"): the candidate's step
//! hands relevance to `x_t` and to `r * h_{t-1}`, and the gate rule of the
//! site `"r"` splits the latter between the reset gate and `h_{t-1}`.

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
use crate::Error;

/// Gate blocks in the fused matrices, PyTorch's order.
const R: usize = 0;
const Z: usize = 1;
const N: usize = 2;
/// The gates' names for rule sites: the pre-activations of r, z and n.
pub(crate) const GATES: [&str; 3] = ["r", "z", "n"];
/// The products' names for rule sites: `(1 - z) * n`, `z * h_{t-1}`, and
/// the reset product `r * h_{t-1}`.
pub(crate) const PRODUCTS: [&str; 3] = ["1-z", "z", "r"];

/// One direction of a GRU layer that resets before the recurrent product:
///
/// ```text
/// r = a(W_r x + U_r h_{t-1} + b_r)
/// z = a(W_z x + U_z h_{t-1} + b_z)
/// n = tanh(W_n x + b_n + U_n (r * h_{t-1}))
/// h_t = (1 - z) * n + z * h_{t-1}
/// ```
///
/// ## Parameters
/// - `w_ih`: `[3H, E]`, gate blocks r, z, n (PyTorch's order)
/// - `w_hh`: `[3H, H]`
/// - `bias`: `[3H]`, one bias per gate (input and recurrent biases, where
///   a framework has both, add: here nothing sits between them)
/// - `a`, the gates' activation: `σ` unless
///   [`GruResetBeforeCell::with_recurrent_activation`] says otherwise
#[derive(Debug, Clone, PartialEq)]
pub struct GruResetBeforeCell<T: Float> {
    pub(crate) w_ih: DMatrix<T>,
    pub(crate) w_hh: DMatrix<T>,
    pub(crate) bias: DVector<T>,
    pub(crate) activation: RecurrentActivation,
}

/// The forward pass of one direction over a packed batch, in processing
/// order.
///
/// ## Shapes
/// - `pre`: `[3H, N]` pre-activations of r, z and n, biases included
/// - `gates`: `[3H, N]` activations r, z, n
/// - `reset`: `[H, N]`, `r * h_{t-1}` (0 at a sequence's first step)
/// - `h`: `[H, N]`
#[derive(Debug, Clone)]
pub struct GruResetBeforeTrace<T: Float> {
    pre: DMatrix<T>,
    gates: DMatrix<T>,
    reset: DMatrix<T>,
    h: DMatrix<T>,
}

/// The trace's memory goes back to this thread's free list for the next
/// batch (see `buffers`).
impl<T: Float> Drop for GruResetBeforeTrace<T> {
    fn drop(&mut self) {
        for m in [&mut self.pre, &mut self.gates, &mut self.reset, &mut self.h] {
            buffers::recycle_in_place(m);
        }
    }
}

impl<T: Float> GruResetBeforeCell<T> {
    /// A cell from its weights, gate order r, z, n: `w_ih` `[3H, E]`,
    /// `w_hh` `[3H, H]`, `bias` `[3H]`.
    pub fn new(w_ih: DMatrix<T>, w_hh: DMatrix<T>, bias: DVector<T>) -> Result<Self, Error> {
        let h = w_hh.ncols();
        let checks = [
            ("w_hh", vec![3 * h, h], vec![w_hh.nrows(), h]),
            ("w_ih", vec![3 * h, w_ih.ncols()], vec![w_ih.nrows(), w_ih.ncols()]),
            ("bias", vec![3 * h], vec![bias.len()]),
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
            bias,
            activation: RecurrentActivation::Sigmoid,
        })
    }

    /// This cell with `activation` on its gates r and z.
    pub fn with_recurrent_activation(mut self, activation: RecurrentActivation) -> Self {
        self.activation = activation;
        self
    }

    /// Rows of gate block `k` of a fused `[3H, _]` matrix, as a view.
    fn block<'a>(&self, m: &'a DMatrix<T>, k: usize) -> nalgebra::DMatrixView<'a, T> {
        let h = self.w_hh.ncols();
        m.rows(k * h, h)
    }

    /// The forward pass, inlined into [`lrp_core::simd::wide`]'s wider code.
    #[inline(always)]
    fn forward_inline(&self, packing: &Packing, input: &DMatrix<T>) -> GruResetBeforeTrace<T> {
        let (h, n) = (self.w_hh.ncols(), input.ncols());
        let mut tr = GruResetBeforeTrace {
            pre: project_inputs(&self.w_ih, self.bias.as_slice(), input),
            // Every column is some step of some sequence: all written below.
            gates: buffers::overwritten(3 * h, n),
            reset: buffers::overwritten(h, n),
            h: buffers::overwritten(h, n),
        };
        for t in 0..packing.steps() {
            let cols = packing.step_columns(t);
            let active = cols.len();
            let prev = packing.previous_start(t);
            // r and z read h_{t-1}: one product for their 2H rows.
            if let Some(from) = prev {
                let mut rz = tr.pre.view_mut((0, cols.start), (2 * h, active));
                gemm(
                    &mut rz,
                    T::one(),
                    &self.w_hh.rows(0, 2 * h),
                    false,
                    &tr.h.columns(from, active),
                    T::one(),
                );
            }
            for (slot, col) in cols.clone().enumerate() {
                let pre = column_part(&tr.pre, col, 0, 2 * h);
                let gates = &mut tr.gates.as_mut_slice()[col * 3 * h..col * 3 * h + 2 * h];
                self.activation.apply_all(pre, gates);
                let reset = &mut tr.reset.as_mut_slice()[col * h..(col + 1) * h];
                match prev {
                    Some(from) => {
                        let h_prev = column(&tr.h, from + slot);
                        for k in 0..h {
                            reset[k] = gates[R * h + k] * h_prev[k];
                        }
                    }
                    // h_0 = 0.
                    None => reset.fill(T::zero()),
                }
            }
            // n reads the reset state: a second product, after r is known.
            if prev.is_some() {
                let mut candidate = tr.pre.view_mut((N * h, cols.start), (h, active));
                gemm(
                    &mut candidate,
                    T::one(),
                    &self.block(&self.w_hh, N),
                    false,
                    &tr.reset.columns(cols.start, active),
                    T::one(),
                );
            }
            for (slot, col) in cols.enumerate() {
                let pre_n = column_part(&tr.pre, col, N * h, h);
                let gates = &mut tr.gates.as_mut_slice()[col * 3 * h..(col + 1) * 3 * h];
                let (before, from_col) = tr.h.as_mut_slice().split_at_mut(col * h);
                let h_next = &mut from_col[..h];
                let h_prev = prev.map(|from| &before[(from + slot) * h..(from + slot + 1) * h]);
                for k in 0..h {
                    let n = tanh(pre_n[k]);
                    let z = gates[Z * h + k];
                    gates[N * h + k] = n;
                    h_next[k] = (T::one() - z) * n + h_prev.map_or(T::zero(), |hp| z * hp[k]);
                }
            }
        }
        tr
    }
}

impl<T: Float> RecurrentCell<T> for GruResetBeforeCell<T> {
    type Trace = GruResetBeforeTrace<T>;

    fn kind(&self) -> &str {
        "gru-reset-before"
    }

    fn input_size(&self) -> usize {
        self.w_ih.ncols()
    }

    fn hidden_size(&self) -> usize {
        self.w_hh.ncols()
    }

    /// The input projections of all steps in one product; per step one
    /// product `U_rz h_{t-1}` and, once r is known, one `U_n (r * h_{t-1})`,
    /// each for the sequences running.
    fn forward(&self, packing: &Packing, input: &DMatrix<T>) -> GruResetBeforeTrace<T> {
        lrp_core::simd::wide(|| self.forward_inline(packing, input))
    }

    fn hidden<'t>(&self, trace: &'t GruResetBeforeTrace<T>) -> &'t DMatrix<T> {
        &trace.h
    }

    fn is_finite(&self, trace: &GruResetBeforeTrace<T>) -> bool {
        super::all_finite(trace.pre.as_slice())
    }

    /// LRP through the batch (`docs/rules.md`, "GRU, reset before"). Per
    /// step, from the last: `h_t = (1 - z) * n + z * h_{t-1}` as an
    /// accumulation step; its two products by the gate rule; `n`'s
    /// pre-activation as a projection step over `x_t` (`W_n`) and
    /// `r * h_{t-1}` (`U_n`) with bias `b_n`; the product `r * h_{t-1}` by
    /// the gate rule of site `"r"`; and, when the gate rules feed gates, the
    /// pre-activations of `z` and `r` as projection steps over `x_t` and
    /// `h_{t-1}`.
    fn lrp(
        &self,
        packing: &Packing,
        tr: &GruResetBeforeTrace<T>,
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
            let [new_product, kept_product, reset_product] = PRODUCTS.map(|gate| rules.product(gate));
            let feed_update = new_product.gate_receives_relevance() || kept_product.gate_receives_relevance();
            let feed_reset = reset_product.gate_receives_relevance();
            let bias = |k: usize| &self.bias.as_slice()[k * h..(k + 1) * h];

            // Per-step buffers `[H, B]`, allocated once per batch: column
            // `slot` is the sequence in that slot.
            let zero = || DMatrix::<T>::zeros(h, batch);
            // Relevance the recurrence carries back to h_{t-1}.
            let mut r_h_rec = zero();
            let (mut r_h, mut one_minus_z, mut kept_n, mut kept_h) = (zero(), zero(), zero(), zero());
            let (mut r_kept_n, mut r_kept_h, mut r_n) = (zero(), zero(), zero());
            let (mut r_z_new, mut r_z_old) = (zero(), zero());
            let (mut r_reset, mut r_r, mut r_h_via_reset) = (zero(), zero(), zero());
            // h_0 = 0 as the recurrent input of step 0 (it counts in N).
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
                    // Outside (head, attention, layer above) plus the
                    // recurrence from step t+1.
                    let r_h = &mut r_h.as_mut_slice()[range.clone()];
                    r_h.copy_from_slice(column(relevance_out, col));
                    if slot < running_on {
                        for (r, &from_next) in r_h.iter_mut().zip(column(&r_h_rec, slot)) {
                            *r += from_next;
                        }
                    }
                    let one_minus_z = &mut one_minus_z.as_mut_slice()[range.clone()];
                    let kept_n = &mut kept_n.as_mut_slice()[range.clone()];
                    let kept_h = &mut kept_h.as_mut_slice()[range];
                    for k in 0..h {
                        one_minus_z[k] = T::one() - gate(Z)[k];
                        kept_n[k] = one_minus_z[k] * gate(N)[k];
                        kept_h[k] = gate(Z)[k] * h_prev[k];
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
                    // reset product and the projections below add theirs.
                    kept_product.split(
                        gate(Z),
                        h_prev_of(slot),
                        column(&r_kept_h, slot),
                        &mut r_z_old.as_mut_slice()[range.clone()],
                        &mut r_h_rec.as_mut_slice()[range],
                    );
                }

                // n's pre-activation: x_t through W_n, r * h_{t-1} through U_n.
                r_reset.columns_mut(0, active).fill(T::zero());
                let x = step_block(input, 0, e, cols.clone());
                let groups = [
                    BlockInput {
                        input: x,
                        connection: BlockConnection::Dense(self.block(&self.w_ih, N)),
                    },
                    BlockInput {
                        input: step_block(&tr.reset, 0, h, cols.clone()),
                        connection: BlockConnection::Dense(self.block(&self.w_hh, N)),
                    },
                ];
                let step = BlockStep {
                    groups: &groups,
                    bias: Some(Block::broadcast(bias(N), active)),
                    output: step_block(&tr.pre, N * h, h, cols.clone()),
                };
                projection[N].redistribute_block(
                    &step,
                    step_block(&r_n, 0, h, 0..active),
                    &mut [
                        step_block_mut(relevance_in, 0, e, cols.clone()),
                        step_block_mut(&mut r_reset, 0, h, 0..active),
                    ],
                    &mut leftovers.unexplained[..active],
                    workspace,
                );

                // r * h_{t-1}: the gate rule of site "r" (signal-take-all
                // gives h_{t-1} everything).
                for (slot, col) in cols.clone().enumerate() {
                    let range = slot * h..(slot + 1) * h;
                    reset_product.split(
                        column_part(&tr.gates, col, R * h, h),
                        h_prev_of(slot),
                        column(&r_reset, slot),
                        &mut r_r.as_mut_slice()[range.clone()],
                        &mut r_h_via_reset.as_mut_slice()[range.clone()],
                    );
                    for (to, &from) in r_h_rec.as_mut_slice()[range.clone()]
                        .iter_mut()
                        .zip(&r_h_via_reset.as_slice()[range])
                    {
                        *to += from;
                    }
                }

                let h_prev = match prev {
                    Some(from) => step_block(&tr.h, 0, h, from..from + active),
                    None => step_block(&h_zero, 0, h, 0..active),
                };
                if feed_update {
                    // Both products' gate shares reach z's pre-activation
                    // (1 - z = a(-pre_z) passes relevance unchanged too).
                    for (a, &b) in r_z_new
                        .columns_mut(0, active)
                        .iter_mut()
                        .zip(r_z_old.columns(0, active).iter())
                    {
                        *a += b;
                    }
                }
                for (k, feeds, relevance) in [(Z, feed_update, &r_z_new), (R, feed_reset, &r_r)] {
                    if !feeds {
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
                        bias: Some(Block::broadcast(bias(k), active)),
                        output: step_block(&tr.pre, k * h, h, cols.clone()),
                    };
                    projection[k].redistribute_block(
                        &step,
                        step_block(relevance, 0, h, 0..active),
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

    /// Backpropagation through time. Per step, with `δ` the gradient
    /// reaching `h_t` and `a'` the gates' derivative:
    /// `δn = δ (1 - z)(1 - n²)`, `δz = δ (h_{t-1} - n) a'(z)`,
    /// `δs = U_nᵀ δn` for the reset state `s = r * h_{t-1}`,
    /// `δr = δs h_{t-1} a'(r)`, and to `h_{t-1}`:
    /// `δ z + δs r + U_rᵀ δr + U_zᵀ δz`. Two products per step for the
    /// sequences running, and one `W_ihᵀ [δr; δz; δn]` for all steps.
    fn gradient(
        &self,
        packing: &Packing,
        tr: &GruResetBeforeTrace<T>,
        _input: &DMatrix<T>,
        grad_out: &DMatrix<T>,
        grad_in: &mut DMatrix<T>,
    ) {
        // The element-wise work compiled for AVX2/FMA when the CPU has them.
        lrp_core::simd::wide(|| {
            let (h, batch) = (self.w_hh.ncols(), packing.sequences());
            let mut d_pre = buffers::overwritten(3 * h, grad_out.ncols());
            let mut dh_rec = DMatrix::<T>::zeros(h, batch);
            // δs = U_nᵀ δn per step, and the direct terms to h_{t-1}.
            let mut d_reset = DMatrix::<T>::zeros(h, batch);
            let mut carry = DMatrix::<T>::zeros(h, batch);
            let mut dh = DMatrix::<T>::zeros(h, batch);
            for t in (0..packing.steps()).rev() {
                let cols = packing.step_columns(t);
                let active = cols.len();
                let running_on = packing.continuing(t);
                let prev = packing.previous_start(t);
                for (slot, col) in cols.clone().enumerate() {
                    let g = column(&tr.gates, col);
                    let p = column(&tr.pre, col);
                    let h_prev = prev.map(|from| column(&tr.h, from + slot));
                    let dh = &mut dh.as_mut_slice()[slot * h..(slot + 1) * h];
                    let d = &mut d_pre.as_mut_slice()[col * 3 * h..(col + 1) * 3 * h];
                    for k in 0..h {
                        dh[k] = grad_out[(k, col)]
                            + if slot < running_on {
                                dh_rec[(k, slot)]
                            } else {
                                T::zero()
                            };
                        let (z, n) = (g[Z * h + k], g[N * h + k]);
                        let hp = h_prev.map_or(T::zero(), |hp| hp[k]);
                        d[N * h + k] = dh[k] * (T::one() - z) * (T::one() - n * n);
                        d[Z * h + k] = dh[k] * (hp - n) * self.activation.derivative(p[Z * h + k], z);
                    }
                }
                // δs = U_nᵀ δn, for the sequences running.
                let mut ds = d_reset.columns_mut(0, active);
                gemm(
                    &mut ds,
                    T::one(),
                    &self.block(&self.w_hh, N),
                    true,
                    &d_pre.view((N * h, cols.start), (h, active)),
                    T::zero(),
                );
                for (slot, col) in cols.clone().enumerate() {
                    let g = column(&tr.gates, col);
                    let p = column(&tr.pre, col);
                    let h_prev = prev.map(|from| column(&tr.h, from + slot));
                    let ds = column(&d_reset, slot);
                    let dh = column(&dh, slot);
                    let d = &mut d_pre.as_mut_slice()[col * 3 * h..(col + 1) * 3 * h];
                    let carry = &mut carry.as_mut_slice()[slot * h..(slot + 1) * h];
                    for k in 0..h {
                        let (r, z) = (g[R * h + k], g[Z * h + k]);
                        let hp = h_prev.map_or(T::zero(), |hp| hp[k]);
                        d[R * h + k] = ds[k] * hp * self.activation.derivative(p[R * h + k], r);
                        carry[k] = dh[k] * z + ds[k] * r;
                    }
                }
                if prev.is_some() {
                    let mut next = dh_rec.columns_mut(0, active);
                    next.copy_from(&carry.columns(0, active));
                    gemm(
                        &mut next,
                        T::one(),
                        &self.w_hh.rows(0, 2 * h),
                        true,
                        &d_pre.view((0, cols.start), (2 * h, active)),
                        T::one(),
                    );
                }
            }
            gemm(grad_in, T::one(), &self.w_ih, true, &d_pre, T::one());
            buffers::recycle(d_pre);
        })
    }

    fn operations(&self) -> Vec<Operation> {
        super::operations(&GATES, &PRODUCTS)
    }

    fn rule_names(&self, rules: &LayerRules<'_, T>) -> [String; 3] {
        [
            super::distinct(GATES.iter().map(|&gate| rules.projection(gate).name())),
            rules.accumulation().name().to_string(),
            super::distinct(PRODUCTS.iter().map(|&gate| rules.product(gate).name())),
        ]
    }
}
