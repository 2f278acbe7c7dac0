//! Every attribution method on one model and one forward trace: LRP and
//! the gradient baselines of `docs/rules.md`, behind one entry point so that
//! the CLI and the evaluations treat them alike.

use lrp_core::Float;
use lrp_layers::Composite;
use nalgebra::DMatrix;

use crate::{Error, ForwardTrace, Model};

/// An attribution method.
#[derive(Debug, Clone, Copy)]
pub enum Method<'a, T: Float> {
    /// Layer-wise Relevance Propagation with these rules.
    Lrp(&'a Composite<T>),
    /// Sensitivity analysis: `(d s / d x_{t,e})^2`, summing to `||d s / d x_t||^2`.
    Sensitivity,
    /// Gradient x input: `x_{t,e} d s / d x_{t,e}`.
    GradientTimesInput,
    /// Occlusion: `s(x) - s(x with x_t = 0)` per position.
    Occlusion,
    /// Integrated gradients from the zero baseline:
    /// `x_{t,e} * mean_{k=1..steps} d s / d x_{t,e} (k/steps x)`.
    IntegratedGradients {
        /// Riemann steps `m` (at least 1).
        steps: usize,
    },
}

impl<T: Float> Method<'_, T> {
    /// Short name: `lrp`, `sa`, `gi`, `occlusion`, `ig`.
    pub fn name(&self) -> &'static str {
        match self {
            Method::Lrp(_) => "lrp",
            Method::Sensitivity => "sa",
            Method::GradientTimesInput => "gi",
            Method::Occlusion => "occlusion",
            Method::IntegratedGradients { .. } => "ig",
        }
    }
}

/// What a method attributes to the input.
#[derive(Debug, Clone, PartialEq)]
pub struct Attribution<T: Float> {
    /// Per position and dimension `[E, T]` (column `t` is position `t`);
    /// `None` for occlusion, which only scores whole positions.
    pub per_dimension: Option<DMatrix<T>>,
    /// Per position `[T]`: the column sums of `per_dimension`, or the
    /// occlusion differences.
    pub per_position: Vec<T>,
    /// LRP only: relevance that reached the zero initial states.
    pub initial_state_relevance: Option<T>,
    /// LRP only: relevance dropped at zero denominators.
    pub unexplained_relevance: Option<T>,
}

impl<T: Float> Attribution<T> {
    fn from_per_dimension(per_dimension: DMatrix<T>) -> Self {
        let per_position = per_dimension.column_iter().map(|c| c.sum()).collect();
        Self {
            per_dimension: Some(per_dimension),
            per_position,
            initial_state_relevance: None,
            unexplained_relevance: None,
        }
    }
}

impl<T: Float> Model<T> {
    /// Attributes the score of `target` to the input of `trace` by `method`.
    pub fn attribute(
        &self,
        trace: &ForwardTrace<T>,
        target: usize,
        method: Method<'_, T>,
    ) -> Result<Attribution<T>, Error> {
        match method {
            Method::Lrp(rules) => {
                let e = self.lrp(trace, target, rules)?;
                let per_position = e.token_relevance();
                Ok(Attribution {
                    per_dimension: Some(e.input_relevance.as_matrix().clone()),
                    per_position,
                    initial_state_relevance: Some(e.initial_state_relevance),
                    unexplained_relevance: Some(e.unexplained_relevance),
                })
            }
            Method::Sensitivity => Ok(Attribution::from_per_dimension(
                self.gradient(trace, target)?.map(|g| g * g),
            )),
            Method::GradientTimesInput => Ok(Attribution::from_per_dimension(
                self.gradient(trace, target)?.component_mul(&trace.input),
            )),
            Method::Occlusion => {
                let score = self.checked_score(trace, target)?;
                // Every occluded copy has the same length: one batch.
                let occluded = (0..trace.len())
                    .map(|t| {
                        let mut x = trace.input.clone();
                        x.column_mut(t).fill(T::zero());
                        x
                    })
                    .collect();
                let per_position = self
                    .forward_batch(occluded)
                    .into_iter()
                    .map(|r| r.map(|o| score - o.scores[target]))
                    .collect::<Result<_, _>>()?;
                Ok(Attribution {
                    per_dimension: None,
                    per_position,
                    initial_state_relevance: None,
                    unexplained_relevance: None,
                })
            }
            Method::IntegratedGradients { steps } => {
                if steps == 0 {
                    return Err(Error::Config {
                        key: "steps".into(),
                        message: "integrated gradients need at least 1 step".into(),
                    });
                }
                self.checked_score(trace, target)?;
                // The points on the path have the same length: batches of
                // them share the encoder's products (bounded, so that many
                // steps cost time, not memory).
                let mut mean = DMatrix::zeros(trace.input.nrows(), trace.len());
                let points: Vec<usize> = (1..=steps).collect();
                for chunk in points.chunks(64) {
                    let scaled = chunk
                        .iter()
                        .map(|&k| &trace.input * T::of_f64(k as f64 / steps as f64))
                        .collect();
                    for point in self.forward_batch(scaled) {
                        mean += self.gradient(&point?, target)?;
                    }
                }
                mean /= T::of_f64(steps as f64);
                Ok(Attribution::from_per_dimension(mean.component_mul(&trace.input)))
            }
        }
    }
}
