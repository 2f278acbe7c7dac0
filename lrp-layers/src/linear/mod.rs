//! Rules for linear steps `z_j = sum_i w_ij x_i + b_j`.
//!
//! [`Epsilon`] is the default rule and has its own fast path (one
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
//!
//! Every built-in rule also has a block form
//! ([`lrp_core::LinearRule::redistribute_block`]) that takes a step for `B`
//! sequences at once with matrix-matrix products: epsilon directly, the
//! proportional rules through [`redistribute_proportionally_block`], whose
//! [`Share`] names the share in a form the products can use.

mod blas;
mod epsilon;
mod proportional;

pub use epsilon::Epsilon;
pub use proportional::{
    redistribute_proportionally, redistribute_proportionally_block, AlphaBeta, Flat, Gamma, Share, WSquare, ZPlus,
};

/// Random linear steps with one input group of every connection kind, for
/// the rule tests.
#[cfg(test)]
pub(crate) mod testing {
    use lrp_core::nalgebra::DMatrix;
    use lrp_core::{
        for_each_column, Block, BlockConnection, BlockInput, BlockMut, BlockStep, Connection, InputGroup, LinearRule,
        LinearStep, Workspace,
    };
    use proptest::prelude::*;

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

    /// The values of a block step with `m` outputs and `cols` sequences:
    /// one group per entry of `kinds` (0 dense, 1 row-scaled, 2 identity;
    /// matrix groups have `n` inputs), a bias, the relevance of the outputs,
    /// and nonzero starting values for the input relevance and the
    /// unexplained relevance (the rules add into them).
    pub(crate) struct BlockData {
        m: usize,
        cols: usize,
        kinds: Vec<u8>,
        weights: Vec<DMatrix<f64>>,
        scales: Vec<Vec<f64>>,
        inputs: Vec<Vec<f64>>,
        pub(crate) bias: Vec<f64>,
        output: Vec<f64>,
        pub(crate) relevance: Vec<f64>,
        start_in: Vec<Vec<f64>>,
        start_lost: Vec<f64>,
    }

    impl BlockData {
        /// Fills the step from `values`, cycled; the inputs of the columns
        /// flagged in `silent` are zero (so are their outputs when the bias
        /// is zero too), which gives zero denominators.
        pub(crate) fn new(m: usize, n: usize, cols: usize, kinds: &[u8], values: &[f64], silent: &[bool]) -> Self {
            let mut it = values.iter().copied().cycle();
            let mut take = |k: usize| -> Vec<f64> { (0..k).map(|_| it.next().unwrap()).collect() };
            let mut weights = Vec::new();
            let mut scales = Vec::new();
            let mut inputs = Vec::new();
            for &kind in kinds {
                let width = if kind == 2 { m } else { n };
                weights.push(if kind == 2 {
                    DMatrix::zeros(m, 0)
                } else {
                    DMatrix::from_vec(m, n, take(m * n))
                });
                scales.push(take(m * cols));
                let mut x = take(width * cols);
                for (b, column) in x.chunks_mut(width.max(1)).enumerate() {
                    if silent.get(b).copied().unwrap_or(false) {
                        column.fill(0.0);
                    }
                }
                inputs.push(x);
            }
            // A bias per column, as the GRU's candidate has.
            let bias = take(m * cols);
            let relevance = take(m * cols);
            let start_in = inputs.iter().map(|x| take(x.len())).collect();
            let start_lost = take(cols);
            let mut data = Self {
                m,
                cols,
                kinds: kinds.to_vec(),
                weights,
                scales,
                inputs,
                bias,
                output: Vec::new(),
                relevance,
                start_in,
                start_lost,
            };
            data.output = data.forward();
            data
        }

        /// Sets the bias to zero (and recomputes the outputs).
        pub(crate) fn without_bias(mut self) -> Self {
            self.bias.fill(0.0);
            self.output = self.forward();
            self
        }

        /// `Z = sum_g W'_g X_g + b`, column by column.
        fn forward(&self) -> Vec<f64> {
            let groups = self.groups();
            let mut z = Vec::with_capacity(self.m * self.cols);
            let mut scratch = vec![0.0; self.m];
            for b in 0..self.cols {
                let mut column = self.bias[b * self.m..(b + 1) * self.m].to_vec();
                for g in &groups {
                    let connection = match g.connection {
                        BlockConnection::Dense(w) => Connection::Dense(w),
                        BlockConnection::RowScaled { weights, scale } => Connection::RowScaled {
                            weights,
                            scale: scale.column(b),
                        },
                        _ => Connection::Identity,
                    };
                    connection.add_forward(g.input.column(b), &mut column, &mut scratch);
                }
                z.extend_from_slice(&column);
            }
            z
        }

