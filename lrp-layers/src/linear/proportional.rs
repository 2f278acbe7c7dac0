use lrp_core::{Error, Float, LinearRule, LinearStep, Workspace};

/// The builder behind z+, gamma, alpha-beta, w-square and flat: distributes
/// `relevance_out` `[M]` over the step's inputs in proportion to a per-edge
/// share `q_ij = share(z_ij, w_ij)`, where `w_ij` is the effective weight
/// from input `i` to output `j` and `z_ij = w_ij x_i` its contribution:
///
/// ```text
/// R_i += scale * sum_j q_ij / (sum_i' q_i'j) * R_j
/// ```
///
/// Adds into `relevance_in` (one slice per input group, as
/// [`LinearRule::redistribute`] gets them) and returns the (scaled)
/// relevance of outputs whose shares sum to exactly zero, which is passed on
/// to no input. The bias is ignored. `scale` weights the result, as alpha
/// and `-beta` do the two halves of alpha-beta. Uses the first two
/// per-output buffers of `workspace`.
///
/// Each edge's fraction `q_ij / sum_i' q_i'j` is formed before it is
/// multiplied by `R_j`: for rules whose shares have one sign (z+, w-square,
/// flat, each half of alpha-beta) the fraction lies in `[0, 1]`, so tiny
/// (even subnormal) contributions give finite relevance where `R_j / sum`
/// would overflow.
///
/// A new rule is one call; here the share is the contribution's magnitude:
///
/// ```
/// use lrp_core::{Float, LinearRule, LinearStep, Workspace};
/// use lrp_layers::redistribute_proportionally;
///
/// struct AbsoluteContributions;
///
/// impl<T: Float> LinearRule<T> for AbsoluteContributions {
///     fn redistribute(&self, step: &LinearStep<'_, T>, r: &[T], out: &mut [&mut [T]], ws: &mut Workspace<T>) -> T {
///         redistribute_proportionally(step, r, out, ws, T::one(), |z, _w| z.abs())
///     }
/// }
///
/// use lrp_core::nalgebra::DMatrix;
/// use lrp_core::{Connection, InputGroup};
/// let w = DMatrix::from_row_slice(1, 2, &[1.0, -3.0]);
/// let x = [1.0, 1.0];
/// let groups = [InputGroup { input: &x[..], connection: Connection::Dense(w.as_view()) }];
/// let step = LinearStep { groups: &groups, bias: None, output: &[-2.0] };
/// let mut relevance_in = [0.0; 2];
/// let unexplained = AbsoluteContributions.redistribute(&step, &[4.0], &mut [&mut relevance_in], &mut Workspace::new());
/// assert_eq!((relevance_in, unexplained), ([1.0, 3.0], 0.0));
/// ```
pub fn redistribute_proportionally<T: Float>(
    step: &LinearStep<'_, T>,
    relevance_out: &[T],
    relevance_in: &mut [&mut [T]],
    workspace: &mut Workspace<T>,
    scale: T,
    share: impl Fn(T, T) -> T,
) -> T {
    let m = step.outputs();
    let (denominator, scaled, _) = workspace.buffers(m, 0);
    denominator.fill(T::zero());
    for group in step.groups {
        group
            .connection
            .for_each_edge(m, |j, i, w| denominator[j] += share(w * group.input[i], w));
    }
    let mut unexplained = T::zero();
    for j in 0..m {
        if denominator[j] == T::zero() {
            unexplained += scale * relevance_out[j];
            // Passes nothing on (and divides by one, not by zero).
            scaled[j] = T::zero();
            denominator[j] = T::one();
        } else {
            scaled[j] = scale * relevance_out[j];
        }
    }
    for (group, out) in step.groups.iter().zip(relevance_in.iter_mut()) {
        group.connection.for_each_edge(m, |j, i, w| {
            out[i] += share(w * group.input[i], w) / denominator[j] * scaled[j]
        });
    }
    unexplained
}

