use lrp_core::nalgebra::DMatrixView;
use lrp_core::{
    for_each_column, Block, BlockConnection, BlockMut, BlockStep, Error, Float, LinearRule, LinearStep, Workspace,
};

use super::blas::{blockable, gemm_nn, gemm_tn, one_column, view, weights};

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
/// [`redistribute_proportionally_block`] is the same for a block of
/// sequences, with the share as a [`Share`] instead of a closure.
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

/// The share `q_ij` of an edge in a form whose sums over a block are matrix
/// products, for [`redistribute_proportionally_block`]. `w_ij` is the
/// effective weight from input `i` to output `j` (row scale included) and
/// `z_ij = w_ij x_i` its contribution.
#[derive(Debug, Clone, Copy, PartialEq)]
#[non_exhaustive]
pub enum Share<T: Float> {
    /// `q_ij = positive * z_ij^+ + negative * z_ij^-`: any positively
    /// homogeneous function of the contribution. z+ is `(1, 0)`, gamma
    /// `(1 + gamma, 1)`, the halves of alpha-beta `(1, 0)` and `(0, 1)`,
    /// LRP-0 `(1, 1)`, the magnitude `|z_ij|` `(1, -1)`.
    Contributions {
        /// Factor of the positive part `z_ij^+ = max(z_ij, 0)`.
        positive: T,
        /// Factor of the negative part `z_ij^- = min(z_ij, 0)`.
        negative: T,
    },
    /// `q_ij = w_ij^2`, whatever the input (w-square).
    SquaredWeights,
    /// `q_ij = 1` for every structural edge (flat).
    Uniform,
}

impl<T: Float> Share<T> {
    /// `q_ij` of one edge with contribution `z` and effective weight `w`:
    /// the per-sequence form of the share, as a closure for
    /// [`redistribute_proportionally`] takes it.
    #[inline]
    pub fn of(&self, z: T, w: T) -> T {
        match *self {
            Share::Contributions { positive, negative } => {
                if z > T::zero() {
                    positive * z
                } else if z < T::zero() {
                    negative * z
                } else {
                    T::zero()
                }
            }
            Share::SquaredWeights => w * w,
            Share::Uniform => T::one(),
        }
    }

    /// For contributions, `f(z) = positive z^+ + negative z^-` applied to
    /// a weight: `x^+ f(w) + x^- g(w)` with `g(w) = -f(-w)` is `f(w x)`.
    #[inline]
    fn split(&self, w: T) -> (T, T) {
        match *self {
            Share::Contributions { positive, negative } => {
                // Without branches (weight signs are random, so branches
                // mispredict), the same values: w^+ and w^- are w and 0.
                let (plus, minus) = signed_parts(w);
                (positive * plus + negative * minus, positive * minus + negative * plus)
            }
            Share::SquaredWeights => (w * w, w * w),
            Share::Uniform => (T::one(), T::one()),
        }
    }

    /// How many `[M, n]` weight matrices the block form keeps per group:
    /// `[P | N]` `[M, 2n]`, or `W ⊙ W` `[M, n]`.
    fn matrices(&self) -> usize {
        match self {
            Share::Contributions { .. } => 2,
            Share::SquaredWeights => 1,
            Share::Uniform => 0,
        }
    }
}

/// [`redistribute_proportionally`] with a [`Share`] as a rule, for the
/// columns the block form hands back to the per-sequence form.
struct ByColumns<T: Float> {
    share: Share<T>,
    scale: T,
}

impl<T: Float> LinearRule<T> for ByColumns<T> {
    fn redistribute(&self, step: &LinearStep<'_, T>, r: &[T], out: &mut [&mut [T]], ws: &mut Workspace<T>) -> T {
        redistribute_proportionally(step, r, out, ws, self.scale, |z, w| self.share.of(z, w))
    }
}

