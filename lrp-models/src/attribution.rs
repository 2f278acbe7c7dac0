//! Every attribution method on one model and one forward trace: LRP and
//! the gradient baselines of `docs/rules.md`, behind one entry point so that
//! the CLI and the evaluations treat them alike.

use lrp_core::Float;
use lrp_layers::Composite;
use nalgebra::DMatrix;

use crate::{Error, ForwardTrace, Model};

/// An attribution method.
#[derive(Debug, Clone, Copy)]
#[non_exhaustive]
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

impl<T: Float> Method<'_, T> {
    /// The most steps [`Method::IntegratedGradients`] takes: 10,000 (the
    /// Riemann sum has long converged; each step is a forward and a
    /// backward pass).
    pub const MAX_IG_STEPS: usize = 10_000;

    /// Checks the method's own parameters: the steps of integrated
    /// gradients, 1 to [`Method::MAX_IG_STEPS`]
    /// ([`Error::StepsOutOfRange`]).
    pub fn validate(&self) -> Result<(), Error> {
        match *self {
            Method::IntegratedGradients { steps } if !(1..=Self::MAX_IG_STEPS).contains(&steps) => {
                Err(Error::StepsOutOfRange {
                    steps,
                    max: Self::MAX_IG_STEPS,
                })
            }
            _ => Ok(()),
        }
    }

    /// The work of explaining one output of a sequence of `len` positions,
    /// in position-passes (one pass of the model, forward or backward, over
    /// one position), the forward pass that made the trace included:
    /// - LRP, sensitivity, gradient x input: a forward and a backward
    ///   pass, `2 T`;
    /// - occlusion: the forward pass and one of every occluded copy,
    ///   `(T + 1) T`;
    /// - integrated gradients: the forward pass and a forward and a
    ///   backward pass per step, `(2 m + 1) T`.
    ///
    /// ```
    /// use lrp_models::Method;
    /// let occlusion: Method<'_, f64> = Method::Occlusion;
    /// let ig: Method<'_, f64> = Method::IntegratedGradients { steps: 50 };
    /// assert_eq!(occlusion.work(100), 10_100);
    /// assert_eq!(ig.work(100), 10_100);
    /// assert_eq!(Method::<f64>::Sensitivity.work(100), 200);
    /// ```
    pub fn work(&self, len: usize) -> u64 {
        let len = len as u64;
        let passes = match self {
            Method::Lrp(_) | Method::Sensitivity | Method::GradientTimesInput => 2,
            Method::Occlusion => len.saturating_add(1),
            Method::IntegratedGradients { steps } => (*steps as u64).saturating_mul(2).saturating_add(1),
        };
        passes.saturating_mul(len)
    }

    /// Whether the method runs the model again on variants of the input
    /// (occlusion, integrated gradients), in batches beside the trace.
    pub(crate) fn runs_variants(&self) -> bool {
        matches!(self, Method::Occlusion | Method::IntegratedGradients { .. })
    }
}

/// What explaining one input will cost, estimated from its length and the
/// model's widths before anything runs ([`Model::cost`],
/// [`Seq2Seq::cost`](crate::Seq2Seq::cost)), so that a caller can refuse an
/// input too costly to explain instead of running out of time or memory.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cost {
    /// Work in position-passes: one pass (forward or backward) of the model
    /// over one position is 1 ([`Method::work`]).
    pub work: u64,
    /// Bytes of memory the explanation holds at its peak, about: the
    /// forward trace, the backward pass's buffers (as large again), and
    /// for occlusion and integrated gradients a batch of variants.
    pub bytes: u64,
}

impl<T: Float> Model<T> {
    /// Attributes the score of `target` to the input of `trace` by `method`.
    ///
    /// Every result is finite: a NaN or an infinity anywhere (inputs too
    /// small or too large for the rules in this precision) is
    /// [`Error::NonFiniteRelevance`], naming the method and the position.
    pub fn attribute(
        &self,
        trace: &ForwardTrace<T>,
        target: usize,
        method: Method<'_, T>,
    ) -> Result<Attribution<T>, Error> {
        self.attribute_batch(&[(trace, target)], method)
            .pop()
            .expect("one attribution per request")
    }