/// The z+ rule (Bach et al. 2015; Montavon et al. 2017, "deep Taylor"):
/// only positive contributions count, the bias is ignored.
///
/// ```text
/// R_i = sum_j (w_ij x_i)^+ / sum_i' (w_i'j x_i')^+ * R_j
/// ```
///
/// Conserves relevance, except at an output with no positive contribution
/// (its relevance is unexplained).
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct ZPlus;

impl<T: Float> LinearRule<T> for ZPlus {
    fn redistribute(&self, step: &LinearStep<'_, T>, r: &[T], out: &mut [&mut [T]], ws: &mut Workspace<T>) -> T {
        redistribute_proportionally(step, r, out, ws, T::one(), |z, _| positive(z))
    }

    fn name(&self) -> &str {
        "zplus"
    }
}

/// The gamma rule (Montavon et al. 2019, "Layer-wise relevance propagation:
/// an overview", eq. 7), on contributions: positive contributions are
/// favoured by a factor `1 + gamma`; the bias is ignored.
///
/// ```text
/// R_i = sum_j (z_ij + gamma z_ij^+) / sum_i' (z_i'j + gamma z_i'j^+) * R_j,   z_ij = w_ij x_i
/// ```
///
/// `gamma = 0` is LRP-0, large `gamma` approaches z+. Conserves relevance,
/// except at an output whose denominator is exactly zero.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Gamma<T: Float> {
    gamma: T,
}

impl<T: Float> Gamma<T> {
    /// The rule with `gamma >= 0`.
    pub fn new(gamma: f64) -> Result<Self, Error> {
        if !(T::of_f64(gamma).is_finite() && gamma >= 0.0) {
            return Err(Error::InvalidParameter {
                name: "gamma",
                value: gamma,
                reason: "must be a number >= 0, finite in this precision",
            });
        }
        Ok(Self {
            gamma: T::of_f64(gamma),
        })
    }
}

impl<T: Float> LinearRule<T> for Gamma<T> {
    fn redistribute(&self, step: &LinearStep<'_, T>, r: &[T], out: &mut [&mut [T]], ws: &mut Workspace<T>) -> T {
        let gamma = self.gamma;
        redistribute_proportionally(step, r, out, ws, T::one(), |z, _| z + gamma * positive(z))
    }

    fn name(&self) -> &str {
        "gamma"
    }
}

/// The alpha-beta rule (Bach et al. 2015, eq. 60) with `alpha - beta = 1`:
/// positive and negative contributions are distributed separately and
/// weighted; the bias is ignored.
///
/// ```text
/// R_i = sum_j ( alpha z_ij^+ / sum_i' z_i'j^+  -  beta z_ij^- / sum_i' z_i'j^- ) * R_j
/// ```
///
/// Conserves relevance when every output has contributions of both signs
/// (or `beta = 0` and a positive one); a missing side's share is unexplained.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct AlphaBeta<T: Float> {
    alpha: T,
    beta: T,
}

impl<T: Float> AlphaBeta<T> {
    /// The rule with `alpha >= 1` and `beta = alpha - 1`.
    pub fn new(alpha: f64, beta: f64) -> Result<Self, Error> {
        if !(T::of_f64(alpha).is_finite()
            && T::of_f64(beta).is_finite()
            && beta >= 0.0
            && (alpha - beta - 1.0).abs() < 1e-12)
        {
            return Err(Error::InvalidParameter {
                name: "alpha",
                value: alpha,
                reason: "alpha-beta needs alpha - beta = 1 and beta >= 0",
            });
        }
        Ok(Self {
            alpha: T::of_f64(alpha),
            beta: T::of_f64(beta),
        })
    }
}

impl<T: Float> LinearRule<T> for AlphaBeta<T> {
    fn redistribute(&self, step: &LinearStep<'_, T>, r: &[T], out: &mut [&mut [T]], ws: &mut Workspace<T>) -> T {
        let mut unexplained = redistribute_proportionally(step, r, out, ws, self.alpha, |z, _| positive(z));
        if self.beta != T::zero() {
            unexplained += redistribute_proportionally(step, r, out, ws, -self.beta, |z, _| negative(z));
        }
        unexplained
    }

    fn name(&self) -> &str {
        "alpha-beta"
    }
}

