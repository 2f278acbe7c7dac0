use lrp_core::{Connection, Float, InputGroup, LinearRule, LinearStep, Workspace};
use nalgebra::{DMatrix, DVector};

use crate::activation::tanh;
use crate::config::AttentionKind;
use crate::tensors::{Manifest, Ordered};
use crate::{Error, Linear};

/// Attention pooling over the top layer's outputs `h_t` `[D]`, with the
/// final state `last` `[D]` as the query where the kind uses one:
/// `a = softmax(e)`, `context = sum_t a_t h_t`.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum Attention<T: Float> {
    /// `e_t = q . tanh(P h_t + b)`; `proj`: `[A, D]`, `query`: `[A]`.
    Context {
        /// `P`, `b`.
        proj: Linear<T>,
        /// `q`.
        query: DVector<T>,
    },
    /// `e_t = s . tanh(K h_t + b + Q last)`; `key`: `[A, D]` with bias,
    /// `query`: `[A, D]`, `score`: `[A]`.
    Additive {
        /// `K`, `b`.
        key: Linear<T>,
        /// `Q`.
        query: DMatrix<T>,
        /// `s`.
        score: DVector<T>,
    },
    /// `e_t = last . h_t`.
    Dot,
    /// `e_t = last . (W h_t)`; `bilinear`: `[D, D]`.
    General {
        /// `W`.
        bilinear: DMatrix<T>,
    },
}

/// The forward pass of an attention pooling.
///
/// ## Shapes
/// - `weights`: `[T]`, the attention weights `a`
/// - `hidden`: `[A, T]`, `tanh(...)` of the score network (context and
///   additive; empty otherwise)
/// - `context`: `[D]`
#[derive(Debug, Clone)]
pub struct AttentionTrace<T: Float> {
    weights: DVector<T>,
    hidden: DMatrix<T>,
    context: DVector<T>,
}

impl<T: Float> AttentionTrace<T> {
    /// The attention weights `a` `[T]`.
    pub fn weights(&self) -> &DVector<T> {
        &self.weights
    }

    /// The context `sum_t a_t h_t` `[D]`.
    pub fn context(&self) -> &DVector<T> {
        &self.context
    }
}

impl<T: Float> Attention<T> {
    /// The tensors of a PyTorch attention module of `kind` with score size
    /// `size` (`A`) over outputs of width `width` (`D`), as
    /// `tools/pytorch_models.py` names them, in the order
    /// the model reads them.
    pub fn pytorch_tensors(kind: AttentionKind, size: usize, width: usize) -> Manifest {
        let (a, d) = (size, width);
        let named = |name: &str, shape: &[usize]| (format!("attention.{name}"), shape.to_vec());
        match kind {
            AttentionKind::Context => vec![
                named("proj.weight", &[a, d]),
                named("proj.bias", &[a]),
                named("query", &[a]),
            ],
            AttentionKind::Additive => vec![
                named("key.weight", &[a, d]),
                named("key.bias", &[a]),
                named("query.weight", &[a, d]),
                named("score.weight", &[1, a]),
            ],
            AttentionKind::Dot => Vec::new(),
            AttentionKind::General => vec![named("bilinear.weight", &[d, d])],
        }
    }

    /// The pooling from its [`Attention::pytorch_tensors`], checked and in
    /// order.
    pub(crate) fn from_pytorch(kind: AttentionKind, tensors: &mut Ordered) -> Result<Self, Error> {
        Ok(match kind {
            AttentionKind::Context => Attention::Context {
                proj: Linear::new(tensors.matrix()?, Some(tensors.vector()?))?,
                query: tensors.vector()?,
            },
            AttentionKind::Additive => Attention::Additive {
                key: Linear::new(tensors.matrix()?, Some(tensors.vector()?))?,
                query: tensors.matrix()?,
                // Stored [1, A]: read row-major, that is the vector itself.
                score: tensors.vector()?,
            },
            AttentionKind::Dot => Attention::Dot,
            AttentionKind::General => Attention::General {
                bilinear: tensors.matrix()?,
            },
        })
    }

    /// Checks that the parts fit each other and outputs of `width` (`D`)
    /// values per position: `P` or `K` `[A, D]`, `query` `[A]` (context)
    /// or `[A, D]` (additive), `score` `[A]`, `bilinear` `[D, D]`. The
    /// variants' parts are public, so a pooling checks them when it is
    /// built rather than panic in a product later.
    pub(crate) fn check_width(&self, width: usize) -> Result<(), Error> {
        let fits = |part: &str, found: &[usize], expected: &[usize]| {
            if found == expected {
                Ok(())
            } else {
                Err(Error::PartShape {
                    part: format!("the attention's {part} (over {width} values per position)"),
                    expected: expected.to_vec(),
                    found: found.to_vec(),
                })
            }
        };
        let shape = |m: &DMatrix<T>| [m.nrows(), m.ncols()];
        match self {
            Attention::Context { proj, query } => {
                let a = proj.weight.nrows();
                fits("projection", &shape(&proj.weight), &[a, width])?;
                fits("query", &[query.len()], &[a])
            }
            Attention::Additive { key, query, score } => {
                let a = key.weight.nrows();
                fits("key", &shape(&key.weight), &[a, width])?;
                fits("query", &shape(query), &[a, width])?;
                fits("score", &[score.len()], &[a])
            }
            Attention::Dot => Ok(()),
            Attention::General { bilinear } => fits("bilinear weight", &shape(bilinear), &[width, width]),
        }
    }