    /// [`Model::attribute`] for many (trace, target) pairs; results in
    /// request order. LRP and the gradient methods explain the traces of one
    /// batch ([`Model::forward_batch`]) in one backward pass.
    pub fn attribute_batch(
        &self,
        requests: &[(&ForwardTrace<T>, usize)],
        method: Method<'_, T>,
    ) -> Vec<Result<Attribution<T>, Error>> {
        let found: Vec<Result<Attribution<T>, Error>> = match method {
            Method::Lrp(rules) => self
                .lrp_batch(requests, rules)
                .into_iter()
                .map(|e| {
                    let e = e?;
                    Ok(Attribution {
                        per_dimension: Some(e.input_relevance.as_matrix().clone()),
                        per_position: e.token_relevance(),
                        initial_state_relevance: Some(e.initial_state_relevance),
                        unexplained_relevance: Some(e.unexplained_relevance),
                    })
                })
                .collect(),
            Method::Sensitivity => self
                .gradient_batch(requests)
                .into_iter()
                .map(|g| Ok(Attribution::from_per_dimension(g?.map(|g| g * g))))
                .collect(),
            Method::GradientTimesInput => self
                .gradient_batch(requests)
                .into_iter()
                .zip(requests)
                .map(|(g, (trace, _))| Ok(Attribution::from_per_dimension(g?.component_mul(trace.input()))))
                .collect(),
            Method::Occlusion => requests
                .iter()
                .map(|&(trace, target)| self.occlusion(trace, target))
                .collect(),
            Method::IntegratedGradients { steps } => requests
                .iter()
                .map(|&(trace, target)| self.integrated_gradients(trace, target, steps))
                .collect(),
        };
        found
            .into_iter()
            .map(|a| {
                let a = a?;
                a.check_finite(method.name())?;
                Ok(a)
            })
            .collect()
    }

    /// `s(x) - s(x with x_t = 0)` for every position `t` (for a per-step
    /// head, the score at the trace's output position each time). The occluded
    /// copies have the same length and run as batches, a few at a time
    /// ([`Model::batch_size`]), so memory grows with `T`, not `T²`.
    fn occlusion(&self, trace: &ForwardTrace<T>, target: usize) -> Result<Attribution<T>, Error> {
        let score = self.checked_score(trace, target)?;
        let len = trace.len();
        let batch = self.batch_size(len);
        let mut per_position = Vec::with_capacity(len);
        for first in (0..len).step_by(batch) {
            let occluded = (first..(first + batch).min(len))
                .map(|t| {
                    let mut x = trace.input().clone();
                    x.column_mut(t).fill(T::zero());
                    x
                })
                .collect();
            for occluded in self.forward_batch(occluded) {
                // A per-step head: the same output position.
                per_position.push(score - trace.aligned(occluded?).scores()[target]);
            }
        }
        Ok(Attribution {
            per_dimension: None,
            per_position,
            initial_state_relevance: None,
            unexplained_relevance: None,
        })
    }

    /// `x ⊙ mean_{k=1..steps} grad s(k/steps x)`: the points on the path
    /// run as batches of [`Model::batch_size`], so many steps cost time,
    /// not memory.
    fn integrated_gradients(
        &self,
        trace: &ForwardTrace<T>,
        target: usize,
        steps: usize,
    ) -> Result<Attribution<T>, Error> {
        let method: Method<'_, T> = Method::IntegratedGradients { steps };
        method.validate()?;
        self.checked_score(trace, target)?;
        let x = trace.input();
        let batch = self.batch_size(trace.len());
        let mut mean = DMatrix::zeros(x.nrows(), x.ncols());
        for first in (1..=steps).step_by(batch) {
            let scaled = (first..=(first + batch - 1).min(steps))
                .map(|k| x * T::of_f64(k as f64 / steps as f64))
                .collect();
            let points = self
                .forward_batch(scaled)
                .into_iter()
                .map(|p| p.map(|p| trace.aligned(p)))
                .collect::<Result<Vec<_>, Error>>()?;
            let requests: Vec<(&ForwardTrace<T>, usize)> = points.iter().map(|p| (p, target)).collect();
            for gradient in self.gradient_batch(&requests) {
                mean += gradient?;
            }
        }
        mean /= T::of_f64(steps as f64);
        Ok(Attribution::from_per_dimension(mean.component_mul(x)))
    }
}

impl<T: Float> Attribution<T> {
    /// [`Error::NonFiniteRelevance`] at the first position holding a NaN or
    /// an infinity (per dimension or per position), or in the LRP totals.
    fn check_finite(&self, method: &'static str) -> Result<(), Error> {
        let by_dimension = self
            .per_dimension
            .as_ref()
            .and_then(|m| m.column_iter().position(|c| c.iter().any(|v| !v.is_finite())));
        let by_position = self.per_position.iter().position(|v| !v.is_finite());
        let totals_finite = [self.initial_state_relevance, self.unexplained_relevance]
            .iter()
            .flatten()
            .all(|v| v.is_finite());
        let position = by_dimension.or(by_position);
        if position.is_none() && totals_finite {
            return Ok(());
        }
        Err(Error::NonFiniteRelevance {
            method,
            stage: "result".into(),
            rules: String::new(),
            position,
        })
    }
}