/// The w-square rule (Montavon et al. 2017, "Explaining nonlinear
/// classification decisions with deep Taylor decomposition"): relevance
/// follows the squared weights, whatever the input; meant for the input
/// layer.
///
/// ```text
/// R_i = sum_j w_ij^2 / sum_i' w_i'j^2 * R_j
/// ```
///
/// Conserves relevance, except at an output whose weights are all zero.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct WSquare;

impl<T: Float> LinearRule<T> for WSquare {
    fn redistribute(&self, step: &LinearStep<'_, T>, r: &[T], out: &mut [&mut [T]], ws: &mut Workspace<T>) -> T {
        redistribute_proportionally(step, r, out, ws, T::one(), |_, w| w * w)
    }

    fn name(&self) -> &str {
        "wsquare"
    }
}

/// The flat rule (Lapuschkin et al. 2019, "Unmasking Clever Hans
/// predictors"): every input connected to an output gets the same share of
/// it; meant for the input layer.
///
/// ```text
/// R_i = sum_{j connected to i} R_j / (number of inputs connected to j)
/// ```
///
/// Always conserves relevance.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Flat;

impl<T: Float> LinearRule<T> for Flat {
    fn redistribute(&self, step: &LinearStep<'_, T>, r: &[T], out: &mut [&mut [T]], ws: &mut Workspace<T>) -> T {
        redistribute_proportionally(step, r, out, ws, T::one(), |_, _| T::one())
    }

    fn name(&self) -> &str {
        "flat"
    }
}

#[inline]
fn positive<T: Float>(z: T) -> T {
    if z > T::zero() {
        z
    } else {
        T::zero()
    }
}

