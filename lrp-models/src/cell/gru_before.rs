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

use lrp_core::{Block, BlockConnection, BlockInput, Float};
use lrp_layers::Operation;
use nalgebra::{DMatrix, DVector};

use super::interpolate::{interpolate, Interpolation, InterpolationRelevance};
use super::{
    add_product, add_transposed_product, dense, tanh, CellShape, Step, StepCell, StepForward, StepGradient, StepLrp,
};
use crate::config::RecurrentActivation;
use crate::tensors::expect_shape;
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

impl<T: Float> GruResetBeforeCell<T> {
    /// A cell from its weights, gate order r, z, n: `w_ih` `[3H, E]`,
    /// `w_hh` `[3H, H]`, `bias` `[3H]`.
    pub fn new(w_ih: DMatrix<T>, w_hh: DMatrix<T>, bias: DVector<T>) -> Result<Self, Error> {
        let h = w_hh.ncols();
        expect_shape("w_hh", &[3 * h, h], &[w_hh.nrows(), h])?;
        expect_shape("w_ih", &[3 * h, w_ih.ncols()], &[w_ih.nrows(), w_ih.ncols()])?;
        expect_shape("bias", &[3 * h], &[bias.len()])?;
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
}

impl<T: Float> GruResetBeforeCell<T> {
    /// The interpolation `h_t = (1 - z) n + z h_{t-1}` of a step.
    fn interpolation<'a>(&self, step: &Step<'a, T>) -> Interpolation<'a, T> {
        let h = self.w_hh.ncols();
        Interpolation {
            keep: step.record.part(3 * h + Z * h, h),
            candidate: step.record.part(3 * h + N * h, h),
            previous: step.previous.h,
            next: step.next.h,
        }
    }
}

impl<T: Float> StepCell<T> for GruResetBeforeCell<T> {
    fn kind(&self) -> &str {
        "gru-reset-before"
    }

    /// The projection `W_ih x + b` `[3H]`; the record adds the gates r, z,
    /// n `[3H]` and the reset state `r * h_{t-1}` `[H]`.
    fn shape(&self) -> CellShape {
        let h = self.w_hh.ncols();
        CellShape::new(self.w_ih.ncols(), h, 3 * h).record(7 * h)
    }

    fn input_weights(&self) -> (&DMatrix<T>, &[T]) {
        (&self.w_ih, self.bias.as_slice())
    }

    /// One product `U_rz h_{t-1}` for the step; the gates and the reset
    /// state; once r is known, one product `U_n (r * h_{t-1})`; then the
    /// candidate and the update.
    #[inline(always)]
    fn step(&self, step: StepForward<'_, T>) {
        let StepForward {
            previous,
            mut record,
            mut next,
            scratch,
        } = step;
        let (h, active) = (self.w_hh.ncols(), record.cols());
        add_product(record.part(0, 2 * h), &self.w_hh.rows(0, 2 * h), previous.h);
        let [mut reset] = scratch.blocks([h], active);
        for b in 0..active {
            let column = record.column_mut(b);
            let (pre, rest) = column.split_at_mut(3 * h);
            self.activation.apply_all(&pre[..2 * h], &mut rest[..2 * h]);
            let (r, h_prev) = (&rest[R * h..(R + 1) * h], previous.h.column(b));
            let reset = reset.column_mut(b);
            for k in 0..h {
                reset[k] = r[k] * h_prev[k];
            }
            rest[3 * h..].copy_from_slice(reset);
        }
        add_product(record.part(N * h, h), &self.w_hh.rows(N * h, h), reset.as_block());
        for b in 0..active {
            let column = record.column_mut(b);
            let (pre, gates) = column.split_at_mut(3 * h);
            for k in 0..h {
                gates[N * h + k] = tanh(pre[N * h + k]);
            }
            let (z, n) = gates[Z * h..3 * h].split_at(h);
            interpolate(z, n, previous.h.column(b), next.h.column_mut(b));
        }
    }