        /// The input groups.
        pub(crate) fn groups(&self) -> Vec<BlockInput<'_, f64>> {
            (0..self.kinds.len())
                .map(|g| {
                    let rows = self.inputs[g].len() / self.cols;
                    BlockInput {
                        input: Block::new(&self.inputs[g], rows, self.cols, rows).unwrap(),
                        connection: match self.kinds[g] {
                            0 => BlockConnection::Dense(self.weights[g].as_view()),
                            1 => BlockConnection::RowScaled {
                                weights: self.weights[g].as_view(),
                                scale: Block::new(&self.scales[g], self.m, self.cols, self.m).unwrap(),
                            },
                            _ => BlockConnection::Identity,
                        },
                    }
                })
                .collect()
        }

        /// Runs `rule` on the block, by its block form or (`by_columns`)
        /// by [`for_each_column`]: the input relevance of every group and
        /// the unexplained relevance of every column, from the starting
        /// values.
        pub(crate) fn run(&self, rule: &dyn LinearRule<f64>, by_columns: bool) -> (Vec<Vec<f64>>, Vec<f64>) {
            let groups = self.groups();
            let step = BlockStep {
                groups: &groups,
                bias: Some(Block::new(&self.bias, self.m, self.cols, self.m).unwrap()),
                output: Block::new(&self.output, self.m, self.cols, self.m).unwrap(),
            };
            let relevance = Block::new(&self.relevance, self.m, self.cols, self.m).unwrap();
            let mut outs = self.start_in.clone();
            let mut lost = self.start_lost.clone();
            let mut blocks: Vec<BlockMut<'_, f64>> = outs
                .iter_mut()
                .map(|o| {
                    let rows = o.len() / self.cols;
                    BlockMut::new(o, rows, self.cols, rows).unwrap()
                })
                .collect();
            let mut workspace = Workspace::new();
            if by_columns {
                for_each_column(rule, &step, relevance, &mut blocks, &mut lost, &mut workspace);
            } else {
                rule.redistribute_block(&step, relevance, &mut blocks, &mut lost, &mut workspace);
            }
            (outs, lost)
        }

        /// How close the sums of shares `q_ij = share(z_ij)` (`z_ij = w'_ij
        /// x_i`) come to cancelling: the least `|sum_i q_ij| / sum_i
        /// |q_ij|` over outputs and columns with any share. Rules with shares
        /// of both signs (gamma) are only as accurate as this allows, in
        /// either form.
        pub(crate) fn cancellation(&self, share: impl Fn(f64) -> f64) -> f64 {
            let mut least = f64::INFINITY;
            for b in 0..self.cols {
                for j in 0..self.m {
                    let (mut sum, mut magnitude) = (0.0, 0.0);
                    for g in 0..self.kinds.len() {
                        let rows = self.inputs[g].len() / self.cols;
                        let x = &self.inputs[g][b * rows..(b + 1) * rows];
                        let mut add = |z: f64| {
                            sum += share(z);
                            magnitude += share(z).abs();
                        };
                        match self.kinds[g] {
                            2 => add(x[j]),
                            kind => {
                                let s = if kind == 1 { self.scales[g][b * self.m + j] } else { 1.0 };
                                for (i, &x) in x.iter().enumerate() {
                                    add(s * self.weights[g][(j, i)] * x);
                                }
                            }
                        }
                    }
                    if magnitude > 0.0 {
                        least = least.min(sum.abs() / magnitude);
                    }
                }
            }
            least
        }

        /// What `run` starts from.
        pub(crate) fn start(&self) -> (&[Vec<f64>], &[f64]) {
            (&self.start_in, &self.start_lost)
        }
    }

    /// The block form of `rule` against its columns: the same input and
    /// unexplained relevance to 1e-12 relative, plus 1e-12 absolute.
    pub(crate) fn block_matches_columns(rule: &dyn LinearRule<f64>, data: &BlockData) -> Result<(), String> {
        let (block, block_lost) = data.run(rule, false);
        let (columns, columns_lost) = data.run(rule, true);
        let close = |got: f64, want: f64| (got - want).abs() <= 1e-12 * want.abs() + 1e-12;
        for (g, (got, want)) in block.iter().zip(&columns).enumerate() {
            for (i, (&got, &want)) in got.iter().zip(want).enumerate() {
                if !close(got, want) {
                    return Err(format!(
                        "{}: group {g}, entry {i}: block {got}, columns {want}",
                        rule.name()
                    ));
                }
            }
        }
        for (b, (&got, &want)) in block_lost.iter().zip(&columns_lost).enumerate() {
            if !close(got, want) {
                return Err(format!(
                    "{}: unexplained of column {b}: block {got}, columns {want}",
                    rule.name()
                ));
            }
        }
        Ok(())
    }

    /// Block shapes: `(M, n, B)`, the kinds of the groups (0 dense, 1
    /// row-scaled, 2 identity), values, and which columns have zero inputs.
    #[allow(clippy::type_complexity)]
    pub(crate) fn blocks() -> impl Strategy<Value = ((usize, usize, usize), Vec<u8>, Vec<f64>, Vec<bool>)> {
        (
            (1usize..=6, 1usize..=6, 1usize..=5),
            proptest::collection::vec(0u8..3, 1..=4),
            proptest::collection::vec(-2.0f64..2.0, 600),
            proptest::collection::vec(proptest::bool::weighted(0.2), 5),
        )
    }
}
