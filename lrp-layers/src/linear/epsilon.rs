use lrp_core::{
    for_each_column, Block, BlockConnection, BlockMut, BlockStep, Error, Float, LinearRule, LinearStep, Workspace,
};

use super::blas::{blockable, gemm_tn};

/// The epsilon rule with bias factor (Bach et al. 2015, eq. 58; bias
/// convention of Arras et al. 2017 and `docs/rules.md`):
///
/// ```text
/// R_i = sum_j ( w_ij x_i + bf * (b_j + eps * s_j) / N ) / ( z_j + eps * s_j ) * R_j
/// s_j = +1 if z_j >= 0 else -1
/// ```
///
/// `N` is the fan-in of the whole step (all input groups). With `bf = 1`
/// relevance is conserved exactly: `sum_i R_i = sum_j R_j`. With `bf = 0`
/// (the recommended explanation) the bias and the stabiliser absorb their
/// share. An output whose denominator is exactly zero (`eps = 0`, `z_j = 0`)
/// passes nothing on; its relevance is returned as unexplained.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Epsilon<T: Float> {
    eps: T,
    bias_factor: T,
}

impl<T: Float> Epsilon<T> {
    /// The rule with stabiliser `eps >= 0` and bias factor `bias_factor`
    /// (0: explanation, 1: conservation check).
    pub fn new(eps: f64, bias_factor: f64) -> Result<Self, Error> {
        // Finite in `T` too: 1e39 is a finite f64 but infinite as f32.
        if !(T::of_f64(eps).is_finite() && eps >= 0.0) {
            return Err(Error::InvalidParameter {
                name: "eps",
                value: eps,
                reason: "must be a number >= 0, finite in this precision",
            });
        }
        if !T::of_f64(bias_factor).is_finite() {
            return Err(Error::InvalidParameter {
                name: "bias factor",
                value: bias_factor,
                reason: "must be finite in this precision",
            });
        }
        Ok(Self {
            eps: T::of_f64(eps),
            bias_factor: T::of_f64(bias_factor),
        })
    }

    /// The stabiliser.
    pub fn eps(&self) -> T {
        self.eps
    }

    /// The bias factor.
    pub fn bias_factor(&self) -> T {
        self.bias_factor
    }
}

impl<T: Float> LinearRule<T> for Epsilon<T> {
    fn redistribute(
        &self,
        step: &LinearStep<'_, T>,
        relevance_out: &[T],
        relevance_in: &mut [&mut [T]],
        workspace: &mut Workspace<T>,
    ) -> T {
        let m = step.outputs();
        let (ratio, scratch, per_input) = workspace.buffers(m, step.largest_group());

        // ratio_j = R_j / (z_j + eps s_j); the bias and stabiliser mass is
        // sum_j (b_j + eps s_j) ratio_j, shared equally by all N inputs.
        let mut unexplained = T::zero();
        let mut bias_mass = T::zero();
        for j in 0..m {
            let z = step.output[j];
            let stabiliser = self.eps * z.sign_or_one();
            let denominator = z + stabiliser;
            if denominator == T::zero() {
                ratio[j] = T::zero();
                unexplained += relevance_out[j];
            } else {
                ratio[j] = relevance_out[j] / denominator;
                bias_mass += (step.bias_of(j) + stabiliser) * ratio[j];
            }
        }
        let share = if self.bias_factor == T::zero() {
            T::zero()
        } else {
            self.bias_factor * bias_mass / T::of_f64(step.fan_in() as f64)
        };

        // R_in = x ⊙ (W'^T ratio) + share, group by group.
        for (group, out) in step.groups.iter().zip(relevance_in.iter_mut()) {
            let n = group.input.len();
            let back = &mut per_input[..n];
            group.connection.transpose_product(ratio, back, scratch);
            for ((o, &x), &b) in out.iter_mut().zip(group.input).zip(back.iter()) {
                *o += x * b + share;
            }
        }
        unexplained
    }