    /// Scores, weights and context for outputs `h` `[D, T]` and query `last` `[D]`.
    pub(crate) fn forward(&self, h: &DMatrix<T>, last: &DVector<T>) -> AttentionTrace<T> {
        let len = h.ncols();
        let (scores, hidden) = match self {
            Attention::Context { proj, query } => {
                let mut u = DMatrix::zeros(proj.weight.nrows(), len);
                u.gemm(T::one(), &proj.weight, h, T::zero());
                if let Some(b) = &proj.bias {
                    for mut col in u.column_iter_mut() {
                        col += b;
                    }
                }
                u.apply(|v| *v = tanh(*v));
                (u.tr_mul(query), u)
            }
            Attention::Additive { key, query, score } => {
                let mut shift = query * last;
                if let Some(b) = &key.bias {
                    shift += b;
                }
                let mut u = DMatrix::zeros(key.weight.nrows(), len);
                u.gemm(T::one(), &key.weight, h, T::zero());
                for mut col in u.column_iter_mut() {
                    col += &shift;
                }
                u.apply(|v| *v = tanh(*v));
                (u.tr_mul(score), u)
            }
            Attention::Dot => (h.tr_mul(last), DMatrix::zeros(0, len)),
            Attention::General { bilinear } => (h.tr_mul(&bilinear.tr_mul(last)), DMatrix::zeros(0, len)),
        };
        let weights = softmax(&scores);
        let context = h * &weights;
        AttentionTrace {
            weights,
            hidden,
            context,
        }
    }

    /// LRP of the pooling `context = sum_t a_t h_t` (`docs/rules.md`): a linear
    /// step with the attention weights as connection weights, no bias and
    /// `N = T * D` inputs. The weights themselves get nothing (signal-take-all
    /// on `a_t * h_t`), so no relevance enters the score function.
    /// `relevance_in` is the `[D, T]` board of the top outputs, position-major.
    pub(crate) fn redistribute(
        rule: &dyn LinearRule<T>,
        trace: &AttentionTrace<T>,
        h: &DMatrix<T>,
        relevance_context: &[T],
        relevance_in: &mut [T],
        workspace: &mut Workspace<T>,
    ) -> T {
        let groups = [InputGroup {
            input: h.as_slice(),
            connection: Connection::Pooling(trace.weights.as_slice()),
        }];
        let step = LinearStep {
            groups: &groups,
            bias: None,
            output: trace.context.as_slice(),
        };
        rule.redistribute(&step, relevance_context, &mut [relevance_in], workspace)
    }

    /// Gradient of the pooling, through the softmax and the score function:
    /// adds into `d_h` `[D, T]` and `d_last` `[D]`.
    pub(crate) fn gradient(
        &self,
        trace: &AttentionTrace<T>,
        h: &DMatrix<T>,
        last: &DVector<T>,
        d_context: &DVector<T>,
        d_h: &mut DMatrix<T>,
        d_last: &mut DVector<T>,
    ) {
        let a = &trace.weights;
        // context = H a
        d_h.ger(T::one(), d_context, a, T::one());
        let d_a = h.tr_mul(d_context);
        // softmax: de_t = a_t (da_t - sum_s a_s da_s)
        let mean = a.dot(&d_a);
        let d_e = a.component_mul(&d_a.add_scalar(-mean));
        match self {
            Attention::Context { proj, query } => {
                let d_u = tanh_backward(&trace.hidden, query, &d_e);
                d_h.gemm_tr(T::one(), &proj.weight, &d_u, T::one());
            }
            Attention::Additive { key, query, score } => {
                let d_u = tanh_backward(&trace.hidden, score, &d_e);
                d_h.gemm_tr(T::one(), &key.weight, &d_u, T::one());
                let d_shift = d_u.column_sum();
                d_last.gemv_tr(T::one(), query, &d_shift, T::one());
            }
            Attention::Dot => {
                d_h.ger(T::one(), last, &d_e, T::one());
                d_last.gemv(T::one(), h, &d_e, T::one());
            }
            Attention::General { bilinear } => {
                let v = bilinear.tr_mul(last);
                d_h.ger(T::one(), &v, &d_e, T::one());
                let h_de = h * &d_e;
                d_last.gemv(T::one(), bilinear, &h_de, T::one());
            }
        }
    }
}

/// For `e_t = w . u_t` with `u = tanh(pre)`: `d pre = (w d_e^T) ⊙ (1 - u²)`, `[A, T]`.
fn tanh_backward<T: Float>(u: &DMatrix<T>, w: &DVector<T>, d_e: &DVector<T>) -> DMatrix<T> {
    let mut d = w * d_e.transpose();
    d.zip_apply(u, |dv, uv| *dv *= T::one() - uv * uv);
    d
}

/// Numerically stable softmax (of nothing: nothing).
fn softmax<T: Float>(e: &DVector<T>) -> DVector<T> {
    let Some(&first) = e.iter().next() else {
        return e.clone();
    };
    let max = e.iter().copied().fold(first, |m, v| if v > m { v } else { m });
    let mut a = e.map(|v| (v - max).exp());
    let total = a.sum();
    a /= total;
    a
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn softmax_of_nothing_is_nothing() {
        assert_eq!(softmax(&DVector::<f64>::zeros(0)).len(), 0);
        let a = softmax(&DVector::from_vec(vec![1.0, 1.0]));
        assert_eq!(a.as_slice(), &[0.5, 0.5]);
    }
}