#[inline]
fn negative<T: Float>(z: T) -> T {
    if z < T::zero() {
        z
    } else {
        T::zero()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::linear::testing::{run, StepData};
    use lrp_core::nalgebra::DMatrix;
    use lrp_core::{Connection, InputGroup};
    use proptest::prelude::*;

    /// The whole step as one dense matrix `[M, N]` plus its input `[N]` and
    /// which entries are structural edges, built entry by entry from
    /// `Connection::weight` and `Connection::connects`.
    fn dense(step: &LinearStep<'_, f64>) -> (DMatrix<f64>, Vec<f64>, DMatrix<bool>) {
        let m = step.outputs();
        let n = step.fan_in();
        let (mut w, mut edge, mut x) = (DMatrix::zeros(m, n), DMatrix::from_element(m, n, false), Vec::new());
        let mut offset = 0;
        for g in step.groups {
            for i in 0..g.input.len() {
                for j in 0..m {
                    w[(j, offset + i)] = g.connection.weight(j, i, m);
                    edge[(j, offset + i)] = g.connection.connects(j, i, m);
                }
            }
            x.extend_from_slice(g.input);
            offset += g.input.len();
        }
        (w, x, edge)
    }

    /// Each rule straight from its formula, over the dense matrix.
    fn by_formula(rule: &str, step: &LinearStep<'_, f64>, r: &[f64]) -> Vec<f64> {
        let (w, x, edge) = dense(step);
        let (m, n) = w.shape();
        let z = |j: usize, i: usize| w[(j, i)] * x[i];
        let pos = |v: f64| v.max(0.0);
        let neg = |v: f64| v.min(0.0);
        let mut out = vec![0.0; n];
        for j in 0..m {
            let cols = || (0..n).filter(|&i| edge[(j, i)]);
            let frac = |q: &dyn Fn(usize) -> f64, i: usize| {
                let total: f64 = cols().map(q).sum();
                if total == 0.0 {
                    0.0
                } else {
                    q(i) / total
                }
            };
            for i in cols() {
                out[i] += r[j]
                    * match rule {
                        "zplus" => frac(&|k| pos(z(j, k)), i),
                        "gamma" => frac(&|k| z(j, k) + 0.25 * pos(z(j, k)), i),
                        "alphabeta" => 2.0 * frac(&|k| pos(z(j, k)), i) - frac(&|k| neg(z(j, k)), i),
                        "wsquare" => frac(&|k| w[(j, k)] * w[(j, k)], i),
                        "flat" => frac(&|_| 1.0, i),
                        _ => unreachable!(),
                    };
            }
        }
        out
    }

    proptest! {
        #[test]
        fn every_rule_matches_its_formula_and_conserves(
            (m, n, t) in (1usize..5, 1usize..5, 1usize..4),
            seed in proptest::collection::vec(-2.0f64..2.0, 120),
        ) {
            let data = StepData::new(m, n, t, &seed);
            let groups = data.groups();
            let z = data.outputs(&groups);
            let step = LinearStep { groups: &groups, bias: Some(&data.bias), output: &z };
            let r_out = &data.relevance;
            let rules: [(&str, Box<dyn LinearRule<f64>>); 5] = [
                ("zplus", Box::new(ZPlus)),
                ("gamma", Box::new(Gamma::new(0.25).unwrap())),
                ("alphabeta", Box::new(AlphaBeta::new(2.0, 1.0).unwrap())),
                ("wsquare", Box::new(WSquare)),
                ("flat", Box::new(Flat)),
            ];
            for (name, rule) in rules {
                let (got, unexplained) = run(rule.as_ref(), &step, r_out);
                let want = by_formula(name, &step, r_out);
                for (g, w) in got.iter().zip(&want) {
                    prop_assert!((g - w).abs() <= 1e-9 * (1.0 + w.abs()), "{name}: got {g}, want {w}");
                }
                // Conservation: what went in, plus what was unexplained.
                let total_in: f64 = got.iter().sum();
                let total_out: f64 = r_out.iter().sum();
                prop_assert!((total_in + unexplained - total_out).abs() <= 1e-9 * (1.0 + total_out.abs()),
                    "{name}: {total_in} + {unexplained} != {total_out}");
            }
        }
    }

    #[test]
    fn an_output_without_positive_contributions_is_unexplained_under_zplus() {
        let w = DMatrix::from_row_slice(2, 2, &[-1.0, -1.0, 1.0, 2.0]);
        let x = [1.0, 1.0];
        let z = [-2.0, 3.0];
        let groups = [InputGroup {
            input: &x,
            connection: Connection::Dense(w.as_view()),
        }];
        let step = LinearStep {
            groups: &groups,
            bias: None,
            output: &z,
        };
        let mut out = vec![0.0; 2];
        let unexplained = ZPlus.redistribute(&step, &[5.0, 3.0], &mut [&mut out], &mut Workspace::new());
        assert_eq!(unexplained, 5.0);
        assert_eq!(out, vec![1.0, 2.0]);
    }

    #[test]
    fn subnormal_contributions_give_finite_shares() {
        // z_ij = w_ij x_i are subnormal; R_j / sum z+ would overflow.
        let w = DMatrix::from_row_slice(1, 2, &[0.25, 0.75]);
        let x = [1e-310, 1e-310];
        let z = [1e-310];
        let groups = [InputGroup {
            input: &x,
            connection: Connection::Dense(w.as_view()),
        }];
        let step = LinearStep {
            groups: &groups,
            bias: None,
            output: &z,
        };
        for rule in [&ZPlus as &dyn LinearRule<f64>, &Gamma::new(0.25).unwrap()] {
            let mut out = vec![0.0; 2];
            let unexplained = rule.redistribute(&step, &[2.0], &mut [&mut out], &mut Workspace::new());
            assert_eq!(unexplained, 0.0);
            assert!((out[0] - 0.5).abs() < 1e-9 && (out[1] - 1.5).abs() < 1e-9, "{out:?}");
        }
    }

    #[test]
    fn parameters_are_checked() {
        assert!(Gamma::<f64>::new(-1.0).is_err());
        assert!(Gamma::<f32>::new(1e39).is_err(), "infinite as f32");
        assert!(AlphaBeta::<f32>::new(1e39, 1e39 - 1.0).is_err(), "infinite as f32");
        assert!(AlphaBeta::<f64>::new(2.0, 0.5).is_err());
        assert!(AlphaBeta::<f64>::new(1.0, 0.0).is_ok());
    }
}