    /// The block form (the rule's equation, Bach et al. 2015 eq. 58, for `B`
    /// sequences at once): `ratio` `[M, B]` and each column's bias share
    /// `[B]` exactly as in [`LinearRule::redistribute`], then per group
    ///
    /// ```text
    /// R_in_g += X_g ⊙ (W_g^T ratio) + share_b          (Dense, one gemm)
    /// R_in_g += X_g ⊙ (W_g^T (S_g ⊙ ratio)) + share_b  (RowScaled)
    /// R_in_g += X_g ⊙ ratio + share_b                  (Identity)
    /// ```
    ///
    /// `W_g^T` is copied into the workspace's block buffers once per call,
    /// so each product is one contiguous `gemm` `[n, M] x [M, B]`; once the
    /// workspace is warm the rule allocates nothing (nalgebra's `gemm` of
    /// large operands goes through matrixmultiply, which allocates its own
    /// packing buffer per product). The same arithmetic as column
    /// by column except the order of the sums inside the matrix products
    /// (rounding only). Steps with a connection that has no block form go by
    /// columns ([`for_each_column`]).
    fn redistribute_block(
        &self,
        step: &BlockStep<'_, T>,
        relevance_out: Block<'_, T>,
        relevance_in: &mut [BlockMut<'_, T>],
        unexplained: &mut [T],
        workspace: &mut Workspace<T>,
    ) {
        lrp_core::simd::wide(|| self.block_inline(step, relevance_out, relevance_in, unexplained, workspace))
    }

    fn name(&self) -> &str {
        "epsilon"
    }
}

impl<T: Float> Epsilon<T> {
    /// [`LinearRule::redistribute_block`], inlined into the wider code of
    /// [`lrp_core::simd::wide`].
    #[inline(always)]
    fn block_inline(
        &self,
        step: &BlockStep<'_, T>,
        relevance_out: Block<'_, T>,
        relevance_in: &mut [BlockMut<'_, T>],
        unexplained: &mut [T],
        workspace: &mut Workspace<T>,
    ) {
        if !blockable(step) {
            return for_each_column(self, step, relevance_out, relevance_in, unexplained, workspace);
        }
        let (m, cols) = (step.outputs(), step.columns().min(unexplained.len()));
        let row_scaled = step
            .groups
            .iter()
            .any(|g| matches!(g.connection, BlockConnection::RowScaled { .. }));
        let nmax = step.largest_group();
        let [ratio, scaled, back, share] =
            workspace.block_buffers([m * cols, if row_scaled { m * cols } else { 0 }, nmax * cols, cols]);

        // Column by column, as in the per-sequence form: the ratios, the
        // unexplained relevance and the bias share.
        let fan_in = T::of_f64(step.fan_in() as f64);
        for b in 0..cols {
            let (z, r) = (step.output.column(b), relevance_out.column(b));
            let bias = step.bias.map(|bias| bias.column(b));
            let ratio = &mut ratio[b * m..(b + 1) * m];
            // The ratios without branches, so that the divisions vectorise;
            // a zero denominator (eps = 0 and z = 0) passes nothing.
            let mut any_zero = false;
            for ((q, &z), &r) in ratio.iter_mut().zip(z).zip(r) {
                let denominator = z + self.eps * z.sign_or_one();
                let zero = denominator == T::zero();
                any_zero |= zero;
                let quotient = r / if zero { T::one() } else { denominator };
                *q = if zero { T::zero() } else { quotient };
            }
            if any_zero {
                // In order over the outputs, as the per-sequence form sums.
                let mut lost = T::zero();
                for (&z, &r) in z.iter().zip(r) {
                    if z + self.eps * z.sign_or_one() == T::zero() {
                        lost += r;
                    }
                }
                unexplained[b] += lost;
            }
            share[b] = if self.bias_factor == T::zero() {
                T::zero()
            } else {
                // (b_j + eps s_j) ratio_j summed in order; an output with a
                // zero denominator has a zero ratio and adds nothing.
                let mut bias_mass = T::zero();
                for (j, (&z, &q)) in z.iter().zip(ratio.iter()).enumerate() {
                    let stabiliser = self.eps * z.sign_or_one();
                    bias_mass += (bias.map_or(T::zero(), |bias| bias[j]) + stabiliser) * q;
                }
                self.bias_factor * bias_mass / fan_in
            };
        }

        for (group, out) in step.groups.iter().zip(relevance_in.iter_mut()) {
            let n = group.connection.fan_in(m);
            let back: &[T] = match group.connection {
                BlockConnection::Dense(w) => {
                    gemm_tn(back, &w, ratio, cols, T::zero());
                    back
                }
                BlockConnection::RowScaled { weights, scale } => {
                    for b in 0..cols {
                        let s = scale.column(b);
                        for j in 0..m {
                            scaled[b * m + j] = ratio[b * m + j] * s[j];
                        }
                    }
                    gemm_tn(back, &weights, scaled, cols, T::zero());
                    back
                }
                _ => ratio,
            };
            for (b, &share) in share.iter().enumerate() {
                let x = group.input.column(b);
                for ((o, &x), &t) in out.column_mut(b).iter_mut().zip(x).zip(&back[b * n..(b + 1) * n]) {
                    *o += x * t + share;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::linear::testing::{block_matches_columns, blocks, run, BlockData, StepData};
    use lrp_core::nalgebra::DMatrix;
    use lrp_core::{Connection, InputGroup};
    use proptest::prelude::*;

    /// The epsilon rule written straight from its formula: a double loop over
    /// every (input, output) pair through `Connection::weight`.
    fn epsilon_by_formula(step: &LinearStep<'_, f64>, r_out: &[f64], eps: f64, bf: f64) -> Vec<Vec<f64>> {
        let m = step.outputs();
        let n_total = step.fan_in() as f64;
        step.groups
            .iter()
            .map(|g| {
                (0..g.input.len())
                    .map(|i| {
                        (0..m)
                            .map(|j| {
                                let z = step.output[j];
                                let s = if z >= 0.0 { 1.0 } else { -1.0 };
                                let w = g.connection.weight(j, i, m);
                                let numer = w * g.input[i] + bf * (step.bias_of(j) + eps * s) / n_total;
                                numer / (z + eps * s) * r_out[j]
                            })
                            .sum()
                    })
                    .collect()
            })
            .collect()
    }

    fn values(len: usize) -> impl Strategy<Value = Vec<f64>> {
        proptest::collection::vec(-2.0f64..2.0, len)
    }

    proptest! {
        #[test]
        fn matches_formula_and_conserves_with_bias_factor_one(
            (m, n, t) in (1usize..6, 1usize..6, 1usize..4),
            seed in values(200),
            eps in 0.0f64..0.1,
            bf in prop_oneof![Just(0.0), Just(1.0), 0.0f64..1.0],
        ) {
            let data = StepData::new(m, n, t, &seed);
            let groups = data.groups();
            let z = data.outputs(&groups);
            // Keep away from the singular denominator, which has its own test.
            prop_assume!(z.iter().all(|v| (v.abs() + eps) > 1e-3));
            let step = LinearStep { groups: &groups, bias: Some(&data.bias), output: &z };
            let r_out = &data.relevance;
            let (got, unexplained) = run(&Epsilon::<f64>::new(eps, bf).unwrap(), &step, r_out);
            prop_assert_eq!(unexplained, 0.0);

            let expected: Vec<f64> = epsilon_by_formula(&step, r_out, eps, bf).concat();
            for (g, w) in got.iter().zip(&expected) {
                prop_assert!((g - w).abs() <= 1e-9 * (1.0 + w.abs()), "got {g}, want {w}");
            }
            if bf == 1.0 {
                let total_in: f64 = got.iter().sum();
                let total_out: f64 = r_out.iter().sum();
                prop_assert!((total_in - total_out).abs() <= 1e-9 * (1.0 + total_out.abs()));
            }
        }
    }

    #[test]
    fn zero_denominator_passes_nothing_and_reports_it() {
        let w = DMatrix::from_row_slice(2, 2, &[1.0, -1.0, 1.0, 1.0]);
        let x = [1.0, 1.0];
        let z = [0.0, 2.0];
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
        let rule = Epsilon::<f64>::new(0.0, 1.0).unwrap();
        let unexplained = rule.redistribute(&step, &[3.0, 4.0], &mut [&mut out], &mut Workspace::new());
        assert_eq!(unexplained, 3.0);
        assert_eq!(out, vec![2.0, 2.0]);
    }

    #[test]
    fn rejects_negative_or_non_finite_eps() {
        assert!(Epsilon::<f64>::new(-0.1, 0.0).is_err());
        assert!(Epsilon::<f64>::new(f64::NAN, 0.0).is_err());
        assert!(Epsilon::<f64>::new(0.0, f64::INFINITY).is_err());
        assert!(Epsilon::<f64>::new(1e39, 1e39).is_ok());
        assert!(Epsilon::<f32>::new(1e39, 0.0).is_err(), "infinite as f32");
        assert!(Epsilon::<f32>::new(0.0, 1e39).is_err(), "infinite as f32");
    }

    proptest! {
        #[test]
        fn block_form_matches_columns(
            ((m, n, cols), kinds, seed, silent) in blocks(),
            eps in prop_oneof![Just(0.0), 0.0f64..0.1],
            bf in prop_oneof![Just(0.0), Just(1.0), 0.0f64..1.0],
            zero_bias in proptest::bool::weighted(0.3),
        ) {
            let mut data = BlockData::new(m, n, cols, &kinds, &seed, &silent);
            if zero_bias {
                data = data.without_bias();
            }
            let rule = Epsilon::<f64>::new(eps, bf).unwrap();
            block_matches_columns(&rule, &data).map_err(TestCaseError::fail)?;
        }

        #[test]
        fn block_form_conserves_with_bias_factor_one(
            ((m, n, cols), kinds, seed, _silent) in blocks(),
            eps in 0.0f64..0.1,
        ) {
            let data = BlockData::new(m, n, cols, &kinds, &seed, &[]);
            let (outs, lost) = data.run(&Epsilon::<f64>::new(eps, 1.0).unwrap(), false);
            let (start_in, start_lost) = data.start();
            for b in 0..cols {
                let mut total_in = lost[b] - start_lost[b];
                let mut magnitude = 0.0;
                for (out, start) in outs.iter().zip(start_in) {
                    let rows = out.len() / cols;
                    for i in b * rows..(b + 1) * rows {
                        total_in += out[i] - start[i];
                        magnitude += (out[i] - start[i]).abs();
                    }
                }
                let total_out: f64 = data.relevance[b * m..(b + 1) * m].iter().sum();
                prop_assert!((total_in - total_out).abs() <= 1e-9 * (1.0 + magnitude),
                    "column {b}: {total_in} != {total_out}");
            }
        }
    }

    #[test]
    fn block_zero_denominator_is_unexplained_in_its_column_only() {
        // Column 1 has zero inputs and there is no bias: z = 0 there, and
        // with eps = 0 its whole relevance is unexplained.
        let values: Vec<f64> = (0..400).map(|k| ((k * 37 % 23) as f64 - 11.0) / 7.0).collect();
        let data = BlockData::new(3, 4, 3, &[0, 1, 2], &values, &[false, true, false]).without_bias();
        for bf in [0.0, 1.0] {
            let rule = Epsilon::<f64>::new(0.0, bf).unwrap();
            block_matches_columns(&rule, &data).unwrap();
            let (_, lost) = data.run(&rule, false);
            let (_, start_lost) = data.start();
            let column: f64 = data.relevance[3..6].iter().sum();
            assert!((lost[1] - start_lost[1] - column).abs() < 1e-12, "{lost:?}, {column}");
            assert_eq!(lost[0], start_lost[0]);
            assert_eq!(lost[2], start_lost[2]);
        }
    }
}