/// The block counterpart of [`redistribute_proportionally`]: the same
/// redistribution for `B` sequences at once, with the share given as a
/// [`Share`] so that its sums are matrix products instead of per-edge calls:
///
/// ```text
/// R_in[:, b] += scale * sum_j q_ijb / (sum_i' q_i'jb) * R[j, b]
/// ```
///
/// Adds into `relevance_in[g]` `[n_g, B]` and adds each column's (scaled)
/// relevance of outputs whose shares sum to exactly zero into
/// `unexplained[b]`, as [`LinearRule::redistribute_block`] does. With
/// `S = scale R / den` (zero where `den = 0`), for a dense group with weights
/// `W` and contributions, `P = f(W)` and `N = -f(-W)` taken entry-wise
/// (`z+`: `P = W^+`, `N = W^-`):
///
/// ```text
/// den += P X^+ + N X^-                     (one gemm over [P | N])
/// R_in += X^+ ⊙ (P^T S) + X^- ⊙ (N^T S)    (one gemm over [P | N]^T)
/// ```
///
/// A row-scaled group splits its scale `s` by sign the same way (`s^+`
/// with `[P | N]`, `s^-` with `[N | P]`); an identity group is entry-wise.
/// Squared weights use `W ⊙ W` (whose row sums are the denominator, the
/// same for every sequence); uniform shares use the group sizes and the
/// column sums of `S`. The transformed weights (and their transposes, so
/// every product is a `gemm` of contiguous operands) live in the
/// workspace's block buffers: once warm, this function allocates nothing
/// (nalgebra's `gemm` of large operands goes through matrixmultiply, which
/// allocates its own packing buffer per product).
///
/// Differs from column by column only in rounding: the sums run in another
/// order, and `q_ij (R_j / den_j)` replaces `(q_ij / den_j) R_j`. Where
/// that matters for finiteness (one-signed shares of tiny, even subnormal,
/// contributions, where `R_j / den_j` overflows) the column comes out
/// non-finite, and every such column is redone by the per-sequence form,
/// whose fraction-first order keeps it finite (collecting those columns is
/// the one allocation, on that rare path only). Steps with a connection
/// that has no block form go by columns
/// ([`lrp_core::for_each_column`]).
///
/// A rule of your own whose share is a [`Share`] is two calls:
///
/// ```
/// use lrp_core::{Block, BlockMut, BlockStep, Float, LinearRule, LinearStep, Workspace};
/// use lrp_layers::{redistribute_proportionally, redistribute_proportionally_block, Share};
///
/// struct AbsoluteContributions;
///
/// impl AbsoluteContributions {
///     fn share<T: Float>() -> Share<T> {
///         Share::Contributions { positive: T::one(), negative: -T::one() }
///     }
/// }
///
/// impl<T: Float> LinearRule<T> for AbsoluteContributions {
///     fn redistribute(&self, step: &LinearStep<'_, T>, r: &[T], out: &mut [&mut [T]], ws: &mut Workspace<T>) -> T {
///         let share = Self::share();
///         redistribute_proportionally(step, r, out, ws, T::one(), |z, w| share.of(z, w))
///     }
///
///     fn redistribute_block(
///         &self,
///         step: &BlockStep<'_, T>,
///         r: Block<'_, T>,
///         out: &mut [BlockMut<'_, T>],
///         unexplained: &mut [T],
///         ws: &mut Workspace<T>,
///     ) {
///         redistribute_proportionally_block(step, r, out, unexplained, ws, T::one(), Self::share())
///     }
/// }
///
/// use lrp_core::nalgebra::DMatrix;
/// use lrp_core::{BlockConnection, BlockInput};
/// let w = DMatrix::from_row_slice(1, 2, &[1.0, -3.0]);
/// let x = [1.0, 1.0, 2.0, 0.0]; // two sequences, [2, 2]
/// let groups = [BlockInput {
///     input: Block::contiguous(&x, 2).unwrap(),
///     connection: BlockConnection::Dense(w.as_view()),
/// }];
/// let z = [-2.0, 2.0];
/// let step = BlockStep { groups: &groups, bias: None, output: Block::contiguous(&z, 1).unwrap() };
/// let r = [4.0, 6.0];
/// let mut relevance_in = [0.0; 4];
/// let mut unexplained = [0.0; 2];
/// AbsoluteContributions.redistribute_block(
///     &step,
///     Block::contiguous(&r, 1).unwrap(),
///     &mut [BlockMut::new(&mut relevance_in, 2, 2, 2).unwrap()],
///     &mut unexplained,
///     &mut Workspace::new(),
/// );
/// assert_eq!((relevance_in, unexplained), ([1.0, 3.0, 6.0, 0.0], [0.0; 2]));
/// ```
pub fn redistribute_proportionally_block<T: Float>(
    step: &BlockStep<'_, T>,
    relevance_out: Block<'_, T>,
    relevance_in: &mut [BlockMut<'_, T>],
    unexplained: &mut [T],
    workspace: &mut Workspace<T>,
    scale: T,
    share: Share<T>,
) {
    lrp_core::simd::wide(|| {
        proportional_block_inline(step, relevance_out, relevance_in, unexplained, workspace, scale, share)
    })
}

/// [`redistribute_proportionally_block`], inlined into the wider code of
/// [`lrp_core::simd::wide`].
#[inline(always)]
fn proportional_block_inline<T: Float>(
    step: &BlockStep<'_, T>,
    relevance_out: Block<'_, T>,
    relevance_in: &mut [BlockMut<'_, T>],
    unexplained: &mut [T],
    workspace: &mut Workspace<T>,
    scale: T,
    share: Share<T>,
) {
    if !blockable(step) {
        let rule = ByColumns { share, scale };
        return for_each_column(&rule, step, relevance_out, relevance_in, unexplained, workspace);
    }
    let (m, cols) = (step.outputs(), step.columns().min(unexplained.len()));
    let contributions = matches!(share, Share::Contributions { .. });
    let width = if contributions { 2 } else { 1 };
    let nmax = step.largest_group();
    let weight_len: usize = step
        .groups
        .iter()
        .filter_map(|g| weights(&g.connection))
        .map(|w| m * w.ncols() * share.matrices())
        .sum();
    let row_scaled = step
        .groups
        .iter()
        .any(|g| matches!(g.connection, BlockConnection::RowScaled { .. }));
    let per_output = if row_scaled { m * cols } else { 0 };
    let [den, ratio, up, down, row_sums, lost, bad, matrices, stacked, swapped, product, contributed] = workspace
        .block_buffers([
            m * cols,
            m * cols,
            per_output,
            per_output,
            m,
            cols,
            cols,
            weight_len,
            if contributions { 2 * nmax * cols } else { 0 },
            if contributions && row_scaled {
                2 * nmax * cols
            } else {
                0
            },
            width * nmax * cols,
            step.fan_in() * cols,
        ]);

    // The transformed weights of every matrix group: [P | N] `[M, 2n]`, or
    // W ⊙ W `[M, n]`, contiguous and column-major like W (the relevance
    // products take their transposes through the strides, at no cost).
    let mut offset = 0;
    for w in step.groups.iter().filter_map(|g| weights(&g.connection)) {
        let n = w.ncols();
        let len = m * n;
        let own = &mut matrices[offset..offset + len * share.matrices()];
        match share {
            Share::Contributions { .. } => {
                let (p, q) = own.split_at_mut(len);
                for (i, column) in w.column_iter().enumerate() {
                    let (p, q) = (&mut p[i * m..(i + 1) * m], &mut q[i * m..(i + 1) * m]);
                    for ((p, q), &w) in p.iter_mut().zip(q.iter_mut()).zip(column.iter()) {
                        (*p, *q) = share.split(w);
                    }
                }
            }
            Share::SquaredWeights => {
                for (i, column) in w.column_iter().enumerate() {
                    for (o, &w) in own[i * m..(i + 1) * m].iter_mut().zip(column.iter()) {
                        *o = w * w;
                    }
                }
            }
            Share::Uniform => {}
        }
        offset += len * share.matrices();
    }

    // Denominators [M, B], group by group.
    den.fill(T::zero());
    let mut offset = 0;
    for group in step.groups {
        let x = group.input;
        let n = group.connection.fan_in(m);
        let own = matrices_of(matrices, &mut offset, m, n, &share, &group.connection);
        match (share, group.connection) {
            (Share::Contributions { .. }, BlockConnection::Dense(_)) => {
                split_inputs(x, n, cols, stacked, None);
                gemm_nn(den, &own, stacked, cols, T::one());
            }
            (Share::Contributions { .. }, BlockConnection::RowScaled { scale, .. }) => {
                split_inputs(x, n, cols, stacked, Some(swapped));
                gemm_nn(up, &own, stacked, cols, T::zero());
                gemm_nn(down, &own, swapped, cols, T::zero());
                for b in 0..cols {
                    let column = b * m..(b + 1) * m;
                    let (up, down) = (&up[column.clone()], &down[column.clone()]);
                    for (((d, &s), &up), &down) in den[column].iter_mut().zip(scale.column(b)).zip(up).zip(down) {
                        if s > T::zero() {
                            *d += s * up;
                        } else if s < T::zero() {
                            *d += s * down;
                        }
                    }
                }
            }
            (Share::SquaredWeights, BlockConnection::Dense(w) | BlockConnection::RowScaled { weights: w, .. }) => {
                row_sums.fill(T::zero());
                for column in w.column_iter() {
                    for (sum, &w) in row_sums.iter_mut().zip(column.iter()) {
                        *sum += w * w;
                    }
                }
                for b in 0..cols {
                    let s = match group.connection {
                        BlockConnection::RowScaled { scale, .. } => Some(scale.column(b)),
                        _ => None,
                    };
                    for j in 0..m {
                        den[b * m + j] += match s {
                            Some(s) => s[j] * s[j] * row_sums[j],
                            None => row_sums[j],
                        };
                    }
                }
            }
            (Share::Uniform, BlockConnection::Dense(_) | BlockConnection::RowScaled { .. }) => {
                let count = T::of_f64(n as f64);
                for d in den[..m * cols].iter_mut() {
                    *d += count;
                }
            }
            // Identity: the one edge j -> j, weight 1.
            _ => {
                for b in 0..cols {
                    for (d, &x) in den[b * m..(b + 1) * m].iter_mut().zip(x.column(b)) {
                        *d += share.of(x, T::one());
                    }
                }
            }
        }
    }

    // S = scale R / den, and what no input receives.
    for b in 0..cols {
        let column = b * m..(b + 1) * m;
        lost[b] = T::zero();
        bad[b] = T::zero();
        for ((q, &d), &r) in ratio[column.clone()]
            .iter_mut()
            .zip(&den[column])
            .zip(relevance_out.column(b))
        {
            if d == T::zero() {
                lost[b] += scale * r;
                *q = T::zero();
            } else {
                *q = scale * r / d;
            }
        }
    }

    // Each group's relevance [n, B], checked for finiteness by column.
    let (mut offset, mut at) = (0, 0);
    for group in step.groups {
        let x = group.input;
        let n = group.connection.fan_in(m);
        let own = matrices_of(matrices, &mut offset, m, n, &share, &group.connection);
        let out = &mut contributed[at..at + n * cols];
        at += n * cols;
        // Row-scaled: the ratio split by the sign of the scale (or squared).
        if let BlockConnection::RowScaled { scale, .. } = group.connection {
            for b in 0..cols {
                let s = scale.column(b);
                for j in 0..m {
                    let (k, r) = (b * m + j, ratio[b * m + j]);
                    (up[k], down[k]) = match share {
                        Share::SquaredWeights => (s[j] * s[j] * r, T::zero()),
                        _ if s[j] > T::zero() => (s[j] * r, T::zero()),
                        _ if s[j] < T::zero() => (T::zero(), s[j] * r),
                        _ => (T::zero(), T::zero()),
                    };
                }
            }
        }
        match (share, group.connection) {
            (Share::Contributions { .. }, BlockConnection::Dense(_) | BlockConnection::RowScaled { .. }) => {
                let row_scaled = matches!(group.connection, BlockConnection::RowScaled { .. });
                if row_scaled {
                    // [P^T s+S; N^T s+S] and [P^T s-S; N^T s-S].
                    gemm_tn(product, &own, up, cols, T::zero());
                    gemm_tn(swapped, &own, down, cols, T::zero());
                } else {
                    gemm_tn(product, &own, ratio, cols, T::zero());
                }
                // R_i = x_i^+ (through P) + x_i^- (through N), without
                // branches (a non-finite term makes a non-finite column,
                // which is redone one sequence at a time below).
                for b in 0..cols {
                    let t = &product[b * 2 * n..(b + 1) * 2 * n];
                    let (via_p, via_n) = t.split_at(n);
                    let out = &mut out[b * n..(b + 1) * n];
                    if row_scaled {
                        let (via_n2, via_p2) = swapped[b * 2 * n..(b + 1) * 2 * n].split_at(n);
                        for i in 0..n {
                            let (plus, minus) = signed_parts(x.column(b)[i]);
                            out[i] = plus * (via_p[i] + via_p2[i]) + minus * (via_n[i] + via_n2[i]);
                        }
                    } else {
                        for (i, (o, &x)) in out.iter_mut().zip(x.column(b)).enumerate() {
                            let (plus, minus) = signed_parts(x);
                            *o = plus * via_p[i] + minus * via_n[i];
                        }
                    }
                }
            }
            (Share::SquaredWeights, BlockConnection::Dense(_)) => gemm_tn(out, &own, ratio, cols, T::zero()),
            (Share::SquaredWeights, BlockConnection::RowScaled { .. }) => gemm_tn(out, &own, up, cols, T::zero()),
            (Share::Uniform, BlockConnection::Dense(_) | BlockConnection::RowScaled { .. }) => {
                for b in 0..cols {
                    let total = ratio[b * m..(b + 1) * m].iter().fold(T::zero(), |a, &r| a + r);
                    out[b * n..(b + 1) * n].fill(total);
                }
            }
            // Identity.
            _ => {
                for b in 0..cols {
                    let r = &ratio[b * m..(b + 1) * m];
                    for ((o, &x), &r) in out[b * n..(b + 1) * n].iter_mut().zip(x.column(b)).zip(r) {
                        *o = share.of(x, T::one()) * r;
                    }
                }
            }
        }
        for b in 0..cols {
            if out[b * n..(b + 1) * n].iter().any(|v| !v.is_finite()) {
                bad[b] = T::one();
            }
        }
    }

    // Add the finite columns; redo the others one sequence at a time.
    let mut at = 0;
    for (group, block) in step.groups.iter().zip(relevance_in.iter_mut()) {
        let n = group.connection.fan_in(m);
        for b in (0..cols).filter(|&b| bad[b] == T::zero()) {
            let from = &contributed[at + b * n..at + (b + 1) * n];
            for (o, &c) in block.column_mut(b).iter_mut().zip(from) {
                *o += c;
            }
        }
        at += n * cols;
    }
    for b in (0..cols).filter(|&b| bad[b] == T::zero()) {
        unexplained[b] += lost[b];
    }
    if bad.iter().any(|&f| f != T::zero()) {
        let redo: Vec<usize> = (0..cols).filter(|&b| bad[b] != T::zero()).collect();
        let rule = ByColumns { share, scale };
        for b in redo {
            unexplained[b] += one_column(&rule, step, relevance_out, relevance_in, b, workspace);
        }
    }
}

/// `(v^+, v^-)`: `(v, 0)` for `v > 0`, else `(0, v)`; a select and a
/// subtraction, so loops over it vectorise.
#[inline(always)]
fn signed_parts<T: Float>(v: T) -> (T, T) {
    let plus = if v > T::zero() { v } else { T::zero() };
    (plus, v - plus)
}

/// Splits inputs `[n, B]` into `[X^+; X^-]` `[2n, B]` (and, when asked,
/// `[X^-; X^+]`).
fn split_inputs<T: Float>(x: Block<'_, T>, n: usize, cols: usize, stacked: &mut [T], swapped: Option<&mut [T]>) {
    for b in 0..cols {
        let (pos, neg) = stacked[b * 2 * n..(b + 1) * 2 * n].split_at_mut(n);
        for ((p, q), &x) in pos.iter_mut().zip(neg.iter_mut()).zip(x.column(b)) {
            (*p, *q) = signed_parts(x);
        }
    }
    if let Some(swapped) = swapped {
        for b in 0..cols {
            let from = &stacked[b * 2 * n..(b + 1) * 2 * n];
            let to = &mut swapped[b * 2 * n..(b + 1) * 2 * n];
            to[..n].copy_from_slice(&from[n..]);
            to[n..].copy_from_slice(&from[..n]);
        }
    }
}

/// The transformed weights of the next group, advancing `offset` past
/// them: `[P | N]` `[M, 2n]` for contributions, `W ⊙ W` `[M, n]` for
/// squared weights, an empty view otherwise.
fn matrices_of<'a, T: Float>(
    matrices: &'a [T],
    offset: &mut usize,
    m: usize,
    n: usize,
    share: &Share<T>,
    connection: &BlockConnection<'_, T>,
) -> DMatrixView<'a, T> {
    let len = m * n * share.matrices();
    if weights(connection).is_none() || len == 0 {
        return view(&[], 0, 0);
    }
    let own = &matrices[*offset..*offset + len];
    *offset += len;
    view(own, m, n * share.matrices())
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

    fn redistribute_block(
        &self,
        step: &BlockStep<'_, T>,
        r: Block<'_, T>,
        out: &mut [BlockMut<'_, T>],
        unexplained: &mut [T],
        ws: &mut Workspace<T>,
    ) {
        redistribute_proportionally_block(
            step,
            r,
            out,
            unexplained,
            ws,
            T::one(),
            Share::Contributions {
                positive: T::one(),
                negative: T::zero(),
            },
        )
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

    fn redistribute_block(
        &self,
        step: &BlockStep<'_, T>,
        r: Block<'_, T>,
        out: &mut [BlockMut<'_, T>],
        unexplained: &mut [T],
        ws: &mut Workspace<T>,
    ) {
        redistribute_proportionally_block(
            step,
            r,
            out,
            unexplained,
            ws,
            T::one(),
            Share::Contributions {
                positive: T::one() + self.gamma,
                negative: T::one(),
            },
        )
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

    fn redistribute_block(
        &self,
        step: &BlockStep<'_, T>,
        r: Block<'_, T>,
        out: &mut [BlockMut<'_, T>],
        unexplained: &mut [T],
        ws: &mut Workspace<T>,
    ) {
        let (positive, negative) = (T::one(), T::zero());
        redistribute_proportionally_block(
            step,
            r,
            out,
            unexplained,
            ws,
            self.alpha,
            Share::Contributions { positive, negative },
        );
        if self.beta != T::zero() {
            let (positive, negative) = (T::zero(), T::one());
            redistribute_proportionally_block(
                step,
                r,
                out,
                unexplained,
                ws,
                -self.beta,
                Share::Contributions { positive, negative },
            );
        }
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

    fn redistribute_block(
        &self,
        step: &BlockStep<'_, T>,
        r: Block<'_, T>,
        out: &mut [BlockMut<'_, T>],
        unexplained: &mut [T],
        ws: &mut Workspace<T>,
    ) {
        redistribute_proportionally_block(step, r, out, unexplained, ws, T::one(), Share::SquaredWeights)
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

    fn redistribute_block(
        &self,
        step: &BlockStep<'_, T>,
        r: Block<'_, T>,
        out: &mut [BlockMut<'_, T>],
        unexplained: &mut [T],
        ws: &mut Workspace<T>,
    ) {
        redistribute_proportionally_block(step, r, out, unexplained, ws, T::one(), Share::Uniform)
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
    use crate::linear::testing::{block_matches_columns, blocks, run, BlockData, StepData};
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

    /// A diagonal group (a peephole's `p ⊙ c`) has one edge per output:
    /// every rule matches its formula over those edges (flat counts one, not
    /// `M`), epsilon matches the same weights written as a dense `diag(d)`,
    /// and the block forms, which take it column by column, match too.
    #[test]
    fn a_diagonal_group_is_one_edge_per_output_for_every_rule() {
        use crate::Epsilon;
        use lrp_core::{Block, BlockConnection, BlockInput, BlockMut, BlockStep};
        let w = DMatrix::from_row_slice(3, 2, &[0.5, -1.0, 2.0, 0.25, -0.75, 1.5]);
        let (x, c) = ([0.8, -0.6], [1.5, -2.0, 0.5]);
        let d = [0.3, -0.9, 1.2];
        let dense_d = DMatrix::from_diagonal(&lrp_core::nalgebra::DVector::from_column_slice(&d));
        let groups = [
            InputGroup {
                input: &x,
                connection: Connection::Dense(w.as_view()),
            },
            InputGroup {
                input: &c,
                connection: Connection::Diagonal(&d),
            },
        ];
        let z: Vec<f64> = (0..3)
            .map(|j| w[(j, 0)] * x[0] + w[(j, 1)] * x[1] + d[j] * c[j] + 0.1)
            .collect();
        let bias = [0.1; 3];
        let step = LinearStep {
            groups: &groups,
            bias: Some(&bias),
            output: &z,
        };
        let r = [1.0, -0.5, 2.0];
        let rules: [(&str, Box<dyn LinearRule<f64>>); 5] = [
            ("zplus", Box::new(ZPlus)),
            ("gamma", Box::new(Gamma::new(0.25).unwrap())),
            ("alphabeta", Box::new(AlphaBeta::new(2.0, 1.0).unwrap())),
            ("wsquare", Box::new(WSquare)),
            ("flat", Box::new(Flat)),
        ];
        for (name, rule) in rules {
            let (got, _) = run(rule.as_ref(), &step, &r);
            let want = by_formula(name, &step, &r);
            for (g, w) in got.iter().zip(&want) {
                assert!((g - w).abs() <= 1e-12 * (1.0 + w.abs()), "{name}: got {g}, want {w}");
            }
        }
        // Flat: output j shares among its 2 dense inputs and its own c_j.
        let (flat, _) = run(&Flat, &step, &r);
        assert!((flat[2] - r[0] / 3.0).abs() < 1e-15, "{flat:?}");
        // Epsilon: the same as the dense diagonal (zeros carry nothing).
        let as_dense = [
            groups[0],
            InputGroup {
                input: &c,
                connection: Connection::Dense(dense_d.as_view()),
            },
        ];
        let dense_step = LinearStep {
            groups: &as_dense,
            ..step
        };
        let epsilon = Epsilon::<f64>::new(0.01, 1.0).unwrap();
        assert_eq!(run(&epsilon, &step, &r).0, run(&epsilon, &dense_step, &r).0);
        // The block form over two identical columns equals each column alone.
        let (x2, c2, z2, r2): (Vec<f64>, Vec<f64>, Vec<f64>, Vec<f64>) =
            (x.repeat(2), c.repeat(2), z.repeat(2), r.repeat(2));
        let block_groups = [
            BlockInput {
                input: Block::new(&x2, 2, 2, 2).unwrap(),
                connection: BlockConnection::Dense(w.as_view()),
            },
            BlockInput {
                input: Block::new(&c2, 3, 2, 3).unwrap(),
                connection: BlockConnection::Diagonal(&d),
            },
        ];
        let block = BlockStep {
            groups: &block_groups,
            bias: Some(Block::broadcast(&bias, 2)),
            output: Block::new(&z2, 3, 2, 3).unwrap(),
        };
        for rule in [&ZPlus as &dyn LinearRule<f64>, &Flat, &epsilon] {
            let (mut rx, mut rc, mut lost) = (vec![0.0; 4], vec![0.0; 6], vec![0.0; 2]);
            rule.redistribute_block(
                &block,
                Block::new(&r2, 3, 2, 3).unwrap(),
                &mut [
                    BlockMut::new(&mut rx, 2, 2, 2).unwrap(),
                    BlockMut::new(&mut rc, 3, 2, 3).unwrap(),
                ],
                &mut lost,
                &mut Workspace::new(),
            );
            let (alone, _) = run(rule, &step, &r);
            assert_eq!([&rx[..2], &rc[..3]].concat(), alone, "{}", rule.name());
            assert_eq!([&rx[2..], &rc[3..]].concat(), alone, "{}", rule.name());
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

    /// Every proportional rule, with the parameters the block tests use.
    fn rules(gamma: f64) -> Vec<Box<dyn LinearRule<f64>>> {
        vec![
            Box::new(ZPlus),
            Box::new(Gamma::new(gamma).unwrap()),
            Box::new(Gamma::new(0.0).unwrap()),
            Box::new(AlphaBeta::new(2.0, 1.0).unwrap()),
            Box::new(AlphaBeta::new(1.0, 0.0).unwrap()),
            Box::new(WSquare),
            Box::new(Flat),
        ]
    }

    proptest! {
        #[test]
        fn block_forms_match_columns(
            ((m, n, cols), kinds, seed, silent) in blocks(),
            gamma in 0.0f64..1.0,
        ) {
            let data = BlockData::new(m, n, cols, &kinds, &seed, &silent);
            // Gamma's shares have both signs: near a cancelling denominator
            // both forms are only accurate to about 1e-16 / cancellation
            // (relative), so such blocks check the one-signed rules only.
            let conditioned = |gamma: f64| data.cancellation(|z| z + gamma * z.max(0.0)) > 1e-2;
            let well_conditioned = [conditioned(gamma), conditioned(0.0)];
            for (k, rule) in rules(gamma).into_iter().enumerate() {
                // rules() lists gamma, then gamma = 0, second and third.
                if (k == 1 && !well_conditioned[0]) || (k == 2 && !well_conditioned[1]) {
                    continue;
                }
                block_matches_columns(rule.as_ref(), &data).map_err(TestCaseError::fail)?;
            }
        }
    }

    /// Runs `rule` by block and by columns on `data` and returns the
    /// unexplained relevance the block form added, per column.
    fn block_unexplained(rule: &dyn LinearRule<f64>, data: &BlockData) -> Vec<f64> {
        block_matches_columns(rule, data).unwrap();
        let (_, lost) = data.run(rule, false);
        lost.iter().zip(data.start().1).map(|(l, s)| l - s).collect()
    }

    fn close(a: f64, b: f64) -> bool {
        (a - b).abs() <= 1e-12 * (1.0 + b.abs())
    }

    #[test]
    fn block_zero_denominators_are_unexplained_in_their_column() {
        // Column 1 has zero inputs: no contribution at all, every share of
        // the contribution rules is zero there.
        let values: Vec<f64> = (0..600).map(|k| ((k * 37 % 23) as f64 - 11.0) / 7.0).collect();
        let data = BlockData::new(3, 4, 3, &[0, 1, 2], &values, &[false, true, false]);
        let column: f64 = data.relevance[3..6].iter().sum();
        let contribution_rules: [(Box<dyn LinearRule<f64>>, f64); 4] = [
            (Box::new(ZPlus), 1.0),
            (Box::new(Gamma::new(0.5).unwrap()), 1.0),
            (Box::new(Gamma::new(0.0).unwrap()), 1.0),
            // alpha - beta of the column.
            (Box::new(AlphaBeta::new(2.0, 1.0).unwrap()), 1.0),
        ];
        for (rule, factor) in contribution_rules {
            let lost = block_unexplained(rule.as_ref(), &data);
            assert!(close(lost[1], factor * column), "{}: {lost:?}", rule.name());
        }

        // w-square: output 1 has no weights (dense and row-scaled groups
        // only), so it cannot pass anything on in any column.
        let mut values = values.clone();
        for k in 0..4 {
            values[1 + 3 * k] = 0.0; // row 1 of the [3, 4] weights
        }
        let data = BlockData::new(3, 4, 2, &[0], &values, &[]);
        let lost = block_unexplained(&WSquare, &data);
        for (b, lost) in lost.iter().enumerate() {
            assert!(close(*lost, data.relevance[b * 3 + 1]), "wsquare: {lost}");
        }

        // Flat: a group of no inputs connects to nothing.
        let data = BlockData::new(3, 0, 2, &[0], &values, &[]);
        let lost = block_unexplained(&Flat, &data);
        for (b, lost) in lost.iter().enumerate() {
            let column: f64 = data.relevance[b * 3..(b + 1) * 3].iter().sum();
            assert!(close(*lost, column), "flat: {lost}");
        }
    }

    #[test]
    fn block_subnormal_contributions_give_finite_shares() {
        // As `subnormal_contributions_give_finite_shares`, in a block: the
        // first column's contributions are subnormal, R / den overflows and
        // that column is redone one sequence at a time; the second is normal.
        // For w-square the squared weights themselves are subnormal.
        use lrp_core::{for_each_column, Block, BlockConnection, BlockInput, BlockMut, BlockStep};
        let tiny = DMatrix::from_row_slice(1, 2, &[0.25e-155, 0.75e-155]);
        let w = DMatrix::from_row_slice(1, 2, &[0.25, 0.75]);
        let x = [1e-310, 1e-310, 1.0, 1.0];
        let z = [1e-310, 1.0];
        let r = [2.0, 4.0];
        let cases: [(&dyn LinearRule<f64>, &DMatrix<f64>); 4] = [
            (&ZPlus, &w),
            (&Gamma::new(0.25).unwrap(), &w),
            (&AlphaBeta::new(1.0, 0.0).unwrap(), &w),
            (&WSquare, &tiny),
        ];
        for (rule, w) in cases {
            let groups = [BlockInput {
                input: Block::contiguous(&x, 2).unwrap(),
                connection: BlockConnection::Dense(w.as_view()),
            }];
            let step = BlockStep {
                groups: &groups,
                bias: None,
                output: Block::contiguous(&z, 1).unwrap(),
            };
            let run = |by_columns: bool| {
                let mut out = [0.0; 4];
                let mut lost = [0.0; 2];
                let mut blocks = [BlockMut::new(&mut out, 2, 2, 2).unwrap()];
                let r = Block::contiguous(&r, 1).unwrap();
                if by_columns {
                    for_each_column(rule, &step, r, &mut blocks, &mut lost, &mut Workspace::new());
                } else {
                    rule.redistribute_block(&step, r, &mut blocks, &mut lost, &mut Workspace::new());
                }
                (out, lost)
            };
            let (out, lost) = run(false);
            assert_eq!((out, lost), run(true), "{}", rule.name());
            assert_eq!(lost, [0.0; 2]);
            let want = if rule.name() == "wsquare" {
                [0.2, 1.8, 0.4, 3.6]
            } else {
                [0.5, 1.5, 1.0, 3.0]
            };
            // Subnormal squares keep only a few digits.
            assert!(
                out.iter().zip(&want).all(|(o, w)| (o - w).abs() < 1e-3),
                "{}: {out:?}",
                rule.name()
            );
        }
    }
}
