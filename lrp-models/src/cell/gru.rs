use lrp_core::{BlockConnection, BlockInput, Float};
use lrp_layers::Operation;
use nalgebra::{DMatrix, DVector};

use super::interpolate::{interpolate, Interpolation, InterpolationRelevance};
use super::{
    add_product, add_transposed_product, dense, tanh, CellShape, Step, StepCell, StepForward, StepGradient, StepLrp,
};
use crate::config::RecurrentActivation;
use crate::tensors::{expect_shape, Manifest};
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

impl<T: Float> GruCell<T> {
    /// A cell from its weights, PyTorch gate order r, z, n: `w_ih` `[3H, E]`,
    /// `w_hh` `[3H, H]`, `b_ih` and `b_hh` `[3H]`.
    pub fn new(w_ih: DMatrix<T>, w_hh: DMatrix<T>, b_ih: DVector<T>, b_hh: DVector<T>) -> Result<Self, Error> {
        let h = w_hh.ncols();
        expect_shape("w_hh", &[3 * h, h], &[w_hh.nrows(), h])?;
        expect_shape("w_ih", &[3 * h, w_ih.ncols()], &[w_ih.nrows(), w_ih.ncols()])?;
        expect_shape("b_ih", &[3 * h], &[b_ih.len()])?;
        expect_shape("b_hh", &[3 * h], &[b_hh.len()])?;
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

impl<T: Float> GruCell<T> {
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

impl<T: Float> StepCell<T> for GruCell<T> {
    fn kind(&self) -> &str {
        "gru"
    }

    /// The projection `W_ih x + b_ih` `[3H]`; the record adds the gates r,
    /// z, n `[3H]` and `hn = W_hn h_{t-1} + b_hn` `[H]`.
    fn shape(&self) -> CellShape {
        let h = self.w_hh.ncols();
        CellShape::new(self.w_ih.ncols(), h, 3 * h).record(7 * h)
    }

    fn input_weights(&self) -> (&DMatrix<T>, &[T]) {
        (&self.w_ih, self.b_ih.as_slice())
    }

    /// One product `W_hh h_{t-1} + b_hh` for the step (`b_hh` goes with
    /// it, since `b_hn` sits inside `r * (...)`), then per sequence the
    /// gates, the candidate and the update.
    #[inline(always)]
    fn step(&self, step: StepForward<'_, T>) {
        let StepForward {
            previous,
            mut record,
            mut next,
            scratch,
        } = step;
        let h = self.w_hh.ncols();
        let [mut recurrent] = scratch.blocks([3 * h], record.cols());
        for b in 0..record.cols() {
            recurrent.column_mut(b).copy_from_slice(self.b_hh.as_slice());
        }
        add_product(recurrent.part(0, 3 * h), &self.w_hh, previous.h);
        for b in 0..record.cols() {
            let rec = recurrent.column_mut(b);
            let column = record.column_mut(b);
            let (pre, rest) = column.split_at_mut(3 * h);
            let (gates, hn) = rest.split_at_mut(3 * h);
            for k in 0..2 * h {
                pre[k] += rec[k];
            }
            self.activation.apply_all(&pre[..2 * h], &mut gates[..2 * h]);
            for k in 0..h {
                hn[k] = rec[N * h + k];
                pre[N * h + k] += gates[R * h + k] * hn[k];
                gates[N * h + k] = tanh(pre[N * h + k]);
            }
            let (z, n) = gates[Z * h..].split_at(h);
            interpolate(z, n, previous.h.column(b), next.h.column_mut(b));
        }
    }

    /// LRP of one step (`docs/rules.md`, GRU cell): the update
    /// `h_t = (1 - z) n + z h_{t-1}`; `n`'s pre-activation as a projection
    /// step over `x_t` and `h_{t-1}`, with the reset gate folded into the
    /// recurrent weights (per sequence) and the bias `b_in + r * b_hn`; and,
    /// when the gate rule feeds gates, `z`'s pre-activation likewise.
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
        let [mut r_n, mut r_z, mut n_bias, mut z_bias, t0, t1, t2, t3, t4] = scratch.blocks([h; 9], active);
        let fed = self.interpolation(&step).lrp(
            rules,
            PRODUCTS,
            relevance.h,
            InterpolationRelevance {
                candidate: r_n.part(0, h),
                keep: r_z.part(0, h),
                previous: relevance_previous.h.part(0, h),
                scratch: [t0, t1, t2, t3, t4],
            },
            &mut steps,
        );
        let gates = step.record.part(3 * h, 3 * h);
        let (b_in, b_hn) = (&self.b_ih.as_slice()[N * h..], &self.b_hh.as_slice()[N * h..]);
        for b in 0..active {
            let (r, bias) = (gates.part(R * h, h).column(b), n_bias.column_mut(b));
            for k in 0..h {
                bias[k] = b_in[k] + r[k] * b_hn[k];
            }
        }
        // n's pre-activation, the reset gate folded into W_hn and b_hn.
        let groups = [
            dense(step.x, self.block(&self.w_ih, N)),
            BlockInput {
                input: step.previous.h,
                connection: BlockConnection::RowScaled {
                    weights: self.block(&self.w_hh, N),
                    scale: gates.part(R * h, h),
                },
            },
        ];
        steps.linear(
            rules.candidate(GATES[N]),
            &groups,
            Some(n_bias.as_block()),
            step.record.part(N * h, h),
            r_n.as_block(),
            &mut [relevance_x.part(0, e), relevance_previous.h.part(0, h)],
        );
        if fed {
            // Both products' gate shares reach z's pre-activation.
            for b in 0..active {
                for (k, bias) in z_bias.column_mut(b).iter_mut().enumerate() {
                    *bias = self.b_ih[Z * h + k] + self.b_hh[Z * h + k];
                }
            }
            let groups = [
                dense(step.x, self.block(&self.w_ih, Z)),
                dense(step.previous.h, self.block(&self.w_hh, Z)),
            ];
            steps.linear(
                rules.projection(GATES[Z]),
                &groups,
                Some(z_bias.as_block()),
                step.record.part(Z * h, h),
                r_z.as_block(),
                &mut [relevance_x.part(0, e), relevance_previous.h.part(0, h)],
            );
        }
    }

    /// Backpropagation through one step; then `W_hhᵀ` of the recurrent
    /// part's gradient (`r` scales `n`'s) for the previous state.
    #[inline(always)]
    fn gradient_step(&self, step: Step<'_, T>, grad: StepGradient<'_, T>) {
        let StepGradient {
            next: grad,
            projection: mut grad_projection,
            previous: mut grad_previous,
            scratch,
        } = grad;
        let (h, active) = (self.w_hh.ncols(), step.x.cols());
        let [mut dn, mut dz, mut d_recurrent] = scratch.blocks([h, h, 3 * h], active);
        self.interpolation(&step)
            .gradient(grad.h, dn.part(0, h), dz.part(0, h), grad_previous.h.part(0, h));
        for b in 0..active {
            let record = step.record.column(b);
            let (p, g, hn) = (&record[..3 * h], &record[3 * h..6 * h], &record[6 * h..]);
            let (dn, dz) = (dn.column_mut(b), dz.column_mut(b));
            let d = grad_projection.column_mut(b);
            for k in 0..h {
                let (r, z, n) = (g[R * h + k], g[Z * h + k], g[N * h + k]);
                let dn_pre = dn[k] * (T::one() - n * n);
                let dz_pre = dz[k] * self.activation.derivative(p[Z * h + k], z);
                let dr_pre = dn_pre * hn[k] * self.activation.derivative(p[R * h + k], r);
                d[R * h + k] = dr_pre;
                d[Z * h + k] = dz_pre;
                d[N * h + k] = dn_pre;
                dn[k] = dn_pre * r;
            }
            let d_rec = d_recurrent.column_mut(b);
            d_rec[..2 * h].copy_from_slice(&d[..2 * h]);
            d_rec[2 * h..].copy_from_slice(dn);
        }
        add_transposed_product(grad_previous.h.part(0, h), &self.w_hh, d_recurrent.as_block());
    }

    /// No projection `r`: the reset gate is folded into `n`'s step.
    fn operations(&self) -> Vec<Operation> {
        super::operations(&GATES[1..], GATES[N], &PRODUCTS)
    }
}
