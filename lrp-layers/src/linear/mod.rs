//! Rules for linear steps `z_j = sum_i w_ij x_i + b_j`.
//!
//! [`Epsilon`] is the rule of the spec and has its own fast path (one
//! transposed matrix product per input group). The others distribute each
//! output's relevance in proportion to a per-edge share `q_ij`,
//!
//! ```text
//! R_i = sum_j q_ij / (sum_i' q_i'j) * R_j
//! ```
//!
//! and differ only in the share (zennit builds its rules the same way, from
//! small parts). They ignore the bias, so they conserve relevance exactly
//! except at an output whose shares sum to zero, whose relevance is
//! returned as unexplained.

mod epsilon;
mod proportional;

pub use epsilon::Epsilon;
pub use proportional::{redistribute_proportionally, AlphaBeta, Flat, Gamma, WSquare, ZPlus};

/// Random linear steps with one input group of every connection kind, for
/// the rule tests.
#[cfg(test)]
pub(crate) mod testing {
    use lrp_core::nalgebra::DMatrix;
    use lrp_core::{Connection, InputGroup, LinearRule, LinearStep, Workspace};

    /// The values of a step with `m` outputs: a dense and a row-scaled group
    /// of `n` inputs, an identity group, and a pooling over `t` positions,
    /// plus a bias and the relevance of the outputs.
    pub(crate) struct StepData {
        w: DMatrix<f64>,
        scale: Vec<f64>,
        inputs: [Vec<f64>; 4],
        a: Vec<f64>,
        pub(crate) bias: Vec<f64>,
        pub(crate) relevance: Vec<f64>,
    }

    impl StepData {
        /// Fills the step from `values`, cycled.
        pub(crate) fn new(m: usize, n: usize, t: usize, values: &[f64]) -> Self {
            let mut it = values.iter().copied().cycle();
            let mut take = |k: usize| -> Vec<f64> { (0..k).map(|_| it.next().unwrap()).collect() };
            let w = DMatrix::from_vec(m, n, take(m * n));
            let scale = take(m);
            let inputs = [take(n), take(n), take(m), take(m * t)];
            Self {
                w,
                scale,
                inputs,
                a: take(t),
                bias: take(m),
                relevance: take(m),
            }
        }

        /// The input groups.
        pub(crate) fn groups(&self) -> [InputGroup<'_, f64>; 4] {
            let [dense, scaled, identity, pooled] = &self.inputs;
            [
                InputGroup {
                    input: dense,
                    connection: Connection::Dense(self.w.as_view()),
                },
                InputGroup {
                    input: scaled,
                    connection: Connection::RowScaled {
                        weights: self.w.as_view(),
                        scale: &self.scale,
                    },
                },
                InputGroup {
                    input: identity,
                    connection: Connection::Identity,
                },
                InputGroup {
                    input: pooled,
                    connection: Connection::Pooling(&self.a),
                },
            ]
        }

        /// The forward outputs `z` of `groups` with this bias.
        pub(crate) fn outputs(&self, groups: &[InputGroup<'_, f64>]) -> Vec<f64> {
            let mut z = self.bias.clone();
            let mut scratch = vec![0.0; z.len()];
            for g in groups {
                g.connection.add_forward(g.input, &mut z, &mut scratch);
            }
            z
        }
    }

    /// Runs `rule` on `step`: the input relevance of all groups in order,
    /// and the unexplained relevance.
    pub(crate) fn run(rule: &dyn LinearRule<f64>, step: &LinearStep<'_, f64>, relevance: &[f64]) -> (Vec<f64>, f64) {
        let mut outs: Vec<Vec<f64>> = step.groups.iter().map(|g| vec![0.0; g.input.len()]).collect();
        let mut views: Vec<&mut [f64]> = outs.iter_mut().map(|o| o.as_mut_slice()).collect();
        let unexplained = rule.redistribute(step, relevance, &mut views, &mut Workspace::new());
        (outs.concat(), unexplained)
    }
}
