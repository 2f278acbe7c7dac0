//! minGRU (Feng et al. 2024, "Were RNNs all we needed?"): a GRU whose gate
//! and candidate read only the input, so that training can run as a
//! parallel scan.
//!
//! ```text
//! z   = σ(W_z x_t + b_z)
//! h̃   = W_h x_t + b_h
//! h_t = (1 − z) ⊙ h_{t-1} + z ⊙ h̃
//! ```
//!
//! ## LRP
//! The state update is the GRU's interpolation with the roles of the
//! products swapped (`lrp_models::Interpolation`, keep gate `u = 1 − z`):
//! one linear step for the sum, then the gate rule of the product `"z"`
//! (`z ⊙ h̃`) and of `"1-z"` (`(1 − z) ⊙ h_{t-1}`). The candidate `h̃` is a
//! linear step over `x_t` alone (site: candidate `h`); when a gate rule
//! feeds the gate, `z`'s pre-activation is one too (site: projection `z`).

use lrp_core::{Block, Float};
use lrp_layers::Operation;
use lrp_models::activation::sigmoid;
use lrp_models::{dense, expect_shape, interpolate, CellShape, Error, Interpolation, InterpolationRelevance};
use lrp_models::{Step, StepCell, StepForward, StepGradient, StepLrp};
use nalgebra::{DMatrix, DVector};

/// The products' sites: `z ⊙ h̃` lets the candidate in, `(1 − z) ⊙ h_{t-1}`
/// keeps the state.
const PRODUCTS: [&str; 2] = ["z", "1-z"];

/// One direction of a minGRU layer.
///
/// ## Parameters
/// - `w`: `[2H, E]`, the rows of `z` then of `h̃`
/// - `bias`: `[2H]`
///
/// The record per step: the projection `[pre_z; h̃]` `[2H]` and the keep
/// gate `1 − z` `[H]`.
#[derive(Debug, Clone, PartialEq)]
pub struct MinGruCell<T: Float> {
    w: DMatrix<T>,
    bias: DVector<T>,
}

impl<T: Float> MinGruCell<T> {
    /// A cell from its weights; `w` must have an even number of rows and
    /// `bias` one value per row.
    pub fn new(w: DMatrix<T>, bias: DVector<T>) -> Result<Self, Error> {
        let rows = w.nrows() + w.nrows() % 2;
        expect_shape("w", &[rows, w.ncols()], &[w.nrows(), w.ncols()])?;
        expect_shape("bias", &[rows], &[bias.len()])?;
        Ok(Self { w, bias })
    }

    /// The interpolation of a step: keep `1 − z`, candidate `h̃`.
    fn interpolation<'a>(&self, step: &Step<'a, T>) -> Interpolation<'a, T> {
        let h = self.w.nrows() / 2;
        let (keep, candidate) = (step.record.part(2 * h, h), step.record.part(h, h));
        Interpolation {
            keep,
            candidate,
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
            .lrp(rules, PRODUCTS, lrp.relevance.h, out, &mut lrp.steps);
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
            let targets = &mut [lrp.x.part(0, e)];
            lrp.steps.linear(
                rules.projection("z"),
                &groups,
                bias(0),
                step.record.part(0, h),
                r,
                targets,
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
        let sites = [
            Operation::Projection("z"),
            Operation::Candidate("h"),
            Operation::Accumulation,
        ];
        sites.into_iter().chain(PRODUCTS.map(Operation::Product)).collect()
    }
}