    /// LRP of one step (`docs/rules.md`, "GRU, reset before"): the update;
    /// `n`'s pre-activation over `x_t` and `r * h_{t-1}`; the reset product
    /// by the gate rule of site `"r"`; and, when gate rules feed gates, the
    /// pre-activations of `z` and `r`.
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
        let (h, e, active) = (self.w_hh.ncols(), self.w_ih.ncols(), step.x.cols());
        let reset_product = rules.product(PRODUCTS[2]);
        let [mut r_n, mut r_z, mut r_reset, mut r_r, mut r_via_reset, t0, t1, t2, t3, t4] =
            scratch.blocks([h; 10], active);
        let feed_update = self.interpolation(&step).lrp(
            rules,
            [PRODUCTS[0], PRODUCTS[1]],
            relevance.h,
            InterpolationRelevance {
                candidate: r_n.part(0, h),
                keep: r_z.part(0, h),
                previous: relevance_previous.h.part(0, h),
                scratch: [t0, t1, t2, t3, t4],
            },
            &mut steps,
        );
        let bias = |k: usize| Block::broadcast(&self.bias.as_slice()[k * h..(k + 1) * h], active);
        // n's pre-activation: x_t through W_n, r * h_{t-1} through U_n.
        r_reset.fill(T::zero());
        let groups = [
            dense(step.x, self.block(&self.w_ih, N)),
            BlockInput {
                input: step.record.part(6 * h, h),
                connection: BlockConnection::Dense(self.block(&self.w_hh, N)),
            },
        ];
        steps.linear(
            rules.candidate(GATES[N]),
            &groups,
            Some(bias(N)),
            step.record.part(N * h, h),
            r_n.as_block(),
            &mut [relevance_x.part(0, e), r_reset.part(0, h)],
        );
        // r * h_{t-1}: the gate rule of site "r" (signal-take-all gives
        // h_{t-1} everything).
        let gates = step.record.part(3 * h, 3 * h);
        reset_product.split_block(
            gates.part(R * h, h),
            step.previous.h,
            r_reset.as_block(),
            r_r.part(0, h),
            r_via_reset.part(0, h),
        );
        relevance_previous.h.add(r_via_reset.as_block());
        let feed_reset = reset_product.gate_receives_relevance();
        for (k, feeds, relevance) in [(Z, feed_update, &r_z), (R, feed_reset, &r_r)] {
            if !feeds {
                continue;
            }
            let groups = [
                dense(step.x, self.block(&self.w_ih, k)),
                dense(step.previous.h, self.block(&self.w_hh, k)),
            ];
            steps.linear(
                rules.projection(GATES[k]),
                &groups,
                Some(bias(k)),
                step.record.part(k * h, h),
                relevance.as_block(),
                &mut [relevance_x.part(0, e), relevance_previous.h.part(0, h)],
            );
        }
    }

    /// Backpropagation through one step. With `δ` the gradient reaching
    /// `h_t` and `a'` the gates' derivative: `δn = δ (1 - z)(1 - n²)`,
    /// `δz = δ (h_{t-1} - n) a'(z)`, `δs = U_nᵀ δn` for the reset state
    /// `s = r * h_{t-1}`, `δr = δs h_{t-1} a'(r)`, and to `h_{t-1}`:
    /// `δ z + δs r + U_rᵀ δr + U_zᵀ δz`.
    #[inline(always)]
    fn gradient_step(&self, step: Step<'_, T>, grad: StepGradient<'_, T>) {
        let StepGradient {
            next: grad,
            projection: mut grad_projection,
            previous: mut grad_previous,
            scratch,
        } = grad;
        let (h, active) = (self.w_hh.ncols(), step.x.cols());
        let [mut dn, mut dz, mut ds] = scratch.blocks([h; 3], active);
        self.interpolation(&step)
            .gradient(grad.h, dn.part(0, h), dz.part(0, h), grad_previous.h.part(0, h));
        for b in 0..active {
            let record = step.record.column(b);
            let (p, g) = (&record[..3 * h], &record[3 * h..6 * h]);
            let d = grad_projection.column_mut(b);
            let (dn, dz) = (dn.column(b), dz.column(b));
            for k in 0..h {
                let (z, n) = (g[Z * h + k], g[N * h + k]);
                d[N * h + k] = dn[k] * (T::one() - n * n);
                d[Z * h + k] = dz[k] * self.activation.derivative(p[Z * h + k], z);
            }
        }
        ds.fill(T::zero());
        add_transposed_product(
            ds.part(0, h),
            &self.w_hh.rows(N * h, h),
            grad_projection.as_block().part(N * h, h),
        );
        for b in 0..active {
            let record = step.record.column(b);
            let (p, g) = (&record[..3 * h], &record[3 * h..6 * h]);
            let (ds, h_prev) = (ds.column(b), step.previous.h.column(b));
            let d = grad_projection.column_mut(b);
            let carry = grad_previous.h.column_mut(b);
            for k in 0..h {
                let r = g[R * h + k];
                d[R * h + k] = ds[k] * h_prev[k] * self.activation.derivative(p[R * h + k], r);
                carry[k] += ds[k] * r;
            }
        }
        add_transposed_product(
            grad_previous.h.part(0, h),
            &self.w_hh.rows(0, 2 * h),
            grad_projection.as_block().part(0, 2 * h),
        );
    }

    fn operations(&self) -> Vec<Operation> {
        super::operations(&GATES, GATES[N], &PRODUCTS)
    }
}
