//! A layer norm in front of the encoder: per position,
//! `y = γ ⊙ (x − μ) / σ + β` with `μ`, `σ² + ε` the mean and variance of
//! the position's `E` values.
//!
//! ## LRP
//! The LN-rule of Ali et al. (2022, "XAI for Transformers"): `σ` is held
//! fixed, as a gate would be, so the stage is the linear step
//! `y = diag(γ / σ) (I − 11ᵀ/E) x + β` per position, passed to the rule of
//! site `layer-norm projection norm` (`BlockConnection::RowScaled`: the
//! centring matrix with rows scaled by `γ / σ`). The gradient is the
//! stage's true one, `σ` included.

use lrp_core::{Connection, Float, InputGroup, LinearStep};
use lrp_layers::{Composite, Operation, Site};
use lrp_models::{column, Backward, Error, Packing, Port, Stage};
use nalgebra::{DMatrix, DVector};

/// The stage's one site.
fn site() -> Site {
    Site::new("layer-norm", Operation::Projection("norm"))
}

/// Layer normalisation of each position `[E]`, with scale `γ` and shift
/// `β` `[E]` and `ε` added to the variance.
#[derive(Debug, Clone, PartialEq)]
pub struct LayerNorm<T: Float> {
    gamma: DVector<T>,
    beta: DVector<T>,
    eps: T,
    /// `I − 11ᵀ/E`, the centring every position shares.
    centring: DMatrix<T>,
}

/// A batch through a [`LayerNorm`]: the outputs `[E, N]` and `1/σ` per
/// position `[N]`.
#[derive(Debug)]
pub struct LayerNormTrace<T: Float> {
    output: DMatrix<T>,
    inv_sigma: Vec<T>,
}

impl<T: Float> LayerNorm<T> {
    /// A layer norm of width `E = γ.len()`; `β` must be as long and `ε`
    /// finite and non-negative.
    pub fn new(gamma: DVector<T>, beta: DVector<T>, eps: T) -> Result<Self, Error> {
        let e = gamma.len();
        if beta.len() != e || e == 0 || !(eps >= T::zero() && eps.is_finite()) {
            let name = if beta.len() != e { "beta" } else { "gamma" };
            return Err(Error::TensorShape {
                name: name.into(),
                expected: vec![e.max(1)],
                found: vec![beta.len()],
            });
        }
        let centring = DMatrix::from_fn(e, e, |i, j| {
            T::of_f64(f64::from(u8::from(i == j))) - T::one() / T::of_f64(e as f64)
        });
        Ok(Self {
            gamma,
            beta,
            eps,
            centring,
        })
    }
}

impl<T: Float> Stage<T> for LayerNorm<T> {
    type Trace = LayerNormTrace<T>;

    fn name(&self) -> String {
        "the layer norm".into()
    }
    fn input(&self) -> Port {
        Port::positions(self.gamma.len())
    }
    fn output(&self) -> Port {
        Port::positions(self.gamma.len())
    }

    fn forward(&self, _: &Packing, input: &DMatrix<T>) -> LayerNormTrace<T> {
        let e = T::of_f64(input.nrows() as f64);
        let mut output = input.clone();
        let mut inv_sigma = Vec::with_capacity(input.ncols());
        for mut column in output.column_iter_mut() {
            let mean = column.sum() / e;
            column.add_scalar_mut(-mean);
            let variance = column.norm_squared() / e;
            let inv = T::one() / (variance + self.eps).sqrt();
            column.zip_zip_apply(&self.gamma, &self.beta, |y, g, b| *y = g * (*y * inv) + b);
            inv_sigma.push(inv);
        }
        LayerNormTrace { output, inv_sigma }
    }

    fn output_of<'t>(&self, trace: &'t LayerNormTrace<T>) -> &'t DMatrix<T> {
        &trace.output
    }

    fn lrp(
        &self,
        trace: &LayerNormTrace<T>,
        input: &DMatrix<T>,
        r_out: &DMatrix<T>,
        r_in: &mut DMatrix<T>,
        cx: &mut Backward<'_, T>,
    ) {
        let rule = cx.rules.rule_at(&site());
        let mut scale = vec![T::zero(); self.gamma.len()];
        for slot in cx.explained() {
            for t in 0..cx.packing.length(slot) {
                let col = cx.packing.column(t, slot);
                for (s, &g) in scale.iter_mut().zip(self.gamma.iter()) {
                    *s = g * trace.inv_sigma[col];
                }
                let group = [InputGroup {
                    input: column(input, col),
                    connection: Connection::RowScaled {
                        weights: self.centring.as_view(),
                        scale: &scale,
                    },
                }];
                let step = LinearStep {
                    groups: &group,
                    bias: Some(self.beta.as_slice()),
                    output: column(&trace.output, col),
                };
                let e = r_in.nrows();
                let target = &mut r_in.as_mut_slice()[col * e..(col + 1) * e];
                let lost = rule.redistribute(&step, column(r_out, col), &mut [target], &mut cx.workspace);
                cx.leftovers.unexplained[slot] += lost;
            }
        }
    }

    /// `δx = (γ ⊙ δy − mean(γ ⊙ δy) − x̂ mean(γ ⊙ δy ⊙ x̂)) / σ`, `x̂ = (x − μ)/σ`.
    fn gradient(
        &self,
        _: &Packing,
        trace: &LayerNormTrace<T>,
        _: &DMatrix<T>,
        grad_out: &DMatrix<T>,
        grad_in: &mut DMatrix<T>,
    ) {
        let e = T::of_f64(self.gamma.len() as f64);
        for col in 0..grad_out.ncols() {
            let x_hat = (trace.output.column(col) - &self.beta).component_div(&self.gamma);
            let g = grad_out.column(col).component_mul(&self.gamma);
            let (mean_g, mean_gx) = (g.sum() / e, g.dot(&x_hat) / e);
            let mut target = grad_in.column_mut(col);
            for k in 0..g.len() {
                target[k] += (g[k] - mean_g - x_hat[k] * mean_gx) * trace.inv_sigma[col];
            }
        }
    }

    fn rule_names(&self, rules: &Composite<T>) -> String {
        rules.rule_at(&site()).name().to_string()
    }

    fn sites(&self) -> Vec<Site> {
        vec![site()]
    }
}
